"""Who is in a channel, asked of Slack and remembered briefly: the engine's read-only port."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)
TTL_SECONDS = 300.0


class SlackDirectory:
    def __init__(self, client_for: Callable[[str], WebClient | None]) -> None:
        self.client_for = client_for
        self._bots: dict[tuple[str, str], bool] = {}
        self._members: dict[tuple[str, str], tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    def members(self, team_id: str, channel: str) -> list[str]:
        """People in a channel (no bots, no deactivated accounts); [] if Slack will not say."""
        key = (team_id, channel)
        with self._lock:
            cached = self._members.get(key)
        if cached and time.monotonic() - cached[0] < TTL_SECONDS:
            return cached[1]
        client = self.client_for(team_id)
        if client is None:
            return []
        try:
            ids: list[str] = []
            cursor = None
            while True:
                page = client.conversations_members(channel=channel, cursor=cursor, limit=200)
                ids.extend(page.get("members") or [])
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
            people = [user for user in ids if not self._is_bot(client, team_id, user)]
        except SlackApiError as error:
            log.warning("could not list members of a channel: %s", error.response.get("error"))
            return []
        with self._lock:
            self._members[key] = (time.monotonic(), people)
        return people

    def _is_bot(self, client: WebClient, team_id: str, user: str) -> bool:
        key = (team_id, user)
        if key not in self._bots:
            try:
                info = client.users_info(user=user)["user"]
                self._bots[key] = bool(info.get("is_bot") or info.get("deleted"))
            except SlackApiError:
                self._bots[key] = True
        return self._bots[key]
