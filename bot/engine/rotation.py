"""The team's presenter rotation per channel: who presents next, and who presented what.

The order is stored; the turns are read from the sessions. A turn is a session started in the
channel since the rotation was set, with a member presenting; the next presenter is the member
after the latest turn's, or the first one listed when nobody has had a turn yet. A cancelled
session, or one ended within a minute of its start with no reply (a false start), gives its turn
back: its presenter comes next, before the order goes on, however many turns were taken after
it. A new order starts with whoever it lists first.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from sqlalchemy import ColumnElement, bindparam, exists, select
from sqlalchemy.orm import Session

from bot.engine.core import Actor, Engine, channel_values, status_reply
from bot.engine.errors import Refusal, Reply
from bot.engine.notes import DELETED
from bot.profiles import Person
from bot.store import raw
from bot.store.models import Contribution, PresenterRotation, ProtocolSession

MAX_MEMBERS = 40
RECENT = 5


class Profiles(Protocol):
    def person(self, user_id: str) -> Person | None: ...


_IN_CHANNEL = (
    PresenterRotation.team_id == bindparam("team_id"),
    PresenterRotation.enterprise_id == bindparam("enterprise_id"),
    PresenterRotation.channel_id == bindparam("channel_id"),
)
# Built once (see bot/engine/core.py: _CHANNEL_SESSIONS).
_ROTATION = select(PresenterRotation).where(*_IN_CHANNEL)


class RotationView(NamedTuple):
    """What is shown of a channel's rotation, read as a plain row."""

    members: list[str]
    updated_at: datetime
    updated_by: str

    @classmethod
    def of(cls, row: PresenterRotation) -> RotationView:
        return cls(list(row.members), row.updated_at, row.updated_by)


# The same, as plain values: `/protocol status` reads it (on SQLite by the driver alone).
_ROTATION_VIEW = raw.Statement(
    select(*(getattr(PresenterRotation, name) for name in RotationView._fields)).where(*_IN_CHANNEL)
)


def _rotation(s: Session, actor: Actor) -> PresenterRotation | None:
    return s.scalars(_ROTATION, channel_values(actor)).first()


def _rotation_view(s: Session, actor: Actor) -> RotationView | None:
    row = _ROTATION_VIEW.first(s, channel_values(actor))
    return None if row is None else RotationView(*row)


def in_channel(actor: Actor) -> list[ColumnElement[bool]]:
    """The actor's channel, in the actor's workspace: never another team's sessions."""
    return [
        ProtocolSession.team_id == actor.team_id,
        ProtocolSession.enterprise_id == actor.enterprise_id,
        ProtocolSession.channel_id == actor.channel_id,
    ]


# A session ended this soon after it started, before anyone replied, was a false start (the
# wrong protocol, day or presenter): it was no one's turn.
FALSE_START = timedelta(minutes=1)
_REPLIED = (
    exists()
    .where(Contribution.session_id == ProtocolSession.id, Contribution.audience != DELETED)
    .label("replied")
)


def _no_turn(status: str, started: datetime | None, ended: datetime | None, replied: bool) -> bool:
    """Whether a session gives its presenter's turn back: cancelled, or a false start."""
    if status == "cancelled":
        return True
    return (
        status == "ended"
        and not replied
        and started is not None
        and ended is not None
        and ended - started < FALSE_START
    )


def _next(s: Session, actor: Actor, rotation: RotationView) -> str | None:
    members = rotation.members
    if not members:
        return None
    turns = s.execute(
        select(
            ProtocolSession.presenter_id,
            ProtocolSession.status,
            ProtocolSession.started_at,
            ProtocolSession.ended_at,
            _REPLIED,
        )
        .where(
            *in_channel(actor),
            ProtocolSession.created_at >= rotation.updated_at,
            ProtocolSession.presenter_id.in_(members),
        )
        .order_by(ProtocolSession.id)
    ).all()
    following = members[0]
    owed: list[str] = []  # presenters whose session gave its turn back, in that order
    for presenter, status, started, ended, replied in turns:
        given_back = _no_turn(status, started, ended, replied)
        if not given_back and presenter in owed:
            owed.remove(presenter)  # takes back the turn a cancelled session gave
            continue
        following = members[(members.index(presenter) + 1) % len(members)]
        if given_back and presenter not in owed:
            owed.append(presenter)
    return owed[0] if owed else following


