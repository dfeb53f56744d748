"""Presenter prep: the reminder DMs before a scheduled session, the follow-through, failed DMs.

The DM at scheduling time goes out in the transaction that schedules the session. The later
ones (`remind`, `followup`) are timer jobs whose times follow from the session's own columns,
so the reconcile can always rebuild them; each records itself in `session.prep["sent"]`, which
makes a duplicate or late job harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from bot.blocks import render_message
from bot.engine.core import Engine
from bot.engine.pacing import local_label
from bot.store.models import OutboxMessage, ProtocolSession

log = logging.getLogger(__name__)

REMIND, FOLLOWUP = "remind", "followup"
FOLLOWUP_LEAD = timedelta(hours=3)
# A lead-time reminder (or a follow-up) this soon after the first DM is folded into it: one
# message, not two, and no word to the facilitator of prep that had minutes to come in.
FOLD_WINDOW = timedelta(hours=1)
# A session cancelled this lately, its presenter's prep in, and booked again for them in its
# channel: the new one keeps that prep (a session is moved by cancelling and starting again).
KEPT_FOR = timedelta(days=2)
# What of a prep the session booked again keeps: what the presenter said, not what was sent.
KEPT_PREP = ("reason", "link", "deidentified", "submitted_at", "submitted_by", "fingerprint")


@dataclass(frozen=True)
class Plan:
    """When the presenter hears from the bot again; None: the first DM covers it."""

    remind_at: datetime | None
    followup_at: datetime | None


def plan(session: ProtocolSession) -> Plan:
    start, lead = session.starts_at, session.starts_at - session.created_at
    remind = timedelta(seconds=session.remind_seconds)
    remind_at: datetime | None = start - remind
    if start - remind - session.created_at < FOLD_WINDOW:
        remind_at = None
    # A few hours before, or half the time there is (or half the lead time asked for) when short.
    followup_at = start - min(FOLLOWUP_LEAD, lead / 2, remind / 2)
    if followup_at - session.created_at < FOLD_WINDOW:
        return Plan(remind_at, None)
    return Plan(remind_at, followup_at)


def is_ready(session: ProtocolSession) -> bool:
    """Sent, with a reason: a switch to the other kind of prep drops the reason picked."""
    state = session.prep or {}
    return bool(state.get("submitted_at") and state.get("reason")) and bool(session.statement)


def install(engine: Engine) -> None:
    """Hook the first DM into the transaction that schedules a session ahead (once)."""
    if not any(getattr(hook, "func", None) is _on_scheduled for hook in engine.on_scheduled):
        engine.on_scheduled.append(partial(_on_scheduled, engine))


def dm(
    engine: Engine,
    s: Session,
    session: ProtocolSession,
    user: str,
    template: str,
    kind: str,
    **context: Any,
) -> None:
    """A direct message about this session's prep; its ref says which, for failure handling."""
    protocol = engine.library[session.protocol_id]
    message = render_message(
        template,
        session=session,
        protocol=protocol,
        starts_label=local_label(session.starts_at, session.tz),
        **context,
    )
    engine.post(s, session, message, channel=user, ref=f"prep:{session.id}:{kind}")


def _same_presenter_here(session: ProtocolSession) -> tuple[ColumnElement[bool], ...]:
    """Sessions in `session`'s channel (of its workspace) with its presenter."""
    return (
        ProtocolSession.team_id == session.team_id,
        ProtocolSession.enterprise_id == session.enterprise_id,
        ProtocolSession.channel_id == session.channel_id,
        ProtocolSession.presenter_id == session.presenter_id,
    )


