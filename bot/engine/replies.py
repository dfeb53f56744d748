"""Replies in a step's thread become contributions: recorded, tagged, re-tagged, edited, deleted.

Here the bot keeps the protocol's norms as a facilitator would: it asks for the evidence behind a
judgment made while describing, keeps the presenter's replies in a silent step as their own notes,
and parks questions to a silent presenter for the step where they speak.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Row, Select, bindparam, or_, select, true, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from bot import retention, slack
from bot.activity import ACTIVITY, REPLIES
from bot.blocks import Message, render_message
from bot.clock import as_utc
from bot.engine import notes as notes_mod
from bot.engine import posted_notes
from bot.engine.core import Engine, step_thread_ref
from bot.engine.errors import NotYet, Refusal, Reply
from bot.engine.judgment import (
    asks_presenter_for_context,
    feedback_mark,
    reads_as_interpretation,
    strip_tag_prefix,
)
from bot.engine.presenter import next_presenter_step, opens_presenter_turn, presenter_turn
from bot.engine.tags import REACTIONS, TAG_BY_REACTION
from bot.protocols import Protocol, Step
from bot.render import SLACK_MARKUP, render_text, unescape_mrkdwn
from bot.store import raw
from bot.store.models import ACTIVE, Contribution, OutboxMessage, ProtocolSession, StepRun

log = logging.getLogger(__name__)

# The ref of a word about replies that reached the bot after the notes went out.
LATE = posted_notes.LATE
# How long a reply in a thread the bot can't place yet is kept for another look.
IN_FLIGHT_PATIENCE = timedelta(seconds=60)
# How long after a message was written Slack may still deliver it: it tries a delivery that
# failed again at once, a minute later and five minutes later.
LATE_DELIVERY_PATIENCE = timedelta(minutes=7)

# Set on an event of a channel that several workspaces may share (bot.inbox.event_of): the
# org whose workspaces may, or ANY_WORKSPACE in a Slack Connect channel. See Replies.whose.
SHARED_CHANNEL = "shared_with"
ANY_WORKSPACE = "*"
# A person's reply: typed, also sent to the channel, sharing a file, or written with /me.
REPLY_SUBTYPES = (None, "thread_broadcast", "file_share", "me_message")
# Reminders of who speaks, where a question waits, and that a step has closed: said once to a
# person in a step (their later replies there go the same way). The judgment nudge is about one
# reply, with buttons for it, so each such reply gets its own.
ONCE_A_STEP = {
    "presenter_listens.j2": "listens",
    "group_listens.j2": "listens",
    "parked_question.j2": "parked",
    "step_closed.j2": "closed",
    "header_reply.j2": "header_reply",
    "several_tags.j2": "several_tags",
}
# Said once to a person in a session: that a reply written after it ended is not in its notes,
# and that a message at the channel's top level while it runs is not in them either.
ONCE_A_SESSION = {"after_the_end.j2": "after_end", "top_level.j2": "top_level"}
# How long after a session ends a reply in a step's thread is told so: a teacher catching up on
# a day-long session writes within days; a thread talked in months on is just talk.
TOLD_AFTER_THE_END = timedelta(days=3)
# The audience of a reply deleted in Slack (see Contribution.audience). Slack may deliver a
# deletion, or an edit, before the message itself (retries after downtime): the row stays, empty,
# and the late message's insert meets it and records nothing.
DELETED = notes_mod.DELETED

# The step a thread belongs to, with what handling a reply needs of its session.
_OPEN_STEP_COLUMNS = (
    ProtocolSession.id,
    ProtocolSession.protocol_id,
    ProtocolSession.status,
    ProtocolSession.presenter_id,
    ProtocolSession.current_step,
    StepRun.index.label("step_index"),  # a Row's .index is the tuple's method
    StepRun.ended_at,
    ProtocolSession.ended_at.label("session_ended_at"),
)
_OPEN_STEP = (
    select(*_OPEN_STEP_COLUMNS)
    .join(StepRun, StepRun.session_id == ProtocolSession.id)
    .where(
        StepRun.message_ts == bindparam("thread_ts"),
        ProtocolSession.team_id == bindparam("team_id"),
        ProtocolSession.channel_id == bindparam("channel"),
    )
)
# The same for many threads at once, each row led by its thread's key (see look_ahead).
_OPEN_STEPS = (
    select(
        ProtocolSession.team_id, ProtocolSession.channel_id, StepRun.message_ts, *_OPEN_STEP_COLUMNS
    )
    .join(StepRun, StepRun.session_id == ProtocolSession.id)
    .where(
        tuple_(ProtocolSession.team_id, ProtocolSession.channel_id, StepRun.message_ts).in_(
            bindparam("threads", expanding=True)
        )
    )
)
# Session.info key: the open steps look_ahead read for a batch, by (team, channel, thread ts).
_LOOKED_AHEAD = "replies_looked_ahead"


class _Open(NamedTuple):
    id: int  # the session's
    protocol_id: str
    status: str
    presenter_id: str
    current_step: int
    step_index: int
    ended_at: datetime | None
    session_ended_at: datetime | None


class _Over(NamedTuple):
    """A step's thread in a session that has ended: what is written there now is not kept."""

    id: int  # the session's
    ended_at: datetime | None


# A reply is known by its channel and ts.
_AT_TS = (
    Contribution.team_id == bindparam("team_id"),
    Contribution.channel_id == bindparam("channel"),
    Contribution.ts == bindparam("ts"),
)
# A second delivery of a reply already recorded inserts nothing and returns no id. One
# statement where a look first took two: on SQLite, each gives the GIL up and waits to have it
# back, and under load that wait, not the work, is most of a reply's time in its lane. The
# PostgreSQL construct compiles for SQLite as well (ON CONFLICT ... DO NOTHING).
_RECORD = (
    postgresql.insert(Contribution)
    .on_conflict_do_nothing(index_elements=["team_id", "channel_id", "ts"])
    .returning(Contribution.id)
)
_RECORD_COLUMNS = [
    "team_id",
    "channel_id",
    "ts",
    "session_id",
    "step_index",
    "user_id",
    "user_name",
    "thread_ts",
    "text",
    "edited_ts",
    "tag",
    "audience",
    "created_at",
    "updated_at",
]
# Run by the driver alone (bot.store.raw): these run for every reply.
_OPEN_STEP_RUN = raw.Statement(_OPEN_STEP)
_RECORD_RUN = raw.Statement(_RECORD, _RECORD_COLUMNS)
# PostgreSQL: the reply and its tag reaction's outbox row in one statement, which returns both
# ids, or no row for a second delivery (it inserts neither). Each statement there costs the
# lane and the server a round trip and its handling; SQLite has no INSERT in a WITH, and there a
# statement costs little.
_RECORDED = (
    postgresql.insert(Contribution)
    .values({c: bindparam(c, type_=Contribution.__table__.c[c].type) for c in _RECORD_COLUMNS})
    .on_conflict_do_nothing(index_elements=["team_id", "channel_id", "ts"])
    .returning(Contribution.id)
    .cte("recorded")
)
_REACTION = "reaction_"
_REACTED = slack.enqueued_from(_RECORDED, _REACTION)
_RECORD_AND_REACT = raw.Statement(
    select(_RECORDED.c.id, _REACTED.c.id).join_from(_RECORDED, _REACTED, true())
)


# The norms an edit is read for as a new reply is: what it says, not who says it or where.
_EDIT_NORMS = frozenset({"nudge_interpretation.j2", "parked_question.j2"})


def _forget_in_session(session: ProtocolSession, user_id: str) -> tuple[bool, bool]:
    """A person's words and name kept with a session they presented, facilitated or booked:
    whether there was any, and whether it was what they wrote as its presenter (which the bot's
    posts quoted)."""
    named = bool(session.names and user_id in session.names)
    if named:
        session.names = {k: v for k, v in (session.names or {}).items() if k != user_id}
    prep = session.prep or {}
    wrote = False
    if session.presenter_id == user_id or prep.get("submitted_by") == user_id:
        unwritten = retention.without_written(prep)
        wrote = session.statement is not None or unwritten != prep
        session.statement = None
        if unwritten != prep:
            session.prep = unwritten
    return named or wrote, wrote


def shared_channel_teams(channel: str, shared_with: str) -> Select[str]:
    """The workspaces with sessions in a channel workspaces share (`shared_with`: the org's id,
    or any workspace's)."""
    query = select(ProtocolSession.team_id).where(ProtocolSession.channel_id == channel)
    if shared_with != ANY_WORKSPACE:
        query = query.where(ProtocolSession.enterprise_id == shared_with)
    return query


def _running_in(
    s: Session, team_id: str, channel: str, *, lock: bool = False
) -> ProtocolSession | None:
    """The channel's running (or paused) session, if it has one; with `lock`, its row locked
    until the transaction ends."""
    query = select(ProtocolSession).where(
        ProtocolSession.team_id == team_id,
        ProtocolSession.channel_id == channel,
        ProtocolSession.status.in_(ACTIVE),
    )
    return s.scalars(query.with_for_update() if lock else query).first()


