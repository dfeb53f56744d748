"""The protocol engine: start a session, open and close steps, end it with the notes.

Imports no Bolt. Takes a database, the protocol library, a clock, timers (the scheduler port) and
writes everything it wants said to the outbox in the same transaction as the change that says it.
A timer firing and a facilitator pressing "Next step" run the same `_advance`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from typing import Protocol as TypingProtocol

from sqlalchemy import ScalarResult, and_, bindparam, case, insert, or_, select, text, update
from sqlalchemy.orm import Session, selectinload

from bot import slack
from bot.activity import ACTIVITY, ENDED, STARTED
from bot.blocks import Message, fits_one_message, render_message
from bot.clock import Clock
from bot.engine import notes as notes_mod
from bot.engine import posted_notes
from bot.engine.errors import Refusal, Reply
from bot.engine.pacing import (
    button_extension,
    calendar_days,
    close_time,
    local_label,
    step_seconds,
    warning_time,
    working_start,
    zone,
)
from bot.engine.presenter import presenter_turn
from bot.protocols import Protocol
from bot.store import raw
from bot.store.db import Database
from bot.store.models import ACTIVE, OutboxMessage, ProtocolSession, StepRun

log = logging.getLogger(__name__)

MAX_SCHEDULED_PER_CHANNEL = 20
# The header's plan shows this many steps (Slack takes about 13,000 characters of blocks), from
# this many before the open one.
PLAN_SHOWN, PLAN_BEFORE = 30, 3
# A `/protocol next` this soon after a step opened on its own was typed for the step before.
JUST_OPENED = timedelta(seconds=3)
# Why a protocol a web process started a session of can be missing from the clock: each
# process loads its own library at start-up, from its own settings.
SAME_PROTOCOLS = (
    "every serve and clock process needs the same PROTOCOLS_DIR (each logs the protocols it "
    "loaded at start-up)"
)


@dataclass
class DueWork:
    """What the database says is due: (session, step, when) and (session, when) tuples."""

    closes: list[tuple[int, int, datetime]] = field(default_factory=list)
    warnings: list[tuple[int, int, datetime]] = field(default_factory=list)
    starts: list[tuple[int, datetime]] = field(default_factory=list)


class Timers(TypingProtocol):
    """The scheduler port: the engine says when things are due, the scheduler makes them happen."""

    def step_deadline(self, session_id: int, step: int, at: datetime) -> None: ...
    def step_warning(self, session_id: int, step: int, at: datetime) -> None: ...
    def session_start(self, session_id: int, at: datetime) -> None: ...
    def prep_due(self, session_id: int, kind: str, at: datetime) -> None: ...
    def clear(self, session_id: int) -> None: ...


class NoTimers:
    """For processes that only record deadlines in the database (a clock process acts on them)."""

    def step_deadline(self, session_id: int, step: int, at: datetime) -> None:
        pass

    def step_warning(self, session_id: int, step: int, at: datetime) -> None:
        pass

    def session_start(self, session_id: int, at: datetime) -> None:
        pass

    def prep_due(self, session_id: int, kind: str, at: datetime) -> None:
        pass

    def clear(self, session_id: int) -> None:
        pass


class Directory(TypingProtocol):
    """Read-only questions to Slack: who is in a channel (people only, no bots), which of some
    people are not in it, whether Slack hides a channel from the bot (private, and it not
    invited) and whether the bot, or someone said to have left, is in one now, what people
    and channels are called, by id (those Slack cannot name left out), which names it gave
    before (asking nothing: for a transaction, which must not wait on Slack), what a thread
    holds, what a file shared is (its name and link), and whether someone has left the
    workspace."""

    def members(self, team_id: str, channel: str) -> list[str]: ...

    def absent(
        self, team_id: str, channel: str, users: list[str], *, fresh: bool = False
    ) -> list[str]: ...

    def hidden(self, team_id: str, channel: str) -> bool: ...

    def in_channel(self, team_id: str, channel: str) -> bool | None: ...

    def still_in(self, team_id: str, channel: str, user: str) -> bool | None: ...

    def names(self, team_id: str, ids: list[str]) -> dict[str, str]: ...

    def remembered(self, team_id: str, ids: list[str]) -> dict[str, str]: ...

    def thread(self, team_id: str, channel: str, ts: str) -> list[dict[str, Any]]: ...

    def file(self, team_id: str, file_id: str) -> dict[str, Any] | None: ...

    def gone(self, team_id: str, user: str) -> bool: ...


class NoDirectory:
    def members(self, team_id: str, channel: str) -> list[str]:
        return []

    def absent(
        self, team_id: str, channel: str, users: list[str], *, fresh: bool = False
    ) -> list[str]:
        return []

    def hidden(self, team_id: str, channel: str) -> bool:
        return False

    def in_channel(self, team_id: str, channel: str) -> bool | None:
        return None

    def still_in(self, team_id: str, channel: str, user: str) -> bool | None:
        return None

    def names(self, team_id: str, ids: list[str]) -> dict[str, str]:
        return {}

    def remembered(self, team_id: str, ids: list[str]) -> dict[str, str]:
        return {}

    def thread(self, team_id: str, channel: str, ts: str) -> list[dict[str, Any]]:
        return []

    def file(self, team_id: str, file_id: str) -> dict[str, Any] | None:
        return None

    def gone(self, team_id: str, user: str) -> bool:
        return False


@dataclass
class Actor:
    """Who asked, and where."""

    team_id: str
    user_id: str
    channel_id: str
    enterprise_id: str = ""
    is_admin: Callable[[], bool] = field(default=lambda: False)


@dataclass(frozen=True)
class Pressed:
    """A step message's button: the session and step that message is for (its value, `7:2`)."""

    session_id: int | None
    step: int | None

    @classmethod
    def parse(cls, value: str) -> Pressed:
        session_id, _, step = value.partition(":")
        return cls(
            int(session_id) if session_id.isdigit() else None, int(step) if step.isdigit() else None
        )

    def stale(self, session: ProtocolSession, check_step: bool = True) -> Reply | None:
        """Why a press on this button must not act on `session` (the channel's active one):
        the button belongs to another, older session, or to a step it has left."""
        if self.session_id is not None and self.session_id != session.id:
            return Reply("replies/button_over.j2", {"session": session})
        if check_step and self.step is not None and self.step != session.current_step:
            return Reply("replies/already_moved.j2", {"session": session})
        return None


@dataclass
class _After:
    calls: list[Callable[[], None]] = field(default_factory=list)

    def __call__(self, fn: Callable[[], None]) -> None:
        self.calls.append(fn)


