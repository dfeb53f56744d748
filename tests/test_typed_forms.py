"""`/protocol` as people type it, sent as Slack sends it (signed HTTP, the real app)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.protocols import BUILTIN_DIR
from bot.slack_standin import SlackStandin
from bot.store.models import ProtocolSession
from tests.harness import PRESENTER, TEACHERS, Bot
from tests.prep_world import message_text


def test_help_with_more_words_after_it_is_still_help(bot: Bot) -> None:
    for text in ("help", "HELP", "help\u00a0", "help start", "help me please", "help extend"):
        answer = message_text(bot.command(text))
        assert "/protocol start" in answer and "I don't know what to do" not in answer, text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("preview “atlas”", "Getting Started"),  # smart quotes, as macOS and iOS type them
        ("preview 'ATLAS'", "Getting Started"),
        ("status.", "No protocol session"),
        ("Next!", "No protocol session"),
        ("next\u200b", "No protocol session"),  # a zero-width space, pasted with the word
        ("\u200bhelp", "/protocol start"),
        # a full stop or a mark at the end, as at the end of a sentence
        ("preview atlas.", "Getting Started"),
        ("preview ATLAS!", "Getting Started"),
        (f"start atlas <@{PRESENTER}|maria> step 1h.", "is starting in this channel"),
        (f"start atlas <@{PRESENTER}|maria>.", "is starting in this channel"),
    ],
)
def test_marks_that_autocorrect_or_pasting_add_are_read_past(
    bot: Bot, text: str, expected: str
) -> None:
    answer = message_text(bot.command(text))
    assert expected in answer, answer


def _full_width(text: str) -> str:
    """Text as a Chinese, Japanese or Korean input method types it when left in full-width
    mode: each printable ASCII character as its full-width form, spaces as ideographic ones."""
    return "".join(
        "\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text
    )


def test_a_command_typed_in_full_width_characters_is_read_as_typed(bot: Bot) -> None:
    # The facilitator's Slack time zone is Los Angeles: the time is read in it.
    la = ZoneInfo("America/Los_Angeles")
    day = datetime.now(la).date() + timedelta(days=2)
    mention = f"\u3000<@{PRESENTER}|maria>\u3000"
    text = _full_width("start atlas") + mention + _full_width(f"at {day} 15:00")
    answer = message_text(bot.command(text))
    assert "/protocol start" not in answer, answer
    with bot.db.session() as s:
        session = s.scalars(select(ProtocolSession)).one()
    assert session.starts_at == datetime(day.year, day.month, day.day, 15, 0, tzinfo=la)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # What Slack's list offers after an @ besides people, sent as Slack escapes it.
        ("start atlas <!subteam^S0TEACH|@teachers>", "`@\u200bteachers` is a user group"),
        ("start atlas <!here>", "`@\u200bhere` is everyone in the channel"),
        ("start atlas <#C0MATH|math-team>", "`#math-team` is a channel"),
        (
            f"start atlas <@{PRESENTER}|maria> facilitator <!subteam^S0COACH|@coaches>",
            "`@\u200bcoaches` is a user group, not a person: name one person",
        ),
        (
            f"rotation <@{PRESENTER}|maria> <!subteam^S0G5|@grade-5>",
            "`@\u200bgrade-5` is a user group, not a person: name each person",
        ),
    ],
)
def test_a_group_or_channel_picked_for_a_person_is_named_for_what_it_is(
    bot: Bot, text: str, expected: str
) -> None:
    answer = message_text(bot.command(text))
    assert expected in answer and "<!" not in answer and "&lt;" not in answer, answer


def test_the_date_an_unreadable_time_is_shown_as_an_example_is_one_a_start_takes(
    bot: Bot,
) -> None:
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at teatime"))
    match = re.search(r"or (\d{4}-\d{2}-\d{2} 15:00)\.", answer)
    assert match is not None, answer
    # Written as the error shows it, the start is scheduled, not refused as past.
    followed = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at {match[1]}"))
    assert "is scheduled for" in followed, followed


@pytest.mark.parametrize(
    "written",
    [
        "{month} {day} 3pm",
        "{day} {month} 15:00",
        "{weekday}, {month} {day} at 3pm",
        "{month} {day} @ 3pm",
    ],
)
def test_a_session_is_scheduled_for_a_date_written_with_its_month(bot: Bot, written: str) -> None:
    # The facilitator's Slack time zone is Los Angeles: the date and time are read in it.
    la = ZoneInfo("America/Los_Angeles")
    day = datetime.now(la).date() + timedelta(days=3)
    when = written.format(month=day.strftime("%b").lower(), day=day.day, weekday=f"{day:%A}")
    answer = bot.command(f"start atlas <@{PRESENTER}|maria> at {when}")
    with bot.db.session() as s:
        session = s.scalars(select(ProtocolSession)).one()
    starts_at = datetime(day.year, day.month, day.day, 15, 0, tzinfo=la)
    assert session.starts_at == starts_at
    # The answer shows the date understood, in words in each reader's own zone.
    token = f"<!date^{int(starts_at.timestamp())}^{{date_long_pretty}} at {{time}}|"
    assert "is scheduled for" in message_text(answer) and token in message_text(answer)


def test_a_day_past_the_end_of_the_calendars_last_month_is_answered(bot: Bot) -> None:
    # `at 9999-12-32 3pm` raised (the month after December 9999 is no date) and was answered
    # with no word of the date.
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at 9999-12-32 3pm"))
    assert "`9999-12-32 3pm` is not a date on the calendar" in answer, answer


def test_an_unreadable_time_is_shown_a_date_with_its_month_that_a_start_takes(bot: Bot) -> None:
    # The forms listed were a weekday or YYYY-MM-DD: not the date as teachers write it.
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at teatime"))
    match = re.search(r", ([a-z]{3} \d{1,2} 3pm) or \d{4}-", answer)
    assert match is not None, answer
    followed = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at {match[1]}"))
    assert "is scheduled for" in followed, followed


@pytest.mark.parametrize(
    ("typed", "sent", "shown"),
    [
        # Slack sends a typed &, < or > as an entity, and shows an entity as the character.
        ("preview R&D", "preview R&amp;D", "`r&amp;d`"),
        (
            f"start atlas <@{PRESENTER}|maria> at 3pm -> 4pm",
            f"start atlas <@{PRESENTER}|maria> at 3pm -&gt; 4pm",
            "`-&gt; 4pm`",
        ),
        ("cancel <2>", "cancel &lt;2&gt;", "`&lt;2&gt;`"),
    ],
)
def test_a_typed_ampersand_or_angle_bracket_is_quoted_back_as_typed(
    bot: Bot, typed: str, sent: str, shown: str
) -> None:
    answer = message_text(bot.command(sent))
    assert shown in answer, (typed, answer)
    assert "&amp;amp;" not in answer and "&amp;lt;" not in answer and "&amp;gt" not in answer


def test_a_presenter_after_with_that_is_not_a_mention_is_the_word_the_error_names(
    bot: Bot,
) -> None:
    # `@maria` typed without picking her from Slack's list comes as text: the error said
    # "`with` is not a Slack mention", about the word the facilitator had typed right.
    for text in ("start atlas with @maria", "start atlas for maria step 1h"):
        answer = message_text(bot.command(text))
        assert "is not a Slack mention" in answer, text
        assert "`with`" not in answer and "`for`" not in answer, answer
    assert "maria` is not a Slack mention" in message_text(bot.command("start atlas with @maria"))
    assert "is starting" in message_text(bot.command(f"start atlas with <@{PRESENTER}|maria>"))
    assert "`with` is not a Slack mention" in message_text(bot.command("start atlas with step 1h"))


def test_help_shows_how_to_keep_an_asynchronous_session_off_the_weekend(bot: Bot) -> None:
    # `weekdays` was nowhere in the help: a facilitator running a step a day learned of it only
    # from a step that closed on a Saturday.
    answer = message_text(bot.command("help"))
    assert "`/protocol start atlas @presenter step 1d weekdays`" in answer
    assert "closes Monday morning instead" in answer


def test_help_shows_how_to_change_a_scheduled_sessions_presenter_or_time(bot: Bot) -> None:
    # Nothing said how: a facilitator whose presenter fell ill looked for a command that isn't.
    answer = message_text(bot.command("help"))
    assert "To change the presenter or the time of session #12" in answer
    assert "the same presenter's prep is kept" in answer


def test_help_shows_a_date_written_with_its_month_and_it_schedules(bot: Bot) -> None:
    # The help showed `at tue 15:00` alone: a facilitator with a date in mind wrote it as
    # `YYYY-MM-DD` or not at all. The form it shows is one a start reads.
    answer = message_text(bot.command("help"))
    match = re.search(r"\(or `at ([a-z]{3} \d{1,2} 3pm)`, `in 2d`\)", answer)
    assert match is not None, answer
    typed = f"start atlas <@{PRESENTER}|maria> at {match[1]}"
    answer = message_text(bot.command(typed))
    # Read as a date: scheduled, or (the help's date being fixed) too near or far in the year.
    placed = ("is scheduled for", "has already passed", "is too far away")
    assert any(said in answer for said in placed), answer


def test_end_now_ends_the_session(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    assert "Paused" in message_text(bot.command("pause please"))
    assert "Resumed" in message_text(bot.command("resume now"))
    assert "The session has ended" in message_text(bot.command("end now"))
    with bot.db.session() as s:
        assert s.scalars(select(ProtocolSession.status)).all() == ["ended"]


def test_a_command_that_reads_takes_a_please_as_a_control_does(bot: Bot) -> None:
    # `end please` ended the session, where `status please` was refused for its "please".
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    assert "step 1 of 6" in message_text(bot.command("status please"))
    assert "Notes from" in message_text(bot.command("notes pls"))
    assert "ATLAS" in message_text(bot.command("list please"))
    bot.command("end")
    # `forget it` is never mind, not a courtesy: the replies stay.
    assert "I don't know what to do with `it`" in message_text(bot.command("forget it"))


def test_weekdays_only_as_the_header_says_it_keeps_the_session_off_the_weekend(bot: Bot) -> None:
    # The header's plan says "one step every 1 day, weekdays only", and the dialog "Weekdays
    # only": typed so, the start was refused for its "only".
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> step 1d weekdays only"))
    # Starting now, or on Monday morning if it is the weekend (or before it) where they are.
    assert "is starting in this channel" in answer or "is scheduled for" in answer, answer
    with bot.db.session() as s:
        assert s.scalars(select(ProtocolSession.weekdays)).all() == [True]


class _HeldClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


@pytest.fixture
def before_spring_forward(workspace: SlackStandin, database_url: str) -> Iterator[Bot]:
    """The bot on Saturday 13 March 2027, 15:00 in Los Angeles (the facilitator's Slack zone),
    the day before the clocks there go forward an hour."""
    saturday = datetime(2027, 3, 13, 15, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    running = Bot(workspace, database_url, clock=_HeldClock(saturday.astimezone(UTC))).start()
    try:
        yield running
    finally:
        running.stop()


def _starts(bot: Bot) -> list[datetime]:
    with bot.db.session() as s:
        rows = s.scalars(select(ProtocolSession.starts_at).order_by(ProtocolSession.id)).all()
    return [row.replace(tzinfo=UTC) if row.tzinfo is None else row for row in rows]


def test_in_hours_across_a_clock_change_is_that_many_hours_and_in_days_the_same_time(
    before_spring_forward: Bot,
) -> None:
    # `in 24h` on the Saturday before the change started 23 hours on (Sunday 3 PM): hours were
    # counted as days. Hours are hours; a day is the same time of day, as `in 1d` says.
    bot = before_spring_forward
    now = bot.runtime.clock.now()
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> in 24h"))
    assert "Sun 14 Mar 2027 16:00 PDT" in answer, answer
    answer = message_text(bot.command(f"start tuning <@{PRESENTER}|maria> in 1d"))
    assert "Sun 14 Mar 2027 15:00 PDT" in answer, answer
    assert _starts(bot) == [now + timedelta(hours=24), now + timedelta(hours=23)]


def test_a_zone_written_after_the_time_is_read_if_it_is_the_callers_and_refused_if_not(
    before_spring_forward: Bot,
) -> None:
    # `at tue 3pm ET` from a facilitator in Los Angeles was answered "`ET` is not a Slack
    # mention" (or, after a presenter, "I don't know what to do with `ET`"): nothing about
    # the zone the time is read in, 3 hours from the one they meant.
    bot = before_spring_forward
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at tue 3pm ET"))
    assert (
        "`tue 3pm ET`: I read the time in America/Los_Angeles (PDT), your zone in Slack" in answer
    )
    assert "Slack mention" not in answer and _starts(bot) == []
    # Their own zone, by any of its names, is read past.
    for zone in ("PT", "PST", "pacific time"):
        answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at tue 3pm {zone}"))
        assert "Tue 16 Mar 2027 15:00 PDT" in answer, (zone, answer)
        bot.command(f"cancel {len(_starts(bot))}")


def test_noon_is_a_time(before_spring_forward: Bot) -> None:
    # `at noon` and `at tomorrow noon` were "not a time I can read".
    bot = before_spring_forward
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at tomorrow noon"))
    assert "Sun 14 Mar 2027 12:00 PDT" in answer, answer
    answer = message_text(bot.command(f"start tuning <@{PRESENTER}|maria> at fri at Noon"))
    assert "Fri 19 Mar 2027 12:00 PDT" in answer, answer
    # Without `at`, the answer says where a time goes, not that `noon` is no Slack mention.
    answer = message_text(bot.command(f"start atlas noon <@{PRESENTER}|maria>"))
    assert "a day and a time go after `at`" in answer, answer


def test_this_and_next_before_a_weekday(before_spring_forward: Bot) -> None:
    # `at next fri 3pm` was "`next` is not a time I can read"; `at this fri 3pm` too.
    bot = before_spring_forward  # a Saturday
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at this fri 3pm"))
    assert "Fri 19 Mar 2027 15:00 PDT" in answer, answer
    # Said on a Saturday, `next sat` is a week on; `next fri` could be either Friday: asked.
    answer = message_text(bot.command(f"start tuning <@{PRESENTER}|maria> at next Sat 9am"))
    assert "Sat 20 Mar 2027 09:00 PDT" in answer, answer
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at next friday 3pm"))
    assert "the coming one, Friday 19 March, or the one after, Friday 26 March?" in answer
    assert "write `at friday 3pm`; for the one after, `at 2027-03-26 3pm`" in answer, answer
    assert len(_starts(bot)) == 2


def test_tomorrow_shortened_or_misspelled_is_tomorrow(before_spring_forward: Bot) -> None:
    # `at tmrw 3pm` was "`tmrw` is not a time I can read".
    bot = before_spring_forward
    for n, word in enumerate(("tmrw", "Tomorow", "tommorrow"), start=1):
        answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at {word} 9am"))
        assert "Sun 14 Mar 2027 09:00 PDT" in answer, (word, answer)
        bot.command(f"cancel {n}")
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at tonight 7pm"))
    assert "Sat 13 Mar 2027 19:00 PST" in answer, answer


def test_a_duration_ending_in_a_bare_number_is_refused_as_a_duration(bot: Bot) -> None:
    # `step 2d 12` was answered "I don't know what to do with `12` ... (a day and a time go
    # after `at`)": about a start time nobody wrote. (`1h 30` is 90 minutes, as `1h30` is.)
    for text, example in (
        (f"start atlas <@{PRESENTER}|maria> step 2d 12", "start atlas @maria step 1d"),
        ("extend 2d 12", "extend 10m"),
    ):
        answer = message_text(bot.command(text))
        assert "`2d 12` is not a duration" in answer and "sum like 1h30m" in answer, answer
        assert f"`/protocol {example}`" in answer, answer
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> step 1h 30 min"))
    assert "is starting" in answer, answer


def test_a_misspelled_day_is_named_with_the_day_meant(bot: Bot) -> None:
    # `at fryday 3pm` was "`fryday` is not a time I can read", the time left out and no word
    # of Friday.
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at Thrusday 3pm"))
    assert "`Thrusday 3pm` is not a time I can read (did you mean `thursday 3pm`?)" in answer
    assert "is not a time I can read:" in message_text(bot.command("start atlas at teatime"))


def test_a_day_without_a_time_is_asked_for_its_time(bot: Bot) -> None:
    # `at fri` was "`fri` is not a time I can read": it is a day, and lacks only its time.
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at Fri"))
    assert "`Fri` needs a time too: write it after the day, as in `Fri 15:00`" in answer, answer
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at tomorrow step 1d"))
    assert "`tomorrow` needs a time too" in answer, answer


def test_midnight_alone_is_the_coming_one_and_a_days_midnight_is_asked_about(
    before_spring_forward: Bot,
) -> None:
    # `at midnight` was "not a time I can read".
    bot = before_spring_forward
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at midnight"))
    assert "Sun 14 Mar 2027 00:00 PST" in answer, answer
    answer = message_text(bot.command(f"start tuning <@{PRESENTER}|maria> at fri midnight"))
    assert "`fri midnight`: the start of that day, or its end?" in answer, answer
    assert "Write `fri 00:00` for the start of it, or `fri 23:59` for the end of it" in answer
    assert len(_starts(bot)) == 1


def test_extend_until_midnight_is_the_coming_one_as_at_midnight_is(
    before_spring_forward: Bot,
) -> None:
    # `extend until midnight` was "`midnight` has already passed today": it never had.
    bot = before_spring_forward
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    assert "Extended" in message_text(bot.command("extend until midnight"))
    with bot.db.session() as s:
        session = s.scalars(select(ProtocolSession)).one()
        closes = session.step_closes_at
    assert closes is not None
    assert closes.astimezone(ZoneInfo(session.tz)) == datetime(
        2027, 3, 14, tzinfo=ZoneInfo("America/Los_Angeles")
    )
    # A day's midnight is asked about, as `at fri midnight` is, not "not a time I can read".
    answer = message_text(bot.command("extend until fri midnight"))
    assert "`fri midnight`: the start of that day, or its end?" in answer, answer
    assert "`/protocol extend until 3pm`" in answer, answer


def test_a_day_after_the_time_with_on_this_or_next(before_spring_forward: Bot) -> None:
    # `at 3pm on friday`, as it is said, was "I don't know what to do with `on friday` ... (a
    # day and a time go after `at`)": they had.
    bot = before_spring_forward
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at 3pm on Friday"))
    assert "Fri 19 Mar 2027 15:00 PDT" in answer, answer
    answer = message_text(bot.command(f"start tuning <@{PRESENTER}|maria> at 9am next sat"))
    assert "Sat 20 Mar 2027 09:00 PDT" in answer, answer
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at 3pm next fri"))
    assert "the coming one, Friday 19 March, or the one after, Friday 26 March?" in answer


def test_extend_by_hours_across_a_clock_change_is_that_many_hours(
    before_spring_forward: Bot,
) -> None:
    # `extend 24h` on a step closing the evening before the clocks go forward moved its close
    # 23 hours on, to the same time of day: hours were counted as days. `extend 1d` still
    # keeps the time of day.
    bot = before_spring_forward
    bot.command(f"start atlas <@{PRESENTER}|maria> step 5h")  # long: read in the caller's zone
    bot.wait_until(lambda: len(bot.step_posts()) == 1)

    def closes() -> datetime:
        with bot.db.session() as s:
            at = s.scalars(select(ProtocolSession.step_closes_at)).one()
        assert at is not None
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at

    first = closes()  # Saturday 20:00 PST
    assert "Extended" in message_text(bot.command("extend 24h"))
    assert closes() == first + timedelta(hours=24)  # Sunday 21:00 PDT
    assert "Extended" in message_text(bot.command("extend 1d"))
    assert closes() == first + timedelta(hours=48)  # Monday 21:00 PDT, a calendar day on


def test_a_number_with_a_unit_not_known_is_quoted_whole(bot: Bot) -> None:
    # `step 2 months` was "`2` is not a duration": the word that was wrong left out.
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> step 2 months"))
    assert "`2 months` is not a duration: use a number and a unit (s, m, h, d or w)" in answer
    assert "`10` needs a unit: `10m` for minutes" in message_text(bot.command("extend 10 please"))


def test_a_start_on_steps_under_a_minute_says_the_session_will_be_over_at_once(bot: Bot) -> None:
    # `step 1s`, a slip for `step 1d` (the keys sit side by side), ran all six steps and posted
    # the notes within seconds, and the answer to the start said nothing of how long a step was.
    quick = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> step 2s"))
    assert "Each step lasts 2 seconds, so all 6 steps will be over within about 12 seconds" in quick
    assert "`/protocol end` now and start again with `step 10m` or `step 1d`" in quick
    bot.command("end")
    bot.settle()
    meant = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> step 1d"))
    assert "is starting in this channel" in meant and "Each step lasts" not in meant


def test_a_protocol_named_without_start_shows_the_start_that_runs_it(bot: Bot) -> None:
    # `/protocol Tuning`, as a teacher types the protocol they mean to run: the answer named
    # every subcommand but not the one that runs it, nor that Tuning is a protocol.
    cases = {
        "Tuning": "`/protocol start tuning @maria step 1d`",
        "tuning protocol.": "`/protocol start tuning @maria step 1d`",
        "atlas equity": "`/protocol start atlas-equity @maria step 1d`",
        f"ATLAS <@{PRESENTER}|maria> step 1d": "`/protocol start atlas @maria step 1d`",
    }
    for typed, example in cases.items():
        answer = message_text(bot.command(typed)).replace("\u200b", "")  # @ shown, not a ping
        assert "put `start` before its name" in answer and example in answer, (typed, answer)
        assert "/protocol preview" in answer
    assert "try help, list" in message_text(bot.command("bogus"))  # a word no protocol's
    with bot.db.session() as s:
        assert s.scalars(select(ProtocolSession)).first() is None  # nothing started


def test_a_time_after_school_written_without_pm_is_asked_about(bot: Bot) -> None:
    # `at 3:30`, as a teacher writes the time of the meeting after school, was scheduled for
    # 3:30 in the night, with the presenter's last reminder at half past midnight.
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at 3:30 step 1d"))
    assert "3:30 am or 3:30 pm?" in answer and "`3:30pm` (`15:30`)" in answer
    with bot.db.session() as s:
        assert s.scalars(select(ProtocolSession)).first() is None  # nothing scheduled
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at 3:30pm step 1d"))
    assert "is scheduled for" in answer


def test_a_protocol_named_as_the_list_shows_it_is_found(bot: Bot) -> None:
    # `/protocol list` shows each protocol's name ("collaborative-assessment  60 min
    # Collaborative Assessment Conference: ..."): typed so, the name's last word was refused
    # ("I don't know what to do with `Conference`"), and a name in quotes was not read at all.
    for typed, shown in {
        "preview Collaborative Assessment Conference": "Preview of Collaborative Assessment",
        "preview ATLAS - Learning from Student Work": "Preview of ATLAS - Learning",
        'preview "atlas equity"': "Preview of ATLAS with Equity Questions",
        "preview the Tuning Protocol": "Preview of Tuning Protocol",
    }.items():
        assert shown in message_text(bot.command(typed)), typed
    answer = message_text(bot.command("Collaborative Assessment Conference")).replace("\u200b", "")
    assert "`/protocol start collaborative-assessment @maria step 1d`" in answer
    answer = message_text(bot.command(f"start DESE Everyday Student Work Analysis <@{PRESENTER}>"))
    assert "*DESE Everyday Student Work Analysis* is starting" in answer


def test_a_command_typed_in_spanish_points_to_the_english_one(bot: Bot) -> None:
    # `/protocol ayuda`, `/protocol iniciar atlas @maria`: the answer listed the commands
    # without saying which one was meant (`iniciar` was taken for nothing, `siguiente` too).
    for typed, meant in {
        "ayuda": "help",
        f"iniciar atlas <@{PRESENTER}|maria>": "start",
        "siguiente": "next",
        "terminar": "end",
        "estado": "status",
    }.items():
        answer = message_text(bot.command(typed))
        assert f"(did you mean `{meant}`?)" in answer, (typed, answer)


def test_going_back_a_step_is_not_taken_for_a_preview(bot: Bot) -> None:
    # `/protocol previous`, to go back a step (which no command does), was answered "did you
    # mean `preview`?", and `preview` asks which protocol.
    for typed in ("previous", "prev", "back"):
        answer = message_text(bot.command(typed))
        assert "did you mean" not in answer and "try help, list" in answer, typed


def test_rotation_show_shows_the_order(bot: Bot) -> None:
    # `/protocol rotation show`, to see the order: "`show` is not a Slack mention".
    bot.command(f"rotation <@{PRESENTER}|maria> <@U_T1|lee>")
    for typed in ("rotation show", "rotation list"):
        answer = message_text(bot.command(typed))
        assert "not a Slack mention" not in answer, typed
        assert f"1. <@{PRESENTER}>" in answer and "2. <@U_T1>" in answer, typed


def test_cancel_session_3_please_cancels_session_3(bot: Bot) -> None:
    # "`session` is not a session number", and "I don't know what to do with `please`".
    for n, typed in enumerate(("cancel session {}", "cancel session #{} please", "cancel {} pls")):
        bot.command(f"start atlas <@{PRESENTER}|maria> at tomorrow 15:00")
        with bot.db.session() as s:
            number = s.scalars(select(ProtocolSession.id).order_by(ProtocolSession.id)).all()[-1]
        answer = message_text(bot.command(typed.format(number)))
        assert "I don't know" not in answer and "not a session number" not in answer, answer
        with bot.db.session() as s:
            assert s.get(ProtocolSession, number).status != "scheduled", (n, answer)  # type: ignore[union-attr]


def test_export_in_slack_points_to_the_notes(bot: Bot) -> None:
    # `/protocol export`, as the README's command line has it, was answered "did you mean
    # `next`?" (the closest spelling), a control that moves the session on.
    answer = message_text(bot.command("export"))
    assert "(did you mean `notes`?)" in answer


def test_a_weekdays_start_early_on_monday_is_not_said_to_be_at_the_weekend(
    workspace: SlackStandin, database_url: str
) -> None:
    # At 7:30 on a Monday, a weekdays session waits for the working week to begin (8:00), and
    # the answer said it "opens on Monday morning, not at the weekend", on a Monday.
    monday = datetime(2027, 3, 15, 7, 30, tzinfo=ZoneInfo("America/Los_Angeles"))
    bot = Bot(workspace, database_url, clock=_HeldClock(monday.astimezone(UTC))).start()
    try:
        answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> step 1d weekdays"))
    finally:
        bot.stop()
    assert "when the working week begins, on Monday morning" in answer
    assert "not at the weekend" not in answer


def test_a_protocol_id_typed_is_not_taken_for_another_protocols_name(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # An operator's copy of Tuning, `tuning-v2`, keeps the name "Tuning Protocol" (`protocols
    # check` warns of it): `preview tuning protocol`, the built-in's id and the word, is still
    # the built-in's, and so is the name in full, with "the" before it, as a name of two
    # protocols is the first's; the copy is its id's.
    folder = tmp_path / "protocols"
    folder.mkdir()
    tuning = (BUILTIN_DIR / "tuning.yaml").read_text()
    copy = tuning.replace("id: tuning\n", "id: tuning-v2\n").replace("Colleagues ask", "We ask")
    (folder / "tuning-v2.yaml").write_text(copy)
    bot = Bot(workspace, database_url, protocols_dir=folder).start()
    try:
        assert "Colleagues ask" in json.dumps(bot.command("preview tuning protocol"))
        assert "Colleagues ask" in json.dumps(bot.command("preview the Tuning Protocol"))
        assert "We ask" in json.dumps(bot.command("preview tuning-v2"))
        shown = message_text(bot.command("preview ATLAS with Equity Questions"))
    finally:
        bot.stop()
    assert "Preview of ATLAS with Equity Questions" in shown


def test_in_a_week_is_read_as_seven_days(before_spring_forward: Bot) -> None:
    # `in 1 week` was refused (its answer showed `in 2d`): a week is 7 days on the calendar, the
    # same time of day a week on across the clocks going forward, as `in 7 days` is.
    bot = before_spring_forward
    for typed in ("in 1 week", "in 7 days", "in 1w"):
        answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> {typed}"))
        assert "Sat 20 Mar 2027 15:00 PDT" in answer, (typed, answer)
        bot.command(f"cancel {len(_starts(bot))}")
    assert "is starting" in message_text(bot.command(f"start atlas <@{PRESENTER}|maria> step 1wk"))
    with bot.db.session() as s:
        running = select(ProtocolSession).where(ProtocolSession.status == "running")
        closes = s.scalars(running).one().step_closes_at
    assert closes is not None
    week_on = datetime(2027, 3, 20, 15, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    assert closes.replace(tzinfo=UTC) == week_on.astimezone(UTC)


def test_a_24_hour_time_with_a_dot_is_read_as_with_a_colon(before_spring_forward: Bot) -> None:
    # `at 15.30`, as much of Europe writes a time, was refused as a time the bot could not read;
    # minutes that can't be a month (00, 13 to 59) make it no date. `at 10.03` (the tenth of
    # March?) is still asked about.
    bot = before_spring_forward
    for typed in ("at 15.30", "at 15:30", "at tue 9.45", "at 16.00"):
        answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> {typed}"))
        assert "is scheduled for" in answer, (typed, answer)
        bot.command(f"cancel {len(_starts(bot))}")
    la = ZoneInfo("America/Los_Angeles")
    wanted = [(13, 15, 30), (13, 15, 30), (16, 9, 45), (13, 16, 0)]
    assert [
        (at.astimezone(la).day, at.astimezone(la).hour, at.astimezone(la).minute)
        for at in _starts(bot)
    ] == wanted
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at 10.03"))
    assert "is scheduled for" not in answer and len(_starts(bot)) == 4


def test_presented_by_and_facilitated_by_name_the_presenter_and_facilitator(bot: Bot) -> None:
    # `presented by @maria` was answered "`presented` is not a Slack mention": the presenter
    # is the one after `by`, as after `presenter`; so too the facilitator after `facilitated by`.
    answer = message_text(
        bot.command(
            f"start atlas presented by <@{PRESENTER}|maria> facilitated by <@{TEACHERS[0]}>"
        )
    )
    assert "is starting" in answer, answer
    with bot.db.session() as s:
        session = s.scalars(select(ProtocolSession)).one()
        assert (session.presenter_id, session.facilitator_id) == (PRESENTER, TEACHERS[0])
    # Named twice, as for `presenter`: which one is meant is not guessed.
    answer = message_text(bot.command(f"start tuning <@{PRESENTER}> presented by <@{TEACHERS[1]}>"))
    assert "is starting" not in answer and "presenter" in answer, answer


def _two_sessions(bot: Bot) -> None:
    """Session #1 ended, its notes posted ("Three paragraphs"); #2 running ("no units")."""
    bot.reply(TEACHERS[0], "Three paragraphs, the first without a claim.", bot.open_step())
    bot.command("end")
    bot.wait_until(lambda: any("Notes from" in str(m.get("text")) for m in bot.posts()))
    bot.command(f"start tuning <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    bot.runtime.sender.drain(5)
    bot.reply(TEACHERS[1], "A table of results with no units.", bot.step_posts()[1]["ts"])
    bot.settle()


def test_notes_with_a_session_number_are_that_session_s(bot: Bot) -> None:
    # `notes 1` was refused as words `notes` does not take, though sessions are numbered for
    # people (`cancel 3`, "the replies of session #1"): it gives session #1's notes, here.
    _two_sessions(bot)
    for typed in ("notes 1", "notes #1", "notes session 1", "notes 1 please"):
        answer = message_text(bot.command(typed))
        assert "Three paragraphs" in answer and "no units" not in answer, (typed, answer)
    answer = message_text(bot.command("notes 2"))
    assert "no units" in answer and "Three paragraphs" not in answer, answer
    assert "no units" in message_text(bot.command("notes"))
    # A number this channel never ran is said so, and not another channel's notes.
    answer = message_text(bot.command("notes 99"))
    assert "There's no session #99 in this channel" in answer, answer
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    assert "Session #3 hasn't started yet" in message_text(bot.command("notes 3"))


def test_remind_before_the_start_is_read_as_remind(before_spring_forward: Bot) -> None:
    # `remind 1 day before` was refused for its "before", as people say when the presenter is
    # reminded: the same as `remind 1d` (so too `ahead`, `in advance`).
    bot = before_spring_forward
    for typed in ("remind 1 day before", "remind 2h ahead", "remind 3d in advance"):
        answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at fri 15:00 {typed}"))
        assert "is scheduled for" in answer, (typed, answer)
    with bot.db.session() as s:
        reminds = s.scalars(select(ProtocolSession.remind_seconds).order_by(ProtocolSession.id))
        assert list(reminds) == [86400, 7200, 3 * 86400]


@pytest.mark.parametrize(
    ("typed", "seconds"),
    [
        ("remind me 2 days before", 2 * 86400),
        ("remind the day before", 86400),
        ("remind me a day before", 86400),
        ("remind me the day before", 86400),
        ("remind them 2h ahead", 7200),
        ("remind the day in advance", 86400),
        ("remind 2 days prior", 2 * 86400),
        ("remind me 3h earlier", 3 * 3600),
    ],
)
def test_a_reminder_asked_for_as_people_ask_is_set(
    before_spring_forward: Bot, typed: str, seconds: int
) -> None:
    # `remind me 2 days before` was "`me 2 days` is not a duration", and `remind the day
    # before` "`the` is not a duration". The presenter is reminded, as the answer says.
    bot = before_spring_forward
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at fri 15:00 {typed}"))
    assert "is scheduled for" in answer and "I'll remind them" in answer, (typed, answer)
    with bot.db.session() as s:
        assert s.scalars(select(ProtocolSession.remind_seconds)).one() == seconds


def test_in_an_hour_and_in_a_week(before_spring_forward: Bot) -> None:
    # `in an hour` and `in a week` were "`an` is not a duration".
    bot = before_spring_forward
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> in an hour"))
    assert "Sat 13 Mar 2027 16:00 PST" in answer, answer
    answer = message_text(bot.command(f"start tuning <@{PRESENTER}|maria> in a week"))
    assert "Sat 20 Mar 2027 15:00 PDT" in answer, answer
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> in half an hour"))
    assert "Sat 13 Mar 2027 15:30 PST" in answer, answer


def test_facilitator_me_is_whoever_starts_it(bot: Bot) -> None:
    # `facilitator me` was "`me` is not a Slack mention"; who starts a session facilitates it
    # unless they name someone else, so `me` (or `myself`, `facilitated by me`) is read as that.
    for typed in ("facilitator me", "facilitated by myself"):
        answer = message_text(bot.command(f"start atlas <@{PRESENTER}> {typed}", user=TEACHERS[2]))
        assert "is starting" in answer, (typed, answer)
        with bot.db.session() as s:
            session = s.scalars(
                select(ProtocolSession).where(ProtocolSession.status == "running")
            ).one()
            assert session.facilitator_id == TEACHERS[2]
        bot.command("end", user=TEACHERS[2])


def test_presenter_me_is_whoever_starts_it(bot: Bot) -> None:
    # `presenter me` was "`me` is not a Slack mention": the teacher starting the session is
    # the one bringing the work.
    for typed in ("presenter me", "presented by myself"):
        answer = message_text(bot.command(f"start atlas {typed}", user=TEACHERS[1]))
        assert "is starting" in answer, (typed, answer)
        with bot.db.session() as s:
            running = select(ProtocolSession).where(ProtocolSession.status == "running")
            assert s.scalars(running).one().presenter_id == TEACHERS[1]
        bot.command("end", user=TEACHERS[1])


def test_hours_with_a_fraction_and_hours_and_minutes_as_people_say_them(
    before_spring_forward: Bot,
) -> None:
    # `in 2 hours and 30 minutes` was "`and` is not a Slack mention", `in 2h30` (as `15h30` is
    # a time) and `extend 1.5h` "not a duration": each is read as `2h30m` or `90m` is.
    bot = before_spring_forward
    for typed in ("in 2 hours and 30 minutes", "in 2h30", "in 2h 30m", "in 2.5 hours"):
        answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> {typed}"))
        assert "Sat 13 Mar 2027 17:30 PST" in answer, (typed, answer)
        bot.command(f"cancel {len(_starts(bot))}")
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    for typed in ("extend 1.5h", "extend 1.5 hours", "extend 1,5h", "extend 90m"):
        with bot.db.session() as s:
            running = select(ProtocolSession).where(ProtocolSession.status == "running")
            before = s.scalars(running).one().step_closes_at
        assert "Extended" in message_text(bot.command(typed)), typed
        with bot.db.session() as s:
            after = s.scalars(running).one().step_closes_at
        assert before is not None and after is not None
        assert after - before == timedelta(minutes=90), typed
    # An `and` before no number is not read as part of the duration.
    answer = message_text(bot.command(f"start tuning <@{PRESENTER}|maria> in 2 hours and soon"))
    assert "is scheduled for" not in answer, answer


def test_an_hour_written_as_french_writes_it_is_that_hour(before_spring_forward: Bot) -> None:
    # `at 15h`, as French writes 15:00 (and `15h30` was read), was "not a time I can read".
    bot = before_spring_forward
    for typed, shown in (
        ("at 16h", "Sat 13 Mar 2027 16:00 PST"),
        ("at tue 9h", "Tue 16 Mar 2027 09:00 PDT"),
    ):
        answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> {typed}"))
        assert shown in answer, (typed, answer)
        bot.command(f"cancel {len(_starts(bot))}")
    la = ZoneInfo("America/Los_Angeles")
    assert [at.astimezone(la).strftime("%d %H:%M") for at in _starts(bot)] == [
        "13 16:00",
        "16 09:00",
    ]
    # An hour no team meets at is asked about, as `at 3:00` is.
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at 3h"))
    assert "3:00 am or 3:00 pm?" in answer, answer
    # Without `at`, a number and h may be a length: the answer does not say a time goes there.
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> 2h"))
    assert "go after `at`" not in answer, answer
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    assert "Extended" in message_text(bot.command("extend until 17h"))


def test_notes_last_are_the_latest_sessions_as_notes_alone_gives_them(bot: Bot) -> None:
    # `notes last` and `notes latest` were "I don't know what to do with `last`".
    _two_sessions(bot)
    for typed in ("notes last", "notes latest", "notes the last session", "notes latest please"):
        answer = message_text(bot.command(typed))
        assert "no units" in answer and "Three paragraphs" not in answer, (typed, answer)
    # Not a guess at more than one session, or at a time.
    for typed in ("notes last 3", "notes last week"):
        assert "I don't know what to do with" in message_text(bot.command(typed)), typed


def test_an_hour_and_a_half_as_people_say_it(before_spring_forward: Bot) -> None:
    # `in an hour and a half` was refused for its "and a half", `extend 1 and a half hours` as
    # "`1 and` is not a duration": each is 90 minutes.
    bot = before_spring_forward
    for typed in ("in an hour and a half", "in 1 and a half hours", "in 1 hour and a half"):
        answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> {typed}"))
        assert "Sat 13 Mar 2027 16:30 PST" in answer, (typed, answer)
        bot.command(f"cancel {len(_starts(bot))}")
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    running = select(ProtocolSession).where(ProtocolSession.status == "running")
    for typed in ("extend an hour and a half", "extend 1 and a half hours"):
        with bot.db.session() as s:
            before = s.scalars(running).one().step_closes_at
        assert "Extended" in message_text(bot.command(typed)), typed
        with bot.db.session() as s:
            after = s.scalars(running).one().step_closes_at
        assert before is not None and after is not None
        assert after - before == timedelta(minutes=90), typed


@pytest.mark.parametrize(
    ("typed", "starts"),
    [
        ("on tue at 3pm", datetime(2027, 3, 16, 15, 0)),
        ("this th 3pm", datetime(2027, 3, 18, 15, 0)),
        ("on apr 5 at 9am", datetime(2027, 4, 5, 9, 0)),
        ("on 5 april 9am", datetime(2027, 4, 5, 9, 0)),
        ("on the 20th at 9am", datetime(2027, 3, 20, 9, 0)),
    ],
)
def test_a_day_after_on_or_this_without_at_schedules_the_session(
    before_spring_forward: Bot, typed: str, starts: datetime
) -> None:
    # `start atlas @maria on jan 5 at 9am` (or `on tue at 3pm`) was "I don't know what to do
    # with `on jan 5 at 9am`": `on` and `this` before a day say when, as `at` does.
    bot = before_spring_forward
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> {typed}"))
    assert "is scheduled for" in answer and "Slack mention" not in answer, (typed, answer)
    with bot.db.session() as s:
        session = s.scalars(select(ProtocolSession)).one()
    assert session.starts_at == starts.replace(tzinfo=ZoneInfo("America/Los_Angeles"))


def test_next_and_a_day_without_at_is_asked_about_as_after_at(before_spring_forward: Bot) -> None:
    # Said on a Saturday, `next fri` is the coming one or the one after.
    bot = before_spring_forward
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> next fri 15:00"))
    assert "the coming one, Friday 19 March, or the one after, Friday 26 March?" in answer
    with bot.db.session() as s:
        assert s.scalars(select(ProtocolSession)).all() == []


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("extend 45", "`45` needs a unit: `45m` for minutes, `45h` for hours."),
        ("extend 1:30", "write `1h30m` for 1 h 30 min, or `1m30s` for 1 min 30 s"),
        ("extend 0:45", "write `45m` for 45 min, or `45s` for 45 s"),
    ],
)
def test_a_length_without_its_unit_is_shown_what_to_write(bot: Bot, typed: str, said: str) -> None:
    # `extend 45` and `extend 1:30` were "not a duration: use a number and a unit": the
    # facilitator was not told which unit, nor that 1:30 may be 90 minutes or 90 seconds.
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    answer = message_text(bot.command(typed))
    assert said in answer and "/protocol extend 10m" in answer, answer


