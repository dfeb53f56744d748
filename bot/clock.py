"""The one clock: every "now" in the bot comes from here, so tests can hold time still."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Aware UTC from a stored value: SQLite hands back naive datetimes that we wrote as UTC.

    Every datetime the store reads or writes comes through here. `combine` rather than
    `replace(tzinfo=...)`, which parses its keywords in Python 3.11 at six times the cost.
    """
    tz = value.tzinfo
    if tz is UTC:
        return value
    if tz is None:
        return datetime.combine(value.date(), value.time(), UTC)
    return value.astimezone(UTC)


class Every:
    """A piece of work (`tick`) done every `every` seconds on a thread of its own, from start()
    until stop(): the first time at once when `at_once`, else after the first wait; `last`
    once more as it stops."""

    def __init__(self, name: str, every: float, *, at_once: bool = False) -> None:
        self.name, self.every, self.at_once = name, every, at_once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        raise NotImplementedError

    def last(self) -> None:
        """What is done as it stops (nothing unless a kind says)."""

    def start(self) -> Every:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        if self.at_once:
            self.tick()
        while not self._stop.wait(self.every):
            self.tick()
        self.last()