class Engine:
    def __init__(
        self,
        db: Database,
        library: dict[str, Protocol],
        clock: Clock,
        timers: Timers | None = None,
        wake_outbox: Callable[[], None] | None = None,
        directory: Directory | None = None,
    ) -> None:
        self.db, self.library, self.clock = db, library, clock
        self.timers: Timers = timers or NoTimers()
        self.wake_outbox = wake_outbox or (lambda: None)
        # The sender running in this process, if any: a reply's tag reaction goes straight to it.
        self.sender: slack.OutboxSender | None = None
        self.directory: Directory = directory or NoDirectory()
        # Called in the transaction that schedules a session ahead (presenter prep hooks in here).
        self.on_scheduled: list[Callable[[Session, _After, ProtocolSession], None]] = []
        # Told, once a session resumes, of its steps' threads (team, enterprise, channel, and
        # each step message's ts, the open step's first): replies written there while the bot
        # was out of the channel never reached it (the runtime asks Slack: bot/missed.py).
        self.on_resumed: Callable[[str, str, str, list[str]], None] = lambda *_threads: None
        # After the presenter is sent their turn (session, step): whether they are still in the
        # channel is asked of Slack then, not in the transaction that opens the step.
        self.on_presenter_turn: Callable[[int, int], None] = lambda *_turn: None
        # The batch this thread's transactions join, if one is open (see batch()).
        self._local = threading.local()

    # -- plumbing ------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[tuple[Session, _After]]:
        """A unit of work; timers and the outbox are told only after it commits."""
        joined: tuple[Session, _After] | None = getattr(self._local, "batch", None)
        if joined is not None:
            yield joined
            return
        after = _After()
        with self._handing_over() as handoff, self.db.session() as s:
            handoff.append(s)
            yield s, after
            enqueued = s.info.pop(slack.ENQUEUED, False)
        self._after_commit(after, enqueued)

    @contextmanager
    def batch(self) -> Iterator[Session]:
        """Transactions opened on this thread inside the block are one, committed at its end;
        the block gets their session (the inbox claims and marks its rows in it on PostgreSQL).

        For a lane with a backlog of replies: one commit (and, on SQLite, one turn of the write
        lock) for many, where each reply's own costs more than recording it. Any exception rolls
        back the whole batch, so a caller that wants the rest kept handles each one again on its
        own. Handlers that run inside must not catch an exception from a transaction and go on.
        """
        joined: tuple[Session, _After] | None = getattr(self._local, "batch", None)
        if joined is not None:
            yield joined[0]
            return
        after = _After()
        with self._handing_over() as handoff, self.db.session() as s:
            handoff.append(s)
            self._local.batch = (s, after)
            try:
                yield s
            finally:
                self._local.batch = None
            enqueued = s.info.pop(slack.ENQUEUED, False)
        self._after_commit(after, enqueued)

    @staticmethod
    @contextmanager
    def _handing_over() -> Iterator[list[Session]]:
        """Around a unit of work's session: once it has committed, its calls held for the sender
        go to a worker (slack.Handoff); if it fails, at any point up to its commit, their
        channels are let go."""
        opened: list[Session] = []
        try:
            yield opened
        except BaseException:
            handoff = slack.handed(opened[0]) if opened else None
            if handoff is not None:
                handoff.rolled_back()
            raise
        handoff = slack.handed(opened[0]) if opened else None
        if handoff is not None:
            handoff.committed()

    def _after_commit(self, after: _After, enqueued: bool) -> None:
        for fn in after.calls:
            try:
                fn()
            except Exception:
                log.exception("after-commit action failed; the reconcile will catch up")
        if enqueued:
            # Only a transaction that wrote to the outbox wakes it (a status read does not).
            self.wake_outbox()

    def protocol(self, protocol_id: str) -> Protocol:
        try:
            return self.library[protocol_id]
        except KeyError:
            raise Refusal(
                "refusals/unknown_protocol.j2", name=protocol_id, available=sorted(self.library)
            ) from None

    def installed(
        self, session: notes_mod.Reached, ran: Mapping[int, str] | None = None
    ) -> Protocol | None:
        """The protocol `session` runs, if it can run on (see notes.installed); None: hold it."""
        return notes_mod.installed(self.library, session, ran)

    def cut_short(self, session: notes_mod.Reached, ran: Mapping[int, str] | None = None) -> bool:
        """Installed, but not with the steps `session` reached: an operator shortened it, or
        gave its id to other steps."""
        return notes_mod.cut_short(self.library, session, ran)

    def replaced(self, session: notes_mod.Reached, ran: Mapping[int, str] | None = None) -> bool:
        """Installed with the step `session` reached, but its id now names other steps."""
        kept = self.library.get(session.protocol_id)
        return (
            kept is not None
            and len(kept.steps) >= session.current_step
            and notes_mod.replaced(kept, session, ran)
        )

    def why_held(
        self, session: notes_mod.Reached, ran: Mapping[int, str] | None = None
    ) -> dict[str, bool]:
        """What the answers say of a session its protocol can't run on (see installed): `gone`,
        not installed; `cut`, installed without the steps it reached; `replaced`, its id given
        to other steps."""
        return {
            "gone": self.installed(session, ran) is None,
            "cut": self.cut_short(session, ran),
            "replaced": self.replaced(session, ran),
        }

    def cannot_run(self, session: notes_mod.Reached) -> Refusal:
        """Why a session held for its protocol can't move (see installed)."""
        return Refusal(
            "refusals/protocol_gone.j2",
            protocol_id=session.protocol_id,
            steps=self.steps_left(session),
            reached=session.current_step,
            replaced=self.replaced(session),
        )

    def steps_left(self, session: notes_mod.Reached) -> int | None:
        """How many steps the session's protocol has, if it is installed (say, shortened)."""
        kept = self.library.get(session.protocol_id)
        return len(kept.steps) if kept is not None else None

    def shown_protocol(
        self, s: Session, session: notes_mod.Reached, ran: Mapping[int, str] | None = None
    ) -> Protocol:
        """The session's protocol, or, if it cannot run on (no longer installed, cut short of
        the step it reached, or its id given to other steps), a stand-in made of the steps it
        ran: enough to show what was recorded, never to run a step."""
        return notes_mod.shown(self.library, s, session, ran)

    def post(
        self,
        s: Session,
        session: ProtocolSession,
        message: Message,
        *,
        channel: str | None = None,
        ref: str | None = None,
        thread_ref: str | None = None,
        **extra: Any,
    ) -> None:
        channel = channel or session.channel_id
        payload: dict[str, Any] = {"channel": channel, "text": message.text, **extra}
        if message.blocks:
            payload["blocks"] = message.blocks
        slack.enqueue(
            s,
            now=self.clock.now(),
            team_id=session.team_id,
            channel=channel,
            method="chat.postMessage",
            payload=payload,
            ref=ref,
            thread_ref=thread_ref,
        )

    def call(
        self,
        s: Session,
        session: ProtocolSession,
        method: str,
        *,
        ref: str | None = None,
        **payload: Any,
    ) -> None:
        slack.enqueue(
            s,
            now=self.clock.now(),
            team_id=session.team_id,
            channel=str(payload.get("channel") or session.channel_id),
            method=method,
            payload=payload,
            ref=ref,
        )

    def tell(self, actor: Actor, message: Message) -> None:
        """A private (ephemeral) line to one person in the channel, through the outbox."""
        payload: dict[str, Any] = {
            "channel": actor.channel_id,
            "user": actor.user_id,
            "text": message.text,
        }
        if message.blocks:
            payload["blocks"] = message.blocks
        with self.transaction() as (s, _after):
            slack.enqueue(
                s,
                now=self.clock.now(),
                team_id=actor.team_id,
                channel=actor.channel_id,
                method="chat.postEphemeral",
                payload=payload,
            )

    def active_session(self, s: Session, actor: Actor) -> ProtocolSession | None:
        if self.db.is_postgres:
            # FOR UPDATE locks no row while the channel has no session: queue on the channel.
            key = f"{actor.team_id}/{actor.enterprise_id}/{actor.channel_id}"
            s.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
        return channel_sessions(s, actor, ACTIVE, lock=True).first()

    def latest_session(
        self, s: Session, actor: Actor, *, ended: bool = False
    ) -> ProtocolSession | None:
        """The channel's current session, or else the one that ran last (_LATEST_SESSION); with
        `ended`, the one that ran last, whatever runs now."""
        query = _LAST_ENDED if ended else _LATEST_SESSION
        return s.scalars(query, channel_values(actor)).first()

    def _lock(self, s: Session, session_id: int) -> ProtocolSession | None:
        return s.scalars(
            select(ProtocolSession).where(ProtocolSession.id == session_id).with_for_update()
        ).first()

    def require_facilitator(
        self, session: ProtocolSession, actor: Actor, action: str, *, by_number: bool = False
    ) -> None:
        """Refused unless the actor facilitates `session` or is an admin; `by_number`: the
        refusal names the session by its number (one that is not the channel's current one)."""
        if actor.user_id == session.facilitator_id or actor.is_admin():
            return
        # A facilitator who has left the workspace can steer no more: the team hears who can.
        gone = self.directory.gone(actor.team_id, session.facilitator_id)
        raise Refusal(
            "refusals/only_facilitator.j2",
            facilitator=session.facilitator_id,
            action=action,
            gone=gone,
            number=session.id if by_number else None,
        )

    # -- starting ------------------------------------------------------------------------------
    def start(
        self,
        actor: Actor,
        *,
        protocol_id: str,
        presenter: str,
        facilitator: str | None = None,
        step_seconds: int | None = None,
        step_days: int | None = None,
        start_at: datetime | None = None,
        weekdays: bool = False,
        remind_seconds: int | None = None,
        tz: str = "UTC",
    ) -> Reply:
        protocol = self.protocol(protocol_id)
        now = self.clock.now()
        carried_from = None
        if weekdays and working_start(start_at or now, tz) != (start_at or now):
            # Asked for a weekend: its first step opens on Monday morning, and the answer says so.
            carried_from, start_at = start_at or now, working_start(start_at or now, tz)
        starts_now = start_at is None or start_at <= now
        facilitator = facilitator or actor.user_id
        remind = remind_seconds if remind_seconds is not None else 86400
        with self.transaction() as (s, after):
            if starts_now and (active := self.active_session(s, actor)) is not None:
                raise Refusal(
                    "refusals/already_running.j2",
                    protocol=self.protocol_name(active.protocol_id),
                    facilitator=active.facilitator_id,
                    wanted=protocol.id,
                    paused=active.status == "paused",
                    yours=active.facilitator_id == actor.user_id,
                )
            in_the_way = None
            if not starts_now and start_at is not None:
                # The start dialog submitted twice (a double click, Slack's retry), or the same
                # command sent again: one session, not two at the same moment.
                twin = s.scalars(
                    select(ProtocolSession).where(
                        ProtocolSession.team_id == actor.team_id,
                        ProtocolSession.channel_id == actor.channel_id,
                        ProtocolSession.status == "scheduled",
                        ProtocolSession.starts_at == start_at,
                        ProtocolSession.protocol_id == protocol.id,
                        ProtocolSession.presenter_id == presenter,
                        ProtocolSession.facilitator_id == facilitator,
                        ProtocolSession.step_seconds.is_(None)
                        if step_seconds is None
                        else ProtocolSession.step_seconds == step_seconds,
                        ProtocolSession.weekdays == weekdays,
                        ProtocolSession.remind_seconds == remind,
                    )
                ).first()
                if twin is not None:
                    raise Refusal(
                        "refusals/already_scheduled.j2",
                        protocol=protocol.name,
                        number=twin.id,
                        starts_at=start_at,
                        presenter=presenter,
                    )
                in_the_way = self._in_the_way(s, actor, start_at)
            session = ProtocolSession(
                team_id=actor.team_id,
                enterprise_id=actor.enterprise_id,
                channel_id=actor.channel_id,
                protocol_id=protocol.id,
                presenter_id=presenter,
                facilitator_id=facilitator,
                created_by=actor.user_id,
                status="scheduled",
                step_seconds=step_seconds,
                step_days=step_days,
                weekdays=weekdays,
                tz=tz,
                remind_seconds=remind,
                starts_at=now if starts_now else start_at,
                created_at=now,
            )
            s.add(session)
            s.flush()
            delays: list[ScheduledView] = []
            ends_at = None
            if starts_now:
                self._begin(s, after, session, now)
                ends_at = self.planned_end(session)
                delays = self._delayed_by(s, actor, ends_at)
            else:
                sid, at = session.id, session.starts_at
                after(lambda: self.timers.session_start(sid, at))
                for hook in self.on_scheduled:
                    hook(s, after, session)
                # Booked ahead of sessions scheduled already: those due while it runs wait.
                begins = at if in_the_way is None else in_the_way["ends_at"]
                ends_at = self.planned_end(session, begins) if begins is not None else None
                if ends_at is not None:
                    delays = self._delayed_by(s, actor, ends_at, after=session)
            return Reply(
                "replies/started.j2" if starts_now else "replies/scheduled.j2",
                {
                    "protocol": protocol,
                    "session": session,
                    "waits_for": in_the_way,
                    "delays": delays,
                    "ends_at": ends_at if delays else None,
                    "carried_from": carried_from,
                    # Asked for early on a Monday: before the working week, not at the weekend.
                    "before_the_week": carried_from is not None
                    and carried_from.astimezone(zone(tz)).weekday() == 0,
                },
            )

    def _delayed_by(
        self,
        s: Session,
        actor: Actor,
        ends_at: datetime | None,
        after: ProtocolSession | None = None,
    ) -> list[ScheduledView]:
        """The sessions scheduled in the channel to start before `ends_at`, the planned end of
        the session just begun there (or just scheduled: `after`, and only those due after it):
        each will wait for it (one active session a channel)."""
        waiting = [
            x
            for x in channel_sessions(s, actor, ("scheduled",))
            if (ends_at is None or x.starts_at < ends_at)
            and (after is None or (x.id != after.id and x.starts_at > after.starts_at))
        ]
        return [self.scheduled_view(x) for x in sorted(waiting, key=lambda x: (x.starts_at, x.id))]

    def scheduled_view(self, session: ProtocolSession) -> ScheduledView:
        name = self.protocol_name(session.protocol_id)
        label = local_label(session.starts_at, session.tz)
        return ScheduledView(session.id, name, session.starts_at, session.presenter_id, label)

    def protocol_name(self, protocol_id: str) -> str:
        """A protocol's name, or its id once it is no longer installed."""
        protocol = self.library.get(protocol_id)
        return protocol.name if protocol else protocol_id

    def _in_the_way(
        self, s: Session, actor: Actor, at: datetime, ours: int | None = None
    ) -> dict[str, Any] | None:
        """What a start at `at` in the actor's channel waits for, if anything: the session after
        which the channel is free (the one running, then those due before `at`, one after the
        other, each starting when the one before ends), with when that is (None: nobody can say,
        a paused one is in the queue). `ours`: a session already scheduled, left out."""
        queue = sorted(
            (x for x in channel_sessions(s, actor, (*ACTIVE, "scheduled")) if x.id != ours),
            key=lambda x: (x.status == "scheduled", x.starts_at, x.id),
        )
        last: ProtocolSession | None = None
        free_at: datetime | None = self.clock.now()
        for other in queue:
            if other.status == "scheduled" and other.starts_at > at:
                break  # it starts after this one
            if other.status == "scheduled":
                begins = max(other.starts_at, free_at) if free_at is not None else None
                free_at = self.planned_end(other, begins) if begins is not None else None
            else:
                free_at = self.planned_end(other)
            last = other
        if last is None or (free_at is not None and free_at <= at):
            return None
        return self._running_view(last, free_at)

    def _running_view(self, session: ProtocolSession, ends_at: datetime | None) -> dict[str, Any]:
        return {
            "id": session.id,
            "protocol": self.protocol_name(session.protocol_id),
            "status": session.status,
            "facilitator": session.facilitator_id,
            "ends_at": ends_at,
        }

    def planned_end(
        self, session: ProtocolSession, begins: datetime | None = None
    ) -> datetime | None:
        """When a session ends on its current schedule (a scheduled one: if it `begins` then, by
        default at its time); None when nobody can say (paused)."""
        protocol = self.installed(session)
        if protocol is None:
            return None
        if session.status == "scheduled":
            return self.schedule(session, protocol, begins or session.starts_at)[-1]["closes"]
        if session.status != "running" or session.step_closes_at is None:
            return None
        rest = self.schedule(session, protocol, session.step_closes_at, session.current_step + 1)
        return rest[-1]["closes"] if rest else session.step_closes_at

    def begin(self, session_id: int) -> None:
        """The timer path for a session scheduled ahead: start it now if the channel is free,
        else tell its facilitator it waits for the session running there."""
        now = self.clock.now()
        with self.transaction() as (s, after):
            session = self._lock(s, session_id)
            if session is None or session.status != "scheduled":
                return
            actor = Actor(
                session.team_id, session.facilitator_id, session.channel_id, session.enterprise_id
            )
            if self.installed(session) is None:
                self._call_off(s, after, session, now)
                return
            if session.weekdays and (monday := working_start(now, session.tz)) > now:
                # Freed (or its timer late) at the weekend: it opens on Monday morning.
                after(lambda: self.timers.session_start(session_id, monday))
                return
            if (active := self.active_session(s, actor)) is not None:
                # One active session per channel: it starts when that one ends (see _finish);
                # the retry is for a start that was missed there (a process that died).
                at = now + timedelta(minutes=5)
                after(lambda: self.timers.session_start(session_id, at))
                ends_at = self.planned_end(active)
                if ends_at is None or ends_at > now:
                    # Not one ending this very moment (its close is due, its timer on its way).
                    self._tell_waiting(s, actor, session, active)
                return
            self._begin(s, after, session, now)

    def _tell_waiting(
        self, s: Session, actor: Actor, session: ProtocolSession, active: ProtocolSession
    ) -> None:
        """The facilitator hears that their session waits, and for how long: once for each
        session that runs in the way (another due before it may start when this one ends)."""
        ref = f"waiting:{session.id}:{active.id}"
        if slack.enqueued(s, session.team_id, ref):
            return
        protocol = self.library[session.protocol_id]
        running = self._running_view(active, self.planned_end(active))
        free = self._in_the_way(s, actor, session.starts_at, ours=session.id)
        message = render_message(
            "start_waiting.j2",
            session=session,
            protocol=protocol,
            running=running,
            free_at=free["ends_at"] if free else running["ends_at"],
            queued=free is not None and free["id"] != active.id,
        )
        self.post(s, session, message, channel=session.facilitator_id, ref=ref)

    def _begin(self, s: Session, after: _After, session: ProtocolSession, now: datetime) -> None:
        protocol = self.library[session.protocol_id]
        session.status = "running"
        session.started_at = now
        session.planned_steps = len(protocol.steps)
        sid, steps = session.id, len(protocol.steps)
        after(lambda: _began(sid, protocol.id, steps))
        schedule = self.schedule(session, protocol, now)
        self.post(s, session, _header(session, protocol, schedule), ref=f"header:{session.id}")
        self._open_step(s, after, session, protocol, 1, now)

    def schedule(
        self, session: ProtocolSession, protocol: Protocol, opened: datetime, first: int = 1
    ) -> list[dict[str, Any]]:
        """When each step from `first` on opens and closes, if nobody moves the schedule."""
        rows = []
        for index in range(first, len(protocol.steps) + 1):
            seconds = step_seconds(protocol, index, session.step_seconds)
            closes = _closes(session, opened, seconds)
            rows.append(
                {
                    "index": index,
                    "step": protocol.step(index),
                    "opens": opened,
                    "closes": closes,
                    "state": "planned",
                }
            )
            opened = closes
        return rows

    # -- steps ---------------------------------------------------------------------------------
    def _open_step(
        self,
        s: Session,
        after: _After,
        session: ProtocolSession,
        protocol: Protocol,
        index: int,
        opened: datetime,
        opened_by: str | None = None,
        by_button: bool = False,
    ) -> None:
        step = protocol.step(index)
        seconds = step_seconds(protocol, index, session.step_seconds)
        closes = _closes(session, opened, seconds)
        warn_at = warning_time(opened, closes, seconds, weekdays=session.weekdays, tz=session.tz)
        run = {
            "session_id": session.id,
            "index": index,
            "step_id": step.id,
            "started_at": opened,
            "closes_at": closes,
            "opened_by": opened_by,
            "opened_by_button": by_button,
            "warn_at": warn_at,
        }
        if (gathered := raw.gathered(s)) is not None:
            gathered.add(_OPEN_RUN, {**run, **_RUN_UNSET})  # see raw.gathering
        else:
            s.add(StepRun(**run))
        session.current_step = index
        session.step_closes_at = closes
        self.post_step(s, session, protocol, index, closes)
        # The presenter's turn opens: give back the notes they kept while they listened.
        sid = session.id
        turn = presenter_turn(s, session, protocol, index)
        for message in turn:
            ref = f"presenter:{session.id}:{index}"
            self.post(s, session, message, channel=session.presenter_id, ref=ref)
        if turn:
            after(lambda: self.on_presenter_turn(sid, index))
        after(lambda: self.timers.step_deadline(sid, index, closes))
        if warn_at is not None:
            warns = warn_at
            after(lambda: self.timers.step_warning(sid, index, warns))

    def post_step(
        self,
        s: Session,
        session: ProtocolSession,
        protocol: Protocol,
        index: int,
        closes: datetime,
    ) -> None:
        """The step's message in the channel: its question, guidance, close time and buttons."""
        message = self.step_message(s, session, protocol, index, closes)
        self.post(s, session, message, ref=f"step:{session.id}:{index}")

    def step_message(
        self,
        s: Session,
        session: ProtocolSession,
        protocol: Protocol,
        index: int,
        closes: datetime | None,
        closed: datetime | None = None,
    ) -> Message:
        """A step's message as it stands: open until `closes`, paused (the session is, on this
        step), or `closed` (and its buttons gone)."""
        step = protocol.step(index)
        context = notes_mod.step_context(s, session, protocol, index)
        paused = closed is None and session.status == "paused" and session.current_step == index
        return render_message(
            step.template or "step.j2",
            session=session,
            protocol=protocol,
            step=step,
            index=index,
            count=len(protocol.steps),
            closes_at=closes,
            closed_at=closed,
            paused_remaining=session.paused_remaining if paused else None,
            extension=button_extension(step_seconds(protocol, index, session.step_seconds)),
            **context,
        )

    def edit(
        self,
        s: Session,
        session: ProtocolSession,
        message: Message,
        *,
        of: str,
        channel: str | None = None,
    ) -> None:
        """Change a message the bot posted to the session's channel, or to `channel` (`of`: its
        ref). The edit goes out after the post, with the post's ts; nothing is edited if the
        post never was, or was deleted in Slack since (the outbox skips such an edit: see
        bot.slack.deleted_in_slack)."""
        channel = channel or session.channel_id
        payload: dict[str, Any] = {
            "channel": channel,
            "text": message.text,
            "blocks": message.blocks or [],
        }
        slack.enqueue(
            s,
            now=self.clock.now(),
            team_id=session.team_id,
            channel=channel,
            method=slack.UPDATE_METHOD,
            payload=payload,
            ref=f"edit:{of}"[:64],
            thread_ref=of,
        )

    def show_step(
        self,
        s: Session,
        session: ProtocolSession,
        protocol: Protocol,
        index: int,
        closed: datetime | None = None,
    ) -> None:
        """Bring a step's message up to date after its close moved, the session paused or
        resumed, or the step `closed`: what people read in the channel says what is so."""
        closes = session.step_closes_at if closed is None else None
        message = self.step_message(s, session, protocol, index, closes, closed)
        self.edit(s, session, message, of=self.step_shown(s, session, index))

    def step_shown(self, s: Session, session: ProtocolSession, index: int) -> str:
        """The ref of the message a step is shown in: its post, or its copy in its own thread
        once the post was deleted with replies under it (Slack can't edit the tombstone); the
        later of the two, if the step was posted again since (the tombstone gone too)."""
        refs = (f"step:{session.id}:{index}", step_thread_ref(session.id, index))
        asked, found = s.info.get(_IN_THREAD, ((), ()))
        if refs[1] in asked and refs[1] not in found:
            return refs[0]  # a round of closes read which of its steps have a copy (close_steps)
        latest = s.scalars(
            select(OutboxMessage.ref)
            .where(OutboxMessage.team_id == session.team_id, OutboxMessage.ref.in_(refs))
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        ).first()
        return latest or refs[0]

    def show_held(
        self, s: Session, session: ProtocolSession, closed: datetime | None = None
    ) -> None:
        """The open step's message and the header while the session is held for its protocol
        (see _hold), or `closed` so: as last sent, with the step's close time (long past) and
        the header's word on the session replaced by what is so, and the step's buttons gone,
        each of which could only answer that the protocol can't run. The step's question and
        the plan stay as the team read them: the protocol they came from can't render them."""
        step = self.step_shown(s, session, session.current_step)
        self._edit_as_sent(s, session, step, render_message("step_held.j2", closed_at=closed))
        held = render_message("header_held.j2", session=session, ended_at=closed)
        self._edit_as_sent(s, session, f"header:{session.id}", held, before="norms")

    def _edit_as_sent(
        self, s: Session, session: ProtocolSession, ref: str, new: Message, before: str = ""
    ) -> None:
        """Edit the message `ref` as last sent, without its buttons: `new`'s blocks take the
        place of those with their block_ids, or go before the block `before` (else last)."""
        sent = self.last_sent(s, session, ref)
        if sent is None:
            return  # never posted (its channel out of reach): nothing to edit
        ids = {block.get("block_id") for block in new.blocks}
        old = [block for block in sent.get("blocks") or [] if block.get("type") != "actions"]
        at = next((k for k, block in enumerate(old) if block.get("block_id") in ids), None)
        kept = [block for block in old if block.get("block_id") not in ids]
        if at is None:
            at = next((k for k, b in enumerate(kept) if before == b.get("block_id")), len(kept))
        blocks = kept[:at] + new.blocks + kept[at:]
        message = Message(text=str(sent.get("text", "")), blocks=blocks)
        self.edit(s, session, message, of=ref)

    @staticmethod
    def last_sent(s: Session, session: ProtocolSession, ref: str) -> dict[str, Any] | None:
        """The message `ref` as the bot last said it (posted, or edited since): its payload."""
        return s.scalars(
            select(OutboxMessage.payload)
            .where(OutboxMessage.team_id == session.team_id)
            .where(OutboxMessage.ref.in_((ref, f"edit:{ref}")))
            .order_by(OutboxMessage.id.desc())
        ).first()

    def unpaused(self, s: Session, session: ProtocolSession) -> None:
        """The session runs again, or ended while paused: the pause note's Resume button goes,
        and the note says when the pause ended (if the facilitator's pause left one)."""
        ref = pause_note(session)
        if slack.enqueued(s, session.team_id, ref):
            message = render_message("step_paused.j2", session=session, over=self.clock.now())
            self.edit(s, session, message, of=ref)

    def show_plan(self, s: Session, session: ProtocolSession, protocol: Protocol) -> None:
        """Bring the header's plan up to date: the steps closed when they did, the open one
        when it now closes (or paused), the rest from there."""
        runs = {
            run.index: run
            for run in s.scalars(select(StepRun).where(StepRun.session_id == session.id))
        }
        rows: list[dict[str, Any]] = []
        for index in range(1, len(protocol.steps) + 1):
            run = runs.get(index)
            row: dict[str, Any] = {"index": index, "step": protocol.step(index), "state": ""}
            if run is not None and run.ended_at is not None:
                row.update(state="closed", closes=run.ended_at)
            elif session.status == "ended":
                row.update(state="skipped")
            elif index == session.current_step and session.status == "paused":
                row.update(state="paused")
            elif session.status == "paused":
                row.update(state="waiting")
            elif index == session.current_step and session.step_closes_at is not None:
                row.update(state="open", closes=session.step_closes_at)
                ahead = self.schedule(session, protocol, session.step_closes_at, index + 1)
                rows.append(row)
                rows.extend(ahead)
                break
            rows.append(row)
        self.edit(s, session, _header(session, protocol, rows), of=f"header:{session.id}")

    def close_step(self, session_id: int, expected_step: int) -> None:
        """The timer path. Does nothing when the session has moved on: duplicates are harmless."""
        self.close_steps([(session_id, expected_step)])

    def close_steps(self, due: Sequence[tuple[int, int]]) -> None:
        """Several timers' closes, each as `close_step` would, in one transaction.

        The clock gathers the closes due together: at 10,000 sessions on one-minute steps ~170
        close a second, and a transaction each spent most of its time beginning, locking and
        committing. A session named twice gets a transaction of its own for the second.
        """
        first: dict[int, int] = {}
        again: list[tuple[int, int]] = []
        for session_id, step in due:
            if session_id in first:
                again.append((session_id, step))
            else:
                first[session_id] = step
        with self.transaction() as (s, after):
            locked = s.scalars(
                select(ProtocolSession)
                .where(ProtocolSession.id.in_(first))
                .order_by(ProtocolSession.id)  # every round locks in one order: no deadlock
                .with_for_update()
                # the steps each ran, read together: installed compares them with its protocol,
                # and the open one is closed
                .options(selectinload(ProtocolSession.steps))
            ).all()
            runs = {
                (run.session_id, run.index): run
                for session in locked
                for run in session.steps
                if run.ended_at is None
            }
            notes_mod.read_ahead(
                s,
                [
                    (session.id, protocol, index)
                    for session in locked
                    if session.status == "running"
                    and (protocol := self.installed(session)) is not None
                    # the step closing (its message is edited) and the one opening
                    for index in (session.current_step, session.current_step + 1)
                ],
            )
            # The steps closing whose message was posted again in their thread (a rare case),
            # read for the round: each close edits its step's message, and looked them up one
            # by one (step_shown).
            closing = {step_thread_ref(session.id, session.current_step) for session in locked}
            found = s.scalars(select(OutboxMessage.ref).where(OutboxMessage.ref.in_(closing)))
            s.info[_IN_THREAD] = (closing, set(found))
            # The sessions are apart, so nothing read here waits on another's writes: flushing
            # once at the commit sends each kind of row for all of them together, and the rows
            # they only add (steps opened, posts) go in by the driver, one executemany a table.
            with s.no_autoflush, raw.gathering(s):
                for session in locked:
                    current = runs.get((session.id, session.current_step))
                    self._close(s, after, session, first[session.id], current)
            del s.info[_IN_THREAD]
        for session_id, step in again:
            self.close_steps([(session_id, step)])

    def _close(
        self,
        s: Session,
        after: _After,
        session: ProtocolSession,
        expected_step: int,
        current: StepRun | None,
    ) -> None:
        if session.status != "running":
            return
        if session.current_step != expected_step or session.step_closes_at is None:
            return
        if session.step_closes_at > self.clock.now():
            # Early (the close was moved later): the timer for the new time will come.
            sid, at = session.id, session.step_closes_at
            after(lambda: self.timers.step_deadline(sid, expected_step, at))
            return
        if self.installed(session) is None:
            self._hold(s, after, session)
            return
        # Close on the planned boundary, not "now": catching up keeps the rest on schedule.
        late = (self.clock.now() - session.step_closes_at).total_seconds()
        after(lambda: ACTIVITY.closed(late))
        self._advance(s, after, session, session.step_closes_at, current)

    def _hold(self, s: Session, after: _After, session: ProtocolSession) -> None:
        """A step is due to close but the session's protocol is no longer installed (its file was
        removed, or fails validation since a restart), or no longer has the step the session
        reached (an operator shortened it), or its id names other steps: pause the session rather
        than guess its next step, and tell the facilitator once, and the team in the step's
        thread. If the operator puts the protocol (or its steps) back, `resume` carries on; `end`
        finishes it with the replies so far."""
        steps = self.steps_left(session)
        replaced = self.replaced(session)
        if steps is None:
            log.warning(
                "session %s held: protocol %r is not installed in this process: %s",
                session.id,
                session.protocol_id,
                SAME_PROTOCOLS,
            )
        elif replaced:
            log.warning(
                "session %s held: protocol %r in this process has other steps than the session "
                "ran (their ids differ): %s",
                session.id,
                session.protocol_id,
                SAME_PROTOCOLS,
            )
        else:
            log.warning(
                "session %s held: protocol %r has %d steps in this process, the session is at "
                "step %d: %s",
                session.id,
                session.protocol_id,
                steps,
                session.current_step,
                SAME_PROTOCOLS,
            )
        self.pause_step(s, session, 0)
        self.show_held(s, session)
        sid = session.id
        after(lambda: self.timers.clear(sid))
        message = render_message(
            "protocol_gone.j2", session=session, held=True, steps=steps, replaced=replaced
        )
        self.post(s, session, message, channel=session.facilitator_id)
        # The team, whose next step does not come, hears why in the open step's thread.
        self.post(
            s,
            session,
            render_message("protocol_held.j2", session=session),
            thread_ref=f"step:{session.id}:{session.current_step}",
        )

    def pause_step(self, s: Session, session: ProtocolSession, remaining: int) -> None:
        """Pause the session on its open step, with `remaining` seconds of it left; the step
        keeps since when, so that its length counts the pause out."""
        session.status = "paused"
        session.paused_remaining = remaining
        session.paused_added = session.paused_added_days = None
        run = self._step_run(s, session.id, session.current_step)
        if run is not None and run.paused_at is None:
            run.paused_at = self.clock.now()
        if run is not None:
            run.extended_at = None  # an Extend pressed after the pause is a press of its own

    def _call_off(self, s: Session, after: _After, session: ProtocolSession, now: datetime) -> None:
        """A scheduled session is due to start but its protocol is no longer installed."""
        log.warning(
            "session %s called off: protocol %r is not installed in this process: %s",
            session.id,
            session.protocol_id,
            SAME_PROTOCOLS,
        )
        session.status = "cancelled"
        session.ended_at = now
        sid = session.id
        after(lambda: self.timers.clear(sid))
        message = render_message("protocol_gone.j2", session=session, held=False, steps=None)
        self.post(s, session, message, channel=session.facilitator_id)
        self.tell_presenter_called_off(s, session, session.protocol_id, "gone")

    def tell_presenter_called_off(
        self, s: Session, session: ProtocolSession, protocol_name: str, reason: str
    ) -> None:
        """The presenter of a session that did not go ahead hears so (the facilitator was told
        why, and what to do), unless they are the facilitator."""
        if session.presenter_id == session.facilitator_id:
            return
        message = render_message(
            "presenter_called_off.j2", session=session, protocol_name=protocol_name, reason=reason
        )
        self.post(s, session, message, channel=session.presenter_id)

    def _advance(
        self,
        s: Session,
        after: _After,
        session: ProtocolSession,
        boundary: datetime,
        current: StepRun | None = None,
        moved_by: str | None = None,
        by_button: bool = False,
    ) -> None:
        """Close the current step (its run, if not given, is looked up) and open the next;
        `moved_by`: the person who closed it (`next`, or a Next button: `by_button`)."""
        protocol = self.library[session.protocol_id]
        if current is None:
            current = self._step_run(s, session.id, session.current_step)
        if current is not None and current.ended_at is None:
            current.ended_at = boundary
        self.show_step(s, session, protocol, session.current_step, boundary)
        if moved_by is not None:
            self._closed_early(s, session, protocol, boundary)
        if session.current_step >= len(protocol.steps):
            if (session.planned_steps or 0) > len(protocol.steps):
                self._tell_cut_short(s, session, len(protocol.steps))
            self._finish(s, after, session, boundary)
        else:
            self._open_step(
                s, after, session, protocol, session.current_step + 1, boundary, moved_by, by_button
            )
            if moved_by is not None:
                self.show_plan(s, session, protocol)  # earlier than planned: the rest moved

    def _tell_cut_short(self, s: Session, session: ProtocolSession, steps: int) -> None:
        """The session ended at the last step its protocol has now, before the last its header
        planned (an operator cut the file short): the facilitator hears why the rest never came,
        and so does the channel, in the header's thread."""
        log.warning(
            "session %s ended at step %d: protocol %r has %d steps in this process, it began "
            "with %d",
            session.id,
            session.current_step,
            session.protocol_id,
            steps,
            session.planned_steps,
        )
        said = functools.partial(render_message, "ended_cut_short.j2", session=session, steps=steps)
        self.post(s, session, said(private=True), channel=session.facilitator_id)
        self.post(s, session, said(private=False), thread_ref=f"header:{session.id}")

    def _closed_early(
        self, s: Session, session: ProtocolSession, protocol: Protocol, when: datetime
    ) -> None:
        """The open step closed before its time (`next`, `end`): a closing warning given in its
        thread says when it did close, not the time it had."""
        from bot.engine import warnings  # it builds on this module

        warnings.rewarn(self, s, session, protocol, closed=when)

    def _step_run(self, s: Session, session_id: int, index: int) -> StepRun | None:
        return s.scalars(
            select(StepRun).where(StepRun.session_id == session_id, StepRun.index == index)
        ).first()

    def next_step(self, actor: Actor, pressed: Pressed | None = None) -> Reply:
        with self.transaction() as (s, after):
            session = self._require_active(s, actor, pressed)
            self.require_facilitator(session, actor, "move to the next step of")
            protocol = self.installed(session)
            if protocol is None:
                raise self.cannot_run(session)
            if session.status != "running":
                raise Refusal("refusals/paused.j2")
            stale = pressed.stale(session) if pressed is not None else None
            if stale is not None:
                return stale
            now = self.clock.now()
            if pressed is None:
                # A typed `next` names no step: it may have been meant for the one just closed.
                just_moved = self._just_moved(s, session, protocol, actor, now)
                if just_moved is not None:
                    return just_moved
            by_button = pressed is not None
            self._advance(s, after, session, now, moved_by=actor.user_id, by_button=by_button)
            return Reply(
                "replies/moved_on.j2",
                {"session": session, "protocol": protocol, "ended": session.status == "ended"},
            )

    def _just_moved(
        self,
        s: Session,
        session: ProtocolSession,
        protocol: Protocol,
        actor: Actor,
        now: datetime,
    ) -> Reply | None:
        """Why a typed `next` leaves the current step open: it opened a moment ago, on its own
        (the step before closed on its planned time) or by someone else's `next` or Next button,
        so the `next` was meant for the step before. So too straight after the same person's
        own Next button: the press and the typed `next` both meant the step they were looking
        at. Their `next` straight after their own typed `next` is deliberate (they read its
        answer), and moves on."""
        if session.current_step < 2:
            return None
        runs = s.scalars(
            select(StepRun).where(
                StepRun.session_id == session.id,
                StepRun.index.in_((session.current_step - 1, session.current_step)),
            )
        ).all()
        before = next((r for r in runs if r.index == session.current_step - 1), None)
        current = next((r for r in runs if r.index == session.current_step), None)
        if before is None or current is None:
            return None
        if not timedelta(0) <= now - current.started_at < JUST_OPENED:
            return None
        context = {"session": session, "protocol": protocol}
        if current.opened_by is not None:
            by = current.opened_by
            if by == actor.user_id and not current.opened_by_button:
                return None
            return Reply("replies/moved_by_someone.j2", {**context, "by": by, "you": actor.user_id})
        # A close by `next` or a button ends the step when pressed, not on its planned time.
        if before.ended_at == before.closes_at:
            return Reply("replies/moved_on_its_own.j2", context)
        return None

    def end(self, actor: Actor) -> Reply:
        with self.transaction() as (s, after):
            session = self._require_active(s, actor)
            self.require_facilitator(session, actor, "end")
            now = self.clock.now()
            current = self._step_run(s, session.id, session.current_step)
            if current is not None and current.ended_at is None:
                current.ended_at = now
            if session.status == "paused":
                self.unpaused(s, session)
            protocol = self.installed(session)
            held = self.why_held(session)
            if protocol is not None and session.current_step >= 1:
                self.show_step(s, session, protocol, session.current_step, now)
                self._closed_early(s, session, protocol, now)
            elif session.current_step >= 1:
                self.show_held(s, session, now)
            self._finish(s, after, session, now)
            return Reply("replies/ended.j2", {"session": session, **held})

    def _require_active(
        self, s: Session, actor: Actor, pressed: Pressed | None = None
    ) -> ProtocolSession:
        session = self.active_session(s, actor)
        if session is None:
            # A button on a step message: its session ran here, and is over now.
            if pressed is not None and pressed.session_id is not None:
                notes_out = posted_notes.went_out(s, pressed.session_id)
                raise Refusal("refusals/session_over.j2", notes_out=notes_out)
            # Nothing runs, but one is booked: `end` meant to call it off is told how.
            booked = channel_sessions(s, actor, ("scheduled",)).all()
            first = min(booked, key=lambda x: x.starts_at) if booked else None
            raise Refusal(
                "refusals/no_session.j2",
                scheduled=self.scheduled_view(first) if first is not None else None,
            )
        return session

    def _finish(self, s: Session, after: _After, session: ProtocolSession, when: datetime) -> None:
        protocol = self.shown_protocol(s, session)
        session.status = "ended"
        session.ended_at = when
        session.step_closes_at = None
        sid = session.id
        after(lambda: _ended(sid))
        if self.installed(session) is not None:
            self.show_plan(s, session, protocol)
        after(lambda: self.timers.clear(sid))
        waiting = s.scalars(
            select(ProtocolSession.id)
            .where(
                ProtocolSession.team_id == session.team_id,
                ProtocolSession.enterprise_id == session.enterprise_id,
                ProtocolSession.channel_id == session.channel_id,
                ProtocolSession.status == "scheduled",
                ProtocolSession.starts_at <= self.clock.now(),
            )
            .order_by(ProtocolSession.starts_at, ProtocolSession.id)
            .limit(MAX_SCHEDULED_PER_CHANNEL)
        ).all()
        for due in waiting:
            # The channel is free once this commits: the first due starts now, and the
            # facilitators of the others hear that theirs now waits for that one.
            after(functools.partial(self.begin, due))
        data = notes_mod.build_notes(s, session, protocol)
        posted_notes.post(self, s, session, data, when)

    def notes_names(self, session: ProtocolSession, notes: notes_mod.Notes) -> dict[str, str]:
        """People's names for the notes file: as their replies gave them; a presenter or
        facilitator who wrote nothing, by the name Slack gave when the session was started
        (kept with the session by tell_absent; this process's memory of it, if fresher)."""
        named = notes.names
        unnamed = [u for u in (session.presenter_id, session.facilitator_id) if u not in named]
        remembered = self.directory.remembered(session.team_id, unnamed)
        return {**(session.names or {}), **remembered, **named}

    # -- reading -------------------------------------------------------------------------------
    def status(self, actor: Actor) -> Reply:
        with self.db.reading() as s:
            return status_reply(self.status_context(s, actor))

    def status_context(self, s: Session, actor: Actor) -> dict[str, Any]:
        """What `/protocol status` shows, read without taking any lock."""
        sessions = [SessionView(*row) for row in _STATUS_SESSIONS.all(s, channel_values(actor))]
        session = next((row for row in sessions if row.status in ACTIVE), None)
        scheduled = sorted(
            (row for row in sessions if row.status == "scheduled"), key=lambda row: row.starts_at
        )[:MAX_SCHEDULED_PER_CHANNEL]
        now = self.clock.now()
        # Due, but the channel is busy: they start when the running session ends.
        waiting = [row.id for row in scheduled if session is not None and row.starts_at <= now]
        context: dict[str, Any] = {
            "session": session,
            "scheduled": scheduled,
            "waiting": waiting,
            # Where Slack cannot show a date token, each start as the answer to it named it, and
            # the open step's close in the same zone.
            "labels": {row.id: local_label(row.starts_at, row.tz) for row in scheduled},
            "closes_label": (
                local_label(session.step_closes_at, session.tz)
                if session is not None and session.step_closes_at is not None
                else ""
            ),
            "earlier": _earlier([]),
        }
        if session is not None:
            ran = notes_mod.ran_steps(s, session.id)
            protocol = self.shown_protocol(s, session, ran)
            context.update(
                protocol=protocol,
                **self.why_held(session, ran),
                step=protocol.step(session.current_step),
                count=len(protocol.steps),
                now=now,
                participation=notes_mod.participation(s, session.id, protocol),
                show_names=actor.user_id == session.facilitator_id,
            )
        context["library"] = self.library
        return context

    def notes(self, actor: Actor, number: int | None = None) -> Reply:
        """The notes of the channel's current or last session; of session #`number` if given
        (the number people see, as `cancel` takes it), if it is this channel's and has run."""
        with self.transaction() as (s, _after):
            if number is None:
                session = self.latest_session(s, actor)
                if session is None:
                    raise Refusal("refusals/no_notes.j2")
            else:
                values = {**channel_values(actor), "number": number}
                session = s.scalars(_NUMBERED_SESSION, values).first()
                if session is None or session.status not in (*ACTIVE, "ended"):
                    status = session.status if session is not None else None
                    raise Refusal("refusals/no_notes.j2", number=number, status=status)
            protocol = self.shown_protocol(s, session)
            notes = notes_mod.build_notes(s, session, protocol)
            # The answer is the asker's alone: the presenter's holds their own notes from the
            # listening steps, as their copy at the end and from App Home do.
            own = actor.user_id == session.presenter_id
            context = {"notes": notes, "for_presenter": own, **self.why_held(session)}
            if fits_one_message("notes_reply.j2", **context):
                return Reply("notes_reply.j2", context)
            # Too long for one answer: the asker gets them whole by DM, in parts, as from App
            # Home (the ref lets `forget` find the copy).
            messages = notes_mod.notes_messages(notes, for_presenter=own)
            for message in messages:
                self.post(s, session, message, channel=actor.user_id, ref=f"notes:{session.id}")
            return Reply("replies/notes_sent.j2", {"notes": notes, "parts": len(messages)})

    # -- housekeeping --------------------------------------------------------------------------
    def due_work(self) -> DueWork:
        """Every deadline the database knows: closes, closing warnings and starts.

        One read of plain rows (no ORM objects; on SQLite by the driver alone): the clock makes
        it every couple of seconds over every running session. A read, not a write: on SQLite it
        would otherwise hold the write lock, and every step closing behind it, for the whole read.
        """
        with self.db.reading() as s:
            running = _DUE_CLOSES.all(s, {})
            scheduled = _DUE_STARTS.all(s, {})
        work = DueWork(starts=[(sid, at) for sid, at in scheduled])
        for sid, step, closes_at, warn_at in running:
            if closes_at is not None:
                work.closes.append((sid, step, closes_at))
            # Steps too short for a warning have none; a step warned has none left.
            if warn_at is not None:
                work.warnings.append((sid, step, warn_at))
        return work

    def on_posted(self, s: Session, posts: Iterable[tuple[str | None, str | None]]) -> None:
        """The outbox sent messages with refs: remember their ts so replies can find them."""
        headers, steps = [], []
        for ref, ts in posts:
            if not ref or not ts:
                continue
            kind, _, rest = ref.partition(":")
            if kind == "header":
                headers.append({"b_sid": int(rest), "b_ts": ts})
            elif kind == "step":
                sid, _, index = rest.partition(":")
                steps.append({"b_sid": int(sid), "b_index": int(index), "b_ts": ts})
        # Plain UPDATEs, each kind in one statement: the sender records every post of every
        # step, and an ORM load, or a flush of the sender's own rows, cost more than the post.
        if headers:
            s.connection().execute(_HEADER_POSTED, headers)
        if steps:
            s.connection().execute(_STEP_POSTED, steps)


