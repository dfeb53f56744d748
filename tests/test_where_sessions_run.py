"""Where a session can run: a channel with the bot in it. Not a DM or group DM, nor a private
channel nobody has invited the bot to (both refused up front); a channel the bot can't reach
after all calls the session off (or pauses it), and the facilitator is told what to do."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from bot.store.models import (
    Contribution,
    InboxEvent,
    OutboxMessage,
    PresenterRotation,
    ProtocolSession,
)
from tests.fakes.signing import slash_command_body
from tests.harness import CHANNEL, FACILITATOR, PRESENTER, TEACHERS, TEAM, Bot
from tests.prep_world import message_text
from tests.test_oauth import MANIFEST

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
def test_a_start_in_a_direct_message_is_refused_up_front(bot: Bot, channel: str, name: str) -> None:
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


@pytest.mark.parametrize(("channel", "name"), BETWEEN_PEOPLE)
def test_a_command_about_a_session_in_a_direct_message_points_to_the_channel(
    bot: Bot, channel: str, name: str
) -> None:
    # "No protocol session is running in this channel. Start one with `/protocol start ...`"
    # pointed at a start that is refused here.
    for command in ("status", "next", "extend 10m", "pause", "end", "notes", "forget"):
        answer = message_text(_command(bot, command, channel, name))
        word = command.split()[0]
        assert (
            "Sessions run in a team's channel, so there is none in a direct message. "
            f"Run `/protocol {word}` in your team's channel."
        ) in answer, command
    assert bot.standin.calls_to("response_url") == []


@pytest.mark.parametrize(("channel", "name"), BETWEEN_PEOPLE)
def test_help_in_a_direct_message_says_the_commands_go_in_a_channel(
    bot: Bot, channel: str, name: str
) -> None:
    # Asked in a direct message with the bot, the help said it "runs a ... protocol in this
    # channel", and that `/protocol` on its own opens the dialog, both refused there.
    answer = message_text(_command(bot, "help", channel, name))
    assert "in a team's channel, not in a direct message" in answer
    assert "/invite @protocolbot" in answer and "in this channel" not in answer
    assert "`/protocol start atlas @presenter`" in answer  # the rest of the help as ever
    assert "in this channel" in message_text(bot.command("help"))


@pytest.mark.parametrize(("channel", "name"), BETWEEN_PEOPLE)
def test_a_presenter_rotation_is_not_kept_in_a_direct_message(
    bot: Bot, channel: str, name: str
) -> None:
    for text in (f"rotation <@{PRESENTER}|maria> <@{TEACHERS[0]}|sam>", "rotation"):
        answer = message_text(_command(bot, text, channel, name))
        assert "in a direct message" in answer and "team's channel" in answer, text
    with bot.db.session() as s:
        assert s.scalars(select(PresenterRotation)).all() == []


def _outbox(bot: Bot) -> list[tuple[str, str]]:
    with bot.db.session() as s:
        return [(x.method, x.channel_id) for x in s.scalars(select(OutboxMessage))]


def test_a_start_in_a_private_channel_the_bot_is_not_in_is_refused_until_it_is_invited(
    bot: Bot,
) -> None:
    bot.standin.add_channel("C_PRIV", [FACILITATOR, PRESENTER, *TEACHERS], private=True)
    for text in (
        f"start atlas <@{PRESENTER}|maria> step 1h",
        f"start atlas <@{PRESENTER}|maria> at tomorrow 15:00",
        f"start atlas <@{PRESENTER}|maria> in 2d step 1d",
        "",  # the start dialog
    ):
        answer = message_text(_command(bot, text, "C_PRIV", "privategroup"))
        assert "not a member of this channel" in answer, text
        assert "/invite @protocolbot" in answer, text
    bot.settle()
    assert _sessions(bot) == []
    assert _outbox(bot) == []  # nothing to post, nobody to tell later: no prep reminder either
    assert bot.standin.calls_to("views.open") == []

    bot.standin.add_member("C_PRIV", "U_BOT")  # /invite @protocolbot
    answer = message_text(
        _command(bot, f"start atlas <@{PRESENTER}|maria> step 1h", "C_PRIV", "privategroup")
    )
    assert "starting" in answer
    bot.wait_until(lambda: len(bot.posts("C_PRIV")) == 2, timeout=10)
    assert _sessions(bot) == [("C_PRIV", "running")]


def _notes_to_facilitator(bot: Bot) -> list[str]:
    return [message_text(m) for m in bot.posts(f"D{FACILITATOR[1:]}")]


def test_a_session_whose_start_cannot_reach_a_private_channel_is_called_off(bot: Bot) -> None:
    bot.standin.add_channel("C_PRIV", [FACILITATOR, PRESENTER], name="private", private=True)
    # Slack could not say at the start whether the bot sees the channel: the start goes ahead.
    bot.standin.fail_next("conversations.info")
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h", channel="C_PRIV")
    bot.wait_until(lambda: _notes_to_facilitator(bot), timeout=10)
    bot.settle()
    (note,) = _notes_to_facilitator(bot)
    assert "called the session off" in note and "/invite @protocolbot" in note
    assert _sessions(bot) == [("C_PRIV", "cancelled")]
    told = [str(m.get("text")) for m in bot.posts(f"D{PRESENTER[1:]}")]
    assert told == ["ATLAS - Learning from Student Work in <#C_PRIV> did not go ahead."]
    # The channel is free: once the bot is invited, a start there is not "already running".
    bot.standin.add_member("C_PRIV", "U_BOT")
    answer = message_text(
        bot.command(f"start atlas <@{PRESENTER}|maria> step 1h", channel="C_PRIV")
    )
    assert "already running" not in answer and "starting" in answer


def test_a_session_in_a_channel_slack_cannot_find_is_called_off_with_one_note(bot: Bot) -> None:
    # Slack could not say at the start whether the bot sees the channel: the start goes ahead.
    bot.standin.fail_next("conversations.info")
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h", channel="C_GONE")
    bot.wait_until(lambda: _notes_to_facilitator(bot), timeout=10)
    bot.settle()
    (note,) = _notes_to_facilitator(bot)
    assert "called the session off" in note and "can't see it" in note
    assert _sessions(bot) == [("C_GONE", "cancelled")]
    assert not bot.posts("C_GONE")


def _channel_posts_tried(bot: Bot) -> int:
    return sum(
        1 for c in bot.standin.calls_to("chat.postMessage") if c.params["channel"] == CHANNEL
    )


def test_a_session_whose_channel_is_archived_is_paused_and_its_step_posted_on_resume(
    bot: Bot,
) -> None:
    first = bot.open_step()
    bot.standin.archive_channel(CHANNEL)
    bot.command("extend 10m")  # its line in step 1's thread is refused: the facilitator hears
    bot.wait_until(lambda: _notes_to_facilitator(bot), timeout=10)
    bot.command("next")  # step 2 can't be posted: nobody would see it, nor the steps after it
    bot.wait_until(lambda: len(_notes_to_facilitator(bot)) == 2, timeout=10)
    bot.settle()
    refused, note = _notes_to_facilitator(bot)
    assert "archived" in refused
    assert "paused the session" in note and "archived" in note and "/protocol resume" in note
    assert _sessions(bot) == [(CHANNEL, "paused")]
    tried = _channel_posts_tried(bot)
    answer = message_text(bot.command("next"))
    assert "paused" in answer  # the session stays where the team last saw it
    bot.settle()
    assert _channel_posts_tried(bot) == tried  # nothing more sent into the archived channel

    bot.standin.archive_channel(CHANNEL, archived=False)
    bot.command("resume")
    bot.wait_until(lambda: len(bot.step_posts()) == 2, timeout=10)
    bot.settle()
    step_one, step_two = bot.step_posts()
    assert step_one["ts"] == first and step_two["text"].startswith("Step 2 of 6")
    reply = bot.reply(TEACHERS[0], "The graph has no labels", str(step_two["ts"]))
    bot.wait_until(lambda: reply in bot.recorded(), timeout=10)
    assert _sessions(bot) == [(CHANNEL, "running")]


def test_a_session_booked_for_a_channel_archived_since_is_called_off(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}|maria> in 1h step 1h")
    ((session_id,),) = _ids(bot)
    bot.standin.archive_channel(CHANNEL)
    bot.runtime.engine.begin(session_id)  # its start time comes
    bot.wait_until(lambda: _notes_to_facilitator(bot), timeout=10)
    bot.settle()
    (note,) = _notes_to_facilitator(bot)
    assert "called the session off" in note and "unarchive the channel" in note
    assert _sessions(bot) == [(CHANNEL, "cancelled")]


def test_a_session_in_a_channel_where_only_admins_may_post_is_called_off(bot: Bot) -> None:
    # An announcement channel: Slack refuses the bot's posts there, as anyone's but an admin's.
    refused = "restricted_action_read_only_channel"
    bot.standin.fail_next("chat.postMessage", error=refused, times=50, channel=CHANNEL)
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: _notes_to_facilitator(bot), timeout=10)
    bot.settle()
    (note,) = _notes_to_facilitator(bot)
    assert "called the session off" in note and "settings don't let me post" in note
    assert "workspace admin" in note and "can't see it" not in note
    assert _sessions(bot) == [(CHANNEL, "cancelled")]  # the channel is free for another start


def test_a_session_whose_channel_an_admin_made_read_only_is_paused(bot: Bot) -> None:
    bot.open_step()
    bot.standin.fail_next("chat.postMessage", error="restricted_action", times=50, channel=CHANNEL)
    bot.command("next")  # step 2 can't be posted: nobody would see it, nor the steps after it
    bot.wait_until(lambda: any("paused" in n for n in _notes_to_facilitator(bot)), timeout=10)
    bot.settle()
    (note,) = [n for n in _notes_to_facilitator(bot) if "paused the session" in n]
    assert "settings don't let me post" in note and "/protocol resume" in note
    assert _sessions(bot) == [(CHANNEL, "paused")]


def _ids(bot: Bot) -> list[tuple[int]]:
    with bot.db.session() as s:
        return [(x.id,) for x in s.scalars(select(ProtocolSession))]


def test_a_session_whose_bot_is_removed_from_its_channel_is_paused_until_resumed(
    bot: Bot,
) -> None:
    first = bot.open_step()
    bot.standin.remove_member(CHANNEL, "U_BOT")
    # Slack tells the bot it left; from now on it sends none of the channel's messages.
    assert bot.event({"type": "channel_left", "channel": CHANNEL, "actor_id": TEACHERS[0]}) == 200
    bot.wait_until(lambda: _notes_to_facilitator(bot), timeout=10)
    bot.settle()
    (note,) = _notes_to_facilitator(bot)
    assert f"<@{TEACHERS[0]}> removed me" in note and "/protocol resume" in note
    assert _sessions(bot) == [(CHANNEL, "paused")]

    bot.command("resume")  # the bot comes back to a public channel with its next post
    bot.settle()
    assert _sessions(bot) == [(CHANNEL, "running")]
    resumed = [m for m in bot.posts() if m.get("thread_ts") == first]
    assert resumed and "running again" in message_text(resumed[-1])

    # Days later, the note's End button, pressed by mistake: the team carries on.
    (dm,) = bot.posts(f"D{FACILITATOR[1:]}")
    (button,) = [e for b in dm["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert bot.action(button["action_id"], button["value"])[0] == 200
    bot.settle()
    assert _sessions(bot) == [(CHANNEL, "running")]
    (answer,) = [c.params["text"] for c in bot.standin.calls_to("response_url")]
    assert f"running again in <#{CHANNEL}>" in answer and "`/protocol end`" in answer
    assert len(bot.posts(f"D{FACILITATOR[1:]}")) == 1  # no notes sent there


def _paused_out_of_private_channel(bot: Bot) -> None:
    """A session running in a private channel, paused when a teacher took the bot out."""
    bot.standin.add_channel("C_PRIV", [FACILITATOR, PRESENTER, *TEACHERS, "U_BOT"], private=True)
    _command(bot, f"start atlas <@{PRESENTER}|maria> step 1h", "C_PRIV", "privategroup")
    bot.wait_until(lambda: len(bot.posts("C_PRIV")) == 2, timeout=10)
    bot.standin.remove_member("C_PRIV", "U_BOT")
    assert bot.event({"type": "group_left", "channel": "C_PRIV", "actor_id": TEACHERS[0]}) == 200
    bot.wait_until(lambda: _notes_to_facilitator(bot), timeout=10)


def test_replies_written_while_the_bot_was_out_of_the_channel_are_recorded_on_resume(
    bot: Bot,
) -> None:
    """Slack sends a bot nothing from a channel it is not in: what the team wrote in the step's
    thread while the bot was out (new replies, an edit, a deletion) was missing from the notes,
    or stayed in them."""
    first = bot.open_step()
    heard = [
        bot.standin.add_message(CHANNEL, TEACHERS[0], text, first)
        for text in ("The table has four colums", "Something I take back")
    ]
    for message in heard:
        bot.reply(TEACHERS[0], message["text"], first, ts=message["ts"])
    bot.wait_until(lambda: len(bot.recorded()) == 2, timeout=10)
    # Their tag reactions sent first: one still to send when the bot is taken out has it join
    # the public channel again, as Slack lets it, and then the removal is rightly no news.
    bot.settle()
    bot.standin.remove_member(CHANNEL, "U_BOT")
    assert bot.event({"type": "channel_left", "channel": CHANNEL, "actor_id": TEACHERS[0]}) == 200
    bot.wait_until(lambda: _sessions(bot) == [(CHANNEL, "paused")], timeout=10)
    missed = [
        bot.standin.add_message(CHANNEL, TEACHERS[1], "Two rows are blank", first),
        bot.standin.add_message(CHANNEL, TEACHERS[2], "Q: Is this a first draft?", first),
    ]
    bot.standin.edit_message(CHANNEL, heard[0]["ts"], "The table has four columns")
    bot.standin.delete_message(CHANNEL, heard[1]["ts"])

    bot.command("resume")  # the bot joins the public channel again to read its thread
    bot.wait_until(lambda: len(bot.recorded()) == 4, timeout=10)
    bot.settle()
    assert bot.recorded() == [m["ts"] for m in [*heard, *missed]]
    assert _kept(bot) == [
        "The table has four columns",
        "Two rows are blank",
        "Is this a first draft?",
    ]
    for message in missed:  # each marked with its tag, once
        assert len(bot.standin.reactions(CHANNEL, message["ts"])) == 1
    reactions = [c.params["timestamp"] for c in bot.standin.calls_to("reactions.add")]
    assert reactions.count(heard[0]["ts"]) == 1

    bot.command("pause")
    bot.command("resume")  # asked again: nothing is stored twice
    bot.settle()
    assert len(bot.recorded()) == 4 and len(_kept(bot)) == 3
    bot.command("end")
    bot.wait_until(lambda: "Two rows are blank" in json.dumps(bot.posts(f"D{PRESENTER[1:]}")))
    assert "I take back" not in json.dumps(bot.posts(f"D{PRESENTER[1:]}"))


def test_a_reply_slacks_thread_does_not_show_yet_is_not_taken_for_deleted_on_resume(
    bot: Bot,
) -> None:
    # A resume asks Slack for each step's thread: a reply recorded a moment before, newer than
    # any in Slack's answer, was taken for one deleted and left out of the notes.
    first = bot.open_step()
    shown = bot.standin.add_message(CHANNEL, TEACHERS[0], "The table has four columns", first)
    bot.reply(TEACHERS[0], shown["text"], first, ts=shown["ts"])
    latest = bot.reply(TEACHERS[1], "Two rows are blank", first)  # not in Slack's answer yet
    bot.wait_until(lambda: len(bot.recorded()) == 2, timeout=10)
    bot.command("pause")
    bot.command("resume")
    bot.wait_until(lambda: bool(bot.standin.calls_to("conversations.replies")))
    bot.settle()
    assert _kept(bot) == ["The table has four columns", "Two rows are blank"]
    # Slack shows a newer reply, and not that one: it was deleted.
    bot.standin.add_message(CHANNEL, TEACHERS[2], "Q: Is this a first draft?", first)
    bot.command("pause")
    bot.command("resume")
    bot.wait_until(lambda: len(bot.recorded()) == 3, timeout=10)
    bot.settle()
    assert _kept(bot) == ["The table has four columns", "Is this a first draft?"]
    assert latest in bot.recorded()


def test_replies_written_meanwhile_in_earlier_steps_threads_are_recorded_on_resume(
    bot: Bot,
) -> None:
    """Only the open step's thread was read again on resume: a teacher catching up on an
    earlier step while the bot was out of the channel was missing from that step's notes."""
    first = bot.open_step()
    heard = bot.standin.add_message(CHANNEL, TEACHERS[0], "The title is underlined", first)
    bot.reply(TEACHERS[0], heard["text"], first, ts=heard["ts"])
    bot.wait_until(lambda: len(bot.recorded()) == 1, timeout=10)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2, timeout=10)
    second = str(bot.step_posts()[1]["ts"])
    bot.standin.remove_member(CHANNEL, "U_BOT")
    assert bot.event({"type": "channel_left", "channel": CHANNEL, "actor_id": TEACHERS[0]}) == 200
    bot.wait_until(lambda: _sessions(bot) == [(CHANNEL, "paused")], timeout=10)
    late = bot.standin.add_message(CHANNEL, TEACHERS[1], "Two rows are blank", first)
    now = bot.standin.add_message(CHANNEL, TEACHERS[2], "She may be working on units", second)
    bot.standin.edit_message(CHANNEL, heard["ts"], "The title is underlined twice")

    bot.command("resume")
    bot.wait_until(lambda: len(bot.recorded()) == 3, timeout=10)
    bot.settle()
    with bot.db.session() as s:
        steps = {c.ts: (c.step_index, c.text) for c in s.scalars(select(Contribution))}
    assert steps == {
        heard["ts"]: (1, "The title is underlined twice"),
        late["ts"]: (1, "Two rows are blank"),
        now["ts"]: (2, "She may be working on units"),
    }
    for message in (heard, late, now):  # each marked with its tag, once
        assert len(bot.standin.reactions(CHANNEL, message["ts"])) == 1

    bot.command("pause")
    bot.command("resume")  # asked again: nothing is stored twice
    bot.settle()
    assert len(bot.recorded()) == 3 and len(_kept(bot)) == 3
    reactions = [c.params["timestamp"] for c in bot.standin.calls_to("reactions.add")]
    assert sorted(reactions) == sorted(m["ts"] for m in (heard, late, now))


