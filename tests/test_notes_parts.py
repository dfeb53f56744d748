"""The notes of a big session, as the team gets them: every reply once, in order, each part a
message Slack shows as written (over signed HTTP, against the stand-in Slack)."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.export import export
from bot.store.models import Contribution, ProtocolSession
from tests.harness import CHANNEL, PRESENTER, TEACHERS, Bot


def _sections(messages: list[dict[str, Any]]) -> list[str]:
    return [b["text"]["text"] for m in messages for b in m["blocks"] if b["type"] == "section"]


def _notes_parts(bot: Bot, header_ts: str) -> list[dict[str, Any]]:
    return [m for m in bot.posts() if m.get("thread_ts") == header_ts]


def test_replies_with_code_blocks_stay_whole_across_the_notes_parts(bot: Bot) -> None:
    step = bot.open_step()
    header_ts = str(bot.posts()[0]["ts"])
    code = "\n".join(f"    total = total + row[{k}]  # running sum of the column" for k in range(8))
    replies = [f"Reply {n:02d} has this:\n```\n{code}\n```\nand a line after" for n in range(40)]
    for n, text in enumerate(replies):
        bot.reply(TEACHERS[n % 3], text, step, ts=f"{1700000000 + n}.000100")
    bot.settle()
    bot.command("end")
    bot.settle()

    for parts in (_notes_parts(bot, header_ts), bot.standin.messages(f"D{PRESENTER[1:]}")):
        sections = _sections(parts)
        assert len(sections) > 2, "long enough to be split"
        for section in sections:
            # A block cut inside a code block shows its ``` as text, and turns the next block,
            # bullets and mentions included, into code.
            assert section.count("```") % 2 == 0, section[-200:]
        body = "\n".join(sections)
        shown = [n for n in range(40) for _ in range(body.count(f"Reply {n:02d} has this"))]
        assert shown == list(range(40)), "each reply once, in order"
        assert body.count(code) == 40


def test_notes_too_long_for_one_answer_reach_the_asker_whole(bot: Bot) -> None:
    step = bot.open_step()
    words = "the student wrote the equation again beside the table " * 7
    for n in range(400):
        bot.reply(TEACHERS[n % 3], f"Reply {n:03d}: {words}", step, ts=f"{1700000000 + n}.000100")
    bot.settle(30)
    asker = TEACHERS[2]
    answer = bot.command("notes", user=asker)
    # One answer holds at most 50 blocks: such notes come whole by DM, in parts (about one a
    # second, Slack's pace).
    assert "direct message" in answer["text"]
    count = int(re.search(r"in (\d+) parts", answer["text"]).group(1))  # type: ignore[union-attr]
    dm = f"D{asker[1:]}"
    bot.wait_until(lambda: len(bot.standin.messages(dm)) >= count, timeout=60)
    parts = bot.standin.messages(dm)
    body = "\n".join(_sections([answer, *parts]))
    shown = [n for n in range(400) for _ in range(body.count(f"Reply {n:03d}: "))]
    assert shown == list(range(400)), "each reply once, in order"


def test_notes_of_a_few_long_replies_reach_the_asker_whole(bot: Bot) -> None:
    # Ten reflections of 1,500 characters: few blocks, but more words than one message holds.
    step = bot.open_step()
    words = "I noticed the student kept the units in every line of the table, " * 23
    for n in range(10):
        bot.reply(TEACHERS[n % 3], f"Reply {n}: {words}", step, ts=f"{1700000000 + n}.000100")
    bot.settle()
    asker = TEACHERS[2]
    answer = bot.command("notes", user=asker)
    (said,) = bot.standin.calls_to("response_url")
    assert said.status == 200, said.response  # Slack took the answer
    dm = f"D{asker[1:]}"
    bot.settle()
    body = "\n".join(_sections([answer, *bot.standin.messages(dm)]))
    shown = [n for n in range(10) for _ in range(body.count(f"Reply {n}: "))]
    assert shown == list(range(10)), "each reply once, in order"


def test_notes_and_forget_take_the_session_that_ran_last_not_the_newest_number(bot: Bot) -> None:
    # Session #1 is booked ahead; #2 runs and ends before #1 starts.
    booked = bot.command(f"start atlas <@{PRESENTER}|maria> in 4s step 1h")
    assert "session #1" in booked["text"], booked
    quick = bot.command(f"start dese-everyday <@{PRESENTER}|maria> step 1h")
    assert "starting" in quick["text"].lower(), quick
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.runtime.sender.drain(5)
    bot.reply(TEACHERS[0], "Most students restated the goal.", bot.step_posts()[0]["ts"])
    bot.settle()
    bot.command("end")
    # Then #1 starts on time, and is the channel's current session.
    bot.wait_until(lambda: any(p["text"].startswith("Step 1 of 6") for p in bot.step_posts()))
    bot.runtime.sender.drain(5)
    atlas = next(p for p in bot.step_posts() if p["text"].startswith("Step 1 of 6"))
    bot.reply(TEACHERS[1], "The presenter brought two drafts.", atlas["ts"])
    bot.settle()
    assert "The presenter brought two drafts." in str(bot.command("notes")["blocks"])
    bot.command("end")
    bot.settle()
    # The session that ran last is the one `notes` shows and `forget` deletes.
    assert "ATLAS" in bot.command("notes")["text"]
    assert "from session #1" in bot.command("forget")["text"]
    with bot.db.session() as s:
        kept = [t for t in s.scalars(select(Contribution.text)) if t]
    assert kept == ["Most students restated the goal."]


def _ended_with_a_reply_on_its_way(bot: Bot) -> tuple[str, str, str]:
    """A session ended just after a reply was written (its ts), that Slack delivers later:
    the step's ts, the header's, and the reply's."""
    step = bot.open_step()
    header_ts = str(bot.posts()[0]["ts"])
    written = f"{time.time():.6f}"  # in the last moments of the session
    bot.wait_until(lambda: time.time() > float(written) + 0.01)
    bot.command("end")
    bot.settle()
    return step, header_ts, written


