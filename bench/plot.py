"""docs/benchmarks.svg: seconds against grants, both axes logarithmic (a straight line of
slope 1 is linear growth), drawn as plain SVG so the bench needs no plotting library."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from .steps import Result

WIDTH, HEIGHT = 760, 460
LEFT, RIGHT, TOP, BOTTOM = 70, 230, 40, 60  # margins; the legend sits in the right one


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    colour: str
    dash: str = ""  # stroke-dasharray


SERIES = (
    Series("apply_first", "jitgrant first apply", "#1f77b4"),
    Series("apply_noop", "jitgrant no-op apply", "#2ca02c"),
    Series("expiry", "jitgrant mass expiry", "#9467bd"),
    Series("psql", "psql floor (create)", "#555555", "2 4"),
    Series("ldap2pg_cold", "ldap2pg 5.9 create", "#d62728", "8 4"),
    Series("ldap2pg_noop", "ldap2pg 5.9 no-op", "#ff7f0e", "8 4"),
    Series("ldap2pg_drop", "ldap2pg 5.9 removal", "#8c564b", "8 4"),
)


def svg(results: Sequence[Result], title: str) -> str:
    """The chart; a step that failed at some N has no point there, and series with no
    figure at any N are left out of it and of its legend."""
    measured = [r.measured() for r in results]
    drawn = [s for s in SERIES if any(s.key in m for m in measured)]
    values = [m[s.key] for s in drawn for m in measured if s.key in m]
    grants = [r.grants for r in results]
    x_axis = _Axis(min(grants), max(grants), LEFT, WIDTH - RIGHT)
    y_axis = _Axis(min(values, default=0.1), max(values, default=1.0), HEIGHT - BOTTOM, TOP)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
             f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{escape(title)}</text>']
    parts += _grid(x_axis, y_axis)
    for index, series in enumerate(drawn):
        points = [(x_axis.at(r.grants), y_axis.at(m[series.key]))
                  for r, m in zip(results, measured, strict=True) if series.key in m]
        parts += _line(series, points) + _legend(series, index)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


class _Axis:
    """A logarithmic axis from `low` to `high` (widened to whole 1-2-5 steps), drawn from
    pixel `start` to pixel `end`."""

    def __init__(self, low: float, high: float, start: float, end: float) -> None:
        self.low = _step_below(low)
        self.high = max(_step_above(high), self.low * 10)
        self.start, self.end = start, end

    def at(self, value: float) -> float:
        span = math.log10(self.high) - math.log10(self.low)
        return self.start + (math.log10(value) - math.log10(self.low)) / span * (self.end
                                                                                 - self.start)

    def ticks(self) -> list[float]:
        out = []
        decade = 10.0 ** math.floor(math.log10(self.low))
        while decade <= self.high:
            out += [m * decade for m in (1, 2, 5) if self.low <= m * decade <= self.high * 1.0001]
            decade *= 10
        return out


def _step_below(value: float) -> float:
    decade = 10.0 ** math.floor(math.log10(value))
    return max(m * decade for m in (1, 2, 5) if m * decade <= value * 1.0001)


def _step_above(value: float) -> float:
    decade = 10.0 ** math.floor(math.log10(value))
    return min(m * decade for m in (1, 2, 5, 10) if m * decade >= value * 0.9999)


def _grid(x: _Axis, y: _Axis) -> list[str]:
    bottom, top, left, right = y.start, y.end, x.start, x.end
    out = [f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
           'fill="none" stroke="#999"/>']
    for tick in x.ticks():
        px = x.at(tick)
        out.append(f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle">'
                   f'{_number(tick)}</text>')
    for tick in y.ticks():
        py = y.at(tick)
        out.append(f'<line x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end">'
                   f'{_number(tick)}</text>')
    out.append(f'<text x="{(left + right) / 2}" y="{HEIGHT - 18}" text-anchor="middle">'
               'active grants (log scale)</text>')
    out.append(f'<text transform="translate(18 {(top + bottom) / 2}) rotate(-90)" '
               'text-anchor="middle">seconds (log scale)</text>')
    return out


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _line(series: Series, points: list[tuple[float, float]]) -> list[str]:
    dash = f' stroke-dasharray="{series.dash}"' if series.dash else ""
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    out = [f'<polyline points="{path}" fill="none" stroke="{series.colour}" '
           f'stroke-width="2"{dash}/>']
    out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{series.colour}"/>'
            for x, y in points]
    return out


def _legend(series: Series, index: int) -> list[str]:
    x, y = WIDTH - RIGHT + 20, TOP + 14 + index * 22
    dash = f' stroke-dasharray="{series.dash}"' if series.dash else ""
    return [f'<line x1="{x}" y1="{y}" x2="{x + 28}" y2="{y}" stroke="{series.colour}" '
            f'stroke-width="2"{dash}/>',
            f'<text x="{x + 36}" y="{y + 4}">{escape(series.label)}</text>']
