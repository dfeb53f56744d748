"""Data retention: what teachers wrote is kept no longer than the operator says.

With DATA_RETENTION_DAYS set, the clock's daily housekeeping deletes the contributions (and the
presenter's statement) of sessions that ended more than that many days ago, and the outbox rows
(which carry the notes' text) sent that long ago. Whatever the setting, handled inbox events go
after a day: they are kept only to recognise Slack's retries.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from bot.store.db import Database
from bot.store.models import Contribution, InboxEvent, OutboxMessage, ProtocolSession

log = logging.getLogger(__name__)

INBOX_KEEP = timedelta(days=1)


def purge(db: Database, now: datetime, retention_days: int | None) -> dict[str, int]:
    """Delete what is past its time; returns how many rows of each kind went."""
    counts: dict[str, int] = {}
    with db.inbox_session() as s:
        handled = delete(InboxEvent).where(
            InboxEvent.processed_at.is_not(None), InboxEvent.received_at < now - INBOX_KEEP
        )
        counts["inbox"] = _count(s.execute(handled))
    with db.session() as s:
        if retention_days is not None:
            cutoff = now - timedelta(days=retention_days)
            ended = select(ProtocolSession.id).where(
                ProtocolSession.status.in_(("ended", "cancelled")),
                ProtocolSession.ended_at < cutoff,
            )
            gone = delete(Contribution).where(Contribution.session_id.in_(ended))
            counts["contributions"] = _count(s.execute(gone))
            s.execute(
                update(ProtocolSession)
                .where(ProtocolSession.id.in_(ended), ProtocolSession.statement.is_not(None))
                .values(statement=None)
            )
            sent = delete(OutboxMessage).where(
                OutboxMessage.status.in_(("sent", "failed")), OutboxMessage.created_at < cutoff
            )
            counts["outbox"] = _count(s.execute(sent))
    if any(counts.values()):
        log.info("retention: deleted %s", ", ".join(f"{n} {k}" for k, n in counts.items()))
    return counts


def _count(result: object) -> int:
    """Rows a DELETE or UPDATE touched (its CursorResult's rowcount)."""
    return int(getattr(result, "rowcount", 0) or 0)
