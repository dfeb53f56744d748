"""The sessions bench starts some sessions through the engine and copies the rest: the copies
must be the rows the engine would have written for their own channels."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

from bench.sessions import create_sessions
from bench.signing import FACILITATOR, PRESENTER, SECRET, TEAM, TOKEN
from bench.workspace import channel_name
from bot.engine.core import Actor
from bot.runtime import Runtime
from bot.settings import Settings
from bot.slack_standin import SlackStandin
from bot.store.db import Database
from bot.store.migrate import upgrade
from bot.store.models import OutboxMessage, ProtocolSession, StepRun


def _rows(db: Database, table: Any) -> list[dict[str, Any]]:
    with db.session() as s:
        return [dict(row) for row in s.execute(select(table).order_by(table.c.id)).mappings()]


def test_copied_sessions_are_the_engines_rows_for_their_own_channels(
    database_url: str, slack_api: SlackStandin
) -> None:
    db = Database(database_url)
    upgrade(db)
    create_sessions(database_url, slack_api.url, 7, 86_400, engine_starts=3)

    sessions = _rows(
        db, ProtocolSession.__table__
    )  # by id: the engine's (in any order), then copies
    assert {row["channel_id"] for row in sessions[:3]} == {channel_name(i) for i in range(3)}
    assert [row["channel_id"] for row in sessions[3:]] == [channel_name(i) for i in range(3, 7)]
    steps = {row["session_id"]: row for row in _rows(db, StepRun.__table__)}
    posts: dict[str, list[dict[str, Any]]] = {}
    for row in _rows(db, OutboxMessage.__table__):
        posts.setdefault(row["channel_id"], []).append(row)

    def same(row: dict[str, Any], *, but: set[str]) -> dict[str, Any]:
        return {key: value for key, value in row.items() if key not in but}

    for i in range(3, 7):
        copy, made = sessions[i], sessions[i % 3]
        assert same(copy, but={"id", "channel_id"}) == same(made, but={"id", "channel_id"})
        assert same(steps[copy["id"]], but={"id", "session_id"}) == same(
            steps[made["id"]], but={"id", "session_id"}
        )
        channel = channel_name(i)
        mine, theirs = posts[channel], posts[made["channel_id"]]
        assert [p["ref"] for p in mine] == [f"header:{copy['id']}", f"step:{copy['id']}:1"]
        assert [p["ref"] for p in theirs] == [f"header:{made['id']}", f"step:{made['id']}:1"]
        for post, template in zip(mine, theirs, strict=True):
            assert post["payload"]["channel"] == channel
            assert post["payload"]["blocks"] == template["payload"]["blocks"]
            assert post["status"] == "sent"

    if db.is_postgres:  # analyzed, as after a restore: the planner knows the tables' sizes
        with db.engine.connect() as conn:
            tuples = conn.execute(
                text("SELECT reltuples FROM pg_class WHERE relname = 'outbox'")
            ).scalar()
        assert tuples is not None and tuples >= 14

    # A session started after the copies gets an id of its own (PostgreSQL's sequence moved on).
    settings = Settings(
        slack_bot_token=TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=slack_api.url,
        database_url=database_url,
    )
    runtime = Runtime(settings, with_scheduler=False)
    runtime.engine.start(
        Actor(TEAM, FACILITATOR, "C_AFTER"), protocol_id="atlas", presenter=PRESENTER
    )
    runtime.db.dispose()
    ids = [row["id"] for row in _rows(db, ProtocolSession.__table__)]
    assert len(ids) == len(set(ids)) == 8
    db.dispose()
