"""A start that names someone who is not in the channel: Slack shows the steps only to its
members, so whoever started it is told, privately and after the answer, to invite them."""

from __future__ import annotations

import json
from typing import Any

from tests.harness import CHANNEL, FACILITATOR, PRESENTER, TEACHERS, Bot
from tests.test_dialog import _opened_view, _submit

OUTSIDER, SECOND = "U_OUT", "U_OUT2"


def _warnings(bot: Bot) -> list[dict[str, Any]]:
    return [
        m
        for m in bot.standin.ephemerals(CHANNEL)
        if "member of this channel" in m["text"] or "members of this channel" in m["text"]
    ]


def test_a_presenter_not_in_the_channel_is_named_to_whoever_started(bot: Bot) -> None:
    bot.standin.add_user(OUTSIDER, "omar")
    answer = bot.command(f"start atlas <@{OUTSIDER}|omar> step 1d")
    assert "member" not in json.dumps(answer)  # the answer itself waits on no one
    bot.wait_until(lambda: _warnings(bot))
    (warning,) = _warnings(bot)
    assert warning["user"] == FACILITATOR
    assert warning["text"].startswith(f":warning: <@{OUTSIDER}> (presenting) isn't a member")
    assert "/invite" in warning["text"] and "when the session starts" not in warning["text"]
    # The channel's members are asked for, not each one of them (users.info, a call apiece).
    asked = {call.params.get("user") for call in bot.standin.calls_to("users.info")}
    assert not asked & set(TEACHERS)


def test_people_in_the_channel_start_without_a_word_about_it(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> step 1d facilitator <@{TEACHERS[0]}>")
    bot.wait_until(lambda: bool(bot.step_posts()))
    bot.settle()
    assert _warnings(bot) == []


def test_a_named_facilitator_and_presenter_outside_a_scheduled_session_are_named(
    bot: Bot,
) -> None:
    bot.standin.add_user(OUTSIDER, "omar")
    bot.standin.add_user(SECOND, "sara")
    bot.command(f"start atlas <@{OUTSIDER}> in 2d step 1d facilitator <@{SECOND}>")
    bot.wait_until(lambda: _warnings(bot))
    (warning,) = _warnings(bot)
    assert warning["text"].startswith(
        f":warning: <@{OUTSIDER}> (presenting) and <@{SECOND}> (facilitating) aren't members"
    )
    assert "when the session starts" in warning["text"]


def test_someone_invited_since_the_last_look_is_not_named(bot: Bot) -> None:
    bot.standin.add_user(OUTSIDER, "omar")
    bot.command(f"start atlas <@{OUTSIDER}> in 2d step 1d")
    bot.wait_until(lambda: _warnings(bot))
    bot.standin.add_member(CHANNEL, OUTSIDER)  # invited, as the warning said
    asked = len(bot.standin.calls_to("conversations.members"))
    bot.command(f"start atlas <@{OUTSIDER}> in 3d step 1d")
    # The members remembered from the first start do not have them: Slack is asked again.
    bot.wait_until(lambda: len(bot.standin.calls_to("conversations.members")) > asked)
    bot.settle()
    assert len(_warnings(bot)) == 1


def test_a_presenter_picked_in_the_dialog_outside_the_channel_is_named(bot: Bot) -> None:
    bot.standin.add_user(OUTSIDER, "omar")
    view = _opened_view(bot)
    assert _submit(bot, view, presenter=OUTSIDER, pacing="async", step="1d") == {}
    bot.wait_until(lambda: _warnings(bot))
    (warning,) = _warnings(bot)
    assert warning["user"] == FACILITATOR and f"<@{OUTSIDER}> (presenting)" in warning["text"]


def _dms(bot: Bot, user: str) -> list[dict[str, Any]]:
    return bot.posts(f"D{user[1:]}")


def test_a_presenter_who_left_the_channel_before_the_start_is_named_to_the_facilitator(
    bot: Bot,
) -> None:
    # Checked when it was scheduled, and never again: a presenter who left the channel since
    # (Slack's member_left_channel) missed every step, and the facilitator heard nothing.
    bot.command(f"start atlas <@{PRESENTER}> in 2s step 1h")
    bot.settle()
    assert _warnings(bot) == []
    bot.standin.remove_member(CHANNEL, PRESENTER)
    left = {"type": "member_left_channel", "user": PRESENTER, "channel": CHANNEL}
    assert bot.event({**left, "channel_type": "C"}) == 200
    bot.wait_until(lambda: bool(bot.step_posts()))
    bot.wait_until(lambda: any("member" in m["text"] for m in _dms(bot, FACILITATOR)))
    (note,) = [json.dumps(m) for m in _dms(bot, FACILITATOR) if "member" in m["text"]]
    assert f"<@{PRESENTER}> (presenting) isn't a member" in note and f"<#{CHANNEL}>" in note
    assert "/invite" in note and "has started" in note
    bot.settle()
    # ...besides the word, as they left, that they did (bot/engine/presence.py).
    (left,) = [m for m in _dms(bot, FACILITATOR) if "member" not in m["text"]]
    assert f"<@{PRESENTER}> (presenting) left <#{CHANNEL}>" in left["text"]


def test_a_scheduled_start_with_everyone_in_the_channel_says_nothing_of_it(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> in 2s step 1h facilitator <@{TEACHERS[0]}>")
    bot.wait_until(lambda: bool(bot.step_posts()))
    bot.settle()
    assert not [m for m in _dms(bot, TEACHERS[0]) if "member" in m["text"]]
