"""Statements run by the driver alone (SQLite's, or a psycopg RawCursor) store and read back what
SQLAlchemy would: the same rows, the same types, in the same transaction; and on PostgreSQL they
fail as SQLAlchemy's statements fail, and are seen by its cursor events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bot import slack
from bot.engine.core import Engine
from bot.engine.replies import Replies
from bot.logs import unreachable
from bot.store import raw
from bot.store.db import Database
from bot.store.migrate import upgrade
from bot.store.models import Contribution, OutboxMessage
from tests.conftest import cut_connections
from tests.harness import sqlite_statements, statements
from tests.test_engine import CHANNEL, TEACHER, TEAM, start

# Every column but those an insert leaves empty (the id is the database's).
COLUMNS = [
    column.name
    for column in OutboxMessage.__table__.columns
    if column.name not in ("id", "sent_at", "result_ts", "error", "failing_since")
]
INSERT = raw.Statement(insert(OutboxMessage).returning(OutboxMessage.id), COLUMNS)
INSERT_QUIETLY = raw.Statement(insert(OutboxMessage), COLUMNS)
READ = raw.Statement(
    select(
        OutboxMessage.id,
        OutboxMessage.payload,
        OutboxMessage.in_flight_at,
        OutboxMessage.not_before,
        OutboxMessage.sent_at,
        OutboxMessage.attempts,
    ).where(OutboxMessage.channel_id == bindparam("channel"))
)
MARK_SENT = raw.Statement(
    update(OutboxMessage)
    .where(OutboxMessage.id == bindparam("b_id"))
    .values(status="sent", sent_at=bindparam("b_at"), result_ts=bindparam("b_ts"))
)
# Half past five in the evening in Kolkata is noon in UTC.
KOLKATA = timezone(timedelta(hours=5, minutes=30))
AT = datetime(2026, 3, 4, 17, 30, 15, 123456, tzinfo=KOLKATA)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    upgrade(database)
    try:
        yield database
    finally:
        database.dispose()


def values(channel: str, **changes: object) -> dict[str, object]:
    return {
        "team_id": "T1",
        "channel_id": channel,
        "method": "reactions.add",
        "payload": {"name": "eyes", "text": "Ünïcode, “quotes” and 🙂", "nested": [1, None]},
        "ref": None,
        "thread_ref": None,
        "status": "pending",
        "attempts": 1,
        "in_flight_at": AT,
        "not_before": AT,
        "created_at": AT,
        **changes,
    }


def test_a_row_written_by_the_driver_reads_back_through_the_orm_as_written(db: Database) -> None:
    with db.session() as s:
        inserted = INSERT.first(s, values("C1"))
        assert inserted is not None
        row_id = inserted[0]
    with db.session() as s:
        row = s.get(OutboxMessage, row_id)
        assert row is not None
        assert row.payload == values("C1")["payload"]
        assert row.in_flight_at == AT and row.not_before == AT
        assert row.in_flight_at.utcoffset() == timedelta(0)
        assert row.in_flight_at.replace(tzinfo=None) == datetime(2026, 3, 4, 12, 0, 15, 123456)
        assert (row.ref, row.thread_ref, row.sent_at, row.attempts) == (None, None, None, 1)


def test_a_read_by_the_driver_hands_back_what_sqlalchemy_would(db: Database) -> None:
    sent = datetime(2026, 3, 4, 12, 1, tzinfo=UTC)
    with db.session() as s:
        s.add(OutboxMessage(**values("C2"), sent_at=sent))
        s.add(OutboxMessage(**values("C2", in_flight_at=None, payload={})))
    with db.session() as s:
        core = [tuple(r) for r in s.connection().execute(READ.statement, {"channel": "C2"})]
        first = READ.first(s, {"channel": "C2"})
        every = READ.all(s, {"channel": "C2"})
    assert first == core[0]
    assert every == core and len(every) == 2
    assert first is not None
    _id, payload, in_flight, not_before, sent_at, attempts = first
    assert payload == values("C2")["payload"]
    assert (in_flight, not_before, sent_at, attempts) == (AT, AT, sent, 1)
    assert isinstance(sent_at, datetime) and sent_at.tzinfo is not None
    with db.session() as s:
        assert READ.first(s, {"channel": "C-none"}) is None


def test_the_driver_writes_in_the_sessions_transaction(db: Database) -> None:
    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), db.session() as s:
        INSERT_QUIETLY.execute(s, values("C3"))
        # The transaction's later reads see it, through SQLAlchemy as through the driver.
        assert READ.first(s, {"channel": "C3"}) is not None
        assert s.scalars(select(OutboxMessage.id).where(OutboxMessage.channel_id == "C3")).all()
        raise Abandon
    with db.session() as s:
        assert READ.first(s, {"channel": "C3"}) is None  # rolled back with it
        INSERT_QUIETLY.execute(s, values("C3"))
    with db.session() as s:
        assert (
            len(s.scalars(select(OutboxMessage).where(OutboxMessage.channel_id == "C3")).all()) == 1
        )


def test_an_update_for_many_rows_sets_each_its_own_values_and_the_statements_own(
    db: Database,
) -> None:
    with db.session() as s:
        ids = [INSERT.first(s, values("C5")) for _ in range(3)]
    first, second, untouched = (row[0] for row in ids if row is not None)
    with db.session() as s:
        MARK_SENT.executemany(
            s,
            [
                {"b_id": first, "b_at": AT, "b_ts": "1.000100"},
                {"b_id": second, "b_at": AT + timedelta(seconds=1), "b_ts": None},
            ],
        )
    with db.session() as s:
        rows = {
            row.id: (row.status, row.sent_at, row.result_ts)
            for row in s.scalars(select(OutboxMessage).where(OutboxMessage.channel_id == "C5"))
        }
    assert rows == {
        first: ("sent", AT, "1.000100"),
        second: ("sent", AT + timedelta(seconds=1), None),
        untouched: ("pending", None, None),
    }


def test_an_insert_must_be_given_the_columns_core_would_fill_from_their_defaults() -> None:
    # Core fills status and attempts from the model's defaults; the driver would store NULLs.
    given = [name for name in COLUMNS if name not in ("status", "attempts")]
    with pytest.raises(ValueError, match="status, attempts"):
        raw.Statement(insert(OutboxMessage), given)


def test_the_driver_follows_a_session_into_its_next_transaction(db: Database) -> None:
    """The connection is kept for the rest of a transaction; one begun after a rollback (on
    another pooled connection, perhaps) is found again."""
    with Session(db.engine) as s:
        INSERT_QUIETLY.execute(s, values("C4", ref="rolled back"))
        s.rollback()
        INSERT_QUIETLY.execute(s, values("C4", ref="rolled back too"))
        assert len(READ.all(s, {"channel": "C4"})) == 1
        s.rollback()
        INSERT_QUIETLY.execute(s, values("C4", ref="kept"))
        s.commit()
    with db.session() as s:
        refs = s.scalars(select(OutboxMessage.ref).where(OutboxMessage.channel_id == "C4")).all()
    assert refs == ["kept"]


def test_values_of_a_datetime_subclass_are_stored_as_datetimes(db: Database) -> None:
    """freezegun's datetimes, for one: not mistaken for values taken as they are."""

    class Later(datetime):
        pass

    at = Later(2026, 3, 4, 12, 0, 15, 123456, tzinfo=UTC)
    with db.session() as s:
        INSERT_QUIETLY.execute(s, values("C5", not_before=at))
    with db.session() as s:
        stored = s.scalars(select(OutboxMessage).where(OutboxMessage.channel_id == "C5")).one()
        assert stored.not_before == at


