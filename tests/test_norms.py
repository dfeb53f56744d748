"""The protocol's norms, over signed HTTP against the stand-in Slack: tags, re-tagging by reaction,
describe before you interpret, the presenter who listens, and the quest for context."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot.engine import notes as notes_mod
from bot.engine.presenter import next_presenter_step, opens_presenter_turn
from bot.engine.replies import TOLD_AFTER_THE_END, Replies
from bot.protocols import BUILTIN_DIR, TAGS, Protocol, load_library
from bot.slack_standin import SlackStandin
from bot.store.models import Contribution, InboxEvent, OutboxMessage, ProtocolSession
from tests.harness import CHANNEL, FACILITATOR, PRESENTER, TEACHERS, Bot
from tests.test_templates import HeldClock

T1, T2, T3 = TEACHERS
NUDGE_WORDS = "What do you see in the work that makes you say that?"
LIBRARY, _ = load_library([BUILTIN_DIR])


# -- helpers --------------------------------------------------------------------------------------
def _start_at_step(bot: Bot, step: int, protocol: str = "atlas") -> str:
    """Start a session (ATLAS unless told) that only moves when told, go to `step`, return its
    thread ts."""
    bot.command(f"start {protocol} <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    for k in range(2, step + 1):
        _next(bot, k)
    return str(bot.step_posts()[step - 1]["ts"])


def _next(bot: Bot, expected: int) -> None:
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == expected)


def _say(bot: Bot, user: str, text: str, thread_ts: str) -> str:
    """A reply as a person writes it: in the stand-in's thread, and delivered as an event."""
    ts = str(bot.standin.add_message(CHANNEL, user, text, thread_ts=thread_ts)["ts"])
    bot.reply(user, text, thread_ts, ts=ts)
    return ts


def _react(
    bot: Bot, user: str, emoji: str, ts: str, channel: str = CHANNEL, removed: bool = False
) -> None:
    event = {
        "type": "reaction_removed" if removed else "reaction_added",
        "user": user,
        "reaction": emoji,
        "item_user": T1,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": "1.5",
    }
    assert bot.event(event) == 200


def _edit(
    bot: Bot, user: str, ts: str, thread_ts: str, text: str, before: str = "", **extra: Any
) -> None:
    """The author edits a reply: Slack's message_changed event, with the message as it is now
    and as it was `before`."""
    message = {"type": "message", "user": user, "ts": ts, "thread_ts": thread_ts, "text": text}
    event = {
        "type": "message",
        "subtype": "message_changed",
        "channel": CHANNEL,
        "message": {**message, **extra},
        "previous_message": {"ts": ts, "thread_ts": thread_ts, "user": user, "text": before},
        "ts": f"{float(ts) + 1:.6f}",
        "hidden": True,
    }
    assert bot.event(event) == 200


def _delete(bot: Bot, user: str, ts: str, thread_ts: str) -> None:
    """The author deletes a reply: Slack's message_deleted event."""
    event = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": CHANNEL,
        "deleted_ts": ts,
        "previous_message": {"ts": ts, "thread_ts": thread_ts, "user": user, "text": "gone"},
        "ts": f"{float(ts) + 1:.6f}",
        "hidden": True,
    }
    assert bot.event(event) == 200


def _settle(bot: Bot) -> None:
    """Wait until every stored event is handled (an error would leave it unhandled) and sent."""

    def settled() -> bool:
        with bot.db.inbox_session() as s:
            waiting = s.scalars(select(InboxEvent.id).where(InboxEvent.processed_at.is_(None)))
            if waiting.first() is not None:
                return False
        with bot.db.session() as s:
            pending = s.scalars(select(OutboxMessage.id).where(OutboxMessage.status == "pending"))
            return pending.first() is None

    bot.wait_until(settled)


def _row(bot: Bot, ts: str) -> Contribution | None:
    with bot.db.session() as s:
        row = s.scalars(select(Contribution).where(Contribution.ts == ts)).first()
        if row is not None:
            s.expunge(row)
        return row


def _recorded(bot: Bot, ts: str) -> Contribution:
    bot.wait_until(lambda: _row(bot, ts) is not None and bool(bot.standin.reactions(CHANNEL, ts)))
    row = _row(bot, ts)
    assert row is not None
    return row


def _ephemerals_to(bot: Bot, user: str) -> list[dict[str, Any]]:
    return [m for m in bot.standin.ephemerals(CHANNEL) if m["user"] == user]


def _buttons(message: dict[str, Any]) -> dict[str, str]:
    return {
        el["action_id"]: el["value"]
        for block in message["blocks"]
        if block["type"] == "actions"
        for el in block["elements"]
    }


def _responses(bot: Bot) -> list[dict[str, Any]]:
    return [c.params for c in bot.standin.calls_to("response_url")]


def _notes(bot: Bot) -> notes_mod.Notes:
    with bot.db.session() as s:
        session = s.scalars(select(ProtocolSession)).one()
        notes = notes_mod.build_notes(s, session, LIBRARY[session.protocol_id])
        s.expunge_all()
        return notes


def _section(notes: notes_mod.Notes, tag: str) -> list[str]:
    return [item.text for t, items in notes.sections if t == tag for item in items]


# -- tagging --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "tag", "kept"),
    [
        ("O: three crossed-out attempts", "observation", "three crossed-out attempts"),
        ("Obs: the graph has no labels", "observation", "the graph has no labels"),
        ("Observation: two drafts", "observation", "two drafts"),
        ("I: she is working on scale", "interpretation", "she is working on scale"),
        ("Interp: a guess and check", "interpretation", "a guess and check"),
        ("Interpretation: unsure of units", "interpretation", "unsure of units"),
        ("Warm: the diagram is labelled", "warm", "the diagram is labelled"),
        ("Cool: the table stops at row 4", "cool", "the table stops at row 4"),
        # as the Tuning Protocol names them, with a colon or a dash
        ("cool feedback: the table stops at row 4", "cool", "the table stops at row 4"),
        ("Warm feedback - the diagram is labelled", "warm", "the diagram is labelled"),
        # shortened with a full stop, as notes are written
        ("Obs. the graph has no labels", "observation", "the graph has no labels"),
        ("Interp.: a guess and check", "interpretation", "a guess and check"),
        # a plural heading a list, or a prefix on a line of its own over one
        ("*Interp*\n- a guess and check", "interpretation", "- a guess and check"),
        ("Interpretations:\n- a guess and check", "interpretation", "- a guess and check"),
        # in Spanish, with its accent or without
        (
            "Interpretación: está trabajando con fracciones",
            "interpretation",
            "está trabajando con fracciones",
        ),
        ("Observacion - dos colores de tinta", "observation", "dos colores de tinta"),
        ("Fría: la tabla termina en la fila 4", "cool", "la tabla termina en la fila 4"),
        # Emphasis that opens the words after the prefix is theirs: it lost its first marker.
        ("O: *two* rows are blank", "observation", "*two* rows are blank"),
        ("*I:* _maybe_ a guess", "interpretation", "_maybe_ a guess"),
        # after what a paste or a keyboard puts before it and nobody sees
        ("\u200bI: she is working on scale", "interpretation", "she is working on scale"),
        ("\ufeff\u200fWarm: the diagram is labelled", "warm", "the diagram is labelled"),
        # in full width, as a Chinese, Japanese or Korean input method types it
        ("\uff29\uff1a she is working on scale", "interpretation", "she is working on scale"),
        ("Cool\uff1a\u3000the table stops at row 4", "cool", "the table stops at row 4"),
        # as a list of one item, which Slack's composer sends with its bullet
        ("• I: she is working on scale", "interpretation", "she is working on scale"),
        # after the people it is addressed to, who stay in its words
        (
            "<@U_T2> I: she is working on scale",
            "interpretation",
            "@teacher2 she is working on scale",
        ),
        ("<@U_T2>, <@U_T3|lee> Cool: no units", "cool", "@teacher2, @lee no units"),
        # after emoji, which stay in its words
        (":snowflake: Cool: no units", "cool", ":snowflake: no units"),
        (
            "\U0001f914 I: she is working on scale",
            "interpretation",
            "\U0001f914 she is working on scale",
        ),
    ],
)
def test_an_explicit_prefix_sets_the_tag_and_leaves_the_notes(
    bot: Bot, text: str, tag: str, kept: str
) -> None:
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, text, thread)
    row = _recorded(bot, ts)
    assert (row.tag, row.text) == (tag, kept)
    assert bot.standin.reactions(CHANNEL, ts) == [
        {
            "observation": "eyes",
            "interpretation": "thought_balloon",
            "warm": "sunny",
            "cool": "snowflake",
        }[tag]
    ]
    _settle(bot)
    assert _ephemerals_to(bot, T1) == []  # a tagged reply is not nudged


def test_feedback_that_opens_with_the_emoji_of_its_kind_takes_that_kind(bot: Bot) -> None:
    # Tuning's feedback step collects warm feedback: cool feedback marked with the snowflake the
    # bot reacts with is cool, and keeps its emoji; a snowflake later in the words is theirs.
    # So is "Cool - ..." there, where elsewhere it is as often a sentence.
    thread = _start_at_step(bot, 4, "tuning")
    cool = _say(bot, T1, ":snowflake: the task has no exemplar", thread)
    typed = _say(bot, T2, "\u2744\ufe0f no time limit is given", thread)
    warm = _say(bot, T3, "the checklist has a :snowflake: beside each step", thread)
    dashed = _say(bot, FACILITATOR, "Cool - the task has no word limit", thread)
    assert (_recorded(bot, cool).tag, _recorded(bot, cool).text) == (
        "cool",
        ":snowflake: the task has no exemplar",
    )
    assert _recorded(bot, typed).tag == "cool"
    assert _recorded(bot, warm).tag == "warm"
    assert _recorded(bot, dashed).tag == "cool"  # there, a label
    assert bot.standin.reactions(CHANNEL, cool) == ["snowflake"]
    # Marked cool by an edit, as it would be sent so; and warm again once the mark is edited out.
    later = _say(bot, T3, "the task has no rubric", thread)
    cooled = ":snowflake: the task has no rubric"
    first = {"user": T3, "ts": f"{float(later) + 1:.6f}"}
    _edit(bot, T3, later, thread, cooled, "the task has no rubric", edited=first)
    bot.wait_until(lambda: _recorded(bot, later).tag == "cool")
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, later) == ["snowflake"])
    second = {"user": T3, "ts": f"{float(later) + 2:.6f}"}
    _edit(bot, T3, later, thread, "the task has a rubric", cooled, edited=second)
    bot.wait_until(lambda: _recorded(bot, later).text == "the task has a rubric")
    _settle(bot)
    assert _recorded(bot, later).tag == "warm"
    # In a step that takes no feedback, an emoji is only an emoji.
    _next(bot, 5)
    _next(bot, 6)
    debriefing = str(bot.step_posts()[5]["ts"])
    debrief = _say(bot, T1, ":snowflake: it felt slow in Slack", debriefing)
    said = _say(bot, T2, "Cool - I see what you mean", debriefing)
    assert _recorded(bot, debrief).tag == "debrief"
    assert _recorded(bot, said).tag == "debrief"


def test_facilitator_or_author_reaction_retags_and_nobody_else_does(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, "There are three crossed-out attempts at the top.", thread)
    assert _recorded(bot, ts).tag == "observation"
    assert bot.standin.reactions(CHANNEL, ts) == ["eyes"]

    # Another teacher's reaction, the bot's own, and emoji that are not tags change nothing.
    _react(bot, T2, "thought_balloon", ts)
    _react(bot, "U_BOT", "bulb", ts)
    _react(bot, FACILITATOR, "tada", ts)
    _react(bot, FACILITATOR, "eyes", ts)
    _settle(bot)
    assert _row(bot, ts).tag == "observation"  # type: ignore[union-attr]
    assert bot.standin.calls_to("reactions.remove") == []

    # The facilitator re-tags: the bot's mark moves from eyes to thought_balloon.
    _react(bot, FACILITATOR, "thought_balloon", ts)
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, ts) == ["thought_balloon"])
    assert _row(bot, ts).tag == "interpretation"  # type: ignore[union-attr]

    # The author may too, skin tone and all.
    _react(bot, T1, "grey_question::skin-tone-3", ts)
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, ts) == ["grey_question"])
    assert _row(bot, ts).tag == "question"  # type: ignore[union-attr]

    _next(bot, 3)
    _settle(bot)
    notes = _notes(bot)
    assert _section(notes, "question") == ["There are three crossed-out attempts at the top."]
    assert _section(notes, "observation") == []


@pytest.mark.parametrize("reactor", [T1, FACILITATOR], ids=["author", "facilitator"])
def test_a_retag_delivered_before_the_reply_itself_is_kept(bot: Bot, reactor: str) -> None:
    # The reply's first delivery failed (the bot was down a moment), or Slack did not keep its
    # events in order: the reaction of its author, or of the facilitator, that re-tags it came
    # before the reply's own event. The facilitator's was taken for a reaction to some other
    # message, and the reply kept the step's tag.
    thread = _start_at_step(bot, 2)
    text = "She may have run out of time before the last part."
    ts = str(bot.standin.add_message(CHANNEL, T1, text, thread_ts=thread)["ts"])
    _react(bot, reactor, "thought_balloon", ts)
    bot.settle()
    assert _row(bot, ts) is None
    bot.reply(T1, text, thread, ts=ts)
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, ts) == ["thought_balloon"])
    assert _row(bot, ts).tag == "interpretation"  # type: ignore[union-attr]
    _settle(bot)


