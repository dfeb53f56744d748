"""App Home: publish the person's sessions when they open the tab; send past notes on request."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.engine.home import publish_home, send_notes
from bot.listeners.people import actor_from_action
from bot.runtime import Runtime


def register(app: App, runtime: Runtime) -> None:
    @app.event("app_home_opened")
    def home_opened(ack: Ack, body: dict[str, Any], event: dict[str, Any]) -> None:
        ack()
        if event.get("tab", "home") == "home" and event.get("user"):
            team = str(body.get("team_id") or "")
            enterprise = str(body.get("enterprise_id") or "")
            publish_home(runtime.engine, team, enterprise, str(event["user"]))

    @app.action("home_notes")
    def home_notes(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        ack()
        value = str(action.get("value") or "")
        if value.isdigit():
            send_notes(runtime.engine, actor_from_action(body, client), int(value))
