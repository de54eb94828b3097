"""Placeholder: filled in by the requester-side work (issue 5)."""

from __future__ import annotations

import click

from .clicommon import handled
from .errors import UserError


@click.command("standing")
@handled
def standing_command() -> int:
    """Not built yet."""
    raise UserError("`jitgrant standing` is not built yet")
