"""On SQLite the inbox has a file of its own, so storing an event never waits on the engine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from bot.slack_standin import SlackStandin
from bot.store.db import Database, inbox_url
from bot.store.models import InboxEvent
from tests.harness import CHANNEL, TEACHERS, TEAM, Bot


def test_inbox_url_sits_beside_a_sqlite_file() -> None:
    assert inbox_url("sqlite:////data/bot.db") == "sqlite:////data/bot.inbox.db"
    assert (
        inbox_url("sqlite:///rel/protocolbot.sqlite3") == "sqlite:///rel/protocolbot.inbox.sqlite3"
    )
    assert inbox_url("sqlite://") is None
    assert inbox_url("sqlite:///:memory:") is None
    assert inbox_url("postgresql+psycopg://u@h:5432/bot") is None


@pytest.fixture
def sqlite_bot(workspace: SlackStandin, tmp_path: Path) -> Iterator[Bot]:
    running = Bot(workspace, f"sqlite:///{tmp_path}/bot.sqlite3").start()
    yield running
    running.stop()


def test_a_reply_is_acknowledged_while_the_main_database_is_busy(sqlite_bot: Bot) -> None:
    bot = sqlite_bot
    thread = bot.open_step()
    with bot.sessions_locked():
        ts = bot.reply(TEACHERS[0], "The second column has no units.", thread)
        # The ack came back while the engine's database was still locked for writing.
        with bot.db.inbox_session() as s:
            assert s.scalar(select(func.count()).select_from(InboxEvent)) == 1
    bot.wait_until(lambda: bot.recorded() == [ts])
    with bot.db.engine.connect() as conn:  # the main file's old inbox table stays empty
        assert conn.execute(text("SELECT count(*) FROM inbox")).scalar() == 0
    # Written by the driver directly, the row reads back through the models as it was sent.
    bot.wait_until(lambda: _stored(bot).processed_at is not None)
    row = _stored(bot)
    assert row.payload["event"]["ts"] == ts and row.payload["team_id"] == TEAM
    assert row.payload["event"]["text"] == "The second column has no units."
    assert row.received_at.tzinfo is not None
    assert abs((row.received_at - datetime.now(UTC)).total_seconds()) < 60
    assert row.processed_at is not None and row.processed_at >= row.received_at


def test_events_left_in_the_main_database_are_moved_and_handled(
    workspace: SlackStandin, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/bot.sqlite3"
    bot = Bot(workspace, url).start()
    try:
        thread = bot.open_step()
    finally:
        bot.stop()
    ts = str(
        workspace.add_message(CHANNEL, TEACHERS[1], "O: a left-over reply", thread_ts=thread)["ts"]
    )
    event = {
        "type": "message",
        "channel": CHANNEL,
        "user": TEACHERS[1],
        "text": "O: a left-over reply",
        "ts": ts,
        "thread_ts": thread,
        "team": "T_TEAM",
    }
    # As a version that kept the inbox in the main file would have left it: stored, unhandled.
    db = Database(url)
    with db.session() as s:
        s.add(
            InboxEvent(
                team_id="T_TEAM",
                event_id="EvLEFT",
                payload={"event": event, "team_id": "T_TEAM", "enterprise_id": ""},
                received_at=datetime.now(UTC),
            )
        )
    db.dispose()
    again = Bot(workspace, url).start()
    try:
        again.wait_until(lambda: again.recorded() == [ts])
        with again.db.session() as s:
            assert s.scalar(select(func.count()).select_from(InboxEvent)) == 0
        with again.db.inbox_session() as s:
            assert s.scalars(select(InboxEvent.event_id)).all() == ["EvLEFT"]
    finally:
        again.stop()


def _stored(bot: Bot) -> InboxEvent:
    with bot.db.inbox_session() as s:
        row = s.scalars(select(InboxEvent)).one()
        s.expunge(row)
        return row
