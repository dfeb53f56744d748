"""Slack shows an error for a command not acknowledged within 3 seconds, though the bot may still
act on it: the lookups a start makes before its ack give up in time, and create nothing unsure."""

from __future__ import annotations

import time

from slack_sdk import WebClient
from sqlalchemy import select

from bot.profiles import BUDGET_SECONDS, CALL_SECONDS, SlackProfiles
from bot.slack_standin import SlackStandin
from bot.store.models import ProtocolSession
from tests.harness import FACILITATOR, PRESENTER, Bot
from tests.prep_world import message_text

SLOW = 4.0  # seconds: longer than Slack waits for an ack
IN_TIME = 2.5


def _sessions(bot: Bot) -> list[tuple[str, str]]:
    with bot.db.session() as s:
        return [(x.status, x.presenter_id) for x in s.scalars(select(ProtocolSession))]


def test_a_slow_time_zone_lookup_is_refused_in_time_and_creates_nothing(bot: Bot) -> None:
    bot.standin.fail_next("users.info", delay=SLOW, apply_on_timeout=True)
    began = time.monotonic()
    answer = bot.command(f"start atlas <@{PRESENTER}> at tomorrow 15:00")
    assert time.monotonic() - began < IN_TIME
    assert "try again in a moment" in message_text(answer)
    assert _sessions(bot) == []


def test_a_slow_presenter_lookup_is_skipped_and_the_session_starts_in_time(bot: Bot) -> None:
    # Whether the presenter left or is an app is a courtesy check: without it the start is safe.
    bot.standin.fail_next("users.info", delay=SLOW, apply_on_timeout=True)
    began = time.monotonic()
    answer = bot.command(f"start atlas <@{PRESENTER}> step 1h")
    assert time.monotonic() - began < IN_TIME
    assert "starting" in message_text(answer)
    assert _sessions(bot) == [("running", PRESENTER)]


def test_no_lookup_starts_once_the_budget_cannot_cover_it(workspace: SlackStandin) -> None:
    now = [100.0]
    profiles = SlackProfiles(
        WebClient(token="xoxb-test", base_url=workspace.url), monotonic=lambda: now[0]
    )
    assert profiles.person(PRESENTER) is not None
    now[0] += BUDGET_SECONDS - CALL_SECONDS + 0.1  # the earlier lookups took most of it
    assert profiles.person(PRESENTER) is None
    assert profiles.zone_of(FACILITATOR) is None
    assert len(workspace.calls_to("users.info")) == 1


def test_a_slow_start_dialog_is_refused_in_time(bot: Bot) -> None:
    # The trigger_id lasts 3 seconds: past that Slack shows an error whatever the bot does.
    bot.standin.fail_next("views.open", delay=SLOW, apply_on_timeout=True)
    began = time.monotonic()
    answer = bot.command("")
    assert time.monotonic() - began < IN_TIME
    assert "could not open the start dialog" in message_text(answer)


def test_a_start_dialog_slack_is_slow_to_show_the_channel_for_is_refused_in_time(
    bot: Bot,
) -> None:
    # Whether Slack shows the bot the channel, then the dialog: both inside the 3 seconds.
    bot.standin.fail_next("conversations.info", delay=SLOW, apply_on_timeout=True)
    bot.standin.fail_next("views.open", delay=SLOW, apply_on_timeout=True)
    began = time.monotonic()
    answer = bot.command("")
    assert time.monotonic() - began < IN_TIME
    assert "could not open the start dialog" in message_text(answer)


def test_a_slow_admin_check_is_answered_in_time(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: bot.step_posts())
    # Someone other than the facilitator steers: only then is Slack asked whether they're an admin.
    bot.standin.fail_next("users.info", times=3, delay=SLOW, apply_on_timeout=True)
    began = time.monotonic()
    answer = bot.command("next", user="U_ADMIN")
    assert time.monotonic() - began < IN_TIME
    assert "Only the facilitator" in message_text(answer)
    assert len(bot.step_posts()) == 1
