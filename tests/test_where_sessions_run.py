"""Where a session can run: a channel. Not a DM or group DM (refused up front), nor a channel the
bot can't reach (the session is called off, and the facilitator told what to do)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from bot.store.models import ProtocolSession
from tests.fakes.signing import slash_command_body
from tests.harness import FACILITATOR, PRESENTER, TEAM, Bot
from tests.prep_world import message_text

# channel_id and channel_name as Slack sends them from a DM and from group DMs.
BETWEEN_PEOPLE = [
    ("D0PEOPLE1", "directmessage"),
    ("G0GROUP01", "mpdm-dana--maria--sam-1"),
    ("C0GROUP02", "mpdm-dana--maria--lee-1"),
]


def _command(bot: Bot, text: str, channel: str, name: str) -> dict[str, Any]:
    body = slash_command_body(
        text, user_id=FACILITATOR, channel_id=channel, team_id=TEAM, channel_name=name
    )
    status, answer = bot.post(body)
    assert status == 200, answer
    return dict(json.loads(answer))


def _sessions(bot: Bot) -> list[tuple[str, str]]:
    with bot.db.session() as s:
        return [(x.channel_id, x.status) for x in s.scalars(select(ProtocolSession))]


@pytest.mark.parametrize(("channel", "name"), BETWEEN_PEOPLE)
def test_a_start_in_a_direct_message_is_refused_up_front(
    bot: Bot, channel: str, name: str
) -> None:
    for text in (
        f"start atlas <@{PRESENTER}|maria> step 1h",
        f"start atlas <@{PRESENTER}|maria> at tomorrow 15:00",
        "",  # the start dialog
    ):
        answer = message_text(_command(bot, text, channel, name))
        assert "in a direct message" in answer and "/invite @protocolbot" in answer, text
    assert _sessions(bot) == []
    assert bot.standin.calls_to("views.open") == []
    assert bot.standin.calls_to("users.info") == []  # no time zone looked up to refuse
