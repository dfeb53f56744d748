"""The bot as a real process, SIGKILLed mid-session and restarted: each step once, on time.

PRODUCT.md section 5: "A step is skipped, posted twice, or posted late by more than a few seconds,
across restarts of any process at any moment; transitions due while the service was down happen
when it comes back, in order", and "An event that Slack saw acknowledged is lost, even if the
process dies right after the ack". The kill moments are random; the seed is in every failure
message, and PROTOCOLBOT_RESTART_SEED replays one.
"""

from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.engine.core import Engine
from bot.scheduling import Scheduler
from bot.slack_standin import Call, SlackStandin
from bot.store.db import Database
from bot.store.models import Contribution, OutboxMessage, ProtocolSession, StepRun
from tests.fakes.signing import event_body
from tests.harness import (
    CHANNEL,
    PRESENTER,
    SECRET,
    TEACHERS,
    http_post,
    migrated,
    signed_headers,
    slash_command_body,
)
from tests.process import BotProcess, bot_environment, free_port

# Seconds per step (`step 3s`): room for a restart on a busy machine before the last step.
STEP = 3.0
STEPS = 6  # ATLAS
ON_TIME = 1.5  # a step is posted within this many seconds of when it is due
EARLY = 0.05  # clock resolution between the bot's "now" and the stand-in's
KILLS = 4


@dataclass
class Uptime:
    """One life of the process: healthy from `up` until killed at `down`."""

    up: float
    down: float = float("inf")


@pytest.fixture
def seed() -> int:
    return int(os.environ.get("PROTOCOLBOT_RESTART_SEED") or time.time_ns() % 1_000_000)


@pytest.fixture
def process(workspace: SlackStandin, database_url: str, tmp_path: Path) -> Iterator[BotProcess]:
    env = bot_environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=workspace.url,
        DATABASE_URL=database_url,
        PORT=str(free_port()),
        LOG_LEVEL="WARNING",
    )
    migrated(database_url)
    bot = BotProcess(env, tmp_path, int(env["PORT"]))
    try:
        yield bot
    finally:
        bot.stop()


# How late Slack's answer to a call cut short by a kill comes: by then the killed process is gone
# and the call takes effect unheard. A SIGKILLed process that is writing its SQLite file can take
# seconds to die on a busy disk, and until then it still holds the connection.
LATE_ANSWER = 12.0


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _label(call: Call) -> str:
    """What a chat.postMessage call was: header, step k, or notes."""
    text = str(call.params.get("text") or "")
    if text.startswith("Step "):
        return f"step {text.split()[1]}"
    if text.startswith("Notes from"):
        return "notes"
    if text.startswith("ATLAS") and "starts now" in text:
        return "header"
    return f"other: {text[:40]}"


def _posts(standin: SlackStandin, channel: str) -> list[Call]:
    return [
        c
        for c in standin.calls_to("chat.postMessage")
        if c.params.get("channel") == channel and c.response.get("ok")
    ]


def _step_posted(standin: SlackStandin, k: int) -> bool:
    return any(_label(c) == f"step {k}" for c in _posts(standin, CHANNEL))