def _unreact(bot: Bot, user: str, emoji: str, ts: str) -> None:
    _react(bot, user, emoji, ts, removed=True)


def test_taking_away_the_reaction_that_retagged_a_reply_gives_its_tag_back(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, "I: she rushed the last part", thread)
    assert _recorded(bot, ts).tag == "interpretation"
    _react(bot, FACILITATOR, "grey_question", ts)
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, ts) == ["grey_question"])

    # Someone else's, the bot's own (it moves its marks), or a tag the reply does not have:
    # nothing changes.
    _unreact(bot, T2, "grey_question", ts)
    _unreact(bot, "U_BOT", "grey_question", ts)
    _unreact(bot, FACILITATOR, "bulb", ts)
    _settle(bot)
    assert _row(bot, ts).tag == "question"  # type: ignore[union-attr]

    # The facilitator takes it away: the reply is what its prefix made it, not the step's.
    _unreact(bot, FACILITATOR, "grey_question", ts)
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, ts) == ["thought_balloon"])
    assert _row(bot, ts).tag == "interpretation"  # type: ignore[union-attr]

    # Re-tagged twice, by the facilitator and then the author: taking both away gives back the
    # reply's own tag.
    _react(bot, FACILITATOR, "bulb", ts)
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, ts) == ["bulb"])
    _react(bot, T1, "eyes", ts)
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, ts) == ["eyes"])
    _unreact(bot, FACILITATOR, "bulb", ts)
    _unreact(bot, T1, "eyes", ts)
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, ts) == ["thought_balloon"])
    assert _row(bot, ts).tag == "interpretation"  # type: ignore[union-attr]


def test_of_two_retags_in_a_row_the_emoji_still_on_the_reply_holds(bot: Bot) -> None:
    # The facilitator re-tagged a reply with one emoji, then another, and took the second off:
    # the reply went back to the step's tag, under the first emoji still on it.
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, "There are three crossed-out attempts at the top.", thread)
    assert _recorded(bot, ts).tag == "observation"

    def react(user: str, emoji: str, removed: bool = False) -> None:
        bot.standin.react(CHANNEL, ts, user, emoji, removed=removed)  # as Slack shows it
        _react(bot, user, emoji, ts, removed=removed)

    react(FACILITATOR, "thought_balloon")
    bot.wait_until(lambda: _row(bot, ts).tag == "interpretation")  # type: ignore[union-attr]
    react(FACILITATOR, "bulb")
    bot.wait_until(lambda: _row(bot, ts).tag == "implication")  # type: ignore[union-attr]
    react(FACILITATOR, "bulb", removed=True)
    _settle(bot)
    assert _row(bot, ts).tag == "interpretation"  # type: ignore[union-attr]
    # The author's emoji taken off leaves the facilitator's, the same, standing.
    react(T1, "thought_balloon")
    react(T1, "thought_balloon", removed=True)
    _settle(bot)
    assert _row(bot, ts).tag == "interpretation"  # type: ignore[union-attr]
    # With none left, the reply's own tag comes back.
    react(FACILITATOR, "thought_balloon", removed=True)
    bot.wait_until(lambda: _row(bot, ts).tag == "observation")  # type: ignore[union-attr]
    _settle(bot)
    assert bot.standin.reactions(CHANNEL, ts) == ["eyes"]
    _next(bot, 3)
    _settle(bot)
    assert _section(_notes(bot), "observation") == [
        "There are three crossed-out attempts at the top."
    ]


def test_a_retag_taken_back_is_undone_when_slack_delivers_the_two_out_of_order(
    bot: Bot,
) -> None:
    # The facilitator re-tagged a reply and took the reaction back at once; Slack delivered the
    # reaction_removed first (ignored: the reply had no such tag yet), then the reaction_added,
    # and the reply stayed re-tagged.
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, "There are three crossed-out attempts at the top.", thread)
    assert _recorded(bot, ts).tag == "observation"
    put_on = time.time()
    for removed, at in ((True, put_on + 1), (False, put_on)):
        event = {
            "type": "reaction_removed" if removed else "reaction_added",
            "user": FACILITATOR,
            "reaction": "thought_balloon",
            "item_user": T1,
            "item": {"type": "message", "channel": CHANNEL, "ts": ts},
            "event_ts": f"{at:.6f}",
        }
        assert bot.event(event) == 200
    bot.wait_until(lambda: len(bot.standin.calls_to("reactions.remove")) == 2)
    _settle(bot)
    assert bot.standin.reactions(CHANNEL, ts) == ["eyes"]
    assert _row(bot, ts).tag == "observation"  # type: ignore[union-attr]


def test_the_authors_park_or_prefix_stands_when_a_retagging_reaction_is_taken_away(
    bot: Bot,
) -> None:
    thread = _start_at_step(bot, 2)
    # Re-tagged by the facilitator, then parked by its author: the park stands.
    judged = _say(bot, T1, "The essay is disorganized.", thread)
    row = _recorded(bot, judged)
    _react(bot, FACILITATOR, "thought_balloon", judged)
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, judged) == ["thought_balloon"])
    assert bot.action("nudge_park", str(row.id), user=T1)[0] == 200
    bot.wait_until(lambda: len(_responses(bot)) == 1)
    _unreact(bot, FACILITATOR, "thought_balloon", judged)
    # Re-tagged by the facilitator, then given a prefix by its author: the prefix stands.
    ts = _say(bot, T2, "she rushed the last part", thread)
    _recorded(bot, ts)
    _react(bot, FACILITATOR, "thought_balloon", ts)
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, ts) == ["thought_balloon"])
    _edit(bot, T2, ts, thread, "I: she rushed the last part", before="she rushed the last part")
    _settle(bot)
    _unreact(bot, FACILITATOR, "thought_balloon", ts)
    _settle(bot)
    assert _row(bot, judged).tag == "interpretation"  # type: ignore[union-attr]
    assert _row(bot, ts).tag == "interpretation"  # type: ignore[union-attr]
    assert bot.standin.reactions(CHANNEL, judged) == ["thought_balloon"]
    assert bot.standin.reactions(CHANNEL, ts) == ["thought_balloon"]


def test_an_edit_that_takes_the_prefix_away_gives_the_reply_its_steps_tag(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, "I: The graph has no labels", thread)
    assert _recorded(bot, ts).tag == "interpretation"
    _edit(bot, T1, ts, thread, "The graph has no labels", before="I: The graph has no labels")
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, ts) == ["eyes"])
    row = _row(bot, ts)
    assert row is not None and (row.tag, row.text) == ("observation", "The graph has no labels")

    # A re-tag by reaction is deliberate: taking the prefix away afterwards leaves it.
    retagged = _say(bot, T2, "I: The title is underlined", thread)
    assert _recorded(bot, retagged).tag == "interpretation"
    _react(bot, FACILITATOR, "bulb", retagged)
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, retagged) == ["bulb"])
    _edit(bot, T2, retagged, thread, "The title is underlined", before="I: The title is underlined")
    _settle(bot)
    assert _row(bot, retagged).tag == "implication"  # type: ignore[union-attr]
    assert bot.standin.reactions(CHANNEL, retagged) == ["bulb"]


def test_an_edit_that_keeps_the_prefix_leaves_a_retag_by_reaction(bot: Bot) -> None:
    # The author fixes a typo, the prefix as it was: the facilitator's re-tag went, the reply
    # back in the column of its prefix, and the bot's mark with it.
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, "I: The title is underlind", thread)
    assert _recorded(bot, ts).tag == "interpretation"
    _react(bot, FACILITATOR, "bulb", ts)
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, ts) == ["bulb"])
    _edit(bot, T1, ts, thread, "I: The title is underlined", before="I: The title is underlind")
    _settle(bot)
    row = _row(bot, ts)
    assert row is not None and (row.tag, row.text) == ("implication", "The title is underlined")
    assert bot.standin.reactions(CHANNEL, ts) == ["bulb"]
    # A prefix the edit changes is the author's new word: it stands.
    later = {"user": T1, "ts": f"{float(ts) + 2:.6f}"}
    _edit(
        bot,
        T1,
        ts,
        thread,
        "Q: The title is underlined",
        "I: The title is underlined",
        edited=later,
    )
    bot.wait_until(lambda: "grey_question" in bot.standin.reactions(CHANNEL, ts))
    assert _row(bot, ts).tag == "question"  # type: ignore[union-attr]


def test_a_presenter_note_is_not_retagged_into_the_group_columns(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)
    ts = _say(bot, PRESENTER, "I want to explain the assignment", thread)
    assert _recorded(bot, ts).audience == "presenter"
    _react(bot, FACILITATOR, "eyes", ts)
    _settle(bot)
    row = _row(bot, ts)
    assert row is not None and (row.tag, row.audience) == ("note", "presenter")


# -- describe before you interpret ----------------------------------------------------------------
def test_a_judgment_while_describing_gets_the_nudge_and_can_be_parked(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)
    plain = _say(bot, T2, "The essay has five paragraphs.", thread)
    judged = _say(bot, T1, "The essay is disorganized.", thread)
    row = _recorded(bot, judged)
    assert row.tag == "observation"  # recorded as the step collects, until the author chooses
    bot.wait_until(lambda: len(_ephemerals_to(bot, T1)) == 1)
    nudge = _ephemerals_to(bot, T1)[0]
    assert NUDGE_WORDS in nudge["text"]
    assert nudge["thread_ts"] == thread
    assert "The essay is disorganized." in json.dumps(nudge["blocks"])
    assert _buttons(nudge) == {"nudge_keep": str(row.id), "nudge_park": str(row.id)}
    labels = [
        el["text"]["text"]
        for b in nudge["blocks"]
        if b["type"] == "actions"
        for el in b["elements"]
    ]
    assert labels == ["Keep as observation", "Park as interpretation"]
    _recorded(bot, plain)
    _settle(bot)
    assert _ephemerals_to(bot, T2) == []  # a plain description is not nudged

    # Only the author may choose; anyone else gets a short word, and nothing changes.
    assert bot.action("nudge_park", str(row.id), user=T3)[0] == 200
    bot.wait_until(lambda: len(_responses(bot)) == 1)
    refusal = _responses(bot)[0]
    assert "Only <@U_T1>" in refusal["text"]
    assert refusal["replace_original"] in (False, "false")
    assert _row(bot, judged).tag == "observation"  # type: ignore[union-attr]

    assert bot.action("nudge_park", str(row.id), user=T1)[0] == 200
    bot.wait_until(lambda: len(_responses(bot)) == 2)
    done = _responses(bot)[1]
    assert done["replace_original"] in (True, "true")
    assert "Parked as an interpretation" in done["text"]
    assert "Interpreting the Student Work" in done["text"]
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, judged) == ["thought_balloon"])
    assert _row(bot, judged).tag == "interpretation"  # type: ignore[union-attr]

    # Listed when the interpreting step opens, and in the Interpretations column of the notes.
    _next(bot, 3)
    interpreting = json.dumps(bot.step_posts()[2]["blocks"])
    assert "Interpretations parked while we were describing" in interpreting
    assert "The essay is disorganized." in interpreting
    assert "five paragraphs" not in interpreting
    bot.command("end")
    bot.wait_until(
        lambda: any(str(m.get("text", "")).startswith("Notes from") for m in bot.posts())
    )
    notes = _notes(bot)
    assert _section(notes, "interpretation") == ["The essay is disorganized."]
    assert _section(notes, "observation") == ["The essay has five paragraphs."]
    posted = json.dumps([m["blocks"] for m in bot.posts() if m.get("thread_ts")])
    assert "*Interpretations*" in posted


@pytest.mark.parametrize(
    "text",
    [
        # The page's words, given after a colon as often as in quotation marks, are the student's.
        "The last line reads: the end, it was a good day",
        "The student wrote: I think it is 12 because it seems right",
        "The prompt says: Explain how you know your answer is correct.",
        # The rubric as a sheet on the page, not as a measure of the work.
        "The rubric is stapled to the back",
        # Praise written on the page, in a comment's stock words, is the page's.
        "The sticker says great work",
        "She wrote good job at the top",
    ],
)
def test_a_description_of_what_is_on_the_page_is_not_nudged(bot: Bot, text: str) -> None:
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, text, thread)
    assert _recorded(bot, ts).tag == "observation"
    _settle(bot)
    assert _ephemerals_to(bot, T1) == []


def test_a_description_of_how_the_student_made_a_mark_is_not_nudged(bot: Bot) -> None:
    # "correctly" reports a checkable fact, such as spelling: the verb after it is what she did.
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, "She correctly spelled all 10 words on the list", thread)
    judged = _say(bot, T2, "She really understands place value", thread)
    assert _recorded(bot, ts).tag == "observation"
    _recorded(bot, judged)
    _settle(bot)
    assert _ephemerals_to(bot, T1) == []
    assert len(_ephemerals_to(bot, T2)) == 1


def test_the_students_word_unquoted_is_not_nudged_and_a_verdict_of_degree_is(bot: Bot) -> None:
    """ "Good is underlined twice" names the student's word on the page, without the quote
    marks people seldom type: it was nudged as a judgment. "Very organized work" judges the
    work, and was not nudged. "O - the dates are in the wrong order" labels an observation as
    "Obs - " does: it was nudged (for "wrong"), its "O -" kept in its words."""
    thread = _start_at_step(bot, 2)
    named = _say(bot, T1, "Good is underlined twice", thread)
    _say(bot, T2, "Very organized work", thread)
    labelled = _say(bot, T3, "O - the dates are in the wrong order", thread)
    assert _recorded(bot, named).tag == "observation"
    bot.wait_until(lambda: len(_ephemerals_to(bot, T2)) == 1)
    assert NUDGE_WORDS in _ephemerals_to(bot, T2)[0]["text"]
    row = _recorded(bot, labelled)
    assert (row.tag, row.text) == ("observation", "the dates are in the wrong order")
    _settle(bot)
    assert _ephemerals_to(bot, T1) == [] and _ephemerals_to(bot, T3) == []


