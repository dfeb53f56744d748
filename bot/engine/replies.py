"""Replies in a step's thread become contributions: recorded, tagged, edited and deleted."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.blocks import render_message
from bot.engine.core import Engine
from bot.engine.judgment import strip_tag_prefix
from bot.engine.tags import REACTIONS
from bot.protocols import Step
from bot.store.models import Contribution, ProtocolSession, StepRun

log = logging.getLogger(__name__)

REPLY_SUBTYPES = (None, "thread_broadcast", "file_share")


class Replies:
    """Event handling for the threads under step messages."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def handle(self, team_id: str, event: dict[str, Any]) -> None:
        if event.get("type") != "message":
            return
        subtype = event.get("subtype")
        if subtype == "message_changed":
            self.edited(team_id, event)
        elif subtype == "message_deleted":
            self.deleted(team_id, str(event.get("channel")), str(event.get("deleted_ts")))
        elif subtype in REPLY_SUBTYPES and not event.get("bot_id"):
            self.replied(team_id, event)

    def _open_step(
        self, s: Session, team_id: str, channel: str, thread_ts: str
    ) -> tuple[ProtocolSession, StepRun] | None:
        found = s.execute(
            select(ProtocolSession, StepRun)
            .join(StepRun, StepRun.session_id == ProtocolSession.id)
            .where(
                StepRun.message_ts == thread_ts,
                ProtocolSession.team_id == team_id,
                ProtocolSession.channel_id == channel,
            )
        ).first()
        if found is None:
            return None
        session, run = found
        # Replies to closed steps, or to a session that is over, are not collected.
        if session.status not in ("running", "paused") or run.ended_at is not None:
            return None
        return session, run

    def replied(self, team_id: str, event: dict[str, Any]) -> None:
        thread_ts, ts = event.get("thread_ts"), event.get("ts")
        user, channel = event.get("user"), event.get("channel")
        text = (event.get("text") or "").strip()
        if not thread_ts or not ts or thread_ts == ts or not user or not channel or not text:
            return
        engine = self.engine
        with engine.transaction() as (s, _after):
            found = self._open_step(s, team_id, channel, thread_ts)
            if found is None:
                return
            session, run = found
            exists = s.scalars(
                select(Contribution.id).where(
                    Contribution.team_id == team_id,
                    Contribution.channel_id == channel,
                    Contribution.ts == ts,
                )
            ).first()
            if exists is not None:
                return  # a duplicate delivery of a reply already recorded
            protocol = engine.library[session.protocol_id]
            step = protocol.step(run.index)
            explicit, body = strip_tag_prefix(text)
            tag = explicit or step.collects
            audience = "group"
            if user == session.presenter_id and step.presenter == "silent":
                audience, tag = "presenter", "note"
                self._ephemeral(s, session, user, thread_ts, "presenter_listens.j2", step=step)
            now = engine.clock.now()
            s.add(
                Contribution(
                    session_id=session.id,
                    step_index=run.index,
                    team_id=team_id,
                    channel_id=channel,
                    user_id=user,
                    ts=ts,
                    thread_ts=thread_ts,
                    text=body or text,
                    tag=tag,
                    audience=audience,
                    created_at=now,
                    updated_at=now,
                )
            )
            engine.call(
                s, session, "reactions.add", channel=channel, timestamp=ts, name=REACTIONS[tag]
            )

    def _ephemeral(
        self,
        s: Session,
        session: ProtocolSession,
        user: str,
        thread_ts: str,
        template: str,
        **context: Any,
    ) -> None:
        message = render_message(template, session=session, **context)
        payload: dict[str, Any] = {
            "channel": session.channel_id,
            "user": user,
            "text": message.text,
            "thread_ts": thread_ts,
        }
        if message.blocks:
            payload["blocks"] = message.blocks
        self.engine.call(s, session, "chat.postEphemeral", **payload)

    def edited(self, team_id: str, event: dict[str, Any]) -> None:
        message = event.get("message") or {}
        channel, ts = event.get("channel"), message.get("ts")
        text = (message.get("text") or "").strip()
        if not channel or not ts:
            return
        with self.engine.transaction() as (s, _after):
            row = self._find(s, team_id, channel, ts)
            if row is None:
                return  # an edit of a message never recorded
            if not text:
                s.delete(row)
                return
            explicit, body = strip_tag_prefix(text)
            row.text = body or text
            row.updated_at = self.engine.clock.now()
            if explicit and explicit != row.tag and row.audience == "group":
                self.retag(s, row, explicit)

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

    def deleted(self, team_id: str, channel: str, ts: str) -> None:
        with self.engine.transaction() as (s, _after):
            row = self._find(s, team_id, channel, ts)
            if row is not None:
                s.delete(row)

    @staticmethod
    def _find(s: Session, team_id: str, channel: str, ts: str) -> Contribution | None:
        return s.scalars(
            select(Contribution).where(
                Contribution.team_id == team_id,
                Contribution.channel_id == channel,
                Contribution.ts == ts,
            )
        ).first()


def collects_observations(step: Step) -> bool:
    return step.collects == "observation"
