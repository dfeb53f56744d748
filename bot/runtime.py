"""Everything one process runs, wired once: database, library, engine, inbox, outbox, timers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import event, or_, select
from sqlalchemy.orm import Session

from bot import missed
from bot.activity import Reporter
from bot.clock import Clock, SystemClock
from bot.directory import SlackDirectory
from bot.engine import delivery, prep, presence
from bot.engine.core import Engine
from bot.engine.replies import Replies
from bot.engine.workspaces import WORKSPACE_EVENTS, Workspaces
from bot.foreground import Foreground
from bot.inbox import Inbox
from bot.logs import DATABASE
from bot.notify import (
    ClockFile,
    ClockLink,
    ClockWatch,
    Notifier,
    NotifyTimers,
    clock_name,
    web_name,
)
from bot.oauth import Installations
from bot.one_workspace import OneWorkspace
from bot.protocols import BUILTIN_DIR, ProtocolError, load_library
from bot.scheduling import Scheduler
from bot.settings import Settings
from bot.slack import INSTALLATION_GONE, OutboxSender, Sent, make_client, ref_session
from bot.store.db import Database
from bot.store.models import ACTIVE, OutboxMessage, ProtocolSession, StepRun

log = logging.getLogger(__name__)

# Slack tries a refused event again at once, a minute later and five minutes later: an outage
# shorter than this left each event a try that went through.
CATCH_UP_AFTER_SECONDS = 240.0
# The outage began before the first request it turned away.
OUTAGE_MARGIN = timedelta(minutes=1)
# A `serve` started beside a running clock stands by and does not listen until that clock stops.
SERVE_BESIDE_THE_CLOCK = (
    "to answer Slack beside it, start this process as `protocolbot serve --no-scheduler`"
)


class Answers(ThreadPoolExecutor):
    """The threads that do a command's work after its ack, and know when none is left."""

    def __init__(self, workers: int) -> None:
        super().__init__(max_workers=workers, thread_name_prefix="answer")
        self._pending = 0
        self._pending_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._pending_lock:
            self._pending += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._finished(None)
            raise
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future: Future[Any] | None) -> None:
        with self._pending_lock:
            self._pending -= 1

    def idle(self) -> bool:
        """Whether every piece of work submitted has run."""
        with self._pending_lock:
            return not self._pending


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        with_scheduler: bool = True,
        handle_events: bool = False,
        database: Database | None = None,
    ) -> None:
        """with_scheduler=False: a web process. On PostgreSQL it stores and acknowledges each
        event and leaves the handling to the clock, unless `handle_events` (for more events
        than one clock handles: each such web process handles what it stores)."""
        self.settings = settings
        self.clock = clock or SystemClock()
        # A process with the timers names its connections, so that a standby taking over from
        # it, were it to freeze, ends them all (bot/notify.py).
        self.clock_name = clock_name() if with_scheduler else ""
        # A web process's, so that the clock sees whether one runs (ClockLink.look_for_webs).
        named = self.clock_name or web_name()
        self.db = database or Database(settings.database_url, application_name=named)
        dirs: list[Path] = [BUILTIN_DIR]
        if settings.protocols_dir:
            dirs.append(settings.protocols_dir)
        self.library, self.library_errors = load_library(dirs)
        for error in self.library_errors:
            log.error("protocol file skipped: %s", error)
        self.client = make_client(settings.slack_bot_token, settings.slack_api_url)
        self._outbox_client = make_client(
            settings.slack_bot_token, settings.slack_api_url, retries=False
        )
        # Many workspaces: each one's bot token comes from its OAuth installation.
        self.installations = Installations(settings, self.db) if settings.oauth else None
        # One token: the workspace it belongs to, and no other, is served (the app's middleware).
        self.one_workspace = OneWorkspace(self.client) if self.installations is None else None
        self.engine = Engine(
            self.db, self.library, self.clock, directory=SlackDirectory(self._directory_client)
        )
        prep.install(self.engine)
        self.replies = Replies(self.engine)
        # Answers to Slack go first; background work steps aside for them (bot/foreground.py).
        self.foreground = Foreground()
        self.sender = OutboxSender(
            self.db,
            self.client_for,
            self.clock,
            on_sent=self._posted,
            on_failed=self._failed,
            on_gone=self._installation_gone,
            on_held_up=lambda s, row: delivery.tell_held_up(self.engine, s, row),
            on_through=lambda s, row: delivery.tell_through(self.engine, s, row),
        )
        self.engine.wake_outbox = self.sender.wake
        self.engine.sender = self.sender  # once it runs (the clock, or the single process)
        self.workspaces = Workspaces(self.engine, self.installations)
        self.inbox = Inbox(
            self.db,
            self.clock,
            self._on_event,
            foreground=self.foreground,
            batch=self.engine.batch,
            look_ahead=self.replies.look_ahead,
        )
        self.scheduler: Scheduler | None = (
            Scheduler(self.engine, retention_days=settings.data_retention_days)
            if with_scheduler
            else None
        )
        # A web process leaves timers and sending to the clock, and tells it what changed.
        self.notifier = Notifier(self.db)
        if self.scheduler is None:
            self.engine.timers = NotifyTimers(self.notifier)
            self.engine.wake_outbox = self.notifier.outbox_changed
            if self.db.is_postgres and not handle_events:
                self.inbox.hand_off = True
        else:
            self.scheduler.every_tick.append(self.inbox.sweep)
        # A web process says when no clock runs (a start would never be posted).
        self.clock_watch = ClockWatch(self.db) if self.scheduler is None else None
        self.link: ClockLink | None = None
        self.clock_file: ClockFile | None = None
        # Answers to read-only commands, sent through response_url after the ack; and the
        # replies a resumed session's step missed, asked of Slack after the ack too.
        self.answers = Answers(workers=4)
        self.engine.on_resumed = self._resumed
        self.engine.on_presenter_turn = self._presenter_turn
        # How long a database outage must last for the replies written in it to be asked of
        # Slack (requests_back): by then Slack has given up on the events it sent.
        self.catch_up_after = CATCH_UP_AFTER_SECONDS
        self.reporter = Reporter()  # what the process did, in its log every ten minutes
        self._started = False

    @property
    def library_problems(self) -> list[ProtocolError]:
        return self.library_errors

    def client_for(self, team_id: str) -> WebClient | None:
        if self.installations is not None:
            return self.installations.client_for(team_id)
        return self._outbox_client

    def _directory_client(self, team_id: str) -> WebClient | None:
        """client_for, for the engine's questions to Slack (who is in a channel, what people
        are called), which it asks inside its transactions: the token is read without the
        write lock such a transaction holds on SQLite, which would wait on itself."""
        if self.installations is None:
            return self._outbox_client
        with self.db.reading():
            return self.installations.client_for(team_id, rotate=False)

    def _on_event(self, team_id: str, event: dict[str, Any]) -> None:
        if event.get("type") in WORKSPACE_EVENTS:
            self.workspaces.handle(team_id, event)
        elif event.get("type") in delivery.REMOVED_EVENTS:
            delivery.removed_from_channel(self.engine, team_id, event)
        elif event.get("type") == delivery.JOINED_EVENT:
            delivery.back_in_channel(self.engine, team_id, event)
        elif event.get("type") == presence.LEFT_EVENT:
            presence.member_left(self.engine, team_id, event)
        else:
            self.replies.handle(team_id, event)

    def _resumed(self, team_id: str, enterprise_id: str, channel: str, threads: list[str]) -> None:
        where = (team_id, enterprise_id, channel)
        self.answers.submit(self._catch_up, [(*where, ts) for ts in threads])

    def _presenter_turn(self, session_id: int, index: int) -> None:
        self.answers.submit(presence.tell_presenter_away, self.engine, session_id, index)

    def requests_back(self, service: str, lasted: float) -> None:
        """Slack's requests were turned away for `lasted` seconds while `service` was out of
        reach. Slack sends a refused event again three times, the last about five minutes
        after the first: a database outage longer than that lost what people wrote meanwhile.
        Those replies are asked of Slack, as after a resume: from the thread of every step
        open at some moment of the outage."""
        if service == DATABASE:
            self.catch_up_missed(lasted)

    def catch_up_missed(self, seconds: float) -> None:
        """No event reached the records for the last `seconds` (a database outage, or this
        process stopped): if Slack gave up on some, their replies are asked of it."""
        if seconds < self.catch_up_after:
            return
        began = self.clock.now() - timedelta(seconds=seconds) - OUTAGE_MARGIN
        self.answers.submit(self._catch_up_since, began)

    def _catch_up_since(self, began: datetime) -> None:
        with self.db.reading() as s:
            rows = s.execute(
                select(
                    ProtocolSession.team_id,
                    ProtocolSession.enterprise_id,
                    ProtocolSession.channel_id,
                    StepRun.message_ts,
                )
                .join(StepRun, StepRun.session_id == ProtocolSession.id)
                .where(
                    StepRun.message_ts.is_not(None),
                    or_(StepRun.ended_at.is_(None), StepRun.ended_at >= began),
                    or_(ProtocolSession.status.in_(ACTIVE), ProtocolSession.ended_at >= began),
                )
            ).all()
        threads = [
            (team, enterprise or "", channel, str(ts)) for team, enterprise, channel, ts in rows
        ]
        log.info("asking Slack what was written in %d threads while no event came", len(threads))
        self._catch_up(threads)

    def _catch_up(self, threads: list[tuple[str, str, str, str]]) -> None:
        for thread in threads:
            try:
                missed.catch_up(self.engine.directory, self.db, self.inbox, thread)
            except Exception:
                log.exception("could not fetch the replies a resumed step missed")

    def _posted(self, s: Session, sent: list[Sent]) -> None:
        self.engine.on_posted(s, [(each.ref, each.ts) for each in sent])
        late = [each for each in sent if each.late and each.ts and ref_session(each.ref, "step")]
        if late:
            # A step message Slack took before the bot could learn its ts (an answer lost, and
            # Slack slow to say so): a reply in its thread meanwhile waited a minute at most for
            # it. Once its ts is committed, the thread is read for those given up on.
            threads = [
                (each.team_id, self._enterprise(s, each), each.channel, str(each.ts))
                for each in late
            ]
            event.listen(
                s,
                "after_commit",
                lambda _s: self.answers.submit(self._catch_up, threads),
                once=True,
            )

    @staticmethod
    def _enterprise(s: Session, sent: Sent) -> str:
        session_id = ref_session(sent.ref, "step")
        found = s.scalar(
            select(ProtocolSession.enterprise_id).where(ProtocolSession.id == session_id)
        )
        return found or ""

    def _installation_gone(self, team_id: str, error: str) -> None:
        """Slack refused the workspace's token (revoked, the bot's account deactivated) with no
        event to say so: the workspace has gone, as if it had uninstalled the app."""
        now = self.clock.now()
        if self.installations is not None:
            self.installations.forget(team_id, before=now)
        self.workspaces.leave(team_id, reason=error, before=now)
        if self.one_workspace is not None:
            self.one_workspace.token_refused()

    def _failed(self, s: Session, row: OutboxMessage) -> None:
        if row.error in INSTALLATION_GONE:
            return  # the bot can't say anything there any more
        prep.dm_failed(self.engine, s, row)
        delivery.presenter_copy_failed(self.engine, s, row)
        if delivery.call_off_unreachable(self.engine, s, row):
            return
        if not delivery.hold_unreachable(self.engine, s, row):
            delivery.tell_facilitator(self.engine, s, row)

    @property
    def started(self) -> bool:
        return self._started

    def start(self, stopping: Callable[[], bool] | None = None, serving: bool = False) -> Runtime:
        """Catch up on what a stop left behind, then run the sender and the timers.

        A second clock waits as a standby until the first one stops, or until `stopping` says
        it was asked to stop meanwhile: then nothing is started (`started` stays False).
        `serving`: this process answers Slack too (`serve`), and a standby says how to run it
        beside the clock instead."""
        if self.scheduler is not None and self.db.is_postgres:
            # Be the only clock on this database (or wait), and hear what web processes change.
            self.link = ClockLink(
                self.db.url,
                self.scheduler.request_reconcile,
                self.sender.wake,
                on_inbox=self.inbox.take,
                # Web processes all stopped for longer than Slack tries an event: what was
                # written meanwhile is asked of Slack, as after a database outage.
                on_webs_back=self.catch_up_missed,
                name=self.clock_name,
            )
            instead = SERVE_BESIDE_THE_CLOCK if serving else ""
            if not self.link.acquire(stopping, instead=instead).held:
                self.link.stop()
                self.link = None
                return self
            # Nothing is posted unless this clock's beat gets through: frozen long enough, it
            # may have been replaced.
            self.sender.current = self.link.current
        elif self.scheduler is not None and self.db.separate_inbox:
            # SQLite: one process runs the timers and the sender on a database file (one in
            # memory is the process's own).
            instead = SERVE_BESIDE_THE_CLOCK if serving else ""
            self.clock_file = ClockFile(self.db.url).acquire(stopping, instead=instead)
            if not self.clock_file.held:
                return self
        if not self.inbox.hand_off:  # a web process leaves what was left to the clock
            replayed = self.inbox.replay()
            if replayed:
                log.info("replayed %d stored events", replayed)
        if self.scheduler is None:
            self.notifier.start()
            if self.clock_watch is not None:
                self.clock_watch.start()
        else:
            if self.link is not None:
                self.link.start()
            self.sender.start()
            self.scheduler.start()
        self.reporter.start()
        self._started = True
        if serving and self.clock_file is not None:
            # The one process that hears Slack on this file was stopped: for longer than Slack
            # tries an event, what was written meanwhile is asked of Slack, as after an outage.
            self.catch_up_missed(self.clock_file.stopped_for)
        return self

    def stop(self) -> None:
        if not self._started:
            return
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
        self.answers.shutdown(wait=True)  # a catch-up under way hands its replies to the inbox
        self.inbox.stop()
        self.sender.stop()
        self.notifier.stop()
        if self.clock_watch is not None:
            self.clock_watch.stop()
        if self.link is not None:
            self.link.stop()
        if self.clock_file is not None:
            self.clock_file.stop()
        self.reporter.stop()
        self._started = False