def test_hours_and_minutes_run_together_after_hr_or_hrs(bot: Bot) -> None:
    # `extend 1h30` was read as 90 minutes, and `extend 1hr30` or `2hrs30` refused as no duration.
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    running = select(ProtocolSession).where(ProtocolSession.status == "running")
    for typed, minutes in (("extend 1hr30", 90), ("extend 2hrs30", 150)):
        with bot.db.session() as s:
            before = s.scalars(running).one().step_closes_at
        assert "Extended" in message_text(bot.command(typed)), typed
        with bot.db.session() as s:
            after = s.scalars(running).one().step_closes_at
        assert before is not None and after is not None
        assert after - before == timedelta(minutes=minutes), typed


def test_minutes_after_hours_with_a_space_as_without(bot: Bot) -> None:
    # `extend 1h 30` was refused as no duration where `1h30` is 90 minutes.
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h 30")
    running = select(ProtocolSession).where(ProtocolSession.status == "running")
    with bot.db.session() as s:
        assert s.scalars(running).one().step_seconds == 90 * 60
    for typed, minutes in (("extend 1h 30", 90), ("extend 2 hrs 05", 125)):
        with bot.db.session() as s:
            before = s.scalars(running).one().step_closes_at
        assert "Extended" in message_text(bot.command(typed)), typed
        with bot.db.session() as s:
            after = s.scalars(running).one().step_closes_at
        assert before is not None and after is not None
        assert after - before == timedelta(minutes=minutes), typed
    # One digit, or more than 59, is not read as minutes (`1h5` is not either).
    for typed in ("extend 1h 5", "extend 1h 75"):
        assert "is not a duration" in message_text(bot.command(typed)), typed