def _kept(bot: Bot) -> list[str]:
    """The words of the replies kept (not deleted), in the order recorded."""
    with bot.db.session() as s:
        return [
            c.text
            for c in s.scalars(select(Contribution).order_by(Contribution.id))
            if c.audience != "deleted"
        ]


def test_a_session_paused_when_the_bot_left_a_private_channel_resumes_once_it_is_back(
    bot: Bot,
) -> None:
    _paused_out_of_private_channel(bot)
    bot.settle()
    tried = len(bot.standin.calls_to("chat.postMessage"))

    # Typed before inviting the bot back: a private channel it can't join on its own.
    answer = message_text(_command(bot, "resume", "C_PRIV", "privategroup"))
    assert "not a member of this channel" in answer and "/invite @protocolbot" in answer
    bot.settle()
    assert _sessions(bot) == [("C_PRIV", "paused")]  # its step doesn't run on unseen
    assert len(bot.standin.calls_to("chat.postMessage")) == tried
    assert len(_notes_to_facilitator(bot)) == 1

    step = str(bot.posts("C_PRIV")[1]["ts"])
    missed = bot.standin.add_message("C_PRIV", TEACHERS[1], "Two rows are blank", step)
    bot.standin.add_member("C_PRIV", "U_BOT")  # /invite @protocolbot
    answer = message_text(_command(bot, "resume", "C_PRIV", "privategroup"))
    assert answer.startswith("Resumed.")
    bot.wait_until(lambda: "running again" in message_text(bot.posts("C_PRIV")[-1]), timeout=10)
    assert _sessions(bot) == [("C_PRIV", "running")]
    bot.wait_until(lambda: bot.recorded() == [missed["ts"]], timeout=10)


