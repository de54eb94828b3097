// jitgrant access report. Every value from the audit trail enters the page through
// textContent, .title or .value only, never as markup.
(() => {
  "use strict";
  const data = JSON.parse(document.getElementById("audit-data").textContent);
  const rows = data.rows;
  const DAY = 86400000;
  const SHADE_DAYS = 62;
  const AXIS_LABELS = 5;
  const KEYS = ["person", "target", "from", "to"];
  const byId = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  const ms = (iso) => (iso ? Date.parse(iso) : null);

  // -- the time zone of the report (the CLI's --timezone) ---------------------------------------
  let zoned = null;
  try {
    zoned = new Intl.DateTimeFormat("en-US", {
      timeZone: data.zone, hourCycle: "h23", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  } catch (e) {
    zoned = null; // a browser without this zone: UTC, and the header says which zone is meant
  }

  function parts(t) {
    const v = {};
    if (zoned) {
      for (const p of zoned.formatToParts(new Date(t))) v[p.type] = p.value;
    } else {
      const d = new Date(t).toISOString();
      Object.assign(v, { year: d.slice(0, 4), month: d.slice(5, 7), day: d.slice(8, 10),
                         hour: d.slice(11, 13), minute: d.slice(14, 16), second: d.slice(17, 19) });
    }
    return v;
  }

  function offset(t) {
    const v = parts(t);
    const local = Date.UTC(+v.year, +v.month - 1, +v.day, +v.hour % 24, +v.minute, +v.second);
    return local - Math.floor(t / 1000) * 1000;
  }

  // The start of a calendar day (YYYY-MM-DD) in the zone, as --since reads a date.
  function dayStart(text) {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text || "");
    if (!m) return null;
    const guess = Date.UTC(+m[1], +m[2] - 1, +m[3]);
    return guess - offset(guess - offset(guess));
  }

  function nextDay(text) {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text || "");
    return m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3] + 1)).toISOString().slice(0, 10) : "";
  }

  function showTime(t) {
    const v = parts(t);
    return `${v.year}-${v.month}-${v.day} ${v.hour}:${v.minute}`;
  }

  // -- filters, in the URL's fragment --------------------------------------------------------------
  function readHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    const f = {};
    for (const k of KEYS) f[k] = params.get(k) || "";
    return f;
  }

  function writeHash(f) {
    const params = new URLSearchParams();
    for (const k of KEYS) if (f[k]) params.set(k, f[k]);
    const text = params.toString();
    if (text !== location.hash.replace(/^#/, "")) location.hash = text;
  }

  function fromControls() {
    const f = {};
    for (const k of KEYS) f[k] = byId(k).value;
    return f;
  }

  function ensureOption(select, value, label) {
    if (!value) return;
    for (const o of select.options) if (o.value === value) return;
    const option = el("option", null, label === undefined ? value : label);
    option.value = value;
    select.appendChild(option);
  }

  const person = (r) => (r.grantee === null || r.grantee === undefined ? "-" : r.grantee);

  function fillChoices() {
    const people = [...new Set(rows.map(person))].sort();
    for (const p of people) ensureOption(byId("person"), p, p === "-" ? "(unknown)" : p);
    for (const t of [...new Set(rows.map((r) => r.target))].sort()) ensureOption(byId("target"), t);
  }

  // -- which rows ---------------------------------------------------------------------------------
  function span(r) {
    const start = ms(r.granted_at);
    const end = ms(r.ended_at) ?? ms(r.expires) ?? ms(data.generated);
    return [start, Math.max(end, start ?? end)];
  }

  // As `jitgrant audit --since/--until`: a period that overlaps the window.
  function matches(r, f, since, until) {
    if (f.person && person(r) !== f.person) return false;
    if (f.target && r.target !== f.target) return false;
    const start = ms(r.granted_at);
    const end = ms(r.ended_at);
    if (until !== null && start !== null && start >= until) return false;
    if (since !== null && end !== null && end < since) return false;
    return true;
  }

  function viewRange(shown, since, until) {
    let lo = since;
    let hi = until;
    const spans = shown.map(span);
    if (lo === null) {
      const starts = spans.map((s) => s[0] ?? s[1]);
      lo = starts.length ? Math.min(...starts) : ms(data.generated) - DAY;
    }
    if (hi === null) hi = spans.length ? Math.max(...spans.map((s) => s[1])) : ms(data.generated);
    if (hi <= lo) hi = lo + 3600000;
    const pad = (hi - lo) * 0.01;
    return [lo - (since === null ? pad : 0), hi + (until === null ? pad : 0)];
  }

  // -- drawing ------------------------------------------------------------------------------------
  function place(node, lo, hi, a, b) {
    const left = Math.max(0, (a - lo) / (hi - lo));
    const right = Math.min(1, (b - lo) / (hi - lo));
    node.style.left = `${(left * 100).toFixed(3)}%`;
    node.style.width = `${(Math.max(0, right - left) * 100).toFixed(3)}%`;
  }

  function summary(r) {
    const lines = [
      `${person(r)}: ${r.access ?? "?"} on ${r.target} (login ${r.login})`,
      `requested by ${r.requested_by.join(", ") || "-"}: ${r.reasons.join(" / ") || "-"}`,
      `approved by ${r.approved_by.join(", ") || "-"}`,
      `granted ${r.shown.granted_at ?? "before the trail"}, expires ${r.shown.expires ?? "-"}`,
      `first used ${r.shown.first_used ?? "-"}, last seen ${r.shown.last_seen ?? "-"}`,
      r.ended_at ? `ended ${r.shown.ended_at} (${r.ended_cause})` : "not ended yet",
    ];
    return lines.join("\n");
  }

  function barClass(r) {
    const names = ["bar", r.ended_at ? r.ended_cause || "ended" : "open"];
    if (r.used === false) names.push("unused");
    if (r.after_hours) names.push("after-hours");
    return names.join(" ");
  }

  function drawTarget(target, list, lo, hi) {
    const section = el("section", "target");
    section.appendChild(el("h2", null, target));
    const box = el("div", "timeline");
    const axis = el("div", "axis");
    axis.appendChild(el("span", "start", showTime(lo)));
    for (let i = 1; i < AXIS_LABELS; i += 1) {
      const label = el("span", "mid", showTime(lo + ((hi - lo) * i) / AXIS_LABELS));
      label.style.left = `${((i * 100) / AXIS_LABELS).toFixed(3)}%`;
      axis.appendChild(label);
    }
    axis.appendChild(el("span", "end", showTime(hi)));
    box.appendChild(axis);
    for (const r of list) {
      const lane = el("div", "lane");
      lane.appendChild(el("div", "who", `${person(r)} \u00b7 ${r.access ?? "?"}`));
      const track = el("div", "track");
      if (hi - lo <= SHADE_DAYS * DAY) {
        for (const [a, b] of data.after_hours) {
          if (b <= lo || a >= hi) continue;
          const night = el("div", "night");
          place(night, lo, hi, a, b);
          track.appendChild(night);
        }
      }
      const [start, end] = span(r);
      const bar = el("div", barClass(r));
      bar.title = summary(r);
      place(bar, lo, hi, start ?? lo, end);
      track.appendChild(bar);
      const used = ms(r.first_used);
      if (used !== null && used >= lo && used <= hi) {
        const mark = el("div", "tick");
        mark.title = `first used ${r.shown.first_used}`;
        place(mark, lo, hi, used, used);
        track.appendChild(mark);
      }
      lane.appendChild(track);
      box.appendChild(lane);
    }
    section.appendChild(box);
    return section;
  }

  function cell(tr, text, className) {
    const td = el("td", className, text === null || text === undefined || text === "" ? "-" : text);
    tr.appendChild(td);
    return td;
  }

  function pullRequestCell(tr, r) {
    const td = el("td");
    const label = r.pull_requests.map((n) => `#${n}`).join(", ") || "-";
    if (r.pull_request_url && /^https:\/\//.test(r.pull_request_url)) {
      const a = el("a", null, label === "-" ? r.pull_request_url : label);
      a.href = r.pull_request_url;
      a.rel = "noopener noreferrer";
      td.appendChild(a);
    } else {
      td.textContent = label;
    }
    tr.appendChild(td);
  }

  function tableRow(r) {
    const tr = el("tr", r.after_hours ? "after-hours" : null);
    cell(tr, person(r));
    cell(tr, r.target);
    cell(tr, r.access);
    cell(tr, [r.requested_by.join(", "), r.reasons.join(" / "), r.tickets.join(", ")]
      .filter((x) => x).join(" \u2014 "), "reason");
    pullRequestCell(tr, r);
    cell(tr, r.approved_by.join(", "));
    cell(tr, r.shown.granted_at ?? (r.granted_at ? r.granted_at : "before the trail"));
    cell(tr, r.shown.expires);
    cell(tr, r.shown.first_used ?? (r.used === false ? "never" : null));
    cell(tr, r.shown.last_seen);
    cell(tr, r.sessions_seen);
    cell(tr, [...r.clients, ...r.applications].join(", "));
    cell(tr, r.shown.ended_at);
    cell(tr, r.ended_cause);
    cell(tr, r.ended_pull_request === null ? null : `#${r.ended_pull_request}`);
    return tr;
  }

  function render() {
    const f = readHash();
    ensureOption(byId("person"), f.person);
    ensureOption(byId("target"), f.target);
    for (const k of KEYS) byId(k).value = f[k];
    const since = dayStart(f.from);
    const until = f.to ? dayStart(nextDay(f.to)) : null;
    const shown = rows.filter((r) => matches(r, f, since, until));
    const [lo, hi] = viewRange(shown, since, until);
    const groups = new Map();
    for (const r of shown) {
      if (!groups.has(r.target)) groups.set(r.target, []);
      groups.get(r.target).push(r);
    }
    const timelines = byId("timelines");
    timelines.replaceChildren();
    for (const target of [...groups.keys()].sort()) {
      timelines.appendChild(drawTarget(target, groups.get(target), lo, hi));
    }
    const body = byId("periods").tBodies[0];
    body.replaceChildren(...shown.map(tableRow));
    byId("nothing").hidden = shown.length > 0;
    byId("shown").textContent = `${shown.length} of ${rows.length} access period(s)` +
      (hi - lo > SHADE_DAYS * DAY ? ` \u00b7 after-hours shading within ${SHADE_DAYS} days` : "");
    document.body.dataset.shown = String(shown.length);
  }

  fillChoices();
  for (const k of KEYS) byId(k).addEventListener("change", () => writeHash(fromControls()));
  byId("clear").addEventListener("click", () => writeHash({}));
  window.addEventListener("hashchange", render);
  render();
})();