def test_minutes_after_hours_written_out_as_after_h(bot: Bot) -> None:
    # `extend 2 hours 30` (or `an hour 30`) was refused as no duration where `2h 30` is 150
    # minutes.
    bot.command(f"start atlas <@{PRESENTER}|maria> step 2 hours 30")
    running = select(ProtocolSession).where(ProtocolSession.status == "running")
    with bot.db.session() as s:
        assert s.scalars(running).one().step_seconds == 150 * 60
    with bot.db.session() as s:
        before = s.scalars(running).one().step_closes_at
    assert "Extended" in message_text(bot.command("extend an hour 30"))
    with bot.db.session() as s:
        after = s.scalars(running).one().step_closes_at
    assert before is not None and after is not None
    assert after - before == timedelta(minutes=90)
    answer = message_text(bot.command("extend 1 hour 5"))
    assert "`1 hour 5` is not a duration" in answer, answer


def test_a_length_with_its_number_written_out(bot: Bot) -> None:
    # `extend ten minutes` was "`ten` is not a duration" (and `two hours`, `step two days`),
    # where `one hour` was read.
    bot.command(f"start atlas <@{PRESENTER}|maria> step two days")
    running = select(ProtocolSession).where(ProtocolSession.status == "running")
    with bot.db.session() as s:
        step = s.scalars(running).one()
        assert (step.step_seconds, step.step_days) == (2 * 86400, 2)
    for typed, minutes in (("extend ten minutes", 10), ("extend two and a half hours", 150)):
        with bot.db.session() as s:
            before = s.scalars(running).one().step_closes_at
        assert "Extended" in message_text(bot.command(typed)), typed
        with bot.db.session() as s:
            after = s.scalars(running).one().step_closes_at
        assert before is not None and after is not None
        assert after - before == timedelta(minutes=minutes), typed
    # A number alone is no length, written out or not.
    assert "`ten` is not a duration" in message_text(bot.command("extend ten"))


