"""The inbox: an event is committed before Slack hears the ack, and handled once, in order.

Slack's retries carry the same event_id and are dropped at the door by a unique key; a message
delivered twice under two event_ids is recognised by the handler (a reply is keyed on its ts).
On PostgreSQL a web process only stores and acknowledges: the insert that stores an event also
names it to the clock (NOTIFY; see bot/notify.py), which handles it in its lanes. Several
processes may still reach for one stored event (the clock's lane, its sweep, a single `serve`
replaying at start): a row lock taken with SKIP LOCKED decides who handles it. An event the
engine can't place yet (NotYet) stays unhandled, and the clock's sweep tries it again.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.clock import Clock, as_utc
from bot.engine.errors import NotYet
from bot.engine.replies import ANY_WORKSPACE, SHARED_CHANNEL
from bot.foreground import Foreground
from bot.logs import Outage, unreachable
from bot.notify import CHANNEL as NOTIFY_CHANNEL
from bot.notify import INBOX as INBOX_NOTE
from bot.notify import NamedEvent
from bot.store import raw
from bot.store.db import Database
from bot.store.models import InboxEvent

log = logging.getLogger(__name__)

# Only what the bot acts on is stored; other channel chatter is acknowledged and dropped.
KEPT_EVENTS = frozenset(
    {
        "message",
        "reaction_added",
        "reaction_removed",
        "app_uninstalled",
        "tokens_revoked",
        "team_access_revoked",
        "channel_left",
        "group_left",
        "member_joined_channel",
        "member_left_channel",
    }
)
LEAVING = frozenset({"app_uninstalled", "tokens_revoked"})
# Events kept with the envelope's event_time, which tells when it happened.
TIMED = LEAVING | {"team_access_revoked", "member_left_channel"}
Handler = Callable[[str, dict[str, Any]], None]
# An event still unhandled this long after it arrived was left by a process that died.
SWEEP_AFTER = timedelta(seconds=2)
# Handled events are noted in the store together, this often (SQLite).
MARK_EVERY = 0.05
# ...and the inbox file's WAL is folded back this often, off the ack's path (SQLite).
CHECKPOINT_EVERY = 1.0
# A sweep gives up on an event that failed this often; the next start tries it once more.
MAX_TRIES = 3
# The most events one sweep takes.
SWEEP_BATCH = 500
# How long a session's end waits for the replies acknowledged before it (see caught_up): well
# inside Slack's 3 s for the command's own ack.
CATCH_UP_SECONDS = 0.5
# ...and, in a web process that hands its events to the clock, how far back it looks for them.
CATCH_UP_WINDOW = timedelta(seconds=5)
# Replies and reactions a lane has queued up are handled in one transaction, this many at most:
# enough to make a backlog cheaper to clear than to build, short enough that the write lock
# (SQLite) is never held for long.
BATCH = 16
# A lane that has taken an event waits this long for more before it handles them, so that under
# a steady stream one transaction records several replies: alone a reply cost the lane 463 us of
# CPU in process, in fours 200 us each. The tag reaction comes this much later.
GATHER = 0.01
BATCHED_EVENTS = frozenset({"message", "reaction_added", "reaction_removed"})
Batch = Callable[[], AbstractContextManager[Session]]
LookAhead = Callable[[Session, list[tuple[str, dict[str, Any]]]], None]


class _Lane:
    """One thread handling events in the order they were put (a queue is cheaper to hand to,
    inside the ack, than an executor). What has queued up while it worked, or comes within
    `gather` of the first, is taken together, up to BATCH events."""

    def __init__(
        self, name: str, handle: Callable[[list[Stored]], None], gather: float = GATHER
    ) -> None:
        self._name, self._handle, self._gather = name, handle, gather
        self._queue: queue.SimpleQueue[Stored | None] = queue.SimpleQueue()
        # The database out of reach: a line when it begins and one when it is over, as for
        # every other part of the bot (the sweep handles the lane's events again).
        self._outage = Outage(log, f"inbox lane {name}")
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def put(self, stored: Stored) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                    self._thread.start()
        self._queue.put(stored)

    def _run(self) -> None:
        stopping = False
        while not stopping and (first := self._queue.get()) is not None:
            taken = [first]
            until = time.monotonic() + self._gather
            while len(taken) < BATCH:
                wait = until - time.monotonic()
                try:
                    more = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                taken.append(more)
            try:
                self._handle(taken)
            except Exception as exc:
                if not self._outage.failed(exc):
                    log.exception("inbox lane failed on an event; the sweep tries it again")
            else:
                self._outage.ok()

    def stop(self) -> None:
        """Handle what is queued, then end the thread."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()


