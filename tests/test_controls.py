"""Facilitator controls over signed HTTP: extend, pause, resume, forget; the closing warning."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from bot.engine import controls
from bot.engine.core import Engine
from bot.engine.replies import Replies
from bot.engine.warnings import NUDGE_AT_MOST, warn_step
from bot.slack_standin import SlackStandin
from bot.store.models import Contribution, ProtocolSession
from tests.harness import CHANNEL, FACILITATOR, PRESENTER, TEACHERS, TEAM, Bot, tables_holding
from tests.test_engine import HeldClock, actor, outbox, start
from tests.test_home import _press_notes

ADMIN = "U_ADMIN"


def _session(bot: Bot) -> ProtocolSession:
    with bot.db.session() as s:
        session = s.scalars(select(ProtocolSession).order_by(ProtocolSession.id.desc())).first()
        assert session is not None
        s.expunge(session)
        return session


def _thread(bot: Bot, ts: str) -> list[str]:
    return [str(m["text"]) for m in bot.posts() if m.get("thread_ts") == ts]


def _pressed(bot: Bot, action_id: str, value: str, user: str = FACILITATOR) -> str:
    """Press a button; the answer sent to the presser."""
    before = len(bot.standin.calls_to("response_url"))
    bot.action(action_id, value, user=user)
    bot.wait_until(lambda: len(bot.standin.calls_to("response_url")) > before)
    return str(bot.standin.calls_to("response_url")[-1].params.get("text", ""))


def test_extend_moves_the_close_and_says_so_in_the_thread(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    before = _session(bot).step_closes_at
    assert before is not None

    assert "Only the facilitator" in bot.command("extend 10m", user=TEACHERS[0])["text"]
    assert _session(bot).step_closes_at == before

    answer = bot.command("extend 1h30m")
    assert "Extended" in answer["text"]
    after = _session(bot).step_closes_at
    assert after is not None and (after - before).total_seconds() == 5400
    step_ts = bot.step_posts()[0]["ts"]
    bot.wait_until(lambda: any("more" in t for t in _thread(bot, step_ts)))

    too_long = bot.command("extend 15d")
    assert "15d" in too_long["text"] and "/protocol extend" in too_long["text"]
    assert _session(bot).step_closes_at == after


def test_pause_freezes_the_step_and_resume_restores_the_time_left(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> step 3s")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    assert "Paused" in bot.command("pause")["text"]
    assert "already paused" in bot.command("pause")["text"]
    paused = _session(bot)
    assert paused.status == "paused" and paused.paused_remaining is not None
    left = paused.paused_remaining
    time.sleep(3.5)  # longer than the step: a paused step must not close
    assert len(bot.step_posts()) == 1 and _session(bot).current_step == 1
    status = json.dumps(bot.command("status"))
    assert f"Paused with {left} s left in this step" in status, status

    resumed_at = time.time()
    assert "Resumed" in bot.command("resume")["text"]
    bot.wait_until(lambda: len(bot.step_posts()) == 2, timeout=10)
    step2 = [
        c
        for c in bot.standin.calls_to("chat.postMessage")
        if str(c.params.get("text", "")).startswith("Step 2")
    ][0]
    assert abs(step2.at - (resumed_at + left)) < 1.5
    assert "not paused" in bot.command("resume")["text"]


def test_forget_deletes_the_stored_replies(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    kept = bot.reply(TEACHERS[0], "I see a table with four rows.", bot.step_posts()[1]["ts"])
    gone = bot.reply(TEACHERS[1], "Wrong thread, sorry", bot.step_posts()[1]["ts"])
    bot.wait_until(lambda: len(bot.standin.calls_to("reactions.add")) == 2)
    deleted = {"type": "message", "subtype": "message_deleted", "channel": CHANNEL}
    previous = {"ts": gone, "thread_ts": bot.step_posts()[1]["ts"], "user": TEACHERS[1]}
    bot.event({**deleted, "deleted_ts": gone, "previous_message": previous})
    bot.settle()
    # Not while the session runs: it would carry on without what was written, and its notes
    # come out short.
    refused = bot.command("forget")["text"]
    assert "Session #1 is still running, so its replies stay until it ends" in refused
    assert "`/protocol end` first" in refused
    # A teacher, who cannot end it, is not told to.
    assert "/protocol end" not in bot.command("forget", user=TEACHERS[0])["text"]
    with bot.db.session() as s:
        assert [t for t in s.scalars(select(Contribution.text)) if t] == [
            "I see a table with four rows."
        ]
    bot.command("end")
    bot.wait_until(lambda: any("Notes from" in str(m.get("text")) for m in bot.posts()))
    assert "Only the facilitator" in bot.command("forget", user=TEACHERS[0])["text"]
    answer = bot.command("forget")
    assert "Deleted 1 stored reply" in answer["text"]
    # Asked again, it does not claim to delete anything a second time.
    again = bot.command("forget")["text"]
    assert "No replies from session #1 are stored: they were deleted already" in again
    assert "Deleted" not in again
    # A typo fixed afterwards, or Slack unfurling a link in it (an edit as well), brings
    # nothing back.
    edited = {"ts": kept, "thread_ts": bot.step_posts()[1]["ts"], "user": TEACHERS[0]}
    changed = {"type": "message", "subtype": "message_changed", "channel": CHANNEL}
    bot.event({**changed, "message": {**edited, "text": "I see a table with five rows."}})
    bot.settle()
    with bot.db.session() as s:
        assert [t for t in s.scalars(select(Contribution.text)) if t] == []
    notes = json.dumps(bot.command("notes"))
    assert "five rows" not in notes
    # The notes say the replies were deleted, not that nobody wrote any.
    assert "Nothing was recorded" not in notes and "have been deleted" in notes


def _describing(bot: Bot) -> str:
    """An ATLAS session on hour-long steps, at step 2 (describing): that step message's ts."""
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    return str(bot.step_posts()[1]["ts"])


