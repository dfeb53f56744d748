"""Everything one process runs, wired once: database, library, engine, inbox, outbox, timers."""

from __future__ import annotations

import logging
from pathlib import Path

from slack_sdk import WebClient
from sqlalchemy.orm import Session

from bot.clock import Clock, SystemClock
from bot.directory import SlackDirectory
from bot.engine.core import Engine
from bot.engine.replies import Replies
from bot.inbox import Inbox
from bot.protocols import BUILTIN_DIR, ProtocolError, load_library
from bot.scheduling import Scheduler
from bot.settings import Settings
from bot.slack import OutboxSender, make_client
from bot.store.db import Database
from bot.store.models import OutboxMessage

log = logging.getLogger(__name__)


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        with_scheduler: bool = True,
        database: Database | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db = database or Database(settings.database_url)
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
        self.engine = Engine(
            self.db, self.library, self.clock, directory=SlackDirectory(self.client_for)
        )
        self.replies = Replies(self.engine)
        self.sender = OutboxSender(self.db, self.client_for, self.clock, on_sent=self._posted)
        self.engine.wake_outbox = self.sender.wake
        self.inbox = Inbox(self.db, self.clock, self.replies.handle)
        self.scheduler: Scheduler | None = Scheduler(self.engine) if with_scheduler else None
        self._started = False

    @property
    def library_problems(self) -> list[ProtocolError]:
        return self.library_errors

    def client_for(self, team_id: str) -> WebClient | None:
        return self._outbox_client

    def _posted(self, s: Session, row: OutboxMessage) -> None:
        self.engine.on_posted(s, row.ref, row.result_ts)

    def start(self) -> Runtime:
        """Catch up on what a stop left behind, then run the sender and the timers."""
        replayed = self.inbox.replay()
        if replayed:
            log.info("replayed %d stored events", replayed)
        self.sender.start()
        if self.scheduler is not None:
            self.scheduler.start()
        self._started = True
        return self

    def stop(self) -> None:
        if not self._started:
            return
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
        self.inbox.stop()
        self.sender.stop()
        self._started = False