def test_how_the_work_reads_is_a_verdict_and_gets_the_nudge(bot: Bot) -> None:
    # "The essay reads well" judges the writing, as "well written" does: it was kept as an
    # observation with no word while the team described.
    thread = _start_at_step(bot, 2)
    judged = _say(bot, T1, "The essay reads well", thread)
    _recorded(bot, judged)
    bot.wait_until(lambda: len(_ephemerals_to(bot, T1)) == 1)
    assert NUDGE_WORDS in _ephemerals_to(bot, T1)[0]["text"]


def test_a_title_on_the_page_is_described_not_nudged(bot: Bot) -> None:
    # "The title says Good Times" gives the page's words as a title is written, capitalised,
    # without the quote marks or colon people seldom type: it was nudged, for "Good".
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, "The title says Good Times", thread)
    judged = _say(bot, T2, "The label says Great Lakes and the map is messy", thread)
    assert _recorded(bot, ts).tag == "observation"
    _recorded(bot, judged)
    bot.wait_until(lambda: len(_ephemerals_to(bot, T2)) == 1)
    _settle(bot)
    assert _ephemerals_to(bot, T1) == []


def test_a_word_misspelt_is_described_not_nudged(bot: Bot) -> None:
    # "She misspelled "because" twice" reports a checkable fact, as "She correctly spelled"
    # does: it was nudged as a claim about the student, "misspelled" not being a mark made.
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, 'She misspelled "because" twice', thread)
    judged = _say(bot, T2, "She really understands place value", thread)
    assert _recorded(bot, ts).tag == "observation"
    _recorded(bot, judged)
    bot.wait_until(lambda: len(_ephemerals_to(bot, T2)) == 1)
    _settle(bot)
    assert _ephemerals_to(bot, T1) == []


def test_the_students_words_counted_or_listed_are_not_nudged(bot: Bot) -> None:
    # "The student wrote good three times" says what is on the page, and "The words good and
    # nice are circled" names two of the student's words: each was nudged as a judgment.
    thread = _start_at_step(bot, 2)
    counted = _say(bot, T1, "The student wrote good three times", thread)
    listed = _say(bot, T2, "The words good and nice are circled", thread)
    judged = _say(bot, T3, "She wrote good sentences three times", thread)
    assert _recorded(bot, counted).tag == "observation"
    assert _recorded(bot, listed).tag == "observation"
    _recorded(bot, judged)
    bot.wait_until(lambda: len(_ephemerals_to(bot, T3)) == 1)
    _settle(bot)
    assert _ephemerals_to(bot, T1) == [] and _ephemerals_to(bot, T2) == []


def test_a_judgment_in_spanish_while_describing_gets_the_nudge(bot: Bot) -> None:
    # "Creo que no entendió la pregunta" ("I think they didn't understand the question") was
    # kept as an observation with no word, where the same words in English are nudged.
    thread = _start_at_step(bot, 2)
    described = _say(bot, T1, "El estudiante escribió tres párrafos y subrayó el título", thread)
    judged = _say(bot, T2, "Creo que no entendió la pregunta", thread)
    assert _recorded(bot, described).tag == "observation"
    _recorded(bot, judged)
    _settle(bot)
    assert _ephemerals_to(bot, T1) == []
    (nudge,) = _ephemerals_to(bot, T2)
    assert "What do you see in the work that makes you say that?" in json.dumps(nudge["blocks"])


def test_a_question_in_spanish_for_the_listening_presenter_is_parked(bot: Bot) -> None:
    # "¿Fue un borrador?" ("Was it a draft?"), asked while the presenter listens, was kept as
    # an observation, where "Was this a draft?" is parked for the presenter's step.
    thread = _start_at_step(bot, 2)
    asked = _say(bot, T1, "¿Fue un borrador?", thread)
    to_the_group = _say(bot, T2, "¿Alguien más ve la flecha?", thread)
    assert _recorded(bot, asked).tag == "question"
    assert _recorded(bot, to_the_group).tag == "observation"
    _settle(bot)
    (parked,) = _ephemerals_to(bot, T1)
    assert "your question is parked for them" in json.dumps(parked["blocks"])


def test_a_description_edited_into_a_judgment_gets_the_nudge_once(bot: Bot) -> None:
    # The edit was kept as an observation with no word, where the same words sent new are
    # nudged; an edit of a reply nudged already, or a typo fixed, is not nudged again.
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, "The ending has two sentences.", thread)
    row = _recorded(bot, ts)
    _edit(bot, T1, ts, thread, "The ending is weak.", before="The ending has two sentences.")
    bot.wait_until(lambda: len(_ephemerals_to(bot, T1)) == 1)
    (nudge,) = _ephemerals_to(bot, T1)
    assert NUDGE_WORDS in nudge["text"] and "The ending is weak." in json.dumps(nudge["blocks"])
    assert _buttons(nudge) == {"nudge_keep": str(row.id), "nudge_park": str(row.id)}
    _edit(bot, T1, ts, thread, "The ending is weak!", before="The ending is weak.")
    plain = _say(bot, T2, "Three colours are used.", thread)
    _recorded(bot, plain)
    _edit(bot, T2, plain, thread, "Three colours are used: red, blue, green.")
    _settle(bot)
    assert len(_ephemerals_to(bot, T1)) == 1 and _ephemerals_to(bot, T2) == []
    assert _row(bot, ts).tag == "observation"  # type: ignore[union-attr]


def test_a_description_edited_into_a_question_for_the_presenter_is_parked_once(
    bot: Bot,
) -> None:
    # The edit stayed an observation, where the same words sent new are parked for the
    # presenter's step and their author told so.
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, "The title is underlined.", thread)
    _recorded(bot, ts)
    _edit(bot, T1, ts, thread, "Is this the first draft?", before="The title is underlined.")
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, ts) == ["grey_question"])
    assert _row(bot, ts).tag == "question"  # type: ignore[union-attr]
    bot.wait_until(lambda: len(_ephemerals_to(bot, T1)) == 1)
    assert "parked" in _ephemerals_to(bot, T1)[0]["text"]
    # A typo fixed in it says nothing more.
    _edit(bot, T1, ts, thread, "Is this the first draft??", before="Is this the first draft?")
    _settle(bot)
    assert len(_ephemerals_to(bot, T1)) == 1
    assert _row(bot, ts).tag == "question"  # type: ignore[union-attr]


def test_a_question_for_the_presenter_edited_into_a_description_is_one_again(bot: Bot) -> None:
    # It stayed parked for the presenter: listed as a question when their step opened, under
    # Questions for the presenter in the notes.
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, "Was this homework?", thread)
    assert _recorded(bot, ts).tag == "question"
    _edit(bot, T1, ts, thread, "The page has a title.", before="Was this homework?")
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, ts) == ["eyes"])
    assert _row(bot, ts).tag == "observation"  # type: ignore[union-attr]
    # One the facilitator marked a question stays one, whatever its words become.
    marked = _say(bot, T2, "The margin is narrow.", thread)
    assert _recorded(bot, marked).tag == "observation"
    _react(bot, FACILITATOR, "grey_question", marked)
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, marked) == ["grey_question"])
    _edit(bot, T2, marked, thread, "The margin has notes.", before="The margin is narrow.")
    _settle(bot)
    assert _row(bot, marked).tag == "question"  # type: ignore[union-attr]
    _next(bot, 3)
    _next(bot, 4)
    _next(bot, 5)
    reflecting = json.dumps(bot.step_posts()[4]["blocks"])
    assert "The page has a title." not in reflecting and "The margin has notes." in reflecting


def test_keep_as_observation_leaves_it_where_it_is(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)
    judged = _say(bot, T1, "I think she ran out of time on the last problem.", thread)
    row = _recorded(bot, judged)
    bot.wait_until(lambda: len(_ephemerals_to(bot, T1)) == 1)
    assert bot.action("nudge_keep", str(row.id), user=T1)[0] == 200
    bot.wait_until(lambda: len(_responses(bot)) == 1)
    kept = _responses(bot)[0]
    assert kept["replace_original"] in (True, "true")
    assert "Kept as an observation" in kept["text"]
    _settle(bot)
    assert _row(bot, judged).tag == "observation"  # type: ignore[union-attr]
    assert bot.standin.reactions(CHANNEL, judged) == ["eyes"]
    assert bot.standin.calls_to("reactions.remove") == []


def test_keep_after_park_takes_the_park_back(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)
    judged = _say(bot, T1, "She probably didn't understand scale.", thread)
    row = _recorded(bot, judged)
    assert bot.action("nudge_park", str(row.id), user=T1)[0] == 200
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, judged) == ["thought_balloon"])
    assert bot.action("nudge_keep", str(row.id), user=T1)[0] == 200
    bot.wait_until(lambda: len(_responses(bot)) == 2)
    assert "Kept as an observation" in _responses(bot)[1]["text"]
    _settle(bot)
    assert _row(bot, judged).tag == "observation"  # type: ignore[union-attr]
    assert bot.standin.reactions(CHANNEL, judged) == ["eyes"]


def test_parking_after_the_interpreting_step_opened_still_reaches_the_notes(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)
    judged = _say(bot, T1, "The handwriting is sloppy.", thread)
    row = _recorded(bot, judged)
    _next(bot, 3)
    assert bot.action("nudge_park", str(row.id), user=T1)[0] == 200
    bot.wait_until(lambda: len(_responses(bot)) == 1)
    done = _responses(bot)[0]["text"]
    assert "Parked as an interpretation" in done
    assert "Interpreting the Student Work" not in done  # that step is already open
    bot.wait_until(lambda: _row(bot, judged).tag == "interpretation")  # type: ignore[union-attr]


def test_nudge_buttons_for_a_reply_that_is_gone_change_nothing(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)
    judged = _say(bot, T1, "This is a weak conclusion.", thread)
    row = _recorded(bot, judged)
    bot.event(
        {
            "type": "message",
            "subtype": "message_deleted",
            "channel": CHANNEL,
            "deleted_ts": judged,
            "previous_message": {"ts": judged, "thread_ts": thread},
            "ts": "2.0",
        }
    )
    # Its words are gone; an empty row stays in its place (see Replies.deleted).
    bot.wait_until(lambda: _row(bot, judged).text == "")  # type: ignore[union-attr]
    for value in (str(row.id), "not-a-number"):
        assert bot.action("nudge_park", value, user=T1)[0] == 200
    bot.wait_until(lambda: len(_responses(bot)) == 2)
    assert all("nothing changed" in r["text"] for r in _responses(bot))


def test_the_nudge_is_only_for_steps_that_collect_observations(bot: Bot) -> None:
    thread = _start_at_step(bot, 3)  # Interpreting: judgments are welcome
    ts = _say(bot, T1, "I think she doesn't understand place value.", thread)
    assert _recorded(bot, ts).tag == "interpretation"
    _settle(bot)
    assert _ephemerals_to(bot, T1) == []


# -- the presenter listens ------------------------------------------------------------------------
def test_presenter_notes_stay_private_and_come_back_at_their_step(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)
    ts = _say(bot, PRESENTER, "Remember to tell them about the calculator rule", thread)
    row = _recorded(bot, ts)
    assert (row.tag, row.audience) == ("note", "presenter")
    assert bot.standin.reactions(CHANNEL, ts) == ["pencil2"]
    bot.wait_until(lambda: len(_ephemerals_to(bot, PRESENTER)) == 1)
    reminder = _ephemerals_to(bot, PRESENTER)[0]
    assert "listening" in reminder["text"]
    assert "Reflecting on the ATLAS" in json.dumps(reminder["blocks"])
    _say(bot, T1, "The table has four rows.", thread)

    dm = f"D{PRESENTER[1:]}"
    for k in (3, 4):
        _next(bot, k)
    _settle(bot)
    assert bot.standin.messages(dm) == []  # nothing until the presenter's turn
    _next(bot, 5)
    bot.wait_until(lambda: len(bot.standin.messages(dm)) == 1)
    turn = bot.standin.messages(dm)[0]
    assert "Reflecting on the ATLAS" in turn["text"]
    body = json.dumps(turn["blocks"])
    assert "Remember to tell them about the calculator rule" in body
    assert "Describing the Student Work" in body

    _next(bot, 6)
    _settle(bot)
    assert len(bot.standin.messages(dm)) == 1  # once, not at every later step
    bot.command("end")
    bot.wait_until(lambda: len(bot.standin.messages(dm)) >= 2)
    group = json.dumps([m["blocks"] for m in bot.posts() if m.get("thread_ts")])
    assert "calculator rule" not in group
    copy = json.dumps([m["blocks"] for m in bot.standin.messages(dm)[1:]])
    assert "calculator rule" in copy


