"""Replies the bot never heard: written in a step's thread while it was out of the channel.

Slack sends a bot no events from a channel it is not in, so what a team wrote while the bot was
taken out of the channel (its session paused, bot/engine/delivery.py) never reached it. Once the
session resumes, the open step's thread is asked of Slack, and each reply not recorded yet is
stored in the inbox as if Slack had sent it, to be recorded as any reply is: tagged, marked with
its reaction, held to the step's norms. A reply recorded already, or deleted since, stays as it is
(a reply is known by its ts); asking twice stores nothing twice (the event id is the reply's).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from bot.engine.core import Directory
from bot.inbox import Inbox
from bot.store.db import Database
from bot.store.models import Contribution

log = logging.getLogger(__name__)


def catch_up(
    directory: Directory,
    db: Database,
    inbox: Inbox,
    thread: tuple[str, str, str, str],
) -> int:
    """Store the replies of `thread` (team, enterprise, channel, ts) not recorded yet; how many."""
    team_id, enterprise_id, channel, thread_ts = thread
    messages = directory.thread(team_id, channel, thread_ts)
    with db.session() as s:
        recorded = set(
            s.scalars(
                select(Contribution.ts).where(
                    Contribution.team_id == team_id,
                    Contribution.channel_id == channel,
                    Contribution.thread_ts == thread_ts,
                )
            )
        )
    stored = 0
    for message in messages:
        ts = str(message.get("ts") or "")
        if not ts or ts == thread_ts or ts in recorded or message.get("bot_id"):
            continue
        body = _as_event(message, team_id, enterprise_id, channel, thread_ts)
        kept = inbox.accept(body)
        if kept is not None:
            inbox.submit(kept)
            stored += 1
    if stored:
        log.info("stored %d replies written while the bot was out of a channel", stored)
    return stored


def _as_event(
    message: dict[str, Any], team_id: str, enterprise_id: str, channel: str, thread_ts: str
) -> dict[str, Any]:
    """A reply from conversations.replies, in the envelope of the message event Slack would have
    sent for it."""
    event = {**message, "type": "message", "channel": channel, "thread_ts": thread_ts}
    return {
        "team_id": team_id,
        "enterprise_id": enterprise_id,
        "event_id": f"missed:{channel}:{message['ts']}"[:64],
        "event": event,
    }
