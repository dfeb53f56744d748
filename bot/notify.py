"""Web processes tell the clock what changed: NOTIFY out, LISTEN in (PostgreSQL only).

Only the clock runs the scheduler and the outbox sender: APScheduler 3 cannot share a job store
between processes, and one sender keeps each channel's posts in order and within Slack's pace. A web
process records deadlines and outbox rows in the database; after the commit it sends
`NOTIFY protocolbot, 'deadline'` (or `'outbox'`), and the clock, LISTENing on a connection of its
own, reconciles its timers (or wakes its sender) at once. A notification lost to a crash between
the commit and the NOTIFY is caught by the clock's periodic reconcile and outbox poll.

Events work the same way: the one statement with which a web process stores an event before its
ack also sends `NOTIFY protocolbot, 'inbox:<id>=<channel>'` (bot/inbox.py), and the clock handles
the row. The acking process then does nothing else per event, and a notification lost with the
link leaves the row for the clock's sweep.

The clock holds a PostgreSQL advisory lock on that same connection while it runs, so a second clock
started by mistake stands by instead of running every timer twice; the lock goes with the
connection when a clock dies, and the standby takes over. A clock that is alive beats: its link
runs a trivial statement on that connection every BEAT_SECONDS, which PostgreSQL shows as the
connection's `state_change` in pg_stat_activity (nothing written). A clock frozen (SIGSTOP, a
paused VM, a hung process) keeps its connection and lock but stops beating: web processes say so
(ClockWatch), and a standby that hears no beat for TAKE_OVER_SECONDS ends every connection of the
frozen clock (each one names it in `application_name`), which frees its lock and its row locks,
and takes over. The frozen clock, when it wakes, posts nothing until a beat gets through again
(`current`): its link finds the lock gone, and the process exits at once, writing nothing. On
SQLite there is nothing to tell,
but the same holds: the process that runs the timers (by default the one process) holds an OS
lock on a file beside the database (`ClockFile`), and a second one started on that file by
mistake stands by rather than posting every step and note a second time.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import make_url, text
from sqlalchemy.exc import OperationalError

from bot.clock import Every
from bot.logs import Outage
from bot.store.db import Database, connect_timeout

if TYPE_CHECKING:  # psycopg is installed with the `postgres` extra only
    import psycopg

log = logging.getLogger(__name__)

CHANNEL = "protocolbot"
DEADLINE, OUTBOX = "deadline", "outbox"
INBOX = "inbox:"  # followed by stored events as id=channel, comma-separated
NamedEvent = tuple[int, str]  # an inbox row's id and the channel whose lane it belongs to
CLOCK_LOCK = 0x70726F74  # the advisory lock key only the running clock holds ("prot")


class Notifier:
    """Sends NOTIFYs from a thread of its own, coalesced, so no request waits for them."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.enabled = db.is_postgres
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def notify(self, kind: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._pending.add(kind)
        self._wake.set()

    def outbox_changed(self) -> None:
        self.notify(OUTBOX)

    def start(self) -> Notifier:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is still pending, then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                kinds, self._pending = self._pending, set()
            if kinds:
                self._send(sorted(kinds))
            if self._stop.is_set():
                return

    def _send(self, payloads: list[str]) -> None:
        try:
            with self.db.engine.connect() as conn:
                conn.execute(
                    text("SELECT pg_notify(:channel, :payload)"),
                    [{"channel": CHANNEL, "payload": payload} for payload in payloads],
                )
                conn.commit()
        except Exception as exc:
            log.warning(
                "could not notify the clock (%s); its periodic reconcile will catch up",
                type(exc).__name__,
            )


def parse_inbox(payload: str) -> list[NamedEvent]:
    """The stored events an inbox payload names; anything malformed is left to the sweep."""
    stored: list[NamedEvent] = []
    for item in payload[len(INBOX) :].split(","):
        row_id, _, channel = item.partition("=")
        if row_id.isdigit():
            stored.append((int(row_id), channel))
    return stored


class NotifyTimers:
    """The engine's Timers in a web process: the deadline is in the database; tell the clock."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def step_deadline(self, session_id: int, step: int, at: datetime) -> None:
        self.notifier.notify(DEADLINE)

    def step_warning(self, session_id: int, step: int, at: datetime) -> None:
        self.notifier.notify(DEADLINE)

    def session_start(self, session_id: int, at: datetime) -> None:
        self.notifier.notify(DEADLINE)

    def prep_due(self, session_id: int, kind: str, at: datetime) -> None:
        self.notifier.notify(DEADLINE)

    def clear(self, session_id: int) -> None:
        self.notifier.notify(DEADLINE)


def libpq_url(database_url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as a libpq connection string."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


# The clock's lock lasts as long as its connection. A clock whose host dies, or is cut off,
# without closing it would hold the lock, and keep a standby from taking over, until the server
# gave the connection up: two hours by the kernel's default keepalive. Probed after 30 s idle,
# every 10 s, three times: a dead clock's lock is free in about a minute, on both ends (on a
# Unix socket, where no host can vanish, the server ignores them).
SERVER_KEEPALIVES = {
    "tcp_keepalives_idle": 30,
    "tcp_keepalives_interval": 10,
    "tcp_keepalives_count": 3,
}
CLIENT_KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


# The clock's beat (see the module's docstring). A standby takes over from a clock silent for
# TAKE_OVER_SECONDS: long past any pause of a live one (a slow round, a garbage collection), short
# enough that steps are only that late. A web process says the clock is stalled sooner. A clock
# posts nothing once LEASE_SECONDS have passed since its last beat got through, until one does:
# by then it may have been frozen, and a standby may have taken its place.
BEAT_SECONDS = 2.0
LEASE_SECONDS = 10.0
STALLED_SECONDS = 15.0
TAKE_OVER_SECONDS = 30.0
# What every connection of a process that runs the timers calls itself, followed by which one.
CLOCK_NAME = "protocolbot-clock"


# What a web process's connections call themselves: the clock sees whether any web process runs.
WEB_NAME = "protocolbot-web"
# How often the clock looks for web processes. After a time with none (all stopped, crashed or
# cut off from the database), Slack has given up on the events it sent meanwhile.
WEB_CHECK_SECONDS = 5.0
WEBS_RUNNING = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND application_name LIKE %(prefix)s"
)


def clock_name() -> str:
    """This process's name among clocks: its connections carry it (application_name), so a
    standby taking over from it ends them all. Within PostgreSQL's 63 characters."""
    return f"{CLOCK_NAME}:{socket.gethostname()[:20]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def web_name() -> str:
    """A web process's name, carried by its connections as a clock's are."""
    return f"{WEB_NAME}:{socket.gethostname()[:20]}:{os.getpid()}"


def elapsed() -> float:
    """Seconds on a clock that goes on while the machine sleeps (a suspended laptop or VM), so
    a clock waking from one knows how long it was gone."""
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic()


# The session holding the clock lock on this database: its pid, its name and the seconds since
# it last ran a statement (0 while one runs, or when this role may not see it: never stalled).
# pg_locks shows a bigint advisory key as its two halves, objsubid 1. Read-only.
CLOCK_HOLDER = (
    "SELECT a.pid, a.application_name,"
    " CASE WHEN a.state IS NULL OR a.state = 'active' OR a.state_change IS NULL THEN 0"
    " ELSE EXTRACT(EPOCH FROM clock_timestamp() - a.state_change) END"
    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted"
    " AND l.classid = %(high)s AND l.objid = %(low)s AND l.objsubid = 1"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
CLOCK_KEY = {"high": CLOCK_LOCK >> 32, "low": CLOCK_LOCK & 0xFFFFFFFF}
# Every connection of a clock: the one holding the lock, and the others of its process (by its
# name), which may hold row locks the new clock would wait on.
END_CLOCK = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND (pid = %(pid)s OR (%(name)s LIKE %(prefix)s AND application_name = %(name)s))"
)


class ClockLink:
    """The clock's end: be the only clock, LISTEN, beat, and pass each notification on."""

    def __init__(
        self,
        database_url: str,
        on_deadline: Callable[[], None],
        on_outbox: Callable[[], None],
        *,
        on_inbox: Callable[[list[NamedEvent]], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        on_webs_back: Callable[[float], None] | None = None,
        poll_seconds: float = 0.5,
        name: str = "",
        beat_seconds: float | None = None,
        lease_seconds: float | None = None,
        take_over_after: float | None = None,
        clock: Callable[[], float] = elapsed,
    ) -> None:
        self.conninfo = libpq_url(database_url)
        self.on_deadline, self.on_outbox, self.on_inbox = on_deadline, on_outbox, on_inbox
        self.on_lost = on_lost or _deposed
        self.poll_seconds = poll_seconds
        self.name = name or clock_name()
        # The module's figures unless given, read now (a test's child process shortens them).
        self.beat_seconds = BEAT_SECONDS if beat_seconds is None else beat_seconds
        self.lease_seconds = LEASE_SECONDS if lease_seconds is None else lease_seconds
        self.take_over_after = TAKE_OVER_SECONDS if take_over_after is None else take_over_after
        self.clock = clock
        self._beat_at = -float("inf")  # when a beat last got through (self.clock)
        self._looked_at = -float("inf")  # when a standby last looked at the holder's beat
        self._lost = False  # another clock runs: this one must do nothing more
        self._current = threading.Condition()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._held = False  # this connection holds the clock lock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outage = Outage(log, "listening for web processes")
        # Told how long no web process ran, when one runs again (see look_for_webs).
        self.on_webs_back = on_webs_back
        self.web_check_seconds = WEB_CHECK_SECONDS
        self._webs_looked_at = -float("inf")
        self.webs_gone_at: float | None = None  # when the clock first saw none (self.clock)

    def acquire(self, stopping: Callable[[], bool] | None = None, instead: str = "") -> ClockLink:
        """Wait until no other clock runs on this database, then hold the lock and LISTEN; or
        until `stopping` says this process was asked to stop meanwhile (then not `held`).
        `instead`: what the operator may have meant, said with the standby's line."""
        _stand_by(
            self._try_acquire,
            stopping,
            self._stop.wait,
            self._stop.is_set,
            running="another clock (`protocolbot clock`, or a `serve` with the timers) is "
            "running on this database",
            instead=instead,
        )
        return self

    def _try_acquire(self) -> bool:
        import psycopg

        if self._conn is None or self._conn.closed:
            timeout = connect_timeout(self.conninfo)
            self._conn = psycopg.connect(
                self.conninfo,
                autocommit=True,
                application_name=self.name,
                **CLIENT_KEEPALIVES,
                **timeout,
            )
            for name, seconds in SERVER_KEEPALIVES.items():
                self._conn.execute(f"SET {name} = {seconds}")
            self._held = False
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (CLOCK_LOCK,)).fetchone()
        if not (row and row[0]):
            self._take_over_if_stalled(self._conn)
            return False
        self._conn.execute(f"LISTEN {CHANNEL}")
        self._held = True
        self._beaten()
        return True

    def _take_over_if_stalled(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """Standing by: when the clock holding the lock has not beaten for `take_over_after`
        seconds, end its connections (its lock goes with them; the next try takes it)."""
        import psycopg.errors

        now = self.clock()
        if now - self._looked_at < self.beat_seconds:
            return
        self._looked_at = now
        holder = conn.execute(CLOCK_HOLDER, CLOCK_KEY).fetchone()
        if holder is None or (silent := _seconds(holder[2])) < self.take_over_after:
            return
        pid, name = holder[0], holder[1]
        log.warning(
            "the running clock has not beaten for %d s (stopped, frozen or hung): ending its "
            "connections and taking over",
            int(silent),
        )
        try:
            conn.execute(END_CLOCK, {"pid": pid, "name": name or "", "prefix": f"{CLOCK_NAME}:%"})
        except psycopg.errors.InsufficientPrivilege:
            # Another database role runs it: only its role, a superuser or a member of
            # pg_signal_backend may end its connections. Said at each look, a few seconds apart.
            log.error(
                "cannot end the frozen clock's connections: run every clock as the same "
                "database role, or grant this one pg_signal_backend"
            )

    def _beaten(self) -> None:
        with self._current:
            self._beat_at = self.clock()
            self._current.notify_all()

    def current(self, timeout: float = 10.0) -> bool:
        """Whether this clock may post: a beat got through within `lease_seconds`, or does
        within `timeout`. Not once another clock has taken over (the process is stopping)."""
        deadline = self.clock() + timeout
        with self._current:
            while not self._lost and not self._stop.is_set():
                now = self.clock()
                if now - self._beat_at < self.lease_seconds:
                    return True
                if now >= deadline:
                    return False
                self._current.wait(min(deadline - now, self.poll_seconds))
            return False

    @property
    def held(self) -> bool:
        return self._held

    def start(self) -> ClockLink:
        if not self._held:
            self.acquire()
        self._thread = threading.Thread(target=self._run, name="clock-link", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        import psycopg

        self._stop.set()
        running = False
        if self._thread is not None:
            self._thread.join(timeout)
            running, self._thread = self._thread.is_alive(), None
        if self._conn is not None:
            if self._held and not running:
                # Let go of the lock first: the server ends a closed connection's backend, and
                # frees its lock, a moment after the close, and a clock started at once (a
                # restart) stood by meanwhile, saying another clock ran.
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (CLOCK_LOCK,))
            self._conn.close()  # and with it the lock: a standby takes over
            self._conn, self._held = None, False

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            conn = self._conn
            if conn is None or conn.closed:
                self._held = False
                self._reconnect()
                continue
            try:
                for note in conn.notifies(timeout=self.poll_seconds):
                    self._dispatch(note.payload)
                if self.clock() - self._beat_at >= self.beat_seconds:
                    conn.execute("SELECT 1")  # the beat: seen as this connection's state_change
                    self._beaten()
                self.look_for_webs(conn)
            except psycopg.Error as exc:
                log.warning("lost the database link (%s); reconnecting", type(exc).__name__)
                conn.close()

    def look_for_webs(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """Every `web_check_seconds`, whether a web process runs (its connections carry its
        name); when one runs after a time with none, `on_webs_back` hears how long that was.
        From the clock's start: web processes started only minutes after it missed as much."""
        now = self.clock()
        if self.on_webs_back is None or now - self._webs_looked_at < self.web_check_seconds:
            return
        self._webs_looked_at = now
        row = conn.execute(WEBS_RUNNING, {"prefix": f"{WEB_NAME}:%"}).fetchone()
        if not (row and row[0]):
            if self.webs_gone_at is None:
                self.webs_gone_at = now
        elif self.webs_gone_at is not None:
            gone, self.webs_gone_at = now - self.webs_gone_at, None
            self.on_webs_back(gone)

    def _reconnect(self) -> None:
        import psycopg

        try:
            held = self._try_acquire()
        except psycopg.Error as exc:
            # Tried again every second: said when it begins and when it is over.
            if not self._outage.failed(OperationalError("LISTEN", None, exc)):
                log.warning("cannot reach the database (%s); retrying", type(exc).__name__)
            self._stop.wait(1.0)
            return
        self._outage.ok()
        if not held:
            # Another clock took over while the link was down, or while this one was frozen:
            # two must never run at once.
            log.error(
                "another clock took over while the database link was down or this clock was "
                "stopped: exiting"
            )
            with self._current:
                self._lost = True
                self._current.notify_all()
            self._stop.set()
            self.on_lost()
            return
        # Notifications sent while the link was down are gone: look at everything once.
        self.on_deadline()
        self.on_outbox()

    def _dispatch(self, payload: str) -> None:
        if payload == DEADLINE:
            self.on_deadline()
        elif payload == OUTBOX:
            self.on_outbox()
        elif payload.startswith(INBOX) and self.on_inbox is not None:
            self.on_inbox(parse_inbox(payload))


CLOCK_CHECK_SECONDS = 5.0
# How long no clock must be seen, look after look, before it is said to be missing: longer than
# a clock's restart (a deploy, a database restart that drops its lock for a second or two).
CLOCK_MISSED_SECONDS = 20.0


class ClockWatch(Every):
    """A web process's eye on the clock: without one nothing is posted and no step moves on,
    while commands are still answered. Looked at every `every` seconds from a thread of its
    own (never per request); missing at every look for `missed_after` seconds, it is said once
    in the log and shown by /healthz until a clock runs again. A clock restarting (a deploy) is
    back sooner, and a miss or two apart (a web process started before the clock, then a
    database restart) is no clock missing. A clock that holds its lock and has not beaten for
    `stalled_after` seconds (frozen, hung) is no clock running either: `stalled` says which."""

    def __init__(
        self,
        db: Database,
        every: float = CLOCK_CHECK_SECONDS,
        missed_after: float = CLOCK_MISSED_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        stalled_after: float = STALLED_SECONDS,
    ) -> None:
        super().__init__("clock-watch", every, at_once=True)
        self.db = db
        self.missed_after = missed_after
        self.stalled_after = stalled_after
        self.clock = clock
        self.missing = False
        self.stalled = False  # the last look found a clock holding the lock without beating
        self._missed_since: float | None = None  # the first look of those that found none

    def tick(self) -> None:
        try:
            running = self._running()
        except Exception:
            # The database out of reach: said by what meets it, and by /healthz. Nothing was
            # seen of the clock either way: the looks that count start again once it is back.
            self._missed_since = None
            return
        if running:
            self._missed_since = None
            if self.missing:
                self.missing = False
                log.warning("a clock is running on this database again")
            return
        now = self.clock()
        if self._missed_since is None:
            self._missed_since = now
        if not self.missing and now - self._missed_since >= self.missed_after:
            self.missing = True
            if self.stalled:
                log.warning(
                    "the clock on this database has stopped beating (frozen or hung): no "
                    "step moves on and nothing is posted until a standby clock takes over "
                    "or it is restarted"
                )
            else:
                log.warning(
                    "no clock is running on this database: no step moves on and nothing is "
                    "posted until one does: start `protocolbot clock`"
                )

    def _running(self) -> bool:
        if not self.db.is_postgres:  # SQLite: the clock's lock on its file
            silent = ClockFile(self.db.url).silent()
        else:
            with self.db.engine.connect() as conn:
                holder = conn.exec_driver_sql(CLOCK_HOLDER, CLOCK_KEY).first()
            silent = None if holder is None else _seconds(holder[2])
        self.stalled = silent is not None and silent >= self.stalled_after
        return silent is not None and not self.stalled


def _stand_by(
    take: Callable[[], bool],
    stopping: Callable[[], bool] | None,
    pause: Callable[[float], object],
    given_up: Callable[[], bool] = lambda: False,
    *,
    running: str,
    instead: str = "",
) -> bool:
    """Try `take` (the one-clock lock) until it works, saying once (`running`: who has it;
    `instead`: what else this process could do) that it stands by; False when `stopping`
    (asked to stop) or `given_up` (stopped) says so first."""
    told = False
    while not given_up():
        if take():
            return True
        if stopping is not None and stopping():
            return False
        if not told:
            log.warning(
                "%s: standing by until it stops%s", running, f"; {instead}" if instead else ""
            )
            told = True
        pause(0.25)
    return False


class ClockFile:
    """SQLite's one-clock lock: an exclusive OS lock (flock) on `<database>.clock.lock`, held
    while the process runs; the kernel lets it go when the process dies, however it dies."""

    def __init__(self, database_url: str) -> None:
        self.path = Path(f"{make_url(database_url).database}.clock.lock")
        self._fd: int | None = None
        # Seconds since the clock before this one last beat (see beat): how long no process
        # ran on this database. 0 for the first one.
        self.stopped_for = 0.0
        # Beats from a thread of its own, as on PostgreSQL: with the timers' rounds, one long
        # round (a sweep of many events) looked like a stalled clock to web processes.
        self._beating = _FileBeat(self)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, stopping: Callable[[], bool] | None = None, instead: str = "") -> ClockFile:
        """Wait until no other clock runs on this database, then hold the lock; or until
        `stopping` says this process was asked to stop meanwhile (then not `held`).
        `instead`: what the operator may have meant, said with the standby's line."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

        def take() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        database = self.path.name.removesuffix(".clock.lock")
        running = f"another protocolbot (`serve` or `clock`) is using {database}"
        if _stand_by(take, stopping, time.sleep, running=running, instead=instead):
            self._fd = fd
            self.stopped_for = max(0.0, time.time() - os.fstat(fd).st_mtime)
            self.beat()
            self._beating.start()
        else:
            os.close(fd)
        return self

    def beat(self) -> None:
        """Stamp the lock file with the time: while the clock runs, every BEAT_SECONDS."""
        if self._fd is not None:
            os.utime(self._fd)

    def stop(self) -> None:
        self._beating.stop()
        if self._fd is not None:
            os.close(self._fd)  # and with it the lock: a standby takes over
            self._fd = None

    def running(self) -> bool:
        """Whether a clock holds the lock, asked by a web process: a shared lock is refused
        while one does, and is let go at once (a clock starting that instant takes the lock at
        its next try)."""
        return self.silent() is not None

    def silent(self) -> float | None:
        """Seconds since the clock holding the lock last beat (stamped the file); None when
        none holds it."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None  # no clock has run on this database
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return max(0.0, time.time() - os.fstat(fd).st_mtime)
        finally:
            os.close(fd)  # and with it the shared lock, if taken
        return None


class _FileBeat(Every):
    def __init__(self, clock_file: ClockFile) -> None:
        super().__init__("clock-beat", BEAT_SECONDS)
        self.clock_file = clock_file

    def tick(self) -> None:
        try:
            self.clock_file.beat()
        except OSError as exc:  # the file gone or its disk full: the next beat tries again
            log.warning("could not stamp the clock's lock file (%s)", type(exc).__name__)


def _seconds(value: object) -> float:
    """A number of seconds PostgreSQL gave (numeric: a Decimal), or 0 for none."""
    return float(value) if isinstance(value, int | float | Decimal) else 0.0


def _deposed() -> None:
    """This process is no longer the clock: another one owns the timers, the outbox and what
    this one had under way (its posts in flight are looked for before they are sent again).
    A graceful stop would write back what its threads were doing: it exits at once, writing
    nothing, and its supervisor starts it again as a standby."""
    logging.shutdown()
    os._exit(1)