def test_the_presenter_asking_for_the_notes_gets_their_own_copy(bot: Bot) -> None:
    # The answer to /protocol notes is the asker's alone: the presenter's, like their copy at
    # the end, holds what they noted while listening; anyone else's does not.
    describing = _start_at_step(bot, 2)
    _recorded(bot, _say(bot, PRESENTER, "Ask them about the calculator rule", describing))
    _recorded(bot, _say(bot, T1, "The table has four rows.", describing))
    bot.command("end")
    _settle(bot)
    own = json.dumps(bot.command("notes", user=PRESENTER)["blocks"])
    assert "calculator rule" in own and "four rows" in own
    theirs = json.dumps(bot.command("notes", user=T1)["blocks"])
    assert "calculator rule" not in theirs and "four rows" in theirs


def test_a_reminder_of_who_speaks_comes_once_a_step_however_often_one_replies(bot: Bot) -> None:
    describing = _start_at_step(bot, 2)
    notes = [_say(bot, PRESENTER, f"Note to self {k}", describing) for k in range(3)]
    asked = [_say(bot, T1, f"Is this draft {k} of the essay?", describing) for k in range(2)]
    assert [_recorded(bot, ts).audience for ts in notes] == ["presenter"] * 3  # each kept
    assert [_recorded(bot, ts).tag for ts in asked] == ["question"] * 2
    _settle(bot)
    assert [m["text"] for m in _ephemerals_to(bot, PRESENTER)] == [
        "You are listening in this step."
    ]
    assert len(_ephemerals_to(bot, T1)) == 1

    # The next step where they listen is a step of its own: reminded there once again.
    _next(bot, 3)
    interpreting = str(bot.step_posts()[2]["ts"])
    for k in range(2):
        _say(bot, PRESENTER, f"Another note {k}", interpreting)
    _settle(bot)
    assert len(_ephemerals_to(bot, PRESENTER)) == 2


def test_a_late_reply_in_a_listening_step_promises_nothing_at_a_step_already_open(
    bot: Bot,
) -> None:
    # The group is on the presenter's step (Reflecting) when the presenter, and a teacher
    # catching up, write in Describing's thread: that step has come, and gone by what it brought
    # (the notes it sent, the questions it listed), so neither is told to wait for it.
    describing = _start_at_step(bot, 2)
    for k in (3, 4, 5):
        _next(bot, k)
    note = _say(bot, PRESENTER, "It was her first draft", describing)
    asked = _say(bot, T1, "Is this the first draft?", describing)
    assert _recorded(bot, note).audience == "presenter"
    assert _recorded(bot, asked).tag == "question"
    _settle(bot)
    (kept,) = _ephemerals_to(bot, PRESENTER)
    words = json.dumps(kept["blocks"])
    assert "as a private note for you" in words and "when step 5" not in words
    assert "in your copy of the notes at the end" in words
    (parked,) = [m for m in _ephemerals_to(bot, T1) if "question" in m["text"]]
    words = json.dumps(parked["blocks"])
    assert "will be listed" not in words and "Questions for the presenter" in words


def test_no_dm_at_the_presenters_step_when_they_kept_no_notes(bot: Bot) -> None:
    _start_at_step(bot, 5)
    _settle(bot)
    assert bot.standin.messages(f"D{PRESENTER[1:]}") == []


def test_the_step_that_ends_the_presenters_listening_calls_them_back(bot: Bot) -> None:
    # Each step where they listen named them ("listens in this step"), and Slack told them so;
    # the step where they speak again named nobody: a presenter away from the channel through a
    # day-long step heard nothing of their turn.
    _start_at_step(bot, 6)
    called = f"<@{PRESENTER}>, your turn"
    shown = [json.dumps(m["blocks"]) for m in bot.step_posts()]
    # Reflecting opens it; not Getting Started (they start there), nor the steps where they
    # listen, nor Debriefing (they spoke already).
    assert [k for k, words in enumerate(shown, start=1) if called in words] == [5]


def test_a_silent_presenter_hears_at_their_turn_of_the_questions_parked_for_them(
    bot: Bot,
) -> None:
    # A presenter who kept the norm, and wrote nothing while listening, got no word when their
    # turn opened: the questions parked for them waited in a channel message that names nobody.
    describing = _start_at_step(bot, 2)
    asked = _say(bot, T1, "Is this the first draft?", describing)
    assert _recorded(bot, asked).tag == "question"
    for k in (3, 4, 5):
        _next(bot, k)
    dm = f"D{PRESENTER[1:]}"
    bot.wait_until(lambda: len(bot.standin.messages(dm)) == 1)
    (turn,) = bot.standin.messages(dm)
    assert "Reflecting on the ATLAS" in turn["text"] and "question" in turn["text"]
    body = json.dumps(turn["blocks"])
    assert "Is this the first draft?" in body and f"<@{T1}>" in body
    assert "you noted" not in body and "Only you see" not in body


def test_in_a_presenter_only_step_the_others_are_reminded_and_kept_as_notes(bot: Bot) -> None:
    thread = _start_at_step(bot, 5, "collaborative-assessment")  # Hearing from the Presenter
    answer = _say(bot, PRESENTER, "The drawing carried more than I expected", thread)
    assert _recorded(bot, answer).tag == "reflection"
    aside = _say(bot, T1, "Agree, the drawing carried the argument", thread)
    row = _recorded(bot, aside)
    assert (row.tag, row.audience) == ("note", "group")
    assert bot.standin.reactions(CHANNEL, aside) == ["pencil2"]
    bot.wait_until(lambda: len(_ephemerals_to(bot, T1)) == 1)
    assert "Hearing from the Presenter" in json.dumps(_ephemerals_to(bot, T1)[0]["blocks"])
    _settle(bot)
    assert _ephemerals_to(bot, PRESENTER) == []
    notes = _notes(bot)
    assert _section(notes, "reflection") == ["The drawing carried more than I expected"]
    assert _section(notes, "note") == ["Agree, the drawing carried the argument"]


def test_a_tagged_reply_where_only_the_presenter_speaks_is_told_its_tag(bot: Bot) -> None:
    # Told "as a note" under the Tuning Protocol's Presentation, a `Q:` reply was recorded as a
    # question, listed for the presenter, and marked with the question's reaction. A question
    # to the presenter is parked for their next step (Clarifying Questions), and said so.
    thread = _start_at_step(bot, 1, "tuning")
    asked = _say(bot, T1, "Q: how long did they have?", thread)
    assert _recorded(bot, asked).tag == "question"
    bot.wait_until(lambda: len(_ephemerals_to(bot, T1)) == 1)
    told = json.dumps(_ephemerals_to(bot, T1)[0]["blocks"])
    assert "parked for them" in told and "Clarifying Questions" in told
    assert "as a note" not in told
    warm = _say(bot, T3, "Warm: the task invites real choices", thread)
    assert _recorded(bot, warm).tag == "warm"
    bot.wait_until(lambda: len(_ephemerals_to(bot, T3)) == 1)
    told = json.dumps(_ephemerals_to(bot, T3)[0]["blocks"])
    assert "as warm feedback rather than part of the presenter's turn" in told
    aside = _say(bot, T2, "Reading now.", thread)
    assert _recorded(bot, aside).tag == "note"
    bot.wait_until(lambda: len(_ephemerals_to(bot, T2)) == 1)
    assert "as a note rather than" in json.dumps(_ephemerals_to(bot, T2)[0]["blocks"])


def test_the_presenters_answers_to_clarifying_questions_are_not_questions(bot: Bot) -> None:
    thread = _start_at_step(bot, 2, "tuning")  # Clarifying Questions
    asked = _say(bot, T1, "Was this timed?", thread)
    answered = _say(bot, PRESENTER, "Yes, 40 minutes, no notes", thread)
    # Nor is a question the presenter asks the group, prefix and all.
    asking = _say(bot, PRESENTER, "Q: does anyone use a rubric like this?", thread)
    assert _recorded(bot, asked).tag == "question"
    assert _recorded(bot, answered).tag == "note"
    assert _recorded(bot, asking).tag == "note"
    _settle(bot)
    # Listed under the question they follow, as the presenter's words, not as questions.
    sections = dict(_notes(bot).sections)
    listed = [(item.text, item.tag) for item in sections["question"]]
    assert listed == [
        ("Was this timed?", "question"),
        ("Yes, 40 minutes, no notes", "note"),
        ("does anyone use a rubric like this?", "note"),
    ]


def test_the_presenters_answers_follow_the_questions_they_answer_in_the_notes(
    bot: Bot,
) -> None:
    # Kept as notes, the answers were listed apart from the questions, in a Notes section of
    # their own: "Yes, 40 minutes" on the chart paper, and no saying what it answered.
    thread = _start_at_step(bot, 2, "tuning")  # Clarifying Questions
    _say(bot, PRESENTER, "Ask away.", thread)
    _say(bot, T1, "Was this timed?", thread)
    _say(bot, PRESENTER, "Yes, 40 minutes, no notes", thread)
    _say(bot, T2, "Did they see a model first?", thread)
    _say(bot, PRESENTER, "No model.", thread)
    bot.command("end")
    bot.wait_until(
        lambda: any(str(m.get("text", "")).startswith("Notes from") for m in bot.posts())
    )
    _settle(bot)
    posted = next(m for m in bot.posts() if str(m.get("text", "")).startswith("Notes from"))
    sections = [b["text"]["text"] for b in posted["blocks"] if b["type"] == "section"]
    answered = "\u2003\u21b3 "
    assert "\n".join(sections[1:3]) == (
        f"*Notes*\n• Ask away. - <@{PRESENTER}>\n"
        f"*Questions for the presenter*\n"
        f"• Was this timed? - <@{T1}>\n"
        f"{answered}Yes, 40 minutes, no notes - <@{PRESENTER}>\n"
        f"• Did they see a model first? - <@{T2}>\n"
        f"{answered}No model. - <@{PRESENTER}>"
    )
    written = notes_mod.export_markdown(_notes(bot))
    assert (
        "- Was this timed? (teacher1)\n  - \u21b3 Yes, 40 minutes, no notes (maria)\n"
        "- Did they see a model first? (teacher2)\n  - \u21b3 No model. (maria)\n"
    ) in written


# -- the quest for context ------------------------------------------------------------------------
def test_wondering_aloud_about_the_student_is_nudged_as_an_interpretation(bot: Bot) -> None:
    describing = _start_at_step(bot, 2)
    wondering = _say(bot, T1, "I wonder if she ran out of time", describing)
    assert _recorded(bot, wondering).tag == "observation"  # until its author chooses
    bot.wait_until(lambda: len(_ephemerals_to(bot, T1)) == 1)
    nudge = _ephemerals_to(bot, T1)[0]
    assert NUDGE_WORDS in nudge["text"] and "parked" not in nudge["text"]
    conditions = _say(bot, T2, "I wonder if this was a timed write", describing)
    assert _recorded(bot, conditions).tag == "question"


def test_context_questions_are_parked_for_the_presenters_step(bot: Bot) -> None:
    describing = _start_at_step(bot, 2)
    first = _say(bot, T1, "Is this the first draft?", describing)
    assert _recorded(bot, first).tag == "question"
    assert bot.standin.reactions(CHANNEL, first) == ["grey_question"]
    bot.wait_until(lambda: len(_ephemerals_to(bot, T1)) == 1)
    parked = _ephemerals_to(bot, T1)[0]
    assert parked["thread_ts"] == describing
    assert "parked" in parked["text"]
    assert "Reflecting on the ATLAS" in json.dumps(parked["blocks"])
    seen = _say(bot, T2, "There is a number line drawn under the problem.", describing)
    assert _recorded(bot, seen).tag == "observation"
    aside = _say(bot, T3, "Can anyone zoom in on the second page?", describing)
    assert _recorded(bot, aside).tag == "observation"  # to the group, not to the presenter

    _next(bot, 3)
    interpreting = str(bot.step_posts()[2]["ts"])
    second = _say(bot, T2, "Were they allowed to use a calculator?", interpreting)
    assert _recorded(bot, second).tag == "question"
    _next(bot, 4)
    _next(bot, 5)
    reflecting = json.dumps(bot.step_posts()[4]["blocks"])
    assert "Questions for the presenter, from the steps where they listened" in reflecting
    assert "Is this the first draft?" in reflecting
    assert "Were they allowed to use a calculator?" in reflecting
    assert "zoom in" not in reflecting
    _recorded(bot, _say(bot, PRESENTER, "It was the second draft", str(bot.step_posts()[4]["ts"])))

    bot.command("end")
    bot.wait_until(
        lambda: any(str(m.get("text", "")).startswith("Notes from") for m in bot.posts())
    )
    assert _section(_notes(bot), "question") == [
        "Is this the first draft?",
        "Were they allowed to use a calculator?",
    ]
    posted = json.dumps([m["blocks"] for m in bot.posts() if m.get("thread_ts")])
    # In PRODUCT.md 3.2's order, though no ATLAS step collects questions.
    assert posted.index("*Questions for the presenter*") < posted.index("*Presenter reflection*")


@pytest.mark.parametrize(
    "text",
    [
        "I wonder about the time limit",
        # addressed, and sent without its question mark
        "Maria, is this the final draft",
        "<@U_PRE> was this done in class",
        # put as what one would like to know
        "I'd love to know if they had a rubric",
        "I would like to know whether this was timed",
    ],
)
def test_a_question_for_the_presenter_put_loosely_is_parked(bot: Bot, text: str) -> None:
    describing = _start_at_step(bot, 2)
    ts = _say(bot, T1, text, describing)
    assert _recorded(bot, ts).tag == "question"
    bot.wait_until(lambda: len(_ephemerals_to(bot, T1)) == 1)
    assert "parked" in _ephemerals_to(bot, T1)[0]["text"]


