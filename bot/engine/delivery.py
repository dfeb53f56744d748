"""When Slack refuses a post for good: the session's facilitator is told why, privately, once.

Called by the outbox sender in the transaction that marks the row failed. Only channel posts count
(a failed reaction or nudge is not worth a message); a failed direct message is never answered
with another direct message, so a facilitator who can't be reached doesn't start a loop. A session
whose start can't reach its channel at all is called off, so it doesn't hold the channel.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot import slack
from bot.blocks import render_message
from bot.engine import posted_notes
from bot.engine.core import Engine
from bot.engine.home import notes_to
from bot.engine.pacing import step_seconds, time_left
from bot.engine.prep import dm
from bot.slack import UPLOAD_METHOD
from bot.store.models import ACTIVE, OutboxMessage, ProtocolSession, StepRun

NOTICE = "undelivered"
TOLD_ABOUT = frozenset({"chat.postMessage", UPLOAD_METHOD})
# Slack's answers when the bot can't reach a channel (a join was tried for not_in_channel).
UNREACHABLE = frozenset({"not_in_channel", "channel_not_found"})
# The channel's settings let only some post there, or not in threads (an announcement channel).
RESTRICTED = frozenset(
    {
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_non_threadable_channel",
        "restricted_action_thread_only_channel",
    }
)
# ...and those that keep every later post out of it too, until someone puts it right.
CHANNEL_CLOSED = UNREACHABLE | RESTRICTED | {"is_archived"}


def call_off_unreachable(engine: Engine, s: Session, row: OutboxMessage) -> bool:
    """The header or step 1 of a session could not reach its channel: nobody there sees the
    session, yet it would run on, and hold the channel. Call it off and tell the facilitator what
    to do. True when it did."""
    session_id = (row.ref or "").partition(":")[2].partition(":")[0]
    start_posts = (f"header:{session_id}", f"step:{session_id}:1")
    if row.error not in CHANNEL_CLOSED or row.ref not in start_posts or not session_id.isdigit():
        return False
    session = s.get(ProtocolSession, int(session_id), with_for_update=True)
    if session is None or session.team_id != row.team_id or session.status not in ACTIVE:
        return False
    if session.current_step != 1:
        return False  # the session went on: the channel was reached, or it is someone's call
    now = engine.clock.now()
    session.status, session.ended_at = "cancelled", now
    session.step_closes_at = session.paused_remaining = None
    s.execute(
        update(StepRun)
        .where(StepRun.session_id == session.id, StepRun.ended_at.is_(None))
        .values(ended_at=now)
    )
    # The other start post, if not tried yet, would go nowhere (or arrive for a session gone).
    s.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.team_id == row.team_id,
            OutboxMessage.ref.in_(start_posts),
            OutboxMessage.status == "pending",
        )
        .values(status="failed", error=row.error, sent_at=now)
    )
    engine.timers.clear(session.id)  # its jobs do nothing for a session not running, either way
    name = engine.protocol_name(session.protocol_id)
    message = render_message(
        "session_unreachable.j2", session=session, protocol_name=name, error=row.error
    )
    engine.post(s, session, message, channel=session.facilitator_id, ref=_notice(session, row))
    engine.tell_presenter_called_off(s, session, name, "unreachable")
    return True


def hold_unreachable(engine: Engine, s: Session, row: OutboxMessage) -> bool:
    """The message of the step a session has just opened could not reach its channel (archived,
    the bot removed from it, gone): nobody there sees the step, and every step after it would
    go the same way. Pause the session with the whole step still to come, and tell the
    facilitator that `/protocol resume` posts it once the channel is back. True when it did."""
    kind, _, rest = (row.ref or "").partition(":")
    session_id, _, index = rest.partition(":")
    if row.error not in CHANNEL_CLOSED or kind != "step" or not session_id.isdigit():
        return False
    session = s.get(ProtocolSession, int(session_id), with_for_update=True)
    if session is None or session.team_id != row.team_id or session.status != "running":
        return False
    protocol = engine.installed(session)
    if str(session.current_step) != index or protocol is None:
        return False  # the session has moved on since: the step's post is not what holds it
    engine.pause_step(
        s, session, step_seconds(protocol, session.current_step, session.step_seconds)
    )
    engine.timers.clear(session.id)
    # A note of its own, whatever notes of refused posts went before (a line in a thread
    # refused the same way): this one says the session is paused, and can end it.
    message = render_message(
        "session_held.j2",
        session=session,
        protocol=protocol,
        index=session.current_step,
        error=row.error,
    )
    ref = f"held:{session.id}:{row.id}"
    engine.post(s, session, message, channel=session.facilitator_id, ref=ref)
    return True


# Slack's word to the bot that it was taken out of a channel (public; private).
REMOVED_EVENTS = frozenset({"channel_left", "group_left"})


def removed_from_channel(engine: Engine, team_id: str, event: dict[str, Any]) -> None:
    """Someone took the bot out of a channel where a session runs: Slack sends it none of the
    replies written there from now on, so the step would run on unheard. Pause the session
    with the time left, and tell the facilitator how to carry on. Out of a private channel,
    the facilitators of sessions scheduled there hear it too: the bot can't go back itself."""
    channel = str(event.get("channel") or "")
    if engine.directory.in_channel(team_id, channel):
        # Slack does not keep its events in order: this one came after the bot was invited
        # back (its member_joined_channel handled already), and the session runs on heard.
        return
    if event.get("type") == "group_left":
        _warn_scheduled(engine, team_id, channel, event.get("actor_id"))
    with engine.transaction() as (s, after):
        session = s.scalars(
            select(ProtocolSession)
            .where(
                ProtocolSession.team_id == team_id,
                ProtocolSession.channel_id == channel,
                ProtocolSession.status == "running",
            )
            .with_for_update()
        ).first()
        if session is None or session.step_closes_at is None:
            return
        now = engine.clock.now()
        left = time_left(now, session.step_closes_at, weekdays=session.weekdays, tz=session.tz)
        engine.pause_step(s, session, left)
        sid = session.id
        after(lambda: engine.timers.clear(sid))
        protocol = engine.shown_protocol(s, session)
        message = render_message(
            "session_left.j2",
            session=session,
            protocol=protocol,
            remover=event.get("actor_id"),
        )
        engine.post(s, session, message, channel=session.facilitator_id)


