"""The clock's read of every deadline (Engine.due_work, every couple of seconds) is a read: it
neither waits behind a write nor holds one up, and hands back what the rows say."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta

from bot.engine import prep
from bot.engine.core import Engine
from bot.store.models import ProtocolSession
from tests.test_engine import WEDNESDAY, actor, start


def test_the_deadlines_read_while_another_thread_holds_a_write(engine: Engine) -> None:
    running = start(engine)
    start(engine, by=actor(channel="C_LATER"), start_at=WEDNESDAY + timedelta(days=2))
    writing, done = threading.Event(), threading.Event()

    def hold_a_write() -> None:
        with engine.db.session() as s:
            row = s.get(ProtocolSession, running.id)
            assert row is not None
            row.statement = "held"
            s.flush()  # on SQLite the write lock is taken; on PostgreSQL the row's lock
            writing.set()
            done.wait(30)

    with ThreadPoolExecutor(3) as pool:
        writer = pool.submit(hold_a_write)
        assert writing.wait(10)
        try:
            due = pool.submit(engine.due_work).result(timeout=10)
            preps = pool.submit(prep.due_work, engine).result(timeout=10)
        finally:
            done.set()
        writer.result()

    (closes,) = due.closes
    assert closes[:2] == (running.id, 1)
    assert closes[2] == running.step_closes_at and closes[2].tzinfo is UTC
    (session_id, at), *_ = due.starts
    assert at.tzinfo is UTC and session_id != running.id
    assert all(row[0] == session_id for row in preps)
