"""The notes as they went out in Slack (the header's thread, the presenter's copy, the Markdown
file), posted at a session's end and brought up to date when what they hold changes after it.

Each part and each upload has a ref of its own (`notes:{session}:c{k}` in the channel,
`notes:{session}:p{k}` to the presenter, `notes:{session}:f{n}` the file), so an edit finds its
message, a deletion its message or file, as a step message's edit finds its post.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot import slack
from bot.blocks import Message, render_messages
from bot.engine import notes as notes_mod
from bot.engine.pacing import zone
from bot.protocols import Protocol
from bot.render import render_text
from bot.store.models import Contribution, OutboxMessage, ProtocolSession

if TYPE_CHECKING:
    from bot.engine.core import Engine

CHANNEL, PRESENTER, FILE = "c", "p", "f"


def part_ref(session_id: int, copy: str, k: int) -> str:
    return f"notes:{session_id}:{copy}{k}"


def went_out(s: Session, session_id: int) -> bool:
    """Whether the session's notes were posted in its header's thread (or are on their way):
    a session stopped by an uninstall, when the bot could not speak there, has none."""
    ref = part_ref(session_id, CHANNEL, 0)
    return (
        s.scalar(
            select(OutboxMessage.id)
            .where(OutboxMessage.ref == ref, OutboxMessage.status != "failed")
            .limit(1)
        )
        is not None
    )


# A word of late replies below the notes (bot.engine.replies: one more reply for the notes): its
# ref names the session and the first reply it holds, and each of its parts has a ref of its
# own, `late:{session}:{first}:c{k}` in the header's thread and `...:p{k}` to the presenter.
LATE = "late"


def late_base(session_id: int, first: int) -> str:
    return f"{LATE}:{session_id}:{first}"


def late_messages(
    s: Session, session: ProtocolSession, protocol: Protocol, first: int, upto: int | None
) -> list[Message]:
    """A word of the late replies from the one numbered `first` (to `upto`, not included), as
    they stand now; none if none stands."""
    query = select(Contribution.text, Contribution.user_id, Contribution.tag).where(
        Contribution.session_id == session.id,
        Contribution.id >= first,
        Contribution.audience == "group",
    )
    if upto is not None:
        query = query.where(Contribution.id < upto)
    late = s.execute(query.order_by(Contribution.id)).all()
    items = [{"text": text, "user": user, "tag": tag} for text, user, tag in late]
    if not items:
        return []
    # By tag in the order the notes list them (a sort keeps each tag's replies in order).
    order = {tag: k for k, tag in enumerate(notes_mod.section_order(protocol))}
    items.sort(key=lambda item: order.get(item["tag"], len(order)))
    # A long reply (Slack takes 40,000 characters) is more than one message holds: in parts.
    return render_messages(
        "notes_late.j2", protocol=protocol, items=items, presenter=session.presenter_id
    )


def post_late(
    engine: Engine, s: Session, session: ProtocolSession, first: int, messages: list[Message]
) -> None:
    base = late_base(session.id, first)
    for copy in (CHANNEL, PRESENTER):
        for k, message in enumerate(messages):
            _post_part(engine, s, session, base, copy, k, message)


def post(
    engine: Engine, s: Session, session: ProtocolSession, notes: notes_mod.Notes, when: datetime
) -> None:
    """The notes at the end: in the header's thread (the first part also in the channel, so the
    team sees the session is over), to the presenter, and as a Markdown file in the thread."""
    sid = session.id
    base = f"notes:{sid}"
    for k, message in enumerate(notes_mod.notes_messages(notes)):
        _post_part(engine, s, session, base, CHANNEL, k, message, reply_broadcast=k == 0)
    for k, message in enumerate(notes_mod.notes_messages(notes, for_presenter=True)):
        _post_part(engine, s, session, base, PRESENTER, k, message)
    slack.enqueue(
        s,
        now=engine.clock.now(),
        team_id=session.team_id,
        channel=session.channel_id,
        method=slack.UPLOAD_METHOD,
        payload=_file(engine, session, notes, when, 0),
        ref=part_ref(sid, FILE, 0),
        thread_ref=f"header:{sid}",
    )


def refresh(engine: Engine, s: Session, session: ProtocolSession, *, parts: bool = True) -> None:
    """What the notes hold changed after they went out (a reply edited or deleted; with
    `parts` False, a late reply, which has its own word in the thread): the posted parts are
    edited to match (parts added or taken away as the notes grew or shrank), and the file is
    shared again, the old one deleted. Slack cannot change a file's content in place.

    Edits coming one after another are gathered: a refresh the sender has not taken yet is
    written again, rather than one more edit of every part and one more file for each."""
    sid = session.id
    rows = _rows(s, session)
    if not any(row.ref == part_ref(sid, CHANNEL, 0) for row in rows):
        return  # no notes out (or out before their parts had refs of their own)
    if session.ended_at is None:
        return
    protocol = engine.shown_protocol(s, session)
    notes = notes_mod.build_notes(s, session, protocol)
    if parts:
        dropped = [row for row in rows if _redone(row, sid) and _untaken(row)]
        for row in dropped:
            s.delete(row)
        s.flush()
        rows = [row for row in rows if row not in dropped]
        base = f"notes:{sid}"
        for copy, for_presenter in ((CHANNEL, False), (PRESENTER, True)):
            messages = notes_mod.notes_messages(notes, for_presenter=for_presenter)
            _redo_parts(engine, s, session, base, copy, messages, rows)
        # The words of late replies below them, each as its replies now stand.
        firsts = sorted(
            {int(ref.split(":")[2]) for row in rows if (ref := row.ref or "").startswith(LATE)}
        )
        for first, upto in zip(firsts, [*firsts[1:], None], strict=False):
            messages = late_messages(s, session, protocol, first, upto)
            base = late_base(sid, first)
            for copy in (CHANNEL, PRESENTER):
                _redo_parts(engine, s, session, base, copy, messages, rows)
    _redo_file(engine, s, session, notes, rows)


def _rows(s: Session, session: ProtocolSession) -> list[OutboxMessage]:
    """The session's notes rows: its parts and files, and the edits and deletions of them."""
    sid = session.id
    return list(
        s.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.team_id == session.team_id,
                or_(
                    OutboxMessage.ref.like(f"notes:{sid}:%"),
                    OutboxMessage.ref.like(f"edit:notes:{sid}:%"),
                    OutboxMessage.ref.like(f"delete:notes:{sid}:%"),
                    OutboxMessage.ref.like(f"{LATE}:{sid}:%:%"),
                    OutboxMessage.ref.like(f"edit:{LATE}:{sid}:%"),
                    OutboxMessage.ref.like(f"delete:{LATE}:{sid}:%"),
                ),
            )
            .order_by(OutboxMessage.id)
        )
    )