def _cancelled_with_prep(
    engine: Engine, s: Session, session: ProtocolSession
) -> ProtocolSession | None:
    """The session this one most likely takes the place of: called off lately in this channel,
    before it started, with this presenter and the same kind of prep, their prep in, and
    nothing booked for them here since. A session is moved by cancelling it and starting it
    again."""
    earlier = s.scalars(
        select(ProtocolSession)
        .where(
            *_same_presenter_here(session),
            ProtocolSession.status == "cancelled",
            ProtocolSession.started_at.is_(None),
            ProtocolSession.ended_at >= engine.clock.now() - KEPT_FOR,
        )
        .order_by(ProtocolSession.ended_at.desc(), ProtocolSession.id.desc())
    ).first()
    if earlier is None or earlier.ended_at is None or not is_ready(earlier):
        return None
    protocol = engine.library.get(earlier.protocol_id)
    if (
        protocol is None
        or protocol.presenter_prep != engine.library[session.protocol_id].presenter_prep
    ):
        return None
    since = s.scalars(
        select(ProtocolSession.id).where(
            *_same_presenter_here(session),
            ProtocolSession.created_at >= earlier.ended_at,
            ProtocolSession.id != session.id,
        )
    ).first()
    return earlier if since is None else None


def booked_again(
    engine: Engine, s: Session, cancelled: ProtocolSession, user_id: str
) -> ProtocolSession | None:
    """The session booked in place of `cancelled` (see _cancelled_with_prep), still to start:
    in its channel, for its presenter, with the same kind of prep, soon after it was called off;
    if `user_id` presents or facilitates it. The prep dialog opened for the cancelled one saves
    there."""
    before = engine.library.get(cancelled.protocol_id)
    wanted = before.presenter_prep if before is not None else None
    if cancelled.status != "cancelled" or cancelled.ended_at is None or wanted is None:
        return None
    candidates = s.scalars(
        select(ProtocolSession)
        .where(
            *_same_presenter_here(cancelled),
            ProtocolSession.status == "scheduled",
            ProtocolSession.created_at >= cancelled.ended_at,
            ProtocolSession.created_at <= cancelled.ended_at + KEPT_FOR,
        )
        .order_by(ProtocolSession.created_at, ProtocolSession.id)
    ).all()
    for session in candidates:
        protocol = engine.library.get(session.protocol_id)
        if protocol is not None and protocol.presenter_prep == wanted:
            return session if user_id in (session.presenter_id, session.facilitator_id) else None
    return None


def _on_scheduled(engine: Engine, s: Session, after: Any, session: ProtocolSession) -> None:
    if engine.library[session.protocol_id].presenter_prep is None:
        return
    now = engine.clock.now()
    when = plan(session)
    sent = {"scheduled": now.isoformat()}
    if when.remind_at is None:
        sent[REMIND] = now.isoformat()
    kept = _cancelled_with_prep(engine, s, session)
    session.prep = {**(session.prep or {}), "sent": sent}
    if kept is not None:
        # What the presenter sent is theirs to keep: not asked for all over again.
        session.statement = kept.statement
        prep_kept = {k: v for k, v in (kept.prep or {}).items() if k in KEPT_PREP}
        session.prep = {**session.prep, **prep_kept, "kept_from": kept.id}
        dm(engine, s, session, session.presenter_id, "prep/kept.j2", "scheduled", kept=kept)
    else:
        reminder = "prep/reminder.j2"
        dm(engine, s, session, session.presenter_id, reminder, "scheduled", moment="scheduled")
    sid = session.id
    for kind, at in _pending(session, when):
        after(partial(engine.timers.prep_due, sid, kind, at))


def _pending(session: ProtocolSession, when: Plan) -> list[tuple[str, datetime]]:
    sent = (session.prep or {}).get("sent") or {}
    planned = [(REMIND, when.remind_at), (FOLLOWUP, when.followup_at)]
    return [(kind, at) for kind, at in planned if at is not None and kind not in sent]


