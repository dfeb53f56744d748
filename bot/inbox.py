"""The inbox: an event is committed before Slack hears the ack, and handled once, in order."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from bot.clock import Clock
from bot.store.db import Database
from bot.store.models import InboxEvent

log = logging.getLogger(__name__)

# Only what the bot acts on is stored; other channel chatter is acknowledged and dropped.
KEPT_EVENTS = frozenset(
    {"message", "reaction_added", "reaction_removed", "app_uninstalled", "tokens_revoked"}
)
Handler = Callable[[str, dict[str, Any]], None]


def worth_keeping(event: dict[str, Any]) -> bool:
    kind = event.get("type")
    if kind not in KEPT_EVENTS:
        return False
    if kind == "message":
        subtype = event.get("subtype")
        if subtype == "message_changed":
            return bool((event.get("message") or {}).get("thread_ts"))
        if subtype == "message_deleted":
            return bool((event.get("previous_message") or {}).get("thread_ts"))
        return bool(event.get("thread_ts"))
    return True


class Inbox:
    def __init__(self, db: Database, clock: Clock, handler: Handler, lanes: int = 4) -> None:
        self.db, self.clock, self.handler = db, clock, handler
        # One single-thread lane per channel hash keeps a channel's events in arrival order.
        self._lanes = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"inbox{i}") for i in range(lanes)
        ]

    def accept(self, body: dict[str, Any]) -> int | None:
        """Store an event callback; None for a retry or duplicate already stored."""
        event = body.get("event") or {}
        if not worth_keeping(event):
            return None
        team_id = str(body.get("team_id") or event.get("team") or "")
        event_id = str(body.get("event_id") or "")
        try:
            with self.db.session() as s:
                row = InboxEvent(
                    team_id=team_id,
                    event_id=event_id,
                    payload={
                        "event": event,
                        "team_id": team_id,
                        "enterprise_id": body.get("enterprise_id") or "",
                    },
                    received_at=self.clock.now(),
                )
                s.add(row)
                s.flush()
                return row.id
        except IntegrityError:
            return None

    def submit(self, row_id: int, channel: str | None) -> None:
        lane = self._lanes[zlib.crc32((channel or "").encode()) % len(self._lanes)]
        lane.submit(self.process, row_id)

    def process(self, row_id: int) -> None:
        with self.db.session() as s:
            row = s.get(InboxEvent, row_id)
            if row is None or row.processed_at is not None:
                return
            payload = row.payload
        try:
            self.handler(str(payload.get("team_id") or ""), payload["event"])
        except Exception:
            log.exception("inbox event %s failed; it stays for the next start", row_id)
            return
        with self.db.session() as s:
            row = s.get(InboxEvent, row_id)
            if row is not None:
                row.processed_at = self.clock.now()

    def replay(self) -> int:
        """Handle, in arrival order, what was stored but not handled before a stop."""
        with self.db.session() as s:
            pending = s.scalars(
                select(InboxEvent.id)
                .where(InboxEvent.processed_at.is_(None))
                .order_by(InboxEvent.id)
            ).all()
        for row_id in pending:
            self.process(row_id)
        return len(pending)

    def purge(self, keep: timedelta = timedelta(days=1)) -> None:
        """Handled events are kept a day, long enough to recognise Slack's retries."""
        with self.db.session() as s:
            s.execute(
                delete(InboxEvent).where(
                    InboxEvent.processed_at.is_not(None),
                    InboxEvent.received_at < self.clock.now() - keep,
                )
            )

    def stop(self) -> None:
        for lane in self._lanes:
            lane.shutdown(wait=True)
