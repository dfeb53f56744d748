"""Requests Slack is waiting on go first.

Background work (handling stored events, noting them handled) shares the interpreter with the
threads that answer Slack, and Python runs one thread at a time. While an answer is being made,
the background steps aside before starting its next piece of work, for a few milliseconds at most
so that a steady stream of requests cannot starve it.

Once an answer is written it still has to be read: by Slack, or on the way to it by whatever
shares this machine with us (a proxy in front of the server; on the benchmark's two cores, the
load generator). Work that starts the moment an answer is written takes the CPU from that reader:
on two cores, answering `/protocol status` right after its ack put the ack's 99th percentile at
1.5-2.0 times the bare app's in A/B runs, nearly all of it after the ack had been written; the
answer starting 2 ms later put it at 0.94-1.14x. So the work an answer sets going (the answer to
a read-only command, a lane's handling of the events just stored) first lets the last answer
settle for SETTLE, within the same patience, once for all the events it takes together. Other
background work only steps aside. The outbox's calls don't wait at all: under a steady stream of
requests a wait before each call (every tag reaction's) cost more CPU and latency than it saved,
since every answer that ended woke every worker waiting (see OutboxSender).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator

PATIENCE = 0.002  # seconds a piece of background work waits for answers in flight, at most
SETTLE = 0.002  # seconds after an answer is written before background work starts (within patience)


class Foreground:
    def __init__(
        self,
        patience: float = PATIENCE,
        settle: float = SETTLE,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.patience, self.settle = patience, settle
        self._monotonic, self._sleep = monotonic, sleep
        self._serving = 0
        self._written = float("-inf")  # when the last answer was written
        self._idle = threading.Condition()

    def begin(self) -> None:
        with self._idle:
            self._serving += 1

    def end(self) -> None:
        with self._idle:
            self._serving -= 1
            self._written = self._monotonic()
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

    def after_answer(self) -> None:
        """Step aside, and let the last answer written settle for `settle`: for work an answer
        has just set going. Both waits together last `patience` at most."""
        began = self._monotonic()
        self.step_aside()
        quiet = min(self._written + self.settle, began + self.patience) - self._monotonic()
        if quiet > 0:
            self._sleep(quiet)


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