class _Apart(Exception):
    """A lane's events that one transaction can't take together."""


@dataclass(frozen=True)
class Stored:
    """An event just committed to the inbox, ready for its lane."""

    row_id: int
    channel: str | None
    payload: dict[str, Any] | None  # None: named by a web process; the lane reads it back

    @property
    def loaded(self) -> dict[str, Any]:
        """The payload, once the lane has it (see Inbox._claim_and_handle)."""
        assert self.payload is not None
        return self.payload


def event_team(body: dict[str, Any]) -> str:
    """The workspace whose installation an event came to. In a Slack Connect channel the
    envelope's team_id names the workspace that made the channel, perhaps another
    organisation's; authorizations names ours (with no team for an org-wide install)."""
    authorizations = body.get("authorizations") or [{}]
    ours = authorizations[0] if isinstance(authorizations[0], dict) else {}
    event = body.get("event") or {}
    if ours.get("is_enterprise_install") and event.get("type") in LEAVING:
        # An org-wide install leaving is the org's (its event may name no workspace, or any
        # one): every workspace's sessions stop and the org's token goes (bot.engine.workspaces).
        return str(ours.get("enterprise_id") or body.get("enterprise_id") or "")
    return str(ours.get("team_id") or body.get("team_id") or event.get("team") or "")


def event_of(body: dict[str, Any]) -> dict[str, Any]:
    """The event, marked with who may share its channel: any workspace in a Slack Connect
    channel, the org's workspaces in an Enterprise Grid one. There Slack sends an event once,
    naming any one of the installations or workspaces that see it, perhaps not the workspace
    whose session the channel runs (Replies finds that one)."""
    event = body.get("event") or {}
    if body.get("is_ext_shared_channel"):
        return {**event, SHARED_CHANNEL: ANY_WORKSPACE}
    if body.get("enterprise_id"):
        return {**event, SHARED_CHANNEL: str(body["enterprise_id"])}
    return event


def _someone_else_joined(body: dict[str, Any]) -> bool:
    """A person joined a channel the bot is in: only the bot's own joins matter (invited back
    where a session is paused). The envelope's authorizations name the bot's user."""
    event = body.get("event") or {}
    if event.get("type") != "member_joined_channel":
        return False
    authorizations = body.get("authorizations") or [{}]
    ours = authorizations[0] if isinstance(authorizations[0], dict) else {}
    return not ours.get("user_id") or event.get("user") != ours.get("user_id")


def worth_keeping(event: dict[str, Any]) -> bool:
    kind = event.get("type")
    if kind not in KEPT_EVENTS:
        return False
    if kind == "message":
        subtype = event.get("subtype")
        if subtype == "message_changed":
            return bool((event.get("message") or {}).get("thread_ts"))
        if subtype == "message_deleted":
            # A reply, or a message of the bot's at the top level (a step's post, put back).
            previous = event.get("previous_message") or {}
            return bool(previous.get("thread_ts") or previous.get("bot_id") or not previous)
        return bool(event.get("thread_ts"))
    return True


def top_level_message(event: dict[str, Any]) -> bool:
    """A person's message at a channel's top level, not in a thread (worth_keeping leaves it):
    not a step's reply, though its author may think it is one."""
    return (
        event.get("type") == "message"
        and event.get("subtype") in (None, "file_share", "me_message")
        and not event.get("thread_ts")
        and not event.get("bot_id")
        and bool(event.get("user"))
    )


