"""Someone a session needs leaves its channel while it runs (Slack's member_left_channel): the
facilitator hears it privately, once, with how to bring them back; the channel hears nothing."""

from __future__ import annotations

import time

import yaml
from sqlalchemy import select

from bot.store.models import InboxEvent, ProtocolSession
from tests.harness import CHANNEL, FACILITATOR, PRESENTER, TEACHERS, Bot
from tests.prep_world import message_text
from tests.test_oauth import MANIFEST


def _dms(bot: Bot, user: str) -> list[str]:
    return [message_text(m) for m in bot.posts(f"D{user[1:]}")]


def _left(
    bot: Bot,
    user: str,
    event_id: str | None = None,
    retry: int | None = None,
    event_time: int | None = None,
) -> None:
    """Slack's word that `user` left the channel (taken out, or of their own accord)."""
    bot.standin.remove_member(CHANNEL, user)
    event = {"type": "member_left_channel", "user": user, "channel": CHANNEL, "channel_type": "C"}
    assert bot.event(event, event_id=event_id, retry=retry, event_time=event_time) == 200


def _public(bot: Bot) -> list[str]:
    return [str(m["ts"]) for m in bot.posts()] + [
        str(m["text"]) for m in bot.standin.ephemerals(CHANNEL)
    ]


def test_the_facilitator_hears_privately_when_the_presenter_leaves_a_running_session(
    bot: Bot,
) -> None:
    """The presenter left mid-session: they missed every step, their turn too, and the
    facilitator never knew (the app was not subscribed to member_left_channel)."""
    bot.open_step()
    bot.settle()
    said = _public(bot)
    _left(bot, PRESENTER, event_id="EvLEFT1")
    bot.wait_until(lambda: _dms(bot, FACILITATOR), timeout=10)
    _left(bot, PRESENTER, event_id="EvLEFT1", retry=1)  # Slack's retry of the same event
    bot.settle()
    (note,) = _dms(bot, FACILITATOR)
    assert f"<@{PRESENTER}>, who is presenting, left <#{CHANNEL}>" in note
    assert "running at step 1 of" in note and "`/invite @` and their name" in note
    assert _public(bot) == said  # nobody in the channel is told who left
    assert [m for m in bot.standin.messages(f"D{PRESENTER[1:]}") if "left" in m["text"]] == []
    with bot.db.inbox_session() as s:
        kept = [e.payload["event"]["type"] for e in s.scalars(select(InboxEvent))]
    assert kept.count("member_left_channel") == 1
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert "member_left_channel" in manifest["settings"]["event_subscriptions"]["bot_events"]


def test_a_presenter_who_leaves_again_after_coming_back_is_told_of_again(bot: Bot) -> None:
    bot.open_step()
    _left(bot, PRESENTER)
    bot.wait_until(lambda: _dms(bot, FACILITATOR), timeout=10)
    bot.standin.add_member(CHANNEL, PRESENTER)  # /invite @maria, as the note said
    bot.settle()
    assert len(_dms(bot, FACILITATOR)) == 1
    _left(bot, PRESENTER, event_time=int(time.time()) + 2)  # Slack's event_time: whole seconds
    bot.wait_until(lambda: len(_dms(bot, FACILITATOR)) == 2, timeout=10)


def test_a_leave_delivered_after_the_presenter_was_invited_back_says_nothing(bot: Bot) -> None:
    """Slack does not keep its events in order: they are in the channel again."""
    bot.open_step()
    bot.standin.remove_member(CHANNEL, PRESENTER)
    bot.standin.add_member(CHANNEL, PRESENTER)
    event = {"type": "member_left_channel", "user": PRESENTER, "channel": CHANNEL}
    assert bot.event(event) == 200
    bot.wait_until(lambda: bool(bot.standin.calls_to("conversations.members")), timeout=10)
    bot.settle()
    assert _dms(bot, FACILITATOR) == []


def test_a_teacher_leaving_says_nothing_to_anyone(bot: Bot) -> None:
    bot.open_step()
    bot.settle()
    said = _public(bot)
    _left(bot, TEACHERS[0])
    bot.settle()
    assert _dms(bot, FACILITATOR) == [] and _public(bot) == said


