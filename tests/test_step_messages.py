"""The step message and the header, edited to say what is so after the schedule moves: extend,
pause, resume, a step closed early or on time, the end."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.blocks import render_message
from bot.engine import controls
from bot.engine.core import Engine
from bot.retention import purge
from bot.store.models import OutboxMessage, ProtocolSession
from tests.harness import CHANNEL, FACILITATOR, PRESENTER, TEACHERS, Bot
from tests.test_controls import _session
from tests.test_engine import HeldClock, actor, outbox, start


def _closing_line(message: dict[str, Any]) -> str:
    context = [b for b in message["blocks"] if b["type"] == "context"]
    return str(context[-1]["elements"][0]["text"])


def _buttons(message: dict[str, Any]) -> list[str]:
    return [
        str(e["action_id"])
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]


def _header(bot: Bot) -> dict[str, Any]:
    (header,) = [m for m in bot.posts() if re.search(r" (starts now|has ended)\.", m["text"])]
    return header


def _plan(bot: Bot) -> list[str]:
    """The header's plan, a line a step: '1. Getting Started · until <!date^...>'."""
    shown = "\n".join(
        str(b["text"]["text"]) for b in _header(bot)["blocks"] if b["type"] == "section"
    )
    return re.findall(r"^\d+\. .*$", shown, flags=re.MULTILINE)


def _at(when: datetime | None) -> str:
    assert when is not None
    return f"<!date^{int(when.timestamp())}^"


def _started(bot: Bot, step: str = "1h") -> None:
    bot.command(f"start atlas <@{PRESENTER}> step {step}")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.settle()


def test_extend_shows_the_new_close_on_the_step_message_and_moves_the_plan(bot: Bot) -> None:
    _started(bot)
    planned = _session(bot).step_closes_at
    assert planned is not None
    assert f"Closes {_at(planned)}" in _closing_line(bot.step_posts()[0])

    bot.command("extend 30m")
    bot.settle()
    closes = _session(bot).step_closes_at
    assert closes == planned + timedelta(minutes=30)
    step = bot.step_posts()[0]
    assert f"Closes {_at(closes)}" in _closing_line(step)
    assert _at(planned) not in json.dumps(step["blocks"])
    assert _buttons(step) == ["step_next", "step_extend", "step_pause"]
    plan = _plan(bot)
    assert f"until {_at(closes)}" in plan[0]
    assert f"until {_at(closes + timedelta(hours=1))}" in plan[1]
    # Edited, not posted again: one header and one step message in the channel.
    assert len(bot.step_posts()) == 1
    assert len([m for m in bot.posts() if " starts now." in str(m.get("text"))]) == 1


def test_pause_and_resume_change_the_step_message_buttons_and_the_plan(bot: Bot) -> None:
    _started(bot)
    bot.command("pause")
    bot.settle()
    left = _session(bot).paused_remaining
    assert left is not None and 3590 <= left <= 3600
    step = bot.step_posts()[0]
    assert re.search(r"\*Paused\*, with (59 min \d+ s|1 h) of this step left", _closing_line(step))
    assert "Closes" not in _closing_line(step)
    # Next is refused while paused: the message offers Resume instead, and Extend.
    assert _buttons(step) == ["step_resume", "step_extend"]
    plan = _plan(bot)
    assert plan[0].endswith("· paused") and all(p.endswith("· after the pause") for p in plan[1:])
    assert "Paused on step 1" in json.dumps(_header(bot)["blocks"])

    # The Resume button on the step message resumes it.
    value = f"{_session(bot).id}:1"
    status, _ = bot.action("step_resume", value)
    assert status == 200
    bot.wait_until(lambda: _session(bot).status == "running")
    bot.settle()
    closes = _session(bot).step_closes_at
    step = bot.step_posts()[0]
    assert f"Closes {_at(closes)}" in _closing_line(step)
    assert _buttons(step) == ["step_next", "step_extend", "step_pause"]
    plan = _plan(bot)
    assert f"until {_at(closes)}" in plan[0]
    assert "Paused on step" not in json.dumps(_header(bot)["blocks"])


def test_an_extend_while_paused_is_said_in_the_thread_and_on_the_step_message(bot: Bot) -> None:
    _started(bot)
    bot.command("pause")
    bot.command("extend 2h")
    bot.settle()
    left = _session(bot).paused_remaining
    assert left is not None and left > 3 * 3600 - 15
    step = bot.step_posts()[0]
    assert re.search(r"\*Paused\*, with (2 h 59 min|3 h) of this step left", _closing_line(step))
    thread = [str(m["text"]) for m in bot.posts() if m.get("thread_ts") == step["ts"]]
    assert any("2 h more while the session is paused" in t for t in thread), thread


