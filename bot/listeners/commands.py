"""The /protocol slash command: parse, run, answer privately."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import commands as cmd
from bot import dispatch
from bot.blocks import render_message
from bot.commands import OpenDialog
from bot.dialogs import start_view
from bot.engine.core import Actor
from bot.engine.errors import Reply
from bot.engine.rotation import next_presenter
from bot.keepalive import answer_to
from bot.listeners.people import (
    actor_from_command,
    after_refusal,
    after_start,
    between_people,
    token_refused,
)
from bot.profiles import SlackProfiles, impatient
from bot.runtime import Runtime

log = logging.getLogger(__name__)
NEEDS_ZONE = (" at ", " weekdays", " until ", " till ")
# A start's day after `on`, `this` or `next` without `at` (`on tue 3pm`, `this fri 3pm`).
START_NEEDS_ZONE = (" on ", " this ", " next ")
# `in 2h` is placed without a zone; the caller's, if Slack gives it, labels the time they see.
LIKES_ZONE = (" in ",)
# Commands that only read: acknowledged at once, answered through response_url a moment later,
# so the ack never waits on the database. Commands that change something still answer in the
# ack, once the change is committed.
READ_ONLY = (cmd.Status, cmd.Notes)
# Controls whose answer says what the channel now sees: asked only once Slack takes the token.
CONTROLS = (cmd.Next, cmd.Extend, cmd.Pause, cmd.Resume, cmd.End)
# Commands about a channel's session, which a direct message never has.
ABOUT_A_SESSION = (*READ_ONLY, *CONTROLS, cmd.Forget, cmd.Cancel)
# views.open is answered before the ack (its trigger_id lasts 3 s): a slower answer is an outage.
DIALOG_SECONDS = 2


def register(app: App, runtime: Runtime) -> None:
    @app.command("/protocol")
    def protocol_command(
        ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        text = cmd.normalize(str(command.get("text") or ""))
        actor = actor_from_command(command, client)
        # A time zone costs a users.info call: ask only when the command reads or shows a clock
        # time (`in 2h` is shown to the caller as a local time, and stored with their zone).
        padded = f" {text.lower()} "
        profiles = SlackProfiles(client)
        elsewhere = between_people(command)  # nothing can start there: no zone needed
        starts = padded.startswith(" start ") and any(w in padded for w in START_NEEDS_ZONE)
        needs_zone = not elsewhere and (starts or any(w in padded for w in NEEDS_ZONE))
        likes_zone = not elsewhere and any(w in padded for w in LIKES_ZONE)
        zone = profiles.zone_of(actor.user_id) if needs_zone or likes_zone else None
        tz = zone.name if zone else "UTC"
        now = runtime.clock.now()
        parsed = dispatch.parse(text, now=now, tz=tz, engine=runtime.engine, actor=actor)
        if zone is None and not elsewhere and isinstance(parsed, cmd.Start):
            # A session lives in the zone of whoever starts it, if Slack gives it (else UTC):
            # the day its notes are dated, the times it shows; steps of whole days keep their
            # local time of day across a daylight-saving change, and long steps' warnings come
            # in the day.
            zone = profiles.zone_of(actor.user_id)
            tz = zone.name if zone else "UTC"
        if needs_zone and zone is None:
            parsed = Reply("refusals/zone_unavailable.j2")  # Slack didn't say: don't guess
        if elsewhere and isinstance(parsed, cmd.Start | OpenDialog | cmd.Rotation):
            # A rotation kept here would be no team's: `start` in the channel wouldn't find it.
            parsed = Reply(
                "refusals/direct_message.j2", {"rotation": isinstance(parsed, cmd.Rotation)}
            )
        elif elsewhere and isinstance(parsed, cmd.Help):
            # "in this channel" would be the direct message, where nothing runs.
            parsed = Reply("replies/help.j2", {"library": runtime.library, "elsewhere": True})
        elif elsewhere and isinstance(parsed, ABOUT_A_SESSION):
            # No session runs here: "start one with ..." would point at what is refused here.
            parsed = Reply("refusals/direct_message.j2", {"command": type(parsed).__name__.lower()})
        if isinstance(parsed, OpenDialog):
            refused = _dialog(runtime, client, command, actor)
            if refused is None:
                ack()
                return
            parsed = refused
        if isinstance(parsed, CONTROLS):
            gone = runtime.sender.installation_gone
            parsed = token_refused(client, actor.team_id, gone) or parsed
        if isinstance(parsed, READ_ONLY) and command.get("response_url"):
            ack()
            runtime.answers.submit(_answer_later, runtime, parsed, actor, respond)
            return
        if isinstance(parsed, cmd.End | cmd.Next):
            runtime.inbox.caught_up(actor.team_id)  # replies acknowledged before it go in before it
        reply = (
            parsed
            if isinstance(parsed, Reply)
            else dispatch.run(parsed, actor, runtime.engine, tz=tz, zone=zone, profiles=profiles)
        )
        message = render_message(reply.template, **reply.context)
        ack(response_type="ephemeral", text=message.text, blocks=message.blocks)
        if isinstance(parsed, cmd.Start) and "session" in reply.context:
            after_start(runtime, actor, reply, checked=(client, respond))
        after_refusal(runtime, actor, reply)


def _answer_later(runtime: Runtime, command: cmd.Command, actor: Actor, respond: Respond) -> None:
    runtime.foreground.after_answer()
    try:
        reply = dispatch.run(command, actor, runtime.engine)
        message = render_message(reply.template, **reply.context)
    except Exception as exc:
        log.error("reading for /protocol failed: %s", type(exc).__name__, exc_info=exc)
        failed = Reply("refusals/answer_failed.j2", {"command": type(command).__name__.lower()})
        message = render_message(failed.template, **failed.context)
    try:
        sent = answer_to(respond).send(
            response_type="ephemeral", text=message.text, blocks=message.blocks
        )
    except Exception as exc:
        # response_url unreachable: the user can ask again; nothing was changed.
        log.warning("answer to /protocol not delivered: %s", type(exc).__name__)
        return
    if sent.status_code != 200:
        # Refused (a response_url used up or expired: the answer came late): a private line in
        # the channel instead, through the outbox.
        log.warning("answer to /protocol refused: HTTP %s", sent.status_code)
        runtime.engine.tell(actor, message)


def _dialog(
    runtime: Runtime, client: WebClient, command: dict[str, Any], actor: Actor
) -> Reply | None:
    """Open the start dialog (None), or say why not."""
    began = time.monotonic()
    if runtime.engine.directory.hidden(actor.team_id, actor.channel_id):
        # Slash commands work everywhere, the bot's posts only where it is a member: say so
        # before the dialog is filled in (a start checks it again, bot/engine/ahead.py).
        return Reply("refusals/not_invited.j2")
    # The team's rotation says who presents next: picked already, as `start` without one would.
    presenter = next_presenter(runtime.engine, actor)
    # The trigger_id lasts 3 seconds: what Slack took to answer that comes off the dialog's.
    seconds = max(1, DIALOG_SECONDS - round(time.monotonic() - began))
    if _open_dialog(runtime, client, command, actor, seconds, presenter):
        return None
    return Reply("refusals/dialog_failed.j2")


def _open_dialog(
    runtime: Runtime,
    client: WebClient,
    command: dict[str, Any],
    actor: Actor,
    seconds: int,
    presenter: str | None,
) -> bool:
    # The trigger_id expires in 3 seconds, so the modal opens here rather than via the outbox.
    metadata = {
        "team": actor.team_id,
        "channel": actor.channel_id,
        "enterprise": actor.enterprise_id,
    }
    try:
        impatient(client, seconds).views_open(
            trigger_id=command["trigger_id"], view=start_view(runtime.library, metadata, presenter)
        )
    except SlackApiError:
        return False
    except OSError as error:  # timed out, or no connection: the ack must still come in time
        log.warning("views.open failed: %s", type(error).__name__)
        return False
    return True
