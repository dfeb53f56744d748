"""Commands that only read are acknowledged at once and answered through response_url."""

from __future__ import annotations

import json
import operator
import threading
from typing import Any

from sqlalchemy import text

from bot.runtime import Answers
from tests.fakes.signing import slash_command_body
from tests.harness import CHANNEL, PRESENTER, TEACHERS, TEAM, Bot, wait_until


def _ask(bot: Bot, command: str, key: str) -> tuple[int, str, str]:
    url = bot.standin.response_url(key)
    status, body = bot.post(
        slash_command_body(command, channel_id=CHANNEL, team_id=TEAM, response_url=url)
    )
    return status, body, url


def _answer_at(bot: Bot, url: str) -> dict[str, object]:
    calls = bot.standin.wait_for(
        lambda calls: any(c.params.get("response_url") == url for c in calls)
    )
    return next(c.params for c in calls if c.params.get("response_url") == url)


def test_status_acks_empty_then_answers_privately(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    status, body, url = _ask(bot, "status", "status-1")
    assert (status, body) == (200, "")
    answer = _answer_at(bot, url)
    assert answer["response_type"] == "ephemeral"
    assert "Status of this channel" in str(answer["text"])
    assert "ATLAS" in str(answer["blocks"])


def test_a_command_that_changes_something_answers_in_the_ack(bot: Bot) -> None:
    status, body, url = _ask(bot, f"start atlas <@{PRESENTER}|maria> step 1h", "start-1")
    assert status == 200 and "starting" in body.lower()
    assert not [c for c in bot.standin.calls_to("response_url") if c.params["response_url"] == url]


def test_a_failed_read_still_gets_a_short_answer(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    with bot.db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE sessions RENAME TO sessions_away"))
    try:
        status, body, url = _ask(bot, "status", "status-broken")
        assert (status, body) == (200, "")
        answer = _answer_at(bot, url)
        assert "Nothing was changed" in str(answer["text"])
        assert "/protocol status" in str(answer["text"])
        assert "Traceback" not in str(answer)
    finally:
        with bot.db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE sessions_away RENAME TO sessions"))


def test_status_answers_reuse_their_threads_connection_to_slack(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.settle()
    before = bot.standin.connections_opened
    urls = []
    for n in range(12):
        status, body, url = _ask(bot, "status", f"status-many-{n}")
        assert (status, body) == (200, "")
        urls.append(url)
    for url in urls:
        assert "Status of this channel" in str(_answer_at(bot, url)["text"])
    # At most one new connection per answer thread (Bolt's respond opened one per answer).
    assert bot.standin.connections_opened - before <= 4


def test_an_answer_whose_response_url_slack_refuses_still_reaches_the_asker(bot: Bot) -> None:
    bot.open_step()
    # Slack answers 404 for a response_url used up or expired (the answer came too late).
    bot.standin.fail_next("response_url", status=404, error="expired_url")
    bot.command("status", user=TEACHERS[0])

    def told_to_them() -> list[dict[str, Any]]:
        return [m for m in bot.standin.ephemerals(CHANNEL) if m["user"] == TEACHERS[0]]

    bot.wait_until(told_to_them)  # sent once Slack refused the response_url
    bot.settle()
    (told,) = told_to_them()
    assert "Who has replied" in json.dumps(told["blocks"])


def test_status_of_a_big_session_in_a_busy_channel_reaches_the_facilitator(bot: Bot) -> None:
    # Each step named everyone who had replied in it: 100 teachers over ATLAS's 6 steps and 19
    # sessions scheduled came to more than Slack takes in one message, and the facilitator's
    # /protocol status was refused, through response_url and again as a private line.
    people = [f"U0A{n:08d}" for n in range(100)]
    for user in people:
        bot.standin.add_user(user, f"teacher {user}")
    for days in range(1, 20):
        bot.command(f"start atlas <@{PRESENTER}> in {days}d")
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    for step in range(1, 7):
        bot.wait_until(lambda step=step: len(bot.step_posts()) == step)  # type: ignore[misc]
        thread = str(bot.step_posts()[-1]["ts"])
        for user in people:
            bot.reply(user, "The title is underlined", thread)
        bot.wait_until(lambda step=step: len(bot.recorded()) == 100 * step)  # type: ignore[misc]
        if step < 6:
            bot.command("next")
    answer = bot.command("status")
    bot.settle()
    answers = bot.standin.calls_to("response_url") + bot.standin.calls_to("chat.postEphemeral")
    assert [c.response for c in answers if c.status != 200 or not c.response["ok"]] == []
    shown = json.dumps(answer["blocks"])
    assert "6. Debriefing the Process: 100 replies from 100 people" in shown
    assert shown.count("<@U0A00000000>") == 6 and "<@U0A00000099>" not in shown
    assert shown.count(" and 85 more") == 6


def test_the_answer_threads_say_when_their_work_is_done() -> None:
    # What settle waits for: a start's check of the token and of who is in the channel ran on
    # after every post was sent, and opened a connection to Slack in the middle of the next test.
    answers = Answers(workers=2)
    release = threading.Event()
    try:
        assert answers.idle()
        first = answers.submit(release.wait, 10)
        queued = answers.submit(release.wait, 10)
        third = answers.submit(release.wait, 10)  # waits for a thread
        assert not answers.idle()
        release.set()
        for future in (first, queued, third):
            assert future.result(timeout=10) is True
        wait_until(answers.idle, 5)
        failing = answers.submit(operator.truediv, 1, 0)
        assert isinstance(failing.exception(timeout=10), ZeroDivisionError)
        wait_until(answers.idle, 5)
    finally:
        release.set()
        answers.shutdown(wait=True)
