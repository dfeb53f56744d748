"""When the closing warning comes: before the step's actual close, however the close moved.

The end-to-end tests run a web process (no timers) on a clock the test sets back, for what
happened in a session long ago, then a bot on the real time with its scheduler.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from bot.engine import controls
from bot.engine.core import Engine
from bot.engine.pacing import calendar_days, days_left, later, time_left
from bot.slack_standin import SlackStandin
from bot.store.models import OutboxMessage, ProtocolSession, StepRun
from tests.conftest import PG_ADMIN_URL, database_out_of_reach
from tests.harness import FACILITATOR, PRESENTER, Bot
from tests.test_engine import (
    HeldClock,
    RecordingTimers,
    actor,
    date_tokens,
    runs,
    session_row,
    start,
)


class _Behind:
    """A web process's clock, as far behind the real time as the test says."""

    def __init__(self) -> None:
        self.behind = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) - self.behind


def _warnings(workspace: SlackStandin) -> list[dict[str, Any]]:
    return [
        m
        for m in workspace.messages("C_TEAM")
        if m.get("thread_ts") and "This step closes" in str(m.get("text", ""))
    ]


def _closes(bot: Bot) -> int:
    with bot.db.session() as s:
        closes = s.scalars(select(ProtocolSession.step_closes_at)).one()
        assert closes is not None
        return int(closes.timestamp())


def test_a_step_paused_past_its_warning_time_is_warned_before_its_new_close(
    workspace: SlackStandin, database_url: str
) -> None:
    # A 10-minute step paused just before its warning (due 8 minutes in) for an hour, then
    # resumed with 2 minutes and a second left: warned 2 minutes before it closes, as unpaused.
    web_clock = _Behind()
    web = Bot(workspace, database_url, with_scheduler=False, clock=web_clock).start()
    try:
        web_clock.behind = timedelta(minutes=70)
        web.command(f"start atlas <@{PRESENTER}> step 10m")
        web_clock.behind = timedelta(minutes=70) - timedelta(minutes=7, seconds=59)
        assert "Paused" in web.command("pause")["text"]
    finally:
        web.stop()
    bot = Bot(workspace, database_url).start()  # an hour on: the clock's own time
    try:
        assert "Resumed" in bot.command("resume")["text"]
        bot.wait_until(lambda: _warnings(workspace), timeout=6)
        bot.settle()
        (warning,) = _warnings(workspace)
        (step,) = bot.step_posts()
        assert warning["thread_ts"] == step["ts"]
        assert f"<!date^{_closes(bot)}^" in warning["text"]
    finally:
        bot.stop()


@contextmanager
def _clock_back(workspace: SlackStandin, database_url: str, ago: timedelta) -> Iterator[Bot]:
    """A session of 10-minute steps started `ago` by a web process, and no clock process running
    since; then the bot with its scheduler, on the real time."""
    web_clock = _Behind()
    web_clock.behind = ago
    web = Bot(workspace, database_url, with_scheduler=False, clock=web_clock).start()
    try:
        web.command(f"start atlas <@{PRESENTER}> step 10m")
    finally:
        web.stop()
    bot = Bot(workspace, database_url).start()
    try:
        yield bot
    finally:
        bot.stop()


def test_a_warning_due_while_the_clock_was_down_goes_out_when_it_is_back(
    workspace: SlackStandin, database_url: str
) -> None:
    # Started 8.5 minutes ago: the warning fell due half a minute ago, and the step closes in a
    # minute and a half.
    with _clock_back(workspace, database_url, timedelta(minutes=8, seconds=30)) as bot:
        bot.wait_until(lambda: _warnings(workspace), timeout=6)
        bot.settle()
        (warning,) = _warnings(workspace)
        (step,) = bot.step_posts()
        assert warning["thread_ts"] == step["ts"]
        assert f"<!date^{_closes(bot)}^" in warning["text"]  # says when the step closes
        assert _session(bot).current_step == 1 and _warned_at_is_cleared(bot)


