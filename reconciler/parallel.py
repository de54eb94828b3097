"""How many cores this process may use: long `git log` walks are split over two processes.

(Grant files were once checked in a forked second process too. On a two-core machine the two
halves slowed each other down and the results had to be pickled back, and once a grant file
cost 25 us instead of 65 us one process was as fast, so that went.)
"""

from __future__ import annotations

import os


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
