"""APScheduler with its job store in our database: deterministic ids, replace_existing, restore.

Job functions are module-level and take ids only, so the persistent store can serialise them; they
call the same engine functions a button press does. The engine makes every transition idempotent,
so a duplicate or late job does nothing harmful.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from bot.engine.core import Engine
from bot.engine.warnings import warn_step

log = logging.getLogger(__name__)

_engine: Engine | None = None


def close_step_job(session_id: int, step: int) -> None:
    if _engine is not None:
        _engine.close_step(session_id, step)


def warn_step_job(session_id: int, step: int) -> None:
    if _engine is not None:
        warn_step(_engine, session_id, step)


def start_session_job(session_id: int) -> None:
    if _engine is not None:
        _engine.begin(session_id)


def reconcile_job() -> None:
    if _scheduler is not None:
        _scheduler.reconcile()


def step_job_id(session_id: int, step: int) -> str:
    return f"session:{session_id}:step:{step}:close"


def warn_job_id(session_id: int, step: int) -> str:
    return f"session:{session_id}:step:{step}:warn"


def start_job_id(session_id: int) -> str:
    return f"session:{session_id}:start"


_scheduler: Scheduler | None = None


class Scheduler:
    """The engine's Timers, backed by APScheduler's BackgroundScheduler."""

    def __init__(self, engine: Engine, reconcile_seconds: int = 30) -> None:
        self.engine = engine
        self.reconcile_seconds = reconcile_seconds
        self._aps = BackgroundScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(engine=engine.db.engine, tablename="apscheduler_jobs")
            },
            executors={"default": ThreadPoolExecutor(16)},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            timezone="UTC",
        )

    def start(self) -> Scheduler:
        global _engine, _scheduler
        _engine, _scheduler = self.engine, self
        self.engine.timers = self
        self._aps.start()
        # Whatever the job store missed (a crash between commit and add_job) comes back here.
        self.reconcile()
        self._aps.add_job(
            reconcile_job,
            "interval",
            seconds=self.reconcile_seconds,
            id="reconcile",
            replace_existing=True,
        )
        return self

    def shutdown(self, wait: bool = True) -> None:
        global _engine, _scheduler
        self._aps.shutdown(wait=wait)
        _engine = _scheduler = None

    # -- Timers --------------------------------------------------------------------------------
    def step_deadline(self, session_id: int, step: int, at: datetime) -> None:
        if step > 1:
            self._remove(step_job_id(session_id, step - 1))
        self._aps.add_job(
            close_step_job,
            "date",
            run_date=at,
            args=[session_id, step],
            id=step_job_id(session_id, step),
            replace_existing=True,
        )

    def step_warning(self, session_id: int, step: int, at: datetime) -> None:
        self._aps.add_job(
            warn_step_job,
            "date",
            run_date=at,
            args=[session_id, step],
            id=warn_job_id(session_id, step),
            replace_existing=True,
        )

    def session_start(self, session_id: int, at: datetime) -> None:
        self._aps.add_job(
            start_session_job,
            "date",
            run_date=at,
            args=[session_id],
            id=start_job_id(session_id),
            replace_existing=True,
        )

    def clear(self, session_id: int) -> None:
        prefix = f"session:{session_id}:"
        for job in self._aps.get_jobs():
            if job.id.startswith(prefix):
                self._remove(job.id)

    def _remove(self, job_id: str) -> None:
        with contextlib.suppress(JobLookupError):
            self._aps.remove_job(job_id)

    def reconcile(self) -> None:
        """Make the jobs match the deadlines the database holds, oldest first."""
        closes, starts = self.engine.due_work()
        existing = {job.id: job for job in self._aps.get_jobs()}
        for session_id, step, at in sorted(closes, key=lambda row: row[2]):
            job = existing.get(step_job_id(session_id, step))
            if job is None or job.next_run_time is None or job.next_run_time != at:
                self.step_deadline(session_id, step, at)
        for session_id, at in starts:
            if start_job_id(session_id) not in existing:
                self.session_start(session_id, at)