def test_killed_and_restarted_bot_posts_every_step_once_on_schedule(
    process: BotProcess, workspace: SlackStandin, database_url: str, seed: int
) -> None:
    rng = random.Random(seed)
    db = Database(database_url)
    lives: list[Uptime] = []
    kills: list[str] = []

    def kill(why: str) -> None:
        lives[-1].down = process.kill()
        kills.append(f"{why} at +{lives[-1].down - t0:.2f}s")

    try:
        t0 = time.time()
        lives.append(Uptime(process.start()))
        body = slash_command_body(
            f"start atlas <@{PRESENTER}|maria> step {STEP:g}s",
            response_url=workspace.response_url(),
        )
        status, answer = http_post(process.events_url, body, signed_headers(body, SECRET))
        assert status == 200, answer
        assert "starting" in json.loads(answer)["text"].lower()

        # Kill 1: just after a thread reply to step 2 was acknowledged, before it is handled.
        _wait(lambda: _step_posted(workspace, 2), 10, "step 2")
        thread_ts = _wait(lambda: _message_ts(db, 2), 5, "step 2's ts in the database")
        reply = "Kept across the crash: the student drew two number lines."
        reply_ts = workspace.add_message(CHANNEL, TEACHERS[0], reply, thread_ts=thread_ts)["ts"]
        event = event_body(
            {
                "type": "message",
                "channel": CHANNEL,
                "user": TEACHERS[0],
                "text": reply,
                "ts": reply_ts,
                "thread_ts": thread_ts,
                "channel_type": "channel",
                "team": "T_TEAM",
            }
        )
        status, _ = http_post(process.events_url, event, signed_headers(event, SECRET))
        assert status == 200
        kill("after the step 2 reply")
        lives.append(Uptime(process.start()))

        # Kill 2: while a step's post is in flight; Slack posts it but the answer never arrives.
        armed = datetime.now(UTC)
        # The step's post, not another that may go first (a DM, a note in a thread), which the
        # channel's next post would wait behind.
        workspace.fail_next(
            "chat.postMessage", delay=LATE_ANSWER, apply_on_timeout=True, where=_is_step_post
        )
        # The request has reached the stand-in, which answers it late. Its row may have been
        # claimed a moment before the fault was armed, and the channel's next post waits on it.
        _wait(lambda: workspace.faults_left("chat.postMessage") == 0, 15, "a step post at Slack")
        in_flight = _wait(
            lambda: _step_in_flight(db, armed - timedelta(seconds=STEP)), 5, "its row in flight"
        )
        kill(f"with {in_flight} in flight")
        # Slack has posted it by the time the bot is back (only the answer was lost).
        _wait(lambda: _unheard(workspace, "chat.postMessage"), 20, "the post made unheard")
        lives.append(Uptime(process.start()))

        # Kills 3 and 4: at random moments of the rest of the session.
        for n in range(3, KILLS + 1):
            time.sleep(rng.uniform(0.2, 3.0))
            kill(f"kill {n}")
            lives.append(Uptime(process.start()))

        _wait(
            lambda: any(_label(c) == "notes" for c in _posts(workspace, f"D{PRESENTER[1:]}")),
            30,
            "the notes",
        )
        time.sleep(0.3)  # anything posted twice would show up now
        context = f"seed={seed}; {'; '.join(kills)}; lives={lives}"
        _check_posts(workspace, db, lives, (reply, reply_ts), context)
        # The post that was in flight at kill 2 reached Slack once, unanswered; after the restart
        # the bot found it by its metadata instead of posting it again.
        unheard = [_label(c) for c in workspace.calls_to("chat.postMessage") if not c.delivered]
        assert unheard == [f"step {in_flight.rsplit(':', 1)[1]}"], context
        assert workspace.calls_to("conversations.history"), context
    finally:
        db.dispose()


def _in_flight(
    db: Database, since: datetime, method: str, ref_prefix: str = ""
) -> OutboxMessage | None:
    """An outbox row (whose ref starts with `ref_prefix`) the sender started after `since` and
    has not finished."""
    query = select(OutboxMessage).where(
        OutboxMessage.status == "pending",
        OutboxMessage.in_flight_at > since,
        OutboxMessage.method == method,
    )
    if ref_prefix:
        query = query.where(OutboxMessage.ref.startswith(ref_prefix))
    with db.session() as s:
        row = s.scalars(query).first()
        if row is not None:
            s.expunge(row)
        return row


def _step_in_flight(db: Database, since: datetime) -> str | None:
    """The ref of a step post in flight, e.g. "step:1:3"."""
    # Not any post in flight: one waiting out a retry (a DM, say) may be in flight too.
    row = _in_flight(db, since, "chat.postMessage", "step:")
    return row.ref if row is not None else None


def _message_ts(db: Database, index: int) -> str | None:
    with db.session() as s:
        return s.scalar(select(StepRun.message_ts).where(StepRun.index == index))