def test_an_hour_spaced_as_french_typography_spaces_it(before_spring_forward: Bot) -> None:
    # `at 15 h` and `at 15 h 30`, as French typography spaces them, were "`15` is not a time".
    bot = before_spring_forward
    for typed, shown in (
        ("at 16 h", "Sat 13 Mar 2027 16:00 PST"),
        ("at tue 15 h 30", "Tue 16 Mar 2027 15:30 PDT"),
    ):
        answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> {typed} step 1h"))
        assert shown in answer, (typed, answer)


def test_a_duration_refused_is_quoted_as_typed(bot: Bot) -> None:
    # `extend 2 and a half` (no unit) was "`2.5` is not a duration": words nobody typed.
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    answer = message_text(bot.command("extend 2 and a half"))
    assert "`2 and a half` is not a duration" in answer, answer
    answer = message_text(bot.command("extend 2 and a half weeks"))
    assert "`2 and a half weeks` is longer than" in answer, answer
    answer = message_text(bot.command(f"start tuning <@{PRESENTER}|maria> in 3 and a half"))
    assert "`3 and a half` is not a duration" in answer, answer


@pytest.mark.parametrize(
    ("typed", "asked"),
    [
        ("at mar 16 at 3", "`mar 16 3`: 3:00 am or 3:00 pm? Write `3:00am`, or `3:00pm` (`15:00`)"),
        ("at tue 9", "`tue 9`: 9:00 am or 9:00 pm? Write `9:00am`, or `9:00pm` (`21:00`)"),
        ("at tomorrow 12", "12:00 am or 12:00 pm? Write `12:00am`, or `12:00pm` (`12:00`)"),
    ],
)
def test_an_hour_alone_after_a_date_is_asked_about_as_330_is(
    before_spring_forward: Bot, typed: str, asked: str
) -> None:
    # `at dec 10 at 3` was "not a time I can read", where `at 330` asks am or pm.
    bot = before_spring_forward
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> {typed}"))
    assert asked in answer and "not a time I can read" not in answer, answer
    assert _starts(bot) == []
    # One past 12 is still no time, with a day or without.
    for vague in ("at 15", "at tue 15"):
        answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> {vague}"))
        assert "is not a time I can read" in answer, (vague, answer)


