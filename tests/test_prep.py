"""Presenter prep: the reminder rules on a controlled clock, the dialog, cancelling, and the seed.

The rule tests drive due jobs by calling what the scheduler's jobs call (`prep.due`,
`Engine.begin`); the end-to-end tests go over signed HTTP to the real app and the Slack stand-in.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.blocks import render_message
from bot.engine import prep, prep_dialog
from bot.engine.core import Actor
from bot.engine.prep_dialog import Submission
from bot.prep_views import dialog_view, guidance_view
from bot.profiles import Person
from bot.protocols import BUILTIN_DIR
from bot.scheduling import Scheduler
from bot.slack_standin import SlackStandin
from bot.store.models import OutboxMessage, ProtocolSession, StepRun
from tests.harness import CHANNEL, FACILITATOR, PRESENTER, TEACHERS, Bot
from tests.prep_world import (
    FAC,
    NOW,
    PRE,
    World,
    action_ids,
    dialog_values,
    make_world,
    message_text,
    parsed_body,
    view_action,
    view_submission,
)
from tests.test_engine import HeldClock

SEEDS = Path(__file__).resolve().parent.parent.parent / "shared" / "seeds"
THU_15_LA = datetime(2026, 3, 5, 23, 0, tzinfo=UTC)  # Thursday 15:00 in Los Angeles (PST)
GOOD = Submission("wondering", "Write a paragraph on why we have seasons.", "https://x.org/w", True)


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    w = make_world(database_url, NOW)
    try:
        yield w
    finally:
        w.db.dispose()


def _texts(world: World, user: str) -> list[str]:
    return [message_text(row.payload) for row in world.dms(user)]


# -- reminder rules ------------------------------------------------------------------------------


def test_scheduling_sends_the_reminder_now_and_plans_the_rest(world: World) -> None:
    prep.install(world.engine)  # installing twice still sends one reminder
    reply = world.command(f"start atlas <@{PRE}|maria> at thu 15:00")
    session = world.session()
    assert session.status == "scheduled" and session.starts_at == THU_15_LA
    assert world.dm_refs(PRE) == [f"prep:{session.id}:scheduled"]
    assert world.dms(FAC) == []
    assert world.timers.jobs == {
        f"session:{session.id}:start": THU_15_LA,
        f"session:{session.id}:remind": THU_15_LA - timedelta(hours=24),
        f"session:{session.id}:followup": THU_15_LA - timedelta(hours=3),
    }
    assert "scheduled for" in reply and "a note to get ready" in reply
    assert "your Slack time zone, America/Los_Angeles" in reply
    dm = _texts(world, PRE)[0]
    assert "keeps you up at night" in dm and f"<#{session.channel_id}>" in dm
    assert action_ids(world.dms(PRE)[0].payload) == ["prep_open", "prep_guidance"]


def test_the_scheduling_reply_names_who_hears_of_missing_prep(world: World) -> None:
    assert "nudge them once more and tell you." in world.command(f"start atlas <@{PRE}> in 2d")
    other = world.command(f"start atlas <@{PRE}> in 3d facilitator <@U_T1>")
    assert "tell you" not in other and "and tell the facilitator, <@U_T1>." in other
    world.clock.set(world.session().starts_at - timedelta(hours=3))
    world.due(world.session().id, prep.FOLLOWUP)
    assert world.dm_refs("U_T1") == [f"prep:{world.session().id}:followup_facilitator"]
    assert world.dms(FAC) == []
    # A presenter who facilitates hears the nudge; nobody else is told.
    own = world.command(f"start atlas <@{PRE}> in 4d facilitator <@{PRE}>")
    assert "nudge them once more." in own and "and tell" not in own


def test_the_lead_time_reminder_goes_out_once_at_its_time(world: World) -> None:
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    sid = world.session().id
    remind_at = THU_15_LA - timedelta(hours=24)

    world.clock.set(remind_at - timedelta(minutes=1))  # a job that fires early does nothing
    world.timers.jobs.clear()
    world.due(sid, prep.REMIND)
    assert world.dm_refs(PRE) == [f"prep:{sid}:scheduled"]
    assert world.timers.jobs == {f"session:{sid}:remind": remind_at}

    world.clock.set(remind_at)
    world.due(sid, prep.REMIND)
    world.due(sid, prep.REMIND)  # a duplicate job is harmless
    assert world.dm_refs(PRE) == [f"prep:{sid}:scheduled", f"prep:{sid}:remind"]
    text = _texts(world, PRE)[1]
    assert "friendly reminder" in text and "keeps you up at night" in text


def test_no_reminder_goes_out_once_the_session_is_switched_to_a_protocol_without_prep(
    world: World,
) -> None:
    # An operator's protocol may have no presenter prep; the reminders queued stay in the job store.
    open_floor = dataclasses.replace(world.engine.library["consultancy"], id="open-floor")
    world.engine.library["open-floor"] = dataclasses.replace(open_floor, presenter_prep=None)
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    sid = world.session().id
    prep_dialog.switch(world.engine, Actor("T_TEAM", FAC, "D_FAC"), sid, "open-floor")
    for kind, at in ((prep.REMIND, timedelta(hours=24)), (prep.FOLLOWUP, timedelta(hours=3))):
        world.clock.set(THU_15_LA - at)
        world.due(sid, kind)
    assert world.dm_refs(PRE) == [f"prep:{sid}:scheduled", f"prep:{sid}:switched"]
    assert world.dms(FAC) == []


def test_remind_sets_the_lead_time(world: World) -> None:
    world.command(f"start atlas <@{PRE}> at thu 15:00 remind 2d")
    sid = world.session().id
    assert world.timers.jobs[f"session:{sid}:remind"] == THU_15_LA - timedelta(days=2)
    assert world.timers.jobs[f"session:{sid}:followup"] == THU_15_LA - timedelta(hours=3)
    world.command(f"start atlas <@{PRE}> at thu 15:00 remind 1h", user="U_T1")
    other = world.session().id
    # The follow-up comes after a short reminder, not before it.
    assert world.timers.jobs[f"session:{other}:remind"] == THU_15_LA - timedelta(hours=1)
    assert world.timers.jobs[f"session:{other}:followup"] == THU_15_LA - timedelta(minutes=30)


def test_a_start_sooner_than_the_lead_time_gets_one_reminder_at_once(world: World) -> None:
    reply = world.command(f"start atlas <@{PRE}> in 5h")
    sid = world.session().id
    assert world.dm_refs(PRE) == [f"prep:{sid}:scheduled"]
    assert f"session:{sid}:remind" not in world.timers.jobs
    # A short lead: the follow-up comes at half of it.
    assert world.timers.jobs[f"session:{sid}:followup"] == NOW + timedelta(hours=2, minutes=30)
    assert "remind them" not in reply
    world.clock.advance(hours=1)
    world.due(sid, prep.REMIND)
    assert world.dm_refs(PRE) == [f"prep:{sid}:scheduled"]


def test_a_reminder_due_within_the_hour_is_folded_into_the_first(world: World) -> None:
    world.command(f"start atlas <@{PRE}> in 24h30m")
    sid = world.session().id
    assert f"session:{sid}:remind" not in world.timers.jobs
    assert world.timers.jobs[f"session:{sid}:followup"] == NOW + timedelta(hours=21, minutes=30)


def test_follow_through_when_the_prep_is_missing(world: World) -> None:
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    sid = world.session().id
    world.clock.set(THU_15_LA - timedelta(hours=3))
    world.due(sid, prep.FOLLOWUP)
    world.due(sid, prep.FOLLOWUP)
    assert world.dm_refs(PRE)[-1] == f"prep:{sid}:followup"
    assert world.dm_refs(FAC) == [f"prep:{sid}:followup_facilitator"]
    assert len(world.dms(PRE)) == 2
    assert "Get ready" in _texts(world, PRE)[-1]
    assert f"<@{PRE}> hasn't sent their prep" in _texts(world, FAC)[0]

    # The start comes without it: step 1 says so plainly, and asks for the statement.
    world.clock.set(THU_15_LA)
    world.engine.begin(sid)
    step1 = next(r for r in world.outbox() if r.ref == f"step:{sid}:1")
    text = message_text(step1.payload)
    assert "No statement of the assignment yet" in text
    assert f"<@{PRE}>, please reply in this thread" in text


def test_no_follow_up_once_the_prep_is_in(world: World) -> None:
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    sid = world.session().id
    assert prep_dialog.submit(world.engine, "T_TEAM", PRE, sid, GOOD) == {}
    world.clock.set(THU_15_LA - timedelta(hours=24))
    world.due(sid, prep.REMIND)
    assert "Your prep is in" in _texts(world, PRE)[-1]
    world.clock.set(THU_15_LA - timedelta(hours=3))
    world.due(sid, prep.FOLLOWUP)
    assert f"prep:{sid}:followup" not in world.dm_refs(PRE)
    assert f"prep:{sid}:followup_facilitator" not in world.dm_refs(FAC)


def test_after_downtime_the_follow_up_alone_goes_out(world: World) -> None:
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    sid = world.session().id
    world.clock.set(THU_15_LA - timedelta(hours=2))  # both were due while the service was down
    world.due(sid, prep.REMIND)
    world.due(sid, prep.FOLLOWUP)
    assert world.dm_refs(PRE) == [f"prep:{sid}:scheduled", f"prep:{sid}:followup"]
    # and nothing at all once the start time has passed
    world.command(f"start atlas <@{PRE}> at thu 15:00", user="U_T1")
    late = world.session().id
    world.clock.set(THU_15_LA + timedelta(minutes=1))
    world.due(late, prep.REMIND)
    world.due(late, prep.FOLLOWUP)
    assert world.dm_refs(PRE)[-1] == f"prep:{late}:scheduled"


def test_cancelling_stops_every_reminder(world: World) -> None:
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    sid = world.session().id
    assert "Only the facilitator" in world.command("cancel", user=TEACHERS[0])
    reply = world.command("cancel")
    assert f"Cancelled session #{sid}" in reply and "don't need to prepare" in reply
    assert world.session(sid).status == "cancelled"
    assert world.timers.cleared == [sid] and world.timers.jobs == {}
    assert world.dm_refs(PRE)[-1] == f"prep:{sid}:cancelled"
    world.clock.set(THU_15_LA - timedelta(hours=3))
    world.due(sid, prep.REMIND)
    world.due(sid, prep.FOLLOWUP)
    world.clock.set(THU_15_LA)
    world.engine.begin(sid)
    assert world.dm_refs(PRE) == [f"prep:{sid}:scheduled", f"prep:{sid}:cancelled"]
    assert world.session(sid).status == "cancelled" and world.dms(FAC) == []


def test_cancel_asks_which_and_explains_what_it_cannot_cancel(world: World) -> None:
    assert "Nothing is scheduled" in world.command("cancel")
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    world.command(f"start tuning <@{PRE}> in 2d")
    first, second = world.session(1), world.session(2)
    assert "Which one?" in world.command("cancel") and f"#{first.id}" in world.command("cancel")
    assert "no session #99" in world.command("cancel 99")
    assert "Cancelled session #2" in world.command(f"cancel {second.id}")
    assert "already been cancelled" in world.command("cancel 2")
    world.command(f"start atlas <@{PRE}> step 1d")
    running = world.session()
    answer = world.command(f"cancel {running.id}")
    assert "already started" in answer and "/protocol end" in answer
    assert world.session(first.id).status == "scheduled"


def test_restarts_lose_no_reminder(world: World) -> None:
    # Real APScheduler over the database's job store: its jobs must lie in the real future.
    world.clock.set(datetime.now(UTC).replace(microsecond=0) + timedelta(days=30))
    world.command(f"start atlas <@{PRE}> in 3d")
    sid = world.session().id
    start = world.session().starts_at
    remind_at, followup_at = start - timedelta(hours=24), start - timedelta(hours=3)
    assert sorted(prep.due_work(world.engine)) == [
        (sid, prep.FOLLOWUP, followup_at),
        (sid, prep.REMIND, remind_at),
    ]
    first = Scheduler(world.engine)
    first._aps.start(paused=True)
    first.reconcile()
    jobs = {job.id: job.next_run_time for job in first._aps.get_jobs()}
    assert jobs[f"session:{sid}:remind"] == remind_at
    assert jobs[f"session:{sid}:followup"] == followup_at
    first._aps.remove_job(f"session:{sid}:followup")  # lost, e.g. a crash before add_job
    first.shutdown()
    again = Scheduler(world.engine)
    again._aps.start(paused=True)
    again.reconcile()
    assert {f"session:{sid}:remind", f"session:{sid}:followup"} <= {
        job.id for job in again._aps.get_jobs()
    }
    again.shutdown()
    world.clock.set(remind_at)
    world.due(sid, prep.REMIND)
    assert [kind for _, kind, _ in prep.due_work(world.engine)] == [prep.FOLLOWUP]


# -- a channel still busy at the start time ---------------------------------------------------


def test_a_start_due_while_another_session_runs_waits_and_says_so(world: World) -> None:
    world.command(f"start atlas <@{PRE}> at tue 15:00 step 1d")
    clear = world.command(f"start tuning <@{PRE}> at wed 15:00 facilitator <@U_T2>", channel="C_X")
    assert ":hourglass:" not in clear
    reply = world.command("start tuning <@U_T1> at wed 15:00 facilitator <@U_T2>")
    assert "(session #1) is planned to be running here then, until" in reply
    assert "start as soon as that one ends" in reply and "let <@U_T2> know" in reply
    assert "/protocol cancel 3" in reply
    first, waiting = world.session(1), world.session(3)
    world.clock.set(first.starts_at)
    world.engine.begin(first.id)
    world.clock.set(waiting.starts_at)
    world.engine.begin(waiting.id)
    assert world.session(waiting.id).status == "scheduled"
    assert world.dm_refs("U_T2") == [f"waiting:{waiting.id}:{first.id}"]
    note = _texts(world, "U_T2")[0]
    assert "starts right after that one ends" in note and "ATLAS" in note
    world.clock.advance(minutes=5)
    world.engine.begin(waiting.id)  # the retry: the facilitator was told once
    assert world.dm_refs("U_T2") == [f"waiting:{waiting.id}:{first.id}"]
    status = world.command("status", user="U_T3")
    assert f"#{waiting.id} Tuning Protocol" in status
    assert "waiting for the session running now to end" in status
    world.clock.advance(minutes=1)
    world.command("end")
    # It starts as the other one ends, not at its next retry.
    assert world.session(waiting.id).status == "running"
    assert world.session(waiting.id).started_at == world.clock.now()
    assert "waiting for" not in world.command("status", user="U_T3")


def test_a_start_now_names_the_sessions_scheduled_that_will_wait_for_it(bot: Bot) -> None:
    # A week-long session started now pushed back the one another facilitator had scheduled
    # for the next day, and whoever started it was not told.
    bot.command(f"start tuning <@{PRESENTER}> in 10d facilitator <@{TEACHERS[1]}>")
    bot.command(f"start atlas <@{PRESENTER}> in 2h")
    bot.command(f"start tuning <@{PRESENTER}> in 3h")
    # Six steps of 25 minutes: still running at #2's start, over by #3's.
    text = bot.command(f"start consultancy <@{TEACHERS[0]}> step 25m")["text"]
    assert "is starting in this channel" in text
    assert "Session #2, *ATLAS - Learning from Student Work* with <@U_PRE> presenting" in text
    assert "will wait and start when this one ends, planned for <!date^" in text
    assert "#3" not in text and "#1" not in text
    bot.command("end")
    weeklong = bot.command(f"start consultancy <@{TEACHERS[0]}> step 1d", user=TEACHERS[2])
    assert "2 sessions are scheduled here while this one runs (#2 <!date^" in weeklong["text"]
    assert "#1" not in weeklong["text"]


def test_a_start_refused_while_one_runs_shows_how_to_schedule_the_protocol_asked_for(
    bot: Bot,
) -> None:
    # Asked for the Tuning Protocol, the facilitator was shown how to schedule ATLAS.
    bot.command(f"start atlas <@{PRESENTER}> step 1d")
    refused = bot.command(f"start tuning <@{TEACHERS[0]}>")["text"]
    assert "is already running in this channel" in refused
    assert "`/protocol start tuning @maria at tue 15:00`" in refused


def test_a_start_refused_while_one_runs_says_who_can_end_it_and_whether_it_is_paused(
    bot: Bot,
) -> None:
    # A teacher was told to end the session with /protocol end, which only its facilitator may
    # do; and a paused session was called running.
    bot.command(f"start atlas <@{PRESENTER}> step 1d")
    by_a_teacher = bot.command(f"start tuning <@{TEACHERS[0]}>", user=TEACHERS[1])["text"]
    assert "is already running in this channel" in by_a_teacher
    assert "when its facilitator ends it, yours can start" in by_a_teacher
    assert f"<@{FACILITATOR}>" in by_a_teacher and "/protocol end" not in by_a_teacher
    bot.command("pause")
    by_its_facilitator = bot.command(f"start tuning <@{TEACHERS[0]}>")["text"]
    assert "is already paused partway through in this channel" in by_its_facilitator
    assert "you facilitate it. One session at a time: end it with `/protocol end`" in (
        by_its_facilitator
    )


def test_sessions_due_one_after_another_while_one_runs_wait_in_turn(world: World) -> None:
    world.command(f"start atlas <@{PRE}> at tue 15:00 step 1d")
    world.command("start tuning <@U_T1> at wed 15:00 facilitator <@U_T2>")
    reply = world.command("start consultancy <@U_T1> at wed 16:00 facilitator <@U_T3>")
    first, second, third = world.session(1), world.session(2), world.session(3)
    # The third waits for the second, which itself waits for the first: until the second ends,
    # a tuning protocol's length after the first's end.
    assert "*Tuning Protocol* (session #2) is planned to be running here then" in reply
    first_ends = world.engine.planned_end(first)
    assert first_ends is not None
    second_ends = world.engine.planned_end(second, first_ends)
    assert second_ends is not None and str(int(second_ends.timestamp())) in reply
    world.clock.set(first.starts_at)
    world.engine.begin(first.id)
    for later in (second, third):
        world.clock.set(later.starts_at)
        world.engine.begin(later.id)
    assert world.dm_refs("U_T3") == [f"waiting:{third.id}:{first.id}"]
    assert "once that one and those due before yours have run" in _texts(world, "U_T3")[0]
    world.command("end")
    # The second starts; the third's facilitator hears it now waits for that one.
    assert [world.session(x.id).status for x in (second, third)] == ["running", "scheduled"]
    assert world.dm_refs("U_T3") == [f"waiting:{third.id}:{first.id}", f"waiting:{third.id}:2"]
    assert "right after that one ends" in _texts(world, "U_T3")[1]


# -- bad input -----------------------------------------------------------------------------------


def test_a_presenter_who_left_or_is_an_app_is_refused(world: World) -> None:
    world.profiles.people["U_GONE"] = Person("U_GONE", None, gone=True, is_bot=False)
    world.profiles.people["U_APP"] = Person("U_APP", None, gone=False, is_bot=True)
    assert "has left this workspace" in world.command("start atlas <@U_GONE> in 1d")
    assert "is an app" in world.command("start atlas <@U_APP> in 1d")
    assert "has left this workspace" in world.command("start atlas <@U_GONE>")
    with world.db.session() as s:
        assert s.scalar(select(func.count(ProtocolSession.id))) == 0


def test_a_facilitator_who_left_or_is_an_app_is_refused(world: World) -> None:
    """Named as facilitator, they alone could steer the session: nobody but an admin could."""
    world.profiles.people["U_GONE"] = Person("U_GONE", None, gone=True, is_bot=False)
    world.profiles.people["U_APP"] = Person("U_APP", None, gone=False, is_bot=True)
    answer = world.command("start atlas <@U_PRE> facilitator <@U_GONE>")
    assert "has left this workspace, so they can't facilitate" in answer
    answer = world.command("start atlas <@U_PRE> in 1d facilitator <@U_APP>")
    assert "is an app, not a person, so they can't facilitate" in answer
    with world.db.session() as s:
        assert s.scalar(select(func.count(ProtocolSession.id))) == 0
    world.command("start atlas <@U_PRE> facilitator <@U_T1>")
    with world.db.session() as s:
        assert s.scalars(select(ProtocolSession.facilitator_id)).all() == ["U_T1"]


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("at 2026-03-01 10:00", "already passed"),
        ("at 09:00 in 1h", "not both"),
        ("at 2026-09-01 10:00", "90 days"),
        ("in 91d", "90"),
        ("at 2026-02-30 10:00", "2026-02-30"),
    ],
)
def test_bad_times_say_what_was_wrong(world: World, when: str, expected: str) -> None:
    answer = world.command(f"start atlas <@{PRE}> {when}")
    assert expected in answer and "/protocol start" in answer
    with world.db.session() as s:
        assert s.scalar(select(func.count(ProtocolSession.id))) == 0


def test_a_channel_holds_at_most_twenty_scheduled_sessions(world: World) -> None:
    for day in range(1, 21):
        assert "scheduled for" in world.command(f"start atlas <@{PRE}> in {day}d")
    assert "already has 20 sessions scheduled" in world.command(f"start atlas <@{PRE}> in 30d")


def test_a_failed_dm_is_told_to_the_facilitator_once(world: World) -> None:
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    for error in ("cannot_dm_bot", "user_not_found"):
        with world.db.session() as s:
            row = s.scalars(select(OutboxMessage).where(OutboxMessage.channel_id == PRE)).first()
            assert row is not None
            row.status, row.error = "failed", error
            prep.dm_failed(world.engine, s, row)
    notes = _texts(world, FAC)
    assert len(notes) == 1 and "cannot_dm_bot" in notes[0] and "couldn't reach" in notes[0]
    assert "presenter unreachable by DM" in world.command("status")


# -- the dialog, engine side ---------------------------------------------------------------------


def test_the_dialog_checks_every_field(world: World) -> None:
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    sid = world.session().id
    empty = Submission(None, "  ", "", False)
    assert prep_dialog.submit(world.engine, "T_TEAM", PRE, sid, empty) == {
        "reason": "reason_missing",
        "statement": "statement_missing",
        "confirm": "confirm_missing",
    }
    odd = Submission("concerned", "x" * 801, "javascript:alert(1)", True)
    assert prep_dialog.submit(world.engine, "T_TEAM", PRE, sid, odd) == {
        "reason": "reason_missing",  # "concerned" belongs to the equity prep, not ATLAS's
        "statement": "statement_long",
        "link": "link_bad",
    }
    assert prep_dialog.submit(world.engine, "T_TEAM", "U_T1", sid, GOOD) == {"reason": "not_yours"}
    assert prep_dialog.submit(world.engine, "T_OTHER", PRE, sid, GOOD) == {"reason": "session_gone"}
    assert world.session(sid).statement is None


def test_a_dialog_submitted_twice_keeps_one_result(world: World) -> None:
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    sid = world.session().id
    assert prep_dialog.submit(world.engine, "T_TEAM", PRE, sid, GOOD) == {}
    assert prep_dialog.submit(world.engine, "T_TEAM", PRE, sid, GOOD) == {}
    assert world.dm_refs(PRE) == [f"prep:{sid}:scheduled", f"prep:{sid}:submitted"]
    assert world.dm_refs(FAC) == [f"prep:{sid}:submitted_facilitator"]

    # An edit replaces the whole submission, and both hear about it once.
    edit = Submission("dilemma", "Solve the three fraction problems.", "https://x.org/v2", True)
    prep_dialog.submit(world.engine, "T_TEAM", PRE, sid, edit)
    session = world.session(sid)
    assert session.statement == edit.statement and session.prep is not None
    assert (session.prep["reason"], session.prep["link"]) == ("dilemma", "https://x.org/v2")
    assert "Updated" in _texts(world, PRE)[-1] and len(world.dms(FAC)) == 2

    # Two at once: the result is one of them, whole, never a mix.
    a = Submission("wondering", "Task A", "https://a.example/a", True)
    b = Submission("revise", "Task B", "https://b.example/b", True)
    threads = [
        threading.Thread(target=prep_dialog.submit, args=(world.engine, "T_TEAM", PRE, sid, x))
        for x in (a, b)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = world.session(sid)
    assert final.prep is not None
    kept = (final.prep["reason"], final.statement, final.prep["link"])
    assert kept in {(a.reason, a.statement, a.link), (b.reason, b.statement, b.link)}


def test_the_dialog_suggests_a_protocol_and_the_facilitator_can_switch(world: World) -> None:
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    sid = world.session().id
    dilemma = Submission("dilemma", "Plan a debate.", "https://x.org/d", True)
    prep_dialog.submit(world.engine, "T_TEAM", PRE, sid, dilemma)
    note = world.dms(FAC)[-1].payload
    assert "*Consultancy* usually fits better" in message_text(note)
    assert action_ids(note) == ["prep_switch"]
    assert "Consultancy" in _texts(world, PRE)[-1]

    teacher = Actor("T_TEAM", "U_T1", "D_T1")
    with pytest.raises(prep_dialog.Refusal):
        prep_dialog.switch(world.engine, teacher, sid, "consultancy")
    reply = prep_dialog.switch(world.engine, Actor("T_TEAM", FAC, "D_FAC"), sid, "consultancy")
    assert world.session(sid).protocol_id == "consultancy"
    said = render_message(reply.template, **reply.context)
    assert "now *Consultancy*" in said.text
    assert world.dm_refs(PRE)[-1] == f"prep:{sid}:switched"
    world.clock.set(THU_15_LA)
    world.engine.begin(sid)
    with pytest.raises(prep_dialog.Refusal):
        prep_dialog.switch(world.engine, Actor("T_TEAM", FAC, "D_FAC"), sid, "atlas")


def test_a_switch_to_another_kind_of_prep_asks_the_presenter_to_choose_a_reason_again(
    world: World,
) -> None:
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    sid = world.session().id
    revise = Submission("revise", "Plan a debate.", "https://x.org/d", True)
    prep_dialog.submit(world.engine, "T_TEAM", PRE, sid, revise)
    facilitator = Actor("T_TEAM", FAC, "D_FAC")
    reply = prep_dialog.switch(world.engine, facilitator, sid, "atlas-equity")
    assert "I've told" in render_message(reply.template, **reply.context).text
    prep_now = world.session(sid).prep or {}
    assert "reason" not in prep_now and prep_now.get("submitted_at")
    note = world.dms(PRE)[-1].payload
    assert "pick your reason again" in message_text(note)
    assert action_ids(note) == ["prep_open", "prep_guidance"]
    # A second press finds it done: nobody is told again, and the reply says nothing of it.
    sent = len(world.dms(PRE))
    again = prep_dialog.switch(world.engine, facilitator, sid, "atlas-equity")
    assert "I've told" not in render_message(again.template, **again.context).text
    assert len(world.dms(PRE)) == sent


def test_the_statement_opens_step_1_escaped(world: World) -> None:
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    sid = world.session().id
    sneaky = Submission("wondering", "Label <!channel> & <@U_T1> *now*", "https://x.org/a|b", True)
    assert prep_dialog.submit(world.engine, "T_TEAM", PRE, sid, sneaky) == {}
    world.clock.set(THU_15_LA)
    world.engine.begin(sid)
    step1 = next(r for r in world.outbox() if r.ref == f"step:{sid}:1")
    text = message_text(step1.payload)
    assert ">Label &lt;!channel&gt; &amp; &lt;@U_T1&gt; *now*" in text
    assert "<!channel>" not in text and "<@U_T1>" not in text
    assert "<https://x.org/a%7Cb|The student work>" in text
    with world.db.session() as s:
        assert s.scalar(select(func.count(StepRun.id))) == 1


def test_prep_sent_during_step_1_joins_its_thread_and_later_is_refused(world: World) -> None:
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    sid = world.session().id
    world.clock.set(THU_15_LA)
    world.engine.begin(sid)
    assert prep_dialog.opening(world.engine, "T_TEAM", PRE, sid).id == sid
    assert prep_dialog.submit(world.engine, "T_TEAM", PRE, sid, GOOD) == {}
    late = [
        r
        for r in world.outbox()
        if r.thread_ref == f"step:{sid}:1" and r.method == "chat.postMessage"
    ]
    assert len(late) == 1 and GOOD.statement in message_text(late[0].payload)
    world.command("next")
    edit = Submission("revise", "Another task", "https://x.org/2", True)
    assert prep_dialog.submit(world.engine, "T_TEAM", PRE, sid, edit) == {
        "reason": "session_closed"
    }
    with pytest.raises(prep_dialog.Refusal) as refused:
        prep_dialog.opening(world.engine, "T_TEAM", PRE, sid)
    said = render_message(refused.value.reply.template, **refused.value.reply.context)
    assert "already started" in said.text and "step 1's thread" in said.text
    assert world.session(sid).statement == GOOD.statement
    # Once it is over, the Get ready button says so (it said the session had started).
    world.command("end")
    with pytest.raises(prep_dialog.Refusal) as refused:
        prep_dialog.opening(world.engine, "T_TEAM", PRE, sid)
    said = render_message(refused.value.reply.template, **refused.value.reply.context)
    assert said.text == "That session is over, so there's nothing to prepare for now."


# -- the seed's key phrases ----------------------------------------------------------------------


def _seed(prefix: str) -> str | None:
    """The seed's text, or None where the checkout has no shared/ folder beside it."""
    path = next(SEEDS.glob(f"{prefix}_*.txt"), None)
    if path is None:
        return None
    return re.sub(r"\s+", " ", path.read_text().replace("\u201c", '"').replace("\u201d", '"'))


