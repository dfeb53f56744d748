"""What the bot says, read as a teacher reads it, over signed HTTP against the stand-in Slack."""

from __future__ import annotations

import json

from tests.harness import PRESENTER, TEACHERS, Bot


def _notes(bot: Bot) -> dict[str, object]:
    bot.wait_until(
        lambda: any(str(m.get("text", "")).startswith("Notes from") for m in bot.posts())
    )
    return next(m for m in bot.posts() if str(m.get("text", "")).startswith("Notes from"))


def test_notes_count_one_reply_in_the_singular_and_skip_counts_a_protocol_never_asks_for(
    bot: Bot,
) -> None:
    bot.command(f"start tuning <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: bool(bot.step_posts()))
    bot.reply(PRESENTER, "Grade 7: compare 3/4 and 5/8 with a drawing.", bot.step_posts()[0]["ts"])
    bot.wait_until(lambda: len(bot.recorded()) == 1)
    bot.command("end")

    notes = _notes(bot)
    assert notes["text"] == "Notes from Tuning Protocol: 1 contribution from 1 person."
    body = json.dumps(notes["blocks"])
    assert "1 contribution from 1 person." in body
    # Tuning has no describing step: "0 observations and 0 interpretations" says nothing.
    assert "observations" not in body and "interpretations" not in body
    assert "Presentation: 1 reply from 1 person in" in body
    assert "Clarifying Questions: 0 replies from 0 people in" not in body  # never opened
    bot.wait_until(lambda: len(bot.standin.files) == 1)
    assert "- Contributions: 1 from 1 person\n" in bot.standin.files[0]["content"].decode()


def test_notes_of_a_describing_protocol_count_observations_and_interpretations(bot: Bot) -> None:
    t1, t2, _t3 = TEACHERS
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: bool(bot.step_posts()))
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    describe = bot.step_posts()[1]["ts"]
    bot.reply(t1, "Two circles, one cut in 4 parts and one in 8.", describe)
    bot.reply(t2, "I: she compares the numerators only.", describe)
    bot.reply(t1, "The answer line says 5/8.", describe)
    bot.wait_until(lambda: len(bot.recorded()) == 3)
    bot.command("end")

    body = json.dumps(_notes(bot)["blocks"])
    assert "2 observations and 1 interpretation." in body
    assert "Describing the Student Work: 3 replies from 2 people in" in body


def _closing_line(post: dict[str, object]) -> str:
    """The step message's last lines of text: who speaks, how replies are tagged (one line),
    when it closes (the next)."""
    context = [b for b in post["blocks"] if b["type"] == "context"]  # type: ignore[union-attr]
    return "\n".join(str(block["elements"][0]["text"]) for block in context[-2:])


def test_a_step_offers_only_the_prefixes_that_tag_a_reply_otherwise(bot: Bot) -> None:
    bot.command(f"start tuning <@{PRESENTER}|maria> step 1h")
    for opened in (2, 3, 4):
        bot.wait_until(lambda opened=opened: len(bot.step_posts()) == opened - 1)
        bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 4)
    clarifying, feedback = bot.step_posts()[1], bot.step_posts()[3]

    # A clarifying question is a question: no `Q:` to "tag it otherwise", and no invitation
    # to give warm or cool feedback in the step that keeps opinions for later.
    line = _closing_line(clarifying)
    assert "each reply is recorded as a question.\n*Closed " in line
    assert "Cool:" not in line and "Warm:" not in line and "Q:" not in line
    line = _closing_line(feedback)
    assert "recorded as warm feedback; start with `Cool:` for cool feedback or `Q:` for a" in line
    assert "`Warm:`" not in line


def _norms(bot: Bot) -> str:
    bot.wait_until(lambda: bool(bot.posts()))
    header = json.dumps(bot.posts()[0]["blocks"])
    return header.split("*Norms:*", 1)[1]


def test_the_header_states_only_the_norms_the_protocol_has(bot: Bot) -> None:
    # The DESE tool has no describing step and no step where the presenter listens.
    bot.command(f"start dese-everyday <@{PRESENTER}|maria> step 1h")
    norms = _norms(bot)
    assert "reply in its thread. Steps close on time" in norms
    assert "only the presenter speaks" not in norms  # the DESE tool has no such step
    assert "Describe before you interpret" not in norms and "listens" not in norms


def test_the_atlas_header_keeps_describe_first_and_the_listening_presenter(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    norms = _norms(bot)
    assert "Describe before you interpret. When a step says the presenter listens" in norms


def test_the_plan_and_the_preview_mark_the_steps_where_only_the_presenter_speaks(
    bot: Bot,
) -> None:
    # Only the steps where the presenter listened were marked: nothing told the team to read
    # along in the Tuning Protocol's Presentation.
    preview = json.dumps(bot.command("preview tuning"))
    assert "Presentation* (15 min, only the presenter speaks)" in preview
    assert "Clarifying Questions* (5 min)" in preview
    bot.command(f"start tuning <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: bool(bot.posts()))
    plan = json.dumps(bot.posts()[0]["blocks"])
    assert "1. Presentation _(only the presenter speaks)_" in plan
    assert "When a step says only the presenter speaks, everyone else reads along." in plan
    assert "4. Warm and Cool Feedback _(presenter listens)_" in plan


def test_a_step_with_many_long_parked_interpretations_keeps_its_buttons(bot: Bot) -> None:
    # Slack takes 50 blocks: 60 long parked interpretations ran the step message past them,
    # and the cut took the closing time and the facilitator's Next step, Extend and Pause.
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: bool(bot.step_posts()))
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    describe = bot.step_posts()[1]["ts"]
    long = "she may be reading the fractions as two whole numbers; " * 47
    for n in range(60):
        # Each written now: a reply dated before its step's message would be read as one that
        # can't be in that thread while the bot is still to learn the message's ts.
        bot.reply(TEACHERS[n % 3], f"I: {n} {long}", describe)
    bot.wait_until(lambda: len(bot.recorded()) == 60)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 3)

    blocks = bot.step_posts()[2]["blocks"]
    assert len(blocks) <= 50
    # chat.postMessage also refuses blocks past about 13,000 characters (msg_blocks_too_long),
    # which would hold the step back for good: the notes' parts keep to 11,000, and so does this.
    assert len(json.dumps(blocks)) <= 11_000, len(json.dumps(blocks))
    assert [e["action_id"] for e in blocks[-1]["elements"]] == [
        "step_next",
        "step_extend",
        "step_pause",
    ]
    assert "Closes" in json.dumps(blocks[-2])
    assert "...and 40 more. Every one is in the notes at the end." in json.dumps(blocks)
