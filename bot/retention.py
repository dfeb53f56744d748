"""Data retention: what teachers wrote is kept no longer than the operator says.

With DATA_RETENTION_DAYS set, the clock's daily housekeeping deletes the contributions (and the
presenter's statement and link to the work, and the names Slack gave the presenter and the
facilitator) of sessions that ended more than that many days ago,
and the outbox rows (which carry the notes' text) sent that long ago. Whatever the setting,
handled inbox events go after a day: they are kept only to recognise Slack's retries. The rows of
a running session's header and step messages stay while it runs (_purge_posts). A housekeeping
that finds the database out of reach is tried again five minutes later (bot/scheduling.py).

`/protocol forget` does the same for one session at once (forget_copies, forget_events), and
`protocolbot forget-user` for one person's replies in every session (forget_quotes,
forget_steps_shown_before, forget_user_events).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, null, or_, select, update
from sqlalchemy.orm import Session

from bot.store.db import Database
from bot.store.models import ACTIVE, Contribution, InboxEvent, OutboxMessage, ProtocolSession

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
            # Only a session that had replies to delete has its notes say they went.
            written = select(Contribution.session_id).where(
                Contribution.session_id.in_(ended), Contribution.audience != "deleted"
            )
            s.execute(
                update(ProtocolSession)
                .where(
                    ProtocolSession.id.in_(ended),
                    ProtocolSession.id.in_(written),
                    ProtocolSession.purged_at.is_(None),
                )
                .values(purged_at=now)
            )
            gone = delete(Contribution).where(Contribution.session_id.in_(ended))
            counts["contributions"] = _count(s.execute(gone))
            kept = or_(ProtocolSession.statement.is_not(None), ProtocolSession.names.is_not(None))
            s.execute(
                update(ProtocolSession)
                .where(ProtocolSession.id.in_(ended), kept)
                .values(statement=None, names=null())
            )
            preps = select(ProtocolSession.id, ProtocolSession.prep)
            for sid, prep in s.execute(preps.where(ProtocolSession.id.in_(ended))).all():
                if prep and PREP_WRITTEN & prep.keys():
                    s.execute(
                        update(ProtocolSession)
                        .where(ProtocolSession.id == sid)
                        .values(prep=without_written(prep))
                    )
            old = (
                OutboxMessage.status.in_(("sent", "failed")),
                OutboxMessage.created_at < cutoff,
            )
            posts = or_(OutboxMessage.ref.like("header:%"), OutboxMessage.ref.like("step:%"))
            sent = delete(OutboxMessage).where(*old, or_(OutboxMessage.ref.is_(None), ~posts))
            counts["outbox"] = _count(s.execute(sent)) + _purge_posts(s, old, posts)
    if any(counts.values()):
        log.info("retention: deleted %s", ", ".join(f"{n} {k}" for k, n in counts.items()))
    return counts


def _purge_posts(s: Session, old: tuple[ColumnElement[bool], ...], posts: Any) -> int:
    """The headers and step messages of sessions over: a running session's stay, however long it
    runs, since its thread notes find their thread by them and its edits their message."""
    active = set(s.scalars(select(ProtocolSession.id).where(ProtocolSession.status.in_(ACTIVE))))
    over = [
        row_id
        for row_id, ref in s.execute(select(OutboxMessage.id, OutboxMessage.ref).where(*old, posts))
        if int(str(ref).split(":")[1]) not in active
    ]
    for start in range(0, len(over), 500):
        s.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(over[start : start + 500])))
    return len(over)


# What the presenter wrote in the prep dialog besides the statement: the link to the student work
# (its address may name the student). The rest of `prep` is choices and bookkeeping.
PREP_WRITTEN = frozenset({"link"})


def without_written(prep: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in prep.items() if k not in PREP_WRITTEN}


def session_rows(session_id: int) -> ColumnElement[bool]:
    """One session's outbox rows, by the refs the engine gives them: its header, its steps and
    what went in their threads, the notes, and the direct messages and nudges about it."""
    sid = session_id
    named: list[ColumnElement[bool]] = [OutboxMessage.ref == f"nudge:{sid}"]
    for column in (OutboxMessage.ref, OutboxMessage.thread_ref):
        named += [column == f"header:{sid}", column == f"notes:{sid}"]
        kinds: tuple[str, ...] = ("step", "prep", "presenter", "notes", "late")
        kinds += tuple(f"{change}:{kind}" for change in ("edit", "delete") for kind in kinds[3:])
        kinds += ("stepthread",)  # a step's message posted in its thread (Engine.step_shown)
        named += [column.like(f"{kind}:{sid}:%") for kind in kinds]
    return or_(*named)


def forget_copies(s: Session, session_id: int) -> int:
    """The outbox's copies of a session's replies, for `/protocol forget`; returns the rows.

    Sent (or failed) rows lose their content as retention would delete them (forget_posted). Of
    the rows not sent yet, the notes and the messages that quote replies are dropped (nothing
    forgotten is posted after the forget); the rest, which run the session, still go.
    """
    dropped = s.execute(
        delete(OutboxMessage).where(
            session_rows(session_id), _quoting(session_id), OutboxMessage.status == "pending"
        )
    )
    return _count(dropped) + forget_posted(s, session_id)


def forget_posted(s: Session, session_id: int) -> int:
    """A session's sent (or failed) outbox rows lose their content; each keeps its ref and ts,
    so a post still to come in a running session's threads finds its place."""
    emptied = s.execute(
        update(OutboxMessage)
        .where(session_rows(session_id), OutboxMessage.status.in_(("sent", "failed")))
        .values(payload={})
    )
    return _count(emptied)


