"""Events API: store what matters, acknowledge everything, handle it after the ack."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack, App

from bot.runtime import Runtime

# Every event type but the Home tab's, which bot/listeners/home.py answers (and doesn't store).
STORED = re.compile(r"^(?!app_home_opened$)")


def register(app: App, runtime: Runtime) -> None:
    @app.event(STORED)
    def any_event(ack: Ack, body: dict[str, Any]) -> None:
        stored = runtime.inbox.accept(body)
        ack()
        if stored is not None:
            runtime.inbox.submit(stored)