class Replies:
    """Event handling for the threads under step messages."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def handle(self, team_id: str, event: dict[str, Any]) -> None:
        team_id = self.whose(team_id, event)
        if event.get("type") == "reaction_added":
            self.reacted(team_id, event)
        elif event.get("type") == "reaction_removed":
            self.unreacted(team_id, event)
        elif event.get("type") == "message":
            self._message(team_id, event)

    def _message(self, team_id: str, event: dict[str, Any]) -> None:
        subtype = event.get("subtype")
        if subtype == "message_changed":
            self.edited(team_id, event)
        elif subtype == "message_deleted":
            channel, ts = str(event.get("channel")), str(event.get("deleted_ts"))
            self.deleted(team_id, channel, ts, event.get("previous_message") or {})
        elif subtype in REPLY_SUBTYPES and not event.get("bot_id"):
            self.replied(team_id, event)

    def whose(self, team_id: str, event: dict[str, Any]) -> str:
        """The workspace whose session an event is about. In a Slack Connect channel that two
        workspaces both installed the app in, Slack names either installation in an event's
        authorizations, and in a channel shared by workspaces of an Enterprise Grid org, the
        workspace of whoever wrote: a reply in one's step thread came named for the other, and
        was lost. There the thread (or the reacted reply) tells; else the session running in
        the channel."""
        shared_with = event.get(SHARED_CHANNEL)
        if not shared_with:
            return team_id
        item = event.get("item") or {}
        channel = str(event.get("channel") or item.get("channel") or "")
        thread = (
            event.get("thread_ts")
            or (event.get("message") or {}).get("thread_ts")
            or (event.get("previous_message") or {}).get("thread_ts")
        )
        in_channel = shared_channel_teams(channel, str(shared_with))
        if thread:
            steps = select(StepRun.session_id).where(StepRun.message_ts == str(thread))
            heading = or_(ProtocolSession.header_ts == str(thread), ProtocolSession.id.in_(steps))
        elif item.get("ts"):
            replies = select(Contribution.session_id).where(
                Contribution.channel_id == channel, Contribution.ts == str(item["ts"])
            )
            heading = ProtocolSession.id.in_(replies)
        else:
            heading = None
        with self.engine.db.reading() as s:
            for where in (heading, ProtocolSession.status.in_(ACTIVE)):
                if where is None:
                    continue
                teams = set(s.scalars(in_channel.where(where)))
                if teams:
                    return team_id if team_id in teams else min(teams)
        return team_id

    @staticmethod
    def look_ahead(s: Session, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Read the open steps of a batch's replies in one query, for their handling in `s`'s
        transaction to find (_open_step). For PostgreSQL's lanes, where each statement costs
        the clock and the server several times what it costs on SQLite (there it saved nothing
        measurable, and isn't used)."""
        threads = {
            (team_id, str(event["channel"]), str(event["thread_ts"]))
            for team_id, event in events
            if event.get("channel") and event.get("thread_ts")  # what replied() looks up
        }
        if not threads:
            return
        found: dict[tuple[str, str, str], tuple[Any, ...] | None] = dict.fromkeys(threads)
        seen: set[tuple[str, str, str]] = set()
        for row in s.execute(_OPEN_STEPS, {"threads": list(threads)}):
            key = (str(row[0]), str(row[1]), str(row[2]))  # message_ts is set: it matched
            if key in seen:
                found.pop(key, None)  # more than one step: _open_step reads it as before
            else:
                seen.add(key)
                found[key] = tuple(row[3:])
        s.info[_LOOKED_AHEAD] = found

    @staticmethod
    def _open_step(
        s: Session,
        team_id: str,
        channel: str,
        thread_ts: str,
        ts: str | None = None,
        *,
        fresh: bool = False,
    ) -> _Open | _Over | None:
        """The session and step whose message heads this thread, if it still collects replies
        (plain columns: this runs for every reply); _Over if it heads a step of a session that
        has ended. Unless `fresh`, what look_ahead read for the transaction's batch stands in
        for the query."""
        ahead = None if fresh else s.info.get(_LOOKED_AHEAD)
        thread = (team_id, channel, thread_ts)
        if ahead is not None and thread in ahead:
            row = ahead[thread]
        else:
            key = {"team_id": team_id, "channel": channel, "thread_ts": thread_ts}
            row = _OPEN_STEP_RUN.first(s, key)
        if row is None:
            return None
        found = _Open(*row)
        # Replies to a session that is over are not collected. A reply written before its step
        # closed still counts when it is handled later (a retry from Slack, a process that died
        # between the ack and the handling): its ts says when.
        if found.ended_at is not None:
            if _written_before(ts, found.ended_at) or found.status in ACTIVE:
                # A step closed while its session runs on still collects: a teacher catching up
                # on an earlier step is heard there (PRODUCT 3.3: a reply in a step's thread is
                # a contribution).
                return found
            # A step posted late (the bot was down past its close) closes on its planned
            # boundary, before anyone saw it: it was still the newest step until the next one's
            # message appeared, and what was written in its thread by then counts.
            shown_until = _next_step_shown_at(s, found)
            if shown_until is not None and _written_before(ts, shown_until):
                return found
        if found.status == "ended":
            return _Over(found.id, found.session_ended_at)
        if found.status not in ("running", "paused"):
            return None
        return found

    def _post_in_flight(self, s: Session, team_id: str, channel: str, ts: str) -> bool:
        """A recent reply may be in the thread of a step message whose ts the bot hasn't learned
        yet (the sender died between Slack's answer and its commit, or Slack's answer was lost
        and the sender is still to find the message): worth another look soon. So too once the
        session has just ended (a facilitator's `end` a moment after `next`): what was written
        in the step's thread before then still counts, once the bot knows the thread."""
        now = self.engine.clock.now()
        if _written_before(ts, now - IN_FLIGHT_PATIENCE):
            return False
        unconfirmed = s.scalars(
            select(StepRun.id)
            .join(ProtocolSession, ProtocolSession.id == StepRun.session_id)
            .where(
                ProtocolSession.team_id == team_id,
                ProtocolSession.channel_id == channel,
                ProtocolSession.status.in_(ACTIVE)
                | (
                    (ProtocolSession.status == "ended")
                    & (ProtocolSession.ended_at >= now - IN_FLIGHT_PATIENCE)
                ),
                StepRun.message_ts.is_(None),
            )
            .limit(1)
        ).first()
        return unconfirmed is not None

    def _step_of(
        self, s: Session, team_id: str, channel: str, thread_ts: str, ts: str
    ) -> _Open | _Over | None:
        """The open step a reply belongs to (_open_step), or NotYet while it may be one whose
        message's ts the bot is still to learn."""
        found = self._open_step(s, team_id, channel, thread_ts, ts)
        if found is None:
            if self._post_in_flight(s, team_id, channel, ts):
                raise NotYet("a step message of this channel is not confirmed yet")
            # Its ts may have been recorded between the two reads (PostgreSQL reads what is
            # committed at each statement): a ts once recorded stays, so look once more.
            found = self._open_step(s, team_id, channel, thread_ts, ts, fresh=True)
        return found

    def replied(self, team_id: str, event: dict[str, Any], edited_at: str | None = None) -> None:
        """A reply as Slack delivers it; or, with `edited_at` (when it was edited), as an edit
        of a reply not recorded holds it (see edited)."""
        thread_ts, ts = event.get("thread_ts"), event.get("ts")
        user, channel = event.get("user"), event.get("channel")
        raw = _markup(event)
        names = self._names(team_id, raw, str(user or ""))
        typed = _as_typed(raw, names).strip()
        text = _with_files(typed, self._seen_files(team_id, event))
        explicit, kept = _prefix(raw, text, names)
        # A tag prefix alone ("O:", sent before the words) says nothing yet: its edit, when the
        # words come, is recorded as the reply (see edited). A nod (`+1`, an emoji) is not one.
        if not thread_ts or not ts or thread_ts == ts or not user or not channel or not kept:
            return
        if _nod(kept):
            return
        engine = self.engine
        with engine.transaction() as (s, after):
            found = self._step_of(s, team_id, channel, thread_ts, ts)
            if found is None:
                self._under_header(s, team_id, channel, thread_ts, user)
                return
            if isinstance(found, _Over):
                self._after_the_end(s, found, user, thread_ts)
                return
            if found.status == "ended" and _delivered_by(ts, edited_at) and _purged(s, found.id):
                # Edited once Slack had delivered the reply, and not recorded: retention deleted
                # it. A typo fixed, or a link's preview changed, does not bring it back. (One
                # whose event was lost is recorded from its edit, and told as one more reply.)
                return
            # A session whose protocol is no longer installed still records replies (as notes).
            protocol = engine.shown_protocol(s, found)
            step = protocol.step(found.step_index)
            # Only words typed are judged: a photo's file name, or a link's address (a "?"
            # and words of its own), is not a reading of the work.
            tag, audience, norm = self._read(
                found.presenter_id, step, user, explicit, _as_said(raw, names)
            )
            now = engine.clock.now()
            # Core, not the ORM: the unit of work cost more CPU than the rest of the reply.
            values = _row(team_id, channel, ts, thread_ts, found, user, kept, tag, audience, now)
            values["user_name"] = names.get(user)
            # Recorded from an edit delivered before the message itself (see edited).
            values["edited_ts"] = _edited_ts(event)
            reaction = slack.Pending(
                s,
                now=now,
                team_id=team_id,
                channel=channel,
                method="reactions.add",
                payload={"channel": channel, "timestamp": ts, "name": REACTIONS[tag]},
                hand_to=engine.sender,
            )
            recorded: Sequence[Any] | None
            if engine.db.is_postgres:
                values.update(reaction.named(_REACTION))
                recorded = _RECORD_AND_REACT.first(s, values)
                if recorded is not None:
                    reaction.put(recorded[1])
            else:
                recorded = _RECORD_RUN.first(s, values)
                if recorded is not None:
                    reaction.insert(at_once=True)
            if recorded is None:
                reaction.dropped()
                return  # a duplicate delivery of a reply already recorded
            contribution_id = recorded[0]
            after(lambda: ACTIVITY.count(REPLIES))
            if found.status == "ended" and audience == "group":
                # Written before the end, handled after it (Slack's retry, a busy moment): the
                # notes went out without it.
                self._late_for_the_notes(s, found.id, protocol, contribution_id)
            elif found.status == "ended" and audience == "presenter":
                # A note of the presenter's alone: their copy, which lists such notes, is
                # edited to hold it (the group's notes and file don't).
                self._notes_changed(s, found.id)
            if (
                found.ended_at is not None
                and found.status in ACTIVE
                and not _written_before(ts, found.ended_at)
            ):
                # Written after its step closed: where the group is now. A reply written while
                # the step was open and delivered after it closed was on time.
                self._closed(s, found, user, thread_ts, audience)
                if audience == "presenter":
                    norm = None  # its message says where the note went: one message, not two
            others = _later_tags(kept, tag) if norm is None and audience == "group" else []
            if others:
                norm = "several_tags.j2"
            if norm is not None:
                session = s.get(ProtocolSession, found.id)
                assert session is not None  # just read, in this transaction
                self._ephemeral(
                    s,
                    session,
                    user,
                    thread_ts,
                    norm,
                    protocol=protocol,
                    step=step,
                    index=found.step_index,
                    # the nudge's buttons carry the contribution's id
                    contribution={"id": contribution_id, "text": kept},
                    tag=tag,
                    others=others,
                    **_steps_ahead(protocol, found.step_index, session),
                )

    def _under_header(
        self, s: Session, team_id: str, channel: str, thread_ts: str, user: str
    ) -> None:
        """A reply in the thread of a running session's header (its first message, with the
        norms; the notes come there at the end) is not a step's: its author hears, once a step,
        that it isn't kept, and where to write it so that it is. A reply in another thread of
        the channel (under a teacher's own message) is told as a message at its top level is."""
        session = s.scalars(
            select(ProtocolSession).where(
                ProtocolSession.team_id == team_id,
                ProtocolSession.channel_id == channel,
                ProtocolSession.header_ts == thread_ts,
                ProtocolSession.status.in_(ACTIVE),
            )
        ).first()
        template = "header_reply.j2"
        if session is None:
            session, template = _running_in(s, team_id, channel), "top_level.j2"
        if session is None or not session.current_step:
            return
        self._where_to_write(s, session, user, thread_ts, template)

    def top_level(self, team_id: str, event: dict[str, Any]) -> None:
        """A message at a channel's top level, not in a thread: while a session runs there, its
        author hears, once a session, that it isn't kept for the notes and where to write what
        is meant for them. Such talk is not stored before its ack (most of what Slack sends is
        this): a word lost to a stop is a courtesy missed, not a reply lost."""
        user, channel = event.get("user"), event.get("channel")
        if not user or not channel:
            return
        team_id = self.whose(team_id, event)
        with self.engine.db.reading() as s:
            # Most of a channel's talk comes with no session running there: a read says so,
            # where a transaction would take SQLite's write lock for every message.
            if _running_in(s, team_id, str(channel)) is None:
                return
        with self.engine.transaction() as (s, _after):
            # Locked: a channel's messages are answered side by side, and on PostgreSQL two at
            # once each found the author not told yet, and told them twice.
            session = _running_in(s, team_id, str(channel), lock=True)
            if session is None or not session.current_step:
                return
            self._where_to_write(s, session, str(user), None, "top_level.j2")

    def _where_to_write(
        self,
        s: Session,
        session: ProtocolSession,
        user: str,
        thread_ts: str | None,
        template: str,
    ) -> None:
        """Tell `user` that what they wrote outside the steps' threads isn't kept, and which
        step's thread is the group's now."""
        protocol = self.engine.shown_protocol(s, session)
        current = protocol.step(session.current_step)
        context = {
            "index": session.current_step,
            "current": current,
            # Written in that step's thread, the presenter's words are a note for them alone.
            "listening": user == session.presenter_id and current.presenter == "silent",
        }
        self._ephemeral(s, session, user, thread_ts, template, **context)

    def _after_the_end(self, s: Session, over: _Over, user: str, thread_ts: str) -> None:
        """A reply in a step's thread after its session ended is the author's and the group's
        own talk, not kept. Someone catching up on a session that ended lately may think it
        counts: they hear, once a session, that the notes went out without it. While another
        session runs in the channel, the reply is told as one in a thread that is none of its
        steps' is: where the group is now (last week's thread, answered for this week's)."""
        session = s.get(ProtocolSession, over.id)
        assert session is not None  # just read, in this transaction
        running = _running_in(s, session.team_id, session.channel_id)
        if running is not None and running.current_step:
            self._where_to_write(s, running, user, thread_ts, "top_level.j2")
            return
        now = self.engine.clock.now()
        if over.ended_at is None or now - as_utc(over.ended_at) > TOLD_AFTER_THE_END:
            return
        self._ephemeral(s, session, user, thread_ts, "after_the_end.j2")

    def _names(self, team_id: str, raw: str, author: str = "") -> dict[str, str]:
        """The names of a reply's author (for the notes file and exports) and of the people and
        channels it mentions by id alone: Slack sends `<@U123>` and `<#C123|>`, without the name
        the reader saw. Asked before any transaction: Slack may be slow."""
        people = [author, *_BARE_MENTION.findall(raw)] if author else _BARE_MENTION.findall(raw)
        return self.engine.directory.names(team_id, people) if people else {}

    def _seen_files(self, team_id: str, message: dict[str, Any]) -> dict[str, Any]:
        """The message with each file Slack sent as a stub to ask about (`"file_access":
        "check_file_info"`: the bot may see it, but was not given it yet) as files.info gives
        it, where Slack says. Asked before any transaction: Slack may be slow."""
        files = message.get("files")
        if not isinstance(files, list) or not any(_to_ask(f) for f in files):
            return message
        seen = [
            (self.engine.directory.file(team_id, str(f["id"])) or f) if _to_ask(f) else f
            for f in files
        ]
        return {**message, "files": seen}

    def _closed(self, s: Session, found: _Open, user: str, thread_ts: str, audience: str) -> None:
        """A reply kept in the thread of a step that has closed while its session runs on: its
        author hears, once a step, that the group has moved on, and where to; the presenter,
        that their reply is a private note (as while the step was open)."""
        session = s.get(ProtocolSession, found.id)
        assert session is not None  # just read, in this transaction
        protocol = self.engine.shown_protocol(s, session)
        turn = next_presenter_step(protocol, found.step_index)
        current = protocol.step(session.current_step)
        context = {
            "step": protocol.step(found.step_index),
            "index": found.step_index,
            "current": current,
            # The presenter is not sent to join in a step where they listen.
            "listening": user == session.presenter_id and current.presenter == "silent",
            "protocol": protocol,
            "private": audience == "presenter",
            "presenter_step": _not_open_yet(turn, session),
        }
        self._ephemeral(s, session, user, thread_ts, "step_closed.j2", **context)

    def _late_for_the_notes(
        self, s: Session, session_id: int, protocol: Protocol, contribution_id: int
    ) -> None:
        """A reply the notes missed, added below them: in the header's thread and to the
        presenter. Replies that come late together (Slack's retries after an outage) go out
        together: while the last such word is still waiting for the sender, it is written
        again with this reply in it, rather than one more word for each."""
        session = s.get(ProtocolSession, session_id)
        assert session is not None  # just read, in this transaction
        first = contribution_id
        waiting = self._late_waiting(s, session)
        if waiting is not None:
            first, rows = waiting
            for row in rows:
                s.delete(row)
            s.flush()
        messages = posted_notes.late_messages(s, session, protocol, first, None)
        posted_notes.post_late(self.engine, s, session, first, messages)
        # The notes file shared at the end holds what the notes hold: this reply too.
        posted_notes.refresh(self.engine, s, session, parts=False)

    @staticmethod
    def _late_waiting(
        s: Session, session: ProtocolSession
    ) -> tuple[int, list[OutboxMessage]] | None:
        """The session's last word of late replies, if the sender has taken none of it yet:
        the first reply it holds, and its rows (held, on PostgreSQL, so the sender can't)."""
        prefix = f"{LATE}:{session.id}:"
        last = s.scalars(
            select(OutboxMessage.ref)
            .where(OutboxMessage.team_id == session.team_id, OutboxMessage.ref.like(prefix + "%"))
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        ).first()
        # The word's parts have refs of their own (see bot.engine.posted_notes.late_base).
        first = (last or "").removeprefix(prefix).partition(":")[0]
        if not last or not first.isdigit():
            return None
        word = f"{prefix}{first}"
        mine = (
            OutboxMessage.team_id == session.team_id,
            or_(OutboxMessage.ref == word, OutboxMessage.ref.like(f"{word}:%")),
        )
        every = s.scalars(select(OutboxMessage.id).where(*mine)).all()
        untaken = s.scalars(
            select(OutboxMessage)
            .where(
                *mine,
                OutboxMessage.status == "pending",
                OutboxMessage.in_flight_at.is_(None),
                OutboxMessage.attempts == 0,
            )
            .with_for_update(skip_locked=True)
        ).all()
        if len(untaken) != len(every):
            return None  # some of it is on its way: the next reply gets a word of its own
        return int(first), list(untaken)

    @staticmethod
    def _read(
        presenter_id: str | None, step: Step, user: str, explicit: str | None, text: str
    ) -> tuple[str, str, str | None]:
        """The reply's tag, its audience, and the template of the norm it calls for (if any)."""
        silent = step.presenter == "silent"
        if user == presenter_id and silent:
            return "note", "presenter", "presenter_listens.j2"
        # Only the presenter speaks: the others read along, and what they say is kept as a note;
        # a question to the presenter (the context they keep back in the Collaborative Assessment
        # Conference's Getting Started) is parked for the step where they next speak.
        if user != presenter_id and step.presenter == "only":
            if explicit == "question" or (explicit is None and asks_presenter_for_context(text)):
                return "question", "group", "parked_question.j2"
            return explicit or "note", "group", "group_listens.j2"
        # The presenter asking the group something is not a question for the presenter.
        if user == presenter_id and (
            explicit == "question" or (explicit is None and step.collects == "question")
        ):
            return "note", "group", None
        if explicit is None and step.collects in ("warm", "cool"):
            explicit = feedback_mark(text)  # ":snowflake: no exemplar" is cool feedback
        if explicit is not None and explicit != "question":
            return explicit, "group", None
        # The quest for context: what the presenter was asked to withhold waits for their step.
        if (
            silent
            and step.collects != "question"
            and (explicit == "question" or asks_presenter_for_context(text))
        ):
            return "question", "group", "parked_question.j2"
        if explicit is None and step.collects == "observation" and reads_as_interpretation(text):
            return "observation", "group", "nudge_interpretation.j2"
        return explicit or step.collects, "group", None

    def _ephemeral(
        self,
        s: Session,
        session: ProtocolSession,
        user: str,
        thread_ts: str | None,
        template: str,
        **context: Any,
    ) -> None:
        ref = f"nudge:{session.id}"
        if template in ONCE_A_STEP:
            ref = f"{ONCE_A_STEP[template]}:{session.id}:{context['index']}:{user}"
            if slack.enqueued(s, session.team_id, ref):
                return
        if template in ONCE_A_SESSION:
            ref = f"{ONCE_A_SESSION[template]}:{session.id}:{user}"
            if slack.enqueued(s, session.team_id, ref):
                return
        message = render_message(template, session=session, **context)
        payload: dict[str, Any] = {
            "channel": session.channel_id,
            "user": user,
            "text": message.text,
        }
        if thread_ts is not None:  # else in the channel, under what they wrote there
            payload["thread_ts"] = thread_ts
        if message.blocks:
            payload["blocks"] = message.blocks
        # The ref names the session, so that `forget` finds a nudge that quotes a reply.
        self.engine.call(s, session, "chat.postEphemeral", ref=ref, **payload)

    def edited(self, team_id: str, event: dict[str, Any]) -> None:
        message = event.get("message") or {}
        channel, ts = event.get("channel"), message.get("ts")
        if message.get("subtype") == "tombstone":
            # A message with replies deleted: Slack keeps its thread, under a tombstone.
            if channel and ts:
                with self.engine.transaction() as (s, _after):
                    if not self._header_deleted(s, team_id, str(channel), str(ts)):
                        self._step_post_tombstoned(s, team_id, str(channel), str(ts))
            return
        raw = _markup(message)
        names = self._names(team_id, raw)
        typed = _as_typed(raw, names).strip()
        # A caption taken away leaves the files shared.
        text = _with_files(typed, self._seen_files(team_id, message))
        if not channel or not ts:
            return
        with self.engine.transaction() as (s, _after):
            row = self._find(s, team_id, channel, ts)
            version = _edited_ts(message) or str(event.get("ts") or "") or None
            if row is not None and row.audience != DELETED and _newer(version, row.edited_ts):
                previous = event.get("previous_message") or {}
                before = (row.text, row.tag, row.audience)
                read = _prefix(raw, text, names)
                self._edit(s, row, read, _as_said(raw, names), previous, version)
                if (row.text, row.tag, row.audience) != before:
                    self._notes_changed(s, row.session_id)
                    self._parked_changed(s, [(row, {before[1], row.tag})])
        # Never recorded, or not yet: Slack may deliver an edit before the message itself, and
        # then the edit is the reply as it stands (the message, when it comes, is a duplicate).
        if row is None and _reply_in_thread(message):
            self.replied(team_id, {**message, "channel": channel}, edited_at=version)

    def _edit(
        self,
        s: Session,
        row: Contribution,
        read: tuple[str | None, str],
        said: str,
        previous: dict[str, Any],
        version: str | None = None,
    ) -> None:
        explicit, text = read
        if (not text and explicit is not None) or _nod(text):
            # Edited down to a tag prefix alone: its words are on their way (as a new reply's
            # are, see replied); until they come, the reply keeps the words it had. So too when
            # edited down to a nod: what it said is not lost, and comes back with its next edit.
            return
        if not text:
            self._delete(s, row)
            return
        row.text = text
        row.edited_ts = version
        row.updated_at = self.engine.clock.now()
        if row.audience != "group":
            return
        if explicit is not None:
            before = _markup(previous)
            if row.retagged_from is not None and _prefix(before, _as_typed(before))[0] == explicit:
                return  # the prefix as it was (a typo fixed): a re-tag by reaction since stands
            row.retagged_from = None  # the author's prefix is their word: no reaction undoes it
        else:
            explicit = self._unprefixed(s, row, previous, said)
        if explicit and explicit != row.tag:
            self.retag(s, row, explicit)
        elif explicit is None:
            self._read_on_edit(s, row, said, previous)

    def _read_on_edit(
        self, s: Session, row: Contribution, said: str, previous: dict[str, Any]
    ) -> None:
        """A reply edited into one a norm speaks to (a judgment while describing, a question for
        the presenter while they listen) is read as the same words sent new would be: parked,
        and its author told, once (not for an edit of a reply that read so already). Once the
        session has ended, its tag still follows its words (feedback's :sunny: edited to
        :snowflake:, as a prefix's edit does), and nobody is told anything."""
        session = s.get(ProtocolSession, row.session_id)
        if session is None:
            return
        protocol = self.engine.shown_protocol(s, session)
        step = protocol.step(row.step_index)
        before = _as_said(_markup(previous), {})
        tag, audience, norm = self._read(session.presenter_id, step, row.user_id, None, said)
        if row.tag != step.collects:
            # Parked by how its words read (a question for the presenter), not re-tagged since:
            # edited into words that don't read so, it goes back to the step's own kind.
            was = self._read(session.presenter_id, step, row.user_id, None, before)[0]
            parked = row.retagged_from is None and was == row.tag
            if parked and audience == "group" and tag == step.collects:
                self.retag(s, row, tag)
            return  # otherwise tagged by a reaction or the nudge's buttons: their call stands
        if audience == "group" and norm is None and tag != row.tag and row.retagged_from is None:
            # Words that read as another kind without a norm's say (feedback opened with the
            # emoji of its kind): tagged as they would be sent new.
            self.retag(s, row, tag)
            return
        if audience != "group" or norm not in _EDIT_NORMS or session.status not in ACTIVE:
            return
        if self._read(session.presenter_id, step, row.user_id, None, before)[2] == norm:
            return  # told (or not) when it read so the first time
        if tag != row.tag:
            self.retag(s, row, tag)
        self._ephemeral(
            s,
            session,
            row.user_id,
            row.thread_ts,
            norm,
            protocol=protocol,
            step=step,
            index=row.step_index,
            contribution={"id": row.id, "text": row.text},
            **_steps_ahead(protocol, row.step_index, session),
        )

    def _unprefixed(
        self, s: Session, row: Contribution, previous: dict[str, Any], text: str
    ) -> str | None:
        """The tag of a reply whose edit took away the prefix that tagged it: what the reply
        would have had without one. None when the tag did not come from that prefix (a re-tag
        by reaction or by the nudge's button is deliberate, and stays)."""
        raw = _markup(previous)
        before, _ = _prefix(raw, _as_typed(raw))
        session = s.get(ProtocolSession, row.session_id)
        if before != row.tag or session is None:
            return None
        protocol = self.engine.shown_protocol(s, session)
        step = protocol.step(row.step_index)
        tag, audience, _norm = self._read(session.presenter_id, step, row.user_id, None, text)
        return tag if audience == "group" else None

    def retag(self, s: Session, row: Contribution, tag: str) -> None:
        session = s.get(ProtocolSession, row.session_id)
        if session is None:
            return
        old = row.tag
        row.tag = tag
        self.engine.call(
            s,
            session,
            "reactions.remove",
            channel=row.channel_id,
            timestamp=row.ts,
            name=REACTIONS[old],
        )
        self.engine.call(
            s,
            session,
            "reactions.add",
            channel=row.channel_id,
            timestamp=row.ts,
            name=REACTIONS[tag],
        )

    def reacted(self, team_id: str, event: dict[str, Any]) -> None:
        """The facilitator or the author reacts with another tag's emoji: re-tag the reply."""
        with self.engine.transaction() as (s, _after):
            found = self._reacted_to(s, team_id, event)
            if found is None:
                return
            row, tag = found
            if row.tag == tag:
                return
            if row.retagged_from is None:
                row.retagged_from = row.tag
            self.retag(s, row, tag)

    def unreacted(self, team_id: str, event: dict[str, Any]) -> None:
        """The facilitator or the author takes away the reaction that re-tagged a reply: it
        gets back the tag it had before."""
        with self.engine.transaction() as (s, _after):
            found = self._taken_back(s, team_id, event)
            if found is None:
                return
            row, _tag = found
            session = s.get(ProtocolSession, row.session_id)
            if session is None:
                return
            whose, message = {session.facilitator_id, row.user_id}, (row.channel_id, row.ts)
        # Re-tagged by two emoji in a row, the one still on it holds. Slack is asked which, with
        # no transaction open meanwhile.
        shown = self._tag_put_on(team_id, whose, *message)
        with self.engine.transaction() as (s, _after):
            found = self._taken_back(s, team_id, event)  # again: it may have changed meanwhile
            if found is None:
                return
            row, _tag = found
            # With none of the tags' emoji left on it, the reply's own tag comes back.
            standing = shown or row.retagged_from
            if shown is None:
                row.retagged_from = None
            if standing is not None and standing != row.tag:
                self.retag(s, row, standing)

    def _taken_back(
        self, s: Session, team_id: str, event: dict[str, Any]
    ) -> tuple[Contribution, str] | None:
        """The reply whose re-tag an emoji taken off takes back, and that tag; None when it
        takes back nothing."""
        found = self._reacted_to(s, team_id, event)
        if found is None:
            return None
        row, tag = found
        if row.tag != tag and row.retagged_from is None and self._added_on_its_way(event):
            # Slack does not keep events in order: the reaction_added this takes back may come
            # after it, and re-tag the reply for good. Looked at again later.
            raise NotYet("a tag's emoji taken off before its putting on was heard")
        if row.tag != tag or row.retagged_from is None:
            return None
        return found

    def _tag_put_on(self, team_id: str, whose: set[str], channel: str, ts: str) -> str | None:
        """The tag of the last tag's emoji that `whose` (the facilitator, the author) have on a
        reply now, as Slack shows it (asked only when a re-tag is taken back: seldom); None
        when there is none, or Slack does not say."""
        shown = self.engine.directory.thread(team_id, channel, ts)
        message = next((m for m in shown if m.get("ts") == ts), {})
        put_on = [
            TAG_BY_REACTION.get(str(reaction.get("name") or "").split("::")[0])
            for reaction in message.get("reactions") or []
            if isinstance(reaction, dict) and whose & set(reaction.get("users") or [])
        ]
        return next((tag for tag in reversed(put_on) if tag is not None), None)

    def _added_on_its_way(self, event: dict[str, Any]) -> bool:
        """A reaction taken off recently enough that its reaction_added, not heard yet, may
        still be delivered (out of order, or again after a failed first delivery)."""
        event_ts = event.get("event_ts")
        if not event_ts:
            return False
        moment = self.engine.clock.now() - LATE_DELIVERY_PATIENCE
        return not _written_before(str(event_ts), moment)

    def _reacted_to(
        self, s: Session, team_id: str, event: dict[str, Any]
    ) -> tuple[Contribution, str] | None:
        """The reply a tag's emoji was put on or taken off, by its session's facilitator or its
        author while the session runs, and that tag; None for any other reaction."""
        item = event.get("item") or {}
        user, channel, ts = event.get("user"), item.get("channel"), item.get("ts")
        # Skin tones arrive as "eyes::skin-tone-2"; unknown emoji are not tags and are ignored.
        tag = TAG_BY_REACTION.get(str(event.get("reaction") or "").split("::")[0])
        if item.get("type") != "message" or tag is None or not user or not channel or not ts:
            return None
        row = self._find(s, team_id, channel, ts)
        if row is None and self._reply_on_its_way(s, team_id, str(channel), str(ts), event):
            raise NotYet("a tag's emoji on a reply not recorded yet")
        if row is None or row.audience != "group":
            return None
        session = s.get(ProtocolSession, row.session_id)
        if session is None or session.status not in ACTIVE:
            return None
        # Anyone else's reaction is just a reaction; the bot's own tag marks land here too.
        if user not in (session.facilitator_id, row.user_id):
            return None
        return row, tag

    def _reply_on_its_way(
        self, s: Session, team_id: str, channel: str, ts: str, event: dict[str, Any]
    ) -> bool:
        """A tag's emoji put on (or taken off) a message not recorded as a reply, by its author
        or (on a message in a step's thread) by the facilitator of the session running in its
        channel, while Slack may still deliver the message: Slack does not keep events in
        order, and a first delivery that failed (the bot was down, the database out of reach)
        comes again a minute, then five, later. Worth another look until then. (Anyone else's
        reaction on a message the bot never heard of is a reaction to something else: ignored
        at once.)"""
        user = event.get("user")
        if not user:
            return False
        if _written_before(ts, self.engine.clock.now() - LATE_DELIVERY_PATIENCE):
            return False
        running = s.execute(
            select(ProtocolSession.id, ProtocolSession.facilitator_id).where(
                ProtocolSession.team_id == team_id,
                ProtocolSession.channel_id == channel,
                ProtocolSession.status.in_(ACTIVE),
            )
        ).all()
        if not running:
            return False
        if event.get("item_user") == user:
            return True
        if user not in {facilitator for _id, facilitator in running}:
            return False
        # A facilitator reacts to all sorts of messages in the channel: only one that Slack
        # shows in a step's thread is a reply on its way (asked of Slack: seldom, and only
        # for a tag's emoji on a message the bot has not recorded).
        shown = self.engine.directory.thread(team_id, channel, ts)
        thread_ts = next((m.get("thread_ts") for m in shown if m.get("ts") == ts), None)
        if not thread_ts or thread_ts == ts:
            return False
        step = s.scalars(
            select(StepRun.id)
            .where(
                StepRun.session_id.in_([session_id for session_id, _f in running]),
                StepRun.message_ts == str(thread_ts),
            )
            .limit(1)
        ).first()
        return step is not None

    def choose(self, team_id: str, user: str, contribution_id: int, *, park: bool) -> Reply:
        """The author's answer to the describe-before-you-interpret nudge: keep it, or park it."""
        with self.engine.transaction() as (s, _after):
            row = s.get(Contribution, contribution_id)
            session = s.get(ProtocolSession, row.session_id) if row is not None else None
            if row is None or session is None or row.team_id != team_id or row.audience == DELETED:
                return Reply("nudge_gone.j2")
            if user != row.user_id:
                raise Refusal("nudge_not_yours.j2", author=row.user_id)
            if session.status not in ACTIVE:
                return Reply("nudge_gone.j2")
            if row.tag not in ("observation", "interpretation") or (
                park and row.edited_ts is not None and not reads_as_interpretation(row.text)
            ):
                # Moved to another tag since (a prefix, a reaction), or edited into words that
                # don't read as a judgment, which are not to be parked (kept as an observation,
                # they are what they now read as): the nudge no longer speaks to it.
                return Reply("nudge_changed.j2", {"tag": row.tag})
            protocol = self.engine.shown_protocol(s, session)
            # Either answer stands as the author's last word: Keep after Park takes it back.
            wanted = "interpretation" if park else "observation"
            if row.audience == "group":
                row.retagged_from = None  # the author's word now: no reaction undoes it
                if row.tag != wanted:
                    self.retag(s, row, wanted)
            later = _interpreting_step(protocol, row.step_index)
            if later is not None and later <= session.current_step:
                later = None  # that step has opened already: the notes are where it shows now
            return Reply(
                "nudge_done.j2", {"parked": park, "protocol": protocol, "interpreting": later}
            )

    def deleted(self, team_id: str, channel: str, ts: str, previous: dict[str, Any]) -> None:
        with self.engine.transaction() as (s, _after):
            # A post with no thread, or a tombstone whose replies are all gone (Slack takes it
            # away then, its thread with it).
            post = previous.get("thread_ts") in (None, "", ts)
            if post and (
                self._step_post_deleted(s, team_id, channel, ts)
                or self._header_deleted(s, team_id, channel, ts)
            ):
                return
            thread_ts = previous.get("thread_ts")
            if not post and self._step_copy_deleted(s, team_id, channel, str(thread_ts), ts):
                return
            row = self._find(s, team_id, channel, ts)
            if row is not None:
                if row.audience != DELETED:
                    was = {row.tag} if row.audience == "group" else set()
                    self._delete(s, row)
                    self._notes_changed(s, row.session_id)
                    self._parked_changed(s, [(row, was)])
                return
            if previous.get("bot_id"):
                return  # a bot's (this one's, or another app's): never a reply recorded
            # Deleted before its message reached us: an empty row keeps the message out.
            if not thread_ts or not _reply_in_thread({"ts": ts, "thread_ts": thread_ts}):
                return
            found = self._step_of(s, team_id, channel, str(thread_ts), ts)
            if not isinstance(found, _Open):
                return
            author, now = str(previous.get("user") or ""), self.engine.clock.now()
            values = _row(
                team_id, channel, ts, str(thread_ts), found, author, "", "note", DELETED, now
            )
            _RECORD_RUN.first(s, values)

    def _step_post_deleted(self, s: Session, team_id: str, channel: str, ts: str) -> bool:
        """Whether `ts` was a step's post. The open step's is posted again, the same words with
        a fresh thread that is the step's from then on, and its facilitator told: the team has
        somewhere to reply. A closed step's is left gone: what was said there is in the notes.
        The replies recorded stay either way. (The bot deletes no step post of its own.)"""
        found = self._open_step_posted(s, team_id, channel, ts)
        self._post_gone(s, team_id, channel, ts)
        if not isinstance(found, tuple):
            return found
        session, run, message = found
        # Until the new post is in Slack, no thread is the step's: a second delivery of the
        # deletion finds no post to put back.
        run.message_ts = None
        self.engine.post(s, session, message, ref=f"step:{session.id}:{run.index}")
        protocol = self.engine.shown_protocol(s, session)
        told = render_message(
            "step_reposted.j2", session=session, protocol=protocol, index=run.index
        )
        self.engine.post(s, session, told, channel=session.facilitator_id)
        return True

    def _step_post_tombstoned(self, s: Session, team_id: str, channel: str, ts: str) -> None:
        """A step's post deleted with replies under it: its thread stays, and is still the
        step's (replies there count), but the question and its buttons are gone. The open
        step's message is posted in that thread, where the team is replying, and is the one the
        step's later edits go to (the tombstone can't be edited); once is enough however often
        Slack says so. A closed step's is left gone: what was said there is in the notes."""
        found = self._open_step_posted(s, team_id, channel, ts)
        self._post_gone(s, team_id, channel, ts)
        if not isinstance(found, tuple):
            return
        session, run, message = found
        ref = step_thread_ref(session.id, run.index)
        if self.engine.step_shown(s, session, run.index) == ref:
            return  # in the thread already: Slack said so before
        self.engine.post(s, session, message, ref=ref, thread_ts=ts)

    def _step_copy_deleted(
        self, s: Session, team_id: str, channel: str, thread_ts: str, ts: str
    ) -> bool:
        """Whether `ts` was the step's message the bot posted in its thread, its post deleted
        with replies under it (_step_post_tombstoned). Deleted too, the open step's is posted
        there again, where the team is replying; a closed step's is left gone."""
        posted = _step_posted_as(s, team_id, channel, thread_ts)
        if posted is None:
            return False
        ref = step_thread_ref(posted[0], posted[1])
        copy = s.execute(
            select(OutboxMessage.result_ts)
            .where(OutboxMessage.team_id == team_id, OutboxMessage.ref == ref)
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        ).first()
        if copy is None or copy[0] != ts:
            return False
        found = self._open_step_posted(s, team_id, channel, thread_ts)
        slack.deleted_in_slack(s, team_id, ref, ts)
        if isinstance(found, tuple):
            session, _run, message = found
            self.engine.post(s, session, message, ref=ref, thread_ts=thread_ts)
        return True

    def _header_deleted(self, s: Session, team_id: str, channel: str, ts: str) -> bool:
        """Whether `ts` was a session's header (deleted in Slack, with replies under it or
        not). While the session runs, the header is posted again in the channel as last shown
        (its schedule as it stands), the facilitator told; its edits and the notes go to the
        new one. A session's over is left gone: the notes went out in its thread."""
        found = s.scalars(
            select(ProtocolSession.id).where(
                ProtocolSession.team_id == team_id,
                ProtocolSession.channel_id == channel,
                ProtocolSession.header_ts == ts,
            )
        ).first()
        session = self.engine._lock(s, found) if found is not None else None
        if session is None or session.header_ts != ts:
            return found is not None  # posted again already: Slack said so before
        ref = f"header:{session.id}"
        shown = self.engine.last_sent(s, session, ref)
        slack.deleted_in_slack(s, team_id, ref, ts)
        if session.status not in ACTIVE or shown is None:
            return True
        # Until the new header is in Slack, none is the session's: a second delivery of the
        # deletion finds no header to put back.
        session.header_ts = None
        header = Message(text=str(shown.get("text") or ""), blocks=shown.get("blocks") or [])
        self.engine.post(s, session, header, ref=ref)
        name = self.engine.protocol_name(session.protocol_id)
        told = render_message("header_reposted.j2", session=session, protocol_name=name)
        self.engine.post(s, session, told, channel=session.facilitator_id)
        return True

    @staticmethod
    def _post_gone(s: Session, team_id: str, channel: str, ts: str) -> None:
        """A step's post `ts` deleted in Slack: nothing edits it since (a closed step's later
        edits, of the replies it listed, say)."""
        posted = _step_posted_as(s, team_id, channel, ts)
        if posted is not None:
            slack.deleted_in_slack(s, team_id, f"step:{posted[0]}:{posted[1]}", ts)

    def _open_step_posted(
        self, s: Session, team_id: str, channel: str, ts: str
    ) -> tuple[ProtocolSession, StepRun, Message] | bool:
        """The session and step whose open step `ts` is the post of, and the step's message as
        it stands (of a session held for its protocol, which can't render the step, as last
        shown: see show_held); else whether `ts` is a step's post at all (a closed one's)."""
        run = s.scalars(_step_posted(team_id, channel, ts, StepRun)).first()
        if run is None:
            return False
        session = self.engine._lock(s, run.session_id)
        s.refresh(run)  # as it stands under the lock: a close may have come first
        if (
            session is None
            or session.status not in ACTIVE
            or session.current_step != run.index
            or run.ended_at is not None
        ):
            return True
        protocol = self.engine.installed(session)
        if protocol is not None:
            closes = session.step_closes_at
            return session, run, self.engine.step_message(s, session, protocol, run.index, closes)
        shown = self.engine.last_sent(s, session, self.engine.step_shown(s, session, run.index))
        if shown is None:
            return True
        return session, run, Message(text=str(shown.get("text") or ""), blocks=shown["blocks"])

    def forget_user(self, user_id: str, team_id: str | None = None) -> tuple[int, int, int]:
        """One person's words in every session, for a data request (`protocolbot forget-user`):
        each reply is deleted as a deletion in Slack deletes it; as a presenter, their statement
        and the link they gave go; the name Slack gave them is forgotten; the notes already
        posted are edited to match (and the step messages that listed their parked replies);
        the outbox's copies that quoted them, the step messages as they were before, and the
        events that carried them (handled or not yet) lose their content. Returns how many
        replies, in how many sessions, and in how many sessions their name or a presenter's
        words were kept."""
        with self.engine.transaction() as (s, _after):
            query = select(Contribution).where(
                Contribution.user_id == user_id, Contribution.audience != DELETED
            )
            if team_id is not None:
                query = query.where(Contribution.team_id == team_id)
            rows = s.scalars(query.order_by(Contribution.id)).all()
            listed = {row.id: {row.tag} if row.audience == "group" else set() for row in rows}
            for row in rows:
                self._delete(s, row)
                row.user_name = None  # the name Slack gave them, kept for the exports
            led = select(ProtocolSession).where(
                or_(
                    ProtocolSession.presenter_id == user_id,
                    ProtocolSession.facilitator_id == user_id,
                    ProtocolSession.created_by == user_id,
                )
            )
            if team_id is not None:
                led = led.where(ProtocolSession.team_id == team_id)
            named: list[int] = []
            wrote: list[int] = []
            for session in s.scalars(led.order_by(ProtocolSession.id)):
                found, theirs = _forget_in_session(session, user_id)
                if found:
                    named.append(session.id)
                if theirs:
                    wrote.append(session.id)
            s.flush()
            sessions = sorted({row.session_id for row in rows} | set(named))
            # Later steps' messages that listed them among the parked ones: each shown anew once.
            self._parked_changed(s, [(row, listed[row.id]) for row in rows])
            for session_id in sessions:
                self._notes_changed(s, session_id)
                retention.forget_quotes(s, session_id)
                # The step messages as they went out before, listing their parked replies.
                retention.forget_steps_shown_before(s, session_id)
            for session_id in wrote:
                # The step their statement opened, and what it said in the thread, quoted it.
                retention.forget_posted(s, session_id)
        retention.forget_user_events(self.engine.db, user_id, self.engine.clock.now(), team_id)
        return len(rows), len({row.session_id for row in rows}), len(named)

    def _notes_changed(self, s: Session, session_id: int) -> None:
        """A reply edited or deleted once its session's notes went out: the copies in Slack
        follow, as `/protocol notes` and the exports do."""
        session = s.get(ProtocolSession, session_id)
        if session is not None and session.status == "ended":
            posted_notes.refresh(self.engine, s, session)

    def _parked_changed(self, s: Session, changed: list[tuple[Contribution, set[str]]]) -> None:
        """Replies (each tagged one of its `tags`, before and after) edited or deleted once a
        later step's message listed them among the parked ones: that message is shown again as
        it stands, once however many of them it listed, so a reply taken back (one that named a
        student) is not quoted there still; so is the DM that opened the presenter's turn, for
        a question parked for them. A session held for its protocol keeps its messages as they
        were."""
        shown: set[tuple[int, int]] = set()
        for row, tags in changed:
            session = s.get(ProtocolSession, row.session_id)
            protocol = self.engine.installed(session) if session is not None else None
            if session is None or protocol is None:
                continue
            runs = s.scalars(
                select(StepRun)
                .where(StepRun.session_id == session.id, StepRun.index > row.step_index)
                .order_by(StepRun.index)
            ).all()
            for run in runs:
                if (session.id, run.index) in shown or not any(
                    notes_mod.lists_parked(protocol, run.index, row.step_index, tag) for tag in tags
                ):
                    continue
                shown.add((session.id, run.index))
                closed = run.ended_at or (session.ended_at if session.status == "ended" else None)
                self.engine.show_step(s, session, protocol, run.index, closed)
            if tags and "question" not in tags:
                continue  # in the group's columns, and not for the presenter
            for run in runs:
                turn = (session.id, -run.index)  # the DM that opened the presenter's turn there
                if turn not in shown and opens_presenter_turn(protocol, run.index):
                    shown.add(turn)
                    self._turn_changed(s, session, protocol, run.index)

    def _turn_changed(
        self, s: Session, session: ProtocolSession, protocol: Protocol, index: int
    ) -> None:
        """The DM that opened the presenter's turn at step `index`, listing the questions parked
        for them, shown again as it now stands if it changed (a question deleted, or its
        author's words forgotten). One sent in parts (a long one) is left as it is."""
        ref = f"presenter:{session.id}:{index}"
        sent = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.team_id == session.team_id)
            .where(OutboxMessage.ref.in_((ref, f"edit:{ref}")))
            .order_by(OutboxMessage.id.desc())
        ).all()
        posts = [row for row in sent if row.ref == ref]
        if len(posts) != 1:
            return
        now = presenter_turn(s, session, protocol, index, again=True)
        shown = sent[0].payload
        if len(now) != 1 or (shown.get("text"), shown.get("blocks")) == (
            now[0].text,
            now[0].blocks,
        ):
            return
        self.engine.edit(s, session, now[0], of=ref, channel=session.presenter_id)

    def _delete(self, s: Session, row: Contribution) -> None:
        """A reply deleted in Slack: its words go, and an empty row stays in its place (DELETED)."""
        row.text = ""
        row.audience = DELETED
        row.updated_at = self.engine.clock.now()

    @staticmethod
    def _find(s: Session, team_id: str, channel: str, ts: str) -> Contribution | None:
        return s.scalars(
            select(Contribution).where(*_AT_TS), {"team_id": team_id, "channel": channel, "ts": ts}
        ).first()