STANDARD_PHRASES = {
    # phrase in the reminder: the words of seed 000 it carries
    "keeps you up at night": "keeps you up at night",
    "strut our stuff": "strut our stuff",
    "mine our mistakes": "mine our mistakes",
    "remove the student's name and any teacher comments": "name and any teacher comments removed",
    "*Wondering*": "wondering",
    "*Revise*": "revise",
    "*Dilemma*": "dilemma",
    "one piece, or several, from one student": "several pieces of work from one student",
    "3 or 4 students at different levels": "three or four students at different levels",
    "the assignment, your rubric or criteria, and the learning goals": "assessment criteria/rubric",
    "Why is this a dilemma for me?": "Why is this a dilemma for me?",
    "If I could take a snapshot of it, what would others see?": "take a snapshot of this dilemma",
    "Whose practice do I hope changes?": "Whose practice do I hope changes?",
}
EQUITY_PHRASES = {
    "wondering about": "wondering about",
    "concerned about": "concerned about",
    "real question or concern": "real question or concern",
    "several pairs of eyes": "several pairs of eyes",
    "at least one piece from a student who completed the assignment successfully": (
        "at least one piece of work should be from a student who completed the assignment "
        "successfully"
    ),
    "at least one from a student who did not": "not able to complete the assignment successfully",
    "remove the student's name and any teacher comments": "",
}