def test_closing_warning_counts_in_public_and_nudges_in_private(bot: Bot) -> None:
    describe_ts = _describing(bot)
    bot.reply(TEACHERS[0], "There are two diagrams.", describe_ts)
    # Parked, one for the presenter and one for interpreting: neither is a description.
    bot.reply(TEACHERS[1], "Q: Is this the first draft?", describe_ts)
    bot.reply(TEACHERS[2], "I: she seems to guess", describe_ts)
    bot.wait_until(lambda: len(bot.standin.calls_to("reactions.add")) == 3)

    warn_step(bot.runtime.engine, _session(bot).id, 2)
    bot.wait_until(lambda: any("so far" in t for t in _thread(bot, describe_ts)))
    warning = next(t for t in _thread(bot, describe_ts) if "so far" in t)
    # Everyone in the channel but the silent presenter: the facilitator and three teachers.
    assert "1 of 4 has described so far" in warning
    assert "<@" not in warning  # nobody is named in public
    bot.wait_until(lambda: len(bot.standin.calls_to("conversations.open")) >= 3)
    nudged = {str(c.params["users"]) for c in bot.standin.calls_to("conversations.open")}
    assert nudged == {FACILITATOR, TEACHERS[1], TEACHERS[2]}
    assert PRESENTER not in nudged and TEACHERS[0] not in nudged

    # A stale warning (the step moved on) does nothing.
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 3)
    posts_before = len(bot.posts())
    warn_step(bot.runtime.engine, _session(bot).id, 2)
    bot.settle()
    assert len(bot.posts()) == posts_before


def test_a_member_slack_could_not_describe_is_still_counted_and_nudged(bot: Bot) -> None:
    # Slack answers users.info with a 429 past about 100 a minute: in a big channel, the first
    # closing warning asks about every member. One it could not describe then was taken for a
    # bot, for as long as the process ran: left out of every count, never nudged.
    describe_ts = _describing(bot)
    bot.standin.fail_next(
        "users.info", status=429, retry_after=30, where=lambda p: p.get("user") == TEACHERS[1]
    )
    warn_step(bot.runtime.engine, _session(bot).id, 2)
    bot.wait_until(lambda: any("so far" in t for t in _thread(bot, describe_ts)))
    assert any("0 of 4 have described so far" in t for t in _thread(bot, describe_ts))
    bot.wait_until(lambda: len(bot.standin.calls_to("conversations.open")) >= 4)
    nudged = {str(c.params["users"]) for c in bot.standin.calls_to("conversations.open")}
    assert TEACHERS[1] in nudged


def test_a_step_extended_after_its_warning_is_not_warned_again_but_shows_the_new_close(
    bot: Bot,
) -> None:
    describe_ts = _describing(bot)
    sid = _session(bot).id

    warn_step(bot.runtime.engine, sid, 2)
    bot.wait_until(lambda: any("so far" in t for t in _thread(bot, describe_ts)))
    bot.wait_until(lambda: len(bot.standin.calls_to("conversations.open")) >= 4)
    # The step moves past its warning: an extension, then a pause and a resume re-arm it.
    bot.command("extend 15m")
    warn_step(bot.runtime.engine, sid, 2)
    bot.command("pause")
    bot.command("resume")
    warn_step(bot.runtime.engine, sid, 2)
    bot.settle()

    assert sum("so far" in t for t in _thread(bot, describe_ts)) == 1
    nudged = [str(c.params["users"]) for c in bot.standin.calls_to("conversations.open")]
    assert sorted(nudged) == sorted([FACILITATOR, *TEACHERS])  # each once

    # The one warning shows the close as it now is, and the count as it now stands. (The reply
    # is in Slack's thread too: a resume asks Slack what the thread holds.)
    said = "There are two diagrams."
    posted = bot.standin.add_message(CHANNEL, TEACHERS[0], said, thread_ts=describe_ts)
    bot.reply(TEACHERS[0], said, describe_ts, ts=posted["ts"])
    bot.settle()
    bot.command("extend 10m")
    closes = _session(bot).step_closes_at
    assert closes is not None
    stamp = f"<!date^{int(closes.replace(tzinfo=UTC).timestamp())}^"
    bot.wait_until(
        lambda: any(stamp in t and "1 of 4 has described" in t for t in _thread(bot, describe_ts))
    )
    assert sum("so far" in t for t in _thread(bot, describe_ts)) == 1

    # Paused, it says so; closed early by `next`, it says when it closed.
    def warning() -> str:
        return next((t for t in _thread(bot, describe_ts) if t.startswith(":hourglass_f")), "")

    bot.command("pause")
    bot.wait_until(lambda: "This step is paused, with " in warning())
    assert "left for when the session resumes" in warning() and stamp not in warning()
    bot.command("resume")
    bot.wait_until(lambda: "This step closes " in warning())
    bot.command("next")
    bot.wait_until(lambda: "This step closed " in warning())
    assert warning().endswith("1 of 4 has described.")