def test_an_hour_alone_is_asked_about_as_330_is(before_spring_forward: Bot) -> None:
    # `at 3` was "not a time I can read", where `at 330` asks am or pm, and `at dec 10 3` too.
    bot = before_spring_forward
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at 3"))
    assert "`3`: 3:00 am or 3:00 pm? Write `3:00am`, or `3:00pm` (`15:00`)" in answer, answer
    assert _starts(bot) == []


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("on 5 at 3pm", "`5` is a day with no month: write `on apr 5 at 3pm`, or `on the 5th"),
        ("at 20th @ 9:30 am", "write `on mar 20 at 9:30 am`, or `on the 20th at 9:30 am`"),
        ("at 3pm on 5", "`5` is a day with no month: write `on apr 5 at 3pm`, or `on the 5th"),
    ],
)
def test_a_day_of_the_month_without_its_month_is_shown_how_to_write_the_date(
    before_spring_forward: Bot, typed: str, said: str
) -> None:
    # `on 5 at 3pm` was "`5` is not a time I can read", as if the 5 were the time.
    bot = before_spring_forward
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> {typed}"))
    assert said in answer and "not a time I can read" not in answer, answer
    assert _starts(bot) == []


def test_a_number_without_its_unit_is_shown_only_the_units_within_the_limit(bot: Bot) -> None:
    # `extend 45` suggested `45d`, three times the 14 days a step may be extended by.
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    for typed, said in (
        ("extend 45", "`45m` for minutes, `45h` for hours."),
        ("extend 400", "`400m` for minutes. For example"),  # 400 h is over 16 days
        ("extend 14", "`14m` for minutes, `14h` for hours, `14d` for days."),
    ):
        answer = message_text(bot.command(typed))
        assert f"`{typed[7:]}` needs a unit: {said}" in answer, answer
    answer = message_text(bot.command(f"start tuning <@{PRESENTER}|maria> in 120"))
    assert "`120m` for minutes, `120h` for hours." in answer, answer  # 120 days is over 90


