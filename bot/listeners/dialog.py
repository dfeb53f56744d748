"""The start dialog: /protocol alone opens it; its submission starts or schedules a session."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.blocks import render_message
from bot.commands import Start
from bot.dialogs import StartChoice, inline_error, read_start
from bot.engine import ahead
from bot.engine.core import Actor
from bot.engine.errors import Refusal
from bot.listeners.people import after_start, installed_team, is_admin
from bot.profiles import SlackProfiles
from bot.render import render_text
from bot.runtime import Runtime

ZONE_UNAVAILABLE = "refusals/zone_unavailable.j2"


def register(app: App, runtime: Runtime) -> None:
    @app.view("start_dialog")
    def start_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        choice = read_start(view, runtime.clock.now(), runtime.library)
        if not isinstance(choice, StartChoice):
            ack(response_action="errors", errors=choice)
            return
        meta = json.loads(view.get("private_metadata") or "{}")
        user = body["user"]["id"]
        actor = Actor(
            team_id=installed_team(body),
            user_id=user,
            channel_id=meta.get("channel") or "",
            enterprise_id=meta.get("enterprise") or "",
            is_admin=lambda: is_admin(client, user),
        )
        profiles = SlackProfiles(client)
        zone = profiles.zone_of(user)
        if zone is None and (choice.start_at is not None or choice.weekdays):
            # The picked time is shown back in the caller's zone, and the weekend is theirs:
            # wait for Slack rather than guess.
            field = "start_at" if choice.start_at is not None else "weekdays"
            ack(response_action="errors", errors={field: render_text(ZONE_UNAVAILABLE)})
            return
        request = Start(
            protocol=choice.protocol,
            presenter=choice.presenter,
            start_at=choice.start_at,
            step_seconds=choice.step_seconds,
            step_days=choice.step_days,
            weekdays=choice.weekdays,
            remind_seconds=choice.remind_seconds,
        )
        try:
            # The same path as `/protocol start`: presenter checks, scheduling limits, prep.
            reply = ahead.start(
                runtime.engine,
                actor,
                request,
                tz=zone.name if zone else "UTC",
                zone=zone,
                profiles=profiles,
            )
        except Refusal as refusal:
            ack(response_action="errors", errors=inline_error(refusal.reply))
            return
        ack()
        runtime.engine.tell(actor, render_message(reply.template, **reply.context))
        after_start(runtime, actor, reply)