def test_a_step_closed_early_says_so_loses_its_buttons_and_the_plan_moves(bot: Bot) -> None:
    _started(bot)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    bot.settle()
    with bot.db.session() as s:
        session = s.scalars(select(ProtocolSession)).one()
        closed = session.steps[0].ended_at
        closes = session.step_closes_at
    first, second = bot.step_posts()
    assert f"*Closed {_at(closed)}" in _closing_line(first)
    assert "still go into its notes" in _closing_line(first)
    assert _buttons(first) == []
    assert _buttons(second) == ["step_next", "step_extend", "step_pause"]
    plan = _plan(bot)
    assert f"closed {_at(closed)}" in plan[0]
    assert f"until {_at(closes)}" in plan[1]
    assert closes is not None and f"until {_at(closes + timedelta(hours=1))}" in plan[2]

    # The end: the open step closes too, the steps never reached say so, the header says where
    # the notes are.
    bot.command("end")
    bot.settle()
    assert _buttons(bot.step_posts()[1]) == []
    assert "*Closed " in _closing_line(bot.step_posts()[1])
    plan = _plan(bot)
    assert "· closed " in plan[0] and "· closed " in plan[1]
    assert all(p.endswith("· not reached") for p in plan[2:])
    assert "Ended " in json.dumps(_header(bot)["blocks"])
    assert "The notes are in this message's thread" in json.dumps(_header(bot)["blocks"])
    assert _header(bot)["text"].startswith("ATLAS - Learning from Student Work has ended.")


def test_a_step_that_closes_on_its_timer_is_shown_closed(bot: Bot) -> None:
    _started(bot, "2s")
    planned = _session(bot).step_closes_at
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    bot.wait_until(lambda: not _buttons(bot.step_posts()[0]))
    assert f"*Closed {_at(planned)}" in _closing_line(bot.step_posts()[0])
    # On time: the plan has not moved, so the header is left as posted.
    assert bot.standin.calls_to("chat.update") and not [
        c for c in bot.standin.calls_to("chat.update") if c.params.get("ts") == _header(bot)["ts"]
    ]


def test_a_step_message_slack_refused_is_not_edited_and_nobody_hears_of_the_edit(
    bot: Bot,
) -> None:
    _started(bot)
    bot.standin.fail_next(
        "chat.postMessage",
        error="invalid_blocks",
        where=lambda p: str(p.get("text", "")).startswith("Step 2"),
    )
    bot.command("next")
    bot.settle()
    dm = f"D{FACILITATOR[1:]}"
    told = bot.posts(dm)
    assert len(told) == 1 and "step 2" in json.dumps(told).lower()
    bot.command("extend 10m")
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    bot.settle()
    assert all(c.params.get("ts") for c in bot.standin.calls_to("chat.update"))
    with bot.db.session() as s:
        edits = s.scalars(
            select(OutboxMessage).where(OutboxMessage.ref.like("edit:step:%:2"))
        ).all()
        assert edits and {(e.status, e.error) for e in edits} == {("failed", "not_posted")}
    # The facilitator heard once that step 2 could not be posted, and nothing of its edits.
    assert bot.posts(dm) == told


def test_a_session_that_outlives_the_retention_setting_still_finds_its_messages(
    bot: Bot,
) -> None:
    # The daily housekeeping with DATA_RETENTION_DAYS=1, two days into a session of day-long
    # steps, deleted the outbox rows of its header and step 1: their edits found no message,
    # and the thread notes went to the channel's top level.
    _started(bot, "3d")
    header_ts, step_ts = _header(bot)["ts"], bot.step_posts()[0]["ts"]
    counts = purge(bot.db, datetime.now(UTC) + timedelta(days=2), retention_days=1)
    assert counts["outbox"] == 0
    bot.command("extend 1d")
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    bot.command("end")
    bot.settle()
    assert "*Closed " in _closing_line(bot.step_posts()[0]) and not _buttons(bot.step_posts()[0])
    assert "Ended " in json.dumps(_header(bot)["blocks"])
    thread = [m for m in bot.posts() if m.get("thread_ts") == step_ts]
    assert any("1 d more" in str(m["text"]) for m in thread)
    assert any(
        str(m["text"]).startswith("Notes from")
        for m in bot.posts()
        if m.get("thread_ts") == header_ts
    )
    # Once the session is over, its posts go as the setting says.
    assert purge(bot.db, datetime.now(UTC) + timedelta(days=2), retention_days=1)["outbox"] > 2
    with bot.db.session() as s:
        assert s.scalars(select(OutboxMessage.id).where(OutboxMessage.status == "sent")).all() == []