@pytest.mark.parametrize(
    ("typed", "written"),
    [
        ("remind everyone 2 days before", "2 days before"),
        ("remind all of us the day before", "the day before"),
        ("remind the team", "1d"),
    ],
)
def test_a_reminder_asked_for_everyone_says_only_the_presenter_gets_it(
    before_spring_forward: Bot, typed: str, written: str
) -> None:
    # `remind everyone 2 days before` was "`everyone 2 days` is not a duration".
    bot = before_spring_forward
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at tue 3pm {typed}"))
    assert "reminds the presenter alone" in answer, answer
    assert f"write `remind {written}`" in answer and "not a duration" not in answer, answer
    assert _starts(bot) == []


def test_status_names_a_scheduled_start_where_dates_are_not_shown_as_the_start_reply_does(
    before_spring_forward: Bot,
) -> None:
    # The scheduled list's fallback (where Slack cannot show a date token) was `2027-03-20 22:00
    # UTC`, where the answer to the start names the time in the caller's zone.
    bot = before_spring_forward
    started = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at mar 20 3pm"))
    (stamp,) = _starts(bot)
    fallback = re.search(rf"<!date\^{int(stamp.timestamp())}\^[^|]*\|([^>]*)>", started)
    assert fallback is not None and fallback[1] == "Sat 20 Mar 2027 15:00 PDT", started
    status = message_text(bot.command("status"))
    assert f"|{fallback[1]}>" in status and "UTC" not in status, status