@pytest.mark.parametrize(
    ("protocol_id", "seed", "phrases"),
    [("atlas", "000", STANDARD_PHRASES), ("atlas-equity", "002", EQUITY_PHRASES)],
)
def test_the_reminder_keeps_the_seeds_key_phrases(
    world: World, protocol_id: str, seed: str, phrases: dict[str, str]
) -> None:
    world.command(f"start {protocol_id} <@{PRE}> at thu 15:00")
    session = world.session()
    dm = world.dms(PRE)[0].payload
    text = message_text(dm)
    source = (_seed(seed) or "").lower()
    for ours, theirs in phrases.items():
        assert ours in text, ours
        if source:
            assert theirs.lower() in source, theirs
    # Short enough for a phone, with the full guidance a tap away.
    assert len(dm["blocks"]) <= 8 and len(text) < 1500 and "::" not in text
    assert action_ids(dm) == ["prep_open", "prep_guidance"]
    guidance = message_text(
        guidance_view(session, world.engine.library[protocol_id], world.engine.library)
    )
    for ours in phrases:
        if ours.startswith("*"):
            continue
        assert ours.split(" ")[0] in guidance


def test_the_equity_guidance_carries_the_question_sets(world: World) -> None:
    world.command(f"start atlas-equity <@{PRE}> at thu 15:00")
    text = message_text(
        guidance_view(world.session(), world.engine.library["atlas-equity"], world.engine.library)
    )
    for phrase in ("Equity and diversity", "Self-reflection", "Quality", '"finished"'):
        assert phrase in text