# Session.info key: the refs of step messages posted again in their thread, among a round of
# closes' (Engine.close_steps, step_shown).
_IN_THREAD = "steps_in_thread"


def step_thread_ref(session_id: int, index: int) -> str:
    """The ref of a step's message posted again in its own thread, its post deleted with replies
    under it (see Replies._step_post_tombstoned)."""
    return f"stepthread:{session_id}:{index}"


_HEADER_POSTED = (
    update(ProtocolSession)
    .where(ProtocolSession.id == bindparam("b_sid"))
    .values(header_ts=bindparam("b_ts"))
)
_STEP_POSTED = (
    update(StepRun)
    .where(StepRun.session_id == bindparam("b_sid"), StepRun.index == bindparam("b_index"))
    .values(message_ts=bindparam("b_ts"))
)


# Built once: a statement made per call costs more CPU to build and key for the cache than the
# read itself (`/protocol status` makes several).
_IN_CHANNEL = select(ProtocolSession).where(
    ProtocolSession.team_id == bindparam("team_id"),
    ProtocolSession.enterprise_id == bindparam("enterprise_id"),
    ProtocolSession.channel_id == bindparam("channel_id"),
)
_CHANNEL_SESSIONS = _IN_CHANNEL.where(
    ProtocolSession.status.in_(bindparam("statuses", expanding=True))
).order_by(ProtocolSession.id.desc())
_CHANNEL_SESSIONS_LOCKED = _CHANNEL_SESSIONS.with_for_update()
_NUMBERED_SESSION = _IN_CHANNEL.where(ProtocolSession.id == bindparam("number"))
# Not the newest id: a session booked ahead may run after one started since.
_LATEST_SESSION = (
    _IN_CHANNEL.where(ProtocolSession.status.in_((*ACTIVE, "ended")))
    .order_by(
        case((ProtocolSession.status.in_(ACTIVE), 0), else_=1),
        ProtocolSession.started_at.desc().nulls_last(),
        ProtocolSession.id.desc(),
    )
    .limit(1)
)
_LAST_ENDED = (
    _IN_CHANNEL.where(ProtocolSession.status == "ended")
    .order_by(ProtocolSession.started_at.desc().nulls_last(), ProtocolSession.id.desc())
    .limit(1)
)


