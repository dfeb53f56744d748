"""Before a benchmark: wait, a bounded time, for the cores to go quiet.

The load average trails by a minute, so it cannot tell a machine still busy (a database server
vacuuming what the last benchmark wrote, a process being torn down) from one that was busy a
moment ago. /proc/stat can: each second's busy share of every core.
"""

from __future__ import annotations

import time
from pathlib import Path

STAT = Path("/proc/stat")


def _ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of every core since boot; None where /proc/stat is not."""
    try:
        fields = STAT.read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return total - idle, total


def busy_share(seconds: float = 1.0) -> float | None:
    """The share of every core's time that was busy over the next `seconds`."""
    before = _ticks()
    time.sleep(seconds)
    after = _ticks()
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def settle(threshold: float = 0.2, most: float = 15.0) -> float | None:
    """Wait until a second passes with the cores under `threshold` busy, for at most `most`
    seconds; returns the last second's busy share (None where it cannot be read)."""
    deadline = time.monotonic() + most
    share = busy_share()
    while share is not None and share >= threshold and time.monotonic() < deadline:
        share = busy_share()
    return share
