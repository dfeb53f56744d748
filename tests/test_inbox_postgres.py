"""PostgreSQL: events stored before an ack go through connections of their own (bot/store/db.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import event, func, select, text

from bot.inbox import MAX_TRIES
from bot.notify import libpq_url, web_name
from bot.runtime import Runtime
from bot.settings import Settings
from bot.slack_standin import SlackStandin
from bot.store.db import REQUEST_THREADS
from bot.store.models import InboxEvent
from tests.conftest import (
    PG_ADMIN_URL,
    cut_connections,
    database_out_of_reach,
    database_read_only,
)
from tests.harness import CHANNEL, PRESENTER, TEACHERS, Bot

pytestmark = pytest.mark.skipif(
    not PG_ADMIN_URL, reason="set PROTOCOLBOT_TEST_POSTGRES to an admin URL, as .ci/run does"
)


def _stored(bot: Bot) -> int:
    with bot.db.inbox_session() as s:
        return int(s.scalar(select(func.count()).select_from(InboxEvent)) or 0)


def test_events_while_the_database_is_out_of_reach_get_a_quick_500_and_one_log_line(
    bot: Bot, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    thread = bot.open_step()
    caplog.set_level(logging.WARNING)
    with database_out_of_reach(database_url):
        for i in range(5):
            began = time.monotonic()
            status = bot.event(
                {
                    "type": "message",
                    "channel": CHANNEL,
                    "user": TEACHERS[0],
                    "text": f"Reply {i} while the database is down.",
                    "ts": f"1790000000.00010{i}",
                    "thread_ts": thread,
                    "channel_type": "channel",
                },
            )
            # Not stored: Slack must send it again, and hears so at once.
            assert status == 500
            assert time.monotonic() - began < 2
    said = [r for r in caplog.records if r.name == "bot.app"]
    assert len(said) == 1, [r.getMessage() for r in said]
    assert "cannot reach the database" in said[0].getMessage()
    assert said[0].exc_info is None, "no traceback for an outage"
    ts = bot.reply(TEACHERS[1], "Back: the key is missing.", thread)
    bot.wait_until(lambda: bot.recorded() == [ts])


def test_replies_slack_gave_up_on_during_a_long_outage_are_asked_of_slack_once_it_is_back(
    bot: Bot, database_url: str
) -> None:
    # Slack tries a refused event three more times, the last five minutes on: what was written
    # during a longer outage was in Slack's threads and never in the notes.
    bot.runtime.catch_up_after = 0.0  # the outage here lasts seconds, not five minutes
    thread = bot.open_step()
    with database_out_of_reach(database_url):
        said = "Written while the database was down."
        lost = bot.standin.add_message(CHANNEL, TEACHERS[0], said, thread_ts=thread)["ts"]
        reply = {
            "type": "message",
            "channel": CHANNEL,
            "user": TEACHERS[0],
            "text": said,
            "ts": lost,
            "thread_ts": thread,
            "channel_type": "channel",
        }
        assert bot.event(reply) == 500  # and Slack's tries after it met the outage too
    assert bot.recorded() == []
    back = bot.reply(TEACHERS[1], "The first thing through after the outage.", thread)
    bot.wait_until(lambda: sorted(bot.recorded()) == sorted([lost, back]), 15)
    bot.settle()
    assert bot.standin.reactions(CHANNEL, lost) == ["pencil2"]  # step 1 collects notes


def test_replies_written_while_no_web_process_ran_are_asked_of_slack_when_one_runs_again(
    bot: Bot, database_url: str
) -> None:
    # Every web process down (a failed deploy, a platform outage) for longer than Slack tries
    # an event, while the clock ran: what teachers wrote meanwhile never reached the notes.
    link = bot.runtime.link
    assert link is not None  # the harness's bot runs the timers: on PostgreSQL, the clock
    link.web_check_seconds = 0.05
    bot.runtime.catch_up_after = 0.5  # the web processes here are gone a second, not minutes
    thread = bot.open_step()
    web = psycopg.connect(libpq_url(database_url), application_name=web_name())
    bot.wait_until(lambda: link.webs_gone_at is None)  # the clock has seen it
    web.close()  # every web process gone
    bot.wait_until(lambda: link.webs_gone_at is not None)
    said = "Written while no web process ran."
    lost = bot.standin.add_message(CHANNEL, TEACHERS[0], said, thread_ts=thread)["ts"]
    time.sleep(0.6)  # gone longer than catch_up_after
    assert bot.recorded() == []
    web = psycopg.connect(libpq_url(database_url), application_name=web_name())
    try:
        bot.wait_until(lambda: bot.recorded() == [lost], 15)
    finally:
        web.close()
    bot.settle()
    assert bot.standin.reactions(CHANNEL, lost) == ["pencil2"]  # step 1 collects notes


def test_a_web_process_gone_for_less_than_slack_tries_has_nothing_asked_of_slack(
    bot: Bot, database_url: str
) -> None:
    link = bot.runtime.link
    assert link is not None
    link.web_check_seconds = 0.05
    bot.runtime.catch_up_after = 30.0  # a restart's seconds are well within Slack's tries
    thread = bot.open_step()
    bot.standin.add_message(CHANNEL, TEACHERS[0], "Sent to a web process.", thread_ts=thread)
    for _ in range(2):  # there, gone, and back
        web = psycopg.connect(libpq_url(database_url), application_name=web_name())
        bot.wait_until(lambda: link.webs_gone_at is None)
        web.close()
        bot.wait_until(lambda: link.webs_gone_at is not None)
    bot.settle()
    assert bot.standin.calls_to("conversations.replies") == []
    assert bot.recorded() == []


def test_events_while_the_database_is_read_only_get_a_500_and_one_log_line(
    bot: Bot, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A database that takes no writes (a failover onto a standby, a full disk on a managed
    server) is an outage like a stopped one: each event turned away logged an ERROR with a
    traceback (ReadOnlySqlTransaction), and a step due meanwhile the timers' traceback."""
    thread = bot.open_step()
    caplog.set_level(logging.WARNING)
    with database_read_only(database_url):
        for i in range(3):
            status = bot.event(
                {
                    "type": "message",
                    "channel": CHANNEL,
                    "user": TEACHERS[0],
                    "text": f"Reply {i} while the database is read-only.",
                    "ts": f"1790000000.00020{i}",
                    "thread_ts": thread,
                    "channel_type": "channel",
                },
            )
            # Not stored: Slack must send it again.
            assert status == 500
        assert bot.command("next") != {}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert all(r.exc_info is None for r in caplog.records)
    said = [r.getMessage() for r in caplog.records if r.name == "bot.app"]
    assert len(said) == 1 and "cannot reach the database" in said[0], said
    assert "read-only" in said[0], said
    ts = bot.reply(TEACHERS[1], "Back: the key is missing.", thread)
    bot.wait_until(lambda: bot.recorded() == [ts])


