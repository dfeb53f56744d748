"""The closing warning: a count in the step's thread, and private nudges to who has not replied."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot import slack
from bot.blocks import render_message
from bot.engine.core import Engine
from bot.engine.pacing import step_seconds, warning_lead
from bot.store.models import Contribution, ProtocolSession

# A warning late (its clock was down when it fell due) still goes out while at least this share of
# its lead is left before the close: a quarter of an hour-long step's 12 minutes, 3 minutes.
LATE_SHARE = 0.25


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
        protocol = engine.library.get(session.protocol_id)
        if protocol is None:
            return  # no longer installed: the close holds the session (Engine._hold)
        run = engine._step_run(s, session.id, step)
        if run is not None:
            run.warn_at = None  # given, or too late: a step is warned once, however it moves
        spec = protocol.step(step)
        seconds = step_seconds(protocol, step, session.step_seconds)
        if not _time_for_it(session.step_closes_at - engine.clock.now(), seconds):
            return  # due while no clock ran, and the step closes too soon to say so usefully
        # One warning a step: an Extend or a pause after it moves the step's 80 % mark later,
        # and its timer comes again, but the team has been told and the quiet ones nudged.
        ref = f"warning:{session.id}:{step}"
        if slack.enqueued(s, session.team_id, ref):
            return
        members = [
            user
            for user in engine.directory.members(session.team_id, session.channel_id)
            if not (spec.presenter == "silent" and user == session.presenter_id)
        ]
        if spec.presenter == "only":
            members = [session.presenter_id]
        replied = set(
            s.scalars(
                select(Contribution.user_id).where(
                    Contribution.session_id == session.id,
                    Contribution.step_index == step,
                    Contribution.audience == "group",
                )
            )
        )
        expected = set(members) | replied
        context = {
            "session": session,
            "step": spec,
            "index": step,
            "replied": len(replied),
            "expected": len(expected),
            "closes_at": session.step_closes_at,
        }
        engine.post(
            s,
            session,
            render_message("closing_warning.j2", **context),
            ref=ref,
            thread_ref=f"step:{session.id}:{step}",
        )
        if not spec.everyone:
            return
        for user in sorted(set(members) - replied):
            engine.post(s, session, render_message("closing_nudge.j2", **context), channel=user)