def test_an_edit_does_not_wait_behind_tag_reactions_slack_holds_back(bot: Bot) -> None:
    _started(bot)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    bot.settle()
    # Slack asks for a wait on reactions (about 50 a minute): the pause must still show at once.
    bot.standin.fail_next("reactions.add", status=429, retry_after=30)
    reply = bot.reply(TEACHERS[0], "Two number lines, one unlabelled.", bot.step_posts()[1]["ts"])
    bot.wait_until(lambda: bot.standin.faults_left("reactions.add") == 0)
    bot.command("pause")
    bot.wait_until(lambda: _buttons(bot.step_posts()[1]) == ["step_resume", "step_extend"])
    assert bot.standin.reactions(CHANNEL, reply) == []  # still waiting out Slack's 30 s


def test_an_extend_of_the_last_step_does_not_speak_of_steps_after_it(bot: Bot) -> None:
    _started(bot)
    bot.command("extend 10m")
    for _ in range(5):
        bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 6, timeout=20)  # a post a second
    bot.command("extend 10m")
    bot.settle()
    first, last = bot.step_posts()[0], bot.step_posts()[5]
    notes = {
        message["ts"]: [str(m["text"]) for m in bot.posts() if m.get("thread_ts") == message["ts"]]
        for message in (first, last)
    }
    assert any("the steps after it move too" in t for t in notes[first["ts"]])
    (extended,) = [t for t in notes[last["ts"]] if "10 min more" in t]
    assert "steps after it" not in extended


def test_a_pause_at_the_close_says_the_step_closes_on_resume_not_0_min(
    engine: Engine, clock: HeldClock
) -> None:
    start(engine, step_seconds=3600)
    clock.advance(3600)  # due, its timer not run yet
    reply = controls.pause(engine, actor())
    said = render_message(reply.template, **reply.context).text
    assert "at its close: it closes as soon as the session resumes" in said
    assert "0 min" not in said
    (edit,) = [r for r in outbox(engine) if r.method == "chat.update" and "step:" in str(r.ref)]
    shown = json.dumps(edit.payload["blocks"])
    assert "*Paused* at its close: it closes as soon as the session resumes." in shown
    status = engine.status(actor())
    said = json.dumps(render_message(status.template, **status.context).blocks)
    assert "Paused at the step's close" in said and "0 min" not in said


def test_the_pause_note_loses_its_resume_button_once_the_pause_is_over(bot: Bot) -> None:
    _started(bot)
    step_ts = bot.step_posts()[0]["ts"]

    def notes() -> list[dict[str, Any]]:
        return [
            m
            for m in bot.posts()
            if m.get("thread_ts") == step_ts and "paused the session" in m["text"]
        ]

    for ending in ("resume", "end"):
        bot.command("pause")
        bot.settle()
        note = notes()[-1]
        assert _buttons(note) == ["step_resume"]
        bot.command(ending)
        bot.settle()
        note = next(m for m in notes() if m["ts"] == note["ts"])
        assert _buttons(note) == []
        assert "The pause ended <!date^" in json.dumps(note["blocks"])
    assert len(notes()) == 2


def _step_post_deleted(bot: Bot, ts: str) -> None:
    """Someone (a workspace admin: others can't) deletes a step's post, with no replies under
    it: Slack takes it away and sends message_deleted, with the bot's message as it was."""
    (post,) = [m for m in bot.step_posts() if m["ts"] == ts]
    bot.standin.delete_message(CHANNEL, ts)
    previous = {"ts": ts, "user": "U_BOT", "bot_id": "B_BOT", "text": post["text"]}
    event = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": CHANNEL,
        "deleted_ts": ts,
        "previous_message": previous,
        "ts": f"{float(ts) + 1:.6f}",
        "hidden": True,
    }
    assert bot.event(event) == 200