def test_a_reply_written_before_the_end_but_handled_after_it_is_added_to_the_notes(
    bot: Bot,
) -> None:
    step, header_ts, written = _ended_with_a_reply_on_its_way(bot)
    # Slack delivers it late (a retry), and then once more.
    for _ in range(2):
        bot.reply(TEACHERS[0], "Last thought: ask them &amp; listen", step, ts=written)
        bot.settle()
    # A reply written after the end is not the session's, and says nothing.
    bot.reply(TEACHERS[1], "Thanks all.", step)
    bot.settle()

    def told(messages: list[dict[str, Any]]) -> list[str]:
        return [s for s in _sections(messages) if "Last thought" in s]

    assert told(_notes_parts(bot, header_ts)) == [
        f"*Notes*\n• Last thought: ask them &amp; listen - <@{TEACHERS[0]}>"
    ]
    assert len(told(bot.standin.messages(f"D{PRESENTER[1:]}"))) == 1
    assert "Thanks all." not in str(bot.posts())


def test_replies_that_reach_the_bot_late_together_go_out_together(bot: Bot) -> None:
    # Slack's retries after an outage bring many replies written before the end at once: each
    # was posted on its own, as "One more reply", in the header's thread and to the presenter.
    step, header_ts, written = _ended_with_a_reply_on_its_way(bot)
    late = [f"{float(written) - n / 1000:.6f}" for n in range(6)]
    for n, ts in enumerate(late):
        bot.reply(TEACHERS[n % 3], f"Late thought {n}.", step, ts=ts)
    bot.settle()
    words = [m for m in bot.posts() if "more repl" in str(m.get("text"))]
    assert 1 <= len(words) < len(late), [m["text"] for m in words]
    shown = " ".join(_sections(words))
    assert all(shown.count(f"Late thought {n}.") == 1 for n in range(len(late)))
    copies = [m for m in bot.standin.messages(f"D{PRESENTER[1:]}") if "more repl" in m["text"]]
    assert len(copies) == len(words)


