"""What every command shares: the --repo option and the mapping of errors to exit codes.

Its own module so that commands living beside their logic (auditlog.py) need not import cli.py,
which imports them.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import events
from .errors import UserError
from .redact import redact

EXIT_BUG = 3
repo_option = click.option("--repo", "repo", type=click.Path(file_okay=False, path_type=Path),
                           default=Path("."), show_default=True,
                           help="The access repository (a git checkout).")
log_format_option = click.option(
    "--log-format", "log_format", type=click.Choice(events.FORMATS), default="text",
    show_default=True, envvar="JITGRANT_LOG_FORMAT", show_envvar=True,
    help="json: one JSON object per event on stderr (run, target, action; with the run id and "
         "timings), for log collectors; stdout is unchanged.")


def handled(func: Callable[..., int]) -> Callable[..., None]:
    """Run a command; a UserError is one line and exit 1, anything else a bug and exit 3."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        verbose = click.get_current_context().find_root().params.get("verbose", False)
        events.clear()  # a command that logs as JSON starts its own log
        try:
            code = func(*args, **kwargs)
        except UserError as exc:
            log = events.current()
            if log is not None:  # stderr holds JSON only: the error is run_end's
                log.finish(exc.exit_code, error=f"{exc}",
                           traceback=traceback.format_exc() if verbose else None)
                sys.exit(exc.exit_code)
            if verbose:
                click.echo(redact(traceback.format_exc()), err=True, nl=False)
            click.echo(redact(f"jitgrant: error: {exc}"), err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            log = events.current()
            if log is not None:
                log.finish(130, error="interrupted")
            sys.exit(130)
        except Exception:  # noqa: BLE001 - the last line of defence
            # Both quote exceptions' arguments, which may hold a DSN's password.
            log = events.current()
            if log is not None:
                log.finish(EXIT_BUG, error=f"internal error: {sys.exc_info()[1]!r}; this is a "
                           "bug in jitgrant: please report it with the output of -v",
                           traceback=traceback.format_exc() if verbose else None)
                sys.exit(EXIT_BUG)
            if verbose:
                click.echo(redact(traceback.format_exc()), err=True, nl=False)
            else:
                click.echo(redact(f"jitgrant: internal error: {sys.exc_info()[1]!r}"),
                           err=True)
            click.echo("This is a bug in jitgrant. Please report it with the output of -v.",
                       err=True)
            sys.exit(EXIT_BUG)
        log = events.current()
        if log is not None:
            log.finish(code)
        sys.exit(code)

    return wrapper