def _redone(row: OutboxMessage, session_id: int) -> bool:
    """An edit or a deletion of a part (not of a file), made by a refresh."""
    ref = row.ref or ""
    target = ref.removeprefix("edit:").removeprefix("delete:")
    parts = tuple(part_ref(session_id, copy, 0)[:-1] for copy in (CHANNEL, PRESENTER))
    return target != ref and (target.startswith(parts) or target.startswith(f"{LATE}:"))


def _untaken(row: OutboxMessage) -> bool:
    return row.status == "pending" and row.in_flight_at is None and row.attempts == 0


def _live(rows: list[OutboxMessage], base: str, copy: str) -> int:
    """How many parts of a copy are in Slack (or on their way): 0..n-1, none deleted since."""
    live: dict[str, bool] = {}
    for row in rows:
        ref = row.ref or ""
        if row.method == "chat.postMessage" and ref.startswith(f"{base}:{copy}"):
            live[ref] = row.status != "failed"
        elif row.method == slack.DELETE_METHOD:
            live[ref.removeprefix("delete:")] = False
    n = 0
    while live.get(f"{base}:{copy}{n}"):
        n += 1
    return n


def _redo_parts(
    engine: Engine,
    s: Session,
    session: ProtocolSession,
    base: str,
    copy: str,
    messages: list[Message],
    rows: list[OutboxMessage],
) -> None:
    channel = session.channel_id if copy == CHANNEL else session.presenter_id
    live = _live(rows, base, copy)
    # What each part shows now: its post, or its last edit (a part the edit leaves as it was is
    # not edited: Slack takes about 50 edits a minute).
    shown = {row.thread_ref if row.method == slack.UPDATE_METHOD else row.ref: row for row in rows}
    for k, message in enumerate(messages):
        of = f"{base}:{copy}{k}"
        if k < live:
            was = shown.get(of)
            if was is not None and _same(was.payload, message):
                continue
            engine.edit(s, session, message, of=of, channel=channel)
        else:
            _post_part(engine, s, session, base, copy, k, message)
    for k in range(len(messages), live):
        of = f"{base}:{copy}{k}"
        slack.enqueue(
            s,
            now=engine.clock.now(),
            team_id=session.team_id,
            channel=channel,
            method=slack.DELETE_METHOD,
            payload={"channel": channel},
            ref=f"delete:{of}",
            thread_ref=of,
        )


