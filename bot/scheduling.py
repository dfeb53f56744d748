"""APScheduler with deterministic ids and replace_existing, its jobs rebuilt from the database.

The jobs live in memory; the database's deadlines (sessions, steps, prep) are the durable record,
and a reconcile at start restores every job from them. Job functions are module-level and take ids
only; they call the same engine functions a button press does. The engine makes every transition
idempotent, so a duplicate or late job does nothing harmful.

Only one process runs a Scheduler: the single process by default, or the `clock` beside web
processes (bot/notify.py). Web processes only write deadlines to the database, so the clock
reconciles its jobs with the database whenever it is told something changed, and every couple of
seconds in case a notification was lost. A reconcile compares with the jobs this process planned
(kept in memory), so one that finds nothing new reads a few columns in one query and touches no
job (with 10,000 running sessions: a few hundredths of a second, without holding up the jobs
meanwhile); reconciles asked for in a burst are answered together, and never take more than a
tenth of the clock's time.

Close jobs due together are closed together (`Closer`): at 10,000 sessions on one-minute steps
~170 steps close a second, and one transaction for each cost the clock most of its time. A round
waits a moment (`GATHER_SECONDS`) for the closes due just after its first: on PostgreSQL a
transaction of 16 closes costs 0.93 ms of CPU a close, one of a single close 4.8 ms.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from bot import retention
from bot.engine import ahead, prep
from bot.engine.core import Engine
from bot.engine.warnings import warn_step
from bot.logs import Outage

log = logging.getLogger(__name__)

RECONCILE_SECONDS = 2.0
# A reconcile starts at least this many times its last one's CPU time after it: at most a tenth
# of the clock's time goes to reconciling, even when notifications ask for one after another.
RECONCILE_SPACING = 10.0
HOUSEKEEPING_ID = "housekeeping"
HOUSEKEEPING_RETRY = timedelta(minutes=5)  # after a daily housekeeping met a database outage
# A close waits at most this long for others to share its round. Each close job waits for its
# round in one of the executor's threads, so a round holds at most ROUND_CLOSES, and the rounds of
# a clock that fell behind grow to that (cheaper a close) until it catches up; the other jobs
# (warnings, starts, prep) have threads of their own meanwhile.
GATHER_SECONDS, ROUND_CLOSES, OTHER_JOBS = 0.1, 64, 8
_engine: Engine | None = None


@contextlib.contextmanager
def _outage_noted(job_id: str) -> Iterator[None]:
    """A job that failed for want of the database is noted in the timers' outage (a line when
    it begins, one when it is over), not logged with its traceback, and as not done: the next
    reconcile after the database is back plans it again, since it is still due."""
    try:
        yield
    except Exception as exc:
        if _scheduler is None or not _scheduler.outage.failed(exc):
            raise
        _scheduler.not_done.add(job_id)
        _scheduler.jobs_failing = True
    else:
        if _scheduler is not None and _scheduler.jobs_failing:
            _scheduler.jobs_failing = False
            _scheduler.outage.ok()


def close_step_job(session_id: int, step: int) -> None:
    if _closer is not None:
        with _outage_noted(step_job_id(session_id, step)):
            _closer.close(session_id, step)


def warn_step_job(session_id: int, step: int) -> None:
    if _engine is not None:
        with _outage_noted(warn_job_id(session_id, step)):
            warn_step(_engine, session_id, step)


def start_session_job(session_id: int) -> None:
    if _engine is not None:
        with _outage_noted(start_job_id(session_id)):
            _engine.begin(session_id)
            # Asked of Slack here, on the clock's thread: never on a command's way to its ack.
            ahead.tell_absent_at_start(_engine, session_id)


def prep_job(session_id: int, kind: str) -> None:
    if _engine is not None:
        with _outage_noted(prep_job_id(session_id, kind)):
            prep.due(_engine, session_id, kind)


def housekeeping_job(retention_days: int | None) -> None:
    if _engine is None or _scheduler is None:
        return
    try:
        retention.purge(_engine.db, _engine.clock.now(), retention_days)
    except Exception as exc:
        if not _scheduler.outage.failed(exc):
            raise
        # Not a day later: a database restart or failover is over in minutes.
        _scheduler.housekeeping_at(_engine.clock.now() + HOUSEKEEPING_RETRY)


def step_job_id(session_id: int, step: int) -> str:
    return f"session:{session_id}:step:{step}:close"


def warn_job_id(session_id: int, step: int) -> str:
    return f"session:{session_id}:step:{step}:warn"


def start_job_id(session_id: int) -> str:
    return f"session:{session_id}:start"


def prep_job_id(session_id: int, kind: str) -> str:
    return f"session:{session_id}:{kind}"


_scheduler: Scheduler | None = None
_closer: Closer | None = None


@dataclass(eq=False)
class _Due:
    """One close job's request, waiting for a round to take it."""

    session_id: int
    step: int
    arrived: float = field(default_factory=time.monotonic)
    woken: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # this job's thread runs the next round
    error: Exception | None = None