def test_a_reply_is_recorded_in_three_statements_and_its_second_delivery_in_two(
    engine: Engine,
) -> None:
    """Under load each statement a lane runs costs it a wait for the GIL: a reply finds its step,
    inserts itself (a second delivery inserts nothing) and its tag reaction, and reads nothing
    else first."""
    if engine.db.is_postgres:
        pytest.skip("traces SQLite's statements")
    session = start(engine, step_seconds=3600)
    thread = "2000.000100"
    with engine.db.session() as s:
        engine.on_posted(s, [(f"step:{session.id}:1", thread)])
    traced = sqlite_statements(engine.db)
    reply = {
        "type": "message",
        "channel": CHANNEL,
        "user": TEACHER,
        "text": "I see a table with four rows.",
        "ts": "2000.000200",
        "thread_ts": thread,
    }

    def statements() -> list[str]:
        done = [" ".join(sql.split()[:3]) for sql in traced if sql.split()[0] != "COMMIT"]
        traced.clear()
        return done

    Replies(engine).handle(TEAM, reply)
    assert statements() == [
        "BEGIN IMMEDIATE",
        "SELECT sessions.id, sessions.protocol_id,",
        "INSERT INTO contributions",
        "INSERT INTO outbox",
    ]
    Replies(engine).handle(TEAM, dict(reply))  # Slack delivers it again
    assert statements() == [
        "BEGIN IMMEDIATE",
        "SELECT sessions.id, sessions.protocol_id,",
        "INSERT INTO contributions",
    ]
    with engine.db.session() as s:
        assert s.scalars(select(Contribution.ts)).all() == ["2000.000200"]
        reactions = select(OutboxMessage.id).where(OutboxMessage.method == "reactions.add")
        assert len(s.scalars(reactions).all()) == 1


