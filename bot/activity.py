"""What this process did, for the operator's log: counts and lateness, never ids of people or
what they wrote.

Every REPORT_SECONDS, if anything happened, one INFO line says how many sessions started and
ended, how many steps closed on their timers and how late, how many replies were recorded, and
how many Slack calls went through or failed. Session starts and ends are also logged one by one,
by number. An operator can then tell from the log alone whether the bot is doing its work and
keeping time (`did step 3 go out on time?`), without a line for every reply.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from bot.clock import Every

log = logging.getLogger(__name__)

REPORT_SECONDS = 600.0

# What is counted, in the order the line gives it: what one is called, and what many are.
STARTED = ("session started", "sessions started")
ENDED = ("session ended", "sessions ended")
CLOSED = ("step closed on its timer", "steps closed on their timers")
REPLIES = ("reply recorded", "replies recorded")
SENT = ("Slack call made", "Slack calls made")
FAILED = ("Slack call failed", "Slack calls failed")
_ORDER = (STARTED, ENDED, CLOSED, REPLIES, SENT, FAILED)
Counted = tuple[str, str]


class Activity:
    """Counts since the last report, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[Counted] = Counter()
        self._late_total = 0.0
        self._late_most = 0.0

    def count(self, what: Counted, n: int = 1) -> None:
        if n:
            with self._lock:
                self._counts[what] += n

    def closed(self, late_seconds: float) -> None:
        """A step closed by its timer, `late_seconds` after its time."""
        late = max(0.0, late_seconds)
        with self._lock:
            self._counts[CLOSED] += 1
            self._late_total += late
            self._late_most = max(self._late_most, late)

    def report(self, seconds: float) -> str | None:
        """The line for the last `seconds`, and the counts start again; None when nothing
        happened."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
            total, most = self._late_total, self._late_most
            self._late_total = self._late_most = 0.0
        if not counts:
            return None
        parts = []
        for what in _ORDER:
            if not counts[what]:
                continue
            n = counts[what]
            parts.append(f"{n} {what[0] if n == 1 else what[1]}")
            if what == CLOSED:
                mean = total / n
                parts[-1] += f" (late by {mean:.2f} s on average, {most:.2f} s at most)"
        stretch = f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"
        return f"in the last {stretch}: " + ", ".join(parts)


ACTIVITY = Activity()


class Reporter(Every):
    """Logs ACTIVITY's line every `seconds` on a thread of its own, and once more on stop."""

    def __init__(self, activity: Activity = ACTIVITY, seconds: float = REPORT_SECONDS) -> None:
        super().__init__("activity", seconds)
        self.activity = activity
        self._since = time.monotonic()

    def start(self) -> Reporter:
        self._since = time.monotonic()
        super().start()
        return self

    def tick(self) -> None:
        now = time.monotonic()
        line = self.activity.report(now - self._since)
        if line is not None:
            log.info("%s", line)
        self._since = now

    def last(self) -> None:
        self.tick()  # what the last stretch did, before the process stops