def _what_was_posted(standin: SlackStandin, db: Database) -> str:
    """The channel's posts and the outbox's rows, for a failure message: which row each post
    came from, and when."""
    calls = [
        f"  {_label(c)} at {c.at:.3f} row {_outbox_id(c.params)} delivered={c.delivered} "
        f"thread={c.params.get('thread_ts')}"
        for c in standin.calls_to("chat.postMessage")
        if c.params.get("channel") == CHANNEL
    ]
    with db.session() as s:
        rows = [
            f"  row {r.id} {r.ref} {r.status} attempts={r.attempts} created={r.created_at} "
            f"in_flight={r.in_flight_at} sent={r.sent_at}"
            for r in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
            if r.method == "chat.postMessage"
        ]
    return "\n".join(["posts:", *calls, "rows:", *rows])


def _outbox_id(params: dict[str, Any]) -> object:
    metadata = params.get("metadata") or {}
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    return (metadata.get("event_payload") or {}).get("outbox_id")


def _check_posts(
    standin: SlackStandin,
    db: Database,
    lives: list[Uptime],
    reply_and_ts: tuple[str, str],
    context: str,
) -> None:
    reply, reply_ts = reply_and_ts
    channel_posts = _posts(standin, CHANNEL)
    labels = [_label(c) for c in channel_posts]
    expected = ["header", *(f"step {k}" for k in range(1, STEPS + 1)), "notes"]
    # Each exactly once, in order: none lost, none twice.
    assert labels == expected, f"{context}\n{_what_was_posted(standin, db)}"
    dm = [_label(c) for c in _posts(standin, f"D{PRESENTER[1:]}")]
    assert dm == ["notes"], context

    header, notes = channel_posts[0], channel_posts[-1]
    header_ts = header.response["ts"]
    assert notes.params.get("thread_ts") == header_ts, context
    # The reply acknowledged just before a kill is in the group's notes and the presenter's copy.
    for call in (notes, *_posts(standin, f"D{PRESENTER[1:]}")):
        assert reply in json.dumps(call.params.get("blocks")), context
    assert standin.reactions(CHANNEL, reply_ts) == ["eyes"], context

    with db.session() as s:
        session = s.scalars(select(ProtocolSession)).one()
        runs = s.scalars(select(StepRun).order_by(StepRun.index)).all()
        outbox = s.scalars(select(OutboxMessage)).all()
        assert session.status == "ended", context
        assert session.started_at is not None
        started = session.started_at
        # Every step opened on its planned boundary, whoever was alive at the time.
        for run in runs:
            planned = started + timedelta(seconds=STEP * (run.index - 1))
            assert run.started_at == planned, (run.index, context)
            assert run.ended_at == planned + timedelta(seconds=STEP), (run.index, context)
        assert [run.index for run in runs] == list(range(1, STEPS + 1)), context
        assert {row.status for row in outbox} == {"sent"}, context

    steps = channel_posts[1 : 1 + STEPS]
    times = [c.at for c in steps]
    assert times == sorted(times), context
    for k, call in enumerate(steps, 1):
        due = started.timestamp() + STEP * (k - 1)
        late = call.at - due
        assert late >= -EARLY, (k, late, context)
        alive = any(life.up <= due and due + ON_TIME <= life.down for life in lives)
        if alive:
            # The process was up when the step came due (and for a while after): on time.
            assert late <= ON_TIME, (k, late, context)
        else:
            # Due while the process was down, or killed within ON_TIME of it: promptly in the
            # first life after that which lasted ON_TIME.
            back = min(
                max(due, life.up) for life in lives if max(due, life.up) + ON_TIME <= life.down
            )
            assert call.at - back <= ON_TIME, (k, late, context)


