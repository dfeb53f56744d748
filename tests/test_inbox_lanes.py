"""How the inbox's lanes take their events: together when they come close, in one lane on
SQLite, without stepping aside inside a batch; and how SQLite's inbox file is written without a
lock of ours."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.clock import SystemClock
from bot.foreground import Foreground
from bot.inbox import Inbox, Stored, _Lane
from bot.store.db import Database
from bot.store.migrate import upgrade
from bot.store.models import InboxEvent
from bot.store.raw import MARK_CHUNK
from tests.harness import wait_until


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path}/bot.db")
    upgrade(db)
    yield db
    db.dispose()


def reply_body(n: int, channel: str = "C1") -> dict[str, Any]:
    return {
        "team_id": "T1",
        "event_id": f"Ev{n}",
        "event": {
            "type": "message",
            "channel": channel,
            "user": "U1",
            "text": f"Reply {n}",
            "ts": f"1700000100.{n:06d}",
            "thread_ts": "1700000000.000001",
        },
    }


class Batches:
    """A handler and an Engine.batch stand-in that note which events each batch handled."""

    def __init__(self, db: Database | None = None) -> None:
        self.db = db  # its batches run in a transaction of db's (as PostgreSQL's lanes need)
        self.batches: list[list[str]] = []
        self._current: list[str] | None = None
        self.handled = 0

    @contextmanager
    def batch(self) -> Iterator[Any]:
        self._current = []
        if self.db is None:
            yield None
        else:
            with self.db.session() as s:
                yield s
        self.batches.append(self._current)
        self._current = None

    def handle(self, _team_id: str, event: dict[str, Any]) -> None:
        if self._current is not None:
            self._current.append(str(event["ts"]))
        self.handled += 1


def test_a_lane_takes_the_events_that_follow_its_first_within_the_gather_together() -> None:
    taken: list[list[int]] = []
    lane = _Lane("test-lane", lambda events: taken.append([e.row_id for e in events]), 30.0)
    lane.put(Stored(1, "C1", {}))
    wait_until(lambda: lane._queue.empty())  # the lane holds the first: without a gather it
    lane.put(Stored(2, "C1", {}))  # would have gone alone
    lane.put(Stored(3, "C2", {}))
    lane.stop()  # ends the gather; the lane handles what it holds
    assert taken == [[1, 2, 3]]


def test_a_lane_stopped_while_gathering_handles_what_it_holds() -> None:
    taken: list[list[int]] = []
    lane = _Lane("test-lane", lambda events: taken.append([e.row_id for e in events]), 30.0)
    lane.put(Stored(1, "C1", {}))
    lane.put(Stored(2, "C1", {}))
    began = time.monotonic()
    lane.stop()  # does not wait out the 30 s gather
    assert time.monotonic() - began < 10
    assert taken == [[1, 2]]


def test_a_lane_meeting_a_database_outage_says_so_in_a_warning_and_when_it_is_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Each batch a lane could not write logged an ERROR with the driver's error: every other
    # part of the bot says a warning as an outage begins and another as it ends.
    down = OperationalError("INSERT", {}, Exception("connection refused"))
    results: list[Exception | None] = [down, down, None]

    def handle(events: list[Stored]) -> None:
        result = results.pop(0)
        if result is not None:
            raise result

    caplog.set_level(logging.INFO, logger="bot.inbox")
    lane = _Lane("test-lane", handle, 0.0)
    for n in range(3):
        lane.put(Stored(n, "C1", {}))
        wait_until(lambda n=n: len(results) == 2 - n)
    lane.stop()
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "bot.inbox"]
    assert [level for level, _ in said] == ["WARNING", "WARNING"], said
    assert "cannot reach the database" in said[0][1] and "is back" in said[1][1]


def test_one_lane_handles_every_channel_so_their_replies_share_a_batch(database_url: str) -> None:
    """On SQLite, lanes only took turns at the file's one write lock. On PostgreSQL each batch
    costs five statements besides its events': four lanes made four batches of these eight."""
    db = Database(database_url)
    upgrade(db)
    batches = Batches(db)
    inbox = Inbox(db, SystemClock(), batches.handle, batch=batches.batch, gather=0.5)
    try:
        for n in range(8):
            stored = inbox.accept(reply_body(n, channel=f"C{n}"))
            assert stored is not None
            inbox.submit(stored)
    finally:
        inbox.stop()  # ends the lane's gather: it handles what it holds, then stops
    try:
        assert len(batches.batches) == 1 and len(batches.batches[0]) == 8
        with db.inbox_session() as s:
            noted = s.scalars(select(InboxEvent.processed_at)).all()
        assert len(noted) == 8 and None not in noted  # each noted handled
    finally:
        db.dispose()


