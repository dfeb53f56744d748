"""Steps closed in rounds: many sessions' closes in one transaction, each as if on its own.

The clock gathers the closes due together (bot/scheduling.py `Closer`) and the engine runs them in
one transaction (`Engine.close_steps`). These tests hold the clock still and check that a round
does for each session exactly what `close_step` alone would, and that one session's trouble
does not hold up the others.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta

import pytest
from jinja2 import TemplateNotFound
from sqlalchemy import event

from bot.engine.core import Engine
from bot.scheduling import Closer
from bot.store.models import Contribution
from tests.harness import wait_until
from tests.test_engine import (
    TEAM,
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
    # A protocol whose second step names a template that is not there: opening it fails.
    atlas = engine.library["atlas"]
    steps = (atlas.steps[0], replace(atlas.steps[1], template="no-such.j2"), *atlas.steps[2:])
    monkeypatch.setitem(engine.library, "broken", replace(atlas, id="broken", steps=steps))
    with engine.db.session() as s:
        row = s.get(type(session_row(engine, broken)), broken)
        assert row is not None
        row.protocol_id = "broken"
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
    wait_until(lambda: rounds, 10.0, poll=0.01)
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: len(closer._waiting) == 3, 10.0, poll=0.01)
    release.set()
    for thread in threads:
        thread.join(30)
    assert rounds[:2] == [[first], sorted(ids)], "the three waiting closes made one round"
    assert set(errors) == {broken}, errors
    assert isinstance(errors[broken], TemplateNotFound)
    assert [session_row(engine, sid).current_step for sid in (first, *ids)] == [2, 2, 1, 2]


@contextmanager
def reads_of(engine: Engine, read: str) -> Iterator[list[str]]:
    """The statements run while inside that have `read` in them."""
    reads: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if read in " ".join(statement.split()):
            reads.append(statement)

    event.listen(engine.db.engine, "before_cursor_execute", count)
    try:
        yield reads
    finally:
        event.remove(engine.db.engine, "before_cursor_execute", count)


def test_a_round_reads_the_replies_its_steps_give_back_once_for_all(
    engine: Engine, clock: HeldClock
) -> None:
    ids = start_in(engine, 3)
    clock.advance(60)
    engine.close_steps([(sid, 1) for sid in ids])  # all describing now (step 2)
    with engine.db.session() as s:
        for n, sid in enumerate(ids):
            for tag, text in (("interpretation", f"room {n} reads it as rushed"), ("note", "x")):
                s.add(
                    Contribution(
                        session_id=sid,
                        step_index=2,
                        team_id=TEAM,
                        channel_id=f"C_ROOM{n}",
                        user_id="U_T1",
                        ts=f"1700000000.00000{n}{len(tag)}",
                        thread_ts="1700000000.000001",
                        text=text,
                        tag=tag,
                        created_at=clock.now(),
                        updated_at=clock.now(),
                    )
                )
    clock.advance(60)
    with reads_of(engine, "FROM contributions") as reads:
        engine.close_steps([(sid, 2) for sid in ids])  # to interpreting, which lists them
    assert len(reads) == 1, "one read for the round, not one a session"
    for n, sid in enumerate(ids):
        (post,) = [r for r in outbox(engine) if r.ref == f"step:{sid}:3"]
        shown = json.dumps(post.payload["blocks"])
        assert f"room {n} reads it as rushed" in shown
        others = [f"room {k} reads" for k in range(3) if k != n]
        assert not any(other in shown for other in others), "each room sees its own"


def test_a_round_asks_once_which_of_its_steps_were_posted_again_in_their_thread(
    engine: Engine, clock: HeldClock
) -> None:
    # Each close edits its step's message, which is a copy in the step's thread once its post
    # was deleted with replies under it (Engine.step_shown): a round asks for all its steps.
    ids = start_in(engine, 4)
    clock.advance(60)
    with reads_of(engine, "SELECT outbox.ref FROM outbox") as reads:
        engine.close_steps([(sid, 1) for sid in ids])
    assert len(reads) == 1, "one read for the round, not one a session"
    assert [session_row(engine, sid).current_step for sid in ids] == [2, 2, 2, 2]


def test_a_rounds_closes_read_nothing_more_for_the_messages_deleted_in_slack(
    engine: Engine, clock: HeldClock
) -> None:
    # A message deleted in Slack is not edited: the outbox's claim, which reads the row of the
    # message each edit is of anyway, skips it (bot.slack.deleted_in_slack). Asked in
    # Engine.edit, a round's closes, each editing its step's message and its header, read so
    # of each, one by one.
    ids = start_in(engine, 4)
    clock.advance(60)
    with reads_of(engine, "SELECT outbox.status, outbox.error FROM outbox") as reads:
        engine.close_steps([(sid, 1) for sid in ids])
    assert reads == []
    assert [session_row(engine, sid).current_step for sid in ids] == [2, 2, 2, 2]


def due_and_recorded(
    engine: Engine, clock: HeldClock, monkeypatch: pytest.MonkeyPatch, channels: int
) -> tuple[list[int], list[list[int]]]:
    """Sessions whose first step is due, and the rounds `close_steps` is then called with."""
    ids = start_in(engine, channels)
    clock.advance(60)
    rounds: list[list[int]] = []
    real = engine.close_steps

    def close_steps(due: list[tuple[int, int]]) -> None:
        rounds.append(sorted(sid for sid, _ in due))
        real(due)

    monkeypatch.setattr(engine, "close_steps", close_steps)
    return ids, rounds


def close_apart(closer: Closer, ids: list[int], gap: float) -> None:
    """Each session's close from a job thread of its own, `gap` seconds after the one before."""
    threads = []
    for sid in ids:
        threads.append(threading.Thread(target=closer.close, args=(sid, 1)))
        threads[-1].start()
        time.sleep(gap)
    for thread in threads:
        thread.join(30)