class ScheduledView(NamedTuple):
    """A session scheduled ahead as listed to people, in plain values (a refusal that lists it
    rolls the transaction back, which expires the rows)."""

    id: int
    name: str  # the protocol's
    starts_at: datetime
    presenter_id: str
    label: str = ""  # the start where Slack cannot show a date token, as the start's answer has it


class SessionView(NamedTuple):
    """What `/protocol status` shows of a session, read as a plain row."""

    id: int
    protocol_id: str
    status: str
    current_step: int
    step_closes_at: datetime | None
    paused_remaining: int | None
    starts_at: datetime
    presenter_id: str
    facilitator_id: str
    prep: dict[str, Any] | None
    planned_steps: int | None = None
    weekdays: bool = False
    tz: str = "UTC"  # the zone of the caller who scheduled it


# A step run's row as the ORM would insert it (its defaults as models.StepRun has them), for a
# round of closes to put in by the driver (raw.gathering).
_RUN_UNSET = {
    "ended_at": None,
    "message_ts": None,
    "extended_at": None,
    "paused_at": None,
    "paused_seconds": 0,
}
_OPEN_RUN = raw.Statement(
    insert(StepRun),
    [
        "session_id",
        "index",
        "step_id",
        "started_at",
        "closes_at",
        "opened_by",
        "opened_by_button",
        "warn_at",
        *_RUN_UNSET,
    ],
)
# What the clock plans from (Engine.due_work): each running session's close and its open step's
# closing warning, and each scheduled session's start.
_DUE_CLOSES = raw.Statement(
    select(
        ProtocolSession.id,
        ProtocolSession.current_step,
        ProtocolSession.step_closes_at,
        StepRun.warn_at,
    )
    .outerjoin(
        StepRun,
        and_(
            StepRun.session_id == ProtocolSession.id,
            StepRun.index == ProtocolSession.current_step,
            StepRun.ended_at.is_(None),
        ),
    )
    .where(ProtocolSession.status == "running")
)
_DUE_STARTS = raw.Statement(
    select(ProtocolSession.id, ProtocolSession.starts_at).where(
        ProtocolSession.status == "scheduled"
    )
)