@contextmanager
def _disk_full(bot: Bot, writes: str) -> Iterator[Callable[[], int]]:
    """`writes` ("INSERT ON contributions") answered as PostgreSQL answers a write that needs a
    new page on a full disk (53100), until the block ends; it gives how many were tried (a
    sequence, which a failed transaction does not roll back)."""
    with bot.db.engine.begin() as conn:
        conn.execute(text("CREATE SEQUENCE disk_full_tries"))
        conn.execute(
            text(
                "CREATE FUNCTION disk_full() RETURNS trigger AS $$ BEGIN"
                " PERFORM nextval('disk_full_tries'); RAISE EXCEPTION"
                " 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';"
                " END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text(
                f"CREATE TRIGGER disk_full BEFORE {writes}"
                " FOR EACH ROW EXECUTE FUNCTION disk_full()"
            )
        )

    def tries() -> int:
        with bot.db.engine.connect() as conn:
            seen = conn.execute(text("SELECT last_value, is_called FROM disk_full_tries")).one()
            return int(seen[0]) if seen[1] else 0

    try:
        yield tries
    finally:
        table = writes.split(" ON ")[1]
        with bot.db.engine.begin() as conn:
            conn.execute(text(f"DROP TRIGGER disk_full ON {table}"))
            conn.execute(text("DROP FUNCTION disk_full()"))
            conn.execute(text("DROP SEQUENCE disk_full_tries"))