def test_questions_listed_under_a_prefix_are_kept_without_it(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, "Qs: was it timed? was there a word bank?", thread)
    row = _recorded(bot, ts)
    assert (row.tag, row.text) == ("question", "was it timed? was there a word bank?")


def test_a_question_in_a_listening_steps_thread_after_the_presenters_turn_opened(
    bot: Bot,
) -> None:
    # Told "The presenter is listening in Describing, so your question is parked for them"
    # while the presenter was answering questions in Reflecting, whose list had been posted
    # without it: the question waited for a turn that had come.
    describing = _start_at_step(bot, 2)
    for k in (3, 4, 5):
        _next(bot, k)
    asked = _say(bot, T1, "Is this the first draft?", describing)
    assert _recorded(bot, asked).tag == "question"
    bot.wait_until(lambda: any("question" in m["text"] for m in _ephemerals_to(bot, T1)))
    (told,) = [json.dumps(m["blocks"]) for m in _ephemerals_to(bot, T1) if "question" in m["text"]]
    assert "is listening" not in told
    assert "speaking now, in step 5, *Reflecting on the ATLAS*" in told
    assert "ask your question in that step's thread" in told
    _next(bot, 6)
    late = _say(bot, T2, "Was it timed?", describing)
    assert _recorded(bot, late).tag == "question"
    bot.wait_until(lambda: any("question" in m["text"] for m in _ephemerals_to(bot, T2)))
    (told,) = [json.dumps(m["blocks"]) for m in _ephemerals_to(bot, T2) if "question" in m["text"]]
    assert "is listening" not in told and "ask your question" not in told
    assert "turn to answer, step 5, *Reflecting on the ATLAS*, is over" in told
    assert "Questions for the presenter" in told


def test_a_context_question_while_only_the_presenter_shares_waits_for_their_turn(
    bot: Bot,
) -> None:
    """The Collaborative Assessment Conference: the presenter shares the work with no comment
    in Getting Started and says nothing of the context until step 5. A teacher asking there was
    told only the presenter speaks, and the question was kept as a note, never given back."""
    started = _start_at_step(bot, 1, "collaborative-assessment")
    asked = _say(bot, T1, "Is this a first draft?", started)
    assert _recorded(bot, asked).tag == "question"
    bot.wait_until(lambda: len(_ephemerals_to(bot, T1)) == 1)
    told = json.dumps(_ephemerals_to(bot, T1)[0]["blocks"])
    assert "parked" in told and "Hearing from the Presenter" in told
    assert "listening" not in told  # the presenter is sharing the work in this step
    aside = _say(bot, T2, "The drawing fills the whole page.", started)
    assert _recorded(bot, aside).tag == "note"  # not a question: read along, as before
    for k in range(2, 6):
        _next(bot, k)
    responding = json.dumps(bot.step_posts()[4]["blocks"])
    assert "Is this a first draft?" in responding
    assert "fills the whole page" not in responding


def test_in_a_step_only_the_presenter_speaks_only_questions_to_them_are_parked() -> None:
    step = LIBRARY["collaborative-assessment"].step(1)
    read = Replies._read
    assert read(PRESENTER, step, T1, None, "Is this a first draft?") == (
        "question",
        "group",
        "parked_question.j2",
    )
    assert read(PRESENTER, step, T1, "question", "why this piece?")[2] == "parked_question.j2"
    assert read(PRESENTER, step, T1, None, "Lovely colours")[::2] == ("note", "group_listens.j2")
    # The presenter's own words in their step are theirs to say, not a question to themselves.
    assert read(PRESENTER, step, PRESENTER, None, "Is this a first draft? It is.") == (
        "note",
        "group",
        None,
    )


def test_a_question_in_a_step_where_the_presenter_speaks_is_not_parked(bot: Bot) -> None:
    thread = _start_at_step(bot, 5)
    ts = _say(bot, T1, "Is this the first draft?", thread)
    assert _recorded(bot, ts).tag == "reflection"
    _settle(bot)
    assert _ephemerals_to(bot, T1) == []


# -- what is kept ---------------------------------------------------------------------------------
def test_text_slack_escaped_is_kept_as_typed_and_shown_escaped_once(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)
    # Slack delivers a typed "3 < 5 & x > y" as "3 &lt; 5 &amp; x &gt; y".
    typed = _say(bot, T1, "O: she wrote 3 &lt; 5 &amp; x &gt; y", thread)
    edited = _say(bot, T2, "The axes are labelled", thread)
    _recorded(bot, edited)
    _edit(bot, T2, edited, thread, "The axes read a &amp; b, &amp;lt; is spelt out")
    _settle(bot)
    assert _row(bot, typed).text == "she wrote 3 < 5 & x > y"  # type: ignore[union-attr]
    assert _row(bot, edited).text == "The axes read a & b, &lt; is spelt out"  # type: ignore[union-attr]

    bot.command("end")
    bot.wait_until(
        lambda: any(str(m.get("text", "")).startswith("Notes from") for m in bot.posts())
    )
    notes = next(m for m in bot.posts() if str(m.get("text", "")).startswith("Notes from"))
    shown = json.dumps(notes["blocks"])
    assert "she wrote 3 &lt; 5 &amp; x &gt; y - " in shown
    assert "The axes read a &amp; b, &amp;lt; is spelt out - " in shown
    assert "&amp;amp;" not in shown and "&amp;lt; 5" not in shown
    assert "she wrote 3 < 5 & x > y" in notes_mod.export_csv(_notes(bot))


def test_a_file_shared_without_words_is_kept_by_its_name(bot: Bot) -> None:
    thread = _start_at_step(bot, 1)  # "share the work here"
    photo = {
        "id": "F1",
        "name": "IMG_2041.jpg",
        "title": "student work",
        "permalink": "https://x/F1",
    }
    shared = str(bot.standin.add_message(CHANNEL, PRESENTER, "", thread_ts=thread)["ts"])
    bot.event(
        {
            "type": "message",
            "subtype": "file_share",
            "channel": CHANNEL,
            "user": PRESENTER,
            "text": "",
            "ts": shared,
            "thread_ts": thread,
            "files": [photo],
        }
    )
    row = _recorded(bot, shared)
    assert (row.tag, row.audience) == ("note", "group")
    assert "student work" in row.text and "https://x/F1" in row.text

    # A caption taken away by an edit leaves the file it came with.
    captioned = _say(bot, T1, "Page 2, with the margin notes", thread)
    _recorded(bot, captioned)
    _edit(bot, T1, captioned, thread, "", files=[{"id": "F2", "name": "page2.jpg"}])
    _settle(bot)
    row = _row(bot, captioned)  # type: ignore[assignment]
    assert row is not None and "page2.jpg" in row.text
    assert [i.user for i in _notes(bot).sections[0][1]] == [PRESENTER, T1]

    # With a caption, the reply keeps both its words and the file.
    shown = str(bot.standin.add_message(CHANNEL, T2, "Here is page 3", thread_ts=thread)["ts"])
    page3 = {"id": "F3", "name": "page3.jpg", "permalink": "https://x/F3"}
    event = {"type": "message", "subtype": "file_share", "channel": CHANNEL, "user": T2}
    bot.event(
        {**event, "text": "Here is page 3", "ts": shown, "thread_ts": thread} | {"files": [page3]}
    )
    row = _recorded(bot, shown)
    assert row.text == "Here is page 3\nShared page3.jpg (https://x/F3)"


def test_a_file_deleted_from_a_reply_leaves_its_words_alone_in_the_notes(bot: Bot) -> None:
    # Deleting a file a reply shared leaves a tombstone in the message (`"mode": "tombstone"`,
    # no name, no link), which Slack shows as "This file was deleted": the notes said "Shared a
    # file" after the words, and a reply of that file alone stayed in them as "Shared a file".
    thread = _start_at_step(bot, 1)
    share = {"type": "message", "subtype": "file_share", "channel": CHANNEL, "thread_ts": thread}
    said = {PRESENTER: "The essay, page 1", T1: ""}
    files = {PRESENTER: "F1", T1: "F2"}
    shared = {}
    for user, text in said.items():
        ts = str(bot.standin.add_message(CHANNEL, user, text, thread_ts=thread)["ts"])
        photo = {"id": files[user], "name": f"{files[user]}.jpg", "permalink": "https://x/F"}
        bot.event({**share, "user": user, "text": text, "ts": ts, "files": [photo]})
        assert f"{files[user]}.jpg" in _recorded(bot, ts).text
        shared[user] = ts

    for user, text in said.items():
        deleted = [{"id": files[user], "mode": "tombstone"}]
        edited = {"user": user, "ts": f"{float(shared[user]) + 5:.6f}"}
        _edit(bot, user, shared[user], thread, text, text, files=deleted, edited=edited)
    _settle(bot)
    assert _row(bot, shared[PRESENTER]).text == "The essay, page 1"  # type: ignore[union-attr]
    assert [i.text for _, items in _notes(bot).sections for i in items] == ["The essay, page 1"]


def test_a_file_slack_hides_past_the_plan_limit_is_named_as_hidden_in_the_notes(bot: Bot) -> None:
    # On a free plan past its file limit, Slack sends a shared file as `"hidden_by_limit": true`
    # with no name or link: the notes said "Shared a file", and the team could not tell where
    # the photo of the student work had gone.
    thread = _start_at_step(bot, 1)
    share = {"type": "message", "subtype": "file_share", "channel": CHANNEL, "thread_ts": thread}
    # As the flag, or as the file's mode.
    for n, hidden in enumerate([{"hidden_by_limit": True}, {"mode": "hidden_by_limit"}]):
        said = f"Page {n + 1}"
        ts = str(bot.standin.add_message(CHANNEL, PRESENTER, said, thread_ts=thread)["ts"])
        files = [{"id": f"F{n}", **hidden}]
        bot.event({**share, "user": PRESENTER, "text": said, "ts": ts, "files": files})
        text = _recorded(bot, ts).text
        assert text.startswith(f"{said}\nShared ") and not text.endswith("Shared a file")
        assert "hides" in text and "plan" in text


def test_a_parked_reply_deleted_or_edited_is_gone_or_changed_where_a_later_step_lists_it(
    bot: Bot,
) -> None:
    # A teacher deleted an interpretation that named the student, once the interpreting step's
    # message had listed it among the parked ones: the message quoted it still, for all to read.
    describe = _start_at_step(bot, 2)
    named = _say(bot, T1, "I: Jake probably guessed on number 4", describe)
    copied = _say(bot, T2, "I: the units row was copied", describe)
    _recorded(bot, named)
    _recorded(bot, copied)
    _next(bot, 3)
    _settle(bot)
    assert "Jake" in json.dumps(bot.step_posts()[2])

    _delete(bot, T1, named, describe)
    _edit(bot, T2, copied, describe, "I: the units row was copied from the board")
    _settle(bot)
    interpreting = json.dumps(bot.step_posts()[2])
    assert "Jake" not in interpreting and "copied from the board" in interpreting
    assert "Next step" in interpreting  # still open, its buttons with it

    # Once that step has closed, its message follows too, and stays closed.
    _next(bot, 4)
    _delete(bot, T2, copied, describe)
    _settle(bot)
    interpreting = json.dumps(bot.step_posts()[2])
    assert "copied" not in interpreting and "Next step" not in interpreting


def test_a_reply_written_with_slash_me_is_kept_as_any_other(bot: Bot) -> None:
    # `/me points at the second column` in a step's thread arrives as a me_message: it was
    # dropped, from the notes, the counts and the exports, with no word to its author.
    thread = _start_at_step(bot, 2)
    said = "points at the second column: the units are gone"
    ts = str(bot.standin.add_message(CHANNEL, T1, said, thread_ts=thread)["ts"])
    me = {"type": "message", "subtype": "me_message", "channel": CHANNEL, "user": T1}
    bot.event({**me, "text": said, "ts": ts, "thread_ts": thread, "channel_type": "channel"})
    row = _recorded(bot, ts)
    assert (row.tag, row.audience, row.text) == ("observation", "group", said)
    # Its edit is read as any reply's.
    _edit(bot, T1, ts, thread, "I: thinks the units were dropped", said, subtype="me_message")
    _settle(bot)
    assert _section(_notes(bot), "interpretation") == ["thinks the units were dropped"]


def test_links_and_mentions_are_kept_as_the_words_people_saw(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)
    said = (
        "Matches <https://example.org/rubric|the rubric>, as <@U_T2> said; see "
        "<https://example.org/a> and ask <@U_T3|lee> in <#C_X|math>"
    )
    linked = _recorded(bot, _say(bot, T1, said, thread))
    assert linked.text == (
        "Matches the rubric (https://example.org/rubric), as @teacher2 said; see "
        "https://example.org/a and ask @lee in #math"
    )
    # A link's label is not a prefix the person typed.
    labelled = _recorded(bot, _say(bot, T2, "<https://example.org/x|I: labelled> text", thread))
    assert (labelled.tag, labelled.text) == (
        "observation",
        "I: labelled (https://example.org/x) text",
    )
    prefixed = _recorded(bot, _say(bot, T3, "I: see <https://example.org/y>", thread))
    assert (prefixed.tag, prefixed.text) == ("interpretation", "see https://example.org/y")
    # An address typed without its scheme, which Slack makes a link of, is kept as typed: it
    # was kept as "example.org/rubric (http://example.org/rubric)".
    typed = "see <http://example.org/rubric|example.org/rubric> and <https://x.org|x.org>"
    bare = _recorded(bot, _say(bot, T1, typed, thread))
    assert bare.text == "see example.org/rubric and x.org"


