"""Replies that queue up in a lane are recorded together, and one that can't be placed yet
holds up none of the others."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from bot.store.models import InboxEvent, ProtocolSession, StepRun
from tests.harness import TEACHERS, Bot, statements


def count_recording_commits(bot: Bot) -> list[int]:
    """The number of replies each committed transaction recorded, in commit order. SQLite's
    statements are seen by the driver's trace (a reply is recorded by the driver alone there),
    PostgreSQL's by SQLAlchemy."""
    per_commit: list[int] = []
    pending: Counter[int] = Counter()

    def executed(dbapi: Any, statement: str) -> None:
        # On PostgreSQL the reply's insert comes in a WITH, with its reaction's.
        if "INSERT INTO CONTRIBUTIONS" in statement.upper():
            pending[id(dbapi)] += 1

    if bot.db.is_postgres:

        @event.listens_for(bot.db.engine, "after_cursor_execute")
        def _executed(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            executed(conn.connection.dbapi_connection, statement)

    else:

        @event.listens_for(bot.db.engine, "checkout")
        def _traced(dbapi: Any, *_: Any) -> None:
            dbapi.set_trace_callback(lambda statement: executed(dbapi, statement))

    @event.listens_for(bot.db.engine, "commit")
    def _committed(conn: Any) -> None:
        if count := pending.pop(id(conn.connection.dbapi_connection), 0):
            per_commit.append(count)

    @event.listens_for(bot.db.engine, "rollback")
    def _rolled_back(conn: Any) -> None:
        pending.pop(id(conn.connection.dbapi_connection), None)

    return per_commit


def tag_reactions(bot: Bot) -> Counter[str]:
    return Counter(
        str(call.params.get("timestamp")) for call in bot.standin.calls_to("reactions.add")
    )


def test_replies_queued_in_a_lane_are_recorded_in_one_transaction(bot: Bot) -> None:
    thread = bot.open_step()
    per_commit = count_recording_commits(bot)
    sent: list[str] = []
    # The lane waits on the lock with the first reply in hand; the rest queue up behind it.
    with bot.sessions_locked():
        for i in range(10):
            sent.append(bot.reply(TEACHERS[i % 3], f"Row {i} repeats the same error.", thread))
    bot.wait_until(lambda: bot.recorded() == sent)
    # The first reply was taken alone before the lane was held up; the nine behind it together.
    assert sum(per_commit) == 10
    assert len(per_commit) <= 2, per_commit
    bot.settle()
    assert tag_reactions(bot) == Counter(sent)


def test_a_batch_runs_one_statement_for_its_steps_its_marks_and_each_reply(bot: Bot) -> None:
    """PostgreSQL, where each statement is work for the clock and the server: a lane's batch
    reads its replies' open steps in one query (Replies.look_ahead), where each reply took one,
    notes the batch handled with one UPDATE, where an executemany was one a row, and writes
    each reply with its tag reaction's outbox row in one statement, where it took two. (SQLite
    looks each step up on its own, which cost no more there, and notes handled events from a
    thread of their own: tests/test_inbox_lanes.py.)"""
    if not bot.db.is_postgres:
        pytest.skip("SQLite runs these apart from the lane's batch")
    thread = bot.open_step()
    traced = statements(bot.db)
    sent: list[str] = []
    with bot.sessions_locked():
        for i in range(10):
            sent.append(bot.reply(TEACHERS[i % 3], f"Row {i} drops the negative sign.", thread))
    bot.wait_until(lambda: bot.recorded() == sent)
    bot.settle()
    assert tag_reactions(bot) == Counter(sent)

    def unhandled() -> int:
        with bot.db.inbox_session() as s:
            return len(
                s.scalars(select(InboxEvent.id).where(InboxEvent.processed_at.is_(None))).all()
            )

    bot.wait_until(lambda: unhandled() == 0)
    lookups = [sql for sql in traced if "session_steps.index AS step_index" in sql]
    marks = [sql for sql in traced if sql.lstrip().startswith("UPDATE inbox SET processed_at")]
    # The first reply alone, before the lane was held up; the nine behind it together.
    assert 1 <= len(lookups) <= 2, lookups
    assert 1 <= len(marks) <= 2, marks
    writes = [sql for sql in traced if re.search(r"INSERT INTO (contributions|outbox)\b", sql)]
    assert len(writes) == 10, writes
    assert all("INSERT INTO outbox" in sql for sql in writes)


def test_a_reply_that_cannot_be_placed_yet_leaves_the_rest_of_its_batch_recorded(
    bot: Bot,
) -> None:
    thread = bot.open_step()
    # No sweep to fall back on: what the lane leaves unhandled stays so.
    assert bot.runtime.scheduler is not None
    bot.runtime.scheduler.every_tick.remove(bot.runtime.inbox.sweep)
    # A step message of this channel whose ts the bot has not learned yet: a reply in an unknown
    # thread may belong to it, so it is kept for another look rather than recorded or dropped.
    with bot.db.session() as s:
        session_id = s.scalars(select(ProtocolSession.id)).one()
        now = datetime.now(UTC)
        s.add(
            StepRun(
                session_id=session_id,
                index=99,
                step_id="unconfirmed",
                started_at=now,
                closes_at=now + timedelta(hours=1),
                message_ts=None,
            )
        )
    sent: list[str] = []
    with bot.sessions_locked():
        for i in range(3):
            sent.append(bot.reply(TEACHERS[0], f"Question {i} skips a step.", thread))
        unplaced = bot.reply(TEACHERS[1], "Which thread is this?", f"{time.time() - 5:.6f}")
        for i in range(3, 6):
            sent.append(bot.reply(TEACHERS[2], f"Question {i} has no units.", thread))
    bot.wait_until(lambda: bot.recorded() == sent)
    bot.settle()
    # Each recorded reply was tagged once: the batch that failed sent nothing.
    assert tag_reactions(bot) == Counter(sent)

    def handled() -> dict[str, bool]:
        with bot.db.inbox_session() as s:
            rows = s.scalars(select(InboxEvent)).all()
            return {r.payload["event"]["ts"]: r.processed_at is not None for r in rows}

    bot.wait_until(lambda: all(handled()[ts] for ts in sent))
    assert handled()[unplaced] is False  # still there for the sweep's next look
