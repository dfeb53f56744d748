"""Someone a session needs left its channel: its facilitator hears it privately, nobody else
there; whoever is refused what only the facilitator can do, and the presenter at their turn,
hear it when it matters to them."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Select, or_, select

from bot import slack
from bot.blocks import render_message
from bot.engine.core import Actor, Engine
from bot.engine.errors import Reply
from bot.engine.prep import local_label
from bot.store.models import ACTIVE, ProtocolSession

log = logging.getLogger(__name__)

# Slack's word that someone left a channel the bot is in (taken out, or of their own accord).
LEFT_EVENT = "member_left_channel"
# The sessions a person leaving still matters to: those under way, and those booked there.
MATTERS = (*ACTIVE, "scheduled")
# The refusal of what only a session's facilitator (or an admin) may do.
ONLY_FACILITATOR = "refusals/only_facilitator.j2"


def member_left(engine: Engine, team_id: str, event: dict[str, Any]) -> None:
    """The presenter or the facilitator of a session in the channel left it: Slack shows its
    steps only to members, so the presenter would miss every step and their turn, and the
    facilitator would steer nothing. The facilitator is told by DM, once each time, how to
    bring the presenter back, or, if they left themselves, that the session goes on without
    them. Nothing is said in the channel: who comes and goes is nobody's business there."""
    user, channel = str(event.get("user") or ""), str(event.get("channel") or "")
    if not user or not _theirs(engine, team_id, channel, user):
        return
    if engine.directory.still_in(team_id, channel, user):
        # Slack does not keep its events in order: they are back already (invited again).
        return
    left_at = str(event.get("event_time") or "")
    told: set[tuple[str, str]] = set()
    with engine.transaction() as (s, _after):
        for session in s.scalars(_sessions(team_id, channel, user)):
            template = "facilitator_left.j2"
            if user != session.facilitator_id:
                template = "presenter_left.j2"
            if (session.facilitator_id, template) in told:
                continue  # one note, about the first: a rotation may book a session a week
            told.add((session.facilitator_id, template))
            ref = f"left:{session.id}:{user}:{left_at}"
            if slack.enqueued(s, team_id, ref):
                continue  # the same leave, delivered twice
            protocol = engine.shown_protocol(s, session)
            message = render_message(
                template,
                session=session,
                protocol=protocol,
                starts_label=local_label(session.starts_at, session.tz),
            )
            engine.post(s, session, message, channel=session.facilitator_id, ref=ref)


def _sessions(team_id: str, channel: str, user: str) -> Select[ProtocolSession]:
    return (
        select(ProtocolSession)
        .where(
            ProtocolSession.team_id == team_id,
            ProtocolSession.channel_id == channel,
            ProtocolSession.status.in_(MATTERS),
            or_(ProtocolSession.presenter_id == user, ProtocolSession.facilitator_id == user),
        )
        .order_by(ProtocolSession.starts_at)
    )


def _theirs(engine: Engine, team_id: str, channel: str, user: str) -> bool:
    """Whether `user` presents or facilitates a session in the channel (asked before Slack is)."""
    with engine.db.reading() as s:
        return s.scalars(_sessions(team_id, channel, user).limit(1)).first() is not None


def tell_facilitator_away(engine: Engine, actor: Actor, refused: Reply) -> None:
    """Once someone is told only the facilitator can do what they asked: if the facilitator is
    no longer a member of the channel (left it), they hear so privately, and who can instead;
    the refusal alone left the team waiting on someone who sees none of the steps. Asked of
    Slack afresh here, after the answer (a channel's members take a page a call), not before
    the ack: a facilitator invited back since is not said to be gone."""
    context = refused.context
    if refused.template != ONLY_FACILITATOR or context.get("gone"):
        return  # gone from the workspace: the refusal says so, and who can instead
    facilitator = str(context.get("facilitator") or "")
    if not facilitator or facilitator == actor.user_id:
        return
    if not engine.directory.absent(actor.team_id, actor.channel_id, [facilitator], fresh=True):
        return
    message = render_message(
        "facilitator_away.j2",
        facilitator=facilitator,
        channel=actor.channel_id,
        action=context.get("action") or "",
        number=context.get("number"),
    )
    engine.tell(actor, message)


def tell_presenter_away(engine: Engine, session_id: int, index: int) -> None:
    """Once the presenter is sent their turn (the questions parked for them, their notes): if
    they are no longer a member of the channel, one more DM says so, and to join it again to
    answer in the step's thread; their turn alone named a channel that shows them nothing.
    Asked of Slack afresh after the step opened (the clock opens many together, and `next` is
    answered before the ack), once for the turn."""
    try:
        with engine.db.reading() as s:
            session = s.get(ProtocolSession, session_id)
            if session is None or session.status not in ACTIVE or session.current_step != index:
                return
            s.expunge(session)
        team, channel = session.team_id, session.channel_id
        if not engine.directory.absent(team, channel, [session.presenter_id], fresh=True):
            return
        ref = f"presenter_away:{session_id}:{index}"
        with engine.transaction() as (s, _after):
            if slack.enqueued(s, team, ref):
                return
            protocol = engine.shown_protocol(s, session)
            message = render_message(
                "presenter_away.j2", session=session, step=protocol.step(index), index=index
            )
            engine.post(s, session, message, channel=session.presenter_id, ref=ref)
    except Exception as exc:  # a word missed, on a thread of its own: said in the log
        log.warning("could not check the presenter is in the channel: %s", type(exc).__name__)
