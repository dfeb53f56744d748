"""The closing warning: a count in the step's thread, and private nudges to who has not replied."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import slack
from bot.blocks import Message, render_message
from bot.engine.core import Engine
from bot.engine.pacing import step_seconds, warning_lead
from bot.protocols import Protocol, Step
from bot.store.models import Contribution, ProtocolSession

# A warning late (its clock was down when it fell due) still goes out while at least this share of
# its lead is left before the close: a quarter of an hour-long step's 12 minutes, 3 minutes.
LATE_SHARE = 0.25
# Private nudges go out in a channel of at most this many people: a team's. Run in a big one (a
# school's #general), a nudge to each of hundreds who have not replied, every step, is spam,
# and the count in the thread says enough.
NUDGE_AT_MOST = 30


def counted_kind(protocol: Protocol, step: int) -> str | None:
    """The one kind of reply a step's warning counts ("described", "interpreted"), or None:
    every reply counts ("replied"). Interpreting is counted apart only where the team described
    first (ATLAS, the Conference): DESE's sorting of a class set and the Consultancy's group
    discussion collect interpretations with nothing described before, and are talk, not a
    second pass over the work."""
    collects = protocol.step(step).collects
    if collects == "observation":
        return collects
    described = any(s.collects == "observation" for s in protocol.steps[: step - 1])
    return collects if collects == "interpretation" and described else None


def _time_for_it(left: timedelta, seconds: int) -> bool:
    lead = warning_lead(seconds)
    return lead is not None and left >= lead * LATE_SHARE


def warn_step(engine: Engine, session_id: int, step: int) -> None:
    """Fired shortly before a step closes. Names nobody in public: the team sees a count."""
    with engine.transaction() as (s, _after):
        session = s.get(ProtocolSession, session_id)
        if session is None or session.status != "running" or session.current_step != step:
            return
        if session.step_closes_at is None:
            return
        protocol = engine.installed(session)
        if protocol is None:
            return  # can't run on: the close holds the session (Engine._hold)
        run = engine._step_run(s, session.id, step)
        if run is not None:
            run.warn_at = None  # given, or too late: a step is warned once, however it moves
        spec = protocol.step(step)
        seconds = step_seconds(protocol, step, session.step_seconds)
        if not _time_for_it(session.step_closes_at - engine.clock.now(), seconds):
            return  # due while no clock ran, and the step closes too soon to say so usefully
        # One warning a step: an Extend or a pause after it moves the step's 80 % mark later,
        # and its timer comes again, but the team has been told and the quiet ones nudged (the
        # warning is edited to the new close: rewarn).
        ref = f"warning:{session.id}:{step}"
        if slack.enqueued(s, session.team_id, ref):
            return
        members, replied, message = _count(engine, s, session, protocol, step)
        engine.post(s, session, message, ref=ref, thread_ref=f"step:{session.id}:{step}")
        # A step where only the presenter speaks is theirs: they are nudged as the team is in
        # a step for everyone (and only in private, as its warning names nobody).
        if not spec.everyone and spec.presenter != "only":
            return
        if not spec.everyone and _brought(session, protocol, step):
            return  # what they brought is in the step already, from their prep
        if len(members) > NUDGE_AT_MOST:
            return
        nudge = render_message("closing_nudge.j2", **_context(session, spec, step))
        for user in sorted(set(members) - replied):
            engine.post(s, session, nudge, channel=user)


def rewarn(
    engine: Engine,
    s: Session,
    session: ProtocolSession,
    protocol: Protocol,
    closed: datetime | None = None,
) -> None:
    """The open step moved after its warning was given (an extend, a pause, a resume; or it was
    `closed` early, by `next` or `end`): the warning in its thread says what is so now, with
    the count as it stands. The private nudges stay as they were sent."""
    step = session.current_step
    ref = f"warning:{session.id}:{step}"
    if step < 1 or not slack.enqueued(s, session.team_id, ref):
        return
    message = _count(engine, s, session, protocol, step, closed)[2]
    engine.edit(s, session, message, of=ref)


def _link(session: ProtocolSession) -> str | None:
    return (session.prep or {}).get("link")


def _brought(session: ProtocolSession, protocol: Protocol, step: int) -> bool:
    """Whether the presenter's prep put in step 1 what it asks of them: the link to the work,
    or the statement of the assignment where step 1 opens with it. The Conference hears the
    statement only in step 5 (where the presenter still has their say to write): its step 1
    asks them to share the work when the prep gave no link. A protocol that asks no statement
    has its step 1 ask more than the work (Tuning's focusing question, the Consultancy's
    dilemma): its step says "you start" whatever the prep brought."""
    if step != 1 or not protocol.asks_statement:
        return False
    return bool(_link(session)) or (protocol.statement_step == 1 and bool(session.statement))


def _context(
    session: ProtocolSession, spec: Step, step: int, closed: datetime | None = None
) -> dict[str, Any]:
    paused = closed is None and session.status == "paused"
    return {
        "session": session,
        "step": spec,
        "index": step,
        "closes_at": session.step_closes_at,
        "closed_at": closed,
        "paused_remaining": session.paused_remaining if paused else None,
    }


def _count(
    engine: Engine,
    s: Session,
    session: ProtocolSession,
    protocol: Protocol,
    step: int,
    closed: datetime | None = None,
) -> tuple[list[str], set[str], Message]:
    """Who is expected to reply in the step, who has, and the warning that counts them. In a
    step for describing or interpreting, only a reply of that kind counts: a question parked
    for the presenter, or an interpretation parked while describing, is not a description."""
    spec = protocol.step(step)
    counted = counted_kind(protocol, step)
    # The questions of a step that collects them are for the presenter: they answer, and are
    # neither counted among those who ask nor nudged to ask (their answers are notes).
    asked = spec.presenter == "silent" or spec.collects == "question"
    members = [
        user
        for user in engine.directory.members(session.team_id, session.channel_id)
        if not (asked and user == session.presenter_id)
    ]
    if spec.presenter == "only":
        members = [session.presenter_id]
    query = select(Contribution.user_id).where(
        Contribution.session_id == session.id,
        Contribution.step_index == step,
        Contribution.audience == "group",
    )
    if asked and spec.presenter != "only":
        query = query.where(Contribution.user_id != session.presenter_id)
    if counted is not None:
        query = query.where(Contribution.tag == counted)
    replied = set(s.scalars(query))
    expected = set(members) | replied
    context = {
        **_context(session, spec, step, closed),
        "replied": len(replied),
        "expected": len(expected),
        "counted": counted,
    }
    return members, replied, render_message("closing_warning.j2", **context)
