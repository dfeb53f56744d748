"""Web processes and one clock (PRODUCT 4): NOTIFY/LISTEN, the one-clock lock, a cheap reconcile.

The end-to-end test runs two `protocolbot serve --no-scheduler` processes and one
`protocolbot clock` against one PostgreSQL database and the Slack stand-in, and sends a session's
events to both web processes in turn. `Cluster` is shared with tests/test_chaos.py.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from bot.notify import ClockFile, ClockLink, Notifier, NotifyTimers, parse_inbox
from bot.runtime import Runtime
from bot.slack_standin import Call, SlackStandin
from bot.store.db import Database
from bot.store.models import Contribution, InboxEvent, OutboxMessage, ProtocolSession, StepRun
from tests.conftest import PG_ADMIN_URL, database_out_of_reach
from tests.fakes.signing import event_body, signed_headers, slash_command_body
from tests.harness import (
    CHANNEL,
    PRESENTER,
    SECRET,
    TEACHERS,
    TEAM,
    Bot,
    http_post,
    migrated,
)
from tests.process import BotProcess, bot_environment, free_port, workers_taking

needs_postgres = pytest.mark.skipif(
    not PG_ADMIN_URL,
    reason="web and clock processes share one PostgreSQL (LISTEN/NOTIFY, row locks): "
    "set PROTOCOLBOT_TEST_POSTGRES to an admin URL, as .ci/run does",
)
_CLI = "import sys; from bot.cli import main; sys.exit(main())"


# -- processes -------------------------------------------------------------------------------------


def _environment(standin: SlackStandin, database_url: str) -> dict[str, str]:
    """A process's environment: the stand-in's Slack, the test's database, logs at INFO."""
    return bot_environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=standin.url,
        DATABASE_URL=database_url,
        LOG_LEVEL="INFO",
    )


