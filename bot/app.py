"""build_app(runtime) -> a Bolt App with every listener registered."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltResponse

from bot.listeners import register_all
from bot.runtime import Runtime

log = logging.getLogger(__name__)


class _QuietTokenNotice(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and warns that our client (with its base URL) wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "will be unused" not in record.getMessage()


def build_app(runtime: Runtime) -> App:
    settings = runtime.settings
    app = App(
        signing_secret=settings.slack_signing_secret or "",
        client=runtime.client,
        # Listeners store before they ack and hand slow work to our own workers.
        process_before_response=True,
        token_verification_enabled=False,
        logger=_bolt_logger(),
        # Many workspaces: /slack/install, /slack/oauth_redirect, a token per installation.
        oauth_settings=runtime.installations.oauth_settings() if runtime.installations else None,
    )

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
        # One place for the unexpected: log the type and where, never the payload's text.
        log.error("listener failed: %s", type(error).__name__, exc_info=error)
        if body.get("type") == "event_callback":
            # Perhaps not stored (the database out of reach): a 500 has Slack send it again,
            # and an event that was stored after all is recognised as a retry then.
            return BoltResponse(status=500, body="")
        return BoltResponse(status=200, body="")

    register_all(app, runtime)
    return app


def _bolt_logger() -> logging.Logger:
    logger = logging.getLogger("bot.bolt")
    if not any(isinstance(f, _QuietTokenNotice) for f in logger.filters):
        logger.addFilter(_QuietTokenNotice())
    return logger