def _same(payload: dict[str, Any], message: Message) -> bool:
    """Whether a post's or an edit's payload shows `message` (a forgotten one shows nothing)."""
    blocks = payload.get("blocks") or []
    return payload.get("text") == message.text and blocks == (message.blocks or [])


def _post_part(
    engine: Engine,
    s: Session,
    session: ProtocolSession,
    base: str,
    copy: str,
    k: int,
    message: Message,
    **extra: Any,
) -> None:
    ref = f"{base}:{copy}{k}"
    if copy == CHANNEL:
        engine.post(s, session, message, ref=ref, thread_ref=f"header:{session.id}", **extra)
    else:
        engine.post(s, session, message, channel=session.presenter_id, ref=ref, **extra)


def _redo_file(
    engine: Engine,
    s: Session,
    session: ProtocolSession,
    notes: notes_mod.Notes,
    rows: list[OutboxMessage],
) -> None:
    sid = session.id
    uploads = [row for row in rows if row.method == slack.UPLOAD_METHOD]
    assert session.ended_at is not None  # see refresh
    if not uploads:
        return
    last = uploads[-1]
    n = int((last.ref or "").rpartition(FILE)[2] or 0)
    # Held (on PostgreSQL) so the sender can't take it while it is written again.
    held = s.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.id == last.id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).first()
    if held is not None and _untaken(held):
        # Not shared yet: it is shared as the notes now stand.
        held.payload = _file(engine, session, notes, session.ended_at, n)
        return
    shared = _file(engine, session, notes, session.ended_at, n + 1)
    if last.status != "failed" and last.payload.get("content") == shared["content"]:
        # What changed is not in the file (the presenter's own notes are in their copy alone):
        # sharing it again would show the channel a new file that says nothing new.
        return
    now = engine.clock.now()
    slack.enqueue(
        s,
        now=now,
        team_id=session.team_id,
        channel=session.channel_id,
        method=slack.UPLOAD_METHOD,
        payload=shared,
        ref=part_ref(sid, FILE, n + 1),
        thread_ref=f"header:{sid}",
    )
    if last.status != "failed":
        # After the new one is shared (the channel's calls go in order): the thread holds one.
        slack.enqueue(
            s,
            now=now,
            team_id=session.team_id,
            channel=session.channel_id,
            method=slack.FILE_DELETE_METHOD,
            payload={},
            ref=f"delete:{last.ref}",
            thread_ref=last.ref,
        )


def _file(
    engine: Engine,
    session: ProtocolSession,
    notes: notes_mod.Notes,
    when: datetime,
    n: int,
) -> dict[str, Any]:
    """The upload of the notes as Markdown; `n`: how many were shared before (a file name is
    unique: a retried upload looks for its own by name in the thread)."""
    protocol = notes.protocol
    version = f"-{n + 1}" if n else ""
    # Dated the day it was where the session was started or booked (UTC if Slack didn't say).
    day = when.astimezone(zone(session.tz))
    return {
        "channel": session.channel_id,
        "content": notes_mod.export_markdown(notes, engine.notes_names(session, notes)),
        "filename": f"notes-{protocol.id}-{day:%Y-%m-%d}-{session.id}{version}.md",
        "title": render_text("notes_file_title.j2", protocol=protocol, when=day),
    }
