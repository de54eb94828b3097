"""Placeholder: filled in by the requester-side work (issue 5)."""

from __future__ import annotations

import click

from .clicommon import handled
from .errors import UserError


@click.command("status")
@handled
def status_command() -> int:
    """Not built yet."""
    raise UserError("`jitgrant status` is not built yet")


@click.command("connect")
@handled
def connect_command() -> int:
    """Not built yet."""
    raise UserError("`jitgrant connect` is not built yet")