@pytest.mark.parametrize(
    ("protocol_id", "asks"),
    [
        # DESE's step 1 reviews the exemplar and rubric; step 2 sorts every piece (seed 004).
        ("dese-everyday", ("exemplar", "rubric or criteria for success", "every piece")),
        # The Deep Dive's Get Prepared: a set representative of a diverse set of students.
        ("dese-deep-dive", ("exemplar", "rubric or criteria for success", "diverse set")),
    ],
)
def test_a_dese_presenter_is_asked_for_what_the_protocol_needs(
    world: World, protocol_id: str, asks: tuple[str, ...]
) -> None:
    """Not the one piece from one student, at least one successful and one not, of seed 002:
    who brings that cannot sort a class set against the rubric."""
    world.command(f"start {protocol_id} <@{PRE}> at thu 15:00")
    dm = message_text(world.dms(PRE)[0].payload)
    guidance = message_text(
        guidance_view(world.session(), world.engine.library[protocol_id], world.engine.library)
    )
    for text in (dm, guidance):
        for ask in asks:
            assert ask in text, (ask, text)
        assert "one piece of work from one student" not in text
        assert "single piece of work from one student" not in text
        assert "completed the assignment successfully" not in text
        # The reasons and the care for names stay those of seed 002.
        assert "concerned" in text and "remove the student's name" in text


@pytest.mark.parametrize("protocol_id", ["atlas", "atlas-equity"])
def test_every_prep_message_renders_cleanly(world: World, protocol_id: str) -> None:
    """Each DM, note and reply of a full prep story: no stray directives, valid blocks."""
    world.command(f"start {protocol_id} <@{PRE}> at thu 15:00")
    # A second session at the same time (the same start twice would be refused as one).
    world.command(f"start {protocol_id} <@{PRE}> at thu 15:00 step 1d")
    world.clock.set(THU_15_LA - timedelta(hours=24))
    world.due(1, prep.REMIND)
    reason = "concerned" if protocol_id == "atlas-equity" else "dilemma"
    prep_dialog.submit(
        world.engine, "T_TEAM", PRE, 2, Submission(reason, "Task", "https://a.b", True)
    )
    world.due(2, prep.REMIND)
    world.clock.set(THU_15_LA - timedelta(hours=3))
    world.due(1, prep.FOLLOWUP)
    with world.db.session() as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.channel_id == PRE)).first()
        assert row is not None
        row.status, row.error = "failed", "user_not_found"
        prep.dm_failed(world.engine, s, row)
    prep_dialog.switch(world.engine, Actor("T_TEAM", FAC, "D_FAC"), 2, "consultancy")
    replies = [world.command(text) for text in ("status", "cancel", "cancel 1", "rotation")]
    texts = [message_text(row.payload) for row in world.outbox()] + replies
    kinds = {str(row.ref).split(":")[-1] for row in world.outbox()}
    assert kinds >= {
        "scheduled",
        "remind",
        "followup",
        "followup_facilitator",
        "unreachable",
        "submitted",
        "submitted_facilitator",
        "switched",
        "cancelled",
    }
    for text in texts:
        assert "::" not in text and "{{" not in text and "None" not in text, text


# -- end to end over signed HTTP -----------------------------------------------------------------


def _dm(bot: Bot, user: str) -> list[dict[str, object]]:
    return bot.posts(f"D{user[1:]}")


def _open_dialog(bot: Bot, session_id: int) -> dict[str, object]:
    before = len(bot.standin.calls_to("views.open"))
    status, _ = bot.action("prep_open", str(session_id), user=PRESENTER)
    assert status == 200
    calls = bot.standin.calls_to("views.open")
    assert len(calls) == before + 1 and calls[-1].response["ok"], calls[-1].response
    view = calls[-1].response["view"]
    assert isinstance(view, dict)
    return view


def test_e2e_reminder_dialog_and_statement_in_step_1(bot: Bot) -> None:
    answer = bot.command(f"start atlas <@{PRESENTER}|maria> in 2d")
    assert "scheduled for" in answer["text"]
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    dm = _dm(bot, PRESENTER)[0]
    assert "keeps you up at night" in message_text(dm)
    with bot.db.session() as s:
        sid = s.scalars(select(ProtocolSession.id)).one()

    # "More guidance" opens the full guidance; "Get ready" opens the dialog.
    bot.action("prep_guidance", str(sid), user=PRESENTER)
    guidance = bot.standin.calls_to("views.open")[-1].params["view"]
    assert "strut our stuff" in message_text(guidance)
    view = _open_dialog(bot, sid)
    assert [b.get("block_id") for b in view["blocks"]] == [  # type: ignore[union-attr]
        "intro",
        "reason",
        "suggestion",
        "statement",
        "link",
        "confirm",
    ]

    # Picking a reason shows the protocol that suits it.
    status, _ = bot.post(view_action(view, PRESENTER, "dilemma"))
    assert status == 200
    updated = bot.standin.calls_to("views.update")[-1].params["view"]
    assert "*Consultancy* usually fits better" in message_text(updated)

    # Missing fields come back inline, block by block.
    status, body = bot.post(
        view_submission(
            view, PRESENTER, dialog_values(reason=None, statement="", link="", confirmed=False)
        )
    )
    errors = parsed_body(body)
    assert status == 200 and errors["response_action"] == "errors"
    assert set(errors["errors"]) == {"reason", "statement", "confirm"}
    assert "teacher comments" in errors["errors"]["confirm"]

    statement = "Graph the <!here> fruit survey & label the axes"
    good = dialog_values(statement=statement, link="https://docs.example.org/fruit")
    for _ in range(2):  # submitted twice: one result, one set of messages
        status, body = bot.post(view_submission(view, PRESENTER, good))
        assert status == 200 and parsed_body(body) == {}
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 2 and len(_dm(bot, FACILITATOR)) == 1)
    assert "you're ready" in message_text(_dm(bot, PRESENTER)[1])
    note = message_text(_dm(bot, FACILITATOR)[0])
    assert "is ready" in note and "&lt;!here&gt;" in note and "<!here>" not in note

    # The start: step 1 carries the statement, escaped, and the link.
    bot.runtime.engine.begin(sid)
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    step1 = message_text(bot.step_posts()[0])
    assert "Graph the &lt;!here&gt; fruit survey &amp; label the axes" in step1
    assert "<https://docs.example.org/fruit|The student work>" in step1
    assert len(_dm(bot, PRESENTER)) == 2 and len(_dm(bot, FACILITATOR)) == 1


