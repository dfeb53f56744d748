"""Who is asking: an Actor from a payload, with the admin check done only when it matters."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from slack_bolt import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks import render_message
from bot.engine import ahead, presence
from bot.engine.core import Actor
from bot.engine.errors import Reply
from bot.keepalive import answer_to
from bot.profiles import CALL_SECONDS, impatient
from bot.runtime import Runtime
from bot.slack import INSTALLATION_GONE

log = logging.getLogger(__name__)


def is_admin(client: WebClient, user_id: str) -> bool:
    """Asked before an ack, when someone other than the facilitator steers: Slack's answer must
    come within a second. Without one the caller is treated as not an admin (and may ask again)."""
    try:
        user = impatient(client, CALL_SECONDS).users_info(user=user_id)["user"]
    except SlackApiError:
        return False
    except OSError as error:  # timed out, or no connection
        log.warning("users.info for the admin check failed: %s", type(error).__name__)
        return False
    return bool(user.get("is_admin") or user.get("is_owner"))


def token_refused(
    client: WebClient, team_id: str, gone: Callable[[str, str], None]
) -> Reply | None:
    """Whether Slack refuses the bot's token in the request's workspace (revoked by an admin,
    the bot's account deactivated: no event says so), asked before a facilitator's control is
    carried out, whose answer would otherwise say that a step moved where nobody will see it.
    A refusal is handed to `gone` (the workspace's sessions stop, as at a refused post) and
    answered; None when Slack takes the token, or can't say within a second (the control goes
    ahead)."""
    try:
        impatient(client, CALL_SECONDS).auth_test()
    except SlackApiError as error:
        refused = error.response.get("error")
        if refused not in INSTALLATION_GONE:
            return None
        gone(team_id, str(refused))
        return Reply("refusals/token_refused.j2")
    except OSError as error:  # timed out, or no connection
        log.warning("auth.test before a control failed: %s", type(error).__name__)
    return None


def after_start(
    runtime: Runtime,
    actor: Actor,
    started: Reply,
    checked: tuple[WebClient, Respond] | None = None,
) -> None:
    """Once a start or a schedule is answered: whether the people it names are in the channel
    is asked of Slack then (a channel's members take a page a call), not before the ack.
    With `checked` (a command's client and response_url), whether Slack still takes the bot's
    token is asked first: a start spends up to BUDGET_SECONDS on its lookups before its answer,
    and auth.test's second more would pass Slack's 3. A refused token stops the workspace's
    sessions, the one just started too, and the facilitator is told through response_url."""

    def follow_up() -> None:
        runtime.foreground.after_answer()
        if checked is not None and _refused_after_the_answer(runtime, actor, *checked):
            return
        try:
            ahead.tell_absent(runtime.engine, actor, started)
        except Exception as exc:
            log.warning("could not check who is in the channel: %s", type(exc).__name__)

    runtime.answers.submit(follow_up)


def after_refusal(runtime: Runtime, actor: Actor, reply: Reply) -> None:
    """Once someone is answered that only the facilitator can do what they asked: whether the
    facilitator is still in the channel is asked of Slack then, not before the ack
    (presence.tell_facilitator_away)."""
    if reply.template != presence.ONLY_FACILITATOR:
        return

    def follow_up() -> None:
        runtime.foreground.after_answer()
        try:
            presence.tell_facilitator_away(runtime.engine, actor, reply)
        except Exception as exc:
            log.warning("could not check who is in the channel: %s", type(exc).__name__)

    runtime.answers.submit(follow_up)


def _refused_after_the_answer(
    runtime: Runtime, actor: Actor, client: WebClient, respond: Respond
) -> bool:
    refused = token_refused(client, actor.team_id, runtime.sender.installation_gone)
    if refused is None:
        return False
    message = render_message(refused.template, **refused.context)
    try:
        answer_to(respond).send(response_type="ephemeral", text=message.text, blocks=message.blocks)
    except Exception as exc:  # response_url unreachable: the bot can't speak there otherwise
        log.warning("could not say that Slack refused the token: %s", type(exc).__name__)
    return True


def between_people(command: dict[str, Any]) -> bool:
    """A slash command typed in a DM or a group DM, where a session can't run: Slack names a DM
    `directmessage` (its id starts with D) and a group DM `mpdm-...` (its id with G or C)."""
    name = str(command.get("channel_name") or "")
    channel = str(command.get("channel_id") or "")
    return channel.startswith("D") or name == "directmessage" or name.startswith("mpdm-")


def actor_from_command(command: dict[str, Any], client: WebClient) -> Actor:
    user = command["user_id"]
    return Actor(
        team_id=command.get("team_id") or "",
        user_id=user,
        channel_id=command.get("channel_id") or "",
        enterprise_id=command.get("enterprise_id") or "",
        is_admin=partial(is_admin, client, user),
    )


def installed_team(body: dict[str, Any]) -> str:
    """The workspace whose installation a button or dialog came to (Bolt authorizes it so): a
    dialog submitted from another organisation's side of a Slack Connect channel names that
    side in team, and ours in view.app_installed_team_id."""
    view = body.get("view") or {}
    team = (body.get("team") or {}).get("id") or body["user"].get("team_id")
    return str(view.get("app_installed_team_id") or team or "")


def actor_from_action(body: dict[str, Any], client: WebClient) -> Actor:
    user = body["user"]["id"]
    team = installed_team(body)
    channel = (body.get("channel") or {}).get("id") or ""
    enterprise = (body.get("enterprise") or {}).get("id") or ""
    return Actor(team, user, channel, enterprise or "", partial(is_admin, client, user))