# The channel's running, paused and scheduled sessions, newest first: on SQLite by the driver
# alone (see bot.store.raw), which wants the states as plain comparisons rather than an IN list.
_STATUS_SESSIONS = raw.Statement(
    select(*(getattr(ProtocolSession, name) for name in SessionView._fields))
    .where(
        ProtocolSession.team_id == bindparam("team_id"),
        ProtocolSession.enterprise_id == bindparam("enterprise_id"),
        ProtocolSession.channel_id == bindparam("channel_id"),
        or_(*(ProtocolSession.status == state for state in (*ACTIVE, "scheduled"))),
    )
    .order_by(ProtocolSession.id.desc())
)


def pause_note(session: ProtocolSession) -> str:
    """The ref of the note in the open step's thread that the facilitator paused the session
    (the latest, if it paused more than once on the step)."""
    return f"paused:{session.id}:{session.current_step}"


def _header(session: ProtocolSession, protocol: Protocol, plan: list[dict[str, Any]]) -> Message:
    """The session's header: who presents and facilitates, the plan of its steps, the norms."""
    # A plan too long for one message shows PLAN_SHOWN steps, the open one among them.
    first = min(max(1, session.current_step - PLAN_BEFORE), max(1, len(plan) - PLAN_SHOWN + 1))
    return render_message(
        "header.j2",
        session=session,
        protocol=protocol,
        schedule=plan,
        first=first,
        shown=PLAN_SHOWN,
        live=session.step_seconds is None,
    )