class Proc(BotProcess):
    """`protocolbot ARGS` in a child process: a web process (`serve`) or the `clock`."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], workdir: Path) -> None:
        port = free_port() if args[0] == "serve" else 0
        super().__init__(env, workdir, port)
        self.name = name
        self._since = 0
        self.args = [*args, "--port", str(port)] if port else list(args)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        assert not self.up, f"{self.name} is already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self._since = log.tell()
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _CLI, *self.args],
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def ready(self) -> bool:
        if self.port:
            return self.healthy()
        # The clock has no port: it says so in its log once it holds the clock lock.
        with self.log_path.open("rb") as log:
            log.seek(self._since)
            return b"clock running" in log.read()

    def start(self, timeout: float = 30.0) -> float:
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log_path.read_text()[-3000:]}")
            if self.ready():
                return time.time()
            time.sleep(0.02)
        self.kill()
        raise AssertionError(f"{self.name} did not start:\n{self.log_path.read_text()[-3000:]}")


class Cluster:
    """Two web processes and a clock on one database, all pointed at the stand-in."""

    def __init__(self, standin: SlackStandin, database_url: str, workdir: Path) -> None:
        self.standin = standin
        env = _environment(standin, database_url)
        migrated(database_url)
        self.webs = [
            Proc(f"web{i}", ["serve", "--no-scheduler", "--host", "127.0.0.1"], env, workdir)
            for i in (1, 2)
        ]
        self.clock = Proc("clock", ["clock"], env, workdir)
        self.procs = [*self.webs, self.clock]

    def start(self) -> Cluster:
        for proc in self.procs:
            proc.spawn()
        deadline = time.monotonic() + 30
        while not all(p.ready() for p in self.procs):
            assert time.monotonic() < deadline, "the cluster did not start"
            for proc in self.procs:
                assert proc.up, proc.log_path.read_text()[-3000:]
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()

    def logs(self) -> str:
        return "\n".join(p.log_path.read_text() for p in self.procs if p.log_path.exists())

    def command(self, web: int, text: str) -> dict[str, Any]:
        body = slash_command_body(text, response_url=self.standin.response_url())
        status, answer = http_post(self.webs[web].events_url, body, signed_headers(body, SECRET))
        assert status == 200, answer
        return json.loads(answer) if answer else {}

    def deliver(self, body: str, first: int, *, give_up: float = 20.0) -> bool:
        """Deliver an event as Slack does: until a web process acknowledges it, retrying."""
        deadline = time.monotonic() + give_up
        attempt, web = 0, first
        while time.monotonic() < deadline:
            headers = signed_headers(body, SECRET)
            if attempt:
                headers["X-Slack-Retry-Num"] = str(attempt)
                headers["X-Slack-Retry-Reason"] = "http_error"
            try:
                status, _ = http_post(self.webs[web].events_url, body, headers)
            except OSError:
                status = 0
            if status == 200:
                return True
            attempt, web = attempt + 1, 1 - web
            time.sleep(0.05)
        return False


def reply_body(user: str, text: str, thread_ts: str, ts: str, event_id: str | None = None) -> str:
    return event_body(
        {
            "type": "message",
            "channel": CHANNEL,
            "user": user,
            "text": text,
            "ts": ts,
            "thread_ts": thread_ts,
            "channel_type": "channel",
            "team": "T_TEAM",
        },
        event_id=event_id,
    )


def posted(standin: SlackStandin, channel: str = CHANNEL) -> list[Call]:
    """chat.postMessage calls that took effect (answered, or applied unheard after a timeout)."""
    return [
        c
        for c in standin.calls_to("chat.postMessage")
        if c.params.get("channel") == channel and c.response.get("ok")
    ]


def top_level(standin: SlackStandin) -> list[str]:
    """What the channel shows at the top level: the header, each step, the notes (broadcast)."""
    calls = posted(standin)
    return [label(c) for c in calls if not c.params.get("thread_ts") or label(c) == "notes"]


def label(call: Call) -> str:
    text = str(call.params.get("text") or "")
    if text.startswith("Step "):
        return f"step {text.split()[1]}"
    if text.startswith("Notes from"):
        return "notes"
    return "header" if "starts now" in text else f"other: {text[:30]}"


def step_threads(standin: SlackStandin) -> dict[int, str]:
    """Step number -> the ts of its (first) message, from what the stand-in stored."""
    threads: dict[int, str] = {}
    for message in standin.messages(CHANNEL):
        text = str(message.get("text") or "")
        if (
            message.get("user") == "U_BOT"
            and text.startswith("Step ")
            and not message.get("thread_ts")
        ):
            threads.setdefault(int(text.split()[1]), str(message["ts"]))
    return threads


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def notes_sent(standin: SlackStandin) -> bool:
    return any(label(c) == "notes" for c in posted(standin, f"D{PRESENTER[1:]}"))


def settled(db: Database) -> bool:
    """Every stored event handled, every outbox row done."""
    with db.inbox_session() as s:
        unhandled = s.scalar(
            select(func.count()).select_from(InboxEvent).where(InboxEvent.processed_at.is_(None))
        )
    with db.session() as s:
        pending = s.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "pending")
        )
    return unhandled == 0 and pending == 0


# -- two web processes and a clock -----------------------------------------------------------------
@pytest.fixture
def cluster(workspace: SlackStandin, database_url: str, tmp_path: Path) -> Iterator[Cluster]:
    if not PG_ADMIN_URL:
        pytest.skip(needs_postgres.kwargs["reason"])
    running = Cluster(workspace, database_url, tmp_path).start()
    try:
        yield running
    finally:
        running.stop()


@needs_postgres
def test_two_web_processes_and_a_clock_run_a_session(
    cluster: Cluster, workspace: SlackStandin, database_url: str
) -> None:
    answer = cluster.command(0, f"start atlas <@{PRESENTER}|maria> step 2s")
    assert "starting" in answer["text"].lower()
    sent: dict[str, str] = {}  # ts -> text
    n = 0
    for step in (2, 3, 4):
        thread = wait_for(lambda k=step: step_threads(workspace).get(k), 10, f"step {step}")
        for user in TEACHERS:
            n += 1
            text = f"Reply {n}: there are {n} number lines on the page."
            ts = str(workspace.add_message(CHANNEL, user, text, thread_ts=thread)["ts"])
            sent[ts] = text
            body = reply_body(user, text, thread, ts)
            assert cluster.deliver(body, first=n % 2)
            if n % 3 == 0:
                # Slack's retry of the same event, to the other web process.
                assert cluster.deliver(body, first=(n + 1) % 2)
        if step == 3:
            # The same message delivered twice under two event ids, to both at once.
            user, n = TEACHERS[0], n + 1
            text = f"Reply {n}: delivered twice."
            ts = str(workspace.add_message(CHANNEL, user, text, thread_ts=thread)["ts"])
            sent[ts] = text
            both = [
                threading.Thread(
                    target=cluster.deliver, args=(reply_body(user, text, thread, ts), web)
                )
                for web in (0, 1)
            ]
            for t in both:
                t.start()
            for t in both:
                t.join()
            # Moved from the second web process: the clock must follow.
            cluster.command(1, "extend 2s")

    wait_for(lambda: notes_sent(workspace), 30, "the notes")
    db = Database(database_url)
    try:
        wait_for(lambda: settled(db), 10, "the inbox and outbox to settle")
        time.sleep(0.3)  # anything posted twice would show up now
        labels = top_level(workspace)
        assert labels == ["header", *(f"step {k}" for k in range(1, 7)), "notes"], labels
        with db.session() as s:
            session = s.scalars(select(ProtocolSession)).one()
            runs = s.scalars(select(StepRun).order_by(StepRun.index)).all()
            recorded = s.execute(select(Contribution.ts, Contribution.text)).all()
        assert session.status == "ended"
        assert sorted(ts for ts, _ in recorded) == sorted(sent), "each reply once"
        reactions = [c.params["timestamp"] for c in workspace.calls_to("reactions.add")]
        assert sorted(reactions) == sorted(sent), "one tag reaction per reply"
        # Step 3 ran 2 s longer than planned, on the clock's time too.
        lengths = [(r.ended_at - r.started_at) for r in runs if r.ended_at is not None]
        assert lengths[2] == timedelta(seconds=4), lengths
        steps = [c for c in posted(workspace) if label(c).startswith("step ")]
        for run, call in zip(runs, steps, strict=True):
            late = call.at - run.started_at.timestamp()
            assert -0.05 <= late <= 1.0, (run.index, late)
        # SIGTERM: each process, web or clock, finishes its work and exits cleanly.
        for proc in cluster.procs:
            assert proc.proc is not None
            assert (
                workers_taking(proc.proc.pid, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}) == []
            )
            proc.proc.terminate()
        assert [p.proc.wait(20) for p in cluster.procs if p.proc is not None] == [0, 0, 0]
        logs = cluster.logs()
        assert logs.count("stopped") == 3 and "Traceback" not in logs, logs[-3000:]
    finally:
        db.dispose()


@needs_postgres
def test_the_clock_rides_out_a_database_outage_in_a_few_log_lines(
    cluster: Cluster, workspace: SlackStandin, database_url: str
) -> None:
    """PostgreSQL out of reach for a few seconds while a session runs (a restart, a failover, a
    full server): the steps due meanwhile come once it is back, and the clock's log says so in
    a line or two, not a traceback or a line every second."""
    cluster.command(0, f"start atlas <@{PRESENTER}|maria> step 2s")
    wait_for(lambda: step_threads(workspace).get(2), 10, "step 2")
    with database_out_of_reach(database_url):
        time.sleep(6)  # step 2's close, and more, fall in here
    back = time.time()
    wait_for(lambda: notes_sent(workspace), 30, "the notes")
    # The presenter's copy and the channel's notes go to two channels, in either order.
    wait_for(lambda: "notes" in top_level(workspace), 10, "the notes in the channel")
    labels = top_level(workspace)
    assert labels == ["header", *(f"step {k}" for k in range(1, 7)), "notes"], labels
    step3 = next(c for c in posted(workspace) if label(c) == "step 3")
    assert step3.at - back < 3.0, "the step due in the outage comes when the database is back"
    said = cluster.clock.log_path.read_text()
    assert "Traceback" not in said, said[-3000:]
    lines = said.splitlines()
    for logger in ("bot.notify", "bot.scheduling", "apscheduler"):
        outage = [line for line in lines if f" {logger}" in line]
        assert len(outage) <= 3, outage


# -- the notification path, in one test process ---------------------------------------------
@needs_postgres
def test_a_deadline_set_by_a_web_process_reaches_the_clock_within_a_second(
    workspace: SlackStandin, database_url: str
) -> None:
    web = Bot(workspace, database_url, with_scheduler=False).start()
    clock = Runtime(web.settings, database=Database(database_url))
    assert clock.scheduler is not None
    clock.scheduler.reconcile_seconds = 3600  # no periodic safety net: only NOTIFY can tell it
    clock.start()
    try:
        assert isinstance(web.runtime.engine.timers, NotifyTimers)
        web.command(f"start dese-everyday <@{PRESENTER}|maria> step 1s")
        web.wait_until(lambda: len(web.step_posts()) == 3, timeout=10)
        with web.db.session() as s:
            runs = s.scalars(select(StepRun).order_by(StepRun.index)).all()
        calls = [c for c in workspace.calls_to("chat.postMessage") if label(c).startswith("step")]
        for run, call in zip(runs, calls, strict=True):
            assert call.at - run.started_at.timestamp() <= 1.0, run.index
    finally:
        clock.stop()
        clock.db.dispose()
        web.stop()


class _ClockAhead:
    """A machine whose clock runs ahead of the others'."""

    def __init__(self, seconds: float) -> None:
        self.ahead = timedelta(seconds=seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.ahead


def test_a_web_process_whose_clock_runs_ahead_delays_no_post(
    workspace: SlackStandin, database_url: str
) -> None:
    # The web process's machine is 8 s ahead of the clock's: what it writes to the outbox (the
    # header and step 1 of a session started now) goes out at once, not when the clock's
    # machine reaches the web's time.
    web = Bot(workspace, database_url, with_scheduler=False, clock=_ClockAhead(8)).start()
    clock = Runtime(web.settings, database=Database(database_url)).start()
    try:
        asked = time.time()
        web.command(f"start atlas <@{PRESENTER}|maria> step 1h")
        web.wait_until(lambda: len(web.step_posts()) == 1, timeout=15)
        first = next(c for c in workspace.calls_to("chat.postMessage") if label(c) == "step 1")
        assert first.at - asked < 3.0, f"step 1 posted {first.at - asked:.1f} s after the start"
    finally:
        clock.stop()
        clock.db.dispose()
        web.stop()


def opened_then_no_clock(web: Bot, clock: Runtime) -> str:
    """An ATLAS session started through a web process and opened by `clock`, which then stops:
    the open step's ts."""
    web.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    web.wait_until(lambda: bool(web.step_posts()))
    clock.stop()
    clock.db.dispose()
    return str(web.step_posts()[0]["ts"])


@needs_postgres
def test_a_web_process_stores_and_acks_and_the_clock_handles_each_event(
    workspace: SlackStandin, database_url: str
) -> None:
    web = Bot(workspace, database_url, with_scheduler=False).start()
    # For more events than one clock keeps up with: a web process that handles its own.
    handler = Bot(workspace, database_url, with_scheduler=False, handle_events=True).start()

    def clock_runtime() -> Runtime:
        clock = Runtime(web.settings, database=Database(database_url))
        assert clock.scheduler is not None
        clock.scheduler.reconcile_seconds = 3600  # no periodic sweep: only NOTIFY can tell it
        return clock.start()

    def unhandled() -> list[int]:
        with web.db.session() as s:
            return list(s.scalars(select(InboxEvent.id).where(InboxEvent.processed_at.is_(None))))

    clock = clock_runtime()
    try:
        thread = opened_then_no_clock(web, clock)

        # No clock: the web process acknowledges and stores the reply, and handles nothing.
        first = web.reply(TEACHERS[0], "She wrote three drafts.", thread)
        web.settle()
        assert len(unhandled()) == 1 and web.recorded() == []
        # ...while one started with --handle-events records what it stores, clock or not.
        own = handler.reply(TEACHERS[2], "Each draft is longer.", thread)
        handler.settle()
        assert len(unhandled()) == 1 and web.recorded() == [own]

        # A clock that starts handles what was left; then each reply the web process names.
        clock = clock_runtime()
        web.wait_until(lambda: web.recorded() == [own, first], timeout=5)
        second = web.reply(TEACHERS[1], "The second draft has no title.", thread)
        wait_for(lambda: web.recorded() == [own, first, second], 1.0, "the clock handling it")
        wait_for(
            lambda: (
                {c.params["timestamp"] for c in workspace.calls_to("reactions.add")}
                >= {own, first, second}
            ),
            2.0,
            "the tag reactions",
        )
        assert unhandled() == []
    finally:
        clock.stop()
        clock.db.dispose()
        handler.stop()
        web.stop()


@needs_postgres
def test_a_reply_a_web_process_acknowledged_just_before_the_end_is_in_the_notes(
    workspace: SlackStandin, database_url: str
) -> None:
    # The web process hands its events to the clock: `end` typed a moment after the replies
    # built the notes before the clock had recorded them, and they followed as "one more".
    web = Bot(workspace, database_url, with_scheduler=False).start()
    clock = Runtime(web.settings, database=Database(database_url)).start()
    try:
        web.command(f"start atlas <@{PRESENTER}|maria> step 1h")
        web.wait_until(lambda: bool(web.step_posts()))
        clock.sender.drain(5)
        thread = str(web.step_posts()[0]["ts"])
        for n in range(5):
            web.reply(TEACHERS[n % 3], f"Reply {n}, just in time.", thread)
        web.command("end")
        web.wait_until(lambda: _unhandled(web) == 0)
        clock.sender.drain(5)
        (notes,) = [m for m in web.posts() if str(m.get("text")).startswith("Notes from")]
        assert all(f"Reply {n}, just in time." in json.dumps(notes) for n in range(5))
        assert not [m for m in web.posts() if "One more" in str(m.get("text"))]
    finally:
        clock.stop()
        clock.db.dispose()
        web.stop()


def test_an_inbox_notification_names_rows_and_channels_and_drops_what_it_cannot_read() -> None:
    assert parse_inbox("inbox:12=C1") == [(12, "C1")]
    assert parse_inbox("inbox:12=C1,garbage,=C2,13=") == [(12, "C1"), (13, "")]


def test_on_sqlite_a_web_process_has_no_one_to_tell(tmp_path: Path) -> None:
    notifier = Notifier(Database(f"sqlite:///{tmp_path}/x.sqlite3")).start()
    NotifyTimers(notifier).step_deadline(1, 1, _now())
    notifier.outbox_changed()
    assert not notifier.enabled and notifier._thread is None
    notifier.stop()


@needs_postgres
def test_a_second_clock_stands_by_until_the_first_one_stops(database_url: str) -> None:
    heard: list[str] = []
    first = ClockLink(database_url, lambda: heard.append("deadline"), lambda: None).start()
    second = ClockLink(database_url, lambda: None, lambda: None)
    took_over = threading.Event()
    threading.Thread(target=lambda: (second.acquire(), took_over.set()), daemon=True).start()
    try:
        assert not took_over.wait(1.5), "two clocks at once"
        notifier = Notifier(Database(database_url)).start()
        notifier.notify("deadline")
        wait_for(lambda: heard, 2, "the notification")
        notifier.stop()
        notifier.db.dispose()
        first.stop()
        assert took_over.wait(3), "the standby did not take over"
    finally:
        first.stop()
        second.stop()


@needs_postgres
def test_the_clocks_lock_is_given_up_within_a_minute_of_its_host_going_silent(
    database_url: str,
) -> None:
    # Held by a connection the server kept for two hours (the kernel's keepalive) after the
    # clock's host died or was cut off: no standby could take over, and no step moved on.
    from bot.notify import SERVER_KEEPALIVES

    link = ClockLink(database_url, lambda: None, lambda: None)
    assert link._try_acquire()
    try:
        assert link._conn is not None
        said = {
            name: link._conn.execute(f"SHOW {name}").fetchone()
            for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
        }
        assert said == {name: (str(n),) for name, n in SERVER_KEEPALIVES.items()}
        k = SERVER_KEEPALIVES
        given_up = (
            k["tcp_keepalives_idle"] + k["tcp_keepalives_interval"] * k["tcp_keepalives_count"]
        )
        assert given_up <= 60
    finally:
        link.stop()


@needs_postgres
def test_a_standby_clock_stops_when_asked(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    """SIGTERM to a second clock standing by stops it at once; the first one runs on."""
    env = _environment(workspace, database_url)
    migrated(database_url)
    first = Proc("clock1", ["clock"], env, tmp_path)
    second = Proc("clock2", ["clock"], env, tmp_path)
    first.start()
    try:
        second.spawn()
        wait_for(lambda: b"standing by" in second.log_path.read_bytes(), 20, "the standby")
        assert second.proc is not None
        second.proc.terminate()
        assert second.proc.wait(5) == 0, second.log_path.read_text()
        assert "stopped while standing by" in second.log_path.read_text()
        assert first.up and "clock running" not in second.log_path.read_text()
    finally:
        second.kill()
        first.stop()


@needs_postgres
def test_a_serve_with_the_timers_beside_a_clock_says_how_to_run_beside_it(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    """A `serve` (timers and all) started beside a running clock stands by and does not listen:
    its line says to start it as a web process instead."""
    env = _environment(workspace, database_url)
    migrated(database_url)
    clock = Proc("clock", ["clock"], env, tmp_path)
    serve = Proc("serve", ["serve", "--host", "127.0.0.1"], env, tmp_path)
    clock.start()
    try:
        serve.spawn()
        wait_for(lambda: b"standing by" in serve.log_path.read_bytes(), 20, "the standby")
        line = next(x for x in serve.log_path.read_text().splitlines() if "standing by" in x)
        assert line.endswith(
            "is running on this database: standing by until it stops; to answer Slack beside "
            "it, start this process as `protocolbot serve --no-scheduler`"
        ), line
        assert not serve.healthy()
    finally:
        serve.stop()
        clock.stop()


def _healthz(bot: Bot) -> dict[str, Any]:
    with urllib.request.urlopen(bot.url.replace("slack/events", "healthz")) as answer:
        assert answer.status == 200
        return dict(json.loads(answer.read()))


@needs_postgres
def test_a_web_process_says_when_no_clock_runs_and_when_one_is_back(
    workspace: SlackStandin, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With the clock forgotten or dead, a start was answered "on its way" and never posted,
    and nothing said why: the web process says so once in its log and in /healthz."""
    caplog.set_level(logging.WARNING, logger="bot.notify")
    web = Bot(workspace, database_url, with_scheduler=False)
    watch = web.runtime.clock_watch
    assert watch is not None and (watch.every, watch.missed_after) == (5.0, 20.0)
    watch.every, watch.missed_after = 0.1, 0.3
    looked: list[str] = []  # the threads that asked PostgreSQL about the clock's lock

    def sent(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if "pg_locks" in sql:
            looked.append(threading.current_thread().name)

    event.listen(web.db.engine, "before_cursor_execute", sent)
    web.start()
    clock: ClockLink | None = None
    try:
        wait_for(lambda: _healthz(web).get("clock") == "missing", 5, "the clock missed")
        assert _healthz(web) == {"ok": True, "database": "ok", "clock": "missing"}
        # Requests read nothing more than they did: the watch looks from its own thread.
        assert set(looked) == {"clock-watch"}
        clock = ClockLink(database_url, lambda: None, lambda: None).start()
        wait_for(lambda: _healthz(web).get("clock") == "running", 5, "the clock seen again")
        seen = len(looked)  # a few more looks: nothing more is said
        wait_for(lambda: len(looked) >= seen + 5, 5, "more looks at the clock")
    finally:
        if clock is not None:
            clock.stop()
        web.stop()
    said = [r.getMessage() for r in caplog.records if r.name == "bot.notify"]
    assert said == [
        "no clock is running on this database: no step moves on and nothing is posted until "
        "one does: start `protocolbot clock`",
        "a clock is running on this database again",
    ]


@needs_postgres
def test_a_clock_gone_for_a_moment_is_not_said_missing(
    workspace: SlackStandin, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A web process said "no clock is running" for 30 s while one ran: its two looks, 30 s
    apart, had each found none for a moment (the web process started before the clock, then a
    database restart dropped the clock's lock for a second). Now only a clock missing at every
    look for a while is missing, and that is seen sooner than at the second look 30 s later."""
    caplog.set_level(logging.WARNING, logger="bot.notify")
    web = Bot(workspace, database_url, with_scheduler=False)
    watch = web.runtime.clock_watch
    assert watch is not None
    # The looks are taken here, on the watch's own clock: 5 s apart, missing after 20 s.
    now = [0.0]
    watch.clock, watch.at_once, watch.every = (lambda: now[0]), False, 3600.0

    def look(after: float = 5.0) -> None:
        now[0] += after
        watch.tick()

    web.start()
    clock = ClockLink(database_url, lambda: None, lambda: None).start()
    try:
        look()
        for _ in range(2):  # the clock restarts, each time gone for several looks
            clock.stop()
            look()
            look()
            clock = ClockLink(database_url, lambda: None, lambda: None).start()
            look()
        assert _healthz(web).get("clock") == "running"
        assert [r.getMessage() for r in caplog.records if r.name == "bot.notify"] == []
        clock.stop()  # and now for good
        wait_for(lambda: not watch._running(), 5, "the clock's lock let go")
        for _ in range(4):
            look()
        assert _healthz(web).get("clock") == "running"  # 15 s without it
        look()
        assert _healthz(web).get("clock") == "missing"  # 20 s
    finally:
        clock.stop()
        web.stop()
    said = [r.getMessage() for r in caplog.records if r.name == "bot.notify"]
    assert said == [
        "no clock is running on this database: no step moves on and nothing is posted until "
        "one does: start `protocolbot clock`"
    ]


@needs_postgres
def test_looks_at_the_clock_begin_again_after_a_database_outage(database_url: str) -> None:
    # A look that found no clock, an outage longer than the watch's patience, and one more
    # look after it: "no clock is running" at once, though nothing was seen of it meanwhile.
    from bot.notify import ClockWatch

    db = Database(database_url)
    now = [0.0]
    watch = ClockWatch(db, every=60, missed_after=1.0, clock=lambda: now[0])
    try:
        watch.tick()  # no clock on this database
        with database_out_of_reach(database_url):
            watch.tick()
            now[0] += 1.2
        watch.tick()
        assert not watch.missing
        now[0] += 1.1
        watch.tick()
        assert watch.missing
    finally:
        db.dispose()


def test_a_web_process_on_sqlite_says_when_no_clock_runs_and_when_one_is_back(
    workspace: SlackStandin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`serve --no-scheduler` on a SQLite file with nothing holding its timers said "listening"
    and /healthz said all was well, while no start would ever be posted."""
    if PG_ADMIN_URL:
        pytest.skip("SQLite's clock lock: the SQLite run has it")
    url = f"sqlite:///{tmp_path}/bot.sqlite3"
    caplog.set_level(logging.WARNING, logger="bot.notify")
    web = Bot(workspace, url, with_scheduler=False)
    watch = web.runtime.clock_watch
    assert watch is not None
    watch.every, watch.missed_after = 0.1, 0.3
    web.start()
    clock: ClockFile | None = None
    try:
        wait_for(lambda: _healthz(web).get("clock") == "missing", 5, "the clock missed")
        clock = ClockFile(url).acquire()
        assert clock.held
        wait_for(lambda: _healthz(web).get("clock") == "running", 5, "the clock seen")
        clock.stop()  # and a clock that stops is missed again
        wait_for(lambda: _healthz(web).get("clock") == "missing", 5, "the clock missed again")
        again = ClockFile(url).acquire()
        assert again.held  # the looks never kept a clock from starting
        again.stop()
    finally:
        web.stop()
    said = [r.getMessage() for r in caplog.records if r.name == "bot.notify"]
    assert said[:2] == [
        "no clock is running on this database: no step moves on and nothing is posted until "
        "one does: start `protocolbot clock`",
        "a clock is running on this database again",
    ]


# -- reconcile ------------------------------------------------------------------------------------
@needs_postgres
def test_a_reconcile_held_up_by_the_database_does_not_put_off_the_next_ones(bot: Bot) -> None:
    """The clock spaces reconciles by ten times the last one's length, to keep them a tenth of
    its time. A reconcile that waited 3 s on the database (a lock, a stalled server) put the
    next one off by 30 s, and the inbox sweep with it: a deadline or an event the clock was not
    told of waited that long once the database was back."""
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    scheduler = bot.runtime.scheduler
    assert scheduler is not None
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND datname = current_database()"
    )

    def reconcile_waits() -> bool:
        with bot.db.engine.connect() as conn:  # pg_stat_activity stays as a transaction saw it
            return bool(conn.execute(waiting).scalar())

    with bot.db.engine.connect() as holder:
        holder.execute(text("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE"))
        scheduler.request_reconcile()
        bot.wait_until(reconcile_waits)
        time.sleep(3)
        holder.commit()
    # A step's close moved with no word to the clock (a notification lost): the next reconcile
    # finds it.
    with bot.db.session() as s:
        session = s.scalars(select(ProtocolSession)).one()
        session.step_closes_at = datetime.now(UTC) + timedelta(seconds=1)
    bot.wait_until(lambda: len(bot.step_posts()) == 2, timeout=8)


def test_a_reconcile_with_nothing_new_touches_no_job(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    scheduler = bot.runtime.scheduler
    assert scheduler is not None
    scheduler.reconcile()
    aps = scheduler._aps
    added: list[str] = []
    real_add = aps.add_job

    def add_job(*args: Any, **kwargs: Any) -> Any:
        added.append(kwargs["id"])
        return real_add(*args, **kwargs)

    def get_jobs(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a reconcile must not load (unpickle) every job")

    aps.add_job, aps.get_jobs = add_job, get_jobs  # type: ignore[method-assign]
    try:
        scheduler.reconcile()
        assert added == []
        # A deadline moved behind the scheduler's back (as a web process would): one job moves.
        with bot.db.session() as s:
            session = s.scalars(select(ProtocolSession)).one()
            assert session.step_closes_at is not None
            session.step_closes_at += timedelta(minutes=5)
        scheduler.reconcile()
        assert added == [f"session:{session.id}:step:1:close"]
    finally:
        aps.add_job, aps.get_jobs = real_add, type(aps).get_jobs.__get__(aps)  # type: ignore[method-assign]


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


# -- the inbox: durable before the ack, once however often it comes -------------------------------
def _reply_event(bot: Bot, text: str, *, ts: str | None = None) -> tuple[str, str]:
    """A reply in step 1's thread as Slack sends it: (its body, its ts)."""
    thread = str(bot.step_posts()[0]["ts"])
    ts = ts or str(bot.standin.add_message(CHANNEL, TEACHERS[0], text, thread_ts=thread)["ts"])
    return reply_body(TEACHERS[0], text, thread, ts), ts


def _unhandled(bot: Bot) -> int:
    with bot.db.inbox_session() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(InboxEvent)
                .where(InboxEvent.processed_at.is_(None))
            )
            or 0
        )


def _started(bot: Bot) -> Bot:
    assert bot.runtime.scheduler is not None
    bot.runtime.scheduler.every_tick.clear()  # no background sweep: this test does it by hand
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.runtime.sender.drain(5)  # and the step's ts is written down, so replies can be placed
    return bot


def test_retries_and_duplicate_deliveries_are_recorded_once(bot: Bot) -> None:
    _started(bot)
    body, ts = _reply_event(bot, "The student drew two number lines.")
    for retry in (None, "1", "2", "3"):
        headers = signed_headers(body, SECRET)
        if retry:
            headers["X-Slack-Retry-Num"] = retry
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        assert http_post(bot.url, body, headers)[0] == 200
    # The same message again under a new event id (Slack does that too).
    again, _ = _reply_event(bot, "The student drew two number lines.", ts=ts)
    assert http_post(bot.url, again, signed_headers(again, SECRET))[0] == 200
    bot.wait_until(lambda: _unhandled(bot) == 0 and bool(bot.recorded()))
    bot.runtime.sender.drain(5)
    with bot.db.inbox_session() as s:
        stored = s.scalar(select(func.count()).select_from(InboxEvent))
    assert stored == 2  # the retries never got past the door
    assert bot.recorded() == [ts]
    assert [c.params["timestamp"] for c in bot.standin.calls_to("reactions.add")] == [ts]


def test_an_event_is_stored_before_the_ack_and_handled_after_a_crash(bot: Bot) -> None:
    _started(bot)
    bot.runtime.inbox.submit = lambda *args: None  # type: ignore[method-assign]  # dies after ack
    body, ts = _reply_event(bot, "Kept across the crash.")
    assert http_post(bot.url, body, signed_headers(body, SECRET))[0] == 200
    assert (_unhandled(bot), bot.recorded()) == (1, [])
    assert bot.runtime.inbox.replay() == 1  # what the next start does
    assert (_unhandled(bot), bot.recorded()) == (0, [ts])


def test_a_reply_to_a_step_whose_post_is_in_flight_waits_for_it(bot: Bot) -> None:
    _started(bot)
    # The sender posted step 1 but died before writing its ts down: the thread is unknown.
    with bot.db.session() as s:
        run = s.scalars(select(StepRun)).one()
        known, run.message_ts = run.message_ts, None
    body, ts = _reply_event(bot, "Written in a thread the bot can't place yet.")
    assert http_post(bot.url, body, signed_headers(body, SECRET))[0] == 200
    bot.wait_until(lambda: not bot.runtime.inbox._queued)
    assert (_unhandled(bot), bot.recorded()) == (1, [])
    with bot.db.session() as s:
        s.scalars(select(StepRun)).one().message_ts = known  # the restarted sender finds it
    bot.runtime.inbox.sweep(older_than=timedelta(0))
    assert (_unhandled(bot), bot.recorded()) == (0, [ts])


def test_events_given_up_on_do_not_hide_newer_ones_from_the_sweep(bot: Bot) -> None:
    # The sweep took the oldest unhandled events and then left out those it had given up on:
    # a batch of those alone, and a newer event was never handled until a restart.
    from bot.inbox import MAX_TRIES

    _started(bot)
    inbox = bot.runtime.inbox
    inbox.submit = lambda *args: None  # type: ignore[method-assign]  # dies after each ack
    handler = inbox.handler

    def failing(team: str, event: dict[str, Any]) -> None:
        if str(event.get("text", "")).startswith("Broken"):
            raise ValueError("cannot be handled")
        handler(team, event)

    inbox.handler = failing
    sent: list[str] = []
    for said in ("Broken one.", "Broken two.", "Kept after them."):
        body, ts = _reply_event(bot, said)
        sent.append(ts)
        assert http_post(bot.url, body, signed_headers(body, SECRET))[0] == 200
    for _ in range(MAX_TRIES):
        assert inbox.sweep(older_than=timedelta(0), batch=2) == 2
    assert bot.recorded() == []
    assert inbox.sweep(older_than=timedelta(0), batch=2) == 1
    assert bot.recorded() == [sent[2]] and _unhandled(bot) == 2


def test_an_event_the_database_refuses_alone_is_given_up_and_an_outage_loses_none(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    # A statement the database refused for one event alone (an OperationalError, such as a
    # row too large for an index) was taken for an outage: no try counted, and it was tried
    # at every sweep for ever, with "cannot reach the database" and "is back" every time.
    from sqlalchemy.exc import OperationalError

    from bot.inbox import MAX_TRIES

    _started(bot)
    inbox = bot.runtime.inbox
    inbox.submit = lambda *args: None  # type: ignore[method-assign]  # dies after each ack
    handler = inbox.handler
    tried: list[str] = []
    down = [True]

    def refusing(team: str, event: dict[str, Any]) -> None:
        text = str(event.get("text", ""))
        tried.append(text)
        if text.startswith("Too big") or down[0]:
            raise OperationalError("INSERT INTO contributions", None, Exception("too large"))
        handler(team, event)

    inbox.handler = refusing
    caplog.set_level(logging.WARNING, logger="bot.inbox")

    def deliver(said: str) -> str:
        body, ts = _reply_event(bot, said)
        assert http_post(bot.url, body, signed_headers(body, SECRET))[0] == 200
        return ts

    # An outage: every event fails, sweep after sweep; none is given up.
    kept = [deliver("Too big for the index."), deliver("Written in the outage.")]
    for _ in range(3 * MAX_TRIES):
        inbox.sweep(older_than=timedelta(0))
    down[0] = False
    inbox.sweep(older_than=timedelta(0))
    assert bot.recorded() == [kept[1]]
    # It is back, and one event still fails while others go through: given up after MAX_TRIES.
    for n in range(3 * MAX_TRIES):
        kept.append(deliver(f"Reply {n}."))
        inbox.sweep(older_than=timedelta(0))
    assert tried.count("Too big for the index.") <= 3 * MAX_TRIES + 1 + MAX_TRIES + 1
    before = tried.count("Too big for the index.")
    for _ in range(3):
        inbox.sweep(older_than=timedelta(0))
    assert tried.count("Too big for the index.") == before, "tried for ever"
    assert bot.recorded() == kept[1:] and _unhandled(bot) == 1  # kept for the next start
    said = [r.getMessage() for r in caplog.records if r.name == "bot.inbox"]
    assert sum("waits for the next start" in line for line in said) == 1, said


@needs_postgres
def test_two_processes_reaching_for_one_event_handle_it_once(bot: Bot) -> None:
    from bot.inbox import Inbox

    _started(bot)
    bot.runtime.inbox.submit = lambda *args: None  # type: ignore[method-assign]
    body, ts = _reply_event(bot, "Claimed once.")
    assert http_post(bot.url, body, signed_headers(body, SECRET))[0] == 200
    with bot.db.inbox_session() as s:
        row_id = s.scalars(select(InboxEvent.id)).one()
    calls: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def held(team: str, event: dict[str, Any]) -> None:
        calls.append(team)
        holding.set()  # the first process holds the row's lock while it handles the event
        assert release.wait(10), "the second process waited on the lock instead of skipping"
        bot.runtime.replies.handle(team, event)

    first, second = (Inbox(bot.db, bot.runtime.clock, held) for _ in range(2))
    racing = threading.Thread(target=first.process, args=(row_id,))
    racing.start()
    assert holding.wait(10)
    second.process(row_id)  # skips the locked row at once
    release.set()
    racing.join()
    second.process(row_id)  # and later finds it handled
    assert calls == [TEAM] and bot.recorded() == [ts] and _unhandled(bot) == 0