def test_e2e_switch_from_the_facilitators_note(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    view = _open_dialog(bot, 1)
    bot.post(view_submission(view, PRESENTER, dialog_values(reason="dilemma")))
    bot.wait_until(lambda: len(_dm(bot, FACILITATOR)) == 1)
    note = _dm(bot, FACILITATOR)[0]
    assert action_ids(note) == ["prep_switch"]  # type: ignore[arg-type]
    assert "Only the facilitator" in _respond_text(bot, "prep_switch", "1:consultancy", TEACHERS[0])
    assert "now *Consultancy*" in _respond_text(bot, "prep_switch", "1:consultancy", FACILITATOR)
    with bot.db.session() as s:
        assert s.get(ProtocolSession, 1).protocol_id == "consultancy"  # type: ignore[union-attr]
    bot.wait_until(lambda: "switched your session" in message_text(_dm(bot, PRESENTER)[-1]))


def _respond_text(bot: Bot, action: str, value: str, user: str) -> str:
    before = len(bot.standin.calls_to("response_url"))
    status, _ = bot.action(action, value, user=user)
    assert status == 200
    bot.standin.wait_for(
        lambda calls: len([c for c in calls if c.method == "response_url"]) > before
    )
    return message_text(bot.standin.calls_to("response_url")[-1].params)


def test_e2e_a_dialog_slack_would_not_open_is_explained(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    bot.standin.fail_next("views.open", error="expired_trigger_id")
    assert "Press the button again" in _respond_text(bot, "prep_open", "1", PRESENTER)
    _open_dialog(bot, 1)  # and the next press opens it


def test_e2e_closed_dms_are_told_to_the_facilitator(bot: Bot) -> None:
    bot.standin.fail_next("chat.postMessage", error="cannot_dm_bot")
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, FACILITATOR)) == 1)
    note = message_text(_dm(bot, FACILITATOR)[0])
    assert "couldn't reach" in note and "cannot_dm_bot" in note and f"<@{PRESENTER}>" in note
    assert "presenter unreachable by DM" in message_text(bot.command("status"))


def test_e2e_a_presenter_copy_of_the_notes_slack_refuses_is_told_to_the_facilitator(
    bot: Bot,
) -> None:
    # `end` said the notes were on their way to the presenter; Slack refused the DM (their
    # account deactivated) and nobody heard.
    step = bot.open_step()
    bot.reply(TEACHERS[0], "Four columns, one blank.", step)
    dm = f"D{PRESENTER[1:]}"
    bot.standin.fail_next(
        "chat.postMessage", error="user_disabled", times=5, where=lambda p: p.get("channel") == dm
    )
    bot.command("end")
    bot.wait_until(lambda: len(_dm(bot, FACILITATOR)) == 1)
    bot.settle()
    (note,) = [message_text(m) for m in _dm(bot, FACILITATOR)]
    assert "their copy of the notes" in note and "user_disabled" in note
    assert f"<@{PRESENTER}>" in note and "/protocol notes" in note
    assert _dm(bot, PRESENTER) == []


def test_e2e_a_presenter_who_left_the_workspace(bot: Bot) -> None:
    bot.standin.add_user("U_LEFT", "former", deleted=True)
    answer = bot.command("start atlas <@U_LEFT> at tomorrow 15:00")
    assert "has left this workspace" in message_text(answer)
    answer = bot.command("start atlas <@U_NOBODY> in 1d")
    assert "has left this workspace" in message_text(answer)
    with bot.db.session() as s:
        assert s.scalar(select(func.count(ProtocolSession.id))) == 0


def test_e2e_who_booked_a_session_for_another_facilitator_may_cancel_it(bot: Bot) -> None:
    # Refused before: "Only the facilitator, @t1, can cancel" to the one who scheduled it.
    bot.command(f"start atlas <@{PRESENTER}> in 2d facilitator <@{TEACHERS[0]}>")
    assert "Only the facilitator" in message_text(bot.command("cancel 1", user=TEACHERS[1]))
    assert "Cancelled session #1" in message_text(bot.command("cancel 1"))


def test_e2e_slackbot_is_no_presenter(bot: Bot) -> None:
    # Slack's users.info says Slackbot is no bot (is_bot false): it was taken for a teacher.
    bot.standin.add_user("USLACKBOT", "slackbot")
    answer = bot.command("start atlas <@USLACKBOT|slackbot> step 1d")
    assert "is an app, not a person, so it can't present" in message_text(answer)
    with bot.db.session() as s:
        assert s.scalar(select(func.count(ProtocolSession.id))) == 0


def test_e2e_cancel_tells_the_presenter(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    assert "Only the facilitator" in message_text(bot.command("cancel", user=TEACHERS[0]))
    assert "Cancelled session #1" in message_text(bot.command("cancel 1"))
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 2)
    assert "nothing to prepare" in message_text(_dm(bot, PRESENTER)[1])
    assert not [
        j
        for j in bot.runtime.scheduler._aps.get_jobs()  # type: ignore[union-attr]
        if j.id.startswith("session:1:")
    ]
    # The reminder's button now explains instead of opening a dialog.
    assert "was cancelled" in _respond_text(bot, "prep_open", "1", PRESENTER)


def test_e2e_a_session_cancelled_and_booked_again_keeps_the_presenters_prep(bot: Bot) -> None:
    # Moving a session means `cancel` and `start` again (the refusal of a twin says so): the
    # presenter's prep stayed with the cancelled one, and they were asked for it all over.
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    view = _open_dialog(bot, 1)
    statement = "Graph the fruit survey, then label the axes."
    status, body = bot.post(view_submission(view, PRESENTER, dialog_values(statement=statement)))
    assert status == 200 and parsed_body(body) == {}
    bot.command("cancel 1")
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}> in 3d"))
    assert "kept the prep they sent for session #1" in answer and "nudge" not in answer
    bot.command(f"start atlas <@{TEACHERS[0]}> in 4d")  # someone else's: nothing kept
    bot.settle()
    kept = message_text(_dm(bot, PRESENTER)[-1])
    assert "kept the prep you sent for session #1" in kept and statement in kept
    assert "Edit my prep" in kept and "Get ready" not in kept
    with bot.db.session() as s:
        again, other = s.get(ProtocolSession, 2), s.get(ProtocolSession, 3)
        assert again is not None and other is not None
        assert again.statement == statement and prep.is_ready(again)
        assert other.statement is None and not prep.is_ready(other)
    assert "Get ready" in message_text(_dm(bot, TEACHERS[0])[-1])
    status_text = message_text(bot.command("status"))
    assert re.search(r"#2 [^\n]*prep in", status_text)


def test_e2e_prep_sent_for_a_session_moved_meanwhile_goes_to_the_one_booked_again(
    bot: Bot,
) -> None:
    # The presenter wrote their prep while the facilitator moved the session (cancel, start
    # again): the dialog answered "cancelled, nothing to prepare", with the new one waiting.
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    view = _open_dialog(bot, 1)
    bot.command("cancel 1")
    bot.command(f"start atlas <@{PRESENTER}> in 3d")
    statement = "Graph the fruit survey, then label the axes."
    status, body = bot.post(view_submission(view, PRESENTER, dialog_values(statement=statement)))
    assert status == 200 and parsed_body(body) == {}
    bot.settle()
    with bot.db.session() as s:
        moved, cancelled = s.get(ProtocolSession, 2), s.get(ProtocolSession, 1)
        assert moved is not None and cancelled is not None
        assert moved.statement == statement and prep.is_ready(moved)
        assert cancelled.statement is None
    thanks = message_text(_dm(bot, PRESENTER)[-1])
    assert "you're ready" in thanks and statement in thanks
    # The first note's Get ready button opens the prep of the session booked in its place.
    reopened = _open_dialog(bot, 1)
    assert json.loads(str(reopened["private_metadata"]))["session_id"] == 2


def test_e2e_prep_sent_for_a_cancelled_session_is_refused_when_none_took_its_place(
    bot: Bot,
) -> None:
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    view = _open_dialog(bot, 1)
    bot.command("cancel 1")
    bot.command(f"start atlas <@{TEACHERS[0]}> in 3d")  # someone else presents
    status, body = bot.post(view_submission(view, PRESENTER, dialog_values()))
    assert "was cancelled" in parsed_body(body)["errors"]["reason"]
    with bot.db.session() as s:
        assert s.scalar(select(func.count()).where(ProtocolSession.statement.is_not(None))) == 0


def test_e2e_a_bare_cancel_while_a_session_runs_calls_off_nothing(bot: Bot) -> None:
    # The facilitator means the session in front of them: the one booked for tomorrow, and
    # its presenter's prep, stay.
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.command(f"start atlas <@{TEACHERS[0]}> in 1d")
    bot.wait_until(lambda: len(_dm(bot, TEACHERS[0])) == 1)
    answer = message_text(bot.command("cancel"))
    assert "Session #1 is running here" in answer and "`/protocol end` ends this one" in answer
    assert "`/protocol cancel 2`" in answer and "Cancelled" not in answer
    with bot.db.session() as s:
        assert s.get(ProtocolSession, 2).status == "scheduled"  # type: ignore[union-attr]
    assert "Cancelled session #2" in message_text(bot.command("cancel 2"))


def test_e2e_an_admin_who_cancels_is_named_and_the_facilitator_told(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    answer = message_text(bot.command("cancel 1", user="U_ADMIN"))
    assert "Cancelled session #1" in answer and f"facilitator, <@{FACILITATOR}>, know" in answer
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 2 and len(_dm(bot, FACILITATOR)) == 1)
    told = message_text(_dm(bot, PRESENTER)[1])
    assert "<@U_ADMIN> cancelled" in told and f"<@{FACILITATOR}>" not in told
    note = message_text(_dm(bot, FACILITATOR)[0])
    assert "<@U_ADMIN> cancelled" in note and "session #1" in note


