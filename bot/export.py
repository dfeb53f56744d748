"""protocolbot export: a session's notes from the database, as Markdown, CSV or JSON."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select

from bot.engine import notes as notes_mod
from bot.protocols import BUILTIN_DIR, load_library
from bot.settings import Settings
from bot.store.db import Database
from bot.store.models import Contribution, ProtocolSession

FORMATS = {
    "md": notes_mod.export_markdown,
    "csv": notes_mod.export_csv,
    "json": notes_mod.export_json,
}

# Session ids are an INTEGER column: PostgreSQL's int4 is the narrower of the two databases.
MAX_SESSION_ID = 2**31 - 1


def export(
    settings: Settings, which: str, fmt: str, say: Callable[[str], None] | None = None
) -> str:
    """The session's notes in the format asked; `say` hears what the reader should know beside
    them (that retention deleted the replies, which a CSV has no place to tell)."""
    dirs = [BUILTIN_DIR] + ([settings.protocols_dir] if settings.protocols_dir else [])
    library, _errors = load_library(dirs)
    db = Database(settings.database_url)
    try:
        with db.session() as s:
            if which == "latest":
                # The session that started last: not one scheduled for later, or cancelled.
                session = s.scalars(
                    select(ProtocolSession)
                    .where(ProtocolSession.started_at.is_not(None))
                    .order_by(ProtocolSession.started_at.desc(), ProtocolSession.id.desc())
                    .limit(1)
                ).first()
            elif which.isascii() and which.isdigit():
                # An id past the column's range is none the database could hold.
                wanted = int(which)
                session = s.get(ProtocolSession, wanted) if wanted <= MAX_SESSION_ID else None
            else:
                raise LookupError(f"expected a session id or 'latest', got {which!r}")
            if session is None and which == "latest":
                raise LookupError("no session has started yet in this database")
            if session is None:
                raise LookupError(f"no session {which!r} in this database")
            # A protocol no longer installed (its file retired, or PROTOCOLS_DIR unset here), or
            # cut short of the steps the session ran: those by the ids recorded, as `/protocol
            # notes` shows them.
            protocol = notes_mod.shown(library, s, session)
            notes = notes_mod.build_notes(s, session, protocol)
            if session.purged_at is not None and say is not None:
                when = f"{session.purged_at:%Y-%m-%d}"
                say(f"session {session.id}'s replies were deleted on {when} (DATA_RETENTION_DAYS)")
            if fmt == "md":
                # Someone who wrote nothing, by the name Slack gave at the start.
                return notes_mod.export_markdown(notes, session.names)
            return FORMATS[fmt](notes)
    finally:
        db.dispose()


def list_sessions(settings: Settings, since: date | None, until: date | None) -> str:
    """Every session in the database, one a line (tab-separated, with a header), oldest first:
    what an operator answers a district's request for a school year's notes with, one
    `protocolbot export` per id. `since` and `until` (both days included, UTC) keep the sessions
    that started, or were due to start, between them."""
    db = Database(settings.database_url)
    try:
        with db.session() as s:
            when = func.coalesce(ProtocolSession.started_at, ProtocolSession.starts_at)
            query = select(ProtocolSession)
            if since is not None:
                query = query.where(when >= datetime.combine(since, time(), UTC))
            if until is not None:
                after = datetime.combine(until + timedelta(days=1), time(), UTC)
                query = query.where(when < after)
            sessions = s.scalars(query.order_by(when, ProtocolSession.id)).all()
            counts = dict(
                s.execute(
                    select(Contribution.session_id, func.count())
                    .where(
                        Contribution.session_id.in_([row.id for row in sessions]),
                        Contribution.audience != "deleted",
                    )
                    .group_by(Contribution.session_id)
                ).all()
            )
            lines = ["\t".join(SESSION_COLUMNS)]
            for row in sessions:
                started = row.started_at or row.starts_at
                # Whose work it was, by the name Slack gave at the start where it did (a tab or
                # line break in a name would start another cell or line).
                named = " ".join(str((row.names or {}).get(row.presenter_id) or "").split())
                presenter = f"{named} ({row.presenter_id})" if named else row.presenter_id
                cells = (
                    str(row.id),
                    row.team_id,
                    row.channel_id,
                    row.protocol_id,
                    row.status,
                    f"{started:%Y-%m-%d %H:%M}",
                    f"{row.ended_at:%Y-%m-%d %H:%M}" if row.ended_at else "",
                    str(counts.get(row.id, 0)),
                    presenter,
                )
                lines.append("\t".join(cells))
            return "\n".join(lines) + "\n"
    finally:
        db.dispose()


# presenter last: columns an operator's script knows keep their place.
SESSION_COLUMNS = (
    "id",
    "team",
    "channel",
    "protocol",
    "status",
    "starts",
    "ended",
    "replies",
    "presenter",
)
