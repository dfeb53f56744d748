"""The engine on a held clock: pacing, transitions, catch-up, permissions, one workspace at a time.

No HTTP and no real scheduler: a recording Timers stands in for APScheduler, and the tests play
the scheduler by calling `close_step` for the deadlines it was given. What would reach Slack is
read from the outbox.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.engine import controls
from bot.engine.core import Actor, Engine, Pressed
from bot.engine.errors import Refusal, Reply
from bot.engine.pacing import carry_past_weekend, close_time, step_seconds
from bot.engine.replies import Replies
from bot.protocols import Protocol
from bot.store.db import Database
from bot.store.migrate import upgrade
from bot.store.models import Contribution, OutboxMessage, ProtocolSession, StepRun

WEDNESDAY = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
TEAM, CHANNEL = "T_ONE", "C_ROOM"
FACILITATOR, PRESENTER, TEACHER, ADMIN = "U_FAC", "U_PRE", "U_T1", "U_ADMIN"
NEW_YORK = "America/New_York"


class HeldClock:
    """Time stands still until a test moves it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)

    def set(self, at: datetime) -> None:
        self.at = at


@dataclass
class RecordingTimers:
    """The scheduler port as APScheduler keeps it: one job per id, replaced, removed when run."""

    deadlines: list[tuple[int, int, datetime]] = field(default_factory=list)
    starts: list[tuple[int, datetime]] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)
    other: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    jobs: dict[str, tuple[int, int, datetime]] = field(default_factory=dict)

    def step_deadline(self, session_id: int, step: int, at: datetime) -> None:
        self.deadlines.append((session_id, step, at))
        self.jobs.pop(f"session:{session_id}:step:{step - 1}:close", None)
        self.jobs[f"session:{session_id}:step:{step}:close"] = (session_id, step, at)

    def session_start(self, session_id: int, at: datetime) -> None:
        self.starts.append((session_id, at))

    def clear(self, session_id: int) -> None:
        self.cleared.append(session_id)
        for job_id in [j for j in self.jobs if j.startswith(f"session:{session_id}:")]:
            del self.jobs[job_id]

    def __getattr__(self, name: str) -> Callable[..., None]:
        # Warnings, prep reminders and whatever the port grows next: recorded, not acted on.
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self.other.append((name, args))

    def take_due(self, now: datetime) -> tuple[int, int, datetime] | None:
        """The earliest close job whose time has come, removed as APScheduler removes it."""
        due = sorted((at, job_id) for job_id, (_s, _k, at) in self.jobs.items() if at <= now)
        return self.jobs.pop(due[0][1]) if due else None


def actor(user: str = FACILITATOR, *, team: str = TEAM, channel: str = CHANNEL, **kw: Any) -> Actor:
    return Actor(team_id=team, user_id=user, channel_id=channel, **kw)


def start(engine: Engine, protocol: str = "atlas", **kw: Any) -> ProtocolSession:
    who = kw.pop("by", None) or actor()
    reply = engine.start(who, protocol_id=protocol, presenter=PRESENTER, **kw)
    assert reply.template in ("replies/started.j2", "replies/scheduled.j2")
    session = reply.context["session"]
    assert isinstance(session, ProtocolSession)
    return session


def session_row(engine: Engine, session_id: int) -> ProtocolSession:
    with engine.db.session() as s:
        row = s.get(ProtocolSession, session_id)
        assert row is not None
        s.expunge(row)
        return row


def runs(engine: Engine, session_id: int) -> list[StepRun]:
    with engine.db.session() as s:
        rows = list(
            s.scalars(
                select(StepRun).where(StepRun.session_id == session_id).order_by(StepRun.index)
            )
        )
        s.expunge_all()
        return rows


def outbox(engine: Engine) -> list[OutboxMessage]:
    with engine.db.session() as s:
        rows = list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        s.expunge_all()
        return rows


def step_refs(engine: Engine, session_id: int) -> list[str]:
    prefix = f"step:{session_id}:"
    return [r.ref for r in outbox(engine) if r.ref and r.ref.startswith(prefix)]


def date_tokens(text: str) -> list[int]:
    """The epochs of the <!date^...> tokens in a message, in order."""
    return [int(epoch) for epoch in re.findall(r"<!date\^(\d+)\^", text)]


