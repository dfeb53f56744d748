"""App Home over signed HTTP: the person's sessions, and past notes sent on request."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import select

from bot.store.models import InboxEvent, OutboxMessage, ProtocolSession
from tests.fakes.signing import interaction_body
from tests.harness import CHANNEL, FACILITATOR, PRESENTER, TEACHERS, TEAM, Bot
from tests.prep_world import dialog_values, view_submission


def _open_home(bot: Bot, user: str, team: str = TEAM) -> str:
    before = len(bot.standin.calls_to("views.publish"))
    assert (
        bot.event(
            {"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home"}, team=team
        )
        == 200
    )
    bot.wait_until(lambda: len(bot.standin.calls_to("views.publish")) > before)
    call = bot.standin.calls_to("views.publish")[-1]
    assert call.params["user_id"] == user
    view = call.params["view"]
    view = view if isinstance(view, dict) else json.loads(view)
    assert view["type"] == "home"
    return json.dumps(view["blocks"])


def _press_notes(bot: Bot, user: str, session_id: int, team: str = TEAM) -> None:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "team_id": team},
        "team": {"id": team},
        "api_app_id": "A_APP",
        "trigger_id": uuid.uuid4().hex,
        "container": {"type": "view", "view_id": "V1"},
        "actions": [
            {
                "type": "button",
                "action_id": "home_notes",
                "value": str(session_id),
                "block_id": "b",
                "action_ts": "1.0",
            }
        ],
    }
    assert bot.post(interaction_body(payload))[0] == 200


def test_home_lists_running_then_past_sessions_and_sends_notes(bot: Bot) -> None:
    empty = _open_home(bot, PRESENTER)
    assert "Nothing scheduled for you" in empty and "No session of yours is running" in empty

    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    running = _open_home(bot, PRESENTER)
    assert "ATLAS" in running and "you present" in running
    bot.command("end")
    bot.wait_until(lambda: any(str(m["text"]).startswith("Notes from") for m in bot.posts()))
    past = _open_home(bot, PRESENTER)
    assert "Send me the notes" in past
    # Someone with no part in the session sees nothing of it.
    assert "ATLAS" not in _open_home(bot, TEACHERS[2])

    with bot.db.session() as s:
        session_id = s.scalars(select(ProtocolSession.id)).one()
    _press_notes(bot, TEACHERS[0], session_id)
    _press_notes(bot, TEACHERS[0], session_id)  # a double click: one copy
    bot.wait_until(lambda: bool(bot.standin.messages("D_T1")))
    bot.runtime.sender.drain(timeout=5)
    (copy,) = bot.standin.messages("D_T1")
    assert copy["text"].startswith("Notes from")

    # A button press carrying this session's id from another workspace gets nothing.
    _press_notes(bot, "U_OTHER", session_id, team="T_OTHER")
    bot.runtime.sender.drain(timeout=5)
    with bot.db.session() as s:
        sent = s.scalars(select(OutboxMessage).where(OutboxMessage.channel_id == "U_OTHER")).all()
    assert sent == []


def test_the_home_tab_is_answered_by_its_own_listener_and_not_stored(bot: Bot) -> None:
    _open_home(bot, PRESENTER)
    bot.event({"type": "reaction_added", "user": PRESENTER, "reaction": "eyes"})
    with bot.runtime.db.inbox_session() as s:
        stored = [row.payload["event"]["type"] for row in s.scalars(select(InboxEvent))]
    assert "reaction_added" in stored  # the catch-all stores other events
    assert "app_home_opened" not in stored


def test_replies_then_commands_are_the_first_listeners_bolt_tries(bot: Bot) -> None:
    # Every listener tried before the one that matches costs the ack Bolt's argument building.
    first = [listener.ack_function.__name__ for listener in bot.app._listeners[:2]]
    assert first == ["any_event", "protocol_command"]


def test_the_presenter_asking_from_home_gets_their_own_copy_of_the_notes(bot: Bot) -> None:
    bot.open_step()
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    bot.runtime.sender.drain(5)
    # The presenter listens in step 2: this is their own note, in their copy only.
    bot.reply(PRESENTER, "Say it was a first draft.", bot.step_posts()[1]["ts"])
    bot.settle()
    bot.command("end")
    bot.settle()
    dm = f"D{PRESENTER[1:]}"
    at_the_end = len(bot.standin.messages(dm))
    assert "Say it was a first draft." in json.dumps(bot.standin.messages(dm))
    with bot.db.session() as s:
        session_id = s.scalars(select(ProtocolSession.id)).one()
    _press_notes(bot, PRESENTER, session_id)
    bot.wait_until(lambda: len(bot.standin.messages(dm)) > at_the_end)
    bot.settle()
    again = json.dumps(bot.standin.messages(dm)[at_the_end:])
    assert "Say it was a first draft." in again
    # Anyone else gets the group's notes.
    _press_notes(bot, TEACHERS[0], session_id)
    bot.wait_until(lambda: bool(bot.standin.messages("D_T1")))
    assert "first draft" not in json.dumps(bot.standin.messages("D_T1"))


def test_home_says_how_many_more_sessions_there_are_than_it_shows(bot: Bot) -> None:
    # A facilitator with 14 sessions ahead saw 10 of them, with no word of the other 4.
    for days in range(1, 15):
        answer = bot.command(f"start atlas <@{PRESENTER}> in {days}d")
        assert "#" in answer["text"], answer
    home = _open_home(bot, FACILITATOR)
    assert home.count("you facilitate") == 10
    assert "and 4 more after these" in home
    assert "more after these" not in _open_home(bot, TEACHERS[0])


def test_home_numbers_the_sessions_coming_up_for_cancel(bot: Bot) -> None:
    # `/protocol cancel N` needs the number, which Home did not show.
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.command(f"start tuning <@{PRESENTER}> in 3d")
    facilitating = _open_home(bot, FACILITATOR)
    assert "#1 ATLAS" in facilitating and "#2 Tuning" in facilitating
    assert "To call one off, type `/protocol cancel 1` (its number) in its channel" in facilitating
    presenting = _open_home(bot, PRESENTER)
    assert "#1 ATLAS" in presenting and "/protocol cancel" not in presenting


def test_who_booked_a_session_for_another_facilitator_sees_it_coming_up(bot: Bot) -> None:
    # They may cancel it (by its number), and Home did not show it to them.
    bot.command(f"start atlas <@{PRESENTER}> in 2d facilitator <@{TEACHERS[0]}>")
    booked = _open_home(bot, FACILITATOR)
    assert "#1 ATLAS" in booked and "you scheduled it" in booked
    assert "`/protocol cancel 1`" in booked


def _press_on_home(bot: Bot, action_id: str, value: str, user: str) -> None:
    """A button on the Home tab, as Slack sends it: from a view, with no response_url."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "team_id": TEAM},
        "team": {"id": TEAM},
        "api_app_id": "A_APP",
        "trigger_id": uuid.uuid4().hex,
        "container": {"type": "view", "view_id": "VHOME"},
        "view": {"id": "VHOME", "type": "home", "blocks": []},
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "value": value,
                "block_id": "b",
                "action_ts": "1.0",
            }
        ],
    }
    assert bot.post(interaction_body(payload))[0] == 200