# Slack's word that someone joined a channel: kept only when it is the bot (bot/inbox.py).
JOINED_EVENT = "member_joined_channel"


def back_in_channel(engine: Engine, team_id: str, event: dict[str, Any]) -> None:
    """The bot was invited back to a channel where a session is paused (removed from it, or
    its step could not reach it): nothing moves until the facilitator resumes it, so tell them
    the channel is open to the bot again, and how to carry on."""
    channel = str(event.get("channel") or "")
    with engine.transaction() as (s, _after):
        session = s.scalars(
            select(ProtocolSession).where(
                ProtocolSession.team_id == team_id,
                ProtocolSession.channel_id == channel,
                ProtocolSession.status == "paused",
            )
        ).first()
        if session is None or session.current_step < 1:
            return
        protocol = engine.shown_protocol(s, session)
        message = render_message(
            "session_back.j2", session=session, protocol=protocol, inviter=event.get("inviter")
        )
        engine.post(s, session, message, channel=session.facilitator_id)


def _warn_scheduled(engine: Engine, team_id: str, channel: str, remover: Any) -> None:
    with engine.transaction() as (s, _after):
        for session in s.scalars(
            select(ProtocolSession).where(
                ProtocolSession.team_id == team_id,
                ProtocolSession.channel_id == channel,
                ProtocolSession.status == "scheduled",
            )
        ):
            if engine.installed(session) is not None:
                dm(
                    engine,
                    s,
                    session,
                    session.facilitator_id,
                    "prep/removed.j2",
                    "removed",
                    remover=remover,
                )