def play_scheduler(engine: Engine, timers: RecordingTimers, clock: HeldClock) -> int:
    """Fire every due close the way APScheduler does after downtime: earliest first, each once."""
    fired = 0
    while (job := timers.take_due(clock.now())) is not None:
        engine.close_step(job[0], job[1])
        fired += 1
        assert fired < 100, "the scheduler never caught up"
    return fired


# -- pacing ------------------------------------------------------------------------------------


def test_step_length_is_the_protocols_live_minutes_unless_a_step_length_is_given(
    library: dict[str, Protocol],
) -> None:
    for protocol in library.values():
        for index, step in enumerate(protocol.steps, 1):
            assert step_seconds(protocol, index, None) == step.minutes * 60
            assert step_seconds(protocol, index, 86400) == 86400
    atlas = library["atlas"]
    # PRODUCT.md section 2: ten minutes each for describing, interpreting and implications.
    assert [step_seconds(atlas, k, None) for k in (2, 3, 4)] == [600, 600, 600]


def test_a_live_session_closes_each_step_after_its_own_minutes(
    engine: Engine, timers: RecordingTimers, library: dict[str, Protocol]
) -> None:
    session = start(engine)
    atlas = library["atlas"]
    [first] = runs(engine, session.id)
    assert first.started_at == WEDNESDAY
    assert first.closes_at == WEDNESDAY + timedelta(minutes=atlas.steps[0].minutes)
    assert session_row(engine, session.id).step_closes_at == first.closes_at
    assert timers.deadlines == [(session.id, 1, first.closes_at)]

    # The header shows the whole plan: each close the sum of the minutes before it.
    header = next(r for r in outbox(engine) if r.ref == f"header:{session.id}")
    closes, at = [], WEDNESDAY
    for step in atlas.steps:
        at += timedelta(minutes=step.minutes)
        closes.append(int(at.timestamp()))
    assert date_tokens(str(header.payload["blocks"])) == closes
    assert [row["closes"] for row in engine.schedule(session, atlas, WEDNESDAY)] == [
        datetime.fromtimestamp(c, UTC) for c in closes
    ]


def test_an_asynchronous_session_gives_every_step_the_same_length(engine: Engine) -> None:
    session = start(engine, step_seconds=86400)
    [first] = runs(engine, session.id)
    assert first.closes_at == WEDNESDAY + timedelta(days=1)
    step1 = next(r for r in outbox(engine) if r.ref == f"step:{session.id}:1")
    assert date_tokens(str(step1.payload["blocks"]))[-1] == int(first.closes_at.timestamp())


@pytest.mark.parametrize(
    ("opened", "seconds", "tz", "expected"),
    [
        # Friday 17:00 in New York + 1 day is Saturday: Monday 08:00, which is EDT by then
        # (the clocks go forward on Sunday 8 March 2026).
        (
            datetime(2026, 3, 6, 17, 0, tzinfo=ZoneInfo(NEW_YORK)),
            86400,
            NEW_YORK,
            datetime(2026, 3, 9, 8, 0, tzinfo=ZoneInfo(NEW_YORK)),
        ),
        # ... + 2 days is Sunday: Monday 08:00 too.
        (
            datetime(2026, 3, 6, 17, 0, tzinfo=ZoneInfo(NEW_YORK)),
            2 * 86400,
            NEW_YORK,
            datetime(2026, 3, 9, 8, 0, tzinfo=ZoneInfo(NEW_YORK)),
        ),
        # Thursday + 1 day is Friday: unchanged.
        (
            datetime(2026, 3, 5, 17, 0, tzinfo=ZoneInfo(NEW_YORK)),
            86400,
            NEW_YORK,
            datetime(2026, 3, 6, 17, 0, tzinfo=ZoneInfo(NEW_YORK)),
        ),
        # Friday noon UTC is already Saturday in Auckland: the channel's zone decides.
        (
            datetime(2026, 3, 5, 12, 0, tzinfo=UTC),
            86400,
            "Pacific/Auckland",
            datetime(2026, 3, 9, 8, 0, tzinfo=ZoneInfo("Pacific/Auckland")),
        ),
        # ... while the same close is a Friday in New York.
        (
            datetime(2026, 3, 5, 12, 0, tzinfo=UTC),
            86400,
            NEW_YORK,
            datetime(2026, 3, 6, 12, 0, tzinfo=UTC),
        ),
    ],
)
def test_weekdays_carry_a_weekend_close_to_monday_morning(
    opened: datetime, seconds: int, tz: str, expected: datetime
) -> None:
    closes = close_time(opened.astimezone(UTC), seconds, weekdays=True, tz=tz)
    assert closes == expected
    assert closes.utcoffset() == timedelta(0)  # still UTC for the store
    without = close_time(opened.astimezone(UTC), seconds, weekdays=False, tz=tz)
    # Whole days: the same local time of day, however many hours that is.
    local = opened.astimezone(ZoneInfo(tz))
    assert without == (local + timedelta(seconds=seconds)).astimezone(UTC)


