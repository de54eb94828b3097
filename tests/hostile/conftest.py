"""Hostile input: example counts, a deadline per example and a watchdog per test.

`JITGRANT_HOSTILE_SCALE=20 pytest tests/hostile` runs twenty times as many random examples (a
soak); the default is a fixed (derandomized) set sized to run in well under a minute.
"""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings

from tests.cli.conftest import namespace  # noqa: F401 - a namespace on the machine's PostgreSQL
from tests.integration.conftest import my, world  # noqa: F401 - a target's world (pg, mysql)

SCALE = float(os.environ.get("JITGRANT_HOSTILE_SCALE", "1"))
# A test still running after this long is hung (in C code, where no deadline can interrupt
# it): dump every thread's stack and end the session rather than wait for CI's timeout.
WATCHDOG_SECONDS = 120 * max(1.0, SCALE)

settings.register_profile(
    "hostile", derandomize=SCALE == 1, database=None, deadline=timedelta(seconds=5),
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture])


def examples(count: int) -> settings:
    """The hostile profile with `count` examples (times the scale)."""
    return settings(settings.get_profile("hostile"), max_examples=max(1, int(count * SCALE)))


@pytest.fixture(autouse=True)
def _watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
