"""Events API: store what matters, acknowledge everything, handle it after the ack."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack, App

from bot.runtime import Runtime


def register(app: App, runtime: Runtime) -> None:
    @app.event(re.compile(".*"))
    def any_event(ack: Ack, body: dict[str, Any]) -> None:
        row_id = runtime.inbox.accept(body)
        ack()
        if row_id is not None:
            event = body.get("event") or {}
            # Reactions name their channel under item: keep them in the lane of their message.
            channel = event.get("channel") or (event.get("item") or {}).get("channel")
            runtime.inbox.submit(row_id, channel)
