"""Tests for the `/protocol` text parser: every form, every error, time zones, and properties."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import (
    MAX_AHEAD_SECONDS,
    MAX_EXTEND_SECONDS,
    SUBCOMMANDS,
    Cancel,
    Command,
    DurationError,
    End,
    Extend,
    Forget,
    Help,
    ListProtocols,
    Next,
    Notes,
    OpenDialog,
    ParseError,
    Pause,
    Preview,
    Resume,
    Rotation,
    Start,
    Status,
    closest,
    parse,
    parse_duration,
    unknown_protocol,
)

ERRORS_DIR = Path(__file__).resolve().parent.parent / "messages" / "errors"

# Monday 2 March 2026, 18:00 UTC = 10:00 in Los Angeles (PST) = 13:00 in New York (EST).
NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
LA = "America/Los_Angeles"
NY = "America/New_York"
MARIA = "<@U0MARIA|maria>"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ok(text: str, tz: str = "UTC", now: datetime = NOW) -> Command:
    result = parse(text, now=now, tz=tz)
    assert not isinstance(result, ParseError), result.message()
    return result


def error(text: str, tz: str = "UTC", now: datetime = NOW) -> ParseError:
    result = parse(text, now=now, tz=tz)
    assert isinstance(result, ParseError), result
    return result


# --- every form -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", OpenDialog()),
        ("   ", OpenDialog()),
        ("help", Help()),
        ("?", Help()),
        ("list", ListProtocols()),
        ("preview atlas", Preview("atlas")),
        ("preview ATLAS", Preview("atlas")),
        ("start atlas", Start("atlas")),
        ("status", Status()),
        ("next", Next()),
        ("next step", Next()),  # the button's own words
        ("Next Step.", Next()),
        ("pause", Pause()),
        ("resume", Resume()),
        ("end", End()),
        ("notes", Notes()),
        ("forget", Forget()),
        ("cancel", Cancel()),
        ("cancel 3", Cancel(3)),
        ("cancel #12", Cancel(12)),
        ("extend 10m", Extend(600)),
        ("extend step 10m", Extend(600)),
        ("extend by 10 min", Extend(600)),
        ("extend 10 min", Extend(600)),
        ("extend 1 hour 30 minutes", Extend(5400)),
        ("extend 1 hr 30 mins", Extend(5400)),
        ("sta\u200dtus", Status()),
        ("rotation", Rotation()),
        ("rotation <@U1|a> <@U2> <@W3|c d>", Rotation(("U1", "U2", "W3"))),
    ],
)
def test_each_form(text: str, expected: Command) -> None:
    assert ok(text) == expected


def test_start_with_every_option() -> None:
    text = f"start atlas {MARIA} at tue 15:00 step 1d remind 2 days facilitator <@U0SAM> weekdays"
    assert ok(text, tz=LA) == Start(
        protocol="atlas",
        presenter="U0MARIA",
        start_at=utc(2026, 3, 3, 23, 0),
        step_seconds=86_400,
        step_days=1,
        remind_seconds=172_800,
        facilitator="U0SAM",
        weekdays=True,
    )


@pytest.mark.parametrize(
    "text",
    [
        "start atlas <@U0MARIA|maria> step 1d",
        "start atlas <@U0MARIA> step 1d",
        "start atlas <@U0MARIA|maria lopez> step 1d",
        "START Atlas <@U0MARIA> STEP 1D",
        "  start \t atlas\n<@U0MARIA>\u00a0 step   1d  ",
        "start atlas step 1d <@U0MARIA>",
        "start atlas step 24h <@U0MARIA>",
        "start atlas step 1 day <@U0MARIA>",
        # as `facilitator <@U..>` is written: `presenter @maria` was refused, "`presenter` is
        # not a Slack mention"
        "start atlas presenter <@U0MARIA> step 1d",
        "start atlas step 1d Presenter <@U0MARIA|maria>",
        # Durations written out, with spaces, as people write them.
        "start atlas <@U0MARIA> step 23 hours 60 minutes",
        "start atlas <@U0MARIA> step 1 day 0 h",
        "start atlas step 12 h 720 m <@U0MARIA>",
        # Invisible marks a keyboard or a paste put in: direction marks, soft hyphens, joiners.
        "\u200fstart atlas\u200c <@U0MARIA> step\u00ad 1d\u200e",
    ],
)
def test_start_spelled_many_ways(text: str) -> None:
    # A day typed as days keeps its time of day across a clock change; in hours, it is hours.
    days = 1 if re.search(r"(?i)\bstep\W+1\s*d", text) else 0
    assert ok(text) == Start("atlas", presenter="U0MARIA", step_seconds=86_400, step_days=days)


def test_enterprise_user_ids_are_mentions() -> None:
    assert ok("start atlas <@W0ENT|ent>") == Start("atlas", presenter="W0ENT")


def test_a_presenter_after_with_or_for_is_the_presenter() -> None:
    # `start atlas with @maria` was refused: "I don't know what to do with `with`".
    assert ok(f"start atlas with {MARIA}") == Start("atlas", presenter="U0MARIA")
    assert ok(f"start atlas for {MARIA} step 1d") == Start(
        "atlas", presenter="U0MARIA", step_seconds=86400, step_days=1
    )
    assert error("start atlas with bob").code == "presenter_format"  # as before: no mention


def test_a_presenter_named_before_the_protocol_is_the_presenter() -> None:
    # `start @maria atlas` was refused as a start without a protocol.
    assert ok(f"start {MARIA} atlas") == Start("atlas", presenter="U0MARIA")
    assert ok(f"start {MARIA} tuning step 1d weekdays") == Start(
        "tuning", presenter="U0MARIA", step_seconds=86400, step_days=1, weekdays=True
    )
    assert error(f"start {MARIA} atlas <@U0BOB>").code == "duplicate_option"
    assert error(f"start {MARIA}").code == "missing_protocol"


def test_options_in_any_order() -> None:
    first = ok(f"start tuning {MARIA} weekdays in 2h step 30m facilitator <@U2>")
    second = ok(f"start tuning facilitator <@U2> step 30m in 2h weekdays {MARIA}")
    assert (
        first
        == second
        == Start(
            "tuning",
            presenter="U0MARIA",
            start_at=NOW + timedelta(hours=2),
            step_seconds=1800,
            step_days=0,
            facilitator="U2",
            weekdays=True,
        )
    )


# --- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10sec", 10),
        ("5m", 300),
        ("5M", 300),
        ("90min", 5400),
        ("2mins", 120),
        ("1h", 3600),
        ("1hr", 3600),
        ("3hrs", 10_800),
        ("1d", 86_400),
        ("1day", 86_400),
        ("2days", 172_800),
        ("1h30m", 5400),
        ("1d2h3m4s", 93_784),
        ("1h 30m", 5400),
        (" 90 min ", 5400),
        ("90d", 90 * 86_400),
        ("1.5h", 5400),
        ("1,5h", 5400),
        ("0.5 d", 43_200),
        ("2h30", 9000),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("5x", "bad_duration"),
        ("1.5.5h", "bad_duration"),
        ("-1m", "bad_duration"),
        ("5", "bad_duration"),
        ("h", "bad_duration"),
        ("", "bad_duration"),
        ("٣m", "bad_duration"),  # not an ASCII digit
        ("0s", "duration_zero"),
        ("0h0m", "duration_zero"),
        ("91d", "duration_too_long"),
        ("99999999d", "duration_too_long"),
        ("9" * 5000 + "d", "duration_too_long"),  # beyond int()'s digit limit: still no crash
    ],
)
def test_parse_duration_rejects(text: str, code: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration(text)
    assert isinstance(raised.value, DurationError)
    assert raised.value.code == code


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("extend 1 1/2 hours", Extend(5400)),
        ("extend 1½ hours", Extend(5400)),  # NFKC made it `11⁄2`, eleven halves
        ("extend 1½h", Extend(5400)),
        ("extend 1/2 hour", Extend(1800)),
        ("extend ½ hour", Extend(1800)),
        ("extend 1/2h", Extend(1800)),
        ("extend 2 3/4 hours", Extend(9900)),
        ("extend 1 and 1/2 hours", Extend(5400)),
        ("extend 1 1/2 days", Extend(129_600, days=1)),
        ("start atlas step 1 1/2h", Start("atlas", step_seconds=5400, step_days=0)),
        ("start atlas step 1 1/2 h", Start("atlas", step_seconds=5400, step_days=0)),
        ("start atlas in 1/2 hour", Start("atlas", start_at=NOW + timedelta(minutes=30))),
        ("extend a quarter of an hour", Extend(900)),
        ("extend another quarter hour", Extend(900)),
        ("extend three quarters of an hour", Extend(2700)),
        ("extend an hour and a quarter", Extend(4500)),
        ("extend two and a quarter hours", Extend(8100)),
        (
            "start atlas step 1 and a quarter days",
            Start("atlas", step_seconds=108_000, step_days=1),
        ),
        ("start atlas step a quarter of a day", Start("atlas", step_seconds=21_600, step_days=0)),
    ],
)
def test_a_length_with_a_fraction_is_read(text: str, expected: Command) -> None:
    assert ok(text) == expected


@pytest.mark.parametrize("text", ["extend 1/0h", "extend 1 1/2", "extend 1/2"])
def test_a_fraction_that_is_no_length_is_refused_with_the_example(text: str) -> None:
    rejected = error(text)
    assert rejected.code == "bad_duration"
    assert_good_message(rejected)


def test_duration_limits_per_option() -> None:
    assert ok("extend 14d") == Extend(MAX_EXTEND_SECONDS, days=14)
    assert error("extend 15d").code == "duration_too_long"
    assert ok("start atlas step 90d") == Start(
        "atlas", step_seconds=MAX_AHEAD_SECONDS, step_days=90
    )
    for option in ("step", "in", "remind"):
        rejected = error(f"start atlas {option} 91d")
        assert rejected.code == "duration_too_long"
        assert rejected.context["option"] == option


@pytest.mark.parametrize(
    ("text", "code", "offending"),
    [
        ("start atlas step 5x", "bad_duration", "5x"),
        ("start atlas step 0s", "duration_zero", "0s"),
        ("start atlas step -1m", "bad_duration", "-1m"),
        ("start atlas step 99999999d", "duration_too_long", "99999999d"),
        ("start atlas step 1.5x", "bad_duration", "1.5x"),
        ("start atlas remind 0m", "duration_zero", "0m"),
        ("extend 1.5.5h", "bad_duration", "1.5.5h"),
    ],
)
def test_bad_durations_name_the_text(text: str, code: str, offending: str) -> None:
    rejected = error(text)
    assert rejected.code == code
    assert rejected.context["text"] == offending
    assert f"`{offending}`" in rejected.message()


# --- times and time zones -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("tue 15:00", utc(2026, 3, 3, 23, 0)),  # 15:00 PST
        ("Tue 3:30pm", utc(2026, 3, 3, 23, 30)),
        ("tuesday 3pm", utc(2026, 3, 3, 23, 0)),
        ("tuesday 3 pm", utc(2026, 3, 3, 23, 0)),
        ("mon 11:00", utc(2026, 3, 2, 19, 0)),  # later today (a Monday)
        ("mon 09:00", utc(2026, 3, 9, 16, 0)),  # already past: next Monday, now in PDT
        ("15:00", utc(2026, 3, 2, 23, 0)),  # later today
        ("09:00", utc(2026, 3, 3, 17, 0)),  # already past today: tomorrow
        ("3pm", utc(2026, 3, 2, 23, 0)),
        ("3:30 pm", utc(2026, 3, 2, 23, 30)),
        ("3:30 p.m.", utc(2026, 3, 2, 23, 30)),
        ("3.30pm", utc(2026, 3, 2, 23, 30)),
        ("15h30", utc(2026, 3, 2, 23, 30)),
        ("12am", utc(2026, 3, 3, 8, 0)),
        ("12pm", utc(2026, 3, 2, 20, 0)),
        ("today 15:00", utc(2026, 3, 2, 23, 0)),
        ("tomorrow 9am", utc(2026, 3, 3, 17, 0)),
        ("TOMORROW 09:00", utc(2026, 3, 3, 17, 0)),
        ("2026-03-10 15:00", utc(2026, 3, 10, 22, 0)),  # PDT from 8 March
        ("2026-3-10 3pm", utc(2026, 3, 10, 22, 0)),
        # As teachers type them in a hurry: two-letter days, `p` for pm, 24-hour without colon.
        ("tu 3pm", utc(2026, 3, 3, 23, 0)),
        ("Th 15:00", utc(2026, 3, 5, 23, 0)),
        ("fr at 3pm", utc(2026, 3, 6, 23, 0)),
        ("3pm on th", utc(2026, 3, 5, 23, 0)),
        ("3p tu", utc(2026, 3, 3, 23, 0)),
        ("tue 3p", utc(2026, 3, 3, 23, 0)),
        ("tue 3:30p", utc(2026, 3, 3, 23, 30)),
        ("tue 3 p", utc(2026, 3, 3, 23, 0)),
        ("9a", utc(2026, 3, 3, 17, 0)),
        ("3p.", utc(2026, 3, 2, 23, 0)),
        ("1500", utc(2026, 3, 2, 23, 0)),
        ("fri 1500", utc(2026, 3, 6, 23, 0)),
        ("0930", utc(2026, 3, 3, 17, 30)),
        ("tomorrow 0930", utc(2026, 3, 3, 17, 30)),
        ("330pm", utc(2026, 3, 2, 23, 30)),
        ("03:30", utc(2026, 3, 3, 11, 30)),  # the night, on a 24-hour clock
        ("7:45", utc(2026, 3, 3, 15, 45)),  # before school
        ("3:30 pm", utc(2026, 3, 2, 23, 30)),
    ],
)
def test_at_is_read_in_the_callers_zone(when: str, expected: datetime) -> None:
    command = ok(f"start atlas {MARIA} at {when}", tz=LA)
    assert isinstance(command, Start)
    assert command.start_at == expected
    assert command.start_at.tzinfo is UTC


def test_hh_mm_already_past_is_tomorrow() -> None:
    command = ok("start atlas at 09:59", tz=LA)  # it is 10:00 in Los Angeles
    assert isinstance(command, Start)
    assert command.start_at == utc(2026, 3, 3, 17, 59)


def test_spring_forward_gap_moves_to_first_valid_time() -> None:
    # 8 March 2026 in New York: 02:00-02:59 does not exist; 03:00 EDT is 07:00 UTC.
    for when in ("2026-03-08 02:30", "2026-03-08 02:00", "2026-03-08 2:59am"):
        command = ok(f"start atlas at {when}", tz=NY)
        assert isinstance(command, Start)
        assert command.start_at == utc(2026, 3, 8, 7, 0), when


def test_spring_forward_next_occurrence() -> None:
    just_after_midnight = utc(2026, 3, 8, 5, 30)  # 00:30 EST on the spring-forward day
    command = ok("start atlas at 02:30", tz=NY, now=just_after_midnight)
    assert isinstance(command, Start)
    assert command.start_at == utc(2026, 3, 8, 7, 0)


def test_fall_back_takes_the_first_occurrence() -> None:
    # 1 November 2026 in New York: 01:30 happens twice; the first is EDT (UTC-4).
    command = ok("start atlas at 2026-11-01 01:30", tz=NY, now=utc(2026, 10, 20))
    assert isinstance(command, Start)
    assert command.start_at == utc(2026, 11, 1, 5, 30)


def test_in_counts_from_now() -> None:
    assert ok("start atlas in 1h30m") == Start("atlas", start_at=NOW + timedelta(minutes=90))


def test_unknown_time_zone_falls_back_to_utc() -> None:
    for zone in ("Mars/Olympus", "", "../etc", "America"):
        command = ok("start atlas at 2026-03-10 15:00", tz=zone)
        assert isinstance(command, Start)
        assert command.start_at == utc(2026, 3, 10, 15, 0)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError):
        parse("help", now=datetime(2026, 3, 2, 18, 0))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("when", "code"),
    [
        ("25:00", "bad_when"),
        ("15:60", "bad_when"),
        ("13pm", "bad_when"),
        ("10.03", "bad_when"),  # a time, or the tenth of March?
        ("0am", "bad_when"),
        ("15", "bad_when"),
        ("330", "time_unclear"),  # 3:30 in the afternoon, as a teacher means, or at night?
        ("tue 930", "time_unclear"),
        ("3:30", "time_unclear"),  # so too with a colon, at an hour no team meets at night
        ("tue 4:15", "time_unclear"),
        ("2026-03-10 6:45", "time_unclear"),
        ("2400", "bad_when"),
        ("1575", "bad_when"),
        ("1500pm", "bad_when"),
        ("t 3pm", "bad_when"),  # Tuesday or Thursday?
        ("fri midnight", "which_midnight"),  # the night before Friday, or after it?
        ("tomorrow", "bad_when"),
        ("2026/03/10 15:00", "bad_when"),
        ("2026-02-30 15:00", "bad_date"),
        ("2026-13-01 15:00", "bad_date"),
        ("0000-01-01 15:00", "bad_date"),
        ("2026-03-01 15:00", "when_past"),
        ("0001-01-01 00:00", "when_past"),
        ("today 09:00", "when_past"),
        ("2026-06-01 15:00", "when_too_far"),
        ("9999-12-31 23:59", "when_too_far"),
    ],
)
def test_bad_times(when: str, code: str) -> None:
    rejected = error(f"start atlas {MARIA} at {when}", tz=LA)
    assert rejected.code == code
    assert when.startswith(str(rejected.context["text"]))  # the whole time, or its first word


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        # It is Monday 2 March 2026, 10:00 in Los Angeles (PST; PDT from 8 March).
        ("mar 10 3pm", utc(2026, 3, 10, 22, 0)),
        ("10 mar 15:00", utc(2026, 3, 10, 22, 0)),
        ("march 10 at 3pm", utc(2026, 3, 10, 22, 0)),
        ("Mar 10th 3:30pm", utc(2026, 3, 10, 22, 30)),
        ("10th of March 3pm", utc(2026, 3, 10, 22, 0)),
        ("3pm on mar 10", utc(2026, 3, 10, 22, 0)),
        ("on apr 5 at 9am", utc(2026, 4, 5, 16, 0)),
        ("Mar 10th, 2026 3pm", utc(2026, 3, 10, 22, 0)),
        ("mar 10 @ 3pm", utc(2026, 3, 10, 22, 0)),
        ("tue @ 3pm", utc(2026, 3, 3, 23, 0)),
        ("mar 2 11:00", utc(2026, 3, 2, 19, 0)),  # later today
        # With slashes, the reading a session may be set for: 5/15 and 15/5 are 15 May, and
        # 3/10 is 10 March, 3 October being more than 90 days away.
        ("5/15 15:00", utc(2026, 5, 15, 22, 0)),
        ("15/5 15:00", utc(2026, 5, 15, 22, 0)),
        ("3/10 15:00", utc(2026, 3, 10, 22, 0)),
        ("3/10/2026 3pm", utc(2026, 3, 10, 22, 0)),
        # With its weekday, as calendars write it; of a slash date's readings, that weekday's.
        ("Tuesday, March 10 at 3pm", utc(2026, 3, 10, 22, 0)),
        ("tue mar 10 3pm", utc(2026, 3, 10, 22, 0)),
        ("3pm on tue 10 mar", utc(2026, 3, 10, 22, 0)),
        ("sat 4/4 15:00", utc(2026, 4, 4, 22, 0)),
        ("wed 4/3 15:00", utc(2026, 3, 4, 23, 0)),
        ("fri 4/3 15:00", utc(2026, 4, 3, 22, 0)),
        # The day of the month alone, after `the`: this month's, or the next's once gone by.
        ("the 10th 3pm", utc(2026, 3, 10, 22, 0)),
        ("3pm on the 10th", utc(2026, 3, 10, 22, 0)),
        ("the 1st at 3pm", utc(2026, 4, 1, 22, 0)),
        ("tue the 10th 3pm", utc(2026, 3, 10, 22, 0)),
        ("the 10th of March 3pm", utc(2026, 3, 10, 22, 0)),
    ],
)
def test_a_date_written_with_its_month_or_slashes_is_read(when: str, expected: datetime) -> None:
    command = ok(f"start atlas {MARIA} at {when}", tz=LA)
    assert isinstance(command, Start)
    assert command.start_at == expected


def test_a_date_without_its_year_is_its_next_one() -> None:
    december = utc(2026, 12, 8, 15, 0)  # 10:00 in New York
    command = ok(f"start atlas {MARIA} at jan 5 at 9am", tz=NY, now=december)
    assert isinstance(command, Start)
    assert command.start_at == utc(2027, 1, 5, 14, 0)
    # Gone by this year, and next year's too far: refused as past, never scheduled.
    assert error(f"start atlas {MARIA} at dec 1 3pm", tz=NY, now=december).code == "when_past"
    assert error(f"start atlas {MARIA} at dec 8 9am", tz=NY, now=december).code == "when_past"


@pytest.mark.parametrize(
    ("when", "code", "said"),
    [
        ("feb 30 3pm", "bad_date", "February 2027 has 28 days, so write a day from 1 to 28"),
        ("31 apr 15:00", "bad_date", "April 2026 has 30 days"),
        ("13/13 3pm", "bad_date", "write the month in letters and the day"),
        ("9999-12-32 3pm", "bad_date", "December 9999 has 31 days"),  # the calendar's last
        # 4 March or 3 April: both may be meant, so asked, in words.
        ("4/3 15:00", "which_date", "Wednesday 4 March, or Friday 3 April?"),
        ("mar 1 3pm", "when_past", "has already passed"),
        ("jul 4 3pm", "when_too_far", "at most 90 days"),
        ("mar 10", "bad_when", "`mar 10` needs a time too"),
        ("wed mar 10 3pm", "weekday_wrong", "10 March is a Tuesday, not `wed`"),
        ("the 32nd 3pm", "bad_date", "write the month in letters and the day"),
        ("the 2nd 9am", "when_past", "has already passed"),
    ],
)
def test_a_date_that_cannot_be_placed_says_what_to_write(when: str, code: str, said: str) -> None:
    rejected = error(f"start atlas {MARIA} at {when}", tz=LA)
    assert rejected.code == code
    assert said in rejected.message()
    assert_good_message(rejected)


def test_an_ambiguous_slash_date_shows_both_as_they_are_written() -> None:
    message = error(f"start atlas {MARIA} at 4/3 15:00", tz=LA).message()
    assert "`at mar 4 15:00` or `at apr 3 15:00`" in message


def test_midnight_after_a_date_is_asked_about_with_the_whole_date() -> None:
    message = error(f"start atlas {MARIA} at mar 10 midnight", tz=LA).message()
    assert "Write `mar 10 00:00` for the start of it" in message


def test_at_reaches_exactly_ninety_days() -> None:
    assert isinstance(ok("start atlas at 2026-05-31 18:00"), Start)
    assert error("start atlas at 2026-05-31 18:01").code == "when_too_far"


# --- every error code -----------------------------------------------------------------------

# One input per error code parse() can produce, with the context it should carry.
ERROR_CASES = [
    ("strat atlas", "unknown_subcommand", {"text": "strat", "suggestion": "start"}),
    ("stat", "unknown_subcommand", {"text": "stat", "suggestion": "status"}),
    ("start", "missing_protocol", {"subcommand": "start"}),
    ("preview", "missing_protocol", {"subcommand": "preview"}),
    (f"start {MARIA}", "missing_protocol", {"subcommand": "start"}),
    ("start atlas bob", "presenter_format", {"text": "bob"}),
    ("start atlas @maria", "presenter_format", {"text": "@maria"}),
    ("start atlas <!channel>", "presenter_format", {"text": "@channel", "kind": "everyone"}),
    ("start atlas <!subteam^S1|@5th>", "presenter_format", {"text": "@5th", "kind": "group"}),
    ("start atlas <#C1|math>", "presenter_format", {"text": "#math", "kind": "channel"}),
    ("rotation <!subteam^S1>", "user_format", {"text": "", "kind": "group", "option": "rotation"}),
    ("start atlas facilitator bob", "user_format", {"text": "bob", "option": "facilitator"}),
    ("rotation <@U1> @sam", "user_format", {"text": "@sam", "option": "rotation"}),
    ("rotation clear <@U1|maria>", "rotation_clear_words", {"word": "clear"}),
    ("rotation “off” @sam", "rotation_clear_words", {"word": "“off”"}),
    ("start atlas step 5x", "bad_duration", {"text": "5x", "option": "step"}),
    ("start atlas in 0s", "duration_zero", {"text": "0s", "option": "in"}),
    ("extend 15d", "duration_too_long", {"text": "15d", "limit": MAX_EXTEND_SECONDS}),
    ("start atlas at teatime", "bad_when", {"text": "teatime"}),
    ("start atlas at 330", "time_unclear", {"text": "330", "hour": 3, "minute": 30}),
    ("start atlas at 2026-02-30 10:00", "bad_date", {"text": "2026-02-30 10:00"}),
    ("start atlas at today 9:00", "when_past", {"text": "today 9:00"}),
    ("start atlas at 4/3 15:00", "which_date", {"text": "4/3 15:00", "time": "15:00"}),
    ("start atlas at fri mar 10 9am", "weekday_wrong", {"said": "fri"}),
    ("start atlas at tue 15:00 CET", "zone_written", {"text": "tue 15:00 CET", "zone": LA}),
    ("start atlas at next fri 15:00", "which_day", {"text": "next fri 15:00", "day": "fri"}),
    ("start atlas at fri midnight", "which_midnight", {"text": "fri midnight", "day": "fri"}),
    ("start atlas at 2027-01-01 10:00", "when_too_far", {"days": 90}),
    ("start atlas at tue 15:00 in 2h", "at_and_in", {}),
    (f"start atlas {MARIA} remind 2d", "remind_without_when", {}),
    ("start atlas step 1d step 2d", "duplicate_option", {"option": "step"}),
    ("start atlas weekdays weekdays", "duplicate_option", {"option": "weekdays"}),
    (f"start atlas {MARIA} <@U2>", "duplicate_option", {"option": "presenter"}),
    ("start atlas step", "missing_value", {"option": "step"}),
    ("start atlas at step 1d", "missing_value", {"option": "at"}),
    ("start atlas facilitator", "missing_value", {"option": "facilitator"}),
    ("start atlas presenter step 1d", "missing_value", {"option": "presenter"}),
    (f"start atlas {MARIA} presenter <@U2>", "duplicate_option", {"option": "presenter"}),
    ("start atlas presenter maria", "presenter_format", {"text": "maria"}),
    ("extend", "missing_value", {"option": "extend"}),
    ("status tomorrow", "unexpected_words", {"text": "tomorrow", "subcommand": "status"}),
    ("preview atlas now", "unexpected_words", {"text": "now", "subcommand": "preview"}),
    (f"start atlas {MARIA} bob", "unexpected_words", {"text": "bob", "when": False}),
    (f"start atlas {MARIA} tue 3pm", "unexpected_words", {"text": "tue 3pm", "when": True}),
    ("start atlas step 1d 5", "bad_duration", {"text": "1d 5", "option": "step"}),
    ("cancel 1 2", "unexpected_words", {"text": "2", "subcommand": "cancel"}),
    ("cancel next", "bad_session_number", {"text": "next"}),
    ("cancel 0", "bad_session_number", {"text": "0"}),
]


@pytest.mark.parametrize(("text", "code", "context"), ERROR_CASES)
def test_error_codes(text: str, code: str, context: dict[str, object]) -> None:
    rejected = error(text, tz=LA)
    assert rejected.code == code
    assert context.items() <= rejected.context.items()
    assert_good_message(rejected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("end now", End()),
        ("end please", End()),
        ("End it now, please.", End()),
        ("end the session", End()),
        ("end this protocol now", End()),
        ("next please", Next()),
        ("next step now", Next()),
        ("pause please", Pause()),
        ("pause now", Pause()),
        ("resume now please", Resume()),
        ("resume the session", Resume()),
        ("extend 10m please", Extend(600)),
        ("extend by 10 min now", Extend(600)),
    ],
)
def test_controls_take_the_words_people_add_out_of_courtesy(text: str, expected: Command) -> None:
    """`/protocol end now` is `/protocol end`: the control happens at once whatever is added,
    and please or thanks change nothing."""
    assert ok(text) == expected


@pytest.mark.parametrize(
    ("text", "control"),
    [
        ("end tomorrow", "end"),
        ("end at 15:00", "end"),
        ("end in 5m", "end"),
        ("pause 10m", "pause"),
        ("next 2", "next"),
        ("resume later", "resume"),
    ],
)
def test_other_words_after_a_control_say_exactly_what_to_type(text: str, control: str) -> None:
    rejected = error(text)
    assert rejected.code == "unexpected_words"
    message = rejected.message()
    assert f"`/protocol {control}` takes nothing after it" in message
    assert f"send `/protocol {control}`" in message
    assert_good_message(rejected)


def test_every_error_code_has_a_template() -> None:
    templates = {p.stem for p in ERRORS_DIR.glob("*.j2")}
    produced = {code for _, code, _ in ERROR_CASES} | {"unknown_protocol"}
    assert produced <= templates


def test_error_messages_echo_user_text_escaped() -> None:
    rejected = error("start atlas <https://example.org|Q&amp;A>")
    assert rejected.context["text"] == "Q&A"  # the words shown, unescaped in the context
    assert "`Q&amp;A`" in rejected.message()
    # @channel picked from Slack's list is named as Slack showed it, and pings nobody.
    assert "`@\u200bchannel` is everyone" in error("start atlas <!channel>").message()


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # Slack makes a link of an address typed or pasted, labelled with it as typed.
        (
            f"start atlas {MARIA} <https://docs.example.org/essay|docs.example.org/essay>",
            "docs.example.org/essay",
        ),
        (f"start atlas {MARIA} <http://example.org>", "http://example.org"),
        (f"start atlas {MARIA} <mailto:ana@example.org|ana@example.org>", "ana@example.org"),
        ("end <https://example.org/x|example.org/x>", "example.org/x"),
        ("preview atlas <https://atlas.example|atlas.example>", "atlas.example"),
        ("end <#C123|math-team>", "#math-team"),
        ("cancel <http://12.example|12.example>", "12.example"),
    ],
)
def test_errors_quote_a_link_as_the_words_people_saw(text: str, shown: str) -> None:
    message = error(text).message()
    assert f"`{shown}`" in message, message
    assert "|" not in message and "&lt;http" not in message and "&lt;mailto" not in message


def test_echoed_text_is_clipped() -> None:
    rejected = error("start atlas " + "x" * 10_000)
    echoed = str(rejected.context["text"])
    assert len(echoed) <= 80 and echoed.endswith("…")
    assert len(rejected.message()) < 400


def test_unknown_subcommand_lists_subcommands() -> None:
    message = error("bogus").message()
    assert all(name in message for name in SUBCOMMANDS)


# --- the caller's helpers for protocol names ------------------------------------------------


def test_closest() -> None:
    library = ["atlas", "atlas-equity", "tuning", "consultancy"]
    assert closest("atlsa", library) == "atlas"
    assert closest("TUNNING", library) == "tuning"
    assert closest("zzz", library) is None
    assert closest("x" * 100_000, library) is None


def test_a_mark_alone_is_answered_not_taken_for_the_bare_command() -> None:
    # Marks after a word are dropped (`status?`); a word of marks alone is still a word, and
    # a question mark asks for the help.
    assert error("!").code == "unknown_subcommand"
    for text in ("?", "??"):
        assert ok(text) == Help(), text
    assert ok("status?") == Status()


def test_unknown_protocol_lists_the_library() -> None:
    rejected = unknown_protocol("<!here>tuing", ["tuning", "atlas"])
    message = rejected.message()
    assert "&lt;!here&gt;tuing" in message
    assert "atlas, tuning" in message
    assert_good_message(rejected)
    assert_good_message(unknown_protocol("zzz", []))


@pytest.mark.parametrize(
    ("command", "example"),
    [
        # A start's example is that start with the protocol meant, presenter and options kept.
        ("start atlsa <@U1|maria> step 1d", "`/protocol start atlas @\u200bmaria step 1d`"),
        (
            "Start Tunning <@U1|lee> at tue 15:00",
            "`/protocol start tuning @\u200blee at tue 15:00`",
        ),
        ("start zzz <@U1> in 2h", "`/protocol start atlas @\u200bmaria step 1d`"),
        ("preview atlsa", "`/protocol preview atlas`"),
    ],
)
def test_an_unknown_protocol_is_answered_with_the_command_meant(command: str, example: str) -> None:
    message = unknown_protocol(command.split()[1], ["atlas", "tuning"], command).message()
    assert message.endswith(f"For example: {example}")


# --- message checks shared by the example and property tests -----------------------------

EXAMPLE = re.compile(r"`(/protocol[^`]*)`$")


def assert_good_message(rejected: ParseError) -> None:
    message = rejected.message()
    assert 0 < len(message) <= 3000
    assert "<" not in message and ">" not in message  # nothing from the user can ping
    example = EXAMPLE.search(message)
    assert example, f"no closing example in {message!r}"
    # The example must itself be a valid command, once @names are real mentions.
    text = re.sub(
        r"@(\w+)", lambda m: f"<@U0{m[1].upper()}|{m[1]}>", example[1][len("/protocol") :]
    )
    assert not isinstance(parse(text, now=NOW), ParseError), example[1]


# --- properties -----------------------------------------------------------------------------

TOKENS = [
    *SUBCOMMANDS,
    "START",
    "Preview",
    "atlas",
    "tuning",
    "at",
    "AT",
    "in",
    "step",
    "remind",
    "facilitator",
    "weekdays",
    MARIA,
    "<@U9>",
    "<@W42|x y>",
    "<@u1>",
    "@bob",
    "bob",
    "<!channel>",
    "<!here|here>",
    "<#C1|general>",
    "<@",
    ">",
    "<",
    "&",
    "`",
    "*bold*",
    "tue",
    "Tuesday",
    "today",
    "tomorrow",
    "15:00",
    "3pm",
    "3:30",
    "pm",
    "a.m.",
    "24:00",
    "2026-02-30",
    "2026-03-10",
    "9999-12-31",
    "0001-01-01",
    # Dates as teachers write them, and the words around them.
    "dec",
    "December",
    "10th",
    "31st",
    "the",
    "of",
    "on",
    "next",
    "12/10",
    "13/13",
    "9999-12-32",
    "2/29/2027",
    # Lengths with fractions, and the words a reminder is asked for in.
    "1/2",
    "1½",
    "¾h",
    "1/0h",
    "quarter",
    "and",
    "a",
    "half",
    "me",
    "day",
    "before",
    "until",
    "1h30m",
    "90",
    "min",
    "5x",
    "0s",
    "-1m",
    "99999999d",
    "1.5h",
    "#2",
    "0",
    "٣m",
    "²",
    "x" * 300,
    "9" * 5000,
]
SEPARATORS = [" ", "  ", "\t", "\n", "\u00a0", " \u3000 "]
ZONES = ["UTC", LA, NY, "Australia/Lord_Howe", "Pacific/Apia", "Asia/Kolkata", "Nope/Zone", ""]

near_valid = st.builds(
    lambda words, sep: sep.join(words),
    st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=12)), max_size=14),
    st.sampled_from(SEPARATORS),
)
nows = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 (hypothesis bounds are naive)
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


def check_result(result: Command | ParseError, now: datetime) -> None:
    if isinstance(result, ParseError):
        assert_message_is_safe(result)
    elif isinstance(result, Start):
        assert_start_in_bounds(result, now)


def assert_message_is_safe(rejected: ParseError) -> None:
    message = rejected.message()
    assert 0 < len(message) <= 3000
    assert "<" not in message and ">" not in message
    assert message.endswith("`")


def assert_start_in_bounds(start: Start, now: datetime) -> None:
    assert start.protocol == start.protocol.lower()
    if start.start_at is not None:
        assert start.start_at.tzinfo is UTC
        assert now < start.start_at <= now + timedelta(seconds=MAX_AHEAD_SECONDS)
    for seconds in (start.step_seconds, start.remind_seconds):
        assert seconds is None or 0 < seconds <= MAX_AHEAD_SECONDS
    for user in (start.presenter, start.facilitator):
        assert user is None or re.fullmatch(r"[UW][A-Z0-9]+", user)


@settings(max_examples=300, deadline=None)
@given(text=st.text(), now=nows, tz=st.sampled_from(ZONES))
def test_any_text_parses_or_errs_cleanly(text: str, now: datetime, tz: str) -> None:
    check_result(parse(text, now=now, tz=tz), now)


@settings(max_examples=300, deadline=None)
@given(text=near_valid, now=nows, tz=st.sampled_from(ZONES))
def test_near_valid_text_parses_or_errs_cleanly(text: str, now: datetime, tz: str) -> None:
    check_result(parse(text, now=now, tz=tz), now)


@settings(max_examples=300, deadline=None)
@given(text=near_valid, now=nows, tz=st.sampled_from(ZONES))
def test_start_prefix_parses_or_errs_cleanly(text: str, now: datetime, tz: str) -> None:
    check_result(parse(f"start atlas {text}", now=now, tz=tz), now)


UNIT_SPELLINGS = {
    1: ["s", "sec"],
    60: ["m", "min", "mins"],
    3600: ["h", "hr", "hrs"],
    86_400: ["d"],
}


@st.composite
def start_commands(draw: st.DrawFn) -> tuple[str, Start]:
    """A valid `start` with random options in random order and case, and what it means."""
    unit = draw(st.sampled_from(list(UNIT_SPELLINGS)))
    amount = draw(st.integers(min_value=1, max_value=MAX_AHEAD_SECONDS // unit // 2))
    spelled = f"{amount}{draw(st.sampled_from(UNIT_SPELLINGS[unit]))}"
    user = draw(st.from_regex(r"[UW][A-Z0-9]{2,10}", fullmatch=True))
    options = {
        "presenter": ([f"<@{user}|someone>"], {"presenter": user}),
        "step": (
            ["step", spelled],
            {"step_seconds": amount * unit, "step_days": amount if unit == 86_400 else 0},
        ),
        "remind": (["remind", spelled], {"remind_seconds": amount * unit}),
        "in": (["in", spelled], {"start_at": NOW + timedelta(seconds=amount * unit)}),
        "facilitator": (["facilitator", f"<@{user}>"], {"facilitator": user}),
        "weekdays": (["weekdays"], {"weekdays": True}),
    }
    chosen = draw(st.lists(st.sampled_from(list(options)), unique=True))
    if "remind" in chosen and "in" not in chosen:
        chosen.append("in")  # a reminder is for a session scheduled ahead
    words: list[str] = ["start", "Atlas"]
    fields: dict[str, object] = {}
    for name in chosen:
        option_words, option_fields = options[name]
        words += [draw(st.sampled_from([w, w.upper()])) if w.isalpha() else w for w in option_words]
        fields.update(option_fields)
    return draw(st.sampled_from(SEPARATORS)).join(words), Start("atlas", **fields)


@settings(max_examples=300, deadline=None)
@given(case=start_commands())
def test_valid_start_commands_mean_what_they_say(case: tuple[str, Start]) -> None:
    text, expected = case
    assert parse(text, now=NOW) == expected


def test_in_days_keeps_the_callers_time_of_day_across_a_clock_change() -> None:
    """New York springs forward on Sunday 8 March 2026: two days from Saturday 3 PM is Monday
    3 PM there, 47 hours on, not 4 PM."""
    saturday_3pm = datetime(2026, 3, 7, 20, 0, tzinfo=UTC)  # EST, UTC-5
    command = parse("start atlas in 2d", now=saturday_3pm, tz="America/New_York")
    assert isinstance(command, Start)
    assert command.start_at == datetime(2026, 3, 9, 19, 0, tzinfo=UTC)  # EDT, UTC-4
    hours = parse("start atlas in 5h", now=saturday_3pm, tz="America/New_York")
    assert isinstance(hours, Start)
    assert hours.start_at == saturday_3pm + timedelta(hours=5)
    # Hours written as hours are counted as hours: `in 24h` is 4 PM on the Sunday.
    day_in_hours = parse("start atlas in 24h", now=saturday_3pm, tz="America/New_York")
    assert isinstance(day_in_hours, Start)
    assert day_in_hours.start_at == saturday_3pm + timedelta(hours=24)
    mixed = parse("start atlas in 1d 2h", now=saturday_3pm, tz="America/New_York")
    assert isinstance(mixed, Start)
    assert mixed.start_at == datetime(2026, 3, 8, 21, 0, tzinfo=UTC)  # 5 PM EDT


@pytest.mark.parametrize(
    "when",
    ["next tue", "next tue at 15:00", "on tuesday", "tue 3pm", "tomorrow at 3pm"],
)
def test_a_day_written_other_than_after_at_is_shown_the_form_that_works(when: str) -> None:
    # The example was `/protocol start atlas @maria step 1d` whenever the day did not come
    # first: a facilitator who wrote `on tue at 15:00` was shown how to run one step a day.
    error = parse(f"start atlas {MARIA} {when}", now=NOW)
    assert isinstance(error, ParseError)
    message = error.message()
    assert "`/protocol start atlas @maria at tue 15:00`" in message
    assert "step 1d" not in message


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("on tue at 15:00", utc(2026, 3, 3, 23, 0)),  # 15:00 PST
        ("this fri 3pm", utc(2026, 3, 6, 23, 0)),
        ("on mar 10 at 9am", utc(2026, 3, 10, 16, 0)),  # PDT from 8 March
        ("on 10 march 9am", utc(2026, 3, 10, 16, 0)),
        ("on the 10th at 9am", utc(2026, 3, 10, 16, 0)),
        ("on the 10 at 9am", utc(2026, 3, 10, 16, 0)),
        ("next mon 9am", utc(2026, 3, 9, 16, 0)),  # said on a Monday: a week on
    ],
)
def test_a_day_after_on_this_or_next_is_read_as_after_at(when: str, expected: datetime) -> None:
    command = ok(f"start atlas {MARIA} {when}", tz=LA)
    assert isinstance(command, Start)
    assert command.start_at == expected
    assert ok(f"start atlas {when} {MARIA}", tz=LA) == command


def test_next_weekday_said_on_that_weekday_is_a_week_on() -> None:
    friday_9am = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
    command = parse("start atlas at next friday 3pm", now=friday_9am, tz="Europe/London")
    assert isinstance(command, Start)
    assert command.start_at == datetime(2026, 3, 13, 15, 0, tzinfo=UTC)
    today = parse("start atlas at this Friday 3PM", now=friday_9am, tz="Europe/London")
    assert isinstance(today, Start)
    assert today.start_at == datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