def test_a_reply_acked_while_the_disk_is_full_is_recorded_once_there_is_room(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    """With the database's disk full, a stored reply could not be recorded: each try counted
    against it as a fault of its own, and after three (six seconds of sweeps) it was given up
    until the clock's next start: acknowledged to Slack, and missing from the notes."""
    thread = bot.open_step()
    assert bot.runtime.scheduler is not None
    bot.runtime.scheduler.reconcile_seconds = 0.2  # the sweep's tries come quickly
    caplog.set_level(logging.WARNING)
    with _disk_full(bot, "INSERT ON contributions") as tries:
        ts = bot.reply(TEACHERS[0], "Two of them skip the units.", thread)  # stored and acked
        bot.wait_until(lambda: tries() > MAX_TRIES + 1, timeout=10)  # well over three sweeps
    bot.wait_until(lambda: bot.recorded() == [ts], timeout=5)

    def inbox_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "bot.inbox"]

    # "Back" is said once the sweep's transaction has committed: a moment after the row shows.
    bot.wait_until(lambda: len(inbox_lines()) >= 2, timeout=5)
    assert all(r.exc_info is None for r in caplog.records)
    said = inbox_lines()
    assert len(said) == 2, said
    assert "cannot reach the database" in said[0] and "No space left on device" in said[0]
    assert "the database is back" in said[1]