@pytest.mark.skipif(not PG_ADMIN_URL, reason="takes a PostgreSQL database out of reach")
def test_a_warning_due_while_the_database_was_out_of_reach_goes_out_when_it_is_back(
    workspace: SlackStandin, database_url: str
) -> None:
    # The warning falls due 4 seconds after the start, in a database outage of 8 seconds.
    with _clock_back(workspace, database_url, timedelta(minutes=7, seconds=56)) as bot:
        with database_out_of_reach(database_url):
            time.sleep(8)
        bot.wait_until(lambda: _warnings(workspace), timeout=6)
        (warning,) = _warnings(workspace)
        assert warning["thread_ts"] == bot.step_posts()[0]["ts"]


def test_a_warning_due_while_the_clock_was_down_is_dropped_when_its_step_closes_now(
    workspace: SlackStandin, database_url: str
) -> None:
    # 15 s before the close, under a quarter of the warning's 2 minutes: too late to be of use.
    # The step closes as it would have, unwarned (as one whose close passed too).
    with _clock_back(workspace, database_url, timedelta(minutes=9, seconds=45)) as bot:
        bot.wait_until(lambda: _warned_at_is_cleared(bot), timeout=6)
        bot.settle()
        assert _warnings(workspace) == []
        assert len(bot.step_posts()) == 1


def _warned_at_is_cleared(bot: Bot) -> bool:
    with bot.db.session() as s:
        return s.scalars(select(StepRun.warn_at)).one() is None


def _session(bot: Bot) -> ProtocolSession:
    with bot.db.session() as s:
        session = s.scalars(select(ProtocolSession)).one()
        s.expunge(session)
        return session


def test_resume_and_extend_keep_the_warning_its_time_before_the_close(
    engine: Engine, clock: HeldClock, timers: RecordingTimers
) -> None:
    session = start(engine, step_seconds=600)
    clock.advance(7 * 60)
    controls.pause(engine, actor())
    clock.advance(3600)
    controls.resume(engine, actor())
    closes = clock.now() + timedelta(minutes=3)
    assert session_row(engine, session.id).step_closes_at == closes
    assert ("step_warning", (session.id, 1, closes - timedelta(minutes=2))) == timers.other[-1]
    controls.extend(engine, actor(), 900)
    later = closes + timedelta(minutes=15)
    assert ("step_warning", (session.id, 1, later - timedelta(minutes=2))) == timers.other[-1]
    assert runs(engine, session.id)[0].warn_at == later - timedelta(minutes=2)


@pytest.mark.parametrize(
    ("starts", "commands"),
    [
        # Step 1 opens Saturday 3 PM (PDT) and closes Sunday 3 PM (PST): 25 hours.
        (datetime(2026, 10, 31, 22, 0, tzinfo=UTC), []),
        # Step 1 opens Friday 3 PM and is extended by a day, across the same change.
        (datetime(2026, 10, 30, 22, 0, tzinfo=UTC), ["extend 1d"]),
    ],
)
def test_a_days_step_keeps_its_local_time_across_a_daylight_saving_change(
    workspace: SlackStandin, database_url: str, starts: datetime, commands: list[str]
) -> None:
    # The facilitator is in Los Angeles, whose clocks go back an hour on 1 November 2026.
    web = Bot(workspace, database_url, with_scheduler=False, clock=HeldClock(starts)).start()
    try:
        web.command(f"start atlas <@{PRESENTER}> step 1d")
        for command in commands:
            web.command(command)
        assert _closes(web) == int(datetime(2026, 11, 1, 23, 0, tzinfo=UTC).timestamp())
        with web.db.session() as s:
            header = s.scalars(
                select(OutboxMessage).where(OutboxMessage.ref.like("header:%"))
            ).one()
        # Every step opens and closes at 3 PM in Los Angeles, as the header shows them.
        opens_and_closes = date_tokens(json.dumps(header.payload))
        assert len(opens_and_closes) >= 6
        los_angeles = ZoneInfo("America/Los_Angeles")
        assert {datetime.fromtimestamp(at, los_angeles).hour for at in opens_and_closes} == {15}
    finally:
        web.stop()