def _buttons(home: str) -> list[tuple[str, str, str]]:
    return [
        (e["action_id"], e.get("value", ""), e["text"]["text"])
        for block in json.loads(home)
        if block["type"] == "actions"
        for e in block["elements"]
    ]


def test_the_presenter_gets_ready_from_home(bot: Bot) -> None:
    # Home listed the session "you present" with no way to open the prep dialog: only the
    # reminder DM had the Get ready button.
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    home = _open_home(bot, PRESENTER)
    assert _buttons(home) == [("prep_open", "1", "Get ready")]
    assert "your prep isn't in yet" in home
    assert _buttons(_open_home(bot, FACILITATOR)) == []

    opened = len(bot.standin.calls_to("views.open"))
    _press_on_home(bot, "prep_open", "1", PRESENTER)
    bot.wait_until(lambda: len(bot.standin.calls_to("views.open")) > opened)
    view = bot.standin.calls_to("views.open")[-1].response["view"]
    assert isinstance(view, dict) and view["callback_id"] == "presenter_prep"
    published = len(bot.standin.calls_to("views.publish"))
    status, body = bot.post(view_submission(view, PRESENTER, dialog_values()))
    assert status == 200 and not body.strip()
    # Home shows the prep is in, at once, and lets them change it.
    bot.wait_until(lambda: len(bot.standin.calls_to("views.publish")) > published)
    home = json.dumps(bot.standin.calls_to("views.publish")[-1].params["view"]["blocks"])
    assert "prep in :white_check_mark:" in home
    assert _buttons(home) == [("prep_open", "1", "Edit my prep")]

    # Pressed on a Home drawn before the session was cancelled: a dialog says why.
    bot.command("cancel 1")
    opened = len(bot.standin.calls_to("views.open"))
    _press_on_home(bot, "prep_open", "1", PRESENTER)
    bot.wait_until(lambda: len(bot.standin.calls_to("views.open")) > opened)
    notice = json.dumps(bot.standin.calls_to("views.open")[-1].params["view"])
    assert "cancelled" in notice
    bot.wait_until(
        lambda: (
            "Nothing scheduled for you"
            in json.dumps(bot.standin.calls_to("views.publish")[-1].params["view"])
        )
    )