def test_late_replies_that_go_out_together_list_their_tags_in_the_notes_order(
    bot: Bot,
) -> None:
    # They were grouped by tag alphabetically: Interpretations above Observations, the other
    # way round from the notes they follow.
    step, header_ts, written = _ended_with_a_reply_on_its_way(bot)
    said = ["I: They think the scale is fixed.", "O: Two columns are blank."] * 3
    for n, text in enumerate(said):
        bot.reply(TEACHERS[n % 3], text, step, ts=f"{float(written) - n / 1000:.6f}")
    bot.settle()
    words = ["\n".join(_sections([m])) for m in bot.posts() if "more repl" in str(m.get("text"))]
    both = [w for w in words if "*Observations*" in w and "*Interpretations*" in w]
    assert both, words
    assert all(w.index("*Observations*") < w.index("*Interpretations*") for w in both)


def test_a_long_reply_handled_after_the_end_reaches_the_notes_whole(bot: Bot) -> None:
    step, header_ts, written = _ended_with_a_reply_on_its_way(bot)
    # A long reflection (Slack takes 40,000 characters), delivered late by Slack.
    long = " ".join(f"Line {n:03d} of what I saw in the table." for n in range(500))
    bot.reply(TEACHERS[0], long, step, ts=written)
    bot.settle()
    for parts in (_notes_parts(bot, header_ts), bot.standin.messages(f"D{PRESENTER[1:]}")):
        body = " ".join(_sections(parts))
        assert all(f"Line {n:03d} " in body for n in range(500))


def test_a_reply_acknowledged_just_before_the_end_is_in_the_notes(bot: Bot) -> None:
    # `end` typed a moment after a reply (Slack had its ack): the notes went out without it,
    # and it followed them as "one more reply".
    step = bot.open_step()
    for n in range(5):
        bot.reply(TEACHERS[n % 3], f"Reply {n}, just in time.", step)
    bot.command("end")
    bot.settle()
    (notes,) = [m for m in bot.posts() if str(m.get("text")).startswith("Notes from")]
    shown = json.dumps(notes)
    assert all(f"Reply {n}, just in time." in shown for n in range(5))
    assert not [m for m in bot.posts() if "One more" in str(m.get("text"))]


def test_a_teachers_reflection_handled_after_the_end_is_not_titled_the_presenters(
    bot: Bot,
) -> None:
    # ATLAS step 5 asks everyone to reflect: the notes title such a section "Reflections", and
    # the word of a late one said "Presenter reflection" above a teacher's words.
    bot.open_step()
    header_ts = str(bot.posts()[0]["ts"])
    for k in range(2, 6):
        bot.command("next")
        bot.wait_until(lambda k=k: len(bot.step_posts()) == k)  # type: ignore[misc]
    bot.runtime.sender.drain(5)
    step = str(bot.step_posts()[4]["ts"])
    written = f"{time.time():.6f}"
    bot.wait_until(lambda: time.time() > float(written) + 0.01)
    bot.command("end")
    bot.settle()
    bot.reply(TEACHERS[0], "I will look at the drawings first next time.", step, ts=written)
    bot.settle()
    (word,) = [m for m in _notes_parts(bot, header_ts) if "more repl" in str(m.get("text"))]
    assert "*Reflections*\n• I will look at the drawings first" in "\n".join(_sections([word]))


def test_notes_asked_for_while_the_session_runs_say_they_are_the_notes_so_far(bot: Bot) -> None:
    # They read as the session's notes, with the open step "in 1 h" (its planned length) when
    # it had been open for seconds.
    step = bot.open_step()
    bot.reply(TEACHERS[0], "The student wrote two drafts.", step)
    bot.settle()
    running = bot.command("notes")
    said = json.dumps(running["blocks"])
    assert "These are the notes so far: the session is on step 1 of 6" in said
    assert "1 reply from 1 person so far, still open" in said and " in 1 h" not in said
    assert "| 1 | 1 | still open |" in export(bot.settings, "latest", "md")
    bot.command("pause")
    assert "step 1 of 6 (paused)" in json.dumps(bot.command("notes")["blocks"])
    bot.command("end")
    bot.settle()
    ended = json.dumps(bot.command("notes")["blocks"])
    assert "notes so far" not in ended and "still open" not in ended
    assert "1 reply from 1 person in " in ended


