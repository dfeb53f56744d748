"""Time zones in presenter prep: read in the caller's zone, shown in each reader's, across DST."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot.engine import prep
from bot.profiles import SlackProfiles, Zone
from bot.slack_standin import SlackStandin
from bot.store.models import ProtocolSession
from tests.harness import FACILITATOR, PRESENTER, Bot
from tests.prep_world import LA, NOW, NY, PRE, World, make_world, message_text


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    w = make_world(database_url, NOW)
    try:
        yield w
    finally:
        w.db.dispose()


def _dates(text: str) -> list[tuple[datetime, str]]:
    """Every Slack date token in a message: the instant, and the fallback label."""
    return [
        (datetime.fromtimestamp(int(epoch), UTC), label)
        for epoch, label in re.findall(r"<!date\^(\d+)\^[^|>]*\|([^>]*)>", text)
    ]


def test_a_facilitator_in_los_angeles_schedules_for_a_presenter_in_new_york(world: World) -> None:
    reply = world.command(f"start atlas <@{PRE}> at tue 15:00", tz=LA)
    session = world.session()
    # 15:00 in Los Angeles on Tuesday 3 March (PST) is 23:00 UTC, 18:00 for the presenter.
    start = datetime(2026, 3, 3, 23, 0, tzinfo=UTC)
    assert session.starts_at == start and session.tz == LA
    assert start.astimezone(ZoneInfo(NY)).hour == 18
    assert "America/Los_Angeles" in reply

    dm = message_text(world.dms(PRE)[0].payload)
    # The DM carries the instant (Slack shows it in New York time) and a label naming its zone.
    assert (start, "Tue 03 Mar 2026 15:00 PST") in _dates(dm)
    assert world.timers.jobs[f"session:{session.id}:remind"] == start - timedelta(hours=24)
    assert world.timers.jobs[f"session:{session.id}:followup"] == start - timedelta(hours=3)

    # The same words from the presenter in New York mean a different instant.
    world.command(f"start atlas <@{PRE}> at tue 15:00", tz=NY, user="U_T1")
    assert world.session().starts_at == datetime(2026, 3, 3, 20, 0, tzinfo=UTC)


def test_a_session_scheduled_across_the_spring_forward_change(world: World) -> None:
    world.clock.set(datetime(2026, 3, 6, 20, 0, tzinfo=UTC))  # Friday, 12:00 PST
    world.command(f"start atlas <@{PRE}> at mon 15:00", tz=LA)
    monday = world.session()
    # Monday 9 March is after the change (8 March, 02:00): 15:00 PDT is 22:00 UTC, not 23:00.
    assert monday.starts_at == datetime(2026, 3, 9, 22, 0, tzinfo=UTC)
    assert "15:00 PDT" in message_text(world.dms(PRE)[0].payload)

    world.command(f"start tuning <@{PRE}> at sun 15:00", tz=LA, user="U_T1")
    sunday = world.session()
    assert sunday.starts_at == datetime(2026, 3, 8, 22, 0, tzinfo=UTC)
    remind_at = world.timers.jobs[f"session:{sunday.id}:remind"]
    # The lead time is 24 real hours: 14:00 PST on the Saturday, not 15:00.
    assert remind_at == sunday.starts_at - timedelta(hours=24)
    assert remind_at.astimezone(ZoneInfo(LA)).strftime("%a %H:%M %Z") == "Sat 14:00 PST"

    world.clock.set(remind_at)
    world.due(sunday.id, prep.REMIND)
    reminder = message_text(world.dms(PRE)[-1].payload)
    assert (sunday.starts_at, "Sun 08 Mar 2026 15:00 PDT") in _dates(reminder)

    world.clock.set(sunday.starts_at)
    world.engine.begin(sunday.id)
    assert world.session(sunday.id).status == "running"


def test_a_time_the_clocks_skip_is_moved_on_and_the_answer_says_so(world: World) -> None:
    """8 March 2026 in New York: the clocks go from 02:00 to 03:00, and 02:30 never happens."""
    world.clock.set(datetime(2026, 3, 8, 5, 30, tzinfo=UTC))  # 00:30 EST that Sunday
    answer = world.command(f"start atlas <@{PRE}> at 02:30", tz=NY)
    assert world.session().starts_at == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert "02:30 doesn't happen that day in America/New_York" in answer, answer
    assert "the clocks go forward" in answer and "03:00" in answer
    # A time that happens is answered without a word about it.
    other = world.command(f"start tuning <@{PRE}> at 2026-03-09 02:30", tz=NY)
    assert "doesn't happen" not in other


def test_a_session_scheduled_across_the_fall_back_change(world: World) -> None:
    world.clock.set(datetime(2026, 10, 30, 18, 0, tzinfo=UTC))  # Friday, 11:00 PDT
    world.command(f"start atlas <@{PRE}> at 2026-11-02 09:00", tz=LA)
    session = world.session()
    assert session.starts_at == datetime(2026, 11, 2, 17, 0, tzinfo=UTC)  # 09:00 PST
    remind_at = world.timers.jobs[f"session:{session.id}:remind"]
    assert remind_at.astimezone(ZoneInfo(LA)).strftime("%a %H:%M %Z") == "Sun 09:00 PST"
    # A repeated wall time (01:30 happens twice) is its first occurrence, still daylight time.
    world.command(f"start atlas <@{PRE}> at 2026-11-01 01:30", tz=LA, user="U_T1")
    assert world.session().starts_at == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)


# -- the caller's zone: their own, else the workspace's, else the default (and say so) ----------


def _without_zone(
    standin: SlackStandin, monkeypatch: pytest.MonkeyPatch, user: str, tz: Any
) -> None:
    original = standin._methods["users.info"]

    def users_info(params: dict[str, Any], token: str) -> dict[str, Any]:
        answer = original(params, token)
        if answer["user"]["id"] == user:
            answer["user"]["tz"] = tz
        return answer

    monkeypatch.setitem(standin._methods, "users.info", users_info)


def test_a_zone_the_user_has_not_set_falls_back_and_says_where(
    workspace: SlackStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    profiles = SlackProfiles(WebClient(token="xoxb-test", base_url=workspace.url))
    assert profiles.zone_of(FACILITATOR) == Zone(LA, "user")
    _without_zone(workspace, monkeypatch, FACILITATOR, None)
    assert profiles.zone_of(FACILITATOR) == Zone("UTC", "default")
    _without_zone(workspace, monkeypatch, PRESENTER, "Mars/Olympus_Mons")
    assert profiles.zone_of(PRESENTER) == Zone("UTC", "default")

    original = workspace._methods["team.info"]

    def team_info(params: dict[str, Any], token: str) -> dict[str, Any]:
        answer = original(params, token)
        answer["team"]["tz"] = "Europe/London"
        return answer

    monkeypatch.setitem(workspace._methods, "team.info", team_info)
    assert profiles.zone_of(FACILITATOR) == Zone("Europe/London", "workspace")


def test_e2e_the_zone_read_and_the_fallback_are_said(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}> at tomorrow 15:00"))
    assert "your Slack time zone, America/Los_Angeles" in answer
    with bot.db.session() as s:
        session = s.scalars(select(ProtocolSession)).one()
    local = session.starts_at.astimezone(ZoneInfo(LA))
    assert (local.hour, local.minute, session.tz) == (15, 0, LA)
    bot.wait_until(lambda: len(bot.posts(f"D{PRESENTER[1:]}")) == 1)
    dm = message_text(bot.posts(f"D{PRESENTER[1:]}")[0])
    assert session.starts_at in [when for when, _ in _dates(dm)]

    _without_zone(bot.standin, monkeypatch, FACILITATOR, None)
    answer = message_text(bot.command(f"start tuning <@{PRESENTER}> at tomorrow 15:00"))
    assert "no time zone" in answer and "UTC" in answer
    with bot.db.session() as s:
        later = s.scalars(select(ProtocolSession).order_by(ProtocolSession.id.desc())).first()
    assert later is not None and later.tz == "UTC"
    assert later.starts_at.astimezone(UTC).hour == 15


@pytest.mark.parametrize("status", [429, 500])
def test_slack_failing_to_answer_is_not_a_profile_without_a_zone(
    workspace: SlackStandin, status: int
) -> None:
    profiles = SlackProfiles(WebClient(token="xoxb-test", base_url=workspace.url))
    workspace.fail_next("users.info", status=status, times=2)
    assert profiles.zone_of(FACILITATOR) is None


def test_e2e_a_time_is_not_read_in_a_guessed_zone_while_slack_fails(bot: Bot) -> None:
    bot.standin.fail_next("users.info", status=429, times=5)
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}> at tomorrow 15:00"))
    assert "couldn't read your time zone from Slack just now" in answer
    assert "no time zone" not in answer
    with bot.db.session() as s:
        assert s.scalars(select(ProtocolSession)).all() == []


def test_e2e_in_needs_no_zone_to_schedule_while_slack_fails(bot: Bot) -> None:
    """`in 2h` is two hours from now wherever the caller is: only its label wants their zone."""
    bot.standin.fail_next("users.info", status=429, times=5)
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}> in 2h"))
    assert "is scheduled" in answer and "no time zone" not in answer
    with bot.db.session() as s:
        assert [x.status for x in s.scalars(select(ProtocolSession))] == ["scheduled"]


def test_e2e_in_shows_the_start_in_the_callers_zone(bot: Bot) -> None:
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}> in 2h"))
    with bot.db.session() as s:
        session = s.scalars(select(ProtocolSession)).one()
    assert session.tz == LA
    assert session.starts_at.astimezone(ZoneInfo(LA)).strftime("%H:%M %Z") in answer
    assert " UTC" not in answer