def test_a_step_due_while_the_disk_is_full_is_one_outage_for_the_timers(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    """The database answers reads and refuses writes (its disk full): the step's close failed,
    the next reconcile (reads alone) said the database was back, the close planned again failed
    again, and so on, two lines every reconcile while it lasted."""
    assert bot.runtime.scheduler is not None
    bot.runtime.scheduler.reconcile_seconds = 0.2
    bot.command(f"start atlas <@{PRESENTER}|maria> step 2s")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.runtime.sender.drain(5)  # and its ts written down: the timers' writes alone are left
    caplog.set_level(logging.WARNING)
    with _disk_full(bot, "UPDATE ON session_steps") as tries:
        # Step 1 closes 2 s in: its close fails, and is tried again and again.
        bot.wait_until(lambda: tries() >= 4, timeout=10)
        assert len(bot.step_posts()) == 1
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    said = [r.getMessage() for r in caplog.records if r.name == "bot.scheduling"]
    assert len(said) == 2, said
    assert "cannot reach the database" in said[0] and "the database is back" in said[1]


def test_channel_chatter_acked_during_an_outage_does_not_say_the_database_is_back(
    bot: Bot, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Most of what Slack sends is talk the bot does not keep (top-level messages), acked
    without the database: each such ack said the database was back, and the next reply that
    could not be stored that it was out of reach again, two lines for every reply."""
    thread = bot.open_step()
    caplog.set_level(logging.WARNING)
    with database_out_of_reach(database_url):
        for i in range(4):
            chatter = {"type": "message", "channel": CHANNEL, "user": TEACHERS[1]}
            assert bot.event({**chatter, "text": "Lunch?", "ts": f"1790000001.00010{i}"}) == 200
            reply = {**chatter, "text": f"Reply {i}.", "thread_ts": thread}
            assert bot.event({**reply, "ts": f"1790000002.00010{i}"}) == 500
    said = [r.getMessage() for r in caplog.records if r.name == "bot.app"]
    assert len(said) == 1 and "cannot reach the database" in said[0], said
    ts = bot.reply(TEACHERS[1], "Back: the key is missing.", thread)
    bot.wait_until(lambda: bot.recorded() == [ts])
    said = [r.getMessage() for r in caplog.records if r.name == "bot.app"]
    assert len(said) == 2 and "the database is back" in said[1], said


def test_ack_connections_do_not_wait_for_the_wal_flush(bot: Bot) -> None:
    thread = bot.open_step()
    ts = bot.reply(TEACHERS[0], "Three of the graphs have no title.", thread)
    bot.wait_until(lambda: bot.recorded() == [ts])
    ack_engine = bot.db._ack_engine
    assert ack_engine is not None
    with ack_engine.connect() as conn:
        assert conn.execute(text("SHOW synchronous_commit")).scalar() == "off"
        assert conn.execute(text("SHOW TimeZone")).scalar() == "UTC"
        # The insert is its own transaction: one round trip, no BEGIN and COMMIT around it.
        assert conn.connection.dbapi_connection.autocommit is True  # type: ignore[union-attr]
    # Everything else still waits for the flush.
    with bot.db.engine.connect() as conn:
        assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"


def test_a_reply_after_the_database_dropped_its_connections_is_acked_and_recorded(
    bot: Bot, database_url: str
) -> None:
    thread = bot.open_step()
    first = bot.reply(TEACHERS[0], "Most answers show the working.", thread)
    bot.wait_until(lambda: bot.recorded() == [first])
    assert cut_connections(database_url) >= 1
    # The ack connection the first reply used is dead now: the insert is tried on a new one
    # (Bot.reply asserts the 200).
    second = bot.reply(TEACHERS[1], "Two students skipped the last question.", thread)
    assert _stored(bot) == 2
    bot.wait_until(lambda: bot.recorded() == [first, second], timeout=20)


def test_a_retried_event_is_stored_once(bot: Bot) -> None:
    thread = bot.open_step()
    event = {
        "type": "message",
        "channel": CHANNEL,
        "user": TEACHERS[0],
        "text": "The units are missing on every axis.",
        "ts": "1790000000.000100",
        "thread_ts": thread,
        "channel_type": "channel",
    }
    assert bot.event(event, event_id="Ev0001") == 200
    assert bot.event(event, event_id="Ev0001", retry=1) == 200
    assert _stored(bot) == 1
    bot.wait_until(lambda: bot.recorded() == ["1790000000.000100"])


def test_a_burst_of_events_opens_no_connection_once_the_first_is_over(bot: Bot) -> None:
    """Every server thread may store an event at once, and each keeps its ack connection for
    the next burst. A pool that kept fewer opened (and closed) a connection for each insert past
    them, a backend started on the server every time, under the load that could least afford
    it."""
    thread = bot.open_step()
    ack_engine = bot.db._ack_engine
    assert ack_engine is not None
    opened: list[int] = []
    event.listen(ack_engine, "connect", lambda *_: opened.append(1))

    def burst(round_: int) -> None:
        # Each insert waits behind the lock, holding its connection, until all are waiting.
        with bot.db.engine.connect() as holder:
            holder.execute(text("LOCK TABLE inbox IN EXCLUSIVE MODE"))
            senders = [
                threading.Thread(
                    target=bot.reply,
                    args=(TEACHERS[i % 3], f"Burst {round_}, reply {i}.", thread),
                    kwargs={"ts": f"1700000{round_}00.{i:06d}"},
                )
                for i in range(REQUEST_THREADS)
            ]
            for sender in senders:
                sender.start()
            bot.wait_until(lambda: _waiting_inserts(bot) == REQUEST_THREADS)
            holder.commit()
        for sender in senders:
            sender.join(10)

    burst(1)
    first = len(opened)
    assert 0 < first <= REQUEST_THREADS
    burst(2)
    assert len(opened) == first
    assert _stored(bot) == 2 * REQUEST_THREADS


def _waiting_inserts(bot: Bot) -> int:
    with bot.db.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE '%INSERT INTO inbox%' AND datname = current_database()"
                )
            ).scalar()
            or 0
        )


def test_a_web_process_and_a_clock_name_their_connections(
    workspace: SlackStandin, database_url: str
) -> None:
    # The clock tells web processes by their connections' name, and a standby a frozen clock.
    settings = Settings(
        slack_bot_token="xoxb-test",
        slack_signing_secret="secret",
        slack_api_url=workspace.url,
        database_url=database_url,
    )
    for with_scheduler, name in ((False, "protocolbot-web:"), (True, "protocolbot-clock:")):
        runtime = Runtime(settings, with_scheduler=with_scheduler)
        try:
            with runtime.db.engine.connect() as conn:
                named = conn.execute(text("SELECT current_setting('application_name')")).scalar()
            assert str(named).startswith(name), named
        finally:
            runtime.db.dispose()