def test_e2e_a_session_waiting_for_the_channel_starts_when_it_is_free(bot: Bot) -> None:
    t1, t2, _ = TEACHERS
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    reply = message_text(bot.command(f"start tuning <@{t1}> in 2s facilitator <@{t2}>"))
    assert "*ATLAS - Learning from Student Work* (session #1) is planned to be running" in reply
    bot.wait_until(lambda: any("starts right after" in message_text(dm) for dm in _dm(bot, t2)))
    assert "waiting for the session" in message_text(bot.command("status", user=t1))
    bot.command("end")
    # Its step 1 comes as the other one ends, not at the next retry minutes later.
    bot.wait_until(lambda: len(bot.step_posts()) == 2, timeout=5)
    with bot.db.session() as s:
        assert s.get(ProtocolSession, 2).status == "running"  # type: ignore[union-attr]


def test_e2e_the_conference_shows_the_work_first_and_the_assignment_when_the_presenter_speaks(
    bot: Bot,
) -> None:
    # The Collaborative Assessment Conference looks at the work knowing nothing of the
    # assignment until the presenter speaks in step 5: step 1 showed the presenter's statement
    # (and asked for one) while its own guidance said to say nothing about the assignment.
    bot.command(f"start collaborative-assessment <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    assert "(it opens step 5)" in message_text(_dm(bot, PRESENTER)[0])
    view = _open_dialog(bot, 1)
    assert "It opens step 5." in message_text(view)
    statement = "Write about a time you changed your mind."
    good = dialog_values(statement=statement, link="https://docs.example.org/essay")
    status, _ = bot.post(view_submission(view, PRESENTER, good))
    assert status == 200
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 2)
    assert "Your statement will open step 5:" in message_text(_dm(bot, PRESENTER)[1])

    bot.runtime.engine.begin(1)
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    step1 = message_text(bot.step_posts()[0])
    assert "<https://docs.example.org/essay|The student work>" in step1
    assert statement not in step1 and "asked to do" not in step1
    for opened in range(2, 6):
        bot.command("next")
        bot.wait_until(lambda opened=opened: len(bot.step_posts()) == opened)
    step5 = message_text(bot.step_posts()[4])
    assert step5.count(statement) == 1
    assert all(statement not in message_text(m) for m in bot.step_posts()[1:4])


def test_e2e_without_prep_the_conference_asks_for_the_work_alone_in_step_1(bot: Bot) -> None:
    bot.command(f"start collaborative-assessment <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    step1 = message_text(bot.step_posts()[0])
    # The step's own words ask for the work alone; the bot calls on the presenter, once (it
    # said a third time to share the work with no comment).
    assert "and no comment on it" not in step1
    assert f"<@{PRESENTER}>, you start: reply in this thread as this step asks." in step1
    assert "brief statement" not in step1 and "asked to do" not in step1
    for opened in range(2, 6):
        bot.command("next")
        bot.wait_until(lambda opened=opened: len(bot.step_posts()) == opened)
    step5 = message_text(bot.step_posts()[4])
    assert "please start with a very brief statement of what the student was asked to do" in step5


def test_e2e_prep_sent_during_the_conference_shows_the_work_now_and_the_statement_in_step_5(
    bot: Bot,
) -> None:
    bot.command(f"start collaborative-assessment <@{PRESENTER}> step 1h")
    for opened in (2, 3):
        bot.wait_until(lambda opened=opened: len(bot.step_posts()) == opened - 1)
        bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 3)
    view = _open_dialog(bot, 1)  # step 3: the statement is still to come
    statement = "Write about a time you changed your mind."
    good = dialog_values(statement=statement, link="https://docs.example.org/essay")
    status, body = bot.post(view_submission(view, PRESENTER, good))
    assert status == 200 and parsed_body(body) == {}
    step1 = bot.step_posts()[0]["ts"]
    bot.wait_until(lambda: any(m.get("thread_ts") == step1 for m in bot.posts()))
    late = [message_text(m) for m in bot.posts() if m.get("thread_ts") == step1]
    assert "<https://docs.example.org/essay|The work>" in late[0] and statement not in late[0]
    for opened in (4, 5):
        bot.command("next")
        bot.wait_until(lambda opened=opened: len(bot.step_posts()) == opened)
    step5 = bot.step_posts()[4]
    assert statement in message_text(step5)
    assert all(statement not in message_text(m) for m in bot.posts() if m["ts"] != step5["ts"])


def test_e2e_an_operators_own_protocol_is_not_second_guessed(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # Every reason named built-in protocols only, so each prep for an operator's protocol was
    # told that ATLAS (or another) "usually fits better", and its facilitator got switch buttons.
    custom = tmp_path / "protocols"
    custom.mkdir()
    source = (BUILTIN_DIR / "atlas.yaml").read_text(encoding="utf-8")
    mine = source.replace("id: atlas", "id: our-atlas", 1).replace(
        "name: ATLAS - Learning from Student Work", "name: Our ATLAS", 1
    )
    (custom / "our-atlas.yaml").write_text(mine, encoding="utf-8")
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        bot.command(f"start our-atlas <@{PRESENTER}> in 2d")
        bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
        view = _open_dialog(bot, 1)
        status, _ = bot.post(view_action(view, PRESENTER, "wondering"))
        assert status == 200
        updated = message_text(bot.standin.calls_to("views.update")[-1].params["view"])
        assert "fits better" not in updated
        assert "This session is set for *Our ATLAS*" in updated
        status, body = bot.post(view_submission(view, PRESENTER, dialog_values()))
        assert status == 200 and parsed_body(body) == {}
        bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 2 and len(_dm(bot, FACILITATOR)) == 1)
        assert "fits better" not in message_text(_dm(bot, PRESENTER)[1])
        note = _dm(bot, FACILITATOR)[0]
        assert "fits better" not in message_text(note) and action_ids(note) == []
    finally:
        bot.stop()