class Calls(Foreground):
    """A foreground that notes who asked it to wait, and never waits."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def step_aside(self) -> None:
        self.calls.append((threading.current_thread().name, "step_aside"))

    def after_answer(self) -> None:
        self.calls.append((threading.current_thread().name, "after_answer"))


def test_a_batch_steps_aside_once_before_it_starts_and_not_between_its_events(
    sqlite_db: Database,
) -> None:
    batches, foreground = Batches(), Calls()
    inbox = Inbox(
        sqlite_db,
        SystemClock(),
        batches.handle,
        foreground=foreground,
        batch=batches.batch,
        gather=0.5,
    )
    try:
        for n in range(6):
            stored = inbox.accept(reply_body(n))
            assert stored is not None
            inbox.submit(stored)
    finally:
        inbox.stop()  # ends the lane's gather: it handles what it holds, then stops
    assert [len(b) for b in batches.batches] == [6]
    # The marks' thread steps aside before each flush; the lane only before its batch.
    assert [call for name, call in foreground.calls if name == "inbox0"] == ["after_answer"]


def test_an_event_is_stored_while_another_thread_holds_the_inbox_engines_lock(
    sqlite_db: Database,
) -> None:
    """Acks take no lock of ours: one that did waited, under load, for a holder that was itself
    waiting for the GIL."""
    inbox = Inbox(sqlite_db, SystemClock(), lambda *_: None)
    assert inbox.accept(reply_body(0)) is not None  # the inbox file is made on first use
    holder = sqlite_db.inbox_engine.raw_connection()
    holder.dbapi_connection.begin_write()  # type: ignore[union-attr]
    stored: list[Stored | None] = []
    try:
        acking = threading.Thread(target=lambda: stored.append(inbox.accept(reply_body(1))))
        acking.start()
        acking.join(timeout=5)
        assert not acking.is_alive(), "the ack waited for the lock"
    finally:
        holder.dbapi_connection.release_write()  # type: ignore[union-attr]
        holder.close()
        inbox.stop()
    assert stored and stored[0] is not None


def test_events_stored_from_many_threads_each_get_their_own_row(sqlite_db: Database) -> None:
    inbox = Inbox(sqlite_db, SystemClock(), lambda *_: None)
    ids: dict[int, int] = {}
    lock = threading.Lock()

    def store(first: int) -> None:
        for n in range(first, first + 50):
            stored = inbox.accept(reply_body(n))
            assert stored is not None
            with lock:
                ids[n] = stored.row_id

    threads = [threading.Thread(target=store, args=(i * 50,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    inbox.stop()
    with sqlite_db.inbox_session() as s:
        rows = dict(s.execute(select(InboxEvent.id, InboxEvent.event_id)).all())
    assert len(rows) == 400
    assert all(rows[row_id] == f"Ev{n}" for n, row_id in ids.items())


def test_handled_events_are_noted_each_with_its_own_time(sqlite_db: Database) -> None:
    inbox = Inbox(sqlite_db, SystemClock(), lambda *_: None)
    count = MARK_CHUNK + 50  # more than one statement's worth
    row_ids = []
    for n in range(count):
        stored = inbox.accept(reply_body(n))
        assert stored is not None
        row_ids.append(stored.row_id)
    inbox.stop()
    start = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
    marks = [(row_id, start + timedelta(milliseconds=i)) for i, row_id in enumerate(row_ids)]
    unmarked = marks.pop()
    sqlite_db.mark_events_sqlite(marks)
    with sqlite_db.inbox_session() as s:
        noted = dict(s.execute(select(InboxEvent.id, InboxEvent.processed_at)).all())
    assert noted == {**dict(marks), unmarked[0]: None}