def test_closing_warning_counts_nobody_in_a_step_where_only_the_presenter_speaks(
    bot: Bot,
) -> None:
    # "0 of 1 has replied so far" under the Tuning Protocol's Presentation pointed at the
    # presenter in front of the team.
    bot.command(f"start tuning <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    presentation = bot.step_posts()[0]["ts"]
    warn_step(bot.runtime.engine, _session(bot).id, 1)
    bot.wait_until(lambda: any("This step closes" in t for t in _thread(bot, presentation)))
    warning = next(t for t in _thread(bot, presentation) if "This step closes" in t)
    assert " of 1 " not in warning and "so far" not in warning
    # The presenter, who has not replied, hears it in private (they heard nothing before).
    bot.wait_until(lambda: len(bot.standin.calls_to("conversations.open")) >= 1)
    bot.settle()
    nudged = [str(c.params["users"]) for c in bot.standin.calls_to("conversations.open")]
    assert nudged == [PRESENTER]
    dm = [str(p["text"]) for p in bot.posts(f"D{PRESENTER[1:]}")]
    assert len(dm) == 1 and "*Presentation* is your step as the presenter" in dm[0]


def test_closing_warning_counts_nobody_in_a_step_where_no_reply_is_asked(bot: Bot) -> None:
    # The Tuning Protocol's Silent Examination is for reading the work quietly: "0 of 4 have
    # replied so far" under it read as a call to write. A step for everyone keeps its count.
    bot.command(f"start tuning <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    for k in (2, 3):
        bot.command("next")
        bot.wait_until(lambda k=k: len(bot.step_posts()) == k)
    examination = str(bot.step_posts()[2]["ts"])
    warn_step(bot.runtime.engine, _session(bot).id, 3)
    bot.wait_until(lambda: any("This step closes" in t for t in _thread(bot, examination)))
    warning = next(t for t in _thread(bot, examination) if "This step closes" in t)
    assert " of 4 " not in warning and "so far" not in warning, warning

    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 4)
    feedback = str(bot.step_posts()[3]["ts"])
    warn_step(bot.runtime.engine, _session(bot).id, 4)
    bot.wait_until(lambda: any("0 of 4 have replied so far" in t for t in _thread(bot, feedback)))


def test_a_presenter_who_brought_the_work_in_prep_is_not_nudged_in_step_1(bot: Bot) -> None:
    # The Collaborative Assessment Conference's step 1 is the presenter sharing the work, which
    # their prep put in the step already.
    bot.command(f"start collaborative-assessment <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    with bot.db.session() as s:
        s.execute(update(ProtocolSession).values(prep={"link": "https://example.org/work"}))
    warn_step(bot.runtime.engine, _session(bot).id, 1)
    bot.wait_until(
        lambda: any("This step closes" in t for t in _thread(bot, bot.step_posts()[0]["ts"]))
    )
    bot.settle()
    assert bot.standin.calls_to("conversations.open") == []


def test_a_presenter_whose_statement_opens_a_later_step_is_nudged_to_share_the_work(
    bot: Bot,
) -> None:
    # The Conference hears the statement of the assignment only in step 5: a prep with a
    # statement and no link left step 1 asking the presenter to share the work, and its
    # closing warning took the statement for the work and nudged nobody.
    bot.command(f"start collaborative-assessment <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    with bot.db.session() as s:
        s.execute(update(ProtocolSession).values(statement="Compare 3/4 and 5/8 with a drawing."))
    warn_step(bot.runtime.engine, _session(bot).id, 1)
    bot.wait_until(lambda: len(bot.standin.calls_to("conversations.open")) >= 1)
    bot.settle()
    nudged = [str(c.params["users"]) for c in bot.standin.calls_to("conversations.open")]
    assert nudged == [PRESENTER]


@pytest.mark.parametrize("protocol", ["tuning", "consultancy"])
def test_a_presenter_whose_first_step_asks_more_than_the_work_is_nudged_despite_prep(
    bot: Bot, protocol: str
) -> None:
    # The Tuning Protocol's Presentation asks for the context and a focusing question, the
    # Consultancy's first step for the dilemma: step 1 says "you start: reply in this thread as
    # this step asks" under the prep's statement and link, and its warning nudged nobody.
    bot.command(f"start {protocol} <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    prep = {"link": "https://example.org/work"}
    with bot.db.session() as s:
        s.execute(update(ProtocolSession).values(prep=prep, statement="Compare 3/4 and 5/8."))
    warn_step(bot.runtime.engine, _session(bot).id, 1)
    bot.wait_until(lambda: len(bot.standin.calls_to("conversations.open")) >= 1)
    bot.settle()
    nudged = [str(c.params["users"]) for c in bot.standin.calls_to("conversations.open")]
    assert nudged == [PRESENTER]


def test_a_presenter_who_has_replied_in_their_own_step_is_not_nudged(bot: Bot) -> None:
    bot.command(f"start tuning <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    presentation = bot.step_posts()[0]["ts"]
    bot.reply(
        PRESENTER,
        "Ninth graders wrote a lab report; I want to know if the rubric works.",
        presentation,
    )
    bot.wait_until(lambda: len(bot.standin.calls_to("reactions.add")) == 1)
    warn_step(bot.runtime.engine, _session(bot).id, 1)
    bot.wait_until(lambda: any("This step closes" in t for t in _thread(bot, presentation)))
    bot.settle()
    assert bot.standin.calls_to("conversations.open") == []


def test_closing_warning_neither_counts_nor_nudges_the_presenter_where_they_are_asked(
    bot: Bot,
) -> None:
    # The Consultancy's Probing Questions are for the presenter, who may answer: they were
    # nudged privately to ask themselves "What questions could help the presenter think more
    # deeply...", and their answers counted them among those who had asked.
    bot.command(f"start consultancy <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    for k in (2, 3):
        bot.command("next")
        bot.wait_until(lambda k=k: len(bot.step_posts()) == k)
    probing = str(bot.step_posts()[2]["ts"])
    bot.reply(TEACHERS[0], "What would success look like for you?", probing)
    bot.wait_until(lambda: len(bot.standin.calls_to("reactions.add")) == 1)

    warn_step(bot.runtime.engine, _session(bot).id, 3)
    bot.wait_until(lambda: any("so far" in t for t in _thread(bot, probing)))
    # The facilitator and three teachers ask; one has.
    assert any("1 of 4 has replied so far" in t for t in _thread(bot, probing))
    bot.wait_until(lambda: len(bot.standin.calls_to("conversations.open")) >= 3)
    bot.settle()
    nudged = {str(c.params["users"]) for c in bot.standin.calls_to("conversations.open")}
    assert nudged == {FACILITATOR, TEACHERS[1], TEACHERS[2]}

    # The presenter's answer is a note in the thread, not one more question asked.
    bot.reply(PRESENTER, "Higher homework completion, I think.", probing)
    bot.wait_until(lambda: len(bot.standin.calls_to("reactions.add")) == 2)
    bot.command("extend 10m")
    bot.wait_until(lambda: any("1 of 4 has replied" in t for t in _thread(bot, probing)))
    bot.settle()
    assert not any("2 of 5" in t for t in _thread(bot, probing))


@pytest.mark.parametrize(("protocol_id", "step"), [("dese-everyday", 2), ("consultancy", 4)])
def test_closing_warning_says_interpreted_only_where_the_team_described_first(
    bot: Bot, protocol_id: str, step: int
) -> None:
    # DESE's Extent students met the goals (reading and sorting a class set) and the
    # Consultancy's Group Discussion collect interpretations, with nothing described before:
    # their warnings said "1 of 4 has interpreted so far", and counted no other reply.
    bot.command(f"start {protocol_id} <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    for k in range(2, step + 1):
        bot.command("next")
        bot.wait_until(lambda k=k: len(bot.step_posts()) == k)
    thread = str(bot.step_posts()[step - 1]["ts"])
    bot.reply(TEACHERS[0], "Most pieces show the first two criteria met.", thread)
    bot.reply(TEACHERS[1], "Q: were these done in class or at home?", thread)
    bot.wait_until(lambda: len(bot.standin.calls_to("reactions.add")) == 2)
    warn_step(bot.runtime.engine, _session(bot).id, step)
    bot.wait_until(lambda: any("so far" in t for t in _thread(bot, thread)))
    warning = next(t for t in _thread(bot, thread) if "so far" in t)
    assert "interpreted" not in warning
    assert " 2 of " in warning and "have replied so far" in warning, warning


def test_the_closing_warning_of_a_long_step_says_which_day_it_closes(bot: Bot) -> None:
    # A week's step warns more than a day before it closes (and a reader far away may be on
    # another day): the time alone would read as today.
    bot.command(f"start atlas <@{PRESENTER}> step 7d")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    step_ts = bot.step_posts()[0]["ts"]
    session = _session(bot)
    warn_step(bot.runtime.engine, session.id, 1)
    bot.wait_until(lambda: any("This step closes" in t for t in _thread(bot, step_ts)))
    warning = next(t for t in _thread(bot, step_ts) if "This step closes" in t)
    assert session.step_closes_at is not None
    closes = int(session.step_closes_at.timestamp())
    assert f"closes <!date^{closes}^{{date_short_pretty}} at {{time}}|" in warning, warning


def test_step_buttons_extend_pause_and_resume_for_the_facilitator_only(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    step = bot.step_posts()[0]
    labels = [
        e["text"]["text"] for b in step["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert labels == ["Next step", "Extend 15 min", "Pause"]
    value = f"{_session(bot).id}:1"
    before = _session(bot).step_closes_at
    assert before is not None

    bot.action("step_extend", value, user=TEACHERS[0])
    assert _session(bot).step_closes_at == before
    bot.action("step_extend", value)
    bot.action("step_extend", value)  # a double click
    after = _session(bot).step_closes_at
    assert after is not None and (after - before).total_seconds() == 15 * 60
    answers = [str(c.params.get("text", "")) for c in bot.standin.calls_to("response_url")]
    assert sum("I took that as one click" in t for t in answers) == 1

    bot.action("step_pause", value, user=TEACHERS[0])
    assert _session(bot).status == "running"
    bot.action("step_pause", value)
    assert _session(bot).status == "paused"
    bot.wait_until(lambda: any("paused" in t for t in _thread(bot, step["ts"])))
    bot.action("step_resume", value)
    assert _session(bot).status == "running"
    refusals = [c.params.get("text", "") for c in bot.standin.calls_to("response_url")]
    assert sum("Only the facilitator" in str(t) for t in refusals) == 2


def test_a_button_from_an_earlier_session_or_step_leaves_the_running_one_alone(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.command("end")
    old = f"{_session(bot).id}:1"
    bot.command(f"start tuning <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: _session(bot).id != int(old.split(":")[0]))
    new = _session(bot)
    assert (new.current_step, new.status) == (1, "running")

    # Last week's step 1 message: Next, Extend and Pause were live on it.
    for action in ("step_next", "step_extend", "step_pause"):
        bot.action(action, old)
    now = _session(bot)
    assert (now.current_step, now.status, now.step_closes_at) == (1, "running", new.step_closes_at)

    # This session's step 1 message, once the session has moved on to step 2.
    bot.command("next")
    bot.action("step_pause", f"{new.id}:1")
    assert (_session(bot).current_step, _session(bot).status) == (2, "running")

    answers = [str(c.params.get("text", "")) for c in bot.standin.calls_to("response_url")]
    assert sum("from an earlier session" in t for t in answers) == 3
    assert any("already moved on to step 2" in t for t in answers)
    # Its own button still works.
    bot.action("step_pause", f"{new.id}:2")
    assert _session(bot).status == "paused"
    bot.action("step_resume", f"{new.id}:1")
    assert _session(bot).status == "running"


def test_next_typed_as_the_step_closes_on_time_leaves_the_new_step_open(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> step 4s")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)  # step 1 closed on its own
    answer = bot.command("next")  # typed for step 1, arriving as step 2 opens
    assert "I left step 2 of 6, *Describing the Student Work*, open" in answer["text"]
    assert "/protocol next` again" in answer["text"]
    assert (_session(bot).current_step, len(bot.step_posts())) == (2, 2)


def test_next_sent_by_two_people_at_once_moves_the_session_one_step(
    workspace: SlackStandin, database_url: str
) -> None:
    """The facilitator and a workspace admin both send `/protocol next` for step 1: the second
    arrives as step 2 opens, names no step, and leaves it open, saying who moved it."""
    clock = HeldClock(datetime.now(UTC))
    bot = Bot(workspace, database_url, clock=clock).start()
    try:
        bot.command(f"start atlas <@{PRESENTER}> step 1h")
        bot.wait_until(lambda: len(bot.step_posts()) == 1)
        sid = _session(bot).id
        assert "Moved on to step 2" in bot.command("next")["text"]
        clock.advance(1)
        answer = bot.command("next", user=ADMIN)["text"]
        assert "I left step 2 of 6, *Describing the Student Work*, open" in answer
        assert f"<@{FACILITATOR}> moved the session on to it a moment ago" in answer
        assert _session(bot).current_step == 2

        # The admin's Next button on step 2, then the facilitator's `next` typed for step 2.
        bot.action("step_next", f"{sid}:2", user=ADMIN)
        clock.advance(2)
        answer = bot.command("next")["text"]
        assert f"<@{ADMIN}> moved the session on to it a moment ago" in answer
        assert _session(bot).current_step == 3

        # A few seconds on, the same `next` is taken as meant for step 3.
        clock.advance(2)
        assert "Moved on to step 4" in bot.command("next")["text"]
        assert _session(bot).current_step == 4
    finally:
        bot.stop()


def test_next_button_then_next_typed_at_once_closes_one_step(
    workspace: SlackStandin, database_url: str
) -> None:
    """A facilitator presses Next step and, a moment later, types `/protocol next` too: both
    meant the step they were looking at, so the second leaves the new step open and says so.
    Sent again a few seconds on, it moves on."""
    clock = HeldClock(datetime.now(UTC))
    bot = Bot(workspace, database_url, clock=clock).start()
    try:
        bot.command(f"start atlas <@{PRESENTER}> step 1h")
        bot.wait_until(lambda: len(bot.step_posts()) == 1)
        sid = _session(bot).id
        bot.action("step_next", f"{sid}:1")
        assert _session(bot).current_step == 2
        clock.advance(1)
        answer = bot.command("next")["text"]
        assert "I left step 2 of 6, *Describing the Student Work*, open" in answer
        assert "you moved the session on to it a moment ago" in answer
        assert "/protocol next` again in a few seconds" in answer
        assert _session(bot).current_step == 2

        # Sent again a few seconds on, it is meant for step 2.
        clock.advance(3)
        assert "Moved on to step 3" in bot.command("next")["text"]
        # The button of the step it left does nothing; typed again, `next` moves on.
        assert "already moved on to step 3" in _pressed(bot, "step_next", f"{sid}:2")
        assert "Moved on to step 4" in bot.command("next")["text"]
        assert _session(bot).current_step == 4
    finally:
        bot.stop()


def test_words_a_facilitator_reaches_for_point_to_the_control_they_mean(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    for typed, meant in (("skip", "next"), ("finish", "end"), ("unpause", "resume")):
        answer = bot.command(typed)["text"]
        assert f"There is no `/protocol {typed}` (did you mean `{meant}`?)" in answer
    assert "did you mean" not in bot.command("stop")["text"]  # pause or end? not guessed
    assert (_session(bot).current_step, _session(bot).status) == (1, "running")


def test_restart_points_to_what_the_channel_s_session_needs(bot: Bot) -> None:
    """`restart` of a paused session means `resume`; with no session, `start`; of a running
    one neither (nothing starts a step over, and no second session starts beside it)."""
    assert "(did you mean `start`?)" in bot.command("restart")["text"]
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    assert "did you mean" not in bot.command("restart")["text"]
    bot.command("pause")
    assert "(did you mean `resume`?)" in bot.command("restart")["text"]
    assert "(did you mean `resume`?)" in bot.command("Restart please")["text"]
    assert _session(bot).status == "paused"
    bot.command("end")
    assert "(did you mean `start`?)" in bot.command("restart")["text"]


def test_a_double_click_on_finish_says_the_session_is_over(bot: Bot) -> None:
    bot.command(f"start dese-everyday <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.command("next")
    bot.command("next")
    sid = _session(bot).id
    bot.action("step_next", f"{sid}:3")  # Finish
    bot.action("step_next", f"{sid}:3")  # ... and its second click
    bot.action("step_pause", f"{sid}:3", user=TEACHERS[0])
    answers = [str(c.params.get("text", "")) for c in bot.standin.calls_to("response_url")]
    assert "That was the last step" in answers[0]
    assert all("That session is over" in t for t in answers[1:]), answers
    assert not any("Start one with" in t for t in answers)
    assert "No protocol session is running" in bot.command("next")["text"]


# Plain words: the notes escape some characters, and the search below is for the text as typed.
SECRET = "Jayden wrote about his fathers deportation"


def test_forget_while_the_next_session_runs_forgets_the_one_that_ended(bot: Bot) -> None:
    bot.reply(TEACHERS[0], "The last session's words.", bot.open_step())
    bot.command("end")
    bot.wait_until(lambda: any("Notes from" in str(m.get("text")) for m in bot.posts()))
    bot.command(f"start tuning <@{PRESENTER}> step 1h facilitator <@{TEACHERS[2]}>")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    bot.runtime.sender.drain(5)
    bot.reply(TEACHERS[1], "This session's words.", bot.step_posts()[1]["ts"])
    bot.settle()
    # Who facilitates the running session hears whose call the ended one is, by its number.
    refused = bot.command("forget", user=TEACHERS[2])["text"]
    assert "can forget the replies of session #1." in refused
    answer = bot.command("forget")["text"]
    assert "Deleted 1 stored reply from session #1" in answer
    assert "Session #2, running now, is untouched." in answer
    with bot.db.session() as s:
        assert [t for t in s.scalars(select(Contribution.text)) if t] == ["This session's words."]


def test_forget_leaves_no_copy_of_the_replies_anywhere(bot: Bot) -> None:
    ts = bot.open_step()
    with bot.db.session() as s:
        # As the presenter's prep dialog keeps it.
        s.execute(update(ProtocolSession).values(statement=f"Prep: {SECRET}."))
    bot.reply(TEACHERS[0], SECRET, ts)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    bot.runtime.sender.drain(5)
    # An inference in the describing step: the nudge quotes it back to its author.
    bot.reply(TEACHERS[1], f"I think {SECRET} probably", bot.step_posts()[1]["ts"])
    bot.settle()
    assert bot.standin.calls_to("chat.postEphemeral")
    bot.command("end")
    bot.settle()
    assert tables_holding(bot, SECRET)
    sent = len(bot.standin.calls_to("chat.postMessage"))
    assert "Deleted 2 stored replies" in bot.command("forget")["text"]
    bot.settle()
    assert tables_holding(bot, SECRET) == []
    assert len(bot.standin.calls_to("chat.postMessage")) == sent


def test_forget_deletes_the_presenters_link_to_the_student_work(bot: Bot) -> None:
    link = "https://docs.example/jayden-deportation-essay"
    ts = bot.open_step()
    with bot.db.session() as s:
        # As the presenter's prep dialog keeps it, beside the statement.
        prep = {"reason": "wondering", "link": link, "deidentified": True}
        s.execute(update(ProtocolSession).values(statement="Explain the seasons.", prep=prep))
    bot.reply(TEACHERS[0], "Two diagrams.", ts)
    bot.command("end")
    bot.settle()
    assert "sessions" in tables_holding(bot, link)
    assert "Deleted 1 stored reply" in bot.command("forget")["text"]
    assert tables_holding(bot, link) == []
    assert _session(bot).prep == {"reason": "wondering", "deidentified": True}


def test_forget_takes_back_the_copies_of_the_notes_sent_from_app_home(bot: Bot) -> None:
    ts = bot.open_step()
    bot.reply(TEACHERS[0], SECRET, ts)
    bot.command("end")
    bot.settle()
    # A teacher asks for the notes from their Home tab: a copy of them goes by DM.
    _press_notes(bot, TEACHERS[1], _session(bot).id)
    bot.wait_until(lambda: bool(bot.standin.messages(f"D{TEACHERS[1][1:]}")))
    bot.settle()
    assert "Deleted 1 stored reply" in bot.command("forget")["text"]
    bot.settle()
    assert tables_holding(bot, SECRET) == []


def test_forget_right_after_end_drops_the_notes_not_yet_posted(engine: Engine) -> None:
    session = start(engine, step_seconds=3600)
    with engine.db.session() as s:
        engine.on_posted(s, [(f"header:{session.id}", "1.1"), (f"step:{session.id}:1", "1.2")])
    Replies(engine).replied(
        TEAM,
        {
            "type": "message",
            "channel": CHANNEL,
            "user": TEACHERS[0],
            "text": SECRET,
            "ts": "1.3",
            "thread_ts": "1.2",
        },
    )
    engine.end(actor())
    controls.forget(engine, actor())
    rows = outbox(engine)
    assert not [r for r in rows if SECRET in json.dumps(r.payload)]
    assert not [r for r in rows if r.thread_ref == f"header:{session.id}"]
    assert not [r for r in rows if r.channel_id == PRESENTER]
    assert [r.ref for r in rows if r.ref and r.ref.startswith("step:")]  # the steps still go


def test_when_the_facilitator_has_left_the_workspace_the_team_hears_who_can_steer(
    bot: Bot,
) -> None:
    """A facilitator whose account was deactivated mid-session: the team was told only they
    could end or resume it, with no word that they had gone nor of who else could."""
    bot.open_step()
    bot.command("pause")
    refused = bot.command("resume", user=TEACHERS[0])["text"]
    assert "Only the facilitator" in refused and "no longer in this workspace" not in refused
    bot.standin.add_user(FACILITATOR, "dana", deleted=True)
    for command in ("resume", "end"):
        refused = bot.command(command, user=TEACHERS[0])["text"]
        assert f"<@{FACILITATOR}> is no longer in this workspace" in refused, refused
        assert "a workspace admin can do it instead" in refused, refused
    assert _session(bot).status == "paused"
    assert "ended" in bot.command("end", user=ADMIN)["text"]
    assert _session(bot).status == "ended"


def test_end_with_only_a_session_booked_ahead_says_how_to_call_it_off(bot: Bot) -> None:
    # A facilitator who types `end` to call off next week's session was told to start one.
    bot.command(f"start atlas <@{PRESENTER}> in 3d")
    bot.command(f"start tuning <@{TEACHERS[0]}> in 2d")
    for control in ("end", "next", "pause"):
        refused = bot.command(control)["text"]
        assert "No protocol session is running in this channel" in refused
        assert "Session #2, *Tuning Protocol*, is scheduled here" in refused
        assert "`/protocol cancel 2` calls it off" in refused
        assert "/protocol start" not in refused
    assert _session(bot).status == "scheduled"
    assert "Cancelled session #2" in bot.command("cancel 2")["text"]
    assert "Session #1, *ATLAS" in bot.command("end")["text"]
    bot.command("cancel 1")
    nothing = bot.command("end")["text"]
    assert "Start one with `/protocol start atlas @maria`" in nothing
    assert "scheduled" not in nothing


def test_in_a_channel_of_more_than_a_team_the_warning_counts_but_nobody_is_nudged(
    bot: Bot,
) -> None:
    # Run in a big channel, every step in which everyone speaks sent each of its members who
    # had not replied a private nudge: dozens of direct messages a step.
    staff = [f"U_STAFF{n:03d}" for n in range(NUDGE_AT_MOST)]
    for n, user in enumerate(staff):
        bot.standin.add_user(user, f"staff{n}")
        bot.standin.add_member(CHANNEL, user)
    describe_ts = _describing(bot)
    bot.reply(TEACHERS[0], "There are two diagrams.", describe_ts)
    bot.wait_until(lambda: len(bot.standin.calls_to("reactions.add")) == 1)
    warn_step(bot.runtime.engine, _session(bot).id, 2)
    bot.wait_until(lambda: any("so far" in t for t in _thread(bot, describe_ts)))
    assert any(f"1 of {len(staff) + 4} has described" in t for t in _thread(bot, describe_ts))
    bot.settle()
    assert bot.standin.calls_to("conversations.open") == []


LA = ZoneInfo("America/Los_Angeles")


@contextmanager
def _extending_in_los_angeles(
    workspace: SlackStandin, database_url: str, step: str
) -> Iterator[Bot]:
    """A facilitator in Los Angeles on Tuesday 10 November 2026 at 1 PM, a session of `step`
    steps started: a bot whose clock holds still there, without a scheduler."""
    clock = HeldClock(datetime(2026, 11, 10, 13, 0, tzinfo=LA).astimezone(UTC))
    web = Bot(workspace, database_url, with_scheduler=False, clock=clock).start()
    try:
        web.command(f"start atlas <@{PRESENTER}> step {step}")
        yield web
    finally:
        web.stop()


def test_extend_until_a_time_today_closes_the_step_then(
    workspace: SlackStandin, database_url: str
) -> None:
    """`extend until 3pm` was refused (`until` is no duration): the step now closes at 3 PM
    today where the facilitator is (Los Angeles), as `at 3pm` reads; a time passed, or before
    the close, or a paused step, is said so."""
    with _extending_in_los_angeles(workspace, database_url, "1h") as web:
        answer = web.command("extend until 3pm")["text"]
        assert "Extended" in answer, answer
        closes = _session(web).step_closes_at
        assert closes is not None
        assert closes.astimezone(LA).replace(tzinfo=None) == datetime(2026, 11, 10, 15, 0)
        assert "Extended" in web.command("extend until 15.30 please")["text"]
        closes = _session(web).step_closes_at
        assert closes is not None and closes.astimezone(LA).strftime("%H:%M") == "15:30"
        earlier = web.command("extend until 2:30pm")["text"]
        assert "already closes" in earlier, earlier
        past = web.command("extend until 12:30")["text"]
        assert "has already passed today" in past and "/protocol extend 30m" in past, past
        assert "`ten` is not a time I can read" in web.command("extend until ten")["text"]
        web.command("pause")
        paused = web.command("extend until 4pm")["text"]
        assert "paused" in paused, paused
        assert _session(web).paused_remaining == 2 * 3600 + 30 * 60


def test_extend_by_a_duration_as_facilitators_say_it(bot: Bot) -> None:
    """`extend 10 more minutes`, `extend another 10m`, `extend by an hour` were refused as no
    duration: "more" and "another" say what extend does, and "a" or "an" before a unit is one."""
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    for typed, seconds in (
        ("extend 10 more minutes", 600),
        ("extend another 10m", 600),
        ("extend 5m more", 300),
        ("extend by an hour", 3600),
        ("extend another hour", 3600),
        ("extend 1 more hour please", 3600),
        ("extend half an hour", 1800),
        ("extend another half hour", 1800),
        ("extend 1 1/2 hours", 5400),
        ("extend 1½ hours", 5400),
        ("extend 1/2 hour", 1800),
        ("extend a quarter of an hour", 900),
        ("extend quarter hour", 900),
        ("extend three quarters of an hour", 2700),
        ("extend an hour and a quarter", 4500),
        ("extend 1 and 1/2 hours", 5400),
    ):
        before = _session(bot).step_closes_at
        answer = bot.command(typed)["text"]
        after = _session(bot).step_closes_at
        assert "Extended" in answer, (typed, answer)
        assert before is not None and after is not None
        assert (after - before).total_seconds() == seconds, typed
    # A word that is no unit after "a" is still refused, with the example.
    assert "/protocol extend 10m" in bot.command("extend a bit")["text"]


def test_extend_for_a_duration_or_the_step_by_one(bot: Bot) -> None:
    """`extend for 10 minutes` was "`for 10 minutes` is not a duration", and `extend the step
    by 10m` or `extend step for 10m` the same: as `extend by 10m` is, each is 10 minutes more."""
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    for typed in (
        "extend for 10 minutes",
        "extend for another 10m",
        "extend the step by 10m",
        "extend step for 10 minutes please",
    ):
        before = _session(bot).step_closes_at
        answer = bot.command(typed)["text"]
        after = _session(bot).step_closes_at
        assert "Extended" in answer, (typed, answer)
        assert before is not None and after is not None
        assert (after - before).total_seconds() == 600, typed


def test_words_that_spell_close_to_another_command_point_to_the_one_meant(bot: Bot) -> None:
    # `/protocol more` (more time) was answered "did you mean `forget`?", which deletes the
    # replies; `resumen` (Spanish: summary) "`resume`?", `detener` (stop) "`extend`?",
    # `anotaciones` (notes) "`rotation`?", `abort` "`start`?", `steps` "`notes`?".
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    for typed, meant in (
        ("more", "extend"),
        ("resumen", "notes"),
        ("anotaciones", "notes"),
        ("steps", "preview"),
        ("timer", "status"),
        ("summary", "notes"),
        ("options", "help"),
    ):
        answer = bot.command(typed)["text"]
        assert f"There is no `/protocol {typed}` (did you mean `{meant}`?)" in answer, answer
    for typed in ("abort", "detener", "reset"):  # pause or end? not guessed
        assert "did you mean" not in bot.command(typed)["text"], typed
    bot.command("pause")
    assert "(did you mean `resume`?)" in bot.command("reiniciar")["text"]
    assert (_session(bot).current_step, _session(bot).status) == (1, "paused")


def test_extend_until_a_day_and_time_for_a_step_of_days(
    workspace: SlackStandin, database_url: str
) -> None:
    """A day's step (Tuesday 1 PM to Wednesday 1 PM in Los Angeles) extended `until thu 3pm`
    or `until tomorrow 5pm` was refused as no time of day; the day is read as `at` reads it."""
    with _extending_in_los_angeles(workspace, database_url, "1d") as web:
        for typed, wanted in (
            ("extend until tomorrow 5pm", datetime(2026, 11, 11, 17, 0)),
            ("extend until thu 3pm", datetime(2026, 11, 12, 15, 0)),
            ("extend until 9am on fri", datetime(2026, 11, 13, 9, 0)),
        ):
            answer = web.command(typed)["text"]
            assert "Extended" in answer, (typed, answer)
            closes = _session(web).step_closes_at
            assert closes is not None
            assert closes.astimezone(LA).replace(tzinfo=None) == wanted, typed
        alone = web.command("extend until friday")["text"]
        assert "needs a time too" in alone and "/protocol extend until friday 3pm" in alone, alone
        assert "already closes" in web.command("extend until tomorrow 3pm")["text"]


def test_extend_until_a_date_reads_it_and_asks_about_one_that_cannot_be_placed(
    workspace: SlackStandin, database_url: str
) -> None:
    """`extend until 12/11 3pm` (11 December, or 12 November?), `until fri nov 12 3pm` (a
    Thursday), `until nov 31 3pm` and `until 2027-06-01 3pm` (too far) were "not a time I can
    read"; each is answered as `at` is, with `until` in what to write."""
    with _extending_in_los_angeles(workspace, database_url, "1d") as web:
        for typed, said in (
            ("extend until 12/11 3pm", "Write the month in letters: `until nov 12 3pm` or"),
            ("extend until fri nov 12 3pm", "12 November is a Thursday, not `fri`"),
            ("extend until nov 31 3pm", "November 2026 has 30 days"),
            ("extend until 2027-06-01 3pm", "a step can stay open at most 90 days from now"),
        ):
            answer = web.command(typed)["text"]
            assert said in answer and "/protocol extend until 3pm" in answer, (typed, answer)
        answer = web.command("extend until nov 13 9am")["text"]
        assert "Extended" in answer, answer
        closes = _session(web).step_closes_at
        assert closes is not None
        assert closes.astimezone(LA).replace(tzinfo=None) == datetime(2026, 11, 13, 9, 0)


def test_extend_by_days_past_a_weekend_is_monday_at_the_steps_time_of_day(
    workspace: SlackStandin, database_url: str
) -> None:
    """A weekdays session's day step closing Friday at 3 PM, given `extend 1d`, closed on Monday
    at 8 AM (the weekend's carry), and one closing Thursday given `extend 2d` the same: the
    facilitator means the next weekday at the step's time of day, 3 PM on Monday."""
    la = ZoneInfo("America/Los_Angeles")
    clock = HeldClock(datetime(2026, 11, 11, 15, 0, tzinfo=la).astimezone(UTC))
    web = Bot(workspace, database_url, with_scheduler=False, clock=clock).start()

    def closes() -> datetime:
        at = _session(web).step_closes_at
        assert at is not None
        return at.astimezone(la).replace(tzinfo=None)

    try:
        web.command(f"start atlas <@{PRESENTER}> step 1d weekdays")  # Wednesday 3 PM
        assert _session(web).tz == "America/Los_Angeles"
        assert closes() == datetime(2026, 11, 12, 15, 0)  # Thursday
        assert "Extended" in web.command("extend 2d")["text"]
        assert closes() == datetime(2026, 11, 16, 15, 0)  # Monday
        web.command("end")
        clock.set(datetime(2026, 11, 12, 15, 0, tzinfo=la).astimezone(UTC))
        web.command(f"start tuning <@{PRESENTER}> step 1d weekdays")  # Thursday 3 PM
        assert closes() == datetime(2026, 11, 13, 15, 0)  # Friday
        assert "Extended" in web.command("extend 1d")["text"]
        assert closes() == datetime(2026, 11, 16, 15, 0)
        # A day and some hours: Monday at 3 PM, and the hours on from there.
        assert "Extended" in web.command("extend 1d 2h")["text"]
        assert closes() == datetime(2026, 11, 17, 17, 0)
    finally:
        web.stop()


def test_a_day_added_while_paused_lands_where_extend_after_the_resume_would(
    workspace: SlackStandin, database_url: str
) -> None:
    """A weekdays day step paused on Friday at 2 PM with an hour left, given `extend 1d` while
    paused and resumed at once, closed on Monday at 11 PM (a day of working time run on from
    Friday 3 PM past the weekend); as `extend 1d` of a step closing Friday at 3 PM, it closes
    on Monday at 3 PM."""
    la = ZoneInfo("America/Los_Angeles")
    clock = HeldClock(datetime(2026, 11, 12, 15, 0, tzinfo=la).astimezone(UTC))  # Thursday
    web = Bot(workspace, database_url, with_scheduler=False, clock=clock).start()
    try:
        web.command(f"start atlas <@{PRESENTER}> step 1d weekdays")
        clock.set(datetime(2026, 11, 13, 14, 0, tzinfo=la).astimezone(UTC))
        assert "1 h left" in web.command("pause")["text"]
        web.command("extend 1d")
        assert "Resumed" in web.command("resume")["text"]
        closes = _session(web).step_closes_at
        assert closes is not None
        assert closes.astimezone(la).replace(tzinfo=None) == datetime(2026, 11, 16, 15, 0)
    finally:
        web.stop()
