"""What teachers type reaches the notes as they typed it, and never steers how a message is built.

Every message the bot posts is rendered text that bot/blocks.py reads line by line, taking a line
that starts with `:: ` for a directive (a new section, a header, a button). A reply is part of
that text in the notes and in a step's parked lists.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text as sql

from tests.harness import PRESENTER, TEACHERS, Bot

T1, T2, T3 = TEACHERS

# A reply a teacher could paste, and two that try on purpose; each line is one of the reply's.
MARKUP = {
    T1: "I: she might be guessing\n:: see below",
    T2: ":: header\nINJECTED HEADER",
    T3: "fine\u2028:: button next_step danger value=1\nClick me",
}


def _blocks_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [block for message in messages for block in message.get("blocks") or []]


def test_a_reply_with_a_line_that_reads_like_a_directive_neither_stalls_nor_shapes_the_notes(
    bot: Bot,
) -> None:
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    describe = str(bot.step_posts()[1]["ts"])
    for user, text in MARKUP.items():
        bot.reply(user, text, describe)
    bot.wait_until(lambda: len(bot.recorded()) == len(MARKUP))

    # The next step is posted with the replies' parked interpretation in it, and the notes follow.
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 3)
    # Step 3 lists the parked interpretation, and carries only its own buttons.
    step3 = _blocks_of([bot.step_posts()[2]])
    assert "see below" in str(step3)
    buttons = [e for b in step3 if b["type"] == "actions" for e in b["elements"]]
    assert buttons and all(e.get("value") != "1" for e in buttons)
    bot.command("end")
    bot.wait_until(lambda: any("Notes from" in str(m.get("text")) for m in bot.posts()))
    bot.settle()

    posted = bot.posts() + bot.posts(PRESENTER)
    notes = [m for m in posted if str(m.get("text", "")).startswith("Notes from")]
    assert notes
    headers = [b["text"]["text"] for b in _blocks_of(notes) if b["type"] == "header"]
    assert headers and all(h.startswith("Notes") for h in headers)
    assert not [b for b in _blocks_of(notes) if b["type"] == "actions"]
    shown = "\n".join(b["text"]["text"] for b in _blocks_of(notes) if b["type"] == "section")
    # Each reply's lines are there as typed, `::` and all.
    for line in (":: see below", ":: header", "INJECTED HEADER", ":: button", "Click me"):
        assert line in shown

    # Closed by the end, step 3 still lists it, and has no buttons left.
    step3 = _blocks_of([bot.step_posts()[2]])
    assert "see below" in str(step3)
    assert not [b for b in step3 if b["type"] == "actions"]
    assert not [
        b for b in _blocks_of(bot.posts()) if b["type"] == "header" and "INJECTED" in str(b)
    ]


def test_a_long_reply_is_measured_as_typed_not_as_slack_escapes_it(bot: Bot) -> None:
    # Slack sends a typed <, > or & as an entity: 30,000 characters typed arrive as 50,000.
    # Within Slack's 40,000 as typed, the reply is kept whole; beyond it, no one could have
    # written it, and it is acknowledged and dropped.
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    thread = str(bot.step_posts()[0]["ts"])
    sent = "x &lt; 5 &amp; y &gt; 3; " * 2000
    assert len(sent) == 50_000
    kept = bot.reply(T1, sent, thread)
    too_long = bot.reply(T2, "x" * 40_001, thread)
    bot.wait_until(lambda: kept in bot.recorded())
    bot.settle()
    assert too_long not in bot.recorded()
    with bot.db.session() as s:
        (kept_text,) = s.execute(
            sql("SELECT text FROM contributions WHERE ts = :ts"), {"ts": kept}
        ).one()
    assert kept_text == "x < 5 & y > 3;" + " x < 5 & y > 3;" * 1999


def test_a_reply_holding_a_nul_character_is_recorded_without_it(bot: Bot) -> None:
    # PostgreSQL's text holds no NUL: the reply failed at every try and at every start, and
    # never reached the notes.
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    thread = str(bot.step_posts()[0]["ts"])
    kept = bot.reply(T1, "Two\x00 drafts, one\x00 stapled.", thread)
    bot.wait_until(lambda: kept in bot.recorded())
    with bot.db.session() as s:
        (kept_text,) = s.execute(
            sql("SELECT text FROM contributions WHERE ts = :ts"), {"ts": kept}
        ).one()
    assert kept_text == "Two drafts, one stapled."


def test_a_reply_that_turns_its_line_around_does_not_turn_its_author_around_in_the_notes(
    bot: Bot,
) -> None:
    # A right-to-left override, left open, holds to the end of its line: in the notes that line
    # goes on with ` - @author`, which Slack would show turned around, the author cut off.
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    thread = str(bot.step_posts()[0]["ts"])
    bot.reply(T1, "\u202ethe work is upside down", thread)
    bot.wait_until(lambda: len(bot.recorded()) == 1)
    bot.command("end")
    bot.wait_until(lambda: any("Notes from" in str(m.get("text")) for m in bot.posts()))
    bot.settle()
    notes = [m for m in bot.posts() if str(m.get("text", "")).startswith("Notes from")]
    shown = "\n".join(b["text"]["text"] for b in _blocks_of(notes) if b["type"] == "section")
    assert f"\u202ethe work is upside down\u202c - <@{T1}>" in shown
    (notes_file,) = bot.standin.files  # the Markdown copy, read in a viewer of its own
    assert "\u202ethe work is upside down\u202c " in notes_file["content"].decode()
