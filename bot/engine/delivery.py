"""When Slack refuses a post for good: the session's facilitator is told why, privately, once.

Called by the outbox sender in the transaction that marks the row failed. Only channel posts count
(a failed reaction or nudge is not worth a message); a failed direct message is never answered
with another direct message, so a facilitator who can't be reached doesn't start a loop.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.blocks import render_message
from bot.engine.core import Engine
from bot.slack import UPLOAD_METHOD
from bot.store.models import OutboxMessage, ProtocolSession

NOTICE = "undelivered"
TOLD_ABOUT = frozenset({"chat.postMessage", UPLOAD_METHOD})


def tell_facilitator(engine: Engine, s: Session, row: OutboxMessage) -> None:
    if row.method not in TOLD_ABOUT or row.channel_id.startswith(("U", "W", "D")):
        return
    if (row.ref or "").startswith(f"{NOTICE}:"):
        return
    session = _session_of(s, row)
    if session is None:
        return
    error = row.error or "unknown"
    ref = f"{NOTICE}:{session.id}:{error}"[:64]
    told = s.scalars(
        select(OutboxMessage.id).where(
            OutboxMessage.team_id == row.team_id, OutboxMessage.ref == ref
        )
    ).first()
    if told is not None:
        return  # one word per session and reason, however many posts it stops
    protocol = engine.library.get(session.protocol_id)
    message = render_message(
        "delivery_failed.j2",
        session=session,
        protocol_name=protocol.name if protocol else session.protocol_id,
        what=_what(row),
        error=error,
    )
    engine.post(s, session, message, channel=session.facilitator_id, ref=ref)


def _session_of(s: Session, row: OutboxMessage) -> ProtocolSession | None:
    for ref in (row.ref, row.thread_ref):
        kind, _, rest = (ref or "").partition(":")
        session_id = rest.partition(":")[0]
        if kind in ("header", "step") and session_id.isdigit():
            session = s.get(ProtocolSession, int(session_id))
            if session is not None and session.team_id == row.team_id:
                return session
    return s.scalars(
        select(ProtocolSession)
        .where(
            ProtocolSession.team_id == row.team_id,
            ProtocolSession.channel_id == row.channel_id,
            ProtocolSession.status != "scheduled",
        )
        .order_by(ProtocolSession.id.desc())
        .limit(1)
    ).first()


def _what(row: OutboxMessage) -> dict[str, object]:
    """What could not be posted, for the template: the header, a step, the notes, a message."""
    kind, _, rest = (row.ref or "").partition(":")
    if kind == "step":
        return {"kind": "step", "index": int(rest.partition(":")[2] or 0)}
    if kind == "header":
        return {"kind": "header"}
    if row.method == UPLOAD_METHOD or str(row.payload.get("text", "")).startswith("Notes from"):
        return {"kind": "notes"}
    return {"kind": "message"}