def tell_facilitator(engine: Engine, s: Session, row: OutboxMessage) -> None:
    if row.method not in TOLD_ABOUT or row.channel_id.startswith(("U", "W", "D")):
        return
    if (row.ref or "").startswith(f"{NOTICE}:"):
        return
    session = _session_of(s, row)
    if session is None or session.status == "cancelled":
        return  # a session called off: its facilitator was told why
    ref = _notice(session, row)
    if slack.enqueued(s, row.team_id, ref):
        return  # one word per session and reason, however many posts it stops
    what = _what(row)
    # The notes of a session over, kept out of its channel: nobody will post them there again.
    copied = what["kind"] == "notes" and row.error in CHANNEL_CLOSED and session.status == "ended"
    message = render_message(
        "delivery_failed.j2",
        session=session,
        protocol_name=engine.protocol_name(session.protocol_id),
        what=what,
        error=row.error or "unknown",
        copied=copied,
    )
    engine.post(s, session, message, channel=session.facilitator_id, ref=ref)
    # Unless the notes went to the facilitator already: as the presenter, or ended from the
    # note that the channel can't be reached (controls.end_away).
    facilitator = session.facilitator_id
    # (The presenter's copy is in parts of their own: see bot.engine.posted_notes.)
    refs = (f"notes:{session.id}", posted_notes.part_ref(session.id, posted_notes.PRESENTER, 0))
    if copied and not any(slack.enqueued(s, session.team_id, r, facilitator) for r in refs):
        notes_to(engine, s, session, facilitator)


def presenter_copy_failed(engine: Engine, s: Session, row: OutboxMessage) -> None:
    """The presenter's copy of the notes could not be sent to them (their account deactivated,
    messages from apps turned off): the facilitator hears so, once, where they would otherwise
    take it for delivered (`end` said it was on its way)."""
    session_id = slack.ref_session(row.ref, "notes")
    session = s.get(ProtocolSession, session_id) if session_id is not None else None
    if session is None or row.channel_id != session.presenter_id:
        return
    if session.facilitator_id == session.presenter_id:
        return
    ref = f"{NOTICE}:{session.id}:presenter_notes"
    if slack.enqueued(s, row.team_id, ref):
        return  # one word, however many parts the notes came in
    message = render_message(
        "presenter_copy_failed.j2",
        session=session,
        protocol_name=engine.protocol_name(session.protocol_id),
        error=row.error or "unknown",
    )
    engine.post(s, session, message, channel=session.facilitator_id, ref=ref)


def tell_held_up(engine: Engine, s: Session, row: OutboxMessage) -> bool:
    """A post to a session's channel that Slack keeps failing, or keeps asking the bot to wait
    for: the facilitator hears that posts there are held up and the bot keeps trying, rather
    than nothing until it is given up on (a day, in an outage). True when they were told."""
    if row.method not in TOLD_ABOUT or row.channel_id.startswith(("U", "W", "D")):
        return False
    session = _session_of(s, row)
    if session is None or session.status == "cancelled":
        return False
    limited = row.failing_since is None  # only asked to wait (429s), never failed
    _tell(engine, s, session, row, "delivery_held_up.j2", _held_up(row), limited=limited)
    return True


def tell_through(engine: Engine, s: Session, row: OutboxMessage) -> None:
    """A post the facilitator was told was held up went through: they hear it did, unless the
    note that it was held up has not been tried yet (Slack held it back too), which is then
    not sent at all."""
    note = s.scalars(
        select(OutboxMessage).where(
            OutboxMessage.team_id == row.team_id, OutboxMessage.ref == _held_up(row)
        )
    ).first()
    if note is not None and note.status == "pending" and note.in_flight_at is None:
        s.delete(note)
        return
    session = _session_of(s, row)
    if session is not None:
        _tell(engine, s, session, row, "delivery_through.j2", None)


def _tell(
    engine: Engine,
    s: Session,
    session: ProtocolSession,
    row: OutboxMessage,
    template: str,
    ref: str | None,
    **context: Any,
) -> None:
    """A private note to the session's facilitator about one of its channel's posts."""
    message = render_message(
        template,
        session=session,
        protocol_name=engine.protocol_name(session.protocol_id),
        what=_what(row),
        **context,
    )
    engine.post(s, session, message, channel=session.facilitator_id, ref=ref)


def _held_up(row: OutboxMessage) -> str:
    """The ref of the note that a post is held up."""
    return f"held_up:{row.id}"


def _notice(session: ProtocolSession, row: OutboxMessage) -> str:
    """The ref of the note about a session's posts refused for one reason: one note each."""
    return f"{NOTICE}:{session.id}:{row.error or 'unknown'}"[:64]


def _session_of(s: Session, row: OutboxMessage) -> ProtocolSession | None:
    for ref in (row.ref, row.thread_ref):
        session_id = slack.ref_session(ref, "header", "step")
        if session_id is not None:
            session = s.get(ProtocolSession, session_id)
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
