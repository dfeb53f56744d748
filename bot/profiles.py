"""People as Slack's users.info and team.info describe them: time zone, still here, human."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

DEFAULT_ZONE = "UTC"


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


class SlackProfiles:
    """The engine's read-only view of people, over one workspace's WebClient."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def person(self, user_id: str) -> Person | None:
        """None when Slack cannot say (an outage): the caller goes ahead without the check."""
        try:
            user = self.client.users_info(user=user_id)["user"]
        except SlackApiError as error:
            if error.response.get("error") in ("user_not_found", "user_not_visible"):
                return Person(user_id, None, gone=True, is_bot=False)
            log.warning("users.info failed: %s", error.response.get("error"))
            return None
        return Person(
            user_id,
            _valid(user.get("tz")),
            gone=bool(user.get("deleted")),
            is_bot=bool(user.get("is_bot") or user.get("is_app_user")),
        )

    def workspace_zone(self) -> str | None:
        """Slack's team.info has no zone today; honour one if it ever carries it."""
        try:
            team = self.client.team_info()["team"]
        except SlackApiError:
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