def test_e2e_only_protocols_that_describe_first_ask_the_statement_to_withhold_context(
    bot: Bot,
) -> None:
    # ATLAS keeps background and hopes out so the team sees what is in the work; the Tuning
    # Protocol's presenter opens with the context and the goals, and the DESE tool's first step
    # is the team's expectations: there "nothing about what you hoped to see" was wrong.
    withheld = "nothing about what you hoped to see"
    bot.command(f"start tuning <@{PRESENTER}> in 2d")
    bot.command(f"start atlas <@{PRESENTER}> in 3d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 2)
    tuning, atlas = _open_dialog(bot, 1), _open_dialog(bot, 2)
    assert withheld not in message_text(tuning)
    assert "the way you gave it to students. It opens step 1." in message_text(tuning)
    assert withheld in message_text(atlas)
    bot.action("prep_guidance", "1", user=PRESENTER)
    guidance = message_text(bot.standin.calls_to("views.open")[-1].params["view"])
    assert "Very brief: only what the student was asked to do.\n" in guidance
    bot.action("prep_guidance", "2", user=PRESENTER)
    guidance = message_text(bot.standin.calls_to("views.open")[-1].params["view"])
    assert "nothing about what you hoped or expected to see" in guidance

    bot.runtime.engine.begin(1)
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    # Its first step asks the presenter for the context, the goals and the rubric: a request
    # of the bot's for "a very brief statement" and the work alone said otherwise.
    step1 = message_text(bot.step_posts()[0])
    assert "very brief statement" not in step1
    assert f"<@{PRESENTER}>, you start: reply in this thread as this step asks." in step1
    bot.command("end")
    bot.runtime.engine.begin(2)
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    step1 = message_text(bot.step_posts()[1])
    assert "a very brief statement of what the student was asked to do (no background" in step1


def test_e2e_step_1_calls_on_the_presenter_after_their_statement_where_they_bring_more(
    bot: Bot,
) -> None:
    # The Consultancy's presenter brings the dilemma in step 1: with the prep in, step 1 showed
    # the statement and the link, and called on nobody to start.
    bot.command(f"start consultancy <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    view = _open_dialog(bot, 1)
    status, body = bot.post(view_submission(view, PRESENTER, dialog_values(reason="dilemma")))
    assert status == 200 and parsed_body(body) == {}
    bot.runtime.engine.begin(1)
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    step1 = message_text(bot.step_posts()[0])
    assert "*The assignment, in the presenter's words:*" in step1
    assert "<https://docs.example.org/work/42|The student work>" in step1
    assert f"<@{PRESENTER}>, you start: reply in this thread as this step asks." in step1


def test_a_session_booked_ahead_of_others_names_those_that_will_wait_for_it(bot: Bot) -> None:
    # Booked in half an hour on hour-long steps, it pushed back the two booked for one and two
    # hours from now, and its answer said nothing of them.
    bot.command(f"start consultancy <@{TEACHERS[0]}> in 1h step 30m")
    bot.command(f"start dese-everyday <@{PRESENTER}> in 10h step 10m")
    bot.command(f"start atlas <@{PRESENTER}> in 2h step 10m")
    text = bot.command(f"start tuning <@{TEACHERS[1]}> in 30m step 1h")["text"]
    assert "is scheduled for" in text
    assert "2 sessions are scheduled here while this one runs (#1 <!date^" in text
    assert "#3 <!date^" in text and "#2" not in text
    assert "they will wait, and the first starts when this one ends, planned for <!date^" in text
    assert "`/protocol cancel 4` and schedule this one for later" in text
    # Booked after them, or in a gap they leave, it delays nobody.
    later = bot.command(f"start atlas <@{PRESENTER}> in 12h step 10m")["text"]
    assert "when this one ends" not in later


def test_e2e_a_statement_holding_a_nul_character_is_kept_without_it(bot: Bot) -> None:
    # PostgreSQL's text holds no NUL: the dialog closed as if all was well, the statement was
    # not kept, and the submission logged a DataError's traceback.
    bot.command(f"start atlas <@{PRESENTER}|maria> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    view = _open_dialog(bot, 1)
    pasted = dialog_values(statement="Graph the\x00 fruit survey", link="https://example.org/\x00w")
    status, body = bot.post(view_submission(view, PRESENTER, pasted))
    assert status == 200 and parsed_body(body) == {}
    bot.wait_until(lambda: len(_dm(bot, FACILITATOR)) == 1)
    with bot.db.session() as s:
        session = s.get(ProtocolSession, 1)
        assert session is not None
        assert session.statement == "Graph the fruit survey"
        assert "\x00" not in str(session.prep)


def test_e2e_prep_sent_while_step_1_runs_says_it_is_in_its_thread(bot: Bot) -> None:
    # The statement went into step 1's thread at once, and the presenter was thanked with
    # "Your statement will open step 1", for a start already past.
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    bot.runtime.engine.begin(1)
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    view = _open_dialog(bot, 1)
    status, body = bot.post(view_submission(view, PRESENTER, dialog_values()))
    assert status == 200 and parsed_body(body) == {}
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 2)
    thanks = _dm(bot, PRESENTER)[1]
    said = message_text(thanks)
    assert "will open step 1" not in said
    assert "I've shared your statement in step 1's thread" in said
    assert "the statement is in step 1's thread" in str(thanks["text"])


def test_e2e_a_statement_changed_while_step_1_runs_says_it_replaces_the_one_before(
    bot: Bot,
) -> None:
    # A second statement in step 1's thread read as the first one did: two assignments, and
    # nothing to tell the team which one stands.
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    view = _open_dialog(bot, 1)
    for statement in ("Graph the fruit survey.", "Graph the fruit survey, then label the axes."):
        sent = view_submission(view, PRESENTER, dialog_values(statement=statement))
        status, body = bot.post(sent)
        assert status == 200 and parsed_body(body) == {}
    step1 = str(bot.step_posts()[0]["ts"])
    bot.settle()
    first, second = [m for m in bot.posts() if m.get("thread_ts") == step1]
    assert "updated" not in message_text(first)
    said = message_text(second)
    assert "The assignment, updated by the presenter" in str(second["text"])
    assert "it replaces the one sent before" in said and "label the axes" in said
    assert "label the axes" in message_text(bot.step_posts()[0])


def test_e2e_prep_the_facilitator_fills_in_tells_the_presenter_who_did(bot: Bot) -> None:
    # The presenter was thanked for a statement they never wrote, "Your statement will open
    # step 1", with nothing to say the facilitator had filled it in for them.
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    status, _ = bot.action("prep_open", "1", user=FACILITATOR)
    assert status == 200
    view = bot.standin.calls_to("views.open")[-1].response["view"]
    assert isinstance(view, dict)
    status, body = bot.post(view_submission(view, FACILITATOR, dialog_values()))
    assert status == 200 and parsed_body(body) == {}
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 2)
    told = _dm(bot, PRESENTER)[1]
    said = message_text(told)
    assert f"<@{FACILITATOR}> filled in your prep for *ATLAS" in said
    assert "Thank you, you're ready" not in said and "Your statement" not in said
    assert str(told["text"]).startswith(f"<@{FACILITATOR}> filled in your prep for ATLAS")
    # An edit of their own later is theirs again.
    view = _open_dialog(bot, 1)
    edit = dialog_values(statement="Solve the three fraction problems.")
    status, _ = bot.post(view_submission(view, PRESENTER, edit))
    assert status == 200
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 3)
    assert message_text(_dm(bot, PRESENTER)[2]).startswith("Updated your prep for ATLAS")


def test_e2e_prep_sent_too_late_says_why_and_where_the_statement_goes(bot: Bot) -> None:
    # A dialog left open while step 1 closed, or the session was cancelled, said "already
    # started or was cancelled", whichever it was, and not where the statement typed could go.
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.command(f"start atlas <@{PRESENTER}> in 3d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 2)
    first, second = _open_dialog(bot, 1), _open_dialog(bot, 2)
    bot.runtime.engine.begin(1)
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    bot.command("cancel 2")
    errors = []
    for view in (first, second):
        status, body = bot.post(view_submission(view, PRESENTER, dialog_values()))
        assert status == 200 and parsed_body(body)["response_action"] == "errors"
        errors.append(parsed_body(body)["errors"]["reason"])
    assert errors[0] == (
        "This session is past step 1 already, so the prep can't be saved here. Copy your"
        " statement and share it in step 1's thread instead."
    )
    assert errors[1] == "This session was cancelled, so there's nothing to prepare for now."


def test_e2e_a_facilitator_who_schedules_themself_to_present_is_spoken_to(bot: Bot) -> None:
    # The answer spoke of them as someone else: "I've sent <@dana> a note to get ready, and
    # I'll remind them ... If their prep isn't in ..., I'll nudge them once more."
    text = message_text(bot.command(f"start atlas <@{FACILITATOR}|dana> in 2d"))
    assert "I've sent you a note to get ready, and I'll remind you <!date^" in text
    assert "If your prep isn't in by <!date^" in text and "I'll nudge you once more." in text
    assert f"<@{FACILITATOR}> a note" not in text and "them" not in text
    other = message_text(bot.command(f"start atlas <@{FACILITATOR}> in 3d facilitator <@U_T1>"))
    assert "I'll nudge you once more and tell the facilitator, <@U_T1>." in other
    for_someone = message_text(bot.command(f"start atlas <@{PRESENTER}> in 4d"))
    assert f"I've sent <@{PRESENTER}> a note" in for_someone and "nudge them" in for_someone


def test_e2e_a_start_minutes_away_gets_one_note_and_no_follow_up(bot: Bot) -> None:
    # Scheduled 4 seconds ahead, the presenter had a follow-up ("Two minutes to get ready?")
    # 2 seconds after the first note, and the facilitator a word that their prep was missing.
    answer = message_text(bot.command(f"start atlas <@{PRESENTER}> in 4s step 1h"))
    assert "I've sent <@U_PRE> a note to get ready." in answer and "nudge" not in answer
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.settle()
    assert len(_dm(bot, PRESENTER)) == 1
    assert "You present student work" in str(_dm(bot, PRESENTER)[0]["text"])
    assert _dm(bot, FACILITATOR) == []
    with bot.db.session() as s:
        sent = (s.get(ProtocolSession, 1).prep or {}).get("sent")  # type: ignore[union-attr]
    assert set(sent) == {"scheduled", prep.REMIND}


def test_e2e_prep_sent_while_step_1_runs_offers_the_facilitator_no_switch(bot: Bot) -> None:
    # The facilitator's note offered "Switch to Consultancy" for a session already running,
    # which the button then refused, and gave the start, already past, as to come.
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    bot.runtime.engine.begin(1)
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    view = _open_dialog(bot, 1)
    status, _ = bot.post(view_submission(view, PRESENTER, dialog_values(reason="dilemma")))
    assert status == 200
    bot.wait_until(lambda: len(_dm(bot, FACILITATOR)) == 1)
    note = _dm(bot, FACILITATOR)[0]
    assert action_ids(note) == []  # type: ignore[arg-type]
    said = message_text(note)
    assert "usually fits better" not in said
    assert "I've shared the statement in step 1's thread" in said


def test_e2e_the_prep_dialog_the_facilitator_opens_speaks_to_them(bot: Bot) -> None:
    # The facilitator, who may fill the prep in for the presenter, read "You're presenting at
    # ATLAS" at the top of the dialog.
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    status, _ = bot.action("prep_open", "1", user=FACILITATOR)
    assert status == 200
    view = bot.standin.calls_to("views.open")[-1].response["view"]
    assert isinstance(view, dict)
    intro = message_text({"blocks": view["blocks"][:1]})
    assert f"You're filling in the prep for <@{PRESENTER}>, who presents at *ATLAS" in intro
    assert "You're presenting" not in intro
    status, _ = bot.post(view_action(view, FACILITATOR, "dilemma"))
    assert status == 200
    updated = bot.standin.calls_to("views.update")[-1].params["view"]
    assert "You're filling in the prep for" in message_text(updated)
    assert "You're presenting at *ATLAS" in message_text(_open_dialog(bot, 1))


def test_e2e_the_prep_dialog_opened_during_step_1_says_where_it_goes(bot: Bot) -> None:
    # Opened from the reminder while step 1 ran, it gave the start, already past, and said
    # "A few minutes now and the team can start straight away".
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    bot.runtime.engine.begin(1)
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    intro = message_text({"blocks": _open_dialog(bot, 1)["blocks"][:1]})  # type: ignore[index]
    assert "which has started" in intro and "straight into step 1's thread" in intro
    assert "<!date^" not in intro and "can start straight away" not in intro


def test_e2e_prep_sent_while_step_1_runs_takes_the_place_of_the_call_for_it(bot: Bot) -> None:
    # Step 1's message went on saying "No statement of the assignment yet" and asking the
    # presenter for one, above the thread where the statement had just been posted.
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    bot.runtime.engine.begin(1)
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.settle()
    assert "No statement of the assignment yet" in message_text(bot.step_posts()[0])
    view = _open_dialog(bot, 1)
    statement = "Graph the fruit survey & label the axes"
    good = dialog_values(statement=statement, link="https://docs.example.org/fruit")
    status, _ = bot.post(view_submission(view, PRESENTER, good))
    assert status == 200
    bot.wait_until(lambda: statement.replace("&", "&amp;") in message_text(bot.step_posts()[0]))
    step1 = message_text(bot.step_posts()[0])
    assert "No statement of the assignment yet" not in step1 and "please reply" not in step1
    assert "<https://docs.example.org/fruit|The student work>" in step1
    assert "Next step" in step1  # still open, its buttons in place


def test_e2e_prep_without_a_link_is_kept_and_step_1_asks_for_the_work(bot: Bot) -> None:
    # The dialog refused to save without a link to the work ("Add a link so the team can see
    # the work"): a presenter with work on paper could not send their prep at all.
    bot.command(f"start atlas <@{PRESENTER}> in 2d")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
    view = _open_dialog(bot, 1)
    link_block = next(b for b in view["blocks"] if b.get("block_id") == "link")  # type: ignore[union-attr]
    assert link_block.get("optional") is True
    statement = "Graph the fruit survey and label the axes."
    status, body = bot.post(
        view_submission(view, PRESENTER, dialog_values(statement=statement, link=""))
    )
    assert status == 200 and parsed_body(body) == {}
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 2 and len(_dm(bot, FACILITATOR)) == 1)
    told = message_text(_dm(bot, PRESENTER)[1])
    assert "you're ready" in told and "share it in step 1's thread when the session starts" in told
    note = message_text(_dm(bot, FACILITATOR)[0])
    assert "is ready" in note and "<|" not in note and "they'll share it in step 1's thread" in note
    assert "prep in" in message_text(bot.command("status"))

    bot.runtime.engine.begin(1)
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    step1 = message_text(bot.step_posts()[0])
    assert statement in step1 and "The student work" not in step1
    assert f"<@{PRESENTER}>, please share the work in this thread" in step1
    bot.command("end")
    bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 3)
    notes = message_text(_dm(bot, PRESENTER)[2])
    assert statement in notes and "The student work" not in notes and "<|" not in notes


