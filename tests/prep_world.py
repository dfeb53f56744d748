"""A controlled-clock world for presenter-prep tests: engine, store, recording timers, no Slack.

Commands go through dispatch as the /protocol listener sends them; what the bot would say is read
from the outbox; due jobs are driven by calling the functions the scheduler's jobs call.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot import dispatch
from bot.blocks import render_message
from bot.engine import prep
from bot.engine.core import Actor, Engine
from bot.engine.errors import Reply
from bot.profiles import Person, Zone
from bot.protocols import BUILTIN_DIR, load_library
from bot.store.db import Database
from bot.store.models import OutboxMessage, ProtocolSession
from tests.fakes.signing import interaction_body
from tests.harness import migrated_copy, to_head

TEAM, CHANNEL = "T_TEAM", "C_TEAM"
FAC, PRE = "U_FAC", "U_PRE"
LA, NY = "America/Los_Angeles", "America/New_York"


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)

    def set(self, at: datetime) -> None:
        self.current = at


@dataclass
class RecordingTimers:
    """What the engine asked the scheduler for, by job."""

    jobs: dict[str, datetime] = field(default_factory=dict)
    cleared: list[int] = field(default_factory=list)

    def step_deadline(self, session_id: int, step: int, at: datetime) -> None:
        self.jobs[f"session:{session_id}:step:{step}:close"] = at

    def step_warning(self, session_id: int, step: int, at: datetime) -> None:
        self.jobs[f"session:{session_id}:step:{step}:warn"] = at

    def session_start(self, session_id: int, at: datetime) -> None:
        self.jobs[f"session:{session_id}:start"] = at

    def prep_due(self, session_id: int, kind: str, at: datetime) -> None:
        self.jobs[f"session:{session_id}:{kind}"] = at

    def clear(self, session_id: int) -> None:
        self.cleared.append(session_id)
        for job in [j for j in self.jobs if j.startswith(f"session:{session_id}:")]:
            del self.jobs[job]


class FakeProfiles:
    """users.info as the tests need it: everyone is a person in New York unless told otherwise."""

    def __init__(self) -> None:
        self.people: dict[str, Person] = {}

    def person(self, user_id: str) -> Person | None:
        return self.people.get(user_id, Person(user_id, NY, gone=False, is_bot=False))


def message_text(payload: dict[str, Any]) -> str:
    """The fallback text and every text in the blocks, as one string to search."""
    found: list[str] = [str(payload.get("text") or "")]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text"):
                found.append(str(node.get("text") or ""))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload.get("blocks") or [])
    return "\n".join(found)


def action_ids(payload: dict[str, Any]) -> list[str]:
    return [
        str(element.get("action_id"))
        for block in payload.get("blocks") or []
        if block.get("type") == "actions"
        for element in block.get("elements") or []
    ]


@dataclass
class World:
    db: Database
    engine: Engine
    clock: FakeClock
    timers: RecordingTimers
    profiles: FakeProfiles

    def command(
        self,
        text: str,
        user: str = FAC,
        tz: str = LA,
        source: str = "user",
        channel: str = CHANNEL,
    ) -> str:
        actor = Actor(TEAM, user, channel)
        parsed = dispatch.parse(text, now=self.clock.now(), tz=tz, engine=self.engine)
        reply = (
            parsed
            if isinstance(parsed, Reply)
            else dispatch.run(
                parsed, actor, self.engine, tz=tz, zone=Zone(tz, source), profiles=self.profiles
            )
        )
        message = render_message(reply.template, **reply.context)
        return message_text({"text": message.text, "blocks": message.blocks})

    def outbox(self, channel: str | None = None) -> list[OutboxMessage]:
        with self.db.session() as s:
            rows = s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
            for row in rows:
                s.expunge(row)
        return [r for r in rows if channel is None or r.channel_id == channel]

    def dms(self, user: str) -> list[OutboxMessage]:
        return [r for r in self.outbox(user) if r.method == "chat.postMessage"]

    def dm_refs(self, user: str) -> list[str]:
        return [str(r.ref) for r in self.dms(user)]

    def session(self, session_id: int | None = None) -> ProtocolSession:
        with self.db.session() as s:
            query = select(ProtocolSession).order_by(ProtocolSession.id.desc())
            if session_id is not None:
                query = query.where(ProtocolSession.id == session_id)
            session = s.scalars(query).first()
            assert session is not None
            s.expunge(session)
            return session

    def due(self, session_id: int, kind: str) -> None:
        prep.due(self.engine, session_id, kind)


def make_world(database_url: str, now: datetime) -> World:
    migrated_copy(database_url)
    db = Database(database_url)
    to_head(db)
    library, errors = load_library([BUILTIN_DIR])
    assert not errors
    clock, timers = FakeClock(now), RecordingTimers()
    engine = Engine(db, library, clock, timers)
    prep.install(engine)
    return World(db, engine, clock, timers, FakeProfiles())


# -- the prep dialog as Slack sends it ----------------------------------------------------------


def dialog_values(
    reason: str | None = "wondering",
    statement: str = "Make a bar graph of the class's favourite fruit, then write two sentences.",
    link: str = "https://docs.example.org/work/42",
    confirmed: bool = True,
) -> dict[str, Any]:
    return {
        "reason": {
            "prep_reason": {
                "type": "radio_buttons",
                "selected_option": {"value": reason, "text": {"type": "plain_text", "text": "x"}}
                if reason
                else None,
            }
        },
        "statement": {"statement": {"type": "plain_text_input", "value": statement or None}},
        "link": {"link": {"type": "url_text_input", "value": link or None}},
        "confirm": {
            "confirm": {
                "type": "checkboxes",
                "selected_options": [{"value": "yes", "text": {"type": "plain_text", "text": "x"}}]
                if confirmed
                else [],
            }
        },
    }


def view_submission(view: dict[str, Any], user: str, values: dict[str, Any]) -> str:
    """A view_submission interaction for `view` (as views.open stored it), signed by the caller."""
    payload = {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "standin"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": "A_APP",
        "token": "legacy-verification-token",
        "trigger_id": f"{time.time():.6f}.{uuid.uuid4().hex}",
        "view": {**view, "state": {"values": values}},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return interaction_body(payload)


def view_action(view: dict[str, Any], user: str, reason: str) -> str:
    """A block_actions interaction from inside an open modal: the reason was picked."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "team_id": TEAM},
        "team": {"id": TEAM, "domain": "standin"},
        "api_app_id": "A_APP",
        "trigger_id": f"{time.time():.6f}.{uuid.uuid4().hex}",
        "container": {"type": "view", "view_id": view["id"]},
        "view": view,
        "actions": [
            {
                "type": "radio_buttons",
                "action_id": "prep_reason",
                "block_id": "reason",
                "selected_option": {"value": reason, "text": {"type": "plain_text", "text": "x"}},
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return interaction_body(payload)


def parsed_body(body: str) -> dict[str, Any]:
    return json.loads(body) if body.strip() else {}


NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)  # Monday: 10:00 in Los Angeles, 13:00 in New York