def _joined(bot: Bot, user: str, channel: str = CHANNEL) -> None:
    # As Slack sends it to an app in the channel, and to the bot on its own invitation.
    event = {
        "type": "member_joined_channel",
        "user": user,
        "channel": channel,
        "channel_type": "G",
        "inviter": TEACHERS[1],
    }
    assert bot.event(event) == 200


def test_the_facilitator_hears_when_the_bot_is_invited_back_to_a_paused_session(
    bot: Bot,
) -> None:
    """Invited back to the private channel it was removed from, the bot said nothing: the
    facilitator had to guess that the session could go on, and that it waited on them."""
    _paused_out_of_private_channel(bot)
    _joined(bot, TEACHERS[2], "C_PRIV")  # someone else joining changes nothing
    bot.settle()
    assert len(_notes_to_facilitator(bot)) == 1

    bot.standin.add_member("C_PRIV", "U_BOT")  # /invite @protocolbot
    _joined(bot, "U_BOT", "C_PRIV")
    bot.wait_until(lambda: len(_notes_to_facilitator(bot)) == 2, timeout=10)
    bot.settle()
    back = _notes_to_facilitator(bot)[1]
    assert f"<@{TEACHERS[1]}> invited me back" in back and "<#C_PRIV>" in back
    assert "still paused" in back and "/protocol resume" in back
    assert _sessions(bot) == [("C_PRIV", "paused")]  # the facilitator says when
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert "member_joined_channel" in manifest["settings"]["event_subscriptions"]["bot_events"]


