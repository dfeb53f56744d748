"""`protocolbot forget-user` for what a person wrote besides their replies: the presenter's
statement and link, the name Slack gave them, and their events the bot has not handled yet (the
real CLI on the bot's database, the bot over signed HTTP against the stand-in Slack)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.runtime import Runtime
from bot.slack_standin import SlackStandin
from bot.store.db import Database
from bot.store.models import InboxEvent
from tests.harness import CHANNEL, PRESENTER, TEACHERS, Bot, tables_holding
from tests.prep_world import dialog_values, view_submission
from tests.process import bot_environment, run_cli
from tests.test_home import _press_on_home
from tests.test_processes import needs_postgres, opened_then_no_clock

DM = f"D{PRESENTER[1:]}"


def _forget(bot: Bot, user: str) -> str:
    env = bot_environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="signing",
        DATABASE_URL=bot.settings.database_url,
    )
    done = run_cli(["forget-user", user], env, Path.cwd())
    assert (done.returncode, done.stderr) == (0, "")
    return done.stdout


@pytest.mark.parametrize("when", ["in 2d", "step 1h"], ids=["booked", "running"])
def test_forget_user_takes_a_presenter_s_statement_link_and_name(bot: Bot, when: str) -> None:
    # The presenter's words were kept with the session they presented, and in the bot's copies
    # of its posts that quoted them (the step their statement opens, once it started), out of
    # forget-user's reach: it deleted replies only.
    statement = "Rosa-in-room-12 drew the fruit graph twice"
    link = "https://docs.example.org/rosa-room-12"
    bot.command(f"start atlas <@{PRESENTER}|maria> {when}")
    opened = len(bot.standin.calls_to("views.open"))
    _press_on_home(bot, "prep_open", "1", PRESENTER)
    bot.wait_until(lambda: len(bot.standin.calls_to("views.open")) > opened)
    view = bot.standin.calls_to("views.open")[-1].response["view"]
    assert isinstance(view, dict)
    status, _ = bot.post(
        view_submission(view, PRESENTER, dialog_values(statement=statement, link=link))
    )
    assert status == 200
    bot.settle()
    for secret in (statement, link, "maria"):
        assert "sessions" in tables_holding(bot, secret)
    if when == "step 1h":
        assert statement in json.dumps(bot.step_posts()[0]) or statement in json.dumps(
            bot.standin.calls_to("chat.update")[-1].params
        )

    assert _forget(bot, PRESENTER) == (
        "forgot their name, and what they wrote as presenter, in 1 session; the running bot "
        "edits the notes it posted in Slack to match\n"
    )
    bot.settle()
    for secret in (statement, link, "maria"):
        assert tables_holding(bot, secret) == []
    # What runs the session stays: it starts in two days, or runs on, with its presenter.
    status = json.dumps(bot.command("status"))
    assert "ATLAS" in status and f"<@{PRESENTER}>" in status
    # Nothing left to forget the second time.
    assert _forget(bot, PRESENTER) == f"no replies by {PRESENTER} are kept in this database\n"


@needs_postgres
def test_forget_user_blanks_a_reply_stored_and_not_handled_yet_and_it_is_never_recorded(
    workspace: SlackStandin, database_url: str
) -> None:
    # A reply the web process stored while no clock ran: forget-user blanked handled events
    # only, so the clock that came back recorded it, words and all.
    secret = "Theo-in-period-5 wrote the sum twice"
    web = Bot(workspace, database_url, with_scheduler=False).start()
    clock = Runtime(web.settings, database=Database(database_url)).start()
    try:
        thread = opened_then_no_clock(web, clock)
        kept = web.reply(TEACHERS[1], "The sum is in the margin.", thread)
        web.reply(TEACHERS[0], secret, thread)
        web.settle()
        assert "inbox" in tables_holding(web, secret)

        nothing = f"no replies by {TEACHERS[0]} are kept in this database\n"
        assert _forget(web, TEACHERS[0]) == nothing
        assert tables_holding(web, secret) == []
        clock = Runtime(web.settings, database=Database(database_url)).start()
        web.wait_until(lambda: web.recorded() == [kept])
        with web.db.inbox_session() as s:
            left = s.scalars(select(InboxEvent.id).where(InboxEvent.processed_at.is_(None)))
            assert list(left) == []
        web.settle()
        assert web.recorded() == [kept]
    finally:
        clock.stop()
        clock.db.dispose()
        web.stop()


def _at_the_presenter_s_turn(bot: Bot, *questions: tuple[str, str]) -> list[str]:
    """An ATLAS session on hour-long steps whose Describing step had `questions` (author, words)
    for the presenter, moved on until the presenter's turn DM is sent: the questions' ts."""
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    describe = str(bot.step_posts()[1]["ts"])
    said = [bot.reply(user, text, describe) for user, text in questions]
    bot.settle()
    while not bot.standin.messages(DM):
        bot.command("next")
        bot.settle()
    return said


def test_a_question_deleted_is_taken_out_of_the_presenter_s_turn(bot: Bot) -> None:
    # The DM that opened the presenter's turn listed the questions parked for them: one its
    # author deleted in Slack stayed there, in the presenter's DMs.
    secret = "Was Jake-from-period-3 allowed a calculator?"
    said = _at_the_presenter_s_turn(
        bot, (TEACHERS[0], secret), (TEACHERS[1], "Was this a first draft?")
    )
    assert secret in json.dumps(bot.standin.messages(DM))
    event = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": CHANNEL,
        "deleted_ts": said[0],
        "previous_message": {"ts": said[0], "thread_ts": "1", "user": TEACHERS[0], "text": ""},
        "ts": f"{time.time():.6f}",
        "hidden": True,
    }
    assert bot.event(event) == 200
    bot.wait_until(lambda: secret not in json.dumps(bot.standin.messages(DM)))
    turn = json.dumps(bot.standin.messages(DM))
    assert "Was this a first draft?" in turn and "1 question was parked for you" in turn


def test_forget_user_takes_their_question_out_of_the_presenter_s_turn(bot: Bot) -> None:
    # forget-user emptied the bot's copy of that DM, and left the words in Slack.
    secret = "Was Jake-from-period-3 allowed a calculator?"
    _at_the_presenter_s_turn(bot, (TEACHERS[0], secret))
    assert secret in json.dumps(bot.standin.messages(DM))
    _forget(bot, TEACHERS[0])
    bot.wait_until(lambda: secret not in json.dumps(bot.standin.messages(DM)))
    bot.settle()
    assert tables_holding(bot, "Jake-from-period-3") == []
    turn = json.dumps(bot.standin.messages(DM))
    assert "Nothing is parked for you now" in turn
