"""App Home: a person's upcoming and active sessions, and the notes of past ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot import slack
from bot.blocks import render_message
from bot.engine import notes as notes_mod
from bot.engine.core import Actor, Engine
from bot.engine.replies import DELETED
from bot.store.models import ACTIVE, Contribution, ProtocolSession

LIMIT = 10


def _mine(team_id: str, enterprise_id: str, user: str) -> Any:
    contributed = select(Contribution.session_id).where(
        Contribution.team_id == team_id,
        Contribution.user_id == user,
        Contribution.audience != DELETED,
    )
    return (
        ProtocolSession.team_id == team_id,
        ProtocolSession.enterprise_id == enterprise_id,
        or_(
            ProtocolSession.presenter_id == user,
            ProtocolSession.facilitator_id == user,
            ProtocolSession.created_by == user,  # booked for someone else to facilitate
            ProtocolSession.id.in_(contributed),
        ),
    )


def publish_home(engine: Engine, team_id: str, enterprise_id: str, user: str) -> None:
    with engine.transaction() as (s, _after):
        where = _mine(team_id, enterprise_id, user)
        upcoming, more_upcoming = _first(
            s, where, ProtocolSession.status == "scheduled", ProtocolSession.starts_at
        )
        active, more_active = _first(
            s, where, ProtocolSession.status.in_(ACTIVE), ProtocolSession.id.desc()
        )
        past, more_past = _first(
            s, where, ProtocolSession.status == "ended", ProtocolSession.ended_at.desc()
        )
        # A running session is shown with the steps it ran: its protocol's id may name other
        # steps now, or its file be gone (the session is then held at its next close, and one
        # held is on hold, not paused: `resume` can't carry it on).
        installed = {item.id: engine.installed(item) for item in active}
        held = {sid for sid, protocol in installed.items() if protocol is None}
        shown = {item.id: installed[item.id] or engine.shown_protocol(s, item) for item in active}
        message = render_message(
            "home.j2",
            user=user,
            upcoming=upcoming,
            active=active,
            shown=shown,
            held=held,
            past=past,
            more={"upcoming": more_upcoming, "active": more_active, "past": more_past},
            library=engine.library,
        )
        slack.enqueue(
            s,
            now=engine.clock.now(),
            team_id=team_id,
            channel=user,
            method="views.publish",
            payload={"user_id": user, "view": {"type": "home", "blocks": message.blocks}},
        )


def _first(
    s: Session, where: tuple[Any, ...], status: Any, order: Any
) -> tuple[Sequence[ProtocolSession], int]:
    """The first LIMIT of a person's sessions in one state, and how many more there are."""
    shown = s.scalars(select(ProtocolSession).where(*where, status).order_by(order).limit(LIMIT))
    rows = shown.all()
    if len(rows) < LIMIT:
        return rows, 0
    total = s.scalar(select(func.count(ProtocolSession.id)).where(*where, status)) or 0
    return rows, total - len(rows)


def send_notes(engine: Engine, actor: Actor, session_id: int) -> None:
    """A past session's notes, sent to the person who asked from their Home tab."""
    with engine.transaction() as (s, _after):
        session = s.scalars(
            select(ProtocolSession).where(
                ProtocolSession.id == session_id,
                ProtocolSession.team_id == actor.team_id,
                ProtocolSession.enterprise_id == actor.enterprise_id,
            )
        ).first()
        if session is None:
            return
        notes_to(engine, s, session, actor.user_id)


def notes_to(engine: Engine, s: Session, session: ProtocolSession, user: str) -> None:
    """A session's notes, as direct messages to `user`."""
    protocol = engine.shown_protocol(s, session)
    notes = notes_mod.build_notes(s, session, protocol)
    # The ref names the session's notes, so that `forget` finds this copy too.
    # The presenter's copy holds their own notes from the listening steps, as at the end.
    own = user == session.presenter_id
    for message in notes_mod.notes_messages(notes, for_presenter=own):
        engine.post(s, session, message, channel=user, ref=f"notes:{session.id}")