def test_a_links_address_is_not_read_as_a_question_or_a_judgment(bot: Bot) -> None:
    # A shared document's address ends "?usp=sharing": not a question to the presenter, and
    # words in an address are nobody's judgment. The address stays in what is kept.
    thread = _start_at_step(bot, 2)
    shared = "Her second draft is here: <https://docs.google.com/document/d/1AbC/edit?usp=sharing>"
    draft = _recorded(bot, _say(bot, T1, shared, thread))
    labelled = "<https://school.example/great-essays-template?id=4|The template> has four boxes"
    template = _recorded(bot, _say(bot, T2, labelled, thread))
    _settle(bot)
    assert (draft.tag, template.tag) == ("observation", "observation")
    assert draft.text.endswith("https://docs.google.com/document/d/1AbC/edit?usp=sharing")
    assert template.text == (
        "The template (https://school.example/great-essays-template?id=4) has four boxes"
    )
    assert _ephemerals_to(bot, T1) == [] and _ephemerals_to(bot, T2) == []
    # So too an address typed without its scheme, which Slack sends as a link labelled with it.
    address = "docs.google.com/document/d/2XyZ/edit?usp=sharing"
    bare = _recorded(bot, _say(bot, T3, f"Her notes: <http://{address}|{address}>", thread))
    assert (bare.tag, bare.text) == ("observation", f"Her notes: {address}")
    _settle(bot)
    assert _ephemerals_to(bot, T3) == []
    # A link's label is what the person said: it is read as any words are.
    asked = _recorded(bot, _say(bot, T3, "Was <https://x.example/r|the rubric> shared?", thread))
    assert asked.tag == "question"


def test_an_older_edit_delivered_late_leaves_the_newer_words(bot: Bot) -> None:
    # Slack retries an edit it could not deliver, perhaps after a later edit went through: the
    # author's last words are the ones kept.
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, "The graph has five bars", thread)
    _recorded(bot, ts)

    def edit(text: str, after: float) -> None:
        _edit(bot, T1, ts, thread, text, edited={"user": T1, "ts": f"{float(ts) + after:.6f}"})

    edit("The graph has six bars", 20)
    bot.wait_until(lambda: _row(bot, ts).text == "The graph has six bars")  # type: ignore[union-attr]
    edit("The graph has 6 bars", 10)
    _settle(bot)
    assert _row(bot, ts).text == "The graph has six bars"  # type: ignore[union-attr]
    edit("The graph has six bars and a key", 30)
    bot.wait_until(lambda: _row(bot, ts).text == "The graph has six bars and a key")  # type: ignore[union-attr]

    # An edit delivered before its message is the reply as it stands; an older one, after it,
    # changes nothing either.
    early = str(bot.standin.add_message(CHANNEL, T2, "Two colours", thread_ts=thread)["ts"])
    message = {"user": T2, "ts": f"{float(early) + 20:.6f}"}
    _edit(bot, T2, early, thread, "Two colours, red and blue", edited=message)
    _recorded(bot, early)
    _edit(bot, T2, early, thread, "Two colours, red", edited={**message, "ts": early})
    _settle(bot)
    assert _row(bot, early).text == "Two colours, red and blue"  # type: ignore[union-attr]


def test_a_tag_prefix_alone_waits_for_its_words(bot: Bot) -> None:
    # "O:" sent before the words (Enter pressed too soon) is not a reply of its own: not kept,
    # parked or counted. Its edit, when the words come, is.
    thread = _start_at_step(bot, 2)
    early = _say(bot, T1, "O:", thread)
    question = _say(bot, T2, "*Q:*", thread)
    _settle(bot)
    assert (_row(bot, early), _row(bot, question)) == (None, None)
    assert bot.standin.reactions(CHANNEL, early) == [] and _ephemerals_to(bot, T2) == []
    _edit(bot, T1, early, thread, "O: three drafts, stapled", before="O:")
    row = _recorded(bot, early)
    assert (row.tag, row.text) == ("observation", "three drafts, stapled")

    # A reply edited down to its prefix keeps the words it had until new ones come.
    kept = _say(bot, T3, "I: she reused the frame", thread)
    _recorded(bot, kept)
    _edit(bot, T3, kept, thread, "I:", before="I: she reused the frame")
    _settle(bot)
    row = _row(bot, kept)  # type: ignore[assignment]
    assert row is not None and (row.tag, row.text) == ("interpretation", "she reused the frame")
    _edit(bot, T3, kept, thread, "I: she reused the frame twice", before="I:")
    bot.wait_until(lambda: _row(bot, kept).text == "she reused the frame twice")  # type: ignore[union-attr]
    _next(bot, 3)
    _settle(bot)
    assert _section(_notes(bot), "question") == []
    assert _notes(bot).participation["total"] == 2


def test_emoji_alone_is_a_nod_not_a_reply(bot: Bot) -> None:
    # A thumbs-up in the thread, by code or as characters, a +1 or a typed face, is not kept,
    # tagged or counted, and the presenter who sends one while listening is not reminded.
    # Emoji beside words are kept, and so are marks alone: "?" and "!!!" say something.
    thread = _start_at_step(bot, 2)
    nods = [
        _say(bot, T1, ":+1:", thread),
        _say(bot, T2, "\U0001f44d\U0001f3fd \u2764\ufe0f", thread),
        _say(bot, T3, "O: :clap::skin-tone-2:", thread),
        _say(bot, PRESENTER, ":pray:", thread),
        _say(bot, T2, "+1!", thread),
        _say(bot, PRESENTER, ":)", thread),
        _say(bot, T3, "\u200b\u200b \u2060", thread),  # nothing visible: no empty bullet
    ]
    words = _say(bot, T1, "Two colours of ink :eyes:", thread)
    assert _recorded(bot, words).text == "Two colours of ink :eyes:"
    marks = _say(bot, T3, "!!!", thread)
    assert _recorded(bot, marks).text == "!!!"
    hidden = _say(bot, T2, "\u200b?", thread)  # a mark is a word, after a zero-width space too
    assert _recorded(bot, hidden).text == "\u200b?"
    _settle(bot)
    assert [_row(bot, ts) for ts in nods] == [None] * len(nods)
    assert [bot.standin.reactions(CHANNEL, ts) for ts in nods] == [[]] * len(nods)
    assert _ephemerals_to(bot, PRESENTER) == []

    # Edited into words, a nod is a reply. A reply edited down to a nod keeps its words (and
    # its tag) until its next edit brings new ones: nothing it said is lost on the way.
    _edit(bot, T1, nods[0], thread, "All three pages are numbered", before=":+1:")
    assert _recorded(bot, nods[0]).text == "All three pages are numbered"
    _edit(bot, T1, words, thread, ":eyes:", before="Two colours of ink :eyes:")
    _settle(bot)
    assert _row(bot, words).text == "Two colours of ink :eyes:"  # type: ignore[union-attr]
    _edit(bot, T1, words, thread, "Two colours of ink, blue and red", before=":eyes:")
    bot.wait_until(lambda: _row(bot, words).text == "Two colours of ink, blue and red")  # type: ignore[union-attr]
    _next(bot, 3)
    _settle(bot)
    assert _notes(bot).participation["total"] == 4


def test_a_reply_of_blank_letters_alone_is_not_kept(bot: Bot) -> None:
    # The Hangul filler is what people paste to send a message that shows nothing: it was
    # recorded, counted, and shown in the notes as an empty bullet. Korean words are kept.
    thread = _start_at_step(bot, 2)
    blanks = [
        _say(bot, T1, "\u3164", thread),
        _say(bot, T2, "\u3164 \u200b\uffa0", thread),
    ]
    words = _say(bot, T3, "학생이 표를 다시 그렸다", thread)
    assert _recorded(bot, words).text == "학생이 표를 다시 그렸다"
    _settle(bot)
    assert [_row(bot, ts) for ts in blanks] == [None, None]
    assert [bot.standin.reactions(CHANNEL, ts) for ts in blanks] == [[], []]


def test_a_reply_whose_words_come_only_in_rich_text_blocks_is_kept(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)

    def section(*elements: dict[str, Any]) -> dict[str, Any]:
        return {"type": "rich_text_section", "elements": list(elements)}

    words = {"type": "text", "text": "Q: Did <all> students get "}
    blocks = [
        {
            "type": "rich_text",
            "block_id": "rt",
            "elements": [
                section(words, {"type": "link", "url": "https://x/r", "text": "the rubric"}),
                {
                    "type": "rich_text_list",
                    "style": "bullet",
                    "elements": [
                        section({"type": "user", "user_id": T2}, {"type": "text", "text": " & me"})
                    ],
                },
            ],
        }
    ]
    # Sent with its words in the blocks only, as some clients and integrations do.
    ts = str(bot.standin.add_message(CHANNEL, T1, "", thread_ts=thread, blocks=blocks)["ts"])
    message = {"type": "message", "channel": CHANNEL, "user": T1, "ts": ts, "thread_ts": thread}
    bot.event({**message, "text": "", "blocks": blocks})
    row = _recorded(bot, ts)
    assert row.tag == "question"
    assert row.text == "Did <all> students get the rubric (https://x/r)\n• @teacher2 & me"
    # An edit that comes the same way changes it.
    blocks[0]["elements"] = [section({"type": "text", "text": "Q: Did they all get it?"})]
    _edit(bot, T1, ts, thread, "", blocks=blocks)
    _settle(bot)
    assert _row(bot, ts).text == "Did they all get it?"  # type: ignore[union-attr]


def test_a_deletion_or_an_edit_delivered_before_its_reply_still_counts(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)

    def written(user: str, text: str) -> str:
        return str(bot.standin.add_message(CHANNEL, user, text, thread_ts=thread)["ts"])

    # Slack delivers the deletion first and the message after it (a retry after downtime) ...
    gone = written(T3, "Sorry, wrong channel: the parent meeting is at 4")
    _delete(bot, T3, gone, thread)
    _settle(bot)
    bot.reply(T3, "Sorry, wrong channel: the parent meeting is at 4", thread, ts=gone)
    # ... or the edit first, and then the message as it was first written.
    fixed = written(T1, "The esay has fve paragrphs")
    _edit(bot, T1, fixed, thread, "The essay has five paragraphs")
    _settle(bot)
    bot.reply(T1, "The esay has fve paragrphs", thread, ts=fixed)
    # In order, and then a late edit of the deleted reply.
    later = _say(bot, T2, "The title is underlined", thread)
    _recorded(bot, later)
    _delete(bot, T2, later, thread)
    _settle(bot)
    _edit(bot, T2, later, thread, "The title is underlined twice")
    _settle(bot)

    assert _section(_notes(bot), "observation") == ["The essay has five paragraphs"]
    assert bot.standin.reactions(CHANNEL, gone) == []
    assert bot.standin.reactions(CHANNEL, fixed) == ["eyes"]
    assert _row(bot, later).text == ""  # type: ignore[union-attr]


# -- ignored without error ------------------------------------------------------------------------
def test_stray_reactions_and_unknown_edits_are_ignored(bot: Bot) -> None:
    describing = _start_at_step(bot, 2)
    recorded = _say(bot, T1, "The title is underlined.", describing)
    _recorded(bot, recorded)
    _next(bot, 3)

    stranger = bot.standin.add_message(CHANNEL, T3, "lunch?")["ts"]
    _react(bot, FACILITATOR, "thought_balloon", stranger)  # not a contribution
    _react(bot, FACILITATOR, "not_an_emoji_we_know", recorded)
    _react(bot, FACILITATOR, "bulb", "999.000", channel="C_ELSEWHERE")
    bot.event(
        {
            "type": "reaction_added",
            "user": FACILITATOR,
            "reaction": "bulb",
            "item": {"type": "file", "file": "F1"},
            "event_ts": "1.6",
        }
    )
    bot.event(
        {
            "type": "reaction_removed",
            "user": FACILITATOR,
            "reaction": "eyes",
            "item": {"type": "message", "channel": CHANNEL, "ts": recorded},
            "event_ts": "1.7",
        }
    )
    bot.event(
        {
            "type": "message",
            "subtype": "message_changed",
            "channel": CHANNEL,
            "message": {
                "type": "message",
                "user": T3,
                "ts": "123.456",
                "thread_ts": describing,
                "text": "edited, never recorded",
            },
            "previous_message": {"ts": "123.456", "thread_ts": describing},
            "ts": "3.0",
        }
    )
    bot.event(
        {
            "type": "message",
            "subtype": "message_deleted",
            "channel": CHANNEL,
            "deleted_ts": "123.457",
            "previous_message": {"ts": "123.457", "thread_ts": describing},
            "ts": "3.1",
        }
    )
    _settle(bot)  # every event handled, none left failing

    assert _row(bot, "123.456") is None
    row = _row(bot, recorded)
    assert row is not None and row.tag == "observation"
    assert bot.standin.reactions(CHANNEL, recorded) == ["eyes"]