def test_carry_past_weekend_is_a_no_op_on_weekdays() -> None:
    for day in range(2, 7):  # Monday 2 March .. Friday 6 March 2026
        at = datetime(2026, 3, day, 23, 59, tzinfo=ZoneInfo(NEW_YORK)).astimezone(UTC)
        assert carry_past_weekend(at, NEW_YORK) == at


def test_a_weekdays_session_opens_the_next_step_on_monday_morning(
    engine: Engine, clock: HeldClock, timers: RecordingTimers
) -> None:
    friday = datetime(2026, 3, 6, 17, 0, tzinfo=ZoneInfo(NEW_YORK)).astimezone(UTC)
    monday = datetime(2026, 3, 9, 8, 0, tzinfo=ZoneInfo(NEW_YORK)).astimezone(UTC)
    tuesday = datetime(2026, 3, 10, 8, 0, tzinfo=ZoneInfo(NEW_YORK)).astimezone(UTC)
    clock.set(friday)
    session = start(engine, step_seconds=86400, weekdays=True, tz=NEW_YORK)
    assert runs(engine, session.id)[0].closes_at == monday
    assert timers.deadlines[-1] == (session.id, 1, monday)

    clock.set(monday + timedelta(seconds=1))
    engine.close_step(session.id, 1)
    step1, step2 = runs(engine, session.id)
    assert step1.ended_at == monday
    assert (step2.started_at, step2.closes_at) == (monday, tuesday)


def test_a_weekdays_step_opened_at_the_weekend_runs_from_monday_morning(
    engine: Engine, clock: HeldClock
) -> None:
    # Opened on a Saturday, a day's step closed on Monday at 8:00: no working time at all.
    def in_march(day: int, hour: int) -> datetime:
        return datetime(2026, 3, day, hour, 0, tzinfo=ZoneInfo(NEW_YORK)).astimezone(UTC)

    saturday, tuesday, wednesday = in_march(7, 10), in_march(10, 8), in_march(11, 8)
    # Started on a Saturday: its first step opens on Monday morning (test_warning_times).
    clock.set(in_march(9, 8))
    session = start(engine, step_seconds=86400, weekdays=True, tz=NEW_YORK)
    assert runs(engine, session.id)[0].closes_at == tuesday
    # Moved on with `next` on the Saturday after: the same.
    clock.set(saturday + timedelta(days=7))
    engine.next_step(actor())
    assert runs(engine, session.id)[1].closes_at == tuesday + timedelta(days=7)
    # A step opened on a working day is as before: a day later, carried past a weekend.
    assert close_time(tuesday, 86400, weekdays=True, tz=NEW_YORK) == wednesday


