"""The presenter's turn: which step is theirs, and the notes they kept while listening."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from bot.blocks import Message, render_messages
from bot.protocols import Protocol
from bot.store.models import ProtocolSession

if TYPE_CHECKING:
    from bot.engine.notes import Item


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
) -> list[Item]:
    """The presenter's own notes from the silent steps since they last spoke, before `index`,
    in step order then as written. Read with the step's other replies where the clock read
    those ahead for its round (notes.read_ahead): a query each cost the round a tenth of its
    time at 10,000 sessions."""
    # Here, not at the top: bot.engine.notes reads this module's next_presenter_step.
    from bot.engine.notes import session_items

    last_spoke = max(
        (k for k in range(1, index) if protocol.step(k).presenter != "silent"), default=0
    )
    return [
        item
        for item in session_items(s, session.id)
        if item.audience == "presenter" and last_spoke < item.step_index < index
    ]


def presenter_turn(
    s: Session, session: ProtocolSession, protocol: Protocol, index: int, *, again: bool = False
) -> list[Message]:
    """The DM that tells the presenter their turn is open, with the questions parked for them
    and the notes they kept while they listened (in parts if long); none when there are neither:
    the step message in the channel names nobody, and the presenter who kept the norm silently
    has questions waiting. `again`: the DM as it stands now, for one already sent, which says
    so when nothing is left in it (its questions deleted since)."""
    # Here, not at the top: bot.engine.notes reads this module's next_presenter_step.
    from bot.engine.notes import step_context

    if not opens_presenter_turn(protocol, index):
        return []
    notes = listening_notes(s, session, protocol, index)
    questions = step_context(s, session, protocol, index)["parked_questions"]
    if not notes and not questions and not again:
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