def test_a_days_step_paused_and_resumed_across_a_daylight_saving_change_keeps_its_time(
    workspace: SlackStandin, database_url: str
) -> None:
    """A day's step paused at once on Friday 3 PM in Los Angeles and resumed on Saturday at
    3 PM has a whole day left: it closes on Sunday at 3 PM, though the clocks went back an hour
    that night (25 hours), not at 2 PM."""
    clock = HeldClock(datetime(2026, 10, 30, 22, 0, tzinfo=UTC))
    web = Bot(workspace, database_url, with_scheduler=False, clock=clock).start()
    try:
        web.command(f"start atlas <@{PRESENTER}> step 1d")
        web.command("pause")
        clock.set(datetime(2026, 10, 31, 22, 0, tzinfo=UTC))
        web.command("resume")
        assert _closes(web) == int(datetime(2026, 11, 1, 23, 0, tzinfo=UTC).timestamp())
    finally:
        web.stop()


@pytest.mark.parametrize("commands", [[], ["pause", "resume"]])
def test_a_step_of_24_hours_is_24_hours_across_a_daylight_saving_change(
    workspace: SlackStandin, database_url: str, commands: list[str]
) -> None:
    """`step 24h` is hours typed as hours, as `in 24h` and `extend 24h` are: its step opened
    on Saturday at 3 PM in Los Angeles closes 24 hours on, at 2 PM once the clocks went back,
    and so does every step after it in the header's plan (`step 1d` keeps 3 PM). Paused at
    once and resumed, it keeps its 24 hours too."""
    starts = datetime(2026, 10, 31, 22, 0, tzinfo=UTC)
    web = Bot(workspace, database_url, with_scheduler=False, clock=HeldClock(starts)).start()
    try:
        web.command(f"start atlas <@{PRESENTER}> step 24h")
        for command in commands:
            web.command(command)
        assert _closes(web) == int((starts + timedelta(hours=24)).timestamp())
        with web.db.session() as s:
            header = s.scalars(
                select(OutboxMessage).where(OutboxMessage.ref.like("header:%"))
            ).one()
        opens_and_closes = sorted(set(date_tokens(json.dumps(header.payload))))
        assert len(opens_and_closes) >= 4
        gaps = {b - a for a, b in zip(opens_and_closes, opens_and_closes[1:], strict=False)}
        assert gaps == {24 * 3600}
        assert "one step every 24 h)" in json.dumps(header.payload)
    finally:
        web.stop()


def test_a_days_step_extended_by_a_day_while_paused_keeps_its_time_across_a_clock_change(
    workspace: SlackStandin, database_url: str
) -> None:
    """`step 1d` paused at once on Thursday 3 PM in Los Angeles, `extend 1d` while paused,
    and resumed on Friday 3 PM: two days left, both on the calendar, so it closes on Sunday at
    3 PM, though the clocks went back that night (not at 2 PM)."""
    clock = HeldClock(datetime(2026, 10, 29, 22, 0, tzinfo=UTC))
    web = Bot(workspace, database_url, with_scheduler=False, clock=clock).start()
    try:
        web.command(f"start atlas <@{PRESENTER}> step 1d")
        web.command("pause")
        web.command("extend 1d")
        clock.set(datetime(2026, 10, 30, 22, 0, tzinfo=UTC))
        web.command("resume")
        assert _closes(web) == int(datetime(2026, 11, 1, 23, 0, tzinfo=UTC).timestamp())
    finally:
        web.stop()


def test_a_session_from_before_the_days_typed_were_kept_counts_whole_days_on_the_calendar(
    workspace: SlackStandin, database_url: str
) -> None:
    """A session started before migration 0017 has no step_days: its whole days keep their
    time of day, as they did, when it resumes and in its header's plan."""
    clock = HeldClock(datetime(2026, 10, 30, 22, 0, tzinfo=UTC))
    web = Bot(workspace, database_url, with_scheduler=False, clock=clock).start()
    try:
        web.command(f"start atlas <@{PRESENTER}> step 1d")
        with web.db.session() as s:
            s.execute(update(ProtocolSession).values(step_days=None))
            s.commit()
        web.command("pause")
        clock.set(datetime(2026, 10, 31, 22, 0, tzinfo=UTC))
        web.command("resume")
        assert _closes(web) == int(datetime(2026, 11, 1, 23, 0, tzinfo=UTC).timestamp())
    finally:
        web.stop()


NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("step", "extend", "paused", "closes"),
    [
        # `step 24h` paused at once on Thursday 3 PM in New York, a day added while paused,
        # resumed on Friday at 3 PM: its 24 hours to Saturday 3 PM, then the day typed as a
        # day, to Sunday at 3 PM though the clocks went back that night (not 2 PM, 48 hours).
        ("24h", "1d", datetime(2026, 10, 29, 15, 0), datetime(2026, 11, 1, 15, 0)),
        # The same in March, when the clocks go forward (a 23-hour day): not at 4 PM.
        ("24h", "1d", datetime(2026, 3, 5, 15, 0), datetime(2026, 3, 8, 15, 0)),
        # Resumed a day later, the clock change in its own 24 hours: to Sunday at 2 PM, then
        # a day on: Monday at 2 PM, as an `extend 1d` after the resume would have made it.
        ("24h", "1d", datetime(2026, 10, 30, 15, 0), datetime(2026, 11, 2, 14, 0)),
        # `step 1d` with 24 hours added while paused: its day to Saturday at 3 PM, then the
        # hours as hours, as `extend 24h` is while the step runs: Sunday at 2 PM, not 3 PM.
        ("1d", "24h", datetime(2026, 10, 29, 15, 0), datetime(2026, 11, 1, 14, 0)),
    ],
)
def test_time_added_while_paused_is_counted_as_it_was_typed_across_a_clock_change(
    workspace: SlackStandin,
    database_url: str,
    step: str,
    extend: str,
    paused: datetime,
    closes: datetime,
) -> None:
    workspace.add_user(FACILITATOR, "dana", tz="America/New_York")
    clock = HeldClock(paused.replace(tzinfo=NEW_YORK).astimezone(UTC))
    web = Bot(workspace, database_url, with_scheduler=False, clock=clock).start()
    try:
        web.command(f"start atlas <@{PRESENTER}> step {step}")
        web.command("pause")
        web.command(f"extend {extend}")
        clock.set((paused + timedelta(days=1)).replace(tzinfo=NEW_YORK).astimezone(UTC))
        web.command("resume")
        assert datetime.fromtimestamp(_closes(web), NEW_YORK).replace(tzinfo=None) == closes
    finally:
        web.stop()


LOS_ANGELES = ZoneInfo("America/Los_Angeles")


@pytest.mark.parametrize(
    ("opens", "step", "warned"),
    [
        # A day's step opened on Friday afternoon closes on Monday morning: warned on Friday,
        # its 4.8 hours' lead counted back from the end of Friday, not at 3 AM on Monday.
        (datetime(2026, 11, 13, 15, 0), "1d", datetime(2026, 11, 13, 19, 12)),
        # Two days from Thursday: Friday afternoon, not Sunday night.
        (datetime(2026, 11, 12, 15, 0), "2d", datetime(2026, 11, 13, 14, 24)),
        # Tuesday to Wednesday: no weekend, the warning 4.8 hours before the close as ever.
        (datetime(2026, 11, 10, 15, 0), "1d", datetime(2026, 11, 11, 10, 12)),
    ],
)
def test_a_weekdays_step_closing_on_monday_is_warned_on_the_working_day_before(
    workspace: SlackStandin, database_url: str, opens: datetime, step: str, warned: datetime
) -> None:
    clock = HeldClock(opens.replace(tzinfo=LOS_ANGELES).astimezone(UTC))
    web = Bot(workspace, database_url, with_scheduler=False, clock=clock).start()
    try:
        web.command(f"start atlas <@{PRESENTER}> step {step} weekdays")
        # What the clock process plans from the database.
        (warning,) = web.runtime.engine.due_work().warnings
        assert warning[2].astimezone(LOS_ANGELES).replace(tzinfo=None) == warned
    finally:
        web.stop()


def test_whole_days_are_counted_on_the_calendar_and_hours_on_the_clock() -> None:
    new_york = ZoneInfo("America/New_York")
    # 3 PM on the Saturday before clocks go forward (20:00 UTC).
    saturday = datetime(2026, 3, 7, 20, 0, tzinfo=UTC)

    def hours_later(seconds: int, tz: str) -> float:
        return (later(saturday, seconds, tz) - saturday).total_seconds() / 3600

    assert later(saturday, 86400, "America/New_York").astimezone(new_york).hour == 15
    assert hours_later(86400, "America/New_York") == 23
    assert hours_later(86400 + 1800, "America/New_York") == 23.5
    assert hours_later(2 * 86400, "UTC") == 48
    assert hours_later(3 * 3600, "America/New_York") == 3
    # A session kept before the days typed were (step_days NULL) counts every whole day so.
    assert calendar_days(86400, None) is None and calendar_days(None, 1) is None
    assert days_left(1) is None and days_left(0) == 0 and days_left(None) is None