def test_only_the_bots_own_joins_are_kept(bot: Bot) -> None:
    """A busy workspace's joins are acknowledged and dropped at the door, not stored."""
    bot.open_step()
    _joined(bot, TEACHERS[2])
    _joined(bot, "U_BOT")  # already in, the session running: nothing to say
    bot.settle()
    with bot.db.inbox_session() as s:
        kept = [e.payload["event"] for e in s.scalars(select(InboxEvent))]
    assert [e["user"] for e in kept if e["type"] == "member_joined_channel"] == ["U_BOT"]
    assert _notes_to_facilitator(bot) == []


def test_the_bot_taken_out_of_a_private_channel_says_so_for_sessions_scheduled_there(
    bot: Bot,
) -> None:
    bot.standin.add_channel("C_PRIV", [FACILITATOR, PRESENTER, *TEACHERS, "U_BOT"], private=True)
    _command(bot, f"start atlas <@{PRESENTER}|maria> in 2d step 1d", "C_PRIV", "privategroup")
    bot.settle()
    bot.standin.remove_member("C_PRIV", "U_BOT")
    assert bot.event({"type": "group_left", "channel": "C_PRIV", "actor_id": TEACHERS[0]}) == 200
    bot.wait_until(lambda: _notes_to_facilitator(bot), timeout=10)
    bot.settle()
    (note,) = _notes_to_facilitator(bot)
    assert f"<@{TEACHERS[0]}> removed me" in note and "scheduled" in note
    assert "/invite @protocolbot" in note and "/protocol cancel 1" in note
    assert _sessions(bot) == [("C_PRIV", "scheduled")]  # inviting the bot back keeps it


