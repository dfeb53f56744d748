"""A frozen clock (SIGSTOP, a paused VM, a hung process) is seen, replaced, and posts nothing more.

The clock's lock outlives a clock that is frozen: its connection stays open and answers the
server's keepalives. Without a beat the standby waited for ever, web processes said the clock was
running, and no step moved on.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from bot.notify import ClockFile, ClockLink, ClockWatch
from bot.slack_standin import SlackStandin
from bot.store.db import Database
from bot.store.models import OutboxMessage
from tests.conftest import PG_ADMIN_URL
from tests.harness import PRESENTER, Bot, migrated
from tests.test_processes import (
    Proc,
    _environment,
    _healthz,
    needs_postgres,
    notes_sent,
    top_level,
    wait_for,
)

URL = "postgresql+psycopg://u@127.0.0.1:1/none"  # never reached by the logic tests


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the logic, on a clock of the test's own ------------------------------------------------------
def test_a_clock_posts_only_while_its_beat_gets_through() -> None:
    ticks = Ticks()
    link = ClockLink(URL, lambda: None, lambda: None, lease_seconds=10, clock=ticks)
    assert not link.current(timeout=0), "no beat yet: not the clock"
    link._beaten()
    ticks.now += 9.9
    assert link.current(timeout=0)
    ticks.now += 0.2  # frozen past the lease: a standby may have taken over meanwhile
    assert not link.current(timeout=0)
    link._beaten()  # a beat got through after all: nobody took over
    assert link.current(timeout=0)


def test_a_clock_waiting_to_post_learns_at_once_that_another_took_over() -> None:
    ticks = Ticks()
    link = ClockLink(URL, lambda: None, lambda: None, lease_seconds=10, clock=ticks)
    link._beaten()
    ticks.now += 60  # woken from a freeze
    answers: list[bool] = []
    waiting = threading.Thread(target=lambda: answers.append(link.current(timeout=3600)))
    waiting.start()
    with link._current:
        link._lost = True
        link._current.notify_all()
    waiting.join(5)
    assert answers == [False]


def test_a_clock_that_may_not_post_leaves_its_posts_for_later(bot: Bot) -> None:
    # A clock woken from a freeze had its posts claimed before it: it makes no call while its
    # beat has not got through, and the posts go out, once each, when it does.
    allowed = [False]
    asked = threading.Event()

    def current(_wait: float) -> bool:
        asked.set()
        return allowed[0]

    sender = bot.runtime.sender
    sender.current = current
    assert asked.wait(5)  # the sender's rounds ask: none claims a row meanwhile
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(bot.runtime.answers.idle)
    for _ in range(2):  # two more rounds, and neither claims a row
        asked.clear()
        assert asked.wait(5)
    with bot.db.session() as s:
        assert s.scalar(select(func.count()).where(OutboxMessage.in_flight_at.is_not(None))) == 0
    sender.drain(1.0)  # a claim of its own: each call asks too
    assert bot.standin.calls_to("chat.postMessage") == []
    allowed[0] = True
    bot.settle()
    texts = [str(m.get("text", "")) for m in bot.posts() if not m.get("thread_ts")]
    assert len(texts) == 2 and texts[1].startswith("Step 1 "), texts


def test_a_clock_file_whose_holder_stopped_beating_is_stalled(tmp_path: Path) -> None:
    # SQLite: a frozen `serve` keeps its file lock; the stamp on the file shows it stopped.
    url = f"sqlite:///{tmp_path}/bot.sqlite3"
    clock = ClockFile(url).acquire()
    db = Database(url)
    ticks = Ticks()
    watch = ClockWatch(db, missed_after=20, stalled_after=15, clock=ticks)
    try:
        watch.tick()
        assert not watch.missing and not watch.stalled
        stamp = clock.path.stat().st_mtime - 16
        os.utime(clock.path, (stamp, stamp))
        watch.tick()
        assert watch.stalled and not watch.missing  # not yet for long enough
        ticks.now += 20
        watch.tick()
        assert watch.missing
        clock.beat()  # it woke
        watch.tick()
        assert not watch.missing and not watch.stalled
    finally:
        clock.stop()
        db.dispose()


def test_a_sqlite_clock_beats_however_long_its_timers_rounds_take(tmp_path: Path) -> None:
    # The stamp was the timers' round: one long round (a sweep of many events after a stop,
    # spaced ten times its CPU) left the file unstamped long enough to look stalled.
    clock = ClockFile(f"sqlite:///{tmp_path}/bot.sqlite3").acquire()
    try:
        stamp = clock.path.stat().st_mtime - 16
        os.utime(clock.path, (stamp, stamp))
        wait_for(lambda: clock.path.stat().st_mtime > stamp + 15, 5, "a beat")
    finally:
        clock.stop()


# -- on PostgreSQL ---------------------------------------------------------------------------------
@needs_postgres
def test_a_web_process_says_a_clock_that_stopped_beating_is_missing(
    workspace: SlackStandin, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.notify")
    web = Bot(workspace, database_url, with_scheduler=False)
    watch = web.runtime.clock_watch
    assert watch is not None and watch.stalled_after == 15.0
    watch.every, watch.missed_after, watch.stalled_after = 0.1, 0.3, 1.0
    frozen = ClockLink(database_url, lambda: None, lambda: None)
    assert frozen._try_acquire()  # holds the lock; its link never runs, so it never beats
    web.start()
    try:
        wait_for(lambda: _healthz(web).get("clock") == "missing", 10, "the stalled clock")
        assert watch.stalled
        frozen.start()  # it wakes and beats
        wait_for(lambda: _healthz(web).get("clock") == "running", 10, "the clock beating")
    finally:
        frozen.stop()
        web.stop()
    said = [r.getMessage() for r in caplog.records if r.name == "bot.notify"]
    assert said == [
        "the clock on this database has stopped beating (frozen or hung): no step moves on "
        "and nothing is posted until a standby clock takes over or it is restarted",
        "a clock is running on this database again",
    ]


@needs_postgres
def test_a_standby_ends_a_silent_clocks_connections_and_takes_over(database_url: str) -> None:
    lost: list[bool] = []
    frozen = ClockLink(
        database_url,
        lambda: None,
        lambda: None,
        on_lost=lambda: lost.append(True),
        name="protocolbot-clock:frozen",
    )
    assert frozen._try_acquire()
    # Another connection of the frozen process, in a transaction holding a row lock.
    db = Database(database_url, application_name=frozen.name)
    other = db.engine.connect()
    other.execute(text("CREATE TABLE held (id int)"))
    other.commit()
    other.execute(text("LOCK TABLE held"))
    standby = ClockLink(database_url, lambda: None, lambda: None, take_over_after=1.0)
    took_over = threading.Event()
    threading.Thread(target=lambda: (standby.acquire(), took_over.set()), daemon=True).start()
    try:
        assert took_over.wait(10), "the standby did not take over"
        assert standby.held
        with pytest.raises(Exception, match="terminat"):
            other.execute(text("SELECT 1"))
        # The frozen clock wakes: its link finds the lock taken, and it posts nothing more.
        frozen.start()
        wait_for(lambda: lost, 10, "the frozen clock to learn it was replaced")
        assert not frozen.current(timeout=0)
    finally:
        other.invalidate()
        other.close()
        db.dispose()
        frozen.stop()
        standby.stop()


@needs_postgres
def test_a_live_clock_is_never_taken_over(database_url: str) -> None:
    running = ClockLink(database_url, lambda: None, lambda: None, beat_seconds=0.2).start()
    standby = ClockLink(database_url, lambda: None, lambda: None, take_over_after=1.0)
    took_over = threading.Event()
    threading.Thread(target=lambda: (standby.acquire(), took_over.set()), daemon=True).start()
    try:
        assert not took_over.wait(3), "a standby took over from a clock that beats"
        assert running.current(timeout=0)
    finally:
        running.stop()
        standby.stop()
        assert took_over.wait(5)
        standby.stop()


# -- real processes --------------------------------------------------------------------------------
# The children's beat, shortened so that the test takes seconds: beats every 0.3 s, posts nothing
# 2 s after the last, replaced after 4 s without one.
_FAST = (
    "import sys, bot.notify as n; n.BEAT_SECONDS, n.LEASE_SECONDS, n.TAKE_OVER_SECONDS = "
    "0.3, 2.0, 4.0; from bot.cli import main; sys.exit(main())"
)


class FastProc(Proc):
    def spawn(self) -> None:
        import tests.test_processes as processes

        cli, processes._CLI = processes._CLI, _FAST
        try:
            super().spawn()
        finally:
            processes._CLI = cli


@needs_postgres
def test_a_frozen_clock_is_replaced_and_posts_nothing_when_it_wakes(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    if not PG_ADMIN_URL:
        pytest.skip("PostgreSQL only")
    env = _environment(workspace, database_url)
    migrated(database_url)
    first = FastProc("clock1", ["clock"], env, tmp_path)
    second = FastProc("clock2", ["clock"], env, tmp_path)
    web = FastProc("web", ["serve", "--no-scheduler", "--host", "127.0.0.1"], env, tmp_path)
    procs = [first, second, web]
    try:
        first.start()
        web.start()
        second.spawn()
        wait_for(lambda: b"standing by" in second.log_path.read_bytes(), 30, "the standby")
        from tests.fakes.signing import signed_headers, slash_command_body
        from tests.harness import SECRET, http_post

        body = slash_command_body(
            f"start dese-everyday <@{PRESENTER}|maria> step 6s",
            response_url=workspace.response_url(),
        )
        status, _ = http_post(web.events_url, body, signed_headers(body, SECRET))
        assert status == 200
        wait_for(lambda: "step 1" in top_level(workspace), 20, "step 1")
        assert first.proc is not None
        first.proc.send_signal(signal.SIGSTOP)  # frozen with step 1's close ahead of it
        wait_for(lambda: "step 2" in top_level(workspace), 30, "step 2, from the standby")
        assert "ending its connections and taking over" in second.log_path.read_text()
        first.proc.send_signal(signal.SIGCONT)  # it wakes with step 1's close overdue
        assert first.proc.wait(15) == 1, first.log_path.read_text()[-3000:]
        assert "another clock took over" in first.log_path.read_text()
        wait_for(lambda: notes_sent(workspace), 40, "the notes")
        # The presenter's copy may come first: the channel's notes are a moment behind it.
        wait_for(lambda: "notes" in top_level(workspace), 20, "the notes in the channel")
        labels = top_level(workspace)
        assert labels == ["header", "step 1", "step 2", "step 3", "notes"], labels
    finally:
        for proc in procs:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.proc.send_signal(signal.SIGCONT)
            proc.stop()


@needs_postgres
def test_a_standby_that_may_not_end_the_frozen_clock_says_why(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A standby running as another role, one that may see the clock's beat but not end its
    # connections: it says what to grant, once a look, and keeps standing by.
    role = f"standby_{os.getpid()}"
    admin = Database(database_url)
    with admin.engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(text(f"GRANT pg_read_all_stats TO {role}"))
    frozen = ClockLink(database_url, lambda: None, lambda: None)
    assert frozen._try_acquire()
    as_role = database_url.replace("//protocolbot@", f"//{role}@")
    standby = ClockLink(as_role, lambda: None, lambda: None, take_over_after=0.5)
    caplog.set_level(logging.ERROR, logger="bot.notify")
    try:
        wait_for(lambda: not standby._try_acquire() and caplog.records, 10, "the refusal")
        assert (
            caplog.records[0].getMessage().startswith("cannot end the frozen clock's connections")
        )
        assert frozen._conn is not None and frozen._conn.execute("SELECT 1").fetchone()
    finally:
        standby.stop()
        frozen.stop()
        with admin.engine.begin() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
        admin.dispose()
