"""The outbox in rounds: one transaction writes back what workers finished and claims what is due.

A round that cannot be written (here: a callback that fails for one channel's rows) must neither
hold up the other channels nor post anything twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, text, update
from sqlalchemy.orm import Session

from bot.slack import _DUE, _DUE_SKIPPING, Sent
from bot.slack_standin import SlackStandin
from bot.store.db import Database
from bot.store.models import OutboxMessage
from tests.harness import CHANNEL, Bot, statements, wait_until
from tests.test_outbox_faults import OTHER, _enqueue, _rows, _sender, db  # noqa: F401


def test_a_channel_whose_outcomes_cannot_be_written_holds_up_no_other(
    db: Database,  # noqa: F811
    workspace: SlackStandin,
) -> None:
    def on_sent(s: Session, sent: list[Sent]) -> None:
        if any(each.channel == OTHER for each in sent):
            raise RuntimeError("this channel's bookkeeping is broken")

    sender = _sender(db, workspace, on_sent=on_sent)
    _enqueue(db, OTHER, ["x"])
    _enqueue(db, CHANNEL, ["a", "b", "c"])
    try:
        sender.drain(3)
    finally:
        sender.stop()
    status = {row.payload["text"]: row.status for row in _rows(db)}
    assert status == {"x": "pending", "a": "sent", "b": "sent", "c": "sent"}
    texts = [call.params["text"] for call in workspace.calls_to("chat.postMessage")]
    # The row whose outcome is never written is looked for before each new try: posted once.
    assert sorted(texts) == ["a", "b", "c", "x"]


def test_the_senders_calls_do_not_wait_for_answers_in_flight(bot: Bot) -> None:
    """The lane whose batch enqueued a tag reaction has let the acks before it go first; the
    call then goes out at once. (Waiting before each call, every worker was woken by every ack
    that ended.)"""
    foreground = bot.runtime.foreground
    foreground.patience, foreground.settle = 30.0, 0.0
    foreground.begin()  # an answer in flight for the whole test
    try:
        _enqueue(bot.db, CHANNEL, ["posted while an ack is in flight"])
        bot.runtime.sender.wake()
        bot.wait_until(
            lambda: any(
                call.params.get("text") == "posted while an ack is in flight"
                for call in bot.standin.calls_to("chat.postMessage")
            ),
            timeout=10,  # a third of the patience a call would have waited
        )
    finally:
        foreground.end()


def test_a_round_writes_back_what_slack_took_in_one_statement(
    db: Database,  # noqa: F811
    workspace: SlackStandin,
) -> None:
    """An executemany was one statement a row: on SQLite each step gave the GIL up and waited
    for it while the round held the write lock that a lane's next batch waits for; on
    PostgreSQL each was its own work for the server and the driver."""
    sender = _sender(db, workspace)  # not started: the test runs its rounds
    _enqueue(db, CHANNEL, ["a", "b", "c"])
    _enqueue(db, OTHER, ["x", "y", "z"])
    traced = statements(db)
    try:
        sender.dispatch()  # claims both channels' rows, and workers make the calls
        wait_until(lambda: len(sender._finished) == 2)  # each channel's worker handed over
        traced.clear()
        sender.dispatch()
    finally:
        sender.stop()
    assert len([sql for sql in traced if sql.lstrip().startswith("UPDATE outbox SET status")]) == 1
    assert [row.status for row in _rows(db)] == ["sent"] * 6
    assert all(row.result_ts for row in _rows(db))


def test_the_senders_read_of_its_queue_skips_the_rows_sent_whatever_the_statistics_say(
    db: Database,  # noqa: F811
) -> None:
    # Statistics taken while most rows were pending (a burst of sessions starting), then nearly
    # every row sent: PostgreSQL's planner, believing them, walked the primary key through every
    # row already sent at each round (60 ms a read at 67,000 rows).
    now = datetime.now(UTC)
    row = {"team_id": "T_TEAM", "method": "chat.postMessage", "payload": {}, "attempts": 0}
    with db.session() as s:
        s.execute(
            insert(OutboxMessage),
            [
                {**row, "channel_id": f"C{i % 50}", "status": "pending", "not_before": now}
                | {"created_at": now}
                for i in range(3000)
            ],
        )
    if db.is_postgres:  # autovacuum's; the bot runs no ANALYZE on SQLite, which then plans by rule
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE outbox"))
            conn.commit()
    with db.session() as s:
        s.execute(update(OutboxMessage).values(status="sent", sent_at=now))
    _enqueue(db, CHANNEL, ["a", "b"])
    for query, params in ((_DUE, {"limit": 400}), (_DUE_SKIPPING, {"limit": 400, "skip": [OTHER]})):
        sql = query.params(**params).compile(
            dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}
        )
        with db.engine.connect() as conn:
            explain = "EXPLAIN" if db.is_postgres else "EXPLAIN QUERY PLAN"
            plan = " ".join(str(line) for line in conn.execute(text(f"{explain} {sql}")).all())
        assert "ix_outbox_due" in plan, plan
    assert [r.payload.get("text") for r in _rows(db) if r.status == "pending"] == ["a", "b"]
