"""`/protocol preview` and `list`: the protocols, to the asker only, however many or long."""

from __future__ import annotations

from bot import slack
from bot.blocks import Message, render_messages
from bot.engine.core import Actor, Engine
from bot.engine.errors import Reply

TEMPLATE = "replies/preview.j2"
LIST = "replies/list.j2"


def preview(engine: Engine, actor: Actor, protocol_id: str) -> Reply:
    """The preview as the command's answer when it fits one message; an operator's long
    protocol (past Slack's 50 blocks, or its ~13,000 characters of blocks) goes whole to the
    asker by direct message, in parts, and the answer says so."""
    protocol = engine.protocol(protocol_id)
    messages = render_messages(TEMPLATE, protocol=protocol)
    if len(messages) == 1:
        return Reply(TEMPLATE, {"protocol": protocol})
    _send_to_asker(engine, actor, messages)
    return Reply("replies/preview_sent.j2", {"protocol": protocol, "parts": len(messages)})


def protocol_list(engine: Engine, actor: Actor) -> Reply:
    """Every protocol as the command's answer when they fit one message; an operator's many
    protocols go whole to the asker by direct message, in parts, as a long preview does."""
    messages = render_messages(LIST, library=engine.library)
    if len(messages) == 1:
        return Reply(LIST, {"library": engine.library})
    _send_to_asker(engine, actor, messages)
    return Reply("replies/list_sent.j2", {"library": engine.library, "parts": len(messages)})


def _send_to_asker(engine: Engine, actor: Actor, messages: list[Message]) -> None:
    with engine.transaction() as (s, _after):
        for message in messages:
            slack.enqueue(
                s,
                now=engine.clock.now(),
                team_id=actor.team_id,
                channel=actor.user_id,
                method="chat.postMessage",
                payload={"channel": actor.user_id, "text": message.text, "blocks": message.blocks},
            )