def test_a_reminder_before_the_session_is_read_as_before(before_spring_forward: Bot) -> None:
    # `remind 2 days before the session` was "I don't know what to do with `the session`".
    bot = before_spring_forward
    for n, (typed, seconds) in enumerate(
        (("remind 2 days before the session", 2 * 86400), ("remind me a day before it", 86400)),
        start=1,
    ):
        answer = message_text(bot.command(f"start atlas <@{PRESENTER}|maria> at fri 3pm {typed}"))
        assert "is scheduled for" in answer, (typed, answer)
        with bot.db.session() as s:
            session = s.scalars(select(ProtocolSession).order_by(ProtocolSession.id)).all()[-1]
            assert session.remind_seconds == seconds, typed
        bot.command(f"cancel {n}")


def test_extend_until_a_day_of_the_month_without_its_month_is_shown_the_date(
    before_spring_forward: Bot,
) -> None:
    # `extend until 20 at 3pm` was "`20` is not a time I can read", `until 3pm on 20` "I don't
    # know what to do with `20`".
    bot = before_spring_forward
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    said = "`20` is a day with no month: write `until mar 20 at 3pm`, or `until the 20th at 3pm`"
    for typed in ("extend until 20 at 3pm", "extend until 3pm on 20"):
        answer = message_text(bot.command(typed))
        assert said in answer, (typed, answer)


