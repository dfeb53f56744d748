"""Hygiene (PRODUCT 5, issue 5 item 6): graceful SIGTERM, /healthz, data retention, quiet logs,
and bad input answered cleanly (a 2xx or 4xx, logged once, nothing changed).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import io
import json
import logging
import signal
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from bot.export import export
from bot.retention import purge
from bot.runtime import Runtime
from bot.server import make_wsgi
from bot.settings import Settings
from bot.slack_standin import SlackStandin
from bot.store.db import Database
from bot.store.migrate import upgrade
from bot.store.models import (
    Contribution,
    InboxEvent,
    OutboxMessage,
    ProtocolSession,
)
from tests.conftest import PG_ADMIN_URL, database_out_of_reach, database_read_only
from tests.fakes.signing import event_body, interaction_body, signed_headers, slash_command_body
from tests.harness import CHANNEL, PRESENTER, SECRET, TEACHERS, TEAM, Bot, http_post, migrated
from tests.process import BotProcess, bot_environment, free_port, workers_taking
from tests.test_processes import reply_body, step_threads, wait_for

TOKEN = "xoxb-1111-2222-TOKENtokenTOKEN"
SIGNING = "signing-secret-9f8e7d6c5b4a"


def _process(standin: SlackStandin, database_url: str, workdir: Path, **env: str) -> BotProcess:
    settings = bot_environment(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SIGNING,
        SLACK_API_URL=standin.url,
        DATABASE_URL=database_url,
        PORT=str(free_port()),
        **env,
    )
    migrated(database_url)
    return BotProcess(settings, workdir, int(settings["PORT"]))


def _send(bot: BotProcess, body: str, **headers: str) -> int:
    try:
        status, _ = http_post(bot.events_url, body, {**signed_headers(body, SIGNING), **headers})
    except OSError:
        return 0
    return status


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # Reset: the listening socket closed with this connection still in its queue.
        return True
    return False


def _start(bot: BotProcess, standin: SlackStandin, protocol: str, step: str) -> str:
    body = slash_command_body(
        f"start {protocol} <@{PRESENTER}|maria> step {step}", response_url=standin.response_url()
    )
    assert _send(bot, body) == 200
    return str(wait_for(lambda: step_threads(standin).get(1), 10, "step 1"))


# -- SIGTERM --------------------------------------------------------------------------------------
def test_sigterm_answers_what_is_in_flight_and_loses_nothing(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    bot = _process(workspace, database_url, tmp_path, LOG_LEVEL="INFO")
    bot.start()
    try:
        thread = _start(bot, workspace, "atlas", "1h")
        answers: dict[str, int] = {}

        def reply(n: int) -> None:
            user = TEACHERS[n % 3]
            said = f"Reply {n} before the stop."
            ts = str(workspace.add_message(CHANNEL, user, said, thread_ts=thread)["ts"])
            answers[ts] = _send(bot, reply_body(user, said, thread, ts))

        burst = [threading.Thread(target=reply, args=(n,)) for n in range(40)]
        for sender in burst[:20]:
            sender.start()
        # Stopped once the first has been answered, with the rest of the burst in flight (on a
        # busy machine the threads may not all have sent before the signal otherwise).
        wait_for(lambda: 200 in answers.values(), 10, "the first reply to be acknowledged")
        assert bot.proc is not None
        # The other threads hold the stop signals, so SIGTERM waits for the main thread to take it:
        # handed to a worker thread, it would leave the main thread asleep and the bot running.
        assert workers_taking(bot.proc.pid, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}) == []
        bot.proc.send_signal(signal.SIGTERM)  # with requests in flight
        wait_for(lambda: _refused(bot.port), 10, "the bot to stop accepting connections")
        for sender in burst[20:]:
            sender.start()  # after the stop began: refused, so Slack would retry elsewhere
        for sender in burst:
            sender.join()
        assert bot.proc is not None
        assert bot.proc.wait(20) == 0
    finally:
        bot.stop()
    acked = {ts for ts, status in answers.items() if status == 200}
    log = bot.log_path.read_text()
    assert "stopped" in log and "Traceback" not in log, log[-2000:]
    db = Database(database_url)
    try:
        with db.session() as s:
            recorded = set(s.scalars(select(Contribution.ts)))
        with db.inbox_session() as s:
            unhandled = s.scalar(
                select(func.count())
                .select_from(InboxEvent)
                .where(InboxEvent.processed_at.is_(None))
            )
    finally:
        db.dispose()
    assert acked and len(acked) < len(answers), answers
    assert set(answers.values()) <= {200, 0}
    # Every acknowledged reply was handled before the process ended: none waits for a replay.
    assert acked <= recorded and unhandled == 0
    print(f"sigterm: {len(acked)} of {len(answers)} replies acknowledged, all recorded")


def test_a_second_stop_signal_ends_a_stop_that_waits_for_slack_and_loses_nothing(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # The stop waited for a Slack call in flight (up to its 10 s); a second Ctrl-C was ignored.
    bot = _process(workspace, database_url, tmp_path, LOG_LEVEL="INFO")
    bot.start()
    try:
        _start(bot, workspace, "atlas", "1h")
        workspace.fail_next("chat.postMessage", delay=30)  # step 2's post hangs
        assert _send(bot, slash_command_body("next")) == 200
        wait_for(lambda: workspace.faults_left("chat.postMessage") == 0, 10, "step 2's post")
        assert bot.proc is not None
        bot.proc.send_signal(signal.SIGINT)
        wait_for(lambda: "finishing in-flight work" in bot.log_path.read_text(), 10, "the stop")
        began = time.monotonic()
        bot.proc.send_signal(signal.SIGINT)
        assert bot.proc.wait(10) == 1
        assert time.monotonic() - began < 5
        log = bot.log_path.read_text()
        assert "asked again to stop: stopping now" in log and "Traceback" not in log, log[-2000:]
        # The next start posts step 2, once.
        bot.start()
        wait_for(lambda: step_threads(workspace).get(2), 20, "step 2 after the restart")
        time.sleep(1.0)
        steps = [m for m in workspace.messages(CHANNEL) if str(m.get("text")).startswith("Step 2")]
        assert len(steps) == 1, steps
    finally:
        bot.stop()


def test_a_closed_terminal_stops_the_bot_as_sigterm_does(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # SIGHUP ended the process on the spot: no "stopping", nothing acknowledged finished.
    bot = _process(workspace, database_url, tmp_path, LOG_LEVEL="INFO")
    bot.start()
    try:
        assert bot.proc is not None
        bot.proc.send_signal(signal.SIGHUP)
        assert bot.proc.wait(20) == 0
    finally:
        bot.stop()
    log = bot.log_path.read_text()
    assert "stopping: finishing in-flight work" in log and "stopped" in log, log[-2000:]


# -- /healthz --------------------------------------------------------------------------------------
def _healthz(wsgi: Any) -> tuple[str, dict[str, Any]]:
    answered: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answered["status"] = status

    environ = {"PATH_INFO": "/healthz", "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    body = b"".join(wsgi(environ, start_response))
    return answered["status"], json.loads(body)


def test_healthz_reports_the_database(bot: Bot, tmp_path: Path) -> None:
    with urllib.request.urlopen(bot.url.replace("slack/events", "healthz")) as answer:
        assert (answer.status, json.loads(answer.read())) == (200, {"ok": True, "database": "ok"})
    head = urllib.request.Request(bot.url.replace("slack/events", "healthz"), method="HEAD")
    with urllib.request.urlopen(head) as answer:
        assert (answer.status, answer.read()) == (200, b"")  # as uptime checkers ask
    gone = (
        "postgresql+psycopg://protocolbot@127.0.0.1:1/gone"
        if PG_ADMIN_URL
        else f"sqlite:///{tmp_path}/no/such/dir/bot.sqlite3"
    )
    runtime = SimpleNamespace(db=Database(gone), settings=bot.settings, clock_watch=None)
    status, body = _healthz(make_wsgi(bot.app, runtime))  # type: ignore[arg-type]
    assert status.startswith("503") and body == {"ok": False, "database": "unreachable"}


@pytest.mark.skipif(not PG_ADMIN_URL, reason="drops the live PostgreSQL database under the bot")
def test_healthz_says_503_when_the_database_goes_away(bot: Bot, database_url: str) -> None:
    assert _healthz(make_wsgi(bot.app, bot.runtime))[0].startswith("200")
    admin = create_engine(str(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()
    status, body = _healthz(make_wsgi(bot.app, bot.runtime))
    assert status.startswith("503") and body["database"] == "unreachable"


@pytest.mark.skipif(not PG_ADMIN_URL, reason="makes the live PostgreSQL database read-only")
def test_healthz_says_503_while_the_database_takes_no_writes(bot: Bot, database_url: str) -> None:
    """Read-only (a failover onto a standby, a full disk on a managed server), every event is
    turned away and the log says the database is out of reach: /healthz said all was well."""
    url = bot.url.replace("slack/events", "healthz")
    with database_read_only(database_url):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url)
        assert refused.value.code == 503
        assert json.loads(refused.value.read()) == {"ok": False, "database": "read-only"}
    with urllib.request.urlopen(url) as answer:
        assert (answer.status, json.loads(answer.read())) == (200, {"ok": True, "database": "ok"})


# -- DATA_RETENTION_DAYS ---------------------------------------------------------------------------
def test_retention_purges_what_people_wrote_in_sessions_ended_long_enough_ago(
    database_url: str,
) -> None:
    db = Database(database_url)
    upgrade(db)
    now = datetime.now(UTC)
    try:
        with db.session() as s:
            for sid, ended in ((1, now - timedelta(days=40)), (2, now - timedelta(days=5))):
                session = _session(sid, ended, statement=f"statement {sid}")
                # The presenter's link to the student work, from the prep dialog.
                session.prep = {"reason": "wondering", "link": f"https://docs.example/work-{sid}"}
                session.names = {PRESENTER: "maria"}
                s.add(session)
            s.add(_session(3, None, status="running"))
            s.flush()
            for sid in (1, 2, 3):
                s.add(_contribution(sid, now))
            for days, status in ((40, "sent"), (40, "pending"), (5, "sent")):
                s.add(_outbox(now - timedelta(days=days), status))
        with db.inbox_session() as s:
            s.add(_inbox("Ev1", now - timedelta(days=3), handled=True))
            s.add(_inbox("Ev2", now - timedelta(days=3), handled=False))
        counts = purge(db, now, retention_days=30)
        with db.session() as s:
            left = sorted(s.scalars(select(Contribution.session_id)))
            statements = dict(
                s.execute(select(ProtocolSession.id, ProtocolSession.statement)).all()
            )
            outbox = sorted(s.scalars(select(OutboxMessage.status)))
            preps = dict(s.execute(select(ProtocolSession.id, ProtocolSession.prep)).all())
            names = dict(s.execute(select(ProtocolSession.id, ProtocolSession.names)).all())
        with db.inbox_session() as s:
            inbox = list(s.scalars(select(InboxEvent.event_id)))
        assert counts == {"inbox": 1, "contributions": 1, "outbox": 1}
        assert left == [2, 3]
        assert statements[1] is None and statements[2] == "statement 2"
        assert preps[1] == {"reason": "wondering"}
        assert preps[2]["link"] == "https://docs.example/work-2"
        assert names[1] is None and names[2] == {PRESENTER: "maria"}
        assert outbox == ["pending", "sent"]  # unsent rows are never dropped
        assert inbox == ["Ev2"]  # unhandled events are never dropped
        # Without the setting only handled inbox events go.
        assert purge(db, now, retention_days=None) == {"inbox": 0}
    finally:
        db.dispose()


def test_the_notes_of_a_session_whose_replies_retention_deleted_say_so(bot: Bot) -> None:
    # They read "Nothing was recorded in the step threads this time", in Slack and in the
    # exports, as if the team had written nothing.
    step = bot.open_step()
    bot.reply(TEACHERS[0], "She drew two number lines.", step)
    bot.command("end")
    bot.settle()
    purged = datetime.now(UTC) + timedelta(days=40)
    assert purge(bot.db, purged, retention_days=30)["contributions"] == 1
    shown = json.dumps(bot.command("notes"))
    assert "were deleted" in shown and "Nothing was recorded" not in shown
    said: list[str] = []
    assert export(bot.settings, "latest", "csv", say=said.append).count("\n") == 1  # its header
    assert said == [f"session 1's replies were deleted on {purged:%Y-%m-%d} (DATA_RETENTION_DAYS)"]
    assert f"- Replies deleted: {purged:%Y-%m-%d %H:%M} UTC" in export(bot.settings, "1", "md")
    exported = json.loads(export(bot.settings, "latest", "json"))
    assert exported["session"]["purged_at"] == purged.isoformat()
    # Purged once: a later housekeeping keeps the first time.
    purge(bot.db, purged + timedelta(days=1), retention_days=30)
    assert json.loads(export(bot.settings, "1", "json"))["session"]["purged_at"] == (
        purged.isoformat()
    )


def _typo_fixed(step: str, written: str, edited: str) -> dict[str, Any]:
    """The message_changed Slack sends when a teacher's reply in `step`'s thread, written at
    `written`, has a typo fixed at `edited` (Slack ts both)."""
    message = {"type": "message", "user": TEACHERS[0], "ts": written, "thread_ts": step}
    return {
        "type": "message",
        "subtype": "message_changed",
        "channel": CHANNEL,
        "hidden": True,
        "ts": edited,
        "message": {
            **message,
            "text": "She drew two number lines.",
            "edited": {"user": TEACHERS[0], "ts": edited},
        },
        "previous_message": {**message, "text": "She drew two numbr lines."},
    }


def test_a_reply_retention_deleted_and_edited_since_stays_deleted(bot: Bot) -> None:
    # Its author fixed a typo weeks on: the edit recorded the reply again, and the bot posted
    # "One more reply for the notes" in the channel and to the presenter.
    step = bot.open_step()
    written = bot.reply(TEACHERS[0], "She drew two numbr lines.", step)
    bot.command("end")
    bot.settle()
    assert (
        purge(bot.db, datetime.now(UTC) + timedelta(days=40), retention_days=30)["contributions"]
        == 1
    )
    posts = len(bot.standin.calls_to("chat.postMessage"))
    edited = f"{float(written) + 30 * 86400:.6f}"  # Slack's stamp of an edit a month on
    assert bot.event(_typo_fixed(step, written, edited)) == 200
    bot.settle()
    with bot.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Contribution)) == 0
    assert len(bot.standin.calls_to("chat.postMessage")) == posts


def test_an_edit_of_a_reply_whose_event_was_lost_brings_it_into_the_notes_late(bot: Bot) -> None:
    # Only retention's deletions stay deleted: a reply Slack gave up delivering (the bot down
    # past its tries), edited ten minutes on, was dropped with them.
    step = bot.open_step()
    written = f"{time.time():.6f}"  # before the end; its event never came
    bot.wait_until(lambda: time.time() > float(written) + 0.01)
    bot.command("end")
    bot.settle()
    edited = f"{float(written) + 600:.6f}"  # Slack's stamp of an edit ten minutes on
    assert bot.event(_typo_fixed(step, written, edited)) == 200
    bot.wait_until(lambda: written in bot.recorded())
    bot.wait_until(
        lambda: any("One more reply for the notes" in str(p.get("text")) for p in bot.posts())
    )


def test_the_notes_of_a_session_with_no_replies_do_not_say_retention_deleted_them(
    bot: Bot,
) -> None:
    # Nobody replied; after retention's time its notes said "The replies recorded in this
    # session were deleted", and protocolbot export warned of deleted replies.
    bot.open_step()
    bot.command("end")
    bot.settle()
    assert (
        purge(bot.db, datetime.now(UTC) + timedelta(days=40), retention_days=30)["contributions"]
        == 0
    )
    shown = json.dumps(bot.command("notes"))
    assert "Nothing was recorded" in shown and "were deleted" not in shown
    said: list[str] = []
    assert "Replies deleted" not in export(bot.settings, "latest", "md", say=said.append)
    assert said == []


def _kept_thirty_days(workspace: SlackStandin, database_url: str) -> tuple[Settings, Database]:
    """Settings with DATA_RETENTION_DAYS=30, and their database, migrated."""
    settings = Settings(
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=workspace.url,
        database_url=database_url,
        data_retention_days=30,
    )
    db = Database(database_url)
    upgrade(db)
    return settings, db


def test_the_clock_runs_the_housekeeping_daily_with_the_retention_setting(
    workspace: SlackStandin, database_url: str
) -> None:
    settings, db = _kept_thirty_days(workspace, database_url)
    runtime = Runtime(settings, database=db).start()
    try:
        assert runtime.scheduler is not None
        job = runtime.scheduler._aps.get_job("housekeeping")
        assert job is not None and list(job.args) == [30]
        assert job.trigger.interval == timedelta(days=1)
    finally:
        runtime.stop()
        db.dispose()


class _HeldClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


@pytest.mark.skipif(not PG_ADMIN_URL, reason="a database outage: set PROTOCOLBOT_TEST_POSTGRES")
def test_a_housekeeping_that_meets_a_database_outage_is_tried_again_in_minutes(
    workspace: SlackStandin, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # It was logged as an error with a traceback, and tried again a day later.
    settings, db = _kept_thirty_days(workspace, database_url)
    clock = _HeldClock(datetime.now(UTC))
    runtime = Runtime(settings, clock=clock, database=db).start()
    caplog.set_level(logging.WARNING)
    try:
        assert runtime.scheduler is not None
        aps = runtime.scheduler._aps
        with database_out_of_reach(database_url):
            aps.modify_job("housekeeping", next_run_time=datetime.now(UTC))
            deadline = time.monotonic() + 15
            # Planned further off once it has run (its time was set to now).
            while aps.get_job("housekeeping").next_run_time < clock.now() + timedelta(minutes=1):
                assert time.monotonic() < deadline, "the housekeeping did not run"
                time.sleep(0.05)
        assert aps.get_job("housekeeping").next_run_time == clock.now() + timedelta(minutes=5)
    finally:
        runtime.stop()
        db.dispose()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert all(r.exc_info is None for r in caplog.records)
    said = [r.getMessage() for r in caplog.records if r.name == "bot.scheduling"]
    assert said and said[0].startswith("the timers: cannot reach the database"), said


def _session(
    sid: int, ended: datetime | None, status: str = "ended", statement: str | None = None
) -> ProtocolSession:
    at = datetime.now(UTC) - timedelta(days=60)
    return ProtocolSession(
        id=sid,
        team_id=TEAM,
        channel_id=CHANNEL,
        protocol_id="atlas",
        presenter_id=PRESENTER,
        facilitator_id="U_FAC",
        created_by="U_FAC",
        status=status,
        starts_at=at,
        created_at=at,
        started_at=at,
        ended_at=ended,
        statement=statement,
    )


def _contribution(sid: int, now: datetime) -> Contribution:
    return Contribution(
        session_id=sid,
        step_index=2,
        team_id=TEAM,
        channel_id=CHANNEL,
        user_id="U_T1",
        ts=f"{sid}.000100",
        thread_ts="1.000000",
        text="The student drew two number lines.",
        tag="observation",
        created_at=now,
        updated_at=now,
    )


def _outbox(at: datetime, status: str) -> OutboxMessage:
    return OutboxMessage(
        team_id=TEAM,
        channel_id=CHANNEL,
        method="chat.postMessage",
        payload={"channel": CHANNEL, "text": "Notes from ATLAS: the student drew..."},
        status=status,
        attempts=1,
        not_before=at,
        created_at=at,
    )


def _inbox(event_id: str, at: datetime, handled: bool) -> InboxEvent:
    return InboxEvent(
        team_id=TEAM,
        event_id=event_id,
        payload={"event": {"type": "message"}, "team_id": TEAM},
        received_at=at,
        processed_at=at if handled else None,
    )


# -- logs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_logs_hold_no_token_secret_or_message_text(
    workspace: SlackStandin, database_url: str, tmp_path: Path, level: str
) -> None:
    bot = _process(workspace, database_url, tmp_path, LOG_LEVEL=level)
    bot.start()
    words = ["XYZZY-observation-words", "PLUGH-unknown-protocol", "FROTZ-edited-words"]
    try:
        thread = _start(bot, workspace, "dese-everyday", "1s")
        for n, user in enumerate(TEACHERS):
            said = f"{words[0]} {n}: I think it seems they didn't understand."
            ts = str(workspace.add_message(CHANNEL, user, said, thread_ts=thread)["ts"])
            assert _send(bot, reply_body(user, said, thread, ts)) == 200
        body = slash_command_body(f"preview {words[1]}", response_url=workspace.response_url())
        assert _send(bot, body) == 200
        assert _send(bot, '{"type": "event_callback", "event": ') == 400
        assert _send(bot, json.dumps({"type": "mystery", "text": words[2]})) == 200
        wait_for(
            lambda: any("Notes from" in str(m.get("text")) for m in workspace.messages(CHANNEL)),
            15,
            "the notes",
        )
    finally:
        bot.stop()
    log = bot.log_path.read_text()
    assert log.count("\n") > 3, log
    for secret in (TOKEN, SIGNING, *words, "didn't understand"):
        assert secret not in log, (secret, level)
    assert "Traceback" not in log


# -- bad input -------------------------------------------------------------------------------------
@pytest.fixture
def watched(bot: Bot, caplog: pytest.LogCaptureFixture) -> Iterator[Bot]:
    caplog.set_level(logging.INFO)
    yield bot


READS = {"auth.test", "users.info", "conversations.members", "conversations.info", "response_url"}


def _state(bot: Bot) -> tuple[Any, ...]:
    """What a request could change: sessions, replies, the outbox, and Slack (reads aside)."""
    bot.runtime.sender.drain(5)
    with bot.db.session() as s:
        counts = tuple(
            s.scalar(select(func.count()).select_from(model))
            for model in (ProtocolSession, Contribution, OutboxMessage)
        )
    return counts, [c.method for c in bot.standin.calls if c.method not in READS]


def _message(team: str, text: str, thread_ts: str = "1.000100") -> str:
    event = {
        "type": "message",
        "channel": CHANNEL,
        "user": "U_T1",
        "text": text,
        "ts": f"{time.time():.6f}",
        "thread_ts": thread_ts,
        "team": team,
    }
    return event_body(event, team_id=team)


def _action(bot: Bot, action_id: str, value: str) -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": "U_FAC", "team_id": TEAM},
        "team": {"id": TEAM},
        "channel": {"id": CHANNEL},
        "trigger_id": "trigger.1",
        "response_url": bot.standin.response_url(),
        "container": {"type": "message", "channel_id": CHANNEL},
        "actions": [{"type": "button", "action_id": action_id, "value": value, "block_id": "b"}],
    }
    return interaction_body(payload)


def _no_action(bot: Bot) -> str:
    payload = json.loads(urllib.parse.parse_qs(_action(bot, "step_next", "1:1"))["payload"][0])
    return interaction_body({**payload, "actions": []})


Body = str | bytes
BAD: dict[str, tuple[int, Any]] = {
    "malformed JSON": (400, lambda bot: '{"type": "event_callback", "event": {'),
    "JSON that is not an object": (400, lambda bot: "[1, 2, 3]"),
    "a malformed form payload": (400, lambda bot: "payload=%7Bnot+json"),
    "bytes that are not UTF-8": (400, lambda bot: b"payload=\xff\xfe"),
    "a command's bytes that are not UTF-8": (400, lambda bot: b"command=%2Fprotocol&text=\xff"),
    "a command with a malformed payload": (400, lambda bot: "command=x&payload=%7Bnot+json"),
    "an event callback with no event": (400, lambda bot: '{"type": "event_callback"}'),
    "an edit whose message is not an object": (
        400,
        lambda bot: event_body(
            {"type": "message", "subtype": "message_changed", "channel": CHANNEL, "message": "x"}
        ),
    ),
    "an unknown envelope": (200, lambda bot: '{"type": "mystery", "token": "x"}'),
    "a form of no known kind": (200, lambda bot: "hello=world"),
    "block actions without an action": (400, lambda bot: _no_action(bot)),
    "an unknown event type": (200, lambda bot: event_body({"type": "emoji_changed"})),
    "a reply in an unknown workspace": (200, lambda bot: _message("T_NOBODY", "Hello?")),
    "a reply in no session's thread": (200, lambda bot: _message(TEAM, "Hi", "999.000001")),
    "an oversized reply": (200, lambda bot: _message(TEAM, "long " * 10_000)),
    "Next step for no session": (200, lambda bot: _action(bot, "step_next", "424242:3")),
    "a nudge for no reply": (200, lambda bot: _action(bot, "nudge_keep", "424242")),
    "a nudge with a junk value": (200, lambda bot: _action(bot, "nudge_park", "junk")),
    "an oversized command": (200, lambda bot: slash_command_body("start atlas " + "x" * 5000)),
}


def _signed_post(url: str, body: Body, secret: str = SECRET) -> tuple[int, str]:
    raw = body if isinstance(body, bytes) else body.encode()
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + raw, hashlib.sha256)
    headers = {
        "Content-Type": "application/json"
        if raw.lstrip().startswith((b"{", b"["))
        else "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }
    request = urllib.request.Request(url, data=raw, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gets_a_clean_answer_is_logged_once_and_changes_nothing(
    watched: Bot, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    bot = watched
    expected, make = BAD[case]
    before = _state(bot)
    caplog.clear()
    status, _ = _signed_post(bot.url, make(bot))
    assert status == expected
    bot.settle()  # whatever it set in motion
    assert _state(bot) == before
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) <= 1, [r.getMessage() for r in warned]
    assert all(r.exc_info is None for r in caplog.records), "no stack trace"
    if expected == 400:
        assert len(warned) == 1


def test_bad_input_unsigned_forged_or_stale_is_refused_before_anything(watched: Bot) -> None:
    before = _state(watched)
    for body in ('{"type": "event_callback", "event": {', '{"type": "mystery"}', "hello=world"):
        unsigned = {"Content-Type": "application/json"}
        forged = signed_headers(body, "not-the-secret")
        stale = signed_headers(body, SECRET, timestamp=int(time.time()) - 6 * 60)
        for headers in (unsigned, forged, stale):
            assert http_post(watched.url, body, headers)[0] == 401, (body, headers)
    assert _state(watched) == before


def test_a_timestamp_that_is_no_number_is_refused_without_a_stack_trace(
    watched: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    before = _state(watched)
    command = slash_command_body("start atlas <@U_PRE> step 2s")
    event = event_body({"type": "message", "channel": "C_TEAM", "user": "U_T1", "text": "x"})
    for body in (command, event):
        for stamp in ("abc", "1e3", "", " 12"):
            headers = {**signed_headers(body, SECRET), "X-Slack-Request-Timestamp": stamp}
            assert http_post(watched.url, body, headers)[0] == 401, (body, stamp)
    watched.settle()
    assert _state(watched) == before
    assert all(r.exc_info is None for r in caplog.records), "no stack trace"


def test_a_body_bigger_than_slack_ever_sends_is_refused(watched: Bot) -> None:
    raw = json.dumps({"type": "event_callback", "event": {"text": "x" * 1_100_000}}).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + raw, hashlib.sha256)
    url = urllib.parse.urlsplit(watched.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=15)
    try:
        # The server may answer and close before it has read the whole body: that is the point,
        # so a broken pipe while sending is expected and the answer is read all the same.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request(
                "POST",
                url.path,
                body=raw,
                headers={
                    "Content-Type": "application/json",
                    "X-Slack-Request-Timestamp": stamp,
                    "X-Slack-Signature": f"v0={digest.hexdigest()}",
                },
            )
        assert connection.getresponse().status == 413
    finally:
        connection.close()


def test_an_oversized_command_is_told_what_was_wrong(watched: Bot) -> None:
    status, answer = _signed_post(watched.url, slash_command_body("start atlas " + "x" * 5000))
    assert status == 200
    reply = json.loads(answer)
    assert reply["response_type"] == "ephemeral" and "too long" in reply["text"]