def test_the_open_steps_post_deleted_is_posted_again_and_its_new_thread_collects(
    bot: Bot,
) -> None:
    _started(bot)
    (first,) = bot.step_posts()
    kept = bot.reply(TEACHERS[0], "She drew three boxes.", first["ts"])
    bot.wait_until(lambda: kept in bot.recorded())

    _step_post_deleted(bot, first["ts"])
    bot.wait_until(lambda: len(bot.step_posts()) == 1 and bot.step_posts()[0]["ts"] != first["ts"])
    bot.settle()
    (again,) = bot.step_posts()
    assert (again["text"], again["blocks"]) == (first["text"], first["blocks"])
    with bot.db.session() as s:
        session = s.scalars(select(ProtocolSession)).one()
        assert session.steps[0].message_ts == again["ts"]
    # The facilitator hears of it, and nobody else.
    (told,) = bot.standin.messages(f"D{FACILITATOR[1:]}")
    assert "deleted" in told["text"] and "posted it again" in told["text"]

    # Its new thread is the step's: a reply there is recorded, the one before it kept.
    new = bot.reply(TEACHERS[1], "The last line is crossed out.", again["ts"])
    bot.wait_until(lambda: new in bot.recorded())
    assert bot.recorded() == [kept, new]
    # Edits to the step's message go to the new post.
    bot.command("extend 30m")
    bot.settle()
    assert _closing_line(bot.step_posts()[0]) != _closing_line(again)
    assert len(bot.step_posts()) == 1


def test_a_closed_steps_post_deleted_is_not_posted_again(bot: Bot) -> None:
    _started(bot)
    (first,) = bot.step_posts()
    kept = bot.reply(TEACHERS[0], "She drew three boxes.", first["ts"])
    bot.wait_until(lambda: kept in bot.recorded())
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    bot.settle()

    _step_post_deleted(bot, first["ts"])
    bot.settle()
    assert [m["text"].split(" - ")[0] for m in bot.step_posts()] == ["Step 2 of 6"]
    assert bot.standin.messages(f"D{FACILITATOR[1:]}") == []
    assert bot.recorded() == [kept]
    notes = bot.command("notes")
    assert "She drew three boxes." in json.dumps(notes)


def _copied_into_its_thread(bot: Bot) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A session's first step post deleted with a reply under it, and the step's message the
    bot then posted in that thread: the post (now a tombstone), the reply's ts and the copy."""
    _started(bot)
    (first,) = bot.step_posts()
    kept = _written(bot, TEACHERS[0], "She drew three boxes.", first["ts"])
    bot.wait_until(lambda: kept in bot.recorded())
    _step_post_tombstoned(bot, first["ts"])
    bot.wait_until(lambda: len(_in_thread(bot, first["ts"])) == 1)
    bot.settle()
    (copy,) = _in_thread(bot, first["ts"])
    return first, kept, copy


def _step_post_tombstoned(bot: Bot, ts: str) -> dict[str, Any]:
    """A workspace admin deletes a step's post that has replies under it: Slack keeps a
    tombstone in its place, the thread with it, and sends message_changed (not
    message_deleted) with the tombstone as the message."""
    (post,) = [m for m in bot.step_posts() if m["ts"] == ts]
    tombstone = bot.standin.tombstone_message(CHANNEL, ts)
    previous = {"ts": ts, "user": "U_BOT", "bot_id": "B_BOT", "text": post["text"]}
    event = {
        "type": "message",
        "subtype": "message_changed",
        "channel": CHANNEL,
        "message": tombstone,
        "previous_message": previous,
        "ts": f"{float(ts) + 5:.6f}",
        "hidden": True,
    }
    assert tombstone["thread_ts"] == ts and tombstone["reply_count"] >= 1
    assert bot.event(event) == 200
    return event


def _written(bot: Bot, user: str, text: str, thread_ts: str) -> str:
    """A reply in the thread as Slack has it (history and replies show it) and sends it."""
    ts = str(bot.standin.add_message(CHANNEL, user, text, thread_ts)["ts"])
    return bot.reply(user, text, thread_ts, ts=ts)


def _in_thread(bot: Bot, ts: str) -> list[dict[str, Any]]:
    """The step's messages in the thread of `ts` (not the bot's other words there)."""
    return [
        m
        for m in bot.posts()
        if m.get("thread_ts") == ts and m["ts"] != ts and str(m["text"]).startswith("Step ")
    ]