def test_a_reply_in_a_closed_steps_thread_is_kept_and_told_where_the_group_is(bot: Bot) -> None:
    # A teacher catching up on an earlier step: PRODUCT 3.3, a reply in a step's thread is a
    # contribution, tagged as that step collects.
    thread = _start_at_step(bot, 2)
    getting_started = str(bot.step_posts()[0]["ts"])
    late = [_say(bot, T1, f"One more thought {k}", getting_started) for k in range(2)]
    bot.command("pause")
    paused = _say(bot, T2, "And one from me", getting_started)
    _settle(bot)
    for ts in (*late, paused):
        _recorded(bot, ts)
    assert [_row(bot, ts).step_index for ts in late] == [1, 1]  # type: ignore[union-attr]
    told = _ephemerals_to(bot, T1)
    assert len(told) == 1  # once, however many replies
    assert told[0]["thread_ts"] == getting_started
    words = json.dumps(told[0]["blocks"])
    assert "Step 1, *Getting Started*, has closed; I have kept your reply" in words
    assert "step 2, *Describing the Student Work*" in words
    assert "paused" in json.dumps(_ephemerals_to(bot, T2)[0]["blocks"])
    bot.command("resume")

    # Once the session is over, its threads are anyone's to talk in; what is said there is not
    # kept, and its author hears so once (see test_a_reply_after_the_end_is_told_...).
    bot.command("end")
    _say(bot, T3, "Thanks all", thread)
    _settle(bot)
    assert bot.recorded()[-1] == paused
    notes = json.dumps(bot.posts())
    assert "One more thought 1" in notes and "And one from me" in notes


def test_a_reply_written_before_its_step_closed_is_not_told_it_closed(bot: Bot) -> None:
    # Written while step 2 was open, delivered a moment after the facilitator's `next`: on time,
    # kept in step 2, and its author is told nothing of a step that closed.
    thread = _start_at_step(bot, 2)
    added = bot.standin.add_message(CHANNEL, T1, "The letter has 3 paragraphs", thread_ts=thread)
    ts = str(added["ts"])
    _next(bot, 3)
    bot.reply(T1, "The letter has 3 paragraphs", thread, ts=ts)
    row = _recorded(bot, ts)
    _settle(bot)
    assert (row.step_index, row.tag) == (2, "observation")
    assert _ephemerals_to(bot, T1) == []
    # Written after the close, a reply there is told where the group is.
    later = _say(bot, T1, "And a signature at the end", thread)
    _recorded(bot, later)
    _settle(bot)
    (told,) = _ephemerals_to(bot, T1)
    assert "has closed" in json.dumps(told["blocks"])


def test_the_presenter_writing_in_a_closed_listening_step_hears_once_of_a_private_note(
    bot: Bot,
) -> None:
    # They were told the step had closed and their reply was "kept in its notes" (the group's),
    # and, beside it, that they listen in this step.
    _start_at_step(bot, 3)
    describing = str(bot.step_posts()[1]["ts"])
    ts = [_say(bot, PRESENTER, f"Note to self {k}", describing) for k in range(2)]
    _settle(bot)
    assert [_recorded(bot, t).audience for t in ts] == ["presenter", "presenter"]
    (told,) = _ephemerals_to(bot, PRESENTER)
    words = json.dumps(told["blocks"])
    assert told["text"] == "This step has closed; your reply is kept as a private note for you."
    assert "Step 2, *Describing the Student Work*, has closed" in words
    assert "as a private note for you: I will send you your notes when step 5" in words
    assert "step 3, *Interpreting the Student Work*" in words and "in its notes" not in words


def test_the_presenter_late_in_getting_started_is_not_sent_to_a_step_where_they_listen(
    bot: Bot,
) -> None:
    # Their statement of the assignment, written after the group moved on to describing: they
    # were told to reply in that step's thread "to join in there".
    _start_at_step(bot, 2)
    getting_started = str(bot.step_posts()[0]["ts"])
    ts = _say(bot, PRESENTER, "Compare 3/4 and 5/8, with a drawing.", getting_started)
    assert _recorded(bot, ts).audience == "group"
    bot.wait_until(lambda: len(_ephemerals_to(bot, PRESENTER)) == 1)
    words = json.dumps(_ephemerals_to(bot, PRESENTER)[0]["blocks"])
    assert "I have kept your reply in its notes" in words
    assert "step 2, *Describing the Student Work*, where you listen." in words
    assert "join in" not in words
    # A teacher catching up there is still sent on to the open step.
    _say(bot, T1, "Thanks, reading it now", getting_started)
    bot.wait_until(lambda: len(_ephemerals_to(bot, T1)) == 1)
    assert "reply in that step's thread" in json.dumps(_ephemerals_to(bot, T1)[0]["blocks"])


def test_a_reply_after_the_end_is_told_once_it_is_not_in_the_notes(bot: Bot) -> None:
    # A teacher catching up late on a day-long session wrote in a step's thread after the end:
    # nothing said that the notes had gone out without it.
    thread = _start_at_step(bot, 2)
    bot.command("end")
    _settle(bot)
    late = [_say(bot, T1, f"Catching up: the graph is unlabelled {k}", thread) for k in range(2)]
    _say(bot, T2, "Me too", str(bot.step_posts()[0]["ts"]))
    _settle(bot)
    assert bot.recorded() == [] and bot.standin.reactions(CHANNEL, late[0]) == []
    (told,) = _ephemerals_to(bot, T1)  # once a session, however many replies
    assert told["thread_ts"] == thread
    assert "your reply isn't in its notes" in told["text"]
    assert "I haven't added your reply" in json.dumps(told["blocks"])
    assert len(_ephemerals_to(bot, T2)) == 1


def test_a_reply_long_after_the_end_is_just_talk(
    workspace: SlackStandin, database_url: str
) -> None:
    clock = HeldClock(datetime.now(UTC))
    bot = Bot(workspace, database_url, clock=clock).start()
    try:
        thread = _start_at_step(bot, 2)
        bot.command("end")
        _settle(bot)
        clock.advance(TOLD_AFTER_THE_END.total_seconds() + 60)
        _say(bot, T1, "Looking back at this one", thread)
        _settle(bot)
        assert _ephemerals_to(bot, T1) == []
    finally:
        bot.stop()


def test_a_reply_in_an_earlier_sessions_step_is_told_where_the_running_one_is(
    workspace: SlackStandin, database_url: str
) -> None:
    # Last week's Describe thread, answered while this week's session runs in the channel: the
    # reply was dropped without a word (told only that last week's notes had gone out, within
    # three days of their end), where one in any other thread is told where the group is.
    clock = HeldClock(datetime.now(UTC))
    bot = Bot(workspace, database_url, clock=clock).start()
    try:
        last_week = _start_at_step(bot, 2)
        bot.command("end")
        _settle(bot)
        clock.advance(TOLD_AFTER_THE_END.total_seconds() + 60)
        bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
        bot.wait_until(lambda: len(bot.step_posts()) == 3)
        for k in range(2):
            _say(bot, T1, f"The graph is unlabelled {k}", last_week)
        _settle(bot)
        assert bot.recorded() == []
        (told,) = _ephemerals_to(bot, T1)  # once a session
        assert told["thread_ts"] == last_week
        words = json.dumps(told["blocks"])
        assert "isn't in the notes" in words and "step 1, *Getting Started*" in words
    finally:
        bot.stop()


def test_a_reply_under_the_header_is_told_where_it_counts(bot: Bot) -> None:
    _start_at_step(bot, 2)
    header = str(bot.posts()[0]["ts"])
    said = [_say(bot, T1, f"The student showed the steps {k}", header) for k in range(2)]
    _settle(bot)
    assert bot.recorded() == []  # not a step's thread: not kept
    (told,) = _ephemerals_to(bot, T1)  # once, however many replies
    assert told["thread_ts"] == header
    words = json.dumps(told["blocks"])
    assert "haven't kept your reply" in words and "step 2, *Describing the Student Work*" in words
    assert said and _ephemerals_to(bot, T2) == []
    # The presenter, who listens in this step, is not told that writing there counts: it is a
    # private note for them.
    _say(bot, PRESENTER, "Some background on the class", header)
    bot.wait_until(lambda: len(_ephemerals_to(bot, PRESENTER)) == 1)
    words = json.dumps(_ephemerals_to(bot, PRESENTER)[0]["blocks"])
    assert "where you listen: what you write in its thread is kept as a private note" in words
    assert "it counts" not in words

    # Once the session is over, its header's thread is where the notes are, and anyone's.
    bot.command("end")
    _say(bot, T3, "Thanks all", header)
    _settle(bot)
    assert _ephemerals_to(bot, T3) == []


def test_a_reply_with_a_tag_on_a_later_line_is_told_a_reply_keeps_one(bot: Bot) -> None:
    # "O: ...\nI: ..." in one message: the interpretation sat among the observations, and its
    # author, who had tagged it, was not told.
    thread = _start_at_step(bot, 2)
    first = _say(bot, T1, "O: two circles\nI: she compares numerators\nQ: is it a draft?", thread)
    assert _recorded(bot, first).tag == "observation"  # one reply, one tag
    _say(bot, T1, "O: four parts\nI: she trusts the rule", thread)
    alone = _say(bot, T2, "O: the title is underlined\nO: the axes have no labels", thread)
    # So too a list, as Slack sends one made in its composer.
    listed = _say(bot, T3, "• O: two circles\n• I: she compares numerators", thread)
    _settle(bot)
    assert _row(bot, alone).tag == "observation"  # type: ignore[union-attr]
    assert (_row(bot, listed).tag, _row(bot, listed).text) == (  # type: ignore[union-attr]
        "observation",
        "• two circles\n• I: she compares numerators",
    )
    assert len(_ephemerals_to(bot, T3)) == 1
    (told,) = _ephemerals_to(bot, T1)  # once a step
    words = json.dumps(told["blocks"])
    assert "all of this one is in the notes as an observation" in words
    assert "To have an interpretation or a question count as such, write each" in words
    assert _ephemerals_to(bot, T2) == []  # the same tag on every line: nothing to say


def test_warm_and_cool_feedback_in_one_line_is_told_a_reply_keeps_one(bot: Bot) -> None:
    # "Warm: strong voice. Cool: few counterclaims", as teachers give both in one message: the
    # cool feedback sat among the warm, its prefix in the words, and its author was not told.
    thread = _start_at_step(bot, 4, "tuning")
    both = _say(bot, T1, "Warm: strong voice. Cool: few counterclaims", thread)
    assert _recorded(bot, both).tag == "warm"
    # A letter alone after a full stop is as likely a worksheet's question: nothing to say.
    _say(bot, T2, "Cool: part B is thin. Q: 5 was left blank by most", thread)
    _settle(bot)
    (told,) = _ephemerals_to(bot, T1)
    words = json.dumps(told["blocks"])
    assert "all of this one is in the notes as warm feedback" in words
    assert "To have cool feedback count as such, write it as a reply of its own" in words
    assert _ephemerals_to(bot, T2) == []


def _top_level(bot: Bot, user: str, text: str, **extra: Any) -> None:
    """A message written in the channel itself, not in a thread, as Slack delivers it."""
    ts = str(bot.standin.add_message(CHANNEL, user, text)["ts"])
    message = {"type": "message", "channel": CHANNEL, "user": user, "text": text, "ts": ts}
    assert bot.event({**message, "channel_type": "channel", **extra}) == 200


def test_a_message_at_the_channels_top_level_is_told_once_where_replies_go(bot: Bot) -> None:
    # A teacher who answers the step in the channel instead of its thread: the words were not
    # kept, and nobody said so.
    _start_at_step(bot, 2)
    _top_level(bot, T1, "I notice the circles are divided evenly")
    # A channel's messages are answered side by side: a few in a row, told once all the same.
    for n in range(4):
        _top_level(bot, T1, f"Also the labels are missing ({n})")
    bot.settle()
    assert bot.recorded() == []  # not a step's thread: not kept
    (told,) = _ephemerals_to(bot, T1)  # once, however many messages
    assert told.get("thread_ts") is None  # in the channel, where they wrote
    words = json.dumps(told["blocks"])
    assert "isn't in the notes" in words and "step 2, *Describing the Student Work*" in words
    # The presenter, who listens in this step, hears that the thread keeps a private note.
    _top_level(bot, PRESENTER, "Some background on the class")
    # Neither a bot's post nor someone joining is anyone's reply.
    _top_level(bot, T2, "Deploy finished", bot_id="B_OTHER")
    _top_level(bot, T3, "<@U_T3> has joined the channel", subtype="channel_join")
    bot.settle()
    (listening,) = _ephemerals_to(bot, PRESENTER)
    assert "where you listen: what you write in its thread is kept as a private note" in (
        json.dumps(listening["blocks"])
    )
    assert _ephemerals_to(bot, T2) == _ephemerals_to(bot, T3) == []
    # Once a session: the next step doesn't say it again.
    _next(bot, 3)
    _top_level(bot, T1, "She compares numerators only")
    bot.settle()
    assert len(_ephemerals_to(bot, T1)) == 1
    # Once it has ended, the channel is the team's again.
    bot.command("end")
    bot.settle()
    _top_level(bot, T2, "Thanks all, see you Tuesday")
    bot.settle()
    assert _ephemerals_to(bot, T2) == []


def test_a_reply_in_a_thread_that_is_no_steps_is_told_once_where_replies_go(bot: Bot) -> None:
    # A teacher asks the group something in the channel, and another answers in its thread:
    # a thread of the channel's own talk, not a step's, whose words were dropped unsaid.
    _start_at_step(bot, 2)
    asked = str(bot.standin.add_message(CHANNEL, T1, "What do you see in question 3?")["ts"])
    said = [_say(bot, T2, f"She skipped part {k}", asked) for k in "ab"]
    bot.settle()
    assert bot.recorded() == [] and said
    (told,) = _ephemerals_to(bot, T2)  # once, however many replies
    assert told["thread_ts"] == asked  # where they wrote
    words = json.dumps(told["blocks"])
    assert "isn't in the notes" in words and "step 2, *Describing the Student Work*" in words
    bot.command("end")
    bot.settle()
    _say(bot, T3, "Thanks all", asked)
    bot.settle()
    assert _ephemerals_to(bot, T3) == []