@pytest.mark.parametrize(
    ("paused", "resumed", "closes"),
    [
        # A day's step opened on Friday at 3 PM closes on Monday morning; paused at 4 PM it
        # has 8 working hours left that Friday: resumed on Monday at 9 AM it closes at 5 PM,
        # not 64 hours later (the weekend counted as time left: Thursday at 1 AM).
        (datetime(2026, 11, 13, 16, 0), datetime(2026, 11, 16, 9, 0), datetime(2026, 11, 16, 17)),
        # Paused on Saturday, in the weekend: no working time left, so resumed on Sunday
        # evening it closes on Monday morning, as planned.
        (datetime(2026, 11, 14, 12, 0), datetime(2026, 11, 15, 20, 0), datetime(2026, 11, 16, 8)),
        # Paused for an hour on Friday: its 8 working hours run on from 5 PM, the last of them
        # on Monday (the hour it was paused given back, as any pause gives it back).
        (datetime(2026, 11, 13, 16, 0), datetime(2026, 11, 13, 17, 0), datetime(2026, 11, 16, 9)),
        # Paused on Friday, resumed on Saturday: the 8 hours from Monday morning (it closed at
        # 8 AM with none of them).
        (datetime(2026, 11, 13, 16, 0), datetime(2026, 11, 14, 12, 0), datetime(2026, 11, 16, 16)),
    ],
)
def test_a_weekdays_step_paused_over_a_weekend_keeps_the_working_time_it_had_left(
    workspace: SlackStandin,
    database_url: str,
    paused: datetime,
    resumed: datetime,
    closes: datetime,
) -> None:
    clock = HeldClock(datetime(2026, 11, 13, 15, 0, tzinfo=LOS_ANGELES).astimezone(UTC))
    web = Bot(workspace, database_url, with_scheduler=False, clock=clock).start()
    try:
        web.command(f"start atlas <@{PRESENTER}> step 1d weekdays")
        clock.set(paused.replace(tzinfo=LOS_ANGELES).astimezone(UTC))
        web.command("pause")
        clock.set(resumed.replace(tzinfo=LOS_ANGELES).astimezone(UTC))
        web.command("resume")
        local = datetime.fromtimestamp(_closes(web), LOS_ANGELES).replace(tzinfo=None)
        assert local == closes
    finally:
        web.stop()


@pytest.mark.parametrize(
    ("opens", "typed", "closes"),
    [
        # 60 hours from Friday 3 PM closed on Monday at 3 AM, where 36 hours (Sunday 3 AM) are
        # carried to Monday morning: the working week begins at 8, for a start, a pause and a
        # warning too, and a close before it is carried as a Saturday one is.
        (datetime(2026, 11, 13, 15, 0), ["step 60h"], datetime(2026, 11, 16, 8, 0)),
        (datetime(2026, 11, 13, 15, 0), ["step 64h"], datetime(2026, 11, 16, 8, 0)),
        (datetime(2026, 11, 13, 15, 0), ["step 1h", "extend 62h"], datetime(2026, 11, 16, 8, 0)),
        # Carried to Monday, then paused and resumed at once on Friday evening: its half hour
        # left ran out at Saturday 0:00, and it closed then, on a Saturday.
        (
            datetime(2026, 11, 13, 23, 30),
            ["step 1h", "pause", "resume"],
            datetime(2026, 11, 16, 8, 0),
        ),
        (
            datetime(2026, 11, 13, 15, 0),
            ["step 9h", "pause", "resume"],
            datetime(2026, 11, 16, 8, 0),
        ),
        # Within the week, and from Monday morning on, a step closes on its time.
        (datetime(2026, 11, 13, 15, 0), ["step 8h59m"], datetime(2026, 11, 13, 23, 59)),
        (datetime(2026, 11, 13, 15, 0), ["step 65h"], datetime(2026, 11, 16, 8, 0)),
        (datetime(2026, 11, 13, 15, 0), ["step 66h"], datetime(2026, 11, 16, 9, 0)),
        (
            datetime(2026, 11, 16, 8, 0),
            ["step 1h", "pause", "resume"],
            datetime(2026, 11, 16, 9, 0),
        ),
    ],
)
def test_a_weekdays_step_due_before_the_working_week_begins_closes_on_monday_morning(
    workspace: SlackStandin, database_url: str, opens: datetime, typed: list[str], closes: datetime
) -> None:
    clock = HeldClock(opens.replace(tzinfo=LOS_ANGELES).astimezone(UTC))
    web = Bot(workspace, database_url, with_scheduler=False, clock=clock).start()
    try:
        step, *commands = typed
        web.command(f"start atlas <@{PRESENTER}> {step} weekdays")
        for command in commands:
            web.command(command)
        local = datetime.fromtimestamp(_closes(web), LOS_ANGELES).replace(tzinfo=None)
        assert local == closes
    finally:
        web.stop()