def test_the_open_steps_post_deleted_with_replies_comes_back_in_its_thread(bot: Bot) -> None:
    _started(bot)
    (first,) = bot.step_posts()
    kept = _written(bot, TEACHERS[0], "She drew three boxes.", first["ts"])
    bot.wait_until(lambda: kept in bot.recorded())

    event = _step_post_tombstoned(bot, first["ts"])
    bot.wait_until(lambda: len(_in_thread(bot, first["ts"])) == 1)
    bot.settle()
    # The step's question and buttons, back in the thread the team replies in.
    (copy,) = _in_thread(bot, first["ts"])
    assert (copy["text"], copy["blocks"]) == (first["text"], first["blocks"])
    assert bot.step_posts() == []
    # The thread is still the step's: a reply there is recorded, the one before it kept.
    new = _written(bot, TEACHERS[1], "The last line is crossed out.", first["ts"])
    bot.wait_until(lambda: new in bot.recorded())
    assert bot.recorded() == [kept, new]

    # The step's later edits go to the copy, none to the tombstone (Slack would refuse them).
    bot.command("extend 30m")
    bot.settle()
    (copy_now,) = _in_thread(bot, first["ts"])
    assert _closing_line(copy_now) != _closing_line(copy)
    with bot.db.session() as s:
        refused = s.scalars(select(OutboxMessage).where(OutboxMessage.status == "failed")).all()
        assert [(row.method, row.error) for row in refused] == []
    # Told again (Slack sends an event more than once), the bot puts up no second copy.
    assert bot.event({**event, "ts": f"{float(event['ts']) + 1:.6f}"}) == 200
    bot.settle()
    assert len(_in_thread(bot, first["ts"])) == 1

    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.settle()
    (closed,) = _in_thread(bot, first["ts"])
    assert _buttons(closed) == []


def test_a_step_whose_post_came_back_in_its_thread_closes_on_schedule_in_that_copy(
    bot: Bot,
) -> None:
    # The clock closes steps in rounds, which read the steps posted again in their thread all
    # at once: the copy, not the tombstone, is the one its close edits.
    _started(bot, "4s")
    (first,) = bot.step_posts()
    kept = _written(bot, TEACHERS[0], "She drew three boxes.", first["ts"])
    bot.wait_until(lambda: kept in bot.recorded())
    _step_post_tombstoned(bot, first["ts"])
    bot.wait_until(lambda: len(_in_thread(bot, first["ts"])) == 1)
    bot.wait_until(lambda: len(bot.step_posts()) == 1 and bot.step_posts()[0]["ts"] != first["ts"])
    bot.settle()
    (closed,) = _in_thread(bot, first["ts"])
    assert _buttons(closed) == []
    with bot.db.session() as s:
        failed = s.scalars(select(OutboxMessage).where(OutboxMessage.status == "failed")).all()
        assert [(row.method, row.error) for row in failed] == []


def test_a_closed_steps_post_deleted_with_replies_is_not_put_back(bot: Bot) -> None:
    _started(bot)
    (first,) = bot.step_posts()
    kept = _written(bot, TEACHERS[0], "She drew three boxes.", first["ts"])
    bot.wait_until(lambda: kept in bot.recorded())
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    bot.settle()

    _step_post_tombstoned(bot, first["ts"])
    bot.settle()
    assert _in_thread(bot, first["ts"]) == []
    assert [m["text"].split(" - ")[0] for m in bot.step_posts()] == ["Step 2 of 6"]
    assert bot.recorded() == [kept]


def test_a_steps_tombstone_gone_with_its_replies_brings_the_step_back_to_the_channel(
    bot: Bot,
) -> None:
    first, _, copy = _copied_into_its_thread(bot)
    # Every reply deleted, the bot's copy too: Slack takes the tombstone away, thread and all,
    # and says so with message_deleted (the tombstone as the previous message).
    bot.standin.delete_message(CHANNEL, copy["ts"])
    bot.standin.delete_message(CHANNEL, first["ts"])
    previous = {
        "type": "message",
        "subtype": "tombstone",
        "text": "This message was deleted.",
        "user": "USLACKBOT",
        "hidden": True,
        "ts": first["ts"],
        "thread_ts": first["ts"],
        "reply_count": 0,
    }
    event = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": CHANNEL,
        "deleted_ts": first["ts"],
        "previous_message": previous,
        "ts": f"{float(first['ts']) + 9:.6f}",
        "hidden": True,
    }
    assert bot.event(event) == 200
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.settle()
    (again,) = bot.step_posts()
    assert again["text"] == first["text"]
    (told,) = bot.standin.messages(f"D{FACILITATOR[1:]}")
    assert "posted it again" in told["text"]
    # The step's edits go to the new post.
    bot.command("extend 30m")
    bot.settle()
    assert _closing_line(bot.step_posts()[0]) != _closing_line(again)
    with bot.db.session() as s:
        refused = s.scalars(select(OutboxMessage).where(OutboxMessage.status == "failed")).all()
        assert [(row.method, row.error) for row in refused] == []