_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}
# A person or channel mentioned as Slack sends it in a message's text: by id, without a name
# (a channel's as <#C123|>).
_BARE_MENTION = re.compile(r"<[@#]([^<>|]+)\|?>")


def _readable(markup: re.Match[str], names: Mapping[str, str], addresses: bool = True) -> str:
    """One piece of Slack markup as the words a reader saw: a link's label and address (only
    its label unless `addresses`), a mention's name (looked up when Slack gave none), a date's
    text."""
    target, label = markup.group(1), markup.group(2)
    if target.startswith(("@", "#")):
        if label:
            return f"{target[0]}{label}"
        if target[1:] in names:
            return f"{target[0]}{names[target[1:]]}"
        # Someone or somewhere Slack cannot name (gone, private, or Slack out of reach): words,
        # not an id.
        if target.startswith("@"):
            return "@" + render_text("mention_unknown.j2")
        return render_text("channel_unknown.j2")
    if target.startswith("!"):
        if not label and target.startswith("!subteam^"):
            # A user group, sent by id alone (Slack's events name none): not "@subteam".
            return render_text("group_unknown.j2")
        return label or _SPECIAL.get(target[1:], "@" + target[1:].split("^")[0])
    # An address typed bare, which Slack made a link of (labelled with it as typed).
    bare = not label or target in (label, f"http://{label}", f"https://{label}")
    if not addresses:
        return "" if bare else label
    if bare or target == f"mailto:{label}":
        return label or target
    return f"{label} ({target})"