@pytest.fixture
def on_sqlite(workspace: SlackStandin, tmp_path: Path) -> Iterator[tuple[BotProcess, Database]]:
    """`python -m bot` on a SQLite file (the catch-up after a stop is SQLite's), and the file."""
    url = f"sqlite:///{tmp_path}/bot.sqlite3"
    env = bot_environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=workspace.url,
        DATABASE_URL=url,
        PORT=str(free_port()),
        LOG_LEVEL="WARNING",
    )
    migrated(url)
    process = BotProcess(env, tmp_path, int(env["PORT"]))
    db = Database(url)
    try:
        yield process, db
    finally:
        process.stop()
        db.dispose()


def _started_then_stopped(process: BotProcess, workspace: SlackStandin, db: Database) -> str:
    """Start the process and a session on hour-long steps, then stop it: step 1's ts."""
    process.start()
    body = slash_command_body(
        f"start atlas <@{PRESENTER}|maria> step 1h", response_url=workspace.response_url()
    )
    assert http_post(process.events_url, body, signed_headers(body, SECRET))[0] == 200
    thread = _wait(lambda: _message_ts(db, 1), 10, "step 1's ts in the database")
    process.stop()
    return str(thread)


def test_replies_written_while_the_bot_was_down_for_minutes_are_asked_of_slack(
    on_sqlite: tuple[BotProcess, Database], workspace: SlackStandin, tmp_path: Path
) -> None:
    """The one process that hears Slack on a SQLite file was stopped for longer than Slack
    tries an event (its last try is five minutes on): what the team wrote meanwhile was in
    Slack's threads and never in the notes."""
    process, db = on_sqlite
    thread = _started_then_stopped(process, workspace, db)
    said = "Written while the bot was down: the student wrote two drafts."
    lost = workspace.add_message(CHANNEL, TEACHERS[0], said, thread_ts=thread)["ts"]
    # Down ten minutes, as its lock file's last beat says: Slack has given up on the event.
    lock = tmp_path / "bot.sqlite3.clock.lock"
    stamp = time.time() - 600
    os.utime(lock, (stamp, stamp))
    process.start()

    def recorded() -> list[str]:
        with db.session() as s:
            return list(s.scalars(select(Contribution.ts)))

    _wait(lambda: recorded() == [lost], 15, "the reply written while the bot was down")


def test_a_short_stop_asks_slack_for_nothing(
    on_sqlite: tuple[BotProcess, Database], workspace: SlackStandin
) -> None:
    # Slack's own tries bring what was written in a stop shorter than they last.
    process, db = on_sqlite
    _started_then_stopped(process, workspace, db)
    process.start()
    time.sleep(1.0)  # a catch-up would ask within this
    assert workspace.calls_to("conversations.replies") == []


def test_python_m_bot_cli_runs_the_command(database_url: str, tmp_path: Path) -> None:
    env = bot_environment(DATABASE_URL=database_url)
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "upgrade"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "database is at revision" in done.stdout  # not a silent no-op


def test_a_started_process_sets_its_long_lived_heap_aside() -> None:
    from bot.cli import _settle_heap

    gc.unfreeze()
    kept = [[i] for i in range(1000)]  # what a process makes at start and keeps
    try:
        _settle_heap()
        # The collector no longer walks them: they sit in the permanent generation.
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()


def test_a_notes_upload_cut_short_by_a_kill_is_not_uploaded_twice(
    process: BotProcess, workspace: SlackStandin, database_url: str
) -> None:
    db = Database(database_url)
    try:
        process.start()
        # Slack completes the upload, but the answer is late: the process dies waiting.
        workspace.fail_next(
            "files.completeUploadExternal", delay=LATE_ANSWER, apply_on_timeout=True
        )
        armed = datetime.now(UTC)
        body = slash_command_body(f"start dese-everyday <@{PRESENTER}> step 1s")
        status, _ = http_post(process.events_url, body, signed_headers(body, SECRET))
        assert status == 200
        _wait(lambda: _in_flight(db, armed, "files.upload_v2"), 15, "the notes upload")
        # The file's bytes are sent; the completing call is waiting for its answer.
        done = "files.completeUploadExternal"
        _wait(lambda: workspace.faults_left(done) == 0, 5, "the completing call at Slack")
        process.kill()
        _wait(lambda: _unheard(workspace, done), 20, "the upload completed unheard")
        process.start()
        _wait(lambda: _all_sent(db), 15, "the outbox to drain")
        time.sleep(0.3)
        assert len(workspace.files) == 1, [f["id"] for f in workspace.files]
    finally:
        db.dispose()


