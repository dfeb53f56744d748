"""App Home: publish the person's sessions when they open the tab; send past notes on request."""

from __future__ import annotations

import threading
import time
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.engine.controls import DOUBLE_PRESS
from bot.engine.home import publish_home, send_notes
from bot.listeners.people import actor_from_action
from bot.runtime import Runtime

# Two presses of "Send me the notes" as close together as DOUBLE_PRESS are a double click: one
# copy. Held in the process that answers (a double click reaches one, as a rule).
DOUBLE_PRESS_SECONDS = DOUBLE_PRESS.total_seconds()


def register(app: App, runtime: Runtime) -> None:
    pressed: dict[tuple[str, str, str], float] = {}
    lock = threading.Lock()

    def double_click(team: str, user: str, value: str) -> bool:
        now = time.monotonic()
        with lock:
            for key in [k for k, at in pressed.items() if now - at >= DOUBLE_PRESS_SECONDS]:
                del pressed[key]
            if (team, user, value) in pressed:
                return True
            pressed[(team, user, value)] = now
            return False

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
            actor = actor_from_action(body, client)
            if not double_click(actor.team_id, actor.user_id, value):
                send_notes(runtime.engine, actor, int(value))
