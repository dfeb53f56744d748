"""build_app(runtime) -> a Bolt App with every listener registered."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltResponse

from bot.listeners import register_all
from bot.runtime import Runtime

log = logging.getLogger(__name__)


def build_app(runtime: Runtime) -> App:
    settings = runtime.settings
    app = App(
        signing_secret=settings.slack_signing_secret or "",
        client=runtime.client,
        # Listeners store before they ack and hand slow work to our own workers.
        process_before_response=True,
        token_verification_enabled=False,
        logger=logging.getLogger("bot.bolt"),
    )

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
        # One place for the unexpected: log the type and where, never the payload's text.
        log.error("listener failed: %s", type(error).__name__, exc_info=error)
        return BoltResponse(status=200, body="")

    register_all(app, runtime)
    return app