def next_presenter(engine: Engine, actor: Actor) -> str | None:
    with engine.db.session() as s:
        rotation = _rotation_view(s, actor)
        return _next(s, actor, rotation) if rotation is not None else None


def rotation(
    engine: Engine, actor: Actor, users: tuple[str, ...], profiles: Profiles | None = None
) -> Reply:
    """`/protocol rotation` shows the order; with people, it sets it (the first presents next)."""
    members = list(dict.fromkeys(users))
    if len(members) > MAX_MEMBERS:
        raise Refusal("prep/refusals/rotation_too_long.j2", limit=MAX_MEMBERS)
    _check_members(members, profiles)
    with engine.transaction() as (s, _after):
        row = _rotation(s, actor)
        if members:
            if row is None:
                row = PresenterRotation(
                    team_id=actor.team_id,
                    enterprise_id=actor.enterprise_id,
                    channel_id=actor.channel_id,
                    members=members,
                    updated_by=actor.user_id,
                    updated_at=engine.clock.now(),
                )
                s.add(row)
            else:
                row.members, row.updated_by = members, actor.user_id
                row.updated_at = engine.clock.now()
            s.flush()
        context = _context(engine, s, actor, None if row is None else RotationView.of(row))
        return Reply("prep/rotation.j2", {"rotation": context, "changed": bool(members)})


def clear(engine: Engine, actor: Actor) -> Reply:
    """`/protocol rotation clear`: the channel no longer has a presenter order (sessions already
    booked keep their presenters)."""
    with engine.transaction() as (s, _after):
        row = _rotation(s, actor)
        if row is not None:
            s.delete(row)
        return Reply("prep/rotation_cleared.j2", {"had": row is not None})


def _check_members(members: list[str], profiles: Profiles | None) -> None:
    """Only people still in the workspace can present: an app or someone who left can't."""
    if profiles is None:
        return
    apps, gone = [], []
    for user in members:
        person = profiles.person(user)  # None: Slack can't say now, so let them be
        if person is not None and person.gone:
            gone.append(user)
        elif person is not None and person.is_bot:
            apps.append(user)
    if apps or gone:
        raise Refusal("prep/refusals/rotation_not_people.j2", apps=apps, gone=gone)


def _context(
    engine: Engine, s: Session, actor: Actor, row: RotationView | None
) -> dict[str, Any] | None:
    if row is None:
        return None
    # A few more than are shown: false starts are left out.
    found = s.execute(
        select(ProtocolSession, _REPLIED)
        .where(*in_channel(actor), ProtocolSession.started_at.is_not(None))
        .order_by(ProtocolSession.started_at.desc())
        .limit(RECENT * 2)
    ).all()
    past = [
        session
        for session, replied in found
        if not _no_turn(session.status, session.started_at, session.ended_at, replied)
    ][:RECENT]
    recent = [
        {
            "presenter": session.presenter_id,
            "protocol": engine.library[session.protocol_id].name
            if session.protocol_id in engine.library
            else session.protocol_id,
            "at": session.started_at,
        }
        for session in past
    ]
    return {
        "members": row.members,
        "next": _next(s, actor, row),
        "recent": recent,
        "updated_by": row.updated_by,
    }


def status(engine: Engine, actor: Actor) -> Reply:
    """`/protocol status`, with who presents next and who presented what, in one read."""
    with engine.db.reading() as s:
        context = engine.status_context(s, actor)
        context["rotation"] = _context(engine, s, actor, _rotation_view(s, actor))
    return status_reply(context)