def test_a_weekdays_step_paused_on_friday_keeps_its_hours_when_resumed_at_the_weekend(
    engine: Engine, clock: HeldClock
) -> None:
    # Paused with 5 working hours left (the weekend not counted), resumed on Saturday: it
    # closed on Monday at 8:00 with none of them. Resumed late on Friday, with 1 of them.
    friday_10 = datetime(2026, 3, 6, 10, 0, tzinfo=ZoneInfo(NEW_YORK)).astimezone(UTC)
    clock.set(friday_10)
    session = start(engine, step_seconds=12 * 3600, weekdays=True, tz=NEW_YORK)
    for resumed, closes in (
        (datetime(2026, 3, 7, 12, 0), datetime(2026, 3, 9, 13, 0)),  # Saturday: Monday 13:00
        (datetime(2026, 3, 13, 23, 0), datetime(2026, 3, 16, 12, 0)),  # Friday 23:00: 1 + 4 h
    ):
        clock.set(session_row(engine, session.id).step_closes_at - timedelta(hours=5))
        controls.pause(engine, actor())
        assert session_row(engine, session.id).paused_remaining == 5 * 3600
        clock.set(resumed.replace(tzinfo=ZoneInfo(NEW_YORK)).astimezone(UTC))
        controls.resume(engine, actor())
        expected = closes.replace(tzinfo=ZoneInfo(NEW_YORK)).astimezone(UTC)
        assert session_row(engine, session.id).step_closes_at == expected


def test_extends_together_keep_a_step_within_the_90_days_a_step_may_take(
    engine: Engine, clock: HeldClock
) -> None:
    # One extend is held to 14 days, but eleven of them ran a 10-minute step for 154 days.
    start(engine, step_seconds=600)
    controls.pause(engine, actor())
    for _ in range(6):
        controls.extend(engine, actor(), 14 * 86400)
    with pytest.raises(Refusal) as refused:
        controls.extend(engine, actor(), 14 * 86400)
    assert refused.value.reply.template == "refusals/extend_too_far.j2"
    session = session_row(engine, 1)
    assert session.paused_remaining == 84 * 86400 + 600
    controls.resume(engine, actor())
    with pytest.raises(Refusal):
        controls.extend(engine, actor(), 6 * 86400)
    controls.extend(engine, actor(), 5 * 86400)
    assert session_row(engine, 1).step_closes_at == clock.now() + timedelta(days=89, minutes=10)


# -- next and end --------------------------------------------------------------------------------


def test_next_closes_the_step_now_and_gives_the_next_its_full_length(
    engine: Engine, clock: HeldClock, timers: RecordingTimers, library: dict[str, Protocol]
) -> None:
    session = start(engine)
    clock.advance(90)
    reply = engine.next_step(actor())
    assert reply.template == "replies/moved_on.j2" and not reply.context["ended"]
    now = WEDNESDAY + timedelta(seconds=90)
    step1, step2 = runs(engine, session.id)
    assert step1.ended_at == now
    length = timedelta(minutes=library["atlas"].steps[1].minutes)
    assert (step2.started_at, step2.closes_at) == (now, now + length)
    assert timers.deadlines[-1] == (session.id, 2, now + length)
    assert session_row(engine, session.id).step_closes_at == now + length
    assert step_refs(engine, session.id) == [f"step:{session.id}:1", f"step:{session.id}:2"]

    # A stale button (pressed on step 1) does nothing.
    stale = engine.next_step(actor(), Pressed(None, 1))
    assert stale.template == "replies/already_moved.j2"
    assert session_row(engine, session.id).current_step == 2
    assert len(step_refs(engine, session.id)) == 2


def test_next_on_the_last_step_ends_the_session(engine: Engine, clock: HeldClock) -> None:
    session = start(engine, "dese-everyday")
    for _ in range(2):
        clock.advance(60)
        engine.next_step(actor())
    clock.advance(60)
    reply = engine.next_step(actor())
    assert reply.context["ended"] is True
    row = session_row(engine, session.id)
    assert (row.status, row.ended_at) == ("ended", clock.now())
    assert [r.ended_at for r in runs(engine, session.id)] == [
        WEDNESDAY + timedelta(seconds=60 * k) for k in (1, 2, 3)
    ]