def _refused(bot: Bot) -> list[tuple[str, str | None]]:
    with bot.db.session() as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.status == "failed")).all()
        return [(row.method, row.error) for row in rows]


def _interpreting_closed(bot: Bot) -> tuple[str, str, str]:
    """An ATLAS session moved past Interpreting, which listed an interpretation parked while
    the group described and has a reply in its thread: describing's ts, the parked reply's,
    and interpreting's."""
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    describe = str(bot.step_posts()[1]["ts"])
    parked = _written(bot, TEACHERS[0], "I: she probably guessed", describe)
    bot.settle()
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 3)
    interpreting = str(bot.step_posts()[2]["ts"])
    assert "she probably guessed" in json.dumps(bot.step_posts()[2])
    kept = _written(bot, TEACHERS[1], "Maybe the units row was copied.", interpreting)
    bot.wait_until(lambda: kept in bot.recorded())
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 4)
    bot.settle()
    return describe, parked, interpreting


def _parked_deleted(bot: Bot, describe: str, parked: str) -> None:
    bot.standin.delete_message(CHANNEL, parked)
    event = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": CHANNEL,
        "deleted_ts": parked,
        "previous_message": {"ts": parked, "thread_ts": describe, "user": TEACHERS[0]},
        "ts": f"{float(parked) + 1:.6f}",
        "hidden": True,
    }
    assert bot.event(event) == 200


def test_a_closed_steps_tombstone_gets_no_edits_later(bot: Bot) -> None:
    # Interpreting lists the interpretations parked while the group described; its post,
    # deleted with replies once closed, is a tombstone: an edit of what it listed (a parked
    # reply deleted) went to the tombstone, and Slack refused it.
    describe, parked, interpreting = _interpreting_closed(bot)
    _step_post_tombstoned(bot, interpreting)
    bot.settle()
    tombstone = next(m for m in bot.standin.messages(CHANNEL) if m["ts"] == interpreting)
    _parked_deleted(bot, describe, parked)
    bot.settle()
    bot.command("end")
    bot.settle()
    assert next(m for m in bot.standin.messages(CHANNEL) if m["ts"] == interpreting) == tombstone
    assert _in_thread(bot, interpreting) == []
    assert _refused(bot) == []


def test_an_edit_on_its_way_to_a_post_deleted_since_is_not_a_refusal(bot: Bot) -> None:
    # The edit was tried once (Slack failed it) before the post was deleted with replies: tried
    # again, Slack refuses to edit the tombstone, as the bot knows it would.
    describe, parked, interpreting = _interpreting_closed(bot)
    bot.standin.fail_next("chat.update", status=503, retry_after=3)
    _parked_deleted(bot, describe, parked)

    def tried() -> bool:
        with bot.db.session() as s:
            rows = s.scalars(
                select(OutboxMessage).where(OutboxMessage.method == "chat.update")
            ).all()
            return any(row.status == "pending" and row.attempts >= 1 for row in rows)

    bot.wait_until(tried)
    _step_post_tombstoned(bot, interpreting)
    bot.wait_until(lambda: not tried())
    bot.settle()
    assert _refused(bot) == []


def _header_deleted(bot: Bot, header: dict[str, Any]) -> None:
    """A workspace admin deletes the session's header, with no replies under it."""
    bot.standin.delete_message(CHANNEL, header["ts"])
    previous = {"ts": header["ts"], "user": "U_BOT", "bot_id": "B_BOT", "text": header["text"]}
    event = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": CHANNEL,
        "deleted_ts": header["ts"],
        "previous_message": previous,
        "ts": f"{float(header['ts']) + 1:.6f}",
        "hidden": True,
    }
    assert bot.event(event) == 200