def test_the_time_left_of_a_weekdays_step_skips_a_weekend_whatever_its_length() -> None:
    def at(day: int, hour: int, month: int = 11) -> datetime:
        return datetime(2026, month, day, hour, 0, tzinfo=LOS_ANGELES).astimezone(UTC)

    la = "America/Los_Angeles"
    # Friday 4 PM to Monday 8 AM across the night the clocks go back (a 57-hour weekend).
    assert time_left(at(30, 16, 10), at(2, 8), weekdays=True, tz=la) == 8 * 3600
    assert time_left(at(30, 16, 10), at(2, 8), weekdays=False, tz=la) == 65 * 3600
    # Two weekends between: only the working days count.
    assert time_left(at(13, 16), at(24, 9), weekdays=True, tz=la) == (8 + 16 + 4 * 24 + 25) * 3600
    # A close already past leaves nothing.
    assert time_left(at(13, 16), at(13, 15), weekdays=True, tz=la) == 0


@pytest.mark.parametrize(
    ("opens", "step", "warned"),
    [
        # A day's step from 9 AM: its 80 % mark is 4:12 AM, when nobody should get a DM. The
        # morning would leave an hour of the warning's 4.8: the evening before instead.
        (datetime(2026, 11, 10, 9, 0), "1d", datetime(2026, 11, 10, 20, 0)),
        # From 11 AM: 6:12 AM, nearer the morning, which leaves 3 hours before the 11 AM close.
        (datetime(2026, 11, 10, 11, 0), "1d", datetime(2026, 11, 11, 8, 0)),
        # Two days from 9 AM: 11:24 PM on the second day, the evening before it.
        (datetime(2026, 11, 10, 9, 0), "2d", datetime(2026, 11, 11, 20, 0)),
        # Twelve hours from 10 PM: 7:36 AM, the morning leaves 2 of its 2.4 hours.
        (datetime(2026, 11, 10, 22, 0), "12h", datetime(2026, 11, 11, 8, 0)),
        # A day's step from 3 PM is warned at 10:12 AM, in the day: as ever.
        (datetime(2026, 11, 10, 15, 0), "1d", datetime(2026, 11, 11, 10, 12)),
    ],
)
def test_a_long_steps_warning_that_would_come_at_night_comes_in_the_day(
    workspace: SlackStandin, database_url: str, opens: datetime, step: str, warned: datetime
) -> None:
    clock = HeldClock(opens.replace(tzinfo=LOS_ANGELES).astimezone(UTC))
    web = Bot(workspace, database_url, with_scheduler=False, clock=clock).start()
    try:
        web.command(f"start atlas <@{PRESENTER}> step {step}")
        (warning,) = web.runtime.engine.due_work().warnings
        assert warning[2].astimezone(LOS_ANGELES).replace(tzinfo=None) == warned
    finally:
        web.stop()