def due(engine: Engine, session_id: int, kind: str) -> None:
    """The timer path for `remind` and `followup`: at most once each, never after the start."""
    away = _presenter_away(engine, session_id, kind)
    with engine.transaction() as (s, after):
        session = engine._lock(s, session_id)
        if session is None or session.status != "scheduled" or kind not in (REMIND, FOLLOWUP):
            return
        # Asked now, not when queued: the session may have been switched to a protocol without prep.
        protocol = engine.installed(session)
        if protocol is None or protocol.presenter_prep is None:
            return
        state = dict(session.prep or {})
        sent = dict(state.get("sent") or {})
        when = plan(session)
        at = when.remind_at if kind == REMIND else when.followup_at
        if kind in sent or at is None:
            return
        now = engine.clock.now()
        if at > now:  # early (a clock or job store skew): the right time will come
            after(partial(engine.timers.prep_due, session_id, kind, at))
            return
        sent[kind] = now.isoformat()
        session.prep = {**state, "sent": sent}
        if now >= session.starts_at:
            return
        if kind == REMIND:
            _remind(engine, s, session, when, now, away)
        elif not is_ready(session):
            _follow_up(engine, s, session, away)


def _presenter_away(engine: Engine, session_id: int, kind: str) -> bool:
    """Whether the presenter of a session a reminder is due for is out of its channel (left it
    since it was booked): the reminder tells them to join it again, or they would miss every
    step. Asked of Slack afresh, before the transaction, which would hold the session's row
    meanwhile; False when nothing is due or Slack can't say."""
    with engine.db.reading() as s:
        session = s.get(ProtocolSession, session_id)
        if session is None or session.status != "scheduled":
            return False
        if kind in ((session.prep or {}).get("sent") or {}):
            return False
        team, channel, presenter = session.team_id, session.channel_id, session.presenter_id
    return bool(engine.directory.absent(team, channel, [presenter], fresh=True))


def _remind(
    engine: Engine, s: Session, session: ProtocolSession, when: Plan, now: datetime, away: bool
) -> None:
    presenter = session.presenter_id
    if is_ready(session):
        dm(engine, s, session, presenter, "prep/reminder_ready.j2", REMIND, away=away)
    elif when.followup_at is None or now < when.followup_at:
        reminder = "prep/reminder.j2"
        dm(engine, s, session, presenter, reminder, REMIND, moment="remind", away=away)
    # else: the follow-up is due too (the service was down); it alone goes out, not both.


def _follow_up(engine: Engine, s: Session, session: ProtocolSession, away: bool) -> None:
    dm(engine, s, session, session.presenter_id, "prep/followup.j2", FOLLOWUP, away=away)
    if session.facilitator_id != session.presenter_id:
        dm(
            engine,
            s,
            session,
            session.facilitator_id,
            "prep/followup_facilitator.j2",
            "followup_facilitator",
        )


def due_work(engine: Engine) -> list[tuple[int, str, datetime]]:
    """Every prep job the database says is still to come: (session, kind, when). A read: the
    clock makes it every couple of seconds, and on SQLite a write would hold up steps closing."""
    with engine.db.reading() as s:
        sessions = s.scalars(
            select(ProtocolSession).where(ProtocolSession.status == "scheduled")
        ).all()
        work = []
        for session in sessions:
            protocol = engine.installed(session)
            if protocol is None or protocol.presenter_prep is None:
                continue
            work += [(session.id, kind, at) for kind, at in _pending(session, plan(session))]
    return work


def dm_failed(engine: Engine, s: Session, row: OutboxMessage) -> None:
    """A DM to the presenter could not be delivered: tell the facilitator, once, privately."""
    if not (row.ref or "").startswith("prep:"):
        return
    session_id = (row.ref or "").split(":")[1]
    session = s.get(ProtocolSession, int(session_id)) if session_id.isdigit() else None
    if session is None or row.channel_id != session.presenter_id:
        return
    if session.facilitator_id == session.presenter_id:
        return
    state = dict(session.prep or {})
    if state.get("unreachable"):
        return
    session.prep = {**state, "unreachable": row.error or "unknown"}
    log.warning("prep DM to the presenter of session %s failed: %s", session.id, row.error)
    dm(
        engine,
        s,
        session,
        session.facilitator_id,
        "prep/unreachable.j2",
        "unreachable",
        error=row.error or "unknown",
    )