def test_a_full_home_stays_within_slacks_blocks_for_a_view(bot: Bot) -> None:
    # The most Home shows: ten sessions of each kind with more of each, the upcoming ones the
    # presenter's with their Get ready buttons. Slack refuses a view of more than 100 blocks.
    for _ in range(11):
        bot.command(f"start atlas <@{PRESENTER}> step 1h")
        bot.command("end")
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    for days in range(1, 15):
        answer = bot.command(f"start atlas <@{PRESENTER}> in {days}d")
        assert "#" in answer["text"], answer
    bot.settle()
    home = _open_home(bot, PRESENTER)
    call = bot.standin.calls_to("views.publish")[-1]
    assert call.response.get("ok"), call.response
    assert home.count("more after these") >= 1


def _past(bot: Bot, user: str) -> list[str]:
    """The lines of the Past sessions on `user`'s Home tab."""
    blocks = json.loads(_open_home(bot, user))
    lines = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    return [line for line in lines if ", ended <!date" in line]


def test_past_sessions_say_whose_work_it_was(bot: Bot) -> None:
    # Two ATLAS sessions ended the same day in the same channel were two identical lines.
    for n, presenter in enumerate((PRESENTER, TEACHERS[0]), start=1):
        bot.command(f"start atlas <@{presenter}> step 1h")
        bot.wait_until(lambda n=n: len(bot.step_posts()) == n)
        bot.command("end")
        bot.settle()
    past = _past(bot, FACILITATOR)
    assert len(past) == 2, past
    assert f"<@{TEACHERS[0]}>" in past[0] and f"<@{PRESENTER}>" in past[1], past
    assert all("you facilitated" in line for line in past), past
    (own,) = _past(bot, PRESENTER)
    assert "you presented" in own, own


def test_notes_sent_by_dm_say_which_channel_and_day_they_are_from(bot: Bot) -> None:
    # The copy in a direct message (the presenter's, or one asked for from Home) named the
    # protocol and the people, not the channel nor the day: a teacher in two teams, or asking
    # for last month's, could not tell which session's notes they were.
    bot.open_step()
    bot.command("end")
    bot.settle()
    with bot.db.session() as s:
        session = s.scalars(select(ProtocolSession)).one()
        ended = session.ended_at
    assert ended is not None
    dm = f"D{PRESENTER[1:]}"
    _press_notes(bot, TEACHERS[0], session.id)
    bot.wait_until(lambda: bool(bot.standin.messages("D_T1")))
    bot.settle()
    for copy in (bot.standin.messages(dm)[-1], bot.standin.messages("D_T1")[0]):
        intro = copy["blocks"][1]["text"]["text"]
        assert f"<#{CHANNEL}>" in intro and f"<!date^{int(ended.timestamp())}^" in intro, intro


def test_a_running_session_says_which_step_of_how_many_and_its_title(bot: Bot) -> None:
    # "step 2" alone: a teacher could not tell from Home how far along the session was, or
    # what the group was doing.
    bot.open_step()
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    home = _open_home(bot, PRESENTER)
    assert "step 2 of 6, *Describing the Student Work*" in home, home
