"""Presenter prep: the buttons in the reminder DMs, the prep dialog, the facilitator's switch."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import prep_views
from bot.blocks import render_message
from bot.engine import prep_dialog
from bot.engine.errors import Refusal, Reply
from bot.engine.home import publish_home
from bot.listeners.commands import DIALOG_SECONDS
from bot.listeners.people import actor_from_action, installed_team
from bot.profiles import impatient
from bot.runtime import Runtime

log = logging.getLogger(__name__)


def _why(error: Exception) -> str:
    if isinstance(error, SlackApiError):
        return str(error.response.get("error"))
    return type(error).__name__


def _number(text: object) -> int:
    value = str(text or "").partition(":")[0]
    return int(value) if value.isdigit() else 0


def _say(respond: Respond, reply: Reply) -> None:
    message = render_message(reply.template, **reply.context)
    respond(
        text=message.text, blocks=message.blocks, response_type="ephemeral", replace_original=False
    )


def _on_home(body: dict[str, Any]) -> bool:
    """Pressed on App Home: no response_url to answer under, and a Home to bring up to date."""
    return (body.get("view") or {}).get("type") == "home"


def _enterprise(body: dict[str, Any]) -> str:
    return str((body.get("enterprise") or {}).get("id") or "")


def register(app: App, runtime: Runtime) -> None:
    engine = runtime.engine

    @app.action("prep_open")
    @app.action("prep_guidance")
    def open_modal(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        action = body["actions"][0]
        team, user, on_home = installed_team(body), body["user"]["id"], _on_home(body)
        try:
            session = prep_dialog.opening(engine, team, user, _number(action.get("value")))
        except Refusal as refusal:
            if not on_home:
                _say(respond, refusal.reply)
                return
            # The session moved on since Home was drawn: say why, and draw it again.
            reply = refusal.reply
            view = prep_views.notice_view(reply.template, **reply.context)
            publish_home(engine, team, _enterprise(body), user)
        else:
            # The trigger_id expires in 3 seconds, so the modal opens here, not via the outbox.
            protocol = engine.library[session.protocol_id]
            if action["action_id"] == "prep_open":
                view = prep_views.dialog_view(
                    session, protocol, engine.library, viewer=user, from_home=on_home
                )
            else:
                view = prep_views.guidance_view(session, protocol, engine.library)
        try:
            impatient(client, DIALOG_SECONDS).views_open(trigger_id=body["trigger_id"], view=view)
        except (SlackApiError, OSError) as error:
            log.warning("views.open for prep failed: %s", _why(error))
            if not on_home:
                _say(respond, Reply("prep/refusals/dialog_failed.j2"))

    @app.action(prep_views.REASON_ACTION)
    def reason_picked(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """The reason changed in an open dialog: show the protocol that suits it."""
        ack()
        view = body.get("view") or {}
        reason = (body["actions"][0].get("selected_option") or {}).get("value")
        try:
            session = prep_dialog.opening(
                engine,
                installed_team(body),
                body["user"]["id"],
                prep_views.session_id_of(view) or 0,
            )
        except Refusal:
            return
        protocol = engine.library[session.protocol_id]
        updated = prep_views.dialog_view(
            session,
            protocol,
            engine.library,
            reason,
            viewer=body["user"]["id"],
            from_home=prep_views.from_home(view),
        )
        client.views_update(view_id=view["id"], hash=view.get("hash"), view=updated)

    @app.action("prep_switch")
    def switch(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        value = str(body["actions"][0].get("value") or "")
        session_id, _, protocol_id = value.partition(":")
        actor = actor_from_action(body, client)
        try:
            reply = prep_dialog.switch(engine, actor, _number(session_id), protocol_id)
        except Refusal as refusal:
            reply = refusal.reply
        _say(respond, reply)

    @app.view(prep_views.CALLBACK_ID)
    def submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        session_id = prep_views.session_id_of(view) or 0
        codes = prep_dialog.submit(
            engine,
            installed_team(body),
            body["user"]["id"],
            session_id,
            prep_views.read_submission(view),
        )
        if not codes:
            ack()
            if prep_views.from_home(view):
                publish_home(engine, installed_team(body), _enterprise(body), body["user"]["id"])
            return
        session = prep_dialog.load(engine, session_id)
        protocol = engine.library.get(session.protocol_id) if session else None
        ack(
            response_action="errors",
            errors=prep_views.error_messages(codes, session, protocol, engine.library),
        )
