"""People as Slack's users.info and team.info describe them: time zone, still here, human."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.keepalive import KeepAliveWebClient

log = logging.getLogger(__name__)
# Slack's own Slackbot, which users.info calls no bot (is_bot false): it can't present.
SLACKBOT = "USLACKBOT"

DEFAULT_ZONE = "UTC"
# The lookups are made before an ack, inside Slack's 3 seconds: each call may take CALL_SECONDS,
# and none starts once less than that is left of BUDGET_SECONDS (so they end by then).
CALL_SECONDS = 1
BUDGET_SECONDS = 2.0


@dataclass(frozen=True)
class Person:
    id: str
    tz: str | None
    gone: bool  # deactivated, or unknown to the workspace
    is_bot: bool


@dataclass(frozen=True)
class Zone:
    """The zone a clock time was read in, and where it came from: user, workspace or default."""

    name: str
    source: str = "user"


def _valid(tz: object) -> str | None:
    if not isinstance(tz, str) or not tz:
        return None
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return tz


def impatient(client: WebClient, seconds: int) -> WebClient:
    """The request's client on a short timeout and without retries, for a call made before an
    ack, inside Slack's 3 seconds: a slow answer is an outage. Kept alive like every other
    client (its own connection, for its own timeout)."""
    return KeepAliveWebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=seconds,
        ssl=client.ssl,
        proxy=client.proxy,
        headers=client.headers,
        team_id=client.default_params.get("team_id"),
        logger=client.logger,
        retry_handlers=[],
    )


class SlackProfiles:
    """The engine's read-only view of people, over one workspace's WebClient."""

    def __init__(
        self,
        client: WebClient,
        *,
        budget: float = BUDGET_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._request_client = client
        self._client: WebClient | None = None
        self._monotonic = monotonic
        self._deadline = monotonic() + budget

    @property
    def client(self) -> WebClient:
        # Made at the first call: most commands ask Slack nothing, and a client costs 50 µs.
        if self._client is None:
            self._client = impatient(self._request_client, CALL_SECONDS)
        return self._client

    def _in_time(self) -> bool:
        return self._deadline - self._monotonic() >= CALL_SECONDS

    def person(self, user_id: str) -> Person | None:
        """None when Slack cannot say in time (an outage): the caller goes ahead without the
        check."""
        if not self._in_time():
            return None
        try:
            user = self.client.users_info(user=user_id)["user"]
        except SlackApiError as error:
            if error.response.get("error") in ("user_not_found", "user_not_visible"):
                return Person(user_id, None, gone=True, is_bot=False)
            log.warning("users.info failed: %s", error.response.get("error"))
            return None
        except OSError as error:  # timed out, or no connection
            log.warning("users.info failed: %s", type(error).__name__)
            return None
        return Person(
            user_id,
            _valid(user.get("tz")),
            gone=bool(user.get("deleted")),
            is_bot=bool(user.get("is_bot") or user.get("is_app_user")) or user_id == SLACKBOT,
        )

    def workspace_zone(self) -> str | None:
        """Slack's team.info has no zone today; honour one if it ever carries it."""
        if not self._in_time():
            return None
        try:
            team = self.client.team_info()["team"]
        except (SlackApiError, OSError):
            return None
        return _valid(team.get("tz") or team.get("timezone"))

    def zone_of(self, user_id: str) -> Zone | None:
        """The caller's zone; without one, the workspace's, else the default (and we say so).

        None when Slack cannot say (an outage): a time read in a guessed zone would be hours off,
        and saying the profile has no zone would be false."""
        person = self.person(user_id)
        if person is None:
            return None
        if person.tz:
            return Zone(person.tz, "user")
        workspace = self.workspace_zone()
        if workspace:
            return Zone(workspace, "workspace")
        return Zone(DEFAULT_ZONE, "default")