def test_placeholder_marks_in_the_values_are_stored_as_given(db: Database) -> None:
    """The statement's text goes as it is, and the values apart from it: what a teacher typed
    that looks like a placeholder is not one."""
    typed = {"text": "50% of them; %s %(x)s $1 ? :name {rows}"}
    with db.session() as s:
        INSERT_QUIETLY.execute(s, values("C6", payload=typed, ref="%s"))
    with db.session() as s:
        read = READ.first(s, {"channel": "C6"})
        stored = s.scalars(select(OutboxMessage).where(OutboxMessage.channel_id == "C6")).one()
    assert read is not None and read[1] == typed
    assert (stored.payload, stored.ref) == (typed, "%s")


def test_a_statement_by_the_driver_is_seen_by_sqlalchemys_cursor_events(db: Database) -> None:
    seen: list[tuple[str, bool]] = []

    def before(_conn: object, _cursor: object, sql: str, *rest: Any) -> None:
        seen.append((" ".join(sql.split()[:3]), bool(rest[-1])))
        # Numbered: psycopg sends the text as it is, where it parsed it for %s placeholders.
        assert "$1" in sql and "%" not in sql
        rest[1].span = sql  # a tracer keeps its span on the context, for the event after

    def after(_conn: object, _cursor: object, sql: str, *rest: Any) -> None:
        assert rest[1].span == sql
        ended.append(sql)

    traced = statements(db)
    ended: list[str] = []
    if db.is_postgres:  # SQLite's driver is traced by the driver (statements() above)
        event.listen(db.engine, "before_cursor_execute", before)
        event.listen(db.engine, "after_cursor_execute", after)
    with db.session() as s:
        INSERT_QUIETLY.executemany(s, [values("C7"), values("C7")])
        assert len(READ.all(s, {"channel": "C7"})) == 2
    assert len([sql for sql in traced if sql.startswith("INSERT INTO outbox")]) == 2
    if db.is_postgres:
        assert seen == [("INSERT INTO outbox", True), ("SELECT outbox.id, outbox.payload,", False)]
        assert len(ended) == 2


def test_a_connection_cut_under_a_statement_is_an_outage_as_sqlalchemy_tells_it(
    db: Database, database_url: str
) -> None:
    """PostgreSQL restarted under a transaction: the loops tell an outage (one line, retried)
    by SQLAlchemy's OperationalError, and the dead connection must not go back to the pool."""
    if not db.is_postgres:
        pytest.skip("a server's connection")
    with db.session() as s:
        INSERT_QUIETLY.execute(s, values("C8"))
    with pytest.raises(OperationalError) as raised, db.session() as s:
        assert READ.first(s, {"channel": "C8"}) is not None
        assert cut_connections(database_url) >= 1
        READ.first(s, {"channel": "C8"})
    assert raised.value.connection_invalidated
    assert unreachable(raised.value) == "the database"
    with db.session() as s:  # a new connection
        assert len(READ.all(s, {"channel": "C8"})) == 1


def test_rows_gathered_go_in_at_the_end_in_order_or_at_a_flush_before_it(db: Database) -> None:
    now = datetime.now(UTC)

    def put(s: Session, ref: str) -> None:
        slack.enqueue(
            s, now=now, team_id="T1", channel="C9", method="chat.postMessage", payload={}, ref=ref
        )

    def refs(s: Session) -> list[str | None]:
        by_id = select(OutboxMessage.ref).where(OutboxMessage.channel_id == "C9")
        return list(s.scalars(by_id.order_by(OutboxMessage.id)))

    with db.session() as s:
        with s.no_autoflush, raw.gathering(s):
            put(s, "a")
            put(s, "b")
            assert refs(s) == []  # not in yet
            s.add(OutboxMessage(**values("C-other")))
            s.flush()  # the ORM's rows go in: the gathered ones before them
            assert refs(s) == ["a", "b"]
            put(s, "c")
        assert refs(s) == ["a", "b", "c"]
        put(s, "d")  # no longer gathered: the ORM's
        assert raw.gathered(s) is None
    with db.session() as s:
        assert refs(s) == ["a", "b", "c", "d"]

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), db.session() as s, raw.gathering(s):
        put(s, "e")
        raise Abandon
    with db.session() as s:
        assert refs(s) == ["a", "b", "c", "d"]