class Closer:
    """Closes due steps in rounds, one transaction a round (a group commit).

    A close job adds its request and waits. One waiting job's thread at a time runs a round: it
    waits until `most` requests wait or the oldest has waited `gather` seconds, closes them all
    through `Engine.close_steps`, hands the next round to a job still waiting, and returns.
    Each job returns only once its step is closed (or failed).
    """

    def __init__(
        self, engine: Engine, gather: float = GATHER_SECONDS, most: int = ROUND_CLOSES
    ) -> None:
        self.engine, self.gather, self.most = engine, gather, most
        self._lock = threading.Condition()
        self._waiting: list[_Due] = []
        self._leading = False

    def close(self, session_id: int, step: int) -> None:
        me = _Due(session_id, step)
        with self._lock:
            self._waiting.append(me)
            if not self._leading:
                self._leading = me.lead = True
            elif len(self._waiting) >= self.most:
                self._lock.notify_all()  # the round is full: no need to wait for more
        if not me.lead:
            me.woken.wait()
        if me.lead:
            self._round(me)
        if me.error is not None:
            raise me.error

    def _round(self, me: _Due) -> None:
        with self._lock:
            self._lock.wait_for(
                lambda: len(self._waiting) >= self.most,
                timeout=max(0.0, self._waiting[0].arrived + self.gather - time.monotonic()),
            )
            batch, self._waiting = self._waiting, []
        try:
            self._close_all(batch)
        finally:
            with self._lock:
                successor = self._waiting[0] if self._waiting else None
                if successor is None:
                    self._leading = False
                else:
                    successor.lead = True
            for due in batch:
                if due is not me:
                    due.woken.set()
            if successor is not None:
                successor.woken.set()

    def _close_all(self, batch: list[_Due]) -> None:
        try:
            self.engine.close_steps([(due.session_id, due.step) for due in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            # One session's trouble must not hold up the rest: each on its own.
            for due in batch:
                try:
                    self.engine.close_step(due.session_id, due.step)
                except Exception as each:
                    due.error = each


class Scheduler:
    """The engine's Timers, backed by APScheduler's BackgroundScheduler."""

    def __init__(
        self,
        engine: Engine,
        reconcile_seconds: float = RECONCILE_SECONDS,
        retention_days: int | None = None,
    ) -> None:
        self.engine = engine
        self.reconcile_seconds = reconcile_seconds
        self.retention_days = retention_days
        # Called after each reconcile, e.g. the inbox's sweep for events a dead process left.
        self.every_tick: list[Callable[[], object]] = []
        self._executor = ThreadPoolExecutor(ROUND_CLOSES + OTHER_JOBS)
        self._aps = BackgroundScheduler(
            # In memory: with SQLAlchemyJobStore 10,000 sessions on 60-s steps missed 7,564 steps
            # (p99 78 s late) on SQLite; the sessions table is the durable record, and reconcile
            # rebuilds every job from it at start.
            jobstores={"default": MemoryJobStore()},
            executors={"default": self._executor},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone="UTC",
        )
        # job id -> run time, for every job this process added and has not yet seen run
        self._planned: dict[str, datetime] = {}
        # warning jobs that have run, at the time they were for: not planned again for that time
        # (the warning itself clears the step's warn_at once given)
        self._warned: dict[str, datetime] = {}
        self._lock = threading.RLock()
        # The database out of reach: reconciles and jobs fail alike, said in a line or two.
        self.outage = Outage(log, "the timers")
        self.not_done: set[str] = set()  # jobs that ran into the outage (see _outage_noted)
        # A job ran into the outage and none has run since: a reconcile, which only reads, does
        # not say it is over (a full disk, a read-only server answer reads and refuse writes).
        self.jobs_failing = False
        self._poke = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Scheduler:
        global _engine, _scheduler, _closer
        _engine, _scheduler, _closer = self.engine, self, Closer(self.engine)
        self.engine.timers = self
        self._aps.add_listener(self._ran, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        self._aps.start()
        # Every job comes back from the database's deadlines (the job store starts empty).
        self.reconcile()
        self._aps.add_job(
            housekeeping_job,
            "interval",
            days=1,
            args=[self.retention_days],
            id=HOUSEKEEPING_ID,
            replace_existing=True,
            next_run_time=self.engine.clock.now() + timedelta(minutes=1),
        )
        self._stop.clear()
        self._thread = threading.Thread(target=self._reconciler, name="reconcile", daemon=True)
        self._thread.start()
        return self

    def shutdown(self, wait: bool = True) -> None:
        global _engine, _scheduler, _closer
        self._stop.set()
        self._poke.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        # APScheduler's own shutdown waits for the running jobs while it holds its job stores'
        # lock, which a running job takes to plan or drop a timer: a stop that came while a
        # step was closing waited for ever. No new runs, the running ones finished outside that
        # lock, then the rest.
        if self._aps.running:
            self._aps.pause()
            self._executor.shutdown(wait)
        self._aps.shutdown(wait=False)
        _engine = _scheduler = _closer = None

    def housekeeping_at(self, at: datetime) -> None:
        """Run the daily housekeeping next at `at` (it failed for want of the database); daily
        again from then."""
        with contextlib.suppress(JobLookupError):
            self._aps.modify_job(HOUSEKEEPING_ID, next_run_time=at)

    def request_reconcile(self) -> None:
        """Something changed in the database (another process said so): reconcile now."""
        self._poke.set()

    def _reconciler(self) -> None:
        began, took = time.monotonic(), 0.0
        while not self._stop.is_set():
            self._poke.wait(max(self.reconcile_seconds, RECONCILE_SPACING * took))
            # Notifications come in bursts (web processes busy): one reconcile answers all that
            # came meanwhile, and reconciles stay a small share of the clock's time however many
            # sessions each one reads.
            self._stop.wait(began + RECONCILE_SPACING * took - time.monotonic())
            self._poke.clear()
            if self._stop.is_set():
                return
            # Spaced by the time the clock gave it (its CPU), not by how long it waited for the
            # database: a round held up by a lock or a stalled server would put off the next
            # ones, and the inbox sweep with them, by ten times that.
            began, working = time.monotonic(), time.thread_time()
            failed = False
            for work in (self.reconcile, *self.every_tick):
                try:
                    work()
                except Exception as exc:
                    failed = True
                    if not self.outage.failed(exc):
                        name = getattr(work, "__name__", "tick")
                        log.warning("%s failed (%s); trying again soon", name, type(exc).__name__)
            if not failed and not self.jobs_failing:
                self.outage.ok()
            took = time.thread_time() - working

    def _ran(self, event: JobEvent) -> None:
        """A job ran (or failed): forget it, so a reconcile that still finds it due re-adds it."""
        with self._lock:
            planned = self._planned.get(event.job_id)
            when = getattr(event, "scheduled_run_time", None)
            # A job that re-armed itself for later while running stays planned.
            ran_for = when
            if planned is not None and when is not None and planned <= when + _SLACK:
                del self._planned[event.job_id]
                ran_for = planned  # as reconcile reads it, to the microsecond
            # A warning that ran into a database outage is not given: planned again, not kept
            # from being planned (a warning that failed otherwise is not tried again).
            not_done = event.job_id in self.not_done
            self.not_done.discard(event.job_id)
            if event.job_id.endswith(":warn") and isinstance(ran_for, datetime) and not not_done:
                self._warned[event.job_id] = ran_for

    # -- Timers --------------------------------------------------------------------------------
    def step_deadline(self, session_id: int, step: int, at: datetime) -> None:
        with self._lock:
            if step > 1:
                self._remove(step_job_id(session_id, step - 1))
            self._add(step_job_id(session_id, step), close_step_job, [session_id, step], at)

    def step_warning(self, session_id: int, step: int, at: datetime) -> None:
        self._add(warn_job_id(session_id, step), warn_step_job, [session_id, step], at)

    def session_start(self, session_id: int, at: datetime) -> None:
        self._add(start_job_id(session_id), start_session_job, [session_id], at)

    def prep_due(self, session_id: int, kind: str, at: datetime) -> None:
        self._add(prep_job_id(session_id, kind), prep_job, [session_id, kind], at)

    def clear(self, session_id: int) -> None:
        prefix = f"session:{session_id}:"
        with self._lock:
            for job_id in [j for j in self._planned if j.startswith(prefix)]:
                self._remove(job_id)

    def _add(self, job_id: str, job: Callable[..., None], args: list[object], at: datetime) -> None:
        with self._lock:
            self._aps.add_job(job, "date", run_date=at, args=args, id=job_id, replace_existing=True)
            self._planned[job_id] = at

    def _remove(self, job_id: str) -> None:
        with self._lock:
            self._planned.pop(job_id, None)
            with contextlib.suppress(JobLookupError):
                self._aps.remove_job(job_id)

    # -- reconcile -----------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Make the jobs match the deadlines the database holds, oldest first.

        The database is read without holding up the jobs; a job whose plan changed meanwhile
        (a step that closed and planned the next) knows better than that read, and is left be.
        """
        with self._lock:
            before = dict(self._planned)
        due = self.engine.due_work()
        preps = prep.due_work(self.engine)
        with self._lock:

            def settled(job_id: str) -> bool:
                return self._planned.get(job_id) == before.get(job_id)

            wanted: set[str] = set()
            # Most deadlines are as planned: compared first, and only the moved ones sorted.
            moved: list[tuple[datetime, int, int]] = []
            for session_id, step, at in due.closes:
                job_id = step_job_id(session_id, step)
                wanted.add(job_id)
                if before.get(job_id) != at and settled(job_id):
                    moved.append((at, session_id, step))
            for at, session_id, step in sorted(moved):  # oldest first
                self.step_deadline(session_id, step, at)
            for session_id, step, at in due.warnings:
                job_id = warn_job_id(session_id, step)
                wanted.add(job_id)
                # A warning whose time passed while no clock ran (a restart, a deploy) is run at
                # once: it decides whether there is still time for it. One that ran for this
                # time is not run again.
                if before.get(job_id) != at and self._warned.get(job_id) != at and settled(job_id):
                    self.step_warning(session_id, step, at)
            for session_id, at in due.starts:
                job_id = start_job_id(session_id)
                wanted.add(job_id)
                if job_id not in before and settled(job_id):
                    self.session_start(session_id, at)
            for session_id, kind, at in preps:
                job_id = prep_job_id(session_id, kind)
                wanted.add(job_id)
                if job_id not in before and settled(job_id):
                    self.prep_due(session_id, kind, at)
            # Sessions that ended, paused or moved on elsewhere: their jobs are stale.
            for job_id in [j for j in self._planned if j.startswith("session:")]:
                if job_id not in wanted and settled(job_id):
                    self._remove(job_id)
            self._warned = {j: at for j, at in self._warned.items() if j in wanted}


_SLACK = timedelta(milliseconds=1)  # job store round trips may shave microseconds off a time