def test_the_facilitator_who_leaves_a_paused_session_hears_it_waits_on_them(bot: Bot) -> None:
    bot.open_step()
    bot.command("pause")
    bot.settle()
    said = _public(bot)
    _left(bot, FACILITATOR)
    bot.wait_until(lambda: _dms(bot, FACILITATOR), timeout=10)
    bot.settle()
    (note,) = _dms(bot, FACILITATOR)
    assert f"You left <#{CHANNEL}>, where you're facilitating" in note
    assert "paused there at step 1 of" in note and "/protocol resume" in note
    assert "join" in note and "/invite" in note
    assert _public(bot) == said


def test_the_facilitator_hears_when_the_presenter_of_a_scheduled_session_leaves(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> in 2d step 1d facilitator <@{TEACHERS[0]}>")
    bot.command(f"start atlas <@{PRESENTER}> in 9d step 1d facilitator <@{TEACHERS[0]}>")
    bot.settle()
    before = len(_dms(bot, TEACHERS[0]))
    _left(bot, PRESENTER)
    bot.wait_until(lambda: len(_dms(bot, TEACHERS[0])) > before, timeout=10)
    bot.settle()
    (note,) = _dms(bot, TEACHERS[0])[before:]  # about the first session booked, not each
    assert f"<@{PRESENTER}>, who is presenting, left <#{CHANNEL}>" in note
    assert "is scheduled for" in note and "/protocol cancel 1" in note
    assert _dms(bot, FACILITATOR) == []


def test_a_teacher_who_leaves_and_comes_back_mid_session_has_their_replies_recorded(
    bot: Bot,
) -> None:
    step = bot.open_step()
    first = bot.reply(TEACHERS[0], "The table has four columns", step)
    bot.wait_until(lambda: first in bot.recorded(), timeout=10)
    _left(bot, TEACHERS[0])
    bot.standin.add_member(CHANNEL, TEACHERS[0])  # back, by /join or an /invite
    joined = {"type": "member_joined_channel", "user": TEACHERS[0], "channel": CHANNEL}
    assert bot.event(joined) == 200
    again = bot.reply(TEACHERS[0], "Two rows are left blank", step)
    bot.wait_until(lambda: again in bot.recorded(), timeout=10)
    bot.settle()
    assert bot.recorded() == [first, again]
    assert _dms(bot, FACILITATOR) == []


def _told_away(bot: Bot, user: str) -> list[str]:
    return [
        message_text(m)
        for m in bot.standin.ephemerals(CHANNEL)
        if m.get("user") == user and "isn't a member of" in str(m.get("text"))
    ]


def test_a_teacher_refused_a_control_hears_privately_the_facilitator_left_the_channel(
    bot: Bot,
) -> None:
    """The facilitator left mid-session: a teacher who typed `next`, or pressed Next, heard only
    that the facilitator can, and the team waited on someone who sees none of the steps. They
    now hear, privately, that the facilitator is no longer in the channel, how to bring them
    back, and who can move on meanwhile; once the facilitator is back, nothing of it."""
    bot.open_step()
    with bot.db.session() as s:
        sid = s.scalars(select(ProtocolSession.id)).one()
    _left(bot, FACILITATOR)
    bot.wait_until(lambda: _dms(bot, FACILITATOR), timeout=10)

    answer = message_text(bot.command("next", user=TEACHERS[0]))
    assert f"Only the facilitator, <@{FACILITATOR}>, can move to the next step" in answer
    bot.wait_until(lambda: _told_away(bot, TEACHERS[0]), timeout=10)
    (line,) = _told_away(bot, TEACHERS[0])
    assert f"<@{FACILITATOR}>, who is facilitating this session, isn't a member" in line
    assert f"<#{CHANNEL}>" in line and "type `/invite @` and their name here" in line
    assert "a workspace admin can move to the next step of it" in line

    status, _ = bot.action("step_next", f"{sid}:1", user=TEACHERS[1])
    assert status == 200
    bot.wait_until(lambda: _told_away(bot, TEACHERS[1]), timeout=10)

    bot.standin.add_member(CHANNEL, FACILITATOR)  # /invite @dana, as the line said
    bot.command("pause", user=TEACHERS[2])
    bot.settle()
    assert _told_away(bot, TEACHERS[2]) == []
    assert len(_told_away(bot, TEACHERS[0])) == 1 and len(_told_away(bot, TEACHERS[1])) == 1