def test_end_posts_the_notes_in_the_headers_thread_and_to_the_presenter(
    engine: Engine, clock: HeldClock, timers: RecordingTimers
) -> None:
    session = start(engine)
    clock.advance(120)
    reply = engine.end(actor())
    assert reply.template == "replies/ended.j2"
    row = session_row(engine, session.id)
    assert (row.status, row.ended_at, row.step_closes_at) == ("ended", clock.now(), None)
    assert runs(engine, session.id)[0].ended_at == clock.now()
    assert timers.cleared == [session.id]

    notes = [r for r in outbox(engine) if str(r.payload.get("text", "")).startswith("Notes from")]
    in_thread = [r for r in notes if r.channel_id == CHANNEL]
    to_presenter = [r for r in notes if r.channel_id == PRESENTER]
    assert in_thread and to_presenter
    assert {r.thread_ref for r in in_thread} == {f"header:{session.id}"}
    assert in_thread[0].payload.get("reply_broadcast") is True  # the team sees it is over
    assert all(r.thread_ref is None for r in to_presenter)
    assert all(r.method == "chat.postMessage" for r in notes)

    # Over is over: a second end, or a late timer, changes nothing.
    before = len(outbox(engine))
    with pytest.raises(Refusal) as refused:
        engine.end(actor())
    assert refused.value.reply.template == "refusals/no_session.j2"
    engine.close_step(session.id, 1)
    assert len(outbox(engine)) == before


def test_the_notes_of_a_session_ended_early_give_its_last_step_the_time_it_ran(
    engine: Engine, clock: HeldClock
) -> None:
    start(engine, step_seconds=3600)
    clock.advance(600)
    engine.end(actor())  # ten minutes into an hour-long first step
    (markdown,) = [r for r in outbox(engine) if r.method == "files.upload_v2"]
    first_step = next(
        line for line in markdown.payload["content"].splitlines() if line.startswith("| 1 |")
    )
    assert first_step.endswith("| 10 min |"), first_step


# -- idempotent transitions ------------------------------------------------------------------------


def test_close_step_ignores_a_stale_step_and_a_duplicate(
    engine: Engine, clock: HeldClock, timers: RecordingTimers
) -> None:
    session = start(engine, step_seconds=60)
    clock.advance(61)
    engine.close_step(session.id, 1)
    assert session_row(engine, session.id).current_step == 2
    posted = len(outbox(engine))
    deadlines = len(timers.deadlines)

    engine.close_step(session.id, 1)  # the same job again (a duplicate or a late replay)
    engine.close_step(session.id, 3)  # a step the session has not reached
    engine.close_step(session.id + 1000, 1)  # a session that does not exist
    assert session_row(engine, session.id).current_step == 2
    assert len(outbox(engine)) == posted
    assert len(timers.deadlines) == deadlines


def test_close_step_before_the_deadline_only_rearms_the_timer(
    engine: Engine, clock: HeldClock, timers: RecordingTimers
) -> None:
    session = start(engine, step_seconds=60)
    closes = WEDNESDAY + timedelta(seconds=60)
    clock.advance(59)
    posted = len(outbox(engine))
    engine.close_step(session.id, 1)
    assert session_row(engine, session.id).current_step == 1
    assert runs(engine, session.id)[0].ended_at is None
    assert len(outbox(engine)) == posted
    assert timers.deadlines[-1] == (session.id, 1, closes)
    assert len(timers.deadlines) == 2  # the original and the re-armed one


def test_close_step_does_nothing_to_a_paused_session(
    engine: Engine, clock: HeldClock, library: dict[str, Protocol]
) -> None:
    from bot.engine import controls

    session = start(engine, step_seconds=60)
    clock.advance(30)
    controls.pause(engine, actor())
    clock.advance(600)
    posted = len(outbox(engine))
    engine.close_step(session.id, 1)
    assert session_row(engine, session.id).current_step == 1
    assert len(outbox(engine)) == posted


# -- catching up after downtime -----------------------------------------------------------------


def test_deadlines_missed_while_down_close_on_their_planned_boundaries_in_order(
    engine: Engine, clock: HeldClock, timers: RecordingTimers
) -> None:
    session = start(engine, step_seconds=60)
    clock.advance(200)  # down through the closes of steps 1, 2 and 3
    assert play_scheduler(engine, timers, clock) == 3

    steps = runs(engine, session.id)
    assert [r.index for r in steps] == [1, 2, 3, 4]
    for run in steps:
        planned = WEDNESDAY + timedelta(seconds=60 * (run.index - 1))
        assert run.started_at == planned
        assert run.closes_at == planned + timedelta(seconds=60)
    assert [r.ended_at for r in steps] == [
        *(WEDNESDAY + timedelta(seconds=60 * k) for k in (1, 2, 3)),
        None,
    ]
    # One step message each, in order, each saying its planned close.
    refs = step_refs(engine, session.id)
    assert refs == [f"step:{session.id}:{k}" for k in (1, 2, 3, 4)]
    step_rows = [r for r in outbox(engine) if r.ref in refs]
    for k, row in enumerate(step_rows, 1):
        planned_close = WEDNESDAY + timedelta(seconds=60 * k)
        assert date_tokens(str(row.payload["blocks"]))[-1] == int(planned_close.timestamp())
    # The next deadline is the planned one, not "now + a step".
    assert timers.deadlines[-1] == (session.id, 4, WEDNESDAY + timedelta(seconds=240))

    # The scheduler replaying the same jobs again changes nothing.
    posted = len(outbox(engine))
    for k in (1, 2, 3):
        engine.close_step(session.id, k)
    assert len(outbox(engine)) == posted