def test_each_part_of_long_notes_says_which_section_it_goes_on_with(bot: Bot) -> None:
    # A part after the first began with a bullet: read on its own (a notification, a part
    # scrolled to), nobody could tell Observations from Interpretations.
    bot.open_step()
    header_ts = str(bot.posts()[0]["ts"])
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    describing = str(bot.step_posts()[1]["ts"])
    words = "the student wrote the equation again beside the table " * 7
    for n in range(90):
        bot.reply(TEACHERS[n % 3], f"Reply {n:03d}: {words}", describing)
    bot.settle(30)
    bot.command("end")
    bot.settle(30)
    for parts in (_notes_parts(bot, header_ts), bot.standin.messages(f"D{PRESENTER[1:]}")):
        parts = [m for m in parts if m.get("blocks")][-3:]
        assert len(parts) == 3, "long enough to be split"
        for part in parts[1:]:
            first = part["blocks"][0]["text"]["text"]
            assert first.startswith("*Observations* _(continued)_"), first[:100]
            assert part["text"].startswith("Observations (continued)"), part["text"][:100]


def test_the_notes_file_is_dated_the_day_the_team_met_where_they_are(bot: Bot) -> None:
    # A team in a zone whose day is not UTC's at this hour (far east of it, or far west): the
    # notes file was named and titled with UTC's date, the day before or after their meeting.
    now = datetime.now(UTC)
    tz = "Pacific/Kiritimati" if now.hour >= 10 else "Pacific/Pago_Pago"  # UTC+14, UTC-11
    bot.standin.add_user("U_FAR", "far", tz=tz)
    bot.standin.add_member(CHANNEL, "U_FAR")
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1d", user="U_FAR")
    bot.wait_until(lambda: bool(bot.step_posts()))
    bot.command("end", user="U_FAR")
    bot.wait_until(lambda: len(bot.standin.files) == 1)
    day = datetime.now(ZoneInfo(tz)).date()
    assert day != datetime.now(UTC).date()
    upload = bot.standin.files[0]
    assert upload["name"] == f"notes-atlas-{day:%Y-%m-%d}-1.md"
    assert upload["title"] == f"Notes from ATLAS - Learning from Student Work, {day:%Y-%m-%d}"


def test_a_session_of_short_steps_is_in_the_zone_of_whoever_started_it(bot: Bot) -> None:
    # Started with `step 1h`, or with the protocol's own minutes, a session was kept in UTC
    # (only a start with `at`, `in`, `weekdays` or steps of hours asked Slack the caller's
    # zone): its notes file was dated UTC's day, not the day the team met where they are.
    now = datetime.now(UTC)
    tz = "Pacific/Kiritimati" if now.hour >= 10 else "Pacific/Pago_Pago"  # UTC+14, UTC-11
    bot.standin.add_user("U_FAR", "far", tz=tz)
    bot.standin.add_member(CHANNEL, "U_FAR")
    for n, typed in enumerate(("step 1h", ""), start=1):
        bot.command(f"start atlas <@{PRESENTER}|maria> {typed}", user="U_FAR")
        bot.wait_until(lambda n=n: len(bot.step_posts()) == n)  # type: ignore[misc]
        bot.command("end", user="U_FAR")
        bot.wait_until(lambda n=n: len(bot.standin.files) == n)  # type: ignore[misc]
    day = datetime.now(ZoneInfo(tz)).date()
    assert day != datetime.now(UTC).date()
    names = [upload["name"] for upload in bot.standin.files]
    assert names == [f"notes-atlas-{day:%Y-%m-%d}-1.md", f"notes-atlas-{day:%Y-%m-%d}-2.md"]
    with bot.db.session() as s:
        assert list(s.scalars(select(ProtocolSession.tz))) == [tz, tz]
