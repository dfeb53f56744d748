"""The inbox: an event is committed before Slack hears the ack, and handled once, in order.

Slack's retries carry the same event_id and are dropped at the door by a unique key; a message
delivered twice under two event_ids is recognised by the handler (a reply is keyed on its ts).
On PostgreSQL several processes may reach for one stored event (a web process handling what it
acknowledged, another replaying at start, the clock sweeping up after a process that died between
the ack and the handling): a row lock taken with SKIP LOCKED decides who handles it. An event the
engine can't place yet (NotYet) stays unhandled, and the clock's sweep tries it again.
"""

from __future__ import annotations

import logging
import threading
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from bot.clock import Clock
from bot.engine.errors import NotYet
from bot.store.db import Database
from bot.store.models import InboxEvent

log = logging.getLogger(__name__)

# Only what the bot acts on is stored; other channel chatter is acknowledged and dropped.
KEPT_EVENTS = frozenset(
    {"message", "reaction_added", "reaction_removed", "app_uninstalled", "tokens_revoked"}
)
Handler = Callable[[str, dict[str, Any]], None]
# An event still unhandled this long after it arrived was left by a process that died.
SWEEP_AFTER = timedelta(seconds=2)
# A sweep gives up on an event that failed this often; the next start tries it once more.
MAX_TRIES = 3


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
        self._failures: dict[int, int] = {}
        # Events handed to this process's lanes and not yet handled: a sweep leaves them be.
        self._queued: set[int] = set()
        self._queued_lock = threading.Lock()

    def accept(self, body: dict[str, Any]) -> int | None:
        """Store an event callback; None for a retry or duplicate already stored."""
        event = body.get("event") or {}
        if not worth_keeping(event):
            return None
        team_id = str(body.get("team_id") or event.get("team") or "")
        # Slack always sends one; without it nothing can be recognised as a retry.
        event_id = str(body.get("event_id") or f"none:{uuid.uuid4().hex}")
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
        with self._queued_lock:
            self._queued.add(row_id)
        lane.submit(self._from_lane, row_id)

    def _from_lane(self, row_id: int) -> None:
        try:
            self.process(row_id)
        finally:
            with self._queued_lock:
                self._queued.discard(row_id)

    def process(self, row_id: int) -> None:
        if self.db.is_postgres:
            self._process_claimed(row_id)
            return
        with self.db.session() as s:
            row = s.get(InboxEvent, row_id)
            if row is None or row.processed_at is not None:
                return
            payload = row.payload
        if not self._handle(row_id, payload):
            return
        with self.db.session() as s:
            row = s.get(InboxEvent, row_id)
            if row is not None:
                row.processed_at = self.clock.now()

    def _process_claimed(self, row_id: int) -> None:
        """Hold the row while handling it; a process that finds it held leaves it to the holder."""
        with self.db.session() as s:
            row = s.scalars(
                select(InboxEvent).where(InboxEvent.id == row_id).with_for_update(skip_locked=True)
            ).first()
            if row is None or row.processed_at is not None:
                return
            if self._handle(row_id, row.payload):
                row.processed_at = self.clock.now()

    def _handle(self, row_id: int, payload: dict[str, Any]) -> bool:
        team_id, event = str(payload.get("team_id") or ""), payload["event"]
        try:
            try:
                self.handler(team_id, event)
            except IntegrityError:
                # The same message, delivered twice, handled at once elsewhere: it is stored now,
                # and a second look finds it.
                self.handler(team_id, event)
        except NotYet:
            log.debug("inbox event %s can't be placed yet; it stays for a later try", row_id)
            return False
        except Exception as exc:
            failures = self._failures[row_id] = self._failures.get(row_id, 0) + 1
            if failures == 1:
                log.exception("inbox event %s failed; it stays for a later try", row_id)
            else:
                log.warning("inbox event %s failed again (%s)", row_id, type(exc).__name__)
            return False
        self._failures.pop(row_id, None)
        return True

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

    def sweep(self, older_than: timedelta = SWEEP_AFTER) -> int:
        """Handle events still unhandled a while after they arrived: left by a process that died
        between the ack and the handling, or kept for a later try (NotYet).

        On PostgreSQL the row lock keeps a sweep from handling an event a live process is on;
        with SQLite there is one process, and events in its own lanes are left to them.
        """
        with self.db.session() as s:
            stale = s.scalars(
                select(InboxEvent.id)
                .where(
                    InboxEvent.processed_at.is_(None),
                    InboxEvent.received_at < self.clock.now() - older_than,
                )
                .order_by(InboxEvent.id)
                .limit(500)
            ).all()
        with self._queued_lock:
            queued = set(self._queued)
        stale = [
            row_id
            for row_id in stale
            if row_id not in queued and self._failures.get(row_id, 0) < MAX_TRIES
        ]
        for row_id in stale:
            self.process(row_id)
        return len(stale)

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