class Inbox:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        handler: Handler,
        lanes: int = 1,
        foreground: Foreground | None = None,
        batch: Batch | None = None,
        gather: float = GATHER,
        look_ahead: LookAhead | None = None,
    ) -> None:
        """batch: opens a block whose transactions commit as one (Engine.batch); without it
        every event is handled in a transaction of its own.

        lanes: one unless told. On SQLite every write transaction holds the file's one write
        lock from its start, so lanes only ever took turns, each with a quarter of the events to
        batch. On PostgreSQL lanes write at once, but every batch costs five statements besides
        its events' (the connection's check, BEGIN, the claim, the marks, COMMIT), and more
        lanes make smaller batches: at 400 replies/s, four lanes cost the clock 1.44 ms of CPU
        a reply and the server 0.73 ms, one lane 0.96 and 0.48 ms, and the highest rate held
        end to end went from 600/s to 700/s. A lane's statements wait on one another's round
        trips: where the database is far, web processes run with --handle-events add lanes."""
        self.db, self.clock, self.handler = db, clock, handler
        self.batch = batch
        # PostgreSQL: given a batch's (team, event) pairs before they are handled in its session.
        self.look_ahead = look_ahead
        # A web process on PostgreSQL: the insert that stores an event also names it to the
        # clock (NOTIFY, delivered at its commit), and the clock handles it (Runtime sets it).
        self.hand_off = False
        self.foreground = foreground or Foreground()
        # One single-thread lane per channel hash keeps a channel's events in arrival order.
        self._lanes = [_Lane(f"inbox{i}", self._from_lane, gather) for i in range(lanes)]
        self._failures: dict[int, int] = {}
        self._outage = Outage(log, "handling stored events")
        # Events handled so far, and for each event whose last failure was of the outage kind
        # (see _own_fault) how many had been handled then.
        self._handled_count = 0
        self._failed_at: dict[int, int] = {}
        # Events handed to this process's lanes and not yet handled: a sweep leaves them be.
        self._queued: set[int] = set()
        self._queued_lock = threading.Lock()
        self._insert = insert(InboxEvent).returning(InboxEvent.id)
        # Handled events not yet noted in the store (SQLite; see _handled).
        self._marks: dict[int, datetime] = {}
        self._marks_lock = threading.Lock()
        self._marks_due = threading.Event()
        self._stopping = threading.Event()
        self._marker: threading.Thread | None = None
        # Not yet handled, and not held by another process (PostgreSQL).
        self._claim = (
            select(InboxEvent.id)
            .where(InboxEvent.id == bindparam("row_id"), InboxEvent.processed_at.is_(None))
            .with_for_update(skip_locked=True)
        )
        self._claim_payload = self._claim.with_only_columns(InboxEvent.payload)
        self._claim_many = (
            select(InboxEvent.id, InboxEvent.payload)
            .where(
                InboxEvent.id.in_(bindparam("ids", expanding=True)),
                InboxEvent.processed_at.is_(None),
            )
            .with_for_update(skip_locked=True)
        )
        self._mark = (
            update(InboxEvent)
            .where(InboxEvent.id == bindparam("row_id"))
            .values(processed_at=bindparam("at"))
        )
        # A lane's handled events at once: one statement where an executemany was one an event.
        self._mark_all = (
            update(InboxEvent)
            .where(InboxEvent.id.in_(bindparam("ids", expanding=True)))
            .values(processed_at=bindparam("at"))
        )

    def accept(self, body: dict[str, Any]) -> Stored | None:
        """Store an event callback; None for a retry or duplicate already stored."""
        event = event_of(body)
        if not worth_keeping(event) or _someone_else_joined(body):
            return None
        team_id = event_team(body)
        if event.get("type") in TIMED and body.get("event_time"):
            # When it left: Slack retries an unanswered event for half an hour, and by the time
            # one arrives the workspace may have installed the app again. Someone who left a
            # channel is told of once for each time they left (bot/engine/presence.py).
            event = {**event, "event_time": body["event_time"]}
        # Slack always sends one; without it nothing can be recognised as a retry.
        event_id = str(body.get("event_id") or f"none:{uuid.uuid4().hex}")
        payload = {
            "event": event,
            "team_id": team_id,
            "enterprise_id": body.get("enterprise_id") or "",
        }
        # Reactions name their channel under item: keep them in the lane of their message.
        channel = event.get("channel") or (event.get("item") or {}).get("channel")
        try:
            row_id = self._store(team_id, event_id, payload, channel)
        except (IntegrityError, sqlite3.IntegrityError):
            return None
        return Stored(row_id, channel, payload)

    def _store(
        self, team_id: str, event_id: str, payload: dict[str, Any], channel: str | None
    ) -> int:
        now = self.clock.now()
        if self.db.separate_inbox:
            # SQLite: straight to the driver. This runs before every ack, and SQLAlchemy's
            # statement machinery costs several times the write (100 vs 25 us a row measured).
            return self.db.insert_event_sqlite(
                "INSERT INTO inbox (team_id, event_id, payload, received_at) VALUES (?, ?, ?, ?)",
                (team_id, event_id, json.dumps(payload), raw.stored_datetime(now)),
            )
        if self.db.is_postgres and self.hand_off:
            # One statement still: the clock hears of the row when it is committed.
            return self.db.insert_event_pg(
                "WITH stored AS (INSERT INTO inbox (team_id, event_id, payload, received_at)"
                " VALUES (%s, %s, %s::json, %s) RETURNING id)"
                " SELECT id, pg_notify(%s, %s || id || '=' || %s) FROM stored",
                (
                    team_id,
                    event_id,
                    json.dumps(payload),
                    as_utc(now),
                    NOTIFY_CHANNEL,
                    INBOX_NOTE,
                    channel or "",
                ),
            )
        if self.db.is_postgres:
            return self.db.insert_event_pg(
                "INSERT INTO inbox (team_id, event_id, payload, received_at)"
                " VALUES (%s, %s, %s::json, %s) RETURNING id",
                (team_id, event_id, json.dumps(payload), as_utc(now)),
            )
        row = {"team_id": team_id, "event_id": event_id, "payload": payload, "received_at": now}
        with self.db.inbox_write() as conn:
            return int(conn.execute(self._insert, row).scalar_one())

    def submit(self, stored: Stored) -> None:
        """Handle a just-stored event after the ack, in its channel's lane; a web process that
        hands its events to the clock has nothing left to do."""
        if not self.hand_off:
            self._put(stored)

    def take(self, named: list[NamedEvent]) -> None:
        """The clock: handle events a web process stored, named by id and channel."""
        for row_id, channel in named:
            self._put(Stored(row_id, channel, None))

    def _put(self, stored: Stored) -> None:
        lane = self._lanes[zlib.crc32((stored.channel or "").encode()) % len(self._lanes)]
        with self._queued_lock:
            self._queued.add(stored.row_id)
        lane.put(stored)

    def idle(self) -> bool:
        """Whether every event handed to this process's lanes has been handled."""
        with self._queued_lock:
            return not self._queued

    def caught_up(self, team_id: str, timeout: float = CATCH_UP_SECONDS) -> bool:
        """Wait, `timeout` seconds at most, until the events acknowledged so far are handled:
        a session's `end` typed a moment after a reply (its ack already sent) then has the
        reply in its notes, not after them. Those are the events handed to this process's
        lanes; or, in a web process that hands its events to the clock, the workspace's events
        stored in the last few seconds, which the clock handles (older ones wait for a sweep)."""
        deadline = time.monotonic() + timeout
        done, poll = (self._clock_caught_up(team_id), 0.02) if self.hand_off else (self.idle, 0.005)
        while not done():
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def _clock_caught_up(self, team_id: str) -> Callable[[], bool]:
        recent = (
            select(InboxEvent.id)
            .where(InboxEvent.processed_at.is_(None), InboxEvent.team_id == team_id)
            .where(InboxEvent.received_at >= self.clock.now() - CATCH_UP_WINDOW)
        )
        with self.db.inbox_session() as s:
            waiting = list(s.scalars(recent))

        def handled() -> bool:
            nonlocal waiting
            if waiting:
                with self.db.inbox_session() as s:
                    waiting = list(
                        s.scalars(
                            select(InboxEvent.id).where(
                                InboxEvent.id.in_(waiting), InboxEvent.processed_at.is_(None)
                            )
                        )
                    )
            return not waiting

        return handled

    def _from_lane(self, taken: list[Stored]) -> None:
        # These events were stored by acks just written. The batch then runs through: stepping
        # aside before each of its events as well (2 ms of patience) held a lane to about an
        # event per 2 ms whenever acks were in flight, under the load that makes batches.
        self.foreground.after_answer()
        try:
            if self.db.is_postgres:
                self._claim_and_handle(taken)
                return
            # SQLite: one process holds the inbox, and every event comes with its payload.
            for stored in self._handle_in_order(taken):
                self._handled(stored.row_id)
        finally:
            with self._queued_lock:
                self._queued.difference_update(stored.row_id for stored in taken)

    def _batched(self, payload: dict[str, Any]) -> bool:
        return self.batch is not None and payload["event"].get("type") in BATCHED_EVENTS

    def _claim_and_handle(self, taken: list[Stored]) -> None:
        """PostgreSQL: hold the lane's rows (those another process holds, or has handled, are
        left out), read back the payloads of those a web process named, handle them in order,
        and note the handled ones. Replies and reactions go through in one transaction, claim
        and marks included; anything else, or any failure, goes the way of _claim_apart."""
        if self.batch is None:
            self._claim_apart(taken)
            return
        try:
            with self.batch() as s:
                conn = s.connection()
                held = self._held(conn, taken)
                if not all(self._batched(payload) for payload in held.values()):
                    raise _Apart
                handling = [stored for stored in taken if stored.row_id in held]
                events = [
                    (str(held[stored.row_id].get("team_id") or ""), held[stored.row_id]["event"])
                    for stored in handling
                ]
                if self.look_ahead is not None and len(events) > 1:
                    self.look_ahead(s, events)
                for team_id, event in events:
                    self.handler(team_id, event)
                if handling:
                    self._mark_handled(conn, handling)
        except Exception as exc:
            if not isinstance(exc, _Apart | NotYet):
                log.debug("a lane's batch failed (%s); handling apart", type(exc).__name__)
            self._claim_apart(taken)
            return
        self._succeeded([stored.row_id for stored in handling])

    def _held(self, conn: Connection, taken: list[Stored]) -> dict[int, dict[str, Any]]:
        ids = {"ids": [stored.row_id for stored in taken]}
        return dict(conn.execute(self._claim_many, ids).all())

    def _claim_apart(self, taken: list[Stored]) -> None:
        """_claim_and_handle's way for what one transaction can't take: the rows held in a
        transaction of the inbox's, each run of replies in one of its own (see _handle_many),
        anything else alone."""
        with self.db.inbox_write() as conn:
            held = self._held(conn, taken)
            handled = self._handle_in_order(
                [Stored(s.row_id, s.channel, held[s.row_id]) for s in taken if s.row_id in held]
            )
            if handled:
                self._mark_handled(conn, handled)

    def _mark_handled(self, conn: Connection, handled: list[Stored]) -> None:
        ids = [stored.row_id for stored in handled]
        conn.execute(self._mark_all, {"ids": ids, "at": self.clock.now()})

    def _handle_in_order(self, taken: list[Stored]) -> list[Stored]:
        """Handle a lane's events in order: each run of replies and reactions together (see
        BATCH), anything else alone. Returns those handled."""
        handled: list[Stored] = []
        run: list[Stored] = []
        for stored in taken:
            if self._batched(stored.loaded):
                run.append(stored)
                continue
            handled += self._handle_run(run)
            run = []
            if self._handle(stored.row_id, stored.loaded):
                handled.append(stored)
        return handled + self._handle_run(run)

    def _handle_run(self, run: list[Stored]) -> list[Stored]:
        if len(run) >= 2:
            return self._handle_many(run)
        return [stored for stored in run if self._handle(stored.row_id, stored.loaded)]

    def _handle_many(self, run: list[Stored]) -> list[Stored]:
        """Handle events in one transaction; if any of them fails, handle each on its own, so
        the rest are kept and the failing one waits for its next try. Returns those handled."""
        assert self.batch is not None
        try:
            with self.batch():
                for stored in run:
                    payload = stored.loaded
                    self.handler(str(payload.get("team_id") or ""), payload["event"])
        except Exception:
            return [stored for stored in run if self._handle(stored.row_id, stored.loaded)]
        self._succeeded([stored.row_id for stored in run])
        return run

    def process(self, row_id: int, payload: dict[str, Any] | None = None) -> None:
        """Handle one stored event once. A lane passes the payload it stored; replay and sweep
        read it back."""
        if self.db.is_postgres:
            self._process_claimed(row_id, payload)
            return
        if payload is None:
            with self.db.inbox_session() as s:
                row = s.get(InboxEvent, row_id)
                if row is None or row.processed_at is not None:
                    return
                payload = row.payload
        # With SQLite one process holds the inbox: a lane's event is handled by the lane alone
        # (sweeps leave queued events be), so there is nothing to claim.
        if self._handle(row_id, payload):
            self._handled(row_id)

    def _handled(self, row_id: int) -> None:
        """Note an event handled. The notes are written together, at most MARK_EVERY apart,
        so the inbox file has one writer besides the acks instead of one per event. If the
        process dies first, the next start handles those events again, which changes nothing:
        every handler recognises what it already did (a reply by its ts)."""
        with self._marks_lock:
            self._marks[row_id] = self.clock.now()
            if self._marker is None:
                self._marker = threading.Thread(
                    target=self._mark_loop, name="inbox-marks", daemon=True
                )
                self._marker.start()
        self._marks_due.set()

    def _mark_loop(self) -> None:
        checkpointed = time.monotonic()
        while not self._stopping.is_set():
            self._marks_due.wait()
            self._marks_due.clear()
            self.foreground.step_aside()
            self.flush_marks()
            if time.monotonic() - checkpointed >= CHECKPOINT_EVERY:
                self._checkpoint()
                checkpointed = time.monotonic()
            self._stopping.wait(MARK_EVERY)

    def _checkpoint(self) -> None:
        try:
            self.db.checkpoint_inbox()
        except Exception as exc:
            log.warning(
                "inbox checkpoint failed (%s); the next one tries again", type(exc).__name__
            )

    def flush_marks(self) -> None:
        with self._marks_lock:
            marks, self._marks = self._marks, {}
        if not marks:
            return
        try:
            if self.db.separate_inbox:
                self.db.mark_events_sqlite(list(marks.items()))
            else:
                with self.db.inbox_write() as conn:
                    rows = [{"row_id": rid, "at": at} for rid, at in marks.items()]
                    conn.execute(self._mark, rows)
        except Exception:
            log.exception("could not note %d handled events; kept for the next try", len(marks))
            with self._marks_lock:
                self._marks = {**marks, **self._marks}

    def _process_claimed(self, row_id: int, payload: dict[str, Any] | None) -> None:
        """Hold the row while handling it; a process that finds it held leaves it to the holder.
        Core rather than the ORM: this runs once per event, and the ORM's select and flush cost
        as much CPU as the handling of a reply."""
        with self.db.inbox_write() as conn:
            if payload is None:
                payload = conn.execute(self._claim_payload, {"row_id": row_id}).scalar()
                if payload is None:
                    return
            elif conn.execute(self._claim, {"row_id": row_id}).scalar() is None:
                return
            if self._handle(row_id, payload):
                conn.execute(self._mark, {"row_id": row_id, "at": self.clock.now()})

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
            if not self._own_fault(row_id, exc) and self._outage.failed(exc):
                # The database out of reach or its disk full: no fault of the event's, and no
                # try counted against it (after MAX_TRIES it would wait for the next start).
                return False
            failures = self._failures[row_id] = self._failures.get(row_id, 0) + 1
            if failures == 1:
                log.exception("inbox event %s failed; it stays for a later try", row_id)
            elif failures >= MAX_TRIES:
                log.warning(
                    "inbox event %s failed %d times (%s); it waits for the next start",
                    row_id,
                    failures,
                    type(exc).__name__,
                )
            else:
                log.warning("inbox event %s failed again (%s)", row_id, type(exc).__name__)
            return False
        self._succeeded([row_id])
        self._outage.ok()
        return True

    def _own_fault(self, row_id: int, exc: Exception) -> bool:
        """Whether a failure of the outage kind (an OperationalError) is the event's own: a
        statement the database refuses for this event alone (a row too large for an index, a
        limit) failed at every sweep for ever, never counted. It is the event's own when
        other events were handled since its last such failure; in an outage none is."""
        if unreachable(exc) is None:
            return False
        handled, before = self._handled_count, self._failed_at.get(row_id)
        self._failed_at[row_id] = handled
        return before is not None and handled != before

    def _succeeded(self, row_ids: list[int]) -> None:
        self._handled_count += len(row_ids)
        for row_id in row_ids:
            self._failures.pop(row_id, None)
            self._failed_at.pop(row_id, None)

    def replay(self) -> int:
        """Handle, in arrival order, what was stored but not handled before a stop."""
        if self.db.separate_inbox:
            self._adopt_leftovers()
        with self.db.inbox_session() as s:
            pending = s.scalars(
                select(InboxEvent.id)
                .where(InboxEvent.processed_at.is_(None))
                .order_by(InboxEvent.id)
            ).all()
        for row_id in pending:
            self.process(row_id)
        self.flush_marks()
        return len(pending)

    def _adopt_leftovers(self) -> None:
        """Unhandled events in the main database's inbox table, stored by a version that kept
        the inbox there, move to the inbox's own file."""
        with self.db.session() as s:
            rows = s.scalars(select(InboxEvent).where(InboxEvent.processed_at.is_(None))).all()
            if not rows:
                return
            moved = [
                {
                    "team_id": r.team_id,
                    "event_id": r.event_id,
                    "payload": r.payload,
                    "received_at": r.received_at,
                }
                for r in rows
            ]
            with self.db.inbox_session() as inbox:
                for row in moved:
                    try:
                        with inbox.begin_nested():
                            inbox.execute(insert(InboxEvent), row)
                    except IntegrityError:
                        pass  # already moved by a start that stopped before the delete
            s.execute(delete(InboxEvent).where(InboxEvent.id.in_([r.id for r in rows])))
        log.info("moved %d stored events to the inbox database", len(moved))

    def sweep(self, older_than: timedelta = SWEEP_AFTER, batch: int = SWEEP_BATCH) -> int:
        """Handle events still unhandled a while after they arrived: left by a process that died
        between the ack and the handling, or kept for a later try (NotYet).

        On PostgreSQL the row lock keeps a sweep from handling an event a live process is on;
        with SQLite there is one process, and events in its own lanes are left to them.
        """
        # Events this process gave up on are left out before the batch is taken: a batch of
        # them alone would hide every newer event from the sweep until a restart.
        given_up = [row_id for row_id, n in list(self._failures.items()) if n >= MAX_TRIES]
        with self.db.inbox_session() as s:
            stale = s.scalars(
                select(InboxEvent.id)
                .where(
                    InboxEvent.processed_at.is_(None),
                    InboxEvent.received_at < self.clock.now() - older_than,
                    *([InboxEvent.id.not_in(given_up)] if given_up else []),
                )
                .order_by(InboxEvent.id)
                .limit(batch)
            ).all()
        with self._queued_lock:
            queued = set(self._queued)
        with self._marks_lock:
            queued |= self._marks.keys()
        stale = [
            row_id
            for row_id in stale
            if row_id not in queued and self._failures.get(row_id, 0) < MAX_TRIES
        ]
        for row_id in stale:
            self.process(row_id)
        self.flush_marks()
        self._checkpoint()
        return len(stale)

    def purge(self, keep: timedelta = timedelta(days=1)) -> None:
        """Handled events are kept a day, long enough to recognise Slack's retries."""
        with self.db.inbox_session() as s:
            s.execute(
                delete(InboxEvent).where(
                    InboxEvent.processed_at.is_not(None),
                    InboxEvent.received_at < self.clock.now() - keep,
                )
            )

    def stop(self) -> None:
        for lane in self._lanes:
            lane.stop()
        self._stopping.set()
        self._marks_due.set()
        if self._marker is not None:
            self._marker.join(timeout=5)
        self.flush_marks()