def _is_step_post(params: dict[str, Any]) -> bool:
    return params.get("channel") == CHANNEL and str(params.get("text") or "").startswith("Step ")


def _unheard(workspace: SlackStandin, method: str) -> bool:
    """Whether a call of `method` has taken effect at Slack with its answer lost."""
    return any(not call.delivered for call in workspace.calls_to(method))


def _all_sent(db: Database) -> bool:
    with db.session() as s:
        statuses = set(s.scalars(select(OutboxMessage.status)))
        return statuses == {"sent"}


def test_a_second_bot_on_one_database_stands_by_and_takes_over_when_the_first_dies(
    process: BotProcess, workspace: SlackStandin, database_url: str
) -> None:
    """Two `protocolbot serve` on one database (a second started by mistake, or a new one
    before the old one stopped): one runs the timers and posts, the other waits; SIGKILL the
    first and the second carries the session on, every step once."""
    second = BotProcess(process.env, process.workdir / "second", free_port())
    second.workdir.mkdir()
    second.env = {**process.env, "PORT": str(second.port)}
    try:
        process.start()
        assert second.proc is None
        with second.log_path.open("ab") as log:
            second.proc = subprocess.Popen(
                [sys.executable, "-m", "bot"],
                env=second.env,
                cwd=process.workdir,  # the same relative paths as the first
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait(lambda: b"standing by" in second.log_path.read_bytes(), 20, "the standby")
        # Who it waits for: on SQLite, any protocolbot on the file (not "another clock" to an
        # operator who never ran one).
        said = second.log_path.read_text()
        waits_for = "`protocolbot clock`" if "postgresql" in database_url else "`serve` or `clock`"
        assert waits_for in said and ": standing by until it stops" in said, said
        # And what the operator may have meant, on either database.
        assert "start this process as `protocolbot serve --no-scheduler`" in said, said
        body = slash_command_body(
            f"start atlas <@{PRESENTER}|maria> step 2s", response_url=workspace.response_url()
        )
        status, answer = http_post(process.events_url, body, signed_headers(body, SECRET))
        assert status == 200, answer
        _wait(lambda: _step_posted(workspace, 3), 15, "step 3")
        process.kill()
        _wait(lambda: any(_label(c) == "notes" for c in _posts(workspace, CHANNEL)), 30, "notes")
        assert second.healthy()
        time.sleep(1.0)  # anything posted twice would show up now
        labels = [_label(c) for c in _posts(workspace, CHANNEL) if not c.params.get("thread_ts")]
        assert labels == ["header", *(f"step {k}" for k in range(1, STEPS + 1))], labels
    finally:
        second.stop()


def test_a_stop_while_a_timer_job_runs_waits_for_it_and_ends(engine: Engine) -> None:
    # A step closing as the process stops plans the next step's timer: APScheduler's own
    # shutdown waited for that job while holding the lock the job needed, and neither moved.
    scheduler = Scheduler(engine)
    scheduler._aps.start()
    running, stopping, finished = threading.Event(), threading.Event(), threading.Event()

    def closing_step() -> None:
        running.set()
        stopping.wait(10)
        time.sleep(0.3)  # the stop is under way by now
        scheduler._remove("session:1:close")
        finished.set()

    scheduler._aps.add_job(closing_step, id="closing")
    stop = threading.Thread(target=scheduler.shutdown, daemon=True)
    assert running.wait(5)
    stopping.set()
    stop.start()
    stop.join(10)
    assert not stop.is_alive(), "the stop waited for ever"
    assert finished.is_set()  # the running job was let finish, not cut off