def _as_typed(text: str, names: Mapping[str, str] | None = None) -> str:
    """A message's text as its author typed it, as the notes and exports keep it: Slack's
    markup read as the words it shows (`names`: of the people it mentions by id), and a typed
    &, < or > (Slack sends entities) back as typed; the templates escape what they show
    (view_submission values arrive unescaped: not here)."""
    known = names or {}
    return unescape_mrkdwn(SLACK_MARKUP.sub(lambda markup: _readable(markup, known), text))


def _as_said(text: str, names: Mapping[str, str]) -> str:
    """A message's words as the norms read them: _as_typed without links' addresses, whose
    "?usp=sharing" is not a question and whose "/great-essays/" not a judgment."""
    return unescape_mrkdwn(
        SLACK_MARKUP.sub(lambda markup: _readable(markup, names, addresses=False), text)
    ).strip()


def _markup(message: dict[str, Any]) -> str:
    """A message's text in Slack's markup. Slack sends a person's words in `text`, and in
    rich-text blocks too; a message whose `text` came empty (sent by a client or an integration
    that filled in only the blocks) is read from its blocks, rather than taken for no words."""
    text = message.get("text")
    if text or not isinstance(message.get("blocks"), list):
        return str(text or "")
    lines = [
        _rich_text(element)
        for block in message["blocks"]
        if isinstance(block, dict) and block.get("type") == "rich_text"
        for element in block.get("elements") or []
        if isinstance(element, dict)
    ]
    return "\n".join(line for line in lines if line)