def test_a_reaction_after_the_session_ended_changes_nothing(bot: Bot) -> None:
    thread = _start_at_step(bot, 2)
    ts = _say(bot, T1, "Four of the answers are circled.", thread)
    _recorded(bot, ts)
    bot.command("end")
    _settle(bot)
    _react(bot, FACILITATOR, "thought_balloon", ts)
    _settle(bot)
    assert _row(bot, ts).tag == "observation"  # type: ignore[union-attr]


# -- units ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol_id", sorted(LIBRARY))
def test_every_norm_message_renders_as_valid_blocks(protocol_id: str) -> None:
    from bot.blocks import render_message, render_messages

    protocol = LIBRARY[protocol_id]
    session = ProtocolSession(id=7, channel_id=CHANNEL, presenter_id=PRESENTER)
    long_text = "The student wrote <!channel> & *this* " * 200
    row = Contribution(id=42, text=long_text, step_index=1)
    for index, step in enumerate(protocol.steps, start=1):
        for template in (
            "nudge_interpretation.j2",
            "parked_question.j2",
            "presenter_listens.j2",
            "group_listens.j2",
            "several_tags.j2",
        ):
            message = render_message(
                template,
                session=session,
                protocol=protocol,
                step=step,
                index=index,
                tag=step.collects,
                others=["interpretation", "question"],
                contribution=row,
                interpreting=_interpreting(protocol, index),
                presenter_step=next_presenter_step(protocol, index),
            )
            assert message.text and message.blocks
            assert "<!channel>" not in json.dumps(message.blocks)
        for parked in (True, False):
            done = render_message(
                "nudge_done.j2",
                parked=parked,
                protocol=protocol,
                interpreting=_interpreting(protocol, index),
            )
            assert done.blocks
    notes = [Contribution(text=long_text, step_index=k) for k in range(1, 4)] * 10
    turn = render_messages(
        "presenter_notes.j2",
        session=session,
        protocol=protocol,
        step=protocol.steps[-1],
        index=len(protocol.steps),
        notes=notes,
        questions=[],
    )
    assert len(turn) > 1  # long notes come in several messages, each within Slack's limits
    assert "<!channel>" not in json.dumps([m.blocks for m in turn])
    asked = {"user": "U_T1", "step_index": 2, "tag": "question", "ts": "1.0", "audience": "group"}
    questions = [notes_mod.Item(text=long_text, **asked)] * 30
    for kept in (notes, []):
        turn = render_messages(
            "presenter_notes.j2",
            session=session,
            protocol=protocol,
            step=protocol.steps[-1],
            index=len(protocol.steps),
            notes=kept,
            questions=questions,
        )
        assert len(turn) > 1 and "<!channel>" not in json.dumps([m.blocks for m in turn])


def _interpreting(protocol: Protocol, index: int) -> int | None:
    from bot.engine.replies import _interpreting_step

    return _interpreting_step(protocol, index)


def test_the_presenters_turn_is_the_first_speaking_step_after_listening() -> None:
    atlas = LIBRARY["atlas"]
    assert [k for k in range(1, 7) if opens_presenter_turn(atlas, k)] == [5]
    assert next_presenter_step(atlas, 2) == 5
    assert next_presenter_step(atlas, 6) is None
    for protocol in LIBRARY.values():
        for k in range(1, len(protocol.steps) + 1):
            if opens_presenter_turn(protocol, k):
                assert protocol.step(k).presenter != "silent"
                assert protocol.step(k - 1).presenter == "silent"


@pytest.mark.parametrize("protocol_id", sorted(LIBRARY))
def test_notes_sections_keep_the_specs_order_for_tags_no_step_collects(protocol_id: str) -> None:
    protocol = LIBRARY[protocol_id]
    order = notes_mod.section_order(protocol)
    assert sorted(order) == sorted(TAGS)
    collected = list(dict.fromkeys(step.collects for step in protocol.steps))
    assert [t for t in order if t in collected] == collected  # protocol order
    assert order.index("cool") == order.index("warm") + 1
    if protocol_id == "atlas":  # PRODUCT.md 3.2
        assert order[order.index("implication") :] == [
            "implication",
            "question",
            "warm",
            "cool",
            "reflection",
            "debrief",
        ]


@pytest.mark.parametrize(
    ("user", "step_index", "text", "expected"),
    [
        (PRESENTER, 2, "Is this the first draft?", ("note", "presenter", "presenter_listens.j2")),
        (T1, 2, "Is this the first draft?", ("question", "group", "parked_question.j2")),
        (T1, 2, "Q: why this piece?", ("question", "group", "parked_question.j2")),
        (T1, 2, "The essay is disorganized.", ("observation", "group", "nudge_interpretation.j2")),
        (T1, 2, "O: The essay is disorganized.", ("observation", "group", None)),
        (T1, 2, "I: she rushed", ("interpretation", "group", None)),
        (T1, 2, "The essay has three paragraphs.", ("observation", "group", None)),
        (T1, 3, "Is this the first draft?", ("question", "group", "parked_question.j2")),
        (T1, 5, "Is this the first draft?", ("reflection", "group", None)),
        (PRESENTER, 5, "I learned a lot", ("reflection", "group", None)),
        (T1, 2, "Note: the student erased the first answer twice", ("observation", "group", None)),
        (T1, 2, "Note: she clearly rushed", ("observation", "group", "nudge_interpretation.j2")),
        (T1, 6, "Reflection: this protocol helped me slow down", ("debrief", "group", None)),
    ],
)
def test_how_a_reply_is_read(
    user: str, step_index: int, text: str, expected: tuple[str, str, str | None]
) -> None:
    from bot.engine.judgment import strip_tag_prefix

    step = LIBRARY["atlas"].step(step_index)
    explicit, _ = strip_tag_prefix(text)
    assert Replies._read(PRESENTER, step, user, explicit, text) == expected


def test_the_reflection_section_is_the_presenters_until_others_reflect_too(bot: Bot) -> None:
    """ATLAS's reflection step: the presenter replies first, then everyone adds what they
    learned; the section's title says whose reflections it holds."""

    def titles() -> list[str]:
        with bot.db.session() as s:
            session = s.scalars(select(ProtocolSession)).one()
            notes = notes_mod.build_notes(s, session, LIBRARY[session.protocol_id])
            shown = [b for m in notes_mod.notes_messages(notes) for b in m.blocks]
            exported = notes_mod.export_markdown(notes)
        return [b["text"]["text"].split("\n")[0] for b in shown if b["type"] == "section"] + [
            line for line in exported.splitlines() if line.startswith("## ")
        ]

    thread = _start_at_step(bot, 5)
    _recorded(bot, _say(bot, PRESENTER, "I see now she was guessing.", thread))
    assert "*Presenter reflection*" in titles() and "## Presenter reflection" in titles()
    _recorded(bot, _say(bot, T1, "I learned to slow down before judging.", thread))
    assert "*Reflections*" in titles() and "## Reflections" in titles()
    assert "*Presenter reflection*" not in titles()


def test_interpretations_parked_where_nobody_described_are_not_said_to_come_from_describing(
    bot: Bot,
) -> None:
    # DESE Everyday has no describing step: an interpretation tagged while the team set out its
    # expectations was listed in step 2 under "Interpretations parked while we were describing".
    thread = _start_at_step(bot, 1, "dese-everyday")
    _recorded(bot, _say(bot, T1, "I: they may never have seen an exemplar", thread))
    _next(bot, 2)
    extent = json.dumps(bot.step_posts()[1]["blocks"])
    assert "they may never have seen an exemplar" in extent
    assert "describing" not in extent
    assert "Interpretations parked in earlier steps" in extent


def test_a_presenter_out_of_the_channel_is_told_at_their_turn_to_join_it_again(
    bot: Bot,
) -> None:
    """The presenter left the channel while the group described: their turn's DM (the
    questions parked for them) named a step in a channel that shows them nothing, and said
    nothing of it. One more DM now says they are no longer a member, and to join it again."""
    thread = _start_at_step(bot, 2)
    _recorded(bot, _say(bot, T1, "Is this the first draft?", thread))
    bot.standin.remove_member(CHANNEL, PRESENTER)
    left = {"type": "member_left_channel", "user": PRESENTER, "channel": CHANNEL}
    assert bot.event(left) == 200
    for k in (3, 4, 5):
        _next(bot, k)
    dm = f"D{PRESENTER[1:]}"
    bot.wait_until(lambda: len(bot.standin.messages(dm)) == 2)
    turn, away = bot.standin.messages(dm)
    assert "Is this the first draft?" in json.dumps(turn["blocks"])
    words = json.dumps(away["blocks"])
    assert f"you're no longer a member of <#{CHANNEL}>" in words
    assert f"Please join <#{CHANNEL}> again" in words and f"ask <@{FACILITATOR}>" in words
    _next(bot, 6)
    _settle(bot)
    assert len(bot.standin.messages(dm)) == 2  # at the turn, not at every later step


def test_nudge_buttons_of_a_reply_edited_or_moved_since_change_nothing(bot: Bot) -> None:
    # The buttons still acted: Keep made a reply tagged a question an observation again, and
    # Park parked as an interpretation a reply edited into a plain description.
    thread = _start_at_step(bot, 2)
    judged = _say(bot, T1, "The ending is weak.", thread)
    row = _recorded(bot, judged)
    bot.wait_until(lambda: len(_ephemerals_to(bot, T1)) == 1)
    _edit(bot, T1, judged, thread, "The ending has two sentences.", before="The ending is weak.")
    bot.wait_until(lambda: _row(bot, judged).text == "The ending has two sentences.")  # type: ignore[union-attr]
    assert bot.action("nudge_park", str(row.id), user=T1)[0] == 200
    bot.wait_until(lambda: len(_responses(bot)) == 1)
    (stale,) = _responses(bot)
    assert "changed since" in stale["text"] and "an observation" in stale["text"]
    _settle(bot)
    assert _row(bot, judged).tag == "observation"  # type: ignore[union-attr]
    assert bot.standin.reactions(CHANNEL, judged) == ["eyes"]
    # Keep still keeps it an observation, which it now reads as.
    assert bot.action("nudge_keep", str(row.id), user=T1)[0] == 200
    bot.wait_until(lambda: len(_responses(bot)) == 2)
    assert "Kept as an observation" in _responses(bot)[1]["text"]

    # Moved to another tag by its author's reaction: the buttons leave it there.
    moved = _say(bot, T2, "She clearly didn't understand fractions.", thread)
    other = _recorded(bot, moved)
    bot.wait_until(lambda: len(_ephemerals_to(bot, T2)) == 1)
    _react(bot, T2, "grey_question", moved)
    bot.wait_until(lambda: _row(bot, moved).tag == "question")  # type: ignore[union-attr]
    assert bot.action("nudge_keep", str(other.id), user=T2)[0] == 200
    bot.wait_until(lambda: len(_responses(bot)) == 3)
    assert "changed since" in _responses(bot)[2]["text"]
    assert "a question" in _responses(bot)[2]["text"]
    _settle(bot)
    assert _row(bot, moved).tag == "question"  # type: ignore[union-attr]

    # A typo fixed in a judgment (no new nudge for it) leaves the buttons working.
    typo = _say(bot, T3, "The drawing is messy", thread)
    third = _recorded(bot, typo)
    bot.wait_until(lambda: len(_ephemerals_to(bot, T3)) == 1)
    _edit(bot, T3, typo, thread, "The drawing is messy.", before="The drawing is messy")
    bot.wait_until(lambda: _row(bot, typo).text == "The drawing is messy.")  # type: ignore[union-attr]
    assert bot.action("nudge_park", str(third.id), user=T3)[0] == 200
    bot.wait_until(lambda: len(_responses(bot)) == 4)
    assert "Parked as an interpretation" in _responses(bot)[3]["text"]


def test_a_file_slack_sends_as_a_stub_is_named_or_said_to_be_out_of_the_bots_sight(
    bot: Bot,
) -> None:
    # Slack sends a file the bot may not see yet as a stub, `"file_access": "check_file_info"`
    # (its name to be asked of files.info), and one it may not see at all as `"file_access":
    # "access_denied"`: the notes said "Shared a file" of both.
    thread = _start_at_step(bot, 1)
    share = {"type": "message", "subtype": "file_share", "channel": CHANNEL, "thread_ts": thread}
    bot.standin.add_file("F_SEEN", "essay-page1.jpg", PRESENTER, title="Essay, page 1")
    stubs = {
        "F_SEEN": {"id": "F_SEEN", "mode": "hidden_by_limit", "file_access": "check_file_info"},
        "F_DENIED": {"id": "F_DENIED", "mode": "hidden_by_limit", "file_access": "access_denied"},
    }
    recorded = {}
    for file_id, stub in stubs.items():
        said = f"Here it is ({file_id})"
        ts = str(bot.standin.add_message(CHANNEL, PRESENTER, said, thread_ts=thread)["ts"])
        bot.event({**share, "user": PRESENTER, "text": said, "ts": ts, "files": [stub]})
        recorded[file_id] = _recorded(bot, ts).text
    seen = recorded["F_SEEN"]
    assert seen.startswith("Here it is (F_SEEN)\nShared Essay, page 1 (https://")
    assert "F_SEEN/essay-page1.jpg)" in seen
    denied = recorded["F_DENIED"]
    assert denied.startswith("Here it is (F_DENIED)\nShared a file ")
    assert "couldn't see" in denied and "hides" not in denied