def test_the_first_prep_note_says_who_scheduled_the_session(world: World) -> None:
    # "Hi @maria! You're presenting at ATLAS..." with no word of who had put her down for it.
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    first = _texts(world, PRE)[0]
    assert f"<@{FAC}> has scheduled you to present at *ATLAS" in first
    # Booked for another facilitator: both are named.
    world.command(f"start atlas <@{PRE}> in 3d facilitator <@U_T1>")
    assert f"<@{FAC}> has scheduled you to present" in _texts(world, PRE)[1]
    assert "with <@U_T1> facilitating" in _texts(world, PRE)[1]
    # Scheduling oneself: nobody else to name.
    world.command(f"start atlas <@{PRE}> in 4d", user=PRE)
    own = _texts(world, PRE)[2]
    assert "You're presenting at" in own and "has scheduled" not in own


def test_a_facilitator_who_presents_or_fills_in_the_prep_is_offered_the_switch(
    world: World,
) -> None:
    # A facilitator presenting themselves was told "I've let <@them> know; they can switch", and
    # one filling in the prep for the presenter was told nothing: neither got a switch button.
    world.command(f"start atlas <@{FAC}> at thu 15:00")
    own = world.session().id
    dilemma = Submission("dilemma", "Plan a debate.", "", True)
    assert prep_dialog.submit(world.engine, "T_TEAM", FAC, own, dilemma) == {}
    (note,) = [r for r in world.dms(FAC) if r.ref == f"prep:{own}:submitted"]
    assert f"I've let <@{FAC}> know" not in message_text(note.payload)
    assert "You facilitate too: switch before the start" in message_text(note.payload)
    assert action_ids(note.payload) == ["prep_switch", "prep_open"]

    world.command(f"start atlas <@{PRE}> in 3d")
    theirs = world.session().id
    assert prep_dialog.submit(world.engine, "T_TEAM", FAC, theirs, dilemma) == {}
    assert world.dm_refs(FAC)[-1] == f"prep:{theirs}:submitted_facilitator"
    assert action_ids(world.dms(FAC)[-1].payload) == ["prep_switch"]
    assert action_ids(world.dms(PRE)[-1].payload) == ["prep_open"]
    # Prep the facilitator fills in that suits the protocol tells them nothing they knew.
    fitting = Submission("wondering", "Plan a debate.", "", True)
    assert prep_dialog.submit(world.engine, "T_TEAM", FAC, theirs, fitting) == {}
    assert world.dm_refs(FAC)[-1] == f"prep:{theirs}:submitted_facilitator"
    assert len(world.dms(FAC)) == 3
    # The dialog the facilitator opens says who can switch: they can.
    session = world.session(theirs)
    view = dialog_view(session, world.engine.library["atlas"], world.engine.library, "dilemma", FAC)
    assert "Save, and you can switch before the start." in message_text(view)
    view = dialog_view(session, world.engine.library["atlas"], world.engine.library, "dilemma", PRE)
    assert "Save, and your facilitator can switch" in message_text(view)


def test_status_says_nothing_of_prep_a_protocol_never_asks_for(world: World) -> None:
    # An operator's protocol with no presenter prep sends no reminder and has no dialog, yet
    # `/protocol status` listed its session with "prep not in yet".
    open_floor = dataclasses.replace(world.engine.library["consultancy"], id="open-floor")
    world.engine.library["open-floor"] = dataclasses.replace(open_floor, presenter_prep=None)
    world.command(f"start open-floor <@{PRE}> at thu 15:00")
    assert world.dms(PRE) == []
    status = world.command("status")
    assert "presenter <@U_PRE>" in status and "prep" not in status.split("presenter <@U_PRE>")[1]
    world.command(f"start atlas <@{PRE}> in 4d")
    assert "prep not in yet" in world.command("status")


def test_the_dialog_opened_before_the_statements_step_reads_well_without_a_link(
    world: World,
) -> None:
    # Opened in the conference's step 1 it said "Your link goes into step 1's thread at once",
    # as if the presenter had to give one.
    world.command(f"start collaborative-assessment <@{PRE}> step 1h")
    session = world.session()
    protocol = world.engine.library["collaborative-assessment"]
    intro = message_text(dialog_view(session, protocol, world.engine.library, viewer=PRE))
    assert "Your link goes" not in intro
    assert "a link to the work, if you add one, goes into step 1's thread at once" in intro


def test_a_presenter_asked_to_pick_the_reason_again_is_not_told_their_prep_is_in(
    world: World,
) -> None:
    # After a switch to the equity ATLAS dropped the reason ("please pick your reason again"),
    # the lead-time reminder said "Your prep is in, so there's nothing more to do".
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    sid = world.session().id
    revise = Submission("revise", "Plan a debate.", "", True)
    assert prep_dialog.submit(world.engine, "T_TEAM", PRE, sid, revise) == {}
    prep_dialog.switch(world.engine, Actor("T_TEAM", FAC, "D_FAC"), sid, "atlas-equity")
    world.clock.set(THU_15_LA - timedelta(hours=24))
    world.due(sid, prep.REMIND)
    assert world.dm_refs(PRE)[-1] == f"prep:{sid}:remind"
    reminder = world.dms(PRE)[-1].payload
    assert "nothing more to do" not in message_text(reminder)
    assert action_ids(reminder) == ["prep_open", "prep_guidance"]


def test_a_statement_of_invisible_characters_alone_is_asked_for_again(world: World) -> None:
    # Zero-width spaces pasted from a document were kept as the statement: step 1 opened with
    # an empty quote under "The assignment, in the presenter's words".
    world.command(f"start atlas <@{PRE}> at thu 15:00")
    sid = world.session().id
    blank = Submission("wondering", "\u200b \u200d\u2060\n\ufeff", "", True)
    assert prep_dialog.submit(world.engine, "T_TEAM", PRE, sid, blank) == {
        "statement": "statement_missing"
    }
    assert world.session(sid).statement is None
    shown = Submission("wondering", "\u200bGraph the fruit survey.", "", True)
    assert prep_dialog.submit(world.engine, "T_TEAM", PRE, sid, shown) == {}


def test_e2e_a_presenter_out_of_the_channel_is_told_by_the_reminder_to_join_it_again(
    workspace: SlackStandin, database_url: str
) -> None:
    """The presenter left the channel after the session was booked: the reminders that come by
    the clock still said only "you present in #team", and they would have missed every step.
    They say now to join the channel again first; once back, nothing of it."""
    clock = HeldClock(datetime.now(UTC))
    bot = Bot(workspace, database_url, clock=clock).start()
    try:
        bot.command(f"start atlas <@{PRESENTER}> in 2d")
        bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 1)
        assert "no longer" not in message_text(_dm(bot, PRESENTER)[0])
        with bot.db.session() as s:
            session = s.scalars(select(ProtocolSession)).one()
        bot.standin.remove_member(CHANNEL, PRESENTER)
        left = {"type": "member_left_channel", "user": PRESENTER, "channel": CHANNEL}
        assert bot.event(left) == 200

        clock.set(session.starts_at - timedelta(hours=24))
        prep.due(bot.runtime.engine, session.id, prep.REMIND)
        bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 2)
        reminder = message_text(_dm(bot, PRESENTER)[1])
        assert "friendly reminder" in reminder
        assert f"You're no longer a member of <#{CHANNEL}>" in reminder
        assert f"Please join <#{CHANNEL}> again before the session starts" in reminder
        assert f"ask <@{FACILITATOR}> to add you back" in reminder
        assert f"You're no longer in <#{CHANNEL}>: join it again first." in str(
            _dm(bot, PRESENTER)[1]["text"]
        )

        bot.standin.add_member(CHANNEL, PRESENTER)
        clock.set(session.starts_at - timedelta(hours=3))
        prep.due(bot.runtime.engine, session.id, prep.FOLLOWUP)
        bot.wait_until(lambda: len(_dm(bot, PRESENTER)) == 3)
        assert "no longer" not in message_text(_dm(bot, PRESENTER)[2])
    finally:
        bot.stop()
