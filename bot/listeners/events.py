"""Events API: store what matters, acknowledge everything, handle it after the ack."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App
from sqlalchemy.exc import DBAPIError

from bot.inbox import event_of, event_team, top_level_message
from bot.runtime import Runtime

log = logging.getLogger(__name__)

# Every event type but the Home tab's, which bot/listeners/home.py answers (and doesn't store).
STORED = re.compile(r"^(?!app_home_opened$)")


def register(app: App, runtime: Runtime) -> None:
    @app.event(STORED)
    def any_event(ack: Ack, body: dict[str, Any]) -> None:
        stored = runtime.inbox.accept(body)
        ack()
        if stored is not None:
            runtime.inbox.submit(stored)
        elif top_level_message(body.get("event") or {}):
            runtime.answers.submit(_top_level, runtime, event_team(body), event_of(body))


def _top_level(runtime: Runtime, team_id: str, event: dict[str, Any]) -> None:
    try:
        runtime.replies.top_level(team_id, event)
    except DBAPIError as exc:
        # A courtesy missed, the words the channel's talk and never a reply to keep: an outage
        # is told by what it stops, not once more for every message of the channel's talk.
        log.debug("could not tell where replies go: %s", type(exc).__name__)
    except Exception as exc:
        log.warning("could not tell where replies go: %s", type(exc).__name__, exc_info=exc)