def test_a_second_press_of_extend_straight_after_the_first_adds_nothing(
    engine: Engine, clock: HeldClock
) -> None:
    session = start(engine, step_seconds=3600)
    planned = session_row(engine, session.id).step_closes_at
    assert planned is not None
    pressed = Pressed(session.id, 1)
    assert controls.extend_step(engine, actor(), pressed).template == "replies/extended.j2"
    clock.advance(1)
    again = controls.extend_step(engine, actor(), pressed)
    assert again.template == "replies/extended_just_now.j2"
    assert session_row(engine, session.id).step_closes_at == planned + timedelta(minutes=15)
    clock.advance(3)  # a deliberate second press
    assert controls.extend_step(engine, actor(), pressed).template == "replies/extended.j2"
    assert session_row(engine, session.id).step_closes_at == planned + timedelta(minutes=30)
    # A command's extension is not a press: the button straight after it still counts.
    clock.advance(5)
    controls.extend(engine, actor(), 600)
    assert controls.extend_step(engine, actor(), pressed).template == "replies/extended.j2"
    assert session_row(engine, session.id).step_closes_at == planned + timedelta(minutes=55)
    # Nor is an Extend pressed after a Pause, however soon after the last Extend.
    controls.pause(engine, actor())
    left = session_row(engine, session.id).paused_remaining
    paused = controls.extend_step(engine, actor(), pressed)
    assert paused.template == "replies/extended_paused.j2"
    assert session_row(engine, session.id).paused_remaining == (left or 0) + 15 * 60


def test_a_start_due_as_the_running_session_ends_says_nothing_of_waiting(
    engine: Engine, clock: HeldClock, timers: RecordingTimers
) -> None:
    """Its start timer may run a moment before the running session's last close: that session
    ends now, and this one starts with it, without a note that it waits."""
    running = start(engine, step_seconds=60)
    ends_at = engine.planned_end(session_row(engine, running.id))
    assert ends_at is not None
    later = start(engine, "tuning", start_at=ends_at)
    clock.advance((ends_at - clock.now()).total_seconds())
    engine.begin(later.id)
    assert not [r for r in outbox(engine) if (r.ref or "").startswith("waiting:")]
    play_scheduler(engine, timers, clock)
    assert session_row(engine, running.id).status == "ended"
    assert session_row(engine, later.id).status == "running"


def test_a_step_posted_late_takes_replies_until_the_next_step_is_posted(
    engine: Engine, clock: HeldClock, timers: RecordingTimers
) -> None:
    """Down through the closes of steps 1 and 2: step 2's message goes out late and closes on
    its planned boundary, already past. Until step 3's message appears, it is the newest step
    people see, and they reply to it."""
    session = start(engine, step_seconds=60)
    clock.advance(130)
    assert play_scheduler(engine, timers, clock) == 2
    late = clock.now().timestamp()
    step2 = f"{late + 0.5:.6f}"
    with engine.db.session() as s:
        engine.on_posted(s, [(f"step:{session.id}:1", "1000.000100")])
        engine.on_posted(s, [(f"step:{session.id}:2", step2)])

    def reply(ts: float, text: str) -> None:
        event = {"type": "message", "channel": CHANNEL, "user": "U_T1", "text": text}
        Replies(engine).handle(TEAM, {**event, "ts": f"{ts:.6f}", "thread_ts": step2})

    reply(late + 1.0, "Written before step 3 was posted.")
    with engine.db.session() as s:
        engine.on_posted(s, [(f"step:{session.id}:3", f"{late + 1.5:.6f}")])
    reply(late + 1.2, "Written before step 3 was posted, handled after.")
    reply(late + 2.0, "Written once step 3 was there.")  # a closed step of a running session
    with engine.db.session() as s:
        kept = s.execute(select(Contribution.step_index, Contribution.text)).all()
    assert sorted(kept) == [
        (2, "Written before step 3 was posted, handled after."),
        (2, "Written before step 3 was posted."),
        (2, "Written once step 3 was there."),
    ]