def test_status_names_the_steps_close_where_dates_are_not_shown_in_the_callers_zone(
    before_spring_forward: Bot,
) -> None:
    # The open step's close, in the same answer, fell back to `2027-03-14 00:00 UTC`.
    bot = before_spring_forward
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    status = message_text(bot.command("status"))
    assert "|Sat 13 Mar 2027 16:00 PST>" in status and "UTC" not in status, status


def test_refusals_naming_a_scheduled_start_name_it_as_the_start_reply_does(
    before_spring_forward: Bot,
) -> None:
    # `next` with none running, and `cancel` with two scheduled, named the start, where Slack
    # cannot show a date token, as `2027-03-20 22:00 UTC`.
    bot = before_spring_forward
    bot.command(f"start atlas <@{PRESENTER}|maria> at mar 20 3pm")
    bot.command(f"start tuning <@{PRESENTER}|maria> at mar 22 3pm")
    for typed in ("next", "cancel"):
        answer = message_text(bot.command(typed))
        assert "|Sat 20 Mar 2027 15:00 PDT>" in answer and "UTC" not in answer, (typed, answer)


def test_cancel_given_a_day_says_where_the_session_numbers_are(before_spring_forward: Bot) -> None:
    # `cancel mar 20` was "`mar` is not a session number: use a whole number such as 2", with
    # no word of where the number is.
    bot = before_spring_forward
    bot.command(f"start atlas <@{PRESENTER}|maria> at mar 20 3pm")
    answer = message_text(bot.command("cancel mar 20"))
    assert "`mar 20` is not a session number: `/protocol status` lists" in answer, answer
    assert "#1" in message_text(bot.command("status")) and len(_starts(bot)) == 1
