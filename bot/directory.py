"""Who is in a channel, whether Slack shows the bot a channel at all, and what people are
called, asked of Slack (the names and members remembered briefly): the engine's read-only port."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.profiles import CALL_SECONDS, SLACKBOT, impatient

log = logging.getLogger(__name__)
TTL_SECONDS = 300.0
# Names change seldom, and a reply's author or mention is asked about once in this long.
NAME_TTL_SECONDS = 3600.0
# After Slack left a name unanswered (a timeout, a 5xx, a rate limit), names in that workspace
# are not asked for this long: each ask held up the reply being handled, and those queued
# behind it, by up to CALL_SECONDS. A name asked before is given as it was meanwhile.
NAME_QUIET_SECONDS = 30.0


class SlackDirectory:
    def __init__(self, client_for: Callable[[str], WebClient | None]) -> None:
        self.client_for = client_for
        self._bots: dict[tuple[str, str], bool] = {}
        self._members: dict[tuple[str, str], tuple[float, list[str]]] = {}
        self._names: dict[tuple[str, str], tuple[float, str | None]] = {}
        self._quiet_until: dict[str, float] = {}  # by workspace: see NAME_QUIET_SECONDS
        self._lock = threading.Lock()

    def members(self, team_id: str, channel: str) -> list[str]:
        """People in a channel (no bots, no deactivated accounts); [] if Slack will not say."""
        ids = self._member_ids(team_id, channel)
        client = self.client_for(team_id)
        if ids is None or client is None:
            return []
        return [user for user in ids if not self._is_bot(client, team_id, user)]

    def absent(
        self, team_id: str, channel: str, users: list[str], *, fresh: bool = False
    ) -> list[str]:
        """Those of `users` who are not in the channel; [] if Slack will not say. One missing
        from the members remembered is asked about afresh: invited a moment ago, perhaps.
        `fresh`: the members remembered are not trusted either (one may have left since)."""
        ids = self._member_ids(team_id, channel, fresh=fresh)
        missing = [user for user in users if ids is not None and user not in ids]
        if missing and not fresh:
            ids = self._member_ids(team_id, channel, fresh=True)
            missing = [user for user in missing if ids is not None and user not in ids]
        return missing

    def still_in(self, team_id: str, channel: str, user: str) -> bool | None:
        """Whether someone Slack says left a channel is in it now (invited back since: Slack
        does not keep its events in order), asked afresh; None if Slack will not say. The
        members remembered are refreshed with it."""
        ids = self._member_ids(team_id, channel, fresh=True)
        return None if ids is None else user in ids

    def _member_ids(self, team_id: str, channel: str, *, fresh: bool = False) -> list[str] | None:
        """Everyone in a channel, bots too, remembered for TTL_SECONDS; None if Slack will not
        say."""
        key = (team_id, channel)
        with self._lock:
            cached = self._members.get(key)
        if cached and not fresh and time.monotonic() - cached[0] < TTL_SECONDS:
            return cached[1]
        client = self.client_for(team_id)
        if client is None:
            return None
        try:
            ids: list[str] = []
            cursor = None
            while True:
                page = client.conversations_members(channel=channel, cursor=cursor, limit=200)
                ids.extend(page.get("members") or [])
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        except SlackApiError as error:
            log.warning("could not list members of a channel: %s", error.response.get("error"))
            return None
        with self._lock:
            self._members[key] = (time.monotonic(), ids)
        return ids

    def _is_bot(self, client: WebClient, team_id: str, user: str) -> bool:
        """Whether a member is a bot or a deactivated account, as users.info says (remembered).
        Slack not saying now (a 429 past about 100 a minute, the first time a big channel's
        members are asked about; an outage) takes them for a person, and asks again next time:
        remembered as a bot, they were left out of every count and nudge until a restart."""
        key = (team_id, user)
        if key not in self._bots:
            try:
                info = client.users_info(user=user)["user"]
                self._bots[key] = bool(info.get("is_bot") or info.get("deleted")) or (
                    user == SLACKBOT
                )
            except SlackApiError as error:
                if error.response.get("error") not in _UNKNOWN:
                    return False
                self._bots[key] = True
            except OSError:  # timed out, or no connection
                return False
        return self._bots[key]

    def hidden(self, team_id: str, channel: str) -> bool:
        """Slack hides the channel from the bot: a private channel nobody has invited it to
        (it can't join one itself), or one gone. Asked before an ack, and never remembered (an
        invitation changes it). False when Slack can't say in time: the caller goes ahead, and
        a post refused later is explained to the facilitator (bot/engine/delivery.py)."""
        try:
            answer = self._quickly(team_id, "conversations.info", channel=channel)
        except SlackApiError as error:
            if error.response.get("error") == "channel_not_found":
                return True
            log.warning("could not look a channel up: %s", error.response.get("error"))
            return False
        found = (answer or {}).get("channel") or {}
        return bool(found.get("is_private")) and found.get("is_member") is False

    def in_channel(self, team_id: str, channel: str) -> bool | None:
        """Whether the bot is a member of a channel now; None when Slack can't say in time.
        Never remembered: asked when Slack says the bot left, which it may say late."""
        try:
            answer = self._quickly(team_id, "conversations.info", channel=channel)
        except SlackApiError as error:
            if error.response.get("error") == "channel_not_found":
                return False  # a private channel the bot is out of, or one gone
            log.warning("could not look a channel up: %s", error.response.get("error"))
            return None
        found = (answer or {}).get("channel") or {}
        member = found.get("is_member")
        return member if isinstance(member, bool) else None

    def thread(self, team_id: str, channel: str, ts: str) -> list[dict[str, Any]]:
        """Every message of a thread, oldest first; [] if Slack will not say. Out of a public
        channel (taken out of it), the bot joins it again first, as its next post there would:
        Slack shows a bot only the messages of channels it is in."""
        client = self.client_for(team_id)
        if client is None:
            return []
        try:
            return _thread(client, channel, ts)
        except SlackApiError as error:
            if error.response.get("error") != "not_in_channel":
                log.warning("could not read a thread: %s", error.response.get("error"))
                return []
        try:
            client.conversations_join(channel=channel)
            return _thread(client, channel, ts)
        except SlackApiError as error:
            log.warning("could not read a thread: %s", error.response.get("error"))
            return []

    def file(self, team_id: str, file_id: str) -> dict[str, Any] | None:
        """A file as files.info gives it (name, title, permalink); None if Slack will not say
        (not shared where the bot can see it, or no answer in time)."""
        client = self.client_for(team_id)
        if client is None:
            return None
        try:
            # Asked while a reply is handled, as names are: a slow answer is not waited on.
            answer = impatient(client, CALL_SECONDS).files_info(file=file_id)
        except SlackApiError as error:
            log.warning("could not look a file up: %s", error.response.get("error"))
            return None
        except OSError as error:  # timed out, or no connection
            log.warning("could not look a file up: %s", type(error).__name__)
            return None
        found = answer.get("file")
        return found if isinstance(found, dict) else None

    def gone(self, team_id: str, user: str) -> bool:
        """Whether someone has left the workspace (their account deactivated, or unknown to
        it). Asked when someone else is refused what only they may do, before an ack: False
        when Slack can't say within a second."""
        try:
            answer = self._quickly(team_id, "users.info", user=user)
        except SlackApiError as error:
            return error.response.get("error") == "user_not_found"
        return bool(((answer or {}).get("user") or {}).get("deleted"))

    def _quickly(self, team_id: str, method: str, **args: str) -> dict[str, Any] | None:
        """Slack's answer to `method`, asked before an ack (a second at most); None without a
        token for the workspace, or without an answer in time. A refusal is raised."""
        client = self.client_for(team_id)
        if client is None:
            return None
        try:
            data = impatient(client, CALL_SECONDS).api_call(method, params=args).data
        except OSError as error:  # timed out, or no connection
            log.warning("no answer from Slack to %s: %s", method, type(error).__name__)
            return None
        return data if isinstance(data, dict) else None

    def names(self, team_id: str, ids: list[str]) -> dict[str, str]:
        """What Slack shows for each person (display name, else full name, else username) or
        channel (C..., G...) of `ids`; one Slack cannot name (gone, private to the bot, or out of
        reach) is left out."""
        found: dict[str, str] = {}
        for thing in dict.fromkeys(ids):
            name = self._name(team_id, thing)
            if name:
                found[thing] = name
        return found

    def remembered(self, team_id: str, ids: list[str]) -> dict[str, str]:
        """The names of `ids` that Slack gave when asked before, however long ago; asking
        nothing."""
        with self._lock:
            known = {thing: self._names.get((team_id, thing)) for thing in ids}
        return {thing: entry[1] for thing, entry in known.items() if entry and entry[1]}

    def _name(self, team_id: str, thing: str) -> str | None:
        key = (team_id, thing)
        with self._lock:
            cached = self._names.get(key)
        now = time.monotonic()
        if cached and now - cached[0] < NAME_TTL_SECONDS:
            return cached[1]
        stale = cached[1] if cached else None
        client = self.client_for(team_id)
        if client is None or now < self._quiet_until.get(team_id, 0.0):
            return stale
        try:
            # Asked while a reply is handled: a slow answer is an outage, not worth waiting on.
            name = _ask(impatient(client, CALL_SECONDS), thing)
        except SlackApiError as error:
            if error.response.get("error") not in _UNKNOWN:
                log.warning("could not look a name up: %s", error.response.get("error"))
                if error.response.status_code == 429 or error.response.status_code >= 500:
                    self._quiet(team_id)
                return stale  # asked again next time
            name = None
        except OSError as error:  # timed out, or no connection
            log.warning("could not look a name up: %s", type(error).__name__)
            self._quiet(team_id)
            return stale
        with self._lock:
            self._names[key] = (time.monotonic(), name)
        return name

    def _quiet(self, team_id: str) -> None:
        with self._lock:
            self._quiet_until[team_id] = time.monotonic() + NAME_QUIET_SECONDS


# Slack's answers for an id it will not name: nobody asks again within the hour.
_UNKNOWN = ("user_not_found", "user_not_visible", "channel_not_found")


def _thread(client: WebClient, channel: str, ts: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.conversations_replies(channel=channel, ts=ts, limit=200, cursor=cursor)
        messages.extend(page.get("messages") or [])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return messages


def _ask(client: WebClient, thing: str) -> str | None:
    if thing.startswith(("C", "G")):
        return str(client.conversations_info(channel=thing)["channel"].get("name") or "") or None
    info = client.users_info(user=thing)["user"]
    profile = info.get("profile") or {}
    name = profile.get("display_name") or profile.get("real_name") or info.get("real_name")
    return str(name or info.get("name") or "") or None