def test_a_session_that_ended_while_down_ends_on_its_planned_boundary(
    engine: Engine, clock: HeldClock, timers: RecordingTimers, library: dict[str, Protocol]
) -> None:
    session = start(engine, step_seconds=60)
    clock.advance(3600)
    count = len(library["atlas"].steps)
    assert play_scheduler(engine, timers, clock) == count
    row = session_row(engine, session.id)
    assert row.status == "ended"
    assert row.ended_at == WEDNESDAY + timedelta(seconds=60 * count)
    assert step_refs(engine, session.id) == [f"step:{session.id}:{k}" for k in range(1, count + 1)]
    notes = [r for r in outbox(engine) if str(r.payload.get("text", "")).startswith("Notes from")]
    assert len([r for r in notes if r.channel_id == CHANNEL]) == 1
    assert len([r for r in notes if r.channel_id == PRESENTER]) == 1


# -- one active session per channel -------------------------------------------------------------


def test_one_active_session_per_channel(
    engine: Engine, clock: HeldClock, timers: RecordingTimers
) -> None:
    first = start(engine)
    with pytest.raises(Refusal) as refused:
        engine.start(actor(TEACHER), protocol_id="tuning", presenter=PRESENTER)
    assert refused.value.reply.template == "refusals/already_running.j2"
    assert refused.value.reply.context["facilitator"] == FACILITATOR

    # Another channel is free, and a session scheduled for later may wait its turn here.
    start(engine, "tuning", by=actor(channel="C_OTHER"))
    later = start(engine, "tuning", start_at=WEDNESDAY + timedelta(hours=1))
    assert later.status == "scheduled"
    assert timers.starts == [(later.id, WEDNESDAY + timedelta(hours=1))]

    # Its time comes while the first is still running: it waits five minutes more.
    clock.advance(3600)
    engine.begin(later.id)
    assert session_row(engine, later.id).status == "scheduled"
    assert timers.starts[-1] == (later.id, clock.now() + timedelta(minutes=5))

    engine.end(actor())
    engine.begin(later.id)
    assert session_row(engine, later.id).status == "running"
    assert session_row(engine, first.id).status == "ended"
    engine.begin(later.id)  # a duplicate start job does nothing
    assert step_refs(engine, later.id) == [f"step:{later.id}:1"]


# -- permissions -----------------------------------------------------------------------------------


def test_only_the_facilitator_or_an_admin_steers(engine: Engine, clock: HeldClock) -> None:
    session = start(engine)
    for steer in (engine.next_step, engine.end):
        with pytest.raises(Refusal) as refused:
            steer(actor(TEACHER))
        assert refused.value.reply.template == "refusals/only_facilitator.j2"
        assert refused.value.reply.context["facilitator"] == FACILITATOR
    assert session_row(engine, session.id).current_step == 1

    engine.next_step(actor(ADMIN, is_admin=lambda: True))
    assert session_row(engine, session.id).current_step == 2


def test_the_admin_check_is_only_asked_of_someone_who_is_not_the_facilitator(
    engine: Engine,
) -> None:
    start(engine)

    def no_lookup() -> bool:
        raise AssertionError("the facilitator needs no users.info lookup")

    engine.next_step(actor(is_admin=no_lookup))


def test_a_named_facilitator_steers_and_the_starter_does_not(engine: Engine) -> None:
    session = start(engine, facilitator="U_NAMED")
    with pytest.raises(Refusal):
        engine.next_step(actor(FACILITATOR))
    engine.next_step(actor("U_NAMED"))
    assert session_row(engine, session.id).current_step == 2


# -- workspaces ------------------------------------------------------------------------------------