def test_notes_kept_out_of_a_private_channel_come_to_the_facilitator(bot: Bot) -> None:
    bot.standin.add_channel("C_PRIV", [FACILITATOR, PRESENTER, *TEACHERS, "U_BOT"], private=True)
    _command(bot, f"start atlas <@{PRESENTER}|maria> step 1h", "C_PRIV", "privategroup")
    bot.wait_until(lambda: len(bot.posts("C_PRIV")) == 2, timeout=10)
    step = str(bot.posts("C_PRIV")[1]["ts"])
    reply = bot.reply(TEACHERS[0], "The table has four columns", step, channel="C_PRIV")
    bot.wait_until(lambda: reply in bot.recorded(), timeout=10)
    bot.standin.remove_member("C_PRIV", "U_BOT")
    assert bot.event({"type": "group_left", "channel": "C_PRIV", "actor_id": TEACHERS[0]}) == 200
    bot.wait_until(lambda: _notes_to_facilitator(bot), timeout=10)

    _command(bot, "end", "C_PRIV", "privategroup")  # typed, not the note's End button
    bot.wait_until(lambda: len(_notes_to_facilitator(bot)) >= 3, timeout=10)
    bot.settle()
    _left, refused, *notes = _notes_to_facilitator(bot)
    assert "couldn't post the notes" in refused and "comes here instead" in refused
    assert "start the session again" not in refused
    assert len(notes) == 1 and "The table has four columns" in notes[0]
    assert _sessions(bot) == [("C_PRIV", "ended")]


