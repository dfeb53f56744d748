"""Steps closed in rounds: many sessions' closes in one transaction, each as if on its own.

The clock gathers the closes due together (bot/scheduling.py `Closer`) and the engine runs them in
one transaction (`Engine.close_steps`). These tests hold the clock still and check that a round
does for each session exactly what `close_step` alone would, and that one session's trouble
does not hold up the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.engine.core import Engine
from bot.scheduling import Closer
from tests.test_engine import (
    WEDNESDAY,
    HeldClock,
    RecordingTimers,
    actor,
    outbox,
    runs,
    session_row,
    start,
    step_refs,
)


def start_in(engine: Engine, channels: int, step: int = 60) -> list[int]:
    return [
        start(engine, by=actor(channel=f"C_ROOM{i}"), step_seconds=step).id for i in range(channels)
    ]


def test_a_round_closes_each_session_once_as_close_step_would(
    engine: Engine, clock: HeldClock, timers: RecordingTimers
) -> None:
    ids = start_in(engine, 4)
    clock.advance(60)
    engine.close_steps([(sid, 1) for sid in ids])
    for sid in ids:
        assert session_row(engine, sid).current_step == 2
        first, second = runs(engine, sid)
        assert first.ended_at == WEDNESDAY + timedelta(seconds=60)
        assert second.started_at == first.ended_at and second.ended_at is None
        assert step_refs(engine, sid) == [f"step:{sid}:1", f"step:{sid}:2"]
        assert (sid, 2, WEDNESDAY + timedelta(seconds=120)) in timers.deadlines
    # The same round again (a duplicate, or a late replay) does nothing.
    posts = len(outbox(engine))
    engine.close_steps([(sid, 1) for sid in ids])
    assert len(outbox(engine)) == posts
    assert all(session_row(engine, sid).current_step == 2 for sid in ids)


def test_a_round_leaves_early_stale_and_unknown_closes_alone(
    engine: Engine, clock: HeldClock, timers: RecordingTimers
) -> None:
    due, early = start_in(engine, 2)
    clock.advance(60)
    with engine.db.session() as s:
        row = s.get(type(session_row(engine, early)), early)
        assert row is not None and row.step_closes_at is not None
        row.step_closes_at += timedelta(minutes=5)  # moved later behind the timer's back
    engine.close_steps([(due, 1), (early, 1), (due, 3), (due + early + 1000, 1)])
    assert session_row(engine, due).current_step == 2
    assert session_row(engine, early).current_step == 1
    assert (early, 1, WEDNESDAY + timedelta(seconds=360)) in timers.deadlines, "re-armed"
    assert step_refs(engine, early) == [f"step:{early}:1"]


def test_a_session_named_twice_in_a_round_catches_up_step_by_step(
    engine: Engine, clock: HeldClock
) -> None:
    (sid,) = start_in(engine, 1)
    clock.advance(130)  # down for two boundaries: steps 1 and 2 are both due
    engine.close_steps([(sid, 1), (sid, 2)])
    assert session_row(engine, sid).current_step == 3
    ended = [run.ended_at for run in runs(engine, sid)]
    assert ended == [WEDNESDAY + timedelta(seconds=60), WEDNESDAY + timedelta(seconds=120), None]


def test_one_broken_session_does_not_hold_up_the_rest_of_its_round(
    engine: Engine, clock: HeldClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, *ids = start_in(engine, 4)
    broken = ids[1]
    with engine.db.session() as s:
        row = s.get(type(session_row(engine, broken)), broken)
        assert row is not None
        row.protocol_id = "no-longer-installed"
    clock.advance(60)
    closer = Closer(engine)
    # The first round holds until the other three closes wait behind it: they make one round.
    release, rounds = threading.Event(), []
    real = engine.close_steps

    def close_steps(due: list[tuple[int, int]]) -> None:
        rounds.append(sorted(sid for sid, _ in due))
        if len(rounds) == 1:
            assert release.wait(10)
        real(due)

    monkeypatch.setattr(engine, "close_steps", close_steps)
    errors: dict[int, BaseException] = {}

    def job(sid: int) -> None:
        try:
            closer.close(sid, 1)
        except Exception as exc:
            errors[sid] = exc

    threads = [threading.Thread(target=job, args=(sid,)) for sid in (first, *ids)]
    threads[0].start()
    wait_for(lambda: rounds)
    for thread in threads[1:]:
        thread.start()
    wait_for(lambda: len(closer._waiting) == 3)
    release.set()
    for thread in threads:
        thread.join(30)
    assert rounds[:2] == [[first], sorted(ids)], "the three waiting closes made one round"
    assert set(errors) == {broken}, errors
    assert isinstance(errors[broken], KeyError)
    assert [session_row(engine, sid).current_step for sid in (first, *ids)] == [2, 2, 1, 2]


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
