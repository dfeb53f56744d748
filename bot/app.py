"""build_app(runtime) -> a Bolt App with every listener registered."""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse, Respond
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.middleware import IgnoringSelfEvents

from bot.blocks import render_message
from bot.listeners import register_all
from bot.logs import DATABASE, Outage
from bot.oauth import TokenNotRenewed
from bot.render import render_text
from bot.runtime import Runtime
from bot.store.db import reached_database

log = logging.getLogger(__name__)


class _QuietTokenNotice(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and warns that our client (with its base URL) wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "will be unused" not in record.getMessage()


class _TurnedAwayInOneLine(logging.Filter):
    """Bolt's lines for a request it turns away for want of a token (the workspace uninstalled
    the app; Slack refuses the one token): an ERROR for each, the second over two lines with
    Slack's whole answer. The person who typed is told; the log says it in one line, at INFO."""

    LOGGERS = ("slack_bolt.SingleTeamAuthorization", "slack_bolt.MultiTeamsAuthorization")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name not in self.LOGGERS or record.levelno < logging.ERROR:
            return True
        if not logging.getLogger("bot").isEnabledFor(logging.INFO):
            return False
        refused = re.search(r"'error': '(\w+)'", record.getMessage())
        said = (
            f"Slack refuses the bot's token ({refused.group(1)})"
            if refused
            else "the app is not installed in its workspace"
        )
        record.msg, record.args = f"a request turned away: {said}", None
        record.levelno, record.levelname = logging.INFO, "INFO"
        return True


# A NUL character (U+0000) as a request spells it: in JSON, in a form's JSON payload, or typed
# into a slash command. PostgreSQL's text holds none (a reply or a prep statement holding one
# failed at every try), and it shows nothing.
_NUL_SPELLINGS = ("\\u0000", "%5Cu0000", "%5cu0000", "%00")


def _without_nul(value: Any) -> Any:
    """`value` with every NUL character taken out of its strings, keys and all."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _take_out_nul(req: BoltRequest) -> None:
    """Leave no NUL character in the body the listeners read (Bolt checks the signature on the
    raw text). Looked for in that text (Socket Mode's comes parsed): most requests hold none."""
    raw = req.raw_body or json.dumps(req.body)
    if any(spelling in raw for spelling in _NUL_SPELLINGS):
        req.body = _without_nul(req.body)


# Set by on_error for the request its thread is dispatching.
_failing = threading.local()


class _App(App):
    """Bolt's App, telling its outage (see on_error) when a request went through again."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outage = Outage(log, "handling Slack requests")

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        _failing.now = False
        _take_out_nul(req)
        reached = reached_database()
        response = super().dispatch(req)
        # Only a request that reached the database says it is back: most of what Slack sends
        # (talk the bot does not keep) is acked without it, in an outage too.
        if not _failing.now and (self.outage.service != DATABASE or reached_database() != reached):
            self.outage.ok()
        return response


class _IgnoringSelfEvents(IgnoringSelfEvents):
    """Bolt's, but a message of the bot's deleted comes through: a step's post someone
    deleted, or its copy in the step's thread, which the bot puts back (see Replies.deleted)."""

    @classmethod
    def _is_self_event(
        cls,
        auth_result: AuthorizeResult,
        user_id: str | None,
        bot_id: str | None,
        body: dict[str, Any],
    ) -> bool:
        event = body.get("event") or {}
        if event.get("subtype") == "message_deleted":
            return False
        return bool(super()._is_self_event(auth_result, user_id, bot_id, body))


def build_app(runtime: Runtime) -> App:
    settings = runtime.settings
    app = _App(
        signing_secret=settings.slack_signing_secret or "",
        client=runtime.client,
        # Listeners store before they ack and hand slow work to our own workers.
        process_before_response=True,
        token_verification_enabled=False,
        logger=_bolt_logger(),
        # Many workspaces: /slack/install, /slack/oauth_redirect, a token per installation.
        oauth_settings=runtime.installations.oauth_settings() if runtime.installations else None,
        # Bolt's own words say "for some unknown reason" the installation is "no longer" there.
        user_facing_authorize_error_message=render_text("refusals/not_installed.j2"),
        ignoring_self_events_enabled=False,  # _IgnoringSelfEvents, below
    )

    @app.error
    def on_error(error: Exception, body: dict[str, Any], respond: Respond | None) -> BoltResponse:
        _failing.now = True
        # One place for the unexpected: log the type and where, never the payload's text.
        # Slack or the database out of reach fails every request alike: a line now and then.
        # A token Slack did not renew was said by bot.oauth, and is no fault of ours.
        if not isinstance(error, TokenNotRenewed) and not app.outage.failed(error):
            log.error("listener failed: %s", type(error).__name__, exc_info=error)
        if body.get("type") == "event_callback":
            # Perhaps not stored (the database out of reach): a 500 has Slack send it again,
            # and an event that was stored after all is recognised as a retry then.
            return BoltResponse(status=500, body="")
        if isinstance(error, TokenNotRenewed) and respond is not None and not body.get("command"):
            # A button pressed in a step's message: Bolt said "not installed" here before.
            message = render_message("refusals/command_failed.j2")
            try:
                respond(text=message.text, blocks=message.blocks, response_type="ephemeral")
            except OSError as unsent:  # Slack out of reach as well: the press goes unanswered
                log.warning("could not answer a button press: %s", type(unsent).__name__)
        if body.get("command"):
            # A slash command answered with nothing leaves its author wondering: say so.
            message = render_message("refusals/command_failed.j2")
            answer = {"response_type": "ephemeral", "text": message.text, "blocks": message.blocks}
            return BoltResponse(
                status=200,
                body=json.dumps(answer),
                headers={"content-type": "application/json;charset=utf-8"},
            )
        return BoltResponse(status=200, body="")

    app.outage.on_over = runtime.requests_back
    app.use(_IgnoringSelfEvents(base_logger=app.logger))
    if runtime.one_workspace is not None:
        # One token: requests from other workspaces are turned away before any listener.
        app.use(runtime.one_workspace)
    register_all(app, runtime)
    return app


def _bolt_logger() -> logging.Logger:
    logger = logging.getLogger("bot.bolt")
    if not any(isinstance(f, _QuietTokenNotice) for f in logger.filters):
        logger.addFilter(_QuietTokenNotice())
    # Bolt's middleware loggers take the filters of this one when they have none.
    if not any(isinstance(f, _TurnedAwayInOneLine) for f in logger.filters):
        logger.addFilter(_TurnedAwayInOneLine())
    return logger