def test_a_session_held_by_a_channel_gone_for_good_can_be_ended_from_the_note(bot: Bot) -> None:
    first = bot.open_step()
    bot.reply(TEACHERS[0], "The table has four columns", first)
    bot.standin.archive_channel(CHANNEL)  # and it stays archived: nobody can type there
    bot.command("next")
    bot.wait_until(lambda: _notes_to_facilitator(bot), timeout=10)
    bot.settle()
    (note,) = bot.posts(f"D{FACILITATOR[1:]}")
    (button,) = [e for b in note["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert bot.action(button["action_id"], button["value"], user=TEACHERS[1])[0] == 200
    bot.settle()
    assert _sessions(bot) == [(CHANNEL, "paused")]  # only the facilitator ends it
    assert bot.action(button["action_id"], button["value"])[0] == 200
    bot.settle()
    assert _sessions(bot) == [(CHANNEL, "ended")]
    for person in (FACILITATOR, PRESENTER):
        notes = [message_text(m) for m in bot.posts(f"D{person[1:]}") if "Notes from" in m["text"]]
        assert len(notes) == 1 and "The table has four columns" in notes[0], person
    answers = [c.params["text"] for c in bot.standin.calls_to("response_url")]
    assert answers[0].startswith(f"Only the facilitator, <@{FACILITATOR}>, can end")
    assert answers[1].startswith(":checkered_flag: The session has ended.")


def test_a_leave_delivered_after_the_bot_was_invited_back_does_not_pause_the_session(
    bot: Bot,
) -> None:
    """Slack does not deliver events in order: the bot taken out and invited back at once, its
    channel_left arrived after its member_joined_channel, and paused a session the bot was
    in again, with a note to the facilitator that it had been removed."""
    bot.open_step()
    bot.standin.remove_member(CHANNEL, "U_BOT")
    bot.standin.add_member(CHANNEL, "U_BOT")
    _joined(bot, "U_BOT")
    assert bot.event({"type": "channel_left", "channel": CHANNEL, "actor_id": TEACHERS[0]}) == 200
    bot.wait_until(lambda: bool(bot.standin.calls_to("conversations.info")), timeout=10)
    bot.settle()
    assert _sessions(bot) == [(CHANNEL, "running")]
    assert _notes_to_facilitator(bot) == []