def status_reply(context: dict[str, Any]) -> Reply:
    """`/protocol status` within one message: in a long session with a busy channel a line for
    each step begun, naming who replied, came to more than Slack takes in one, and the answer
    was refused. The first steps' lines make way for the latest ones, and one line says how
    many steps, replies and people were left out."""
    rows = context["participation"]["per_step"] if context.get("participation") else []

    def fits(left_out: int) -> bool:
        context["earlier"] = _earlier(rows[:left_out])
        return fits_one_message("replies/status.j2", **context)

    if len(rows) > 1 and not fits(0):
        # The fewest first lines to leave out; the current step's line is always shown.
        low, high = 1, len(rows) - 1
        while low < high:
            middle = (low + high) // 2
            if fits(middle):
                high = middle
            else:
                low = middle + 1
        fits(low)
    return Reply("replies/status.j2", context)


def _earlier(rows: list[dict[str, Any]]) -> dict[str, int]:
    """What /protocol status says of the steps whose lines it leaves out."""
    people = {user for row in rows for user in row["people"]}
    return {
        "steps": len(rows),
        "last": rows[-1]["index"] if rows else 0,
        "replies": sum(row["count"] for row in rows),
        "people": len(people),
    }


def channel_values(actor: Actor) -> dict[str, str]:
    """The actor's channel, in its own workspace, as a statement's values."""
    return {
        "team_id": actor.team_id,
        "enterprise_id": actor.enterprise_id,
        "channel_id": actor.channel_id,
    }


def channel_sessions(
    s: Session, actor: Actor, statuses: Iterable[str], *, lock: bool = False
) -> ScalarResult[ProtocolSession]:
    """The actor's channel's sessions in these states, in its own workspace, newest first."""
    return s.scalars(
        _CHANNEL_SESSIONS_LOCKED if lock else _CHANNEL_SESSIONS,
        {**channel_values(actor), "statuses": list(statuses)},
    )


def _began(session_id: int, protocol_id: str, steps: int) -> None:
    ACTIVITY.count(STARTED)
    log.info("session %d started: %s, %d steps", session_id, protocol_id, steps)


def _ended(session_id: int) -> None:
    ACTIVITY.count(ENDED)
    log.info("session %d ended", session_id)


def _closes(session: ProtocolSession, opened: datetime, seconds: int) -> datetime:
    """When a step of the session's, of `seconds`, opened at `opened` closes: the days typed as
    days counted on the calendar, across its weekends if it keeps to weekdays."""
    days = calendar_days(session.step_seconds, session.step_days)
    return close_time(opened, seconds, weekdays=session.weekdays, tz=session.tz, days=days)
