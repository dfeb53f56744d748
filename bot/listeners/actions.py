"""Buttons on step messages; every other action is acknowledged so Slack never sees a 404."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.blocks import render_message
from bot.engine import controls
from bot.engine.core import Pressed
from bot.engine.errors import Refusal, Reply
from bot.listeners.people import (
    actor_from_action,
    after_refusal,
    installed_team,
    token_refused,
)
from bot.runtime import Runtime


def _say(respond: Respond, reply: Reply) -> None:
    """A button's answer, to the person who pressed it only, below the message."""
    message = render_message(reply.template, **reply.context)
    respond(
        text=message.text, blocks=message.blocks, response_type="ephemeral", replace_original=False
    )


def register(app: App, runtime: Runtime) -> None:
    @app.action(re.compile(r"^step_(next|extend|pause|resume)$"))
    def step_button(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        """Facilitator buttons on a step message; the same permissions as the commands."""
        ack()
        action = body["actions"][0]
        pressed = Pressed.parse(str(action.get("value") or ""))
        actor = actor_from_action(body, client)
        refused = token_refused(client, actor.team_id, runtime.sender.installation_gone)
        if refused is not None:
            _say(respond, refused)
            return
        engine = runtime.engine
        if action["action_id"] == "step_next":
            runtime.inbox.caught_up(actor.team_id)  # the last step's Finish: replies before it in
        run = {
            "step_next": lambda: engine.next_step(actor, pressed),
            "step_extend": lambda: controls.extend_step(engine, actor, pressed),
            "step_pause": lambda: controls.pause(engine, actor, pressed),
            "step_resume": lambda: controls.resume(engine, actor, pressed),
        }[action["action_id"]]
        try:
            reply = run()
        except Refusal as refusal:
            reply = refusal.reply
        _say(respond, reply)
        after_refusal(runtime, actor, reply)

    @app.action(re.compile(r"^nudge_(keep|park)$"))
    def nudge_choice(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        """The author keeps a judgment-like reply as an observation, or parks it."""
        ack()
        action = body["actions"][0]
        value = str(action.get("value") or "")
        try:
            reply = runtime.replies.choose(
                installed_team(body),
                body["user"]["id"],
                int(value) if value.isdigit() else 0,
                park=action["action_id"] == "nudge_park",
            )
        except Refusal as refusal:
            message = render_message(refusal.reply.template, **refusal.reply.context)
            respond(
                text=message.text,
                blocks=message.blocks,
                replace_original=False,
                response_type="ephemeral",
            )
            return
        message = render_message(reply.template, **reply.context)
        respond(text=message.text, blocks=message.blocks, replace_original=True)

    @app.action("held_end")
    def end_away(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        """The facilitator ends, from their DMs, a session whose channel can't be reached."""
        ack()
        value = str(body["actions"][0].get("value") or "")
        actor = actor_from_action(body, client)
        try:
            reply = controls.end_away(runtime.engine, actor, int(value) if value.isdigit() else 0)
        except Refusal as refusal:
            reply = refusal.reply
        _say(respond, reply)

    @app.action(re.compile(".*"))
    def any_action(ack: Ack) -> None:
        ack()