def test_closes_due_a_moment_apart_share_one_round(
    engine: Engine, clock: HeldClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids, rounds = due_and_recorded(engine, clock, monkeypatch, 4)
    # Spread over 0.15 s, inside the 2-s gather: without it the first would close alone.
    close_apart(Closer(engine, gather=2.0), ids, gap=0.05)
    assert rounds == [sorted(ids)]
    assert [session_row(engine, sid).current_step for sid in ids] == [2, 2, 2, 2]


def test_a_full_round_does_not_wait_out_the_gather(
    engine: Engine, clock: HeldClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids, rounds = due_and_recorded(engine, clock, monkeypatch, 5)
    began = time.monotonic()
    close_apart(Closer(engine, gather=60.0, most=3), ids[:3], gap=0.0)
    assert time.monotonic() - began < 30, "three closes fill the round: it goes at once"
    assert rounds == [sorted(ids[:3])]
    # A close alone waits the gather out, and no longer.
    close_apart(Closer(engine, gather=0.3, most=3), ids[3:4], gap=0.0)
    assert rounds[1:] == [[ids[3]]]


def test_a_round_reads_the_presenters_listening_notes_with_the_other_replies(
    engine: Engine, clock: HeldClock
) -> None:
    """The presenter's turn (ATLAS step 5) gives each presenter the notes they kept while they
    listened: read with the replies the round reads anyway, not one more query a session."""
    ids = start_in(engine, 3)
    for step in (1, 2, 3):
        clock.advance(60)
        engine.close_steps([(sid, step) for sid in ids])  # to implications (step 4)
    with engine.db.session() as s:
        for n, sid in enumerate(ids):
            for index, audience in ((2, "presenter"), (3, "group"), (4, "presenter")):
                s.add(
                    Contribution(
                        session_id=sid,
                        step_index=index,
                        team_id=TEAM,
                        channel_id=f"C_ROOM{n}",
                        user_id="U_PRE" if audience == "presenter" else "U_T1",
                        ts=f"1700000000.0000{n}{index}",
                        thread_ts="1700000000.000001",
                        text=f"room {n} step {index} {audience}",
                        tag="note" if audience == "presenter" else "interpretation",
                        audience=audience,
                        created_at=clock.now(),
                        updated_at=clock.now(),
                    )
                )
    clock.advance(60)
    with reads_of(engine, "FROM contributions") as reads:
        engine.close_steps([(sid, 4) for sid in ids])  # to reflect, the presenter's turn
    assert len(reads) == 1, "one read for the round, not one a session"
    for n, sid in enumerate(ids):
        (dm,) = [r for r in outbox(engine) if r.ref == f"presenter:{sid}:5"]
        shown = json.dumps(dm.payload)
        assert f"room {n} step 2 presenter" in shown and f"room {n} step 4 presenter" in shown
        assert shown.index(f"room {n} step 2") < shown.index(f"room {n} step 4")
        assert f"room {n} step 3 group" not in shown, "the group's replies are not notes"
        others = [f"room {k} step" for k in range(3) if k != n]
        assert not any(other in shown for other in others), "each presenter sees their own"