def _entities(text: str) -> str:
    """Typed text as Slack sends it in `text`: &, < and > as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Rich text's inline elements as Slack's markup (text entities escaped, as in `text`).
_INLINE: dict[str, Callable[[dict[str, Any]], str]] = {
    "text": lambda e: _entities(str(e.get("text") or "")),
    "link": lambda e: (
        f"<{e.get('url') or ''}|{_entities(str(e.get('text') or ''))}>"
        if e.get("text")
        else f"<{e.get('url') or ''}>"
    ),
    "user": lambda e: f"<@{e.get('user_id') or ''}>",
    "channel": lambda e: f"<#{e.get('channel_id') or ''}>",
    "usergroup": lambda e: f"<!subteam^{e.get('usergroup_id') or ''}>",
    "broadcast": lambda e: f"<!{e.get('range') or 'here'}>",
    "emoji": lambda e: f":{e.get('name') or ''}:",
    "date": lambda e: _entities(str(e.get("fallback") or e.get("timestamp") or "")),
}


def _rich_text(element: dict[str, Any]) -> str:
    """One rich-text element (a section, a list, a quote, code) as lines of markup."""
    kind, parts = element.get("type"), element.get("elements") or []
    if kind == "rich_text_list":
        lines = [_rich_text(item) for item in parts if isinstance(item, dict)]
        return "\n".join(f"• {line}" for line in lines if line)
    inline = "".join(
        _INLINE.get(str(part.get("type")), lambda e: "")(part)
        for part in parts
        if isinstance(part, dict)
    )
    if kind == "rich_text_quote":
        return "\n".join(f"&gt; {line}" for line in inline.split("\n"))
    if kind == "rich_text_preformatted":
        return f"```{inline}```"
    return inline


def _shared_files(message: dict[str, Any]) -> str:
    """The files a message shares, by name and link, as the notes keep them (a photo of the
    student work in step 1's thread); empty when it shares none."""
    # A file deleted since stays in the message as a tombstone (`"mode": "tombstone"`, no name
    # or link): Slack shows "This file was deleted", and nothing of it is shared any more.
    files = [
        f
        for f in message.get("files") or []
        if isinstance(f, dict) and f.get("mode") != "tombstone"
    ]
    if not files:
        return ""
    # A file past a free workspace's file limit comes as `"hidden_by_limit": true` (or `"mode":
    # "hidden_by_limit"`), with no name or link: it is said to be hidden, rather than "a file"
    # with nothing of where it went.
    # A file the bot may not see at all comes as a stub with `"file_access": "access_denied"`
    # (its mode, as for one past the limit, `hidden_by_limit`): it is said to be out of the
    # bot's sight; one still to ask about (_to_ask) that Slack did not answer for is "a file".
    named = [
        {
            "name": f.get("title") or f.get("name") or "",
            "permalink": f.get("permalink") or "",
            "hidden": not f.get("file_access")
            and (bool(f.get("hidden_by_limit")) or f.get("mode") == "hidden_by_limit"),
            "denied": f.get("file_access") == "access_denied",
        }
        for f in files
    ]
    return render_text("shared_files.j2", files=named)


def _to_ask(shared: object) -> bool:
    """A file Slack sent as a stub to ask files.info about."""
    return (
        isinstance(shared, dict)
        and shared.get("file_access") == "check_file_info"
        and bool(shared.get("id"))
    )


def _row(
    team_id: str,
    channel: str,
    ts: str,
    thread_ts: str,
    found: _Open,
    user: str,
    text: str,
    tag: str,
    audience: str,
    now: datetime,
) -> dict[str, Any]:
    """A contributions row's values (_RECORD_COLUMNS), for a reply in the step `found`."""
    return {
        "team_id": team_id,
        "channel_id": channel,
        "ts": ts,
        "session_id": found.id,
        "step_index": found.step_index,
        "user_id": user,
        "user_name": None,
        "thread_ts": thread_ts,
        "text": text,
        "edited_ts": None,
        "tag": tag,
        "audience": audience,
        "created_at": now,
        "updated_at": now,
    }


def _later_tags(text: str, tag: str) -> list[str]:
    """The tags other than the reply's own that its later lines open with ("O: ...\nI: ..."),
    or a sentence after the first in a line, with a word's prefix ("Warm: clear claims. Cool:
    no counterclaims"; a letter or two there, "Q: 3", "Qs: 5 and 6", is as likely a
    worksheet's): a reply has one tag, and they are kept as its words."""
    lines = text.split("\n")
    named = [strip_tag_prefix(line)[0] for line in lines[1:] if line.strip()]
    for line in lines:
        named += [
            strip_tag_prefix(sentence)[0]
            for sentence in _SENTENCE_END.split(line)[1:]
            if _WORD_FIRST.match(sentence)
        ]
    return list(dict.fromkeys(t for t in named if t is not None and t != tag))


# Where a sentence ends within a line; a sentence that opens with a word of three letters or more.
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")
_WORD_FIRST = re.compile(r"\W*[^\W\d_]{3}")


# The people a reply is addressed to, before its words: "@maria Q: was it timed?"
_ADDRESSED = re.compile(r"^\s*(?:<@[^<>|]+(?:\|[^<>]*)?>[\s,]*)+")


def _prefix(raw: str, text: str, names: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """A reply's tag prefix and the text without it (strip_tag_prefix; empty for a prefix
    alone), read from what the person typed: text that opens with Slack's markup (a link; a
    typed < arrives as &lt;) has none, whatever the link's label says. After the people it is
    addressed to (`names`: as for the text) a prefix is read, and they stay in the words."""
    addressed = _ADDRESSED.match(raw)
    if addressed is not None:
        to = _as_typed(raw[: addressed.end()], names).strip()
        if text.startswith(to):
            explicit, words = strip_tag_prefix(text[len(to) :])
            if explicit is not None:
                return explicit, f"{to} {words}" if words else ""
    if raw.lstrip().startswith("<"):
        return None, text
    return strip_tag_prefix(text)


# Slack's emoji codes, with a skin tone (`:+1:`, `:wave::skin-tone-3:`), a typed `+1`, and the
# faces people type (`:)`, `;-)`, `:D`).
_NOD_CODE = re.compile(r":[a-z0-9_+'-]+:|\+1(?![0-9])|[:;]-?[()DP](?!\w)", re.IGNORECASE)
# What may come after a nod and leave it one: `+1!`, `👍.`
_NOD_MARKS = frozenset("!.?,~")
# What emoji are written with besides their symbols: skin tones, joiners, variation selectors.
_EMOJI_PARTS = frozenset({"So", "Sk", "Mn", "Me", "Cf"})
_WORD_CHARACTER = re.compile(r"[^\W_]")
# Characters that show nothing by themselves: format marks (zero-width space and joiners,
# direction marks) and marks that only combine with another.
_INVISIBLE = frozenset({"Cf", "Mn", "Me", "Cc"})
# Letters that show nothing: the Hangul fillers, what people paste to send a blank message.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


def _nod(text: str) -> bool:
    """Whether a reply is only a nod: emoji (by code or as characters), `+1` or a typed face,
    and spaces and end marks; or nothing visible at all (zero-width spaces). Like a reaction,
    it is not a reading of the work to keep in the notes or count as someone's turn; "!!!",
    "?" or "3/4" alone are words."""
    if _WORD_CHARACTER.match(text) and text[0] not in _BLANK_LETTERS:
        return False  # most replies: a letter or a digit first
    if _blank(text):
        return True  # blank letters and zero-width marks alone: nothing anyone can read
    coded = ":" in text or "+" in text or ";" in text
    uncoded = _NOD_CODE.sub("", text) if coded else text
    rest = "".join(c for c in uncoded if not c.isspace() and c not in _NOD_MARKS)
    if not rest:
        return uncoded != text  # a code, and nothing but spaces and marks beside it
    if _WORD_CHARACTER.search(rest):
        return False
    symbols = [unicodedata.category(c) for c in rest]
    return "So" in symbols and all(kind in _EMOJI_PARTS for kind in symbols)


def _blank(text: str) -> bool:
    """Whether text shows nothing but is not empty: zero-width marks, Hangul fillers."""
    if not text or text.isspace():
        return False
    return all(
        c.isspace() or c in _BLANK_LETTERS or unicodedata.category(c) in _INVISIBLE for c in text
    )


def _with_files(typed: str, message: dict[str, Any]) -> str:
    """The text kept for a reply: its words, then the files it shared (a photo of the work with
    a caption keeps both)."""
    return "\n".join(part for part in (typed, _shared_files(message)) if part)


def _reply_in_thread(message: dict[str, Any]) -> bool:
    """Whether a message can be a person's reply in a thread: written after the thread's head,
    and not by a bot."""
    if message.get("bot_id") or message.get("subtype") not in REPLY_SUBTYPES:
        return False
    try:
        return float(message.get("ts") or "") > float(message.get("thread_ts") or "")
    except ValueError:
        return False


def _next_step_shown_at(s: Session, found: _Open) -> datetime | None:
    """When the message of the step after `found`'s was posted: the far future while it is yet
    to be, None if there is no next step (the session ended at this one)."""
    row = s.execute(
        select(StepRun.message_ts).where(
            StepRun.session_id == found.id, StepRun.index == found.step_index + 1
        )
    ).first()
    if row is None:
        return None
    if row.message_ts is None:
        return datetime.max.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(row.message_ts), UTC)


def _edited_ts(message: dict[str, Any]) -> str | None:
    """The Slack ts of a message's last edit, if it says (message.edited.ts)."""
    edited = message.get("edited")
    ts = edited.get("ts") if isinstance(edited, dict) else None
    return str(ts) if ts else None


def _newer(version: str | None, held: str | None) -> bool:
    """Whether an edit (its Slack ts) is newer than the one a reply holds. One that does not
    say when it was made is taken as newer, as edits were before they were ordered."""
    try:
        return held is None or version is None or float(version) > float(held)
    except ValueError:
        return True


def _purged(s: Session, session_id: int) -> bool:
    """Whether retention deleted the session's replies."""
    purged = select(ProtocolSession.purged_at).where(ProtocolSession.id == session_id)
    return s.scalar(purged) is not None


def _delivered_by(ts: str | None, edited_at: str | None) -> bool:
    """Whether a reply (its Slack ts) was edited (at `edited_at`, a Slack ts) after Slack was
    done delivering it: its tries end within LATE_DELIVERY_PATIENCE of its writing."""
    try:
        late = float(edited_at or "") - float(ts or "")
    except ValueError:
        return False
    return late > LATE_DELIVERY_PATIENCE.total_seconds()


def _written_before(ts: str | None, moment: datetime) -> bool:
    """Whether a Slack ts (seconds since the epoch, as text) is earlier than `moment`."""
    try:
        return float(ts or "") < moment.timestamp()
    except ValueError:
        return False


def _not_open_yet(index: int | None, session: ProtocolSession) -> int | None:
    """A later step a norm's message promises something at (parked items listed, the presenter's
    notes sent), while it is still to open: a reply in an earlier step's thread written once the
    group has reached that step would be promised what happened when it opened, without it."""
    return index if index is not None and index > session.current_step else None


def _steps_ahead(protocol: Protocol, index: int, session: ProtocolSession) -> dict[str, Any]:
    """What a norm's message about a reply in step `index` may promise (_not_open_yet): the
    step where parked interpretations are shown, and the presenter's next turn."""
    turn = next_presenter_step(protocol, index)
    return {
        "interpreting": _not_open_yet(_interpreting_step(protocol, index), session),
        "presenter_step": _not_open_yet(turn, session),
        # The presenter's turn, open now or over (a reply in a closed step's thread): what a
        # parked question tells its author instead of a promise.
        "turn_reached": turn if turn is not None and turn <= session.current_step else None,
    }


def _interpreting_step(protocol: Protocol, index: int) -> int | None:
    """The first step after `index` that collects interpretations: where parked ones are shown."""
    for k in range(index + 1, len(protocol.steps) + 1):
        if protocol.step(k).collects == "interpretation":
            return k
    return None


def _step_posted_as(s: Session, team_id: str, channel: str, ts: str) -> Row[int, int] | None:
    """The session and index of the step whose post in `channel` is `ts`, if any."""
    return s.execute(_step_posted(team_id, channel, ts, StepRun.session_id, StepRun.index)).first()


def _step_posted(team_id: str, channel: str, ts: str, *columns: Any) -> Select[Any]:
    """`columns` of the step whose post in `channel` is `ts`."""
    return (
        select(*columns)
        .join(ProtocolSession, StepRun.session_id == ProtocolSession.id)
        .where(
            StepRun.message_ts == ts,
            ProtocolSession.team_id == team_id,
            ProtocolSession.channel_id == channel,
        )
    )
