"""The closing warning: a count in the step's thread, and private nudges to who has not replied."""

from __future__ import annotations

from sqlalchemy import select

from bot import slack
from bot.blocks import render_message
from bot.engine.core import Engine
from bot.store.models import Contribution, ProtocolSession


def warn_step(engine: Engine, session_id: int, step: int) -> None:
    """Fired shortly before a step closes. Names nobody in public: the team sees a count."""
    with engine.transaction() as (s, _after):
        session = s.get(ProtocolSession, session_id)
        if session is None or session.status != "running" or session.current_step != step:
            return
        if session.step_closes_at is None or session.step_closes_at <= engine.clock.now():
            return
        protocol = engine.library.get(session.protocol_id)
        if protocol is None:
            return  # no longer installed: the close holds the session (Engine._hold)
        # One warning a step: an Extend or a pause after it moves the step's 80 % mark later,
        # and its timer comes again, but the team has been told and the quiet ones nudged.
        ref = f"warning:{session.id}:{step}"
        run = engine._step_run(s, session.id, step)
        if run is not None:
            run.warn_at = None  # given: a step is warned once, however its close moves after
        if slack.enqueued(s, session.team_id, ref):
            return
        spec = protocol.step(step)
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