def test_the_same_channel_id_in_two_workspaces_are_two_rooms(engine: Engine) -> None:
    one, two = actor(team="T_ONE"), actor(team="T_TWO")
    a = start(engine, by=one)
    status = engine.status(two)
    assert status.context["session"] is None
    with pytest.raises(Refusal) as refused:
        engine.next_step(two)
    assert refused.value.reply.template == "refusals/no_session.j2"
    with pytest.raises(Refusal):
        engine.notes(two)

    b = start(engine, "tuning", by=two)  # not "already running": that one is elsewhere
    engine.next_step(two)
    engine.end(two)
    assert session_row(engine, a.id).status == "running"
    assert session_row(engine, a.id).current_step == 1
    assert session_row(engine, b.id).status == "ended"
    notes = engine.notes(two)
    assert notes.context["notes"].session.id == b.id
    assert engine.status(one).context["session"].id == a.id

    # An enterprise grid org is a workspace of its own too.
    grid = actor(team="T_ONE", enterprise_id="E_GRID")
    assert engine.status(grid).context["session"] is None
    start(engine, by=grid)
    assert {r.team_id for r in outbox(engine)} == {"T_ONE", "T_TWO"}


def test_status_shows_the_running_step_and_what_is_scheduled(
    engine: Engine, clock: HeldClock
) -> None:
    session = start(engine, step_seconds=3600)
    later = start(engine, start_at=WEDNESDAY + timedelta(days=2))
    clock.advance(600)
    reply: Reply = engine.status(actor(TEACHER))
    context = reply.context
    assert context["session"].id == session.id
    assert context["step"].title == "Getting Started"
    assert context["now"] == clock.now()
    assert context["show_names"] is False  # names are for the facilitator only
    assert [s.id for s in context["scheduled"]] == [later.id]
    assert engine.status(actor()).context["show_names"] is True


class _RacingEngine(Engine):
    """Holds each start between its "is the channel free?" check and its insert."""

    def __init__(self, *args: Any, barrier: threading.Barrier, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.barrier = barrier

    def active_session(self, s: Session, actor: Actor) -> ProtocolSession | None:
        found = super().active_session(s, actor)
        with contextlib.suppress(threading.BrokenBarrierError):
            # On SQLite the second start waits for the first one's write lock instead.
            self.barrier.wait(timeout=1.5)
        return found


def test_two_starts_at_once_in_one_channel_make_one_session(
    database_url: str, library: dict[str, Protocol], clock: HeldClock
) -> None:
    db = Database(database_url)
    upgrade(db)
    engine = _RacingEngine(
        db, library, clock, timers=RecordingTimers(), barrier=threading.Barrier(2)
    )
    outcomes: list[str] = []

    def start_one(user: str) -> None:
        try:
            engine.start(actor(user), protocol_id="atlas", presenter=PRESENTER)
            outcomes.append("started")
        except Refusal as refusal:
            outcomes.append(refusal.reply.template)

    try:
        threads = [threading.Thread(target=start_one, args=(u,)) for u in (FACILITATOR, TEACHER)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        with db.session() as s:
            active = s.scalars(
                select(ProtocolSession).where(ProtocolSession.status.in_(("running", "paused")))
            ).all()
        assert sorted(outcomes) == ["refusals/already_running.j2", "started"]
        assert len(active) == 1
    finally:
        db.dispose()


def test_next_a_moment_after_a_step_opened_on_time_waits_to_be_sent_again(
    engine: Engine, clock: HeldClock
) -> None:
    session = start(engine, step_seconds=600)
    clock.advance(600)
    engine.close_step(session.id, 1)  # on time, by its timer
    clock.advance(1)
    assert engine.next_step(actor()).template == "replies/moved_on_its_own.j2"
    assert engine.next_step(actor(ADMIN, is_admin=lambda: True)).template == (
        "replies/moved_on_its_own.j2"
    )
    assert session_row(engine, session.id).current_step == 2
    clock.advance(3)  # sent again, a few seconds on: it moves
    assert engine.next_step(actor()).template == "replies/moved_on.j2"
    assert session_row(engine, session.id).current_step == 3
    # A step opened by next, not on time, moves on at once when asked again.
    assert engine.next_step(actor()).template == "replies/moved_on.j2"
    assert session_row(engine, session.id).current_step == 4