def test_the_header_deleted_while_the_session_runs_is_posted_again_and_gets_the_notes(
    bot: Bot,
) -> None:
    _started(bot)
    step = bot.open_step()
    kept = bot.reply(TEACHERS[0], "She drew three boxes.", step)
    bot.wait_until(lambda: kept in bot.recorded())
    bot.settle()
    header = _header(bot)

    _header_deleted(bot, header)
    bot.wait_until(lambda: any(" starts now." in str(m["text"]) for m in bot.posts()))
    bot.settle()
    again = _header(bot)
    assert again["ts"] != header["ts"]
    assert (again["text"], again["blocks"]) == (header["text"], header["blocks"])
    with bot.db.session() as s:
        assert s.scalars(select(ProtocolSession)).one().header_ts == again["ts"]
    (told,) = bot.standin.messages(f"D{FACILITATOR[1:]}")
    assert "deleted" in told["text"] and "posted it again" in told["text"]

    # The schedule's edits go to the new header, and the notes under it.
    bot.command("extend 30m")
    bot.settle()
    closes = _session(bot).step_closes_at
    assert f"until {_at(closes)}" in _plan(bot)[0]
    bot.command("end")
    bot.settle()
    under = [m for m in bot.posts() if m.get("thread_ts") == again["ts"] and m["ts"] != again["ts"]]
    assert "She drew three boxes." in json.dumps(under)
    assert _refused(bot) == []


def test_the_header_deleted_with_replies_under_it_is_posted_again_in_the_channel(
    bot: Bot,
) -> None:
    _started(bot)
    header = _header(bot)
    _written(bot, TEACHERS[0], "Where do we put our notes?", header["ts"])
    bot.settle()
    tombstone = bot.standin.tombstone_message(CHANNEL, header["ts"])
    previous = {"ts": header["ts"], "user": "U_BOT", "bot_id": "B_BOT", "text": header["text"]}
    event = {
        "type": "message",
        "subtype": "message_changed",
        "channel": CHANNEL,
        "message": tombstone,
        "previous_message": previous,
        "ts": f"{float(header['ts']) + 5:.6f}",
        "hidden": True,
    }
    assert bot.event(event) == 200
    bot.wait_until(lambda: any(" starts now." in str(m["text"]) for m in bot.posts()))
    bot.settle()
    again = _header(bot)
    assert (again["text"], again["blocks"]) == (header["text"], header["blocks"])
    # Told again (Slack sends an event more than once), the bot posts no second header.
    assert bot.event({**event, "ts": f"{float(event['ts']) + 1:.6f}"}) == 200
    bot.settle()
    assert _header(bot)["ts"] == again["ts"]
    (told,) = bot.standin.messages(f"D{FACILITATOR[1:]}")
    assert "posted it again" in told["text"]
    bot.command("extend 30m")
    bot.settle()
    assert _refused(bot) == []
    assert f"until {_at(_session(bot).step_closes_at)}" in _plan(bot)[0]


def test_the_steps_copy_in_its_thread_deleted_is_posted_there_again(bot: Bot) -> None:
    first, kept, copy = _copied_into_its_thread(bot)
    # The admin deletes the bot's copy too (the thread stays: the team's replies are in it).
    bot.standin.delete_message(CHANNEL, copy["ts"])
    previous = {
        "ts": copy["ts"],
        "thread_ts": first["ts"],
        "user": "U_BOT",
        "bot_id": "B_BOT",
        "text": copy["text"],
    }
    event = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": CHANNEL,
        "deleted_ts": copy["ts"],
        "previous_message": previous,
        "ts": f"{float(copy['ts']) + 1:.6f}",
        "hidden": True,
    }
    assert bot.event(event) == 200
    bot.wait_until(
        lambda: [m["ts"] for m in _in_thread(bot, first["ts"])] not in ([], [copy["ts"]])
    )
    bot.settle()
    (again,) = _in_thread(bot, first["ts"])
    assert (again["text"], again["blocks"]) == (copy["text"], copy["blocks"])
    # Told again, the bot puts up no second copy; the step's edits go to the new one.
    assert bot.event({**event, "ts": f"{float(event['ts']) + 1:.6f}"}) == 200
    bot.command("extend 30m")
    bot.settle()
    (now,) = _in_thread(bot, first["ts"])
    assert _closing_line(now) != _closing_line(again)
    new = _written(bot, TEACHERS[1], "The last line is crossed out.", first["ts"])
    bot.wait_until(lambda: new in bot.recorded())
    assert bot.recorded() == [kept, new]
