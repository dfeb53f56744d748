"""Requests Slack is waiting on go first.

Background work (handling stored events, sending posts) shares the interpreter with the threads
that answer Slack, and Python runs one thread at a time. While an answer is being made, the
background steps aside before starting its next piece of work, for a few milliseconds at most so
that a steady stream of requests cannot starve it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

PATIENCE = 0.002  # seconds a piece of background work waits for answers in flight, at most


class Foreground:
    def __init__(self, patience: float = PATIENCE) -> None:
        self.patience = patience
        self._serving = 0
        self._idle = threading.Condition()

    def begin(self) -> None:
        with self._idle:
            self._serving += 1

    def end(self) -> None:
        with self._idle:
            self._serving -= 1
            if not self._serving:
                self._idle.notify_all()

    def answer(self, body: Iterable[bytes]) -> Iterable[bytes]:
        """A WSGI response body that counts as in flight until the server has sent it (the
        server calls close() after the last write). Call begin() before making it."""
        return _Answer(body, self.end)

    def step_aside(self) -> None:
        """Wait until no answer is in flight, or `patience` has passed."""
        if not self._serving:  # a stale read only costs one wait or one turn
            return
        with self._idle:
            self._idle.wait_for(lambda: not self._serving, timeout=self.patience)


class _Answer:
    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self._body, self._done = body, done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            done, self._done = self._done, _nothing
            done()


def _nothing() -> None:
    pass
