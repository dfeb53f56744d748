"""With one SLACK_BOT_TOKEN: serve the workspace the token belongs to, and no other.

Slack sends a request to the app's URL from wherever the app is installed (or from anyone who
signs with its secret, such as a second workspace the operator tried it in). With OAuth each
request is answered with its own workspace's token, or refused; with one token it would be acted
on with the token's workspace's identity, its sessions kept apart only by the team id Slack gave.
auth.test says what the token belongs to: a workspace, or, installed org-wide on Enterprise Grid,
an organisation, whose every workspace is served. Once Slack refuses the token (revoked, or the
bot's account deactivated, with no event to say so) requests are told the app is not installed,
as they are with OAuth, until auth.test takes the token again. A web process beside a clock makes
few calls of its own (the clock posts), so it hears of a refusal by asking auth.test again once
a minute: in the background, while requests go on with what it said last.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks import render_message
from bot.profiles import CALL_SECONDS, impatient
from bot.slack import INSTALLATION_GONE

log = logging.getLogger(__name__)
ELSEWHERE = "refusals/other_workspace.j2"
# How long what auth.test said is taken as still true.
RECHECK_SECONDS = 60.0
GONE = "refusals/not_installed.j2"


@dataclass(frozen=True)
class TokenHome:
    """Where the bot token belongs, as auth.test tells it."""

    team_id: str
    enterprise_id: str
    org_wide: bool

    def serves(self, team_id: str | None, enterprise_id: str | None) -> bool:
        if self.org_wide:
            return bool(enterprise_id) and enterprise_id == self.enterprise_id
        return team_id == self.team_id


class OneWorkspace(Middleware):
    """Runs after Bolt's own authorization, which checked the token once: a request from
    elsewhere, or after Slack refused the token, is acknowledged, its author told, and nothing
    else happens."""

    def __init__(self, client: WebClient) -> None:
        self.client = client
        self.recheck_seconds = RECHECK_SECONDS
        self._home: TokenHome | None = None
        self._checked_at = 0.0  # time.monotonic() of the last answer from auth.test
        self._lock = threading.Lock()
        self._refreshing = False  # a background auth.test under way
        self._refused: set[str] = set()  # workspaces already logged

    def token_refused(self) -> None:
        """Slack refused the token on a call: ask auth.test again before the next request."""
        self._home = None

    def _ask(self) -> TokenHome | str | None:
        """The token's workspace; GONE when Slack refuses the token; None when Slack can't be
        asked now (the request goes on: Bolt has checked the token)."""
        with self._lock:
            if self._fresh():
                return self._home
            known = self._home
            try:
                # Before an ack, within Slack's 3 seconds.
                auth = impatient(self.client, CALL_SECONDS).auth_test()
            except SlackApiError as error:
                if error.response.get("error") in INSTALLATION_GONE:
                    self._home = None
                    return GONE
                log.warning("auth.test failed: %s", error.response.get("error"))
                self._checked_at = time.monotonic()  # not asked again at every request
                return known
            except OSError as error:
                log.warning("auth.test failed: %s", type(error).__name__)
                self._checked_at = time.monotonic()
                return known
            self._checked_at = time.monotonic()
            self._home = TokenHome(
                team_id=str(auth.get("team_id") or ""),
                enterprise_id=str(auth.get("enterprise_id") or ""),
                org_wide=bool(auth.get("is_enterprise_install")),
            )
            return self._home

    def _fresh(self) -> bool:
        return self._home is not None and time.monotonic() - self._checked_at < self.recheck_seconds

    def _known(self) -> TokenHome | str | None:
        """What auth.test said last, asking it again in the background once that is stale: no
        request waits on the recheck (against Slack a call can take a good part of a second).
        With nothing known (the first request, or after a refusal) the request asks itself."""
        home = self._home
        if home is None:
            return self._ask()
        if not self._fresh():
            with self._lock:
                starting, self._refreshing = not self._refreshing, True
            if starting:
                threading.Thread(target=self._refresh, name="auth-recheck", daemon=True).start()
        return home

    def _refresh(self) -> None:
        try:
            self._ask()  # a refusal forgets the home: the next request asks, and is told
        finally:
            self._refreshing = False

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        team, enterprise = req.context.team_id, req.context.enterprise_id
        if not team and not enterprise:
            return next()  # nothing to tell by (Slack's url_verification, ssl_check)
        home = self._known()
        if home is None or (isinstance(home, TokenHome) and home.serves(team, enterprise)):
            return next()
        if home != GONE:
            where = f"{enterprise}/{team}" if enterprise else str(team)
            if where not in self._refused and len(self._refused) < 1000:
                self._refused.add(where)
                log.warning(
                    "refused requests from workspace %s: the bot token is for another", where
                )
        return _refusal(req, ELSEWHERE if home != GONE else GONE)


def _refusal(req: BoltRequest, template: str) -> BoltResponse:
    message = render_message(template)
    if req.body.get("command"):
        answer = {"response_type": "ephemeral", "text": message.text, "blocks": message.blocks}
        return BoltResponse(
            status=200,
            body=json.dumps(answer),
            headers={"content-type": "application/json;charset=utf-8"},
        )
    respond = req.context.respond if req.context.response_url else None
    if respond is not None:
        try:
            respond(text=message.text, blocks=message.blocks)
        except Exception as error:  # response_url refused or unreachable: nothing changed
            log.warning("refusal not delivered: %s", type(error).__name__)
    # Events are acknowledged, so that Slack does not send them again, and dropped.
    return BoltResponse(status=200, body="")