def _quoting(session_id: int) -> ColumnElement[bool]:
    """A session's outbox rows that quote its replies."""
    return or_(
        OutboxMessage.thread_ref == f"header:{session_id}",  # the notes, in parts and as a file
        OutboxMessage.ref == f"notes:{session_id}",
        # the notes' parts and files, and their edits since (bot.engine.posted_notes)
        OutboxMessage.ref.like(f"notes:{session_id}:%"),
        OutboxMessage.ref.like(f"edit:notes:{session_id}:%"),
        OutboxMessage.ref.like(f"edit:late:{session_id}:%"),
        OutboxMessage.ref.like(f"late:{session_id}:%"),  # replies after the notes, to the presenter
        OutboxMessage.ref.like(f"presenter:{session_id}:%"),
        OutboxMessage.ref == f"nudge:{session_id}",
        # the prep's thanks to the presenter and word to the facilitator, which quote the
        # statement and the link
        OutboxMessage.ref.like(f"prep:{session_id}:submitted%"),
    )


def forget_quotes(s: Session, session_id: int) -> int:
    """The sent (or failed) outbox rows that quoted a session's replies lose their content, for
    `protocolbot forget-user`: what is still to be sent goes (the notes' edits without the
    replies forgotten among them), and the rows that run the session are left alone."""
    emptied = s.execute(
        update(OutboxMessage)
        .where(
            session_rows(session_id),
            _quoting(session_id),
            OutboxMessage.status.in_(("sent", "failed")),
        )
        .values(payload={})
    )
    return _count(emptied)


def forget_steps_shown_before(s: Session, session_id: int) -> int:
    """The posts and edits of a session's step messages that a later one of the same message
    has taken the place of, for `protocolbot forget-user`: they listed the person's parked
    replies as the message then stood. Sent (or failed) ones lose their content; an edit still
    to send is dropped (the later one shows the message whole), and a post still to send goes
    out with the later one's words. The last of each message keeps its own (an edit of the
    message as sent starts from it, see Engine._edit_as_sent), and goes out if still to."""
    steps = or_(
        *(
            OutboxMessage.ref.like(f"{change}{kind}:{session_id}:%")
            for change in ("", "edit:")
            for kind in ("step", "stepthread")
        )
    )
    last: dict[str, int] = {}
    for row_id, ref in s.execute(select(OutboxMessage.id, OutboxMessage.ref).where(steps)):
        message = str(ref).removeprefix("edit:")
        last[message] = max(last.get(message, 0), row_id)
    replaced = (steps, OutboxMessage.id.not_in(list(last.values())))
    dropped = s.execute(
        delete(OutboxMessage).where(
            *replaced,
            OutboxMessage.status == "pending",
            OutboxMessage.method == "chat.update",
        )
    )
    posts = s.execute(
        select(OutboxMessage.id, OutboxMessage.ref, OutboxMessage.payload).where(
            *replaced, OutboxMessage.status == "pending"
        )
    ).all()
    for row_id, ref, payload in posts:
        latest = s.get(OutboxMessage, last[str(ref)])
        if latest is not None and latest.method == "chat.update":
            words = {
                key: latest.payload[key] for key in ("text", "blocks") if key in latest.payload
            }
            s.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row_id)
                .values(payload={**payload, **words})
            )
    emptied = s.execute(
        update(OutboxMessage)
        .where(*replaced, OutboxMessage.status.in_(("sent", "failed")))
        .values(payload={})
    )
    return _count(dropped) + len(posts) + _count(emptied)


def forget_user_events(
    db: Database, user_id: str, now: datetime, team_id: str | None = None
) -> int:
    """Inbox events by one person (a reply, its edits and deletion) lose their content; their
    ids still recognise a retry. One not handled yet is taken as handled: its words would come
    back as a reply."""
    by = or_(
        *(
            InboxEvent.payload[path].as_string() == user_id
            for path in (
                ("event", "user"),
                ("event", "message", "user"),
                ("event", "previous_message", "user"),
            )
        )
    )
    with db.inbox_session() as s:
        theirs = update(InboxEvent).where(by)
        if team_id is not None:
            theirs = theirs.where(InboxEvent.team_id == team_id)
        handled = func.coalesce(InboxEvent.processed_at, now)
        return _count(s.execute(theirs.values(payload={}, processed_at=handled)))


def forget_events(db: Database, team_id: str, channel_id: str) -> int:
    """Handled inbox events of a channel lose their content (their ids still recognise a retry)."""
    with db.inbox_session() as s:
        handled = (
            update(InboxEvent)
            .where(
                InboxEvent.team_id == team_id,
                InboxEvent.processed_at.is_not(None),
                InboxEvent.payload["event"]["channel"].as_string() == channel_id,
            )
            .values(payload={})
        )
        return _count(s.execute(handled))


def _count(result: object) -> int:
    """Rows a DELETE or UPDATE touched (its CursorResult's rowcount)."""
    return int(getattr(result, "rowcount", 0) or 0)
