"""SQLAlchemy 2 models: sessions, their steps, contributions, and the inbox and outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.clock import as_utc


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC and always hands back an aware datetime, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


ACTIVE = ("running", "paused")


class ProtocolSession(Base):
    """One run of a protocol in a channel."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_channel", "team_id", "channel_id", "status"),
        # A channel's sessions whichever workspace's: a channel Slack Connect or an Enterprise
        # Grid org shares (Replies.whose) (0015).
        Index("ix_sessions_channel_id", "channel_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    enterprise_id: Mapped[str] = mapped_column(String(32), default="")
    channel_id: Mapped[str] = mapped_column(String(32))
    protocol_id: Mapped[str] = mapped_column(String(64))
    presenter_id: Mapped[str] = mapped_column(String(32))
    facilitator_id: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(32))
    # scheduled -> running <-> paused -> ended; scheduled -> cancelled
    status: Mapped[str] = mapped_column(String(16), index=True)
    step_seconds: Mapped[int | None] = mapped_column(Integer)
    # Of step_seconds, the whole days typed as days (`step 1d`: 1, `step 24h`: 0), each kept to
    # the time of day on the calendar; None (sessions from before it was kept): every whole day.
    step_days: Mapped[int | None] = mapped_column(Integer)
    weekdays: Mapped[bool] = mapped_column(Boolean, default=False)
    tz: Mapped[str] = mapped_column(String(64), default="UTC")
    remind_seconds: Mapped[int] = mapped_column(Integer, default=86400)
    starts_at: Mapped[datetime]
    current_step: Mapped[int] = mapped_column(Integer, default=0)
    step_closes_at: Mapped[datetime | None] = mapped_column(index=True)
    paused_remaining: Mapped[int | None] = mapped_column(Integer)
    # Of paused_remaining, the seconds `extend` added while paused, and of those the whole days
    # typed as days: on resume they run after the step's own time left, each counted as typed
    # (None: nothing added, or added before it was kept).
    paused_added: Mapped[int | None] = mapped_column(Integer)
    paused_added_days: Mapped[int | None] = mapped_column(Integer)
    header_ts: Mapped[str | None] = mapped_column(String(32))
    statement: Mapped[str | None] = mapped_column(Text)
    prep: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # What Slack called the presenter and the facilitator when the session was started or
    # booked, by id: the notes file names someone who wrote nothing by it, after a restart too.
    names: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # When retention deleted what its people wrote (see bot/retention.py): its notes say so.
    purged_at: Mapped[datetime | None]
    # How many steps its protocol had when it began (its header's plan): an end before the last
    # of them, the protocol cut short since, is explained (None: begun before it was kept).
    planned_steps: Mapped[int | None] = mapped_column(Integer, nullable=True)

    steps: Mapped[list[StepRun]] = relationship(
        back_populates="session", order_by="StepRun.index", cascade="all, delete-orphan"
    )


class StepRun(Base):
    """A step as it ran: when it opened and closed, and the message its replies thread under."""

    __tablename__ = "session_steps"
    __table_args__ = (
        UniqueConstraint("session_id", "index", name="uq_session_steps_index"),
        Index("ix_session_steps_message", "message_ts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    step_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    message_ts: Mapped[str | None] = mapped_column(String(32))
    # When the step's Extend button last gave it more time (a double click's second press).
    extended_at: Mapped[datetime | None]
    # Who opened it with `/protocol next` or a Next button (None: it opened on schedule).
    opened_by: Mapped[str | None] = mapped_column(String(32))
    # Whether they did it with the Next button (the step named), not a typed `next`.
    opened_by_button: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When its closing warning is due: moved with the close (extend, pause and resume), None once
    # given (or for a step too short to have one).
    warn_at: Mapped[datetime | None]
    # Since when the session is paused on this step (None: it is not), and how long it was paused
    # before: a step's length in the notes, the exports and status counts the pauses out.
    paused_at: Mapped[datetime | None]
    paused_seconds: Mapped[int] = mapped_column(Integer, default=0)

    session: Mapped[ProtocolSession] = relationship(back_populates="steps")


class Contribution(Base):
    """A reply in a step's thread, with its tag."""

    __tablename__ = "contributions"
    __table_args__ = (UniqueConstraint("team_id", "channel_id", "ts", name="uq_contribution_ts"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    step_index: Mapped[int] = mapped_column(Integer)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    # What Slack called the author when the reply was recorded (None: Slack could not say).
    user_name: Mapped[str | None] = mapped_column(String(255), default=None)
    ts: Mapped[str] = mapped_column(String(32))
    thread_ts: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    # The Slack ts of the edit `text` comes from (None: as first written): an older edit,
    # delivered late, changes nothing.
    edited_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)
    tag: Mapped[str] = mapped_column(String(16))
    # The tag it had before someone re-tagged it with a reaction (None: no reaction did): taking
    # that reaction away gives this one back.
    retagged_from: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # group: in the group's columns; presenter: a presenter note kept out of them; deleted: a
    # reply deleted in Slack, kept without its text so that a late delivery of it stays out
    audience: Mapped[str] = mapped_column(String(16), default="group")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PresenterRotation(Base):
    """A team's presenter order in one channel; who goes next is read from the sessions."""

    __tablename__ = "presenter_rotations"
    __table_args__ = (
        UniqueConstraint("team_id", "enterprise_id", "channel_id", name="uq_rotation_channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    enterprise_id: Mapped[str] = mapped_column(String(32), default="")
    channel_id: Mapped[str] = mapped_column(String(32))
    members: Mapped[list[str]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime]


class InboxEvent(Base):
    """An Events API delivery, stored before it is acknowledged so it is never lost."""

    __tablename__ = "inbox"
    __table_args__ = (UniqueConstraint("team_id", "event_id", name="uq_inbox_event"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None] = mapped_column(index=True)


# Written out, not a bound parameter: a statement must say so in these words to use the partial
# index (PostgreSQL's generic plans and SQLite's planner match the predicate as written).
PENDING_SQL = "status = 'pending'"


class OutboxMessage(Base):
    """A Slack Web API call the bot means to make; sent in order per channel, retried until done."""

    __tablename__ = "outbox"
    # The queue's head: only the rows still to send, in order (a partial index). The sender
    # reads it every round, and the rows sent, nearly all of the table, never slow that read,
    # whatever the planner's statistics last saw (0015).
    __table_args__ = (
        Index(
            "ix_outbox_due",
            "id",
            postgresql_where=text(PENDING_SQL),
            sqlite_where=text(PENDING_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # what this message is, for writing its ts back (e.g. "step:12:3", "header:12")
    ref: Mapped[str | None] = mapped_column(String(64), index=True)
    # the ref of the message this one replies under; its ts is filled in when sent
    thread_ref: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # set just before a call goes out; a row found pending with it set may already be in Slack
    in_flight_at: Mapped[datetime | None]
    # when Slack first failed it (5xx, a timeout; not a 429): it is given up a while after
    failing_since: Mapped[datetime | None]
    not_before: Mapped[datetime]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    result_ts: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(String(200))
