"""Replies the bot never heard: written in a step's thread while it was out of the channel.

Slack sends a bot no events from a channel it is not in, so what a team wrote while the bot was
taken out of the channel (its session paused, bot/engine/delivery.py) never reached it: new
replies, and edits and deletions of replies already recorded. Once the session resumes, the
thread of each step posted so far is asked of Slack (the open step's first), and what changed is
stored in the inbox as the events Slack would have sent, to be handled as any are: a new reply
recorded, tagged, marked with its reaction and held to the step's norms; an edit or a deletion
applied. A reply recorded already is not recorded twice (a reply is known by its ts), and asking
twice stores nothing twice (each event's id is the reply's, and the edit's).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from bot.engine.core import Directory
from bot.engine.notes import DELETED
from bot.inbox import Inbox
from bot.store.db import Database
from bot.store.models import Contribution

log = logging.getLogger(__name__)
# A recorded reply: its audience (DELETED once deleted) and when the bot last changed it.
_Recorded = tuple[str, datetime]


def catch_up(
    directory: Directory,
    db: Database,
    inbox: Inbox,
    thread: tuple[str, str, str, str],
) -> int:
    """Store what changed unheard in `thread` (team, enterprise, channel, ts): how many events."""
    team_id, enterprise_id, channel, thread_ts = thread
    # What was recorded, read before Slack is asked: a reply recorded after the thread came
    # back would be missing from it, and seem deleted.
    with db.session() as s:
        rows = s.execute(
            select(Contribution.ts, Contribution.audience, Contribution.updated_at).where(
                Contribution.team_id == team_id,
                Contribution.channel_id == channel,
                Contribution.thread_ts == thread_ts,
            )
        )
        recorded = {ts: (audience, updated_at) for ts, audience, updated_at in rows}
    messages = directory.thread(team_id, channel, thread_ts)
    if not any(m.get("ts") == thread_ts for m in messages):
        return 0  # Slack didn't show the thread: nothing can be told of it
    stored = 0
    for key, event in _unheard(messages, recorded, thread_ts):
        body = {
            "team_id": team_id,
            "enterprise_id": enterprise_id,
            "event_id": f"missed:{channel}:{key}"[:64],
            "event": {**event, "type": "message", "channel": channel},
        }
        kept = inbox.accept(body)
        if kept is not None:
            inbox.submit(kept)
            stored += 1
    if stored:
        log.info("stored %d changes to a thread made while the bot was out of it", stored)
    return stored


def _unheard(
    messages: list[dict[str, Any]], recorded: dict[str, _Recorded], thread_ts: str
) -> list[tuple[str, dict[str, Any]]]:
    """The events Slack would have sent for the thread as it stands (each with a key for its
    id): a reply not recorded, an edit made after the bot last changed its reply, a recorded
    reply no longer there. A recorded reply newer than any Slack listed may be one Slack's
    answer does not show yet: it is kept, since taking it from the notes would lose it."""
    replies = {
        str(m["ts"]): {**m, "thread_ts": thread_ts}
        for m in messages
        if m.get("ts") and m["ts"] != thread_ts and not m.get("bot_id")
    }
    events: list[tuple[str, dict[str, Any]]] = []
    for ts, message in replies.items():
        edited = str((message.get("edited") or {}).get("ts") or "")
        if ts not in recorded:
            events.append((ts, message))
        elif recorded[ts][0] != DELETED and edited and _after(edited, recorded[ts][1]):
            changed = {"subtype": "message_changed", "hidden": True, "message": message}
            events.append((f"{ts}:{edited}", changed))
    newest = max(map(_moment, [thread_ts, *replies]))
    for ts, (audience, _changed) in recorded.items():
        if ts not in replies and audience != DELETED and _moment(ts) < newest:
            previous = {"ts": ts, "thread_ts": thread_ts}
            deleted = {"subtype": "message_deleted", "hidden": True, "deleted_ts": ts}
            events.append((f"{ts}:deleted", {**deleted, "previous_message": previous}))
    return events


def _moment(ts: str) -> Decimal:
    """A Slack ts, in order ("1790000000.000100")."""
    try:
        return Decimal(ts)
    except ArithmeticError:
        return Decimal(0)


def _after(ts: str, moment: datetime) -> bool:
    return datetime.fromtimestamp(float(ts), UTC) > moment.astimezone(UTC)
