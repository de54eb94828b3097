"""Placeholder: filled in by the requester-side work (issue 5)."""

from __future__ import annotations

import click

from .clicommon import handled
from .errors import UserError


@click.command("request")
@handled
def request_command() -> int:
    """Not built yet."""
    raise UserError("`jitgrant request` is not built yet")


@click.command("extend")
@handled
def extend_command() -> int:
    """Not built yet."""
    raise UserError("`jitgrant extend` is not built yet")


@click.command("revoke")
@handled
def revoke_command() -> int:
    """Not built yet."""
    raise UserError("`jitgrant revoke` is not built yet")