def test_a_step_with_no_daytime_before_its_close_has_no_warning_and_a_live_one_keeps_its_own(
    engine: Engine, clock: HeldClock, timers: RecordingTimers
) -> None:
    # Twelve hours from 8 PM to 8 AM: no DM in the night, and no evening or morning in the step.
    clock.set(datetime(2026, 11, 10, 20, 0, tzinfo=LOS_ANGELES).astimezone(UTC))
    overnight = start(engine, step_seconds=12 * 3600, tz="America/Los_Angeles")
    assert runs(engine, overnight.id)[0].warn_at is None
    engine.end(actor())
    # A live session at 11 PM is warned at its 80 % mark: the team is there.
    clock.set(datetime(2026, 11, 10, 23, 0, tzinfo=LOS_ANGELES).astimezone(UTC))
    live = start(engine, step_seconds=600, tz="America/Los_Angeles")
    assert runs(engine, live.id)[0].warn_at == clock.now() + timedelta(minutes=8)


@pytest.mark.parametrize(
    "command",
    [
        "start atlas <@{presenter}> step 1d weekdays",  # typed on Saturday morning
        "start atlas <@{presenter}> step 1d weekdays at sun 15:00",
    ],
)
def test_a_weekdays_session_asked_for_at_the_weekend_opens_on_monday_morning(
    workspace: SlackStandin, database_url: str, command: str
) -> None:
    # Its first step opened on Saturday (and ran until Tuesday): the team met it at the weekend.
    saturday = datetime(2026, 11, 14, 10, 0, tzinfo=LOS_ANGELES).astimezone(UTC)
    web = Bot(workspace, database_url, with_scheduler=False, clock=HeldClock(saturday)).start()
    try:
        answer = web.command(command.format(presenter=PRESENTER))
        assert "opens on Monday morning, not at the weekend" in json.dumps(answer)
        session = _session(web)
        monday = datetime(2026, 11, 16, 8, 0, tzinfo=LOS_ANGELES).astimezone(UTC)
        assert (session.status, session.starts_at) == ("scheduled", monday)
        assert web.step_posts() == []
    finally:
        web.stop()


def test_a_weekdays_session_freed_at_the_weekend_waits_for_monday_morning(
    engine: Engine, clock: HeldClock, timers: RecordingTimers
) -> None:
    # Due on Friday, it waited for a session that ran on; freed on Saturday, it opened then.
    def la(day: int, hour: int) -> datetime:
        return datetime(2026, 11, day, hour, 0, tzinfo=LOS_ANGELES).astimezone(UTC)

    clock.set(la(13, 9))
    first = start(engine, step_seconds=3600, tz="America/Los_Angeles")
    second = start(
        engine, step_seconds=86400, start_at=la(13, 16), weekdays=True, tz="America/Los_Angeles"
    )
    controls.pause(engine, actor())
    clock.set(la(14, 11))
    engine.end(actor())
    engine.begin(second.id)  # as the end's own hand-over does
    assert session_row(engine, first.id).status == "ended"
    assert session_row(engine, second.id).status == "scheduled"
    assert timers.starts[-1] == (second.id, la(16, 8))
    clock.set(la(16, 8))
    engine.begin(second.id)
    assert session_row(engine, second.id).status == "running"


def test_a_weekdays_step_paused_at_the_weekend_with_no_working_time_left_says_when_it_closes(
    workspace: SlackStandin, database_url: str
) -> None:
    """A day's step from Friday 3 PM closes on Monday morning; paused on Sunday it has none of
    its working time left, and was said to close "as soon as the session resumes", though
    resumed on Sunday it closes on Monday morning."""
    clock = HeldClock(datetime(2026, 11, 13, 15, 0, tzinfo=LOS_ANGELES).astimezone(UTC))
    web = Bot(workspace, database_url, with_scheduler=False, clock=clock).start()
    try:
        web.command(f"start atlas <@{PRESENTER}> step 1d weekdays")
        clock.set(datetime(2026, 11, 15, 20, 0, tzinfo=LOS_ANGELES).astimezone(UTC))
        said = json.dumps(web.command("pause"))
        assert "on Monday morning if it resumes at the weekend" in said, said
        said = json.dumps(web.command("status"))
        assert "on Monday morning if it resumes at the weekend" in said, said
        clock.set(datetime(2026, 11, 15, 21, 0, tzinfo=LOS_ANGELES).astimezone(UTC))
        web.command("resume")
        local = datetime.fromtimestamp(_closes(web), LOS_ANGELES).replace(tzinfo=None)
        assert local == datetime(2026, 11, 16, 8, 0)
    finally:
        web.stop()
