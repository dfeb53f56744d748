"""The presenter's turn: which step is theirs, and the notes they kept while listening."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.blocks import Message, render_messages
from bot.protocols import Protocol
from bot.store.models import Contribution, ProtocolSession


def next_presenter_step(protocol: Protocol, index: int) -> int | None:
    """The first step after `index` where the presenter is not silent: where they answer."""
    for k in range(index + 1, len(protocol.steps) + 1):
        if protocol.step(k).presenter != "silent":
            return k
    return None


def opens_presenter_turn(protocol: Protocol, index: int) -> bool:
    """True for a step where the presenter speaks again right after listening."""
    return (
        index > 1
        and protocol.step(index).presenter != "silent"
        and protocol.step(index - 1).presenter == "silent"
    )


def listening_notes(
    s: Session, session: ProtocolSession, protocol: Protocol, index: int
) -> list[Contribution]:
    """The presenter's own notes from the silent steps since they last spoke, before `index`."""
    last_spoke = max(
        (k for k in range(1, index) if protocol.step(k).presenter != "silent"), default=0
    )
    rows = s.scalars(
        select(Contribution)
        .where(
            Contribution.session_id == session.id,
            Contribution.audience == "presenter",
            Contribution.step_index > last_spoke,
            Contribution.step_index < index,
        )
        .order_by(Contribution.step_index, Contribution.ts)
    ).all()
    return list(rows)


def presenter_turn(
    s: Session, session: ProtocolSession, protocol: Protocol, index: int
) -> list[Message]:
    """The DM that tells the presenter their turn is open, with the questions parked for them
    and the notes they kept while they listened (in parts if long); none when there are neither:
    the step message in the channel names nobody, and the presenter who kept the norm silently
    has questions waiting."""
    # Here, not at the top: bot.engine.notes reads this module's next_presenter_step.
    from bot.engine.notes import step_context

    if not opens_presenter_turn(protocol, index):
        return []
    notes = listening_notes(s, session, protocol, index)
    questions = step_context(s, session, protocol, index)["parked_questions"]
    if not notes and not questions:
        return []
    return render_messages(
        "presenter_notes.j2",
        session=session,
        protocol=protocol,
        step=protocol.step(index),
        index=index,
        notes=notes,
        questions=questions,
    )
