"""An operator edits a protocol's file while a session of it runs, and restarts the bot: a
session whose protocol was cut short of the step it reached is held, read and ended as one whose
protocol is gone, and what the team wrote is kept."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from bot.blocks import render_message
from bot.engine import controls
from bot.engine.core import Engine
from bot.engine.errors import Refusal
from bot.export import export
from bot.protocols import BUILTIN_DIR, Protocol, load_library
from bot.slack_standin import SlackStandin
from tests.harness import FACILITATOR, PRESENTER, TEACHERS, Bot
from tests.process import bot_environment, run_cli
from tests.test_engine import HeldClock, RecordingTimers, actor, outbox, session_row, start
from tests.test_home import _open_home

OURS = "our-everyday"


def _ours(tmp_path: Path) -> Path:
    """A folder holding our own protocol: a copy of the three-step dese-everyday as OURS."""
    custom = tmp_path / "protocols"
    custom.mkdir()
    source = (BUILTIN_DIR / "dese-everyday.yaml").read_text()
    (custom / f"{OURS}.yaml").write_text(source.replace("id: dese-everyday", f"id: {OURS}", 1))
    return custom


def _cut(custom: Path, steps: int) -> None:
    """The operator keeps only the first `steps` steps of OURS."""
    path = custom / f"{OURS}.yaml"
    head, *rest = path.read_text().split("\n  - id: ")
    path.write_text("\n  - id: ".join([head, *rest[:steps]]))


def shortened(library: dict[str, Protocol], protocol_id: str, steps: int) -> dict[str, Protocol]:
    protocol = library[protocol_id]
    return {**library, protocol_id: dataclasses.replace(protocol, steps=protocol.steps[:steps])}


def _moved_to(bot: Bot, step: int) -> str:
    """OURS started on hour-long steps, moved on to `step` by `next`, its posts out: that
    step's ts."""
    bot.command(f"start {OURS} <@{PRESENTER}> step 1h")
    for index in range(1, step + 1):
        bot.wait_until(lambda n=index: len(bot.step_posts()) == n)
        if index < step:
            bot.command("next")
    bot.runtime.sender.drain(5)
    return str(bot.step_posts()[step - 1]["ts"])


def test_a_session_past_the_end_of_its_shortened_protocol_is_read_held_and_ended(
    workspace: SlackStandin, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    custom = _ours(tmp_path)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        third = _moved_to(bot, 3)
        bot.reply(TEACHERS[0], "We will reteach fractions on a number line.", third)
        bot.settle()
    finally:
        bot.stop()
    _cut(custom, 2)
    caplog.set_level(logging.WARNING)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        bot.reply(TEACHERS[1], "Small groups for the students who skipped units.", third)
        bot.settle()
        assert len(bot.recorded()) == 2
        status = str(bot.command("status"))
        assert "changed" in status and "shift" in status
        notes = str(bot.command("notes")["blocks"])
        assert "Small groups for the students who skipped units." in notes
        assert "changed" in bot.command("next")["text"]
        ended = bot.command("end")
        assert "changed" in str(ended)
        bot.settle()
        posted = [m for m in bot.posts() if m.get("thread_ts")]
        assert any("We will reteach fractions on a number line." in str(m) for m in posted)
    finally:
        bot.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    data = json.loads(export(bot.settings, "latest", "json"))
    assert [c["step"] for c in data["contributions"]] == ["shift", "shift"]


def test_a_step_due_to_close_past_the_end_of_its_shortened_protocol_holds_the_session(
    engine: Engine, library: dict[str, Protocol], clock: HeldClock
) -> None:
    session = start(engine, step_seconds=3600)
    for _ in range(2):
        clock.advance(3600)
        engine.close_step(session.id, session_row(engine, session.id).current_step)
    assert session_row(engine, session.id).current_step == 3
    timers = RecordingTimers()
    cut = Engine(engine.db, shortened(library, "atlas", 2), engine.clock, timers=timers)
    clock.advance(3600)
    cut.close_step(session.id, 3)
    cut.close_step(session.id, 3)
    held = session_row(cut, session.id)
    assert (held.status, held.current_step) == ("paused", 3)
    assert session.id in timers.cleared
    told = [r for r in outbox(cut) if r.channel_id == FACILITATOR]
    assert len(told) == 1
    said = str(told[0].payload)
    assert "has 2 steps now" in said and "no longer installed" not in said
    status = cut.status(actor())
    shown = json.dumps(render_message(status.template, **status.context).blocks)
    assert "can't move on" in shown and "resume" not in shown
    with pytest.raises(Refusal) as refused:
        controls.resume(cut, actor())
    assert refused.value.reply.template == "refusals/protocol_gone.j2"
    # The operator puts the steps back: the session carries on from where it was held.
    back = Engine(engine.db, library, engine.clock, timers=RecordingTimers())
    controls.resume(back, actor())
    back.close_step(session.id, 3)
    assert session_row(back, session.id).current_step == 4


def test_an_export_names_each_reply_s_step_as_the_session_ran_it_after_a_step_id_changed(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    custom = _ours(tmp_path)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        bot.command(f"start {OURS} <@{PRESENTER}> step 1h")
        bot.wait_until(lambda: bool(bot.step_posts()))
        bot.runtime.sender.drain(5)
        bot.reply(TEACHERS[0], "Most students listed the criteria.", str(bot.step_posts()[0]["ts"]))
        bot.settle()
        bot.command("end")
        bot.settle()
    finally:
        bot.stop()
    # The operator renames the first step's id afterwards: the export still joins up.
    path = custom / f"{OURS}.yaml"
    path.write_text(path.read_text().replace("- id: expectations", "- id: goals", 1))
    data = json.loads(export(bot.settings, "latest", "json"))
    assert [step["id"] for step in data["steps"]] == ["expectations"]
    assert [c["step"] for c in data["contributions"]] == ["expectations"]


def test_protocols_check_names_the_sessions_an_edit_would_hold(
    engine: Engine, clock: HeldClock, database_url: str, tmp_path: Path
) -> None:
    custom = _ours(tmp_path)
    library, errors = load_library([BUILTIN_DIR, custom])
    assert not errors
    ours = Engine(engine.db, library, clock, timers=RecordingTimers())
    session = start(ours, OURS, step_seconds=3600)
    for step in (1, 2):
        clock.advance(3600)
        ours.close_step(session.id, step)
    # The operator cuts the file to two steps and checks it before restarting the bot.
    _cut(custom, 2)
    env = bot_environment(SLACK_BOT_TOKEN="xoxb-test", DATABASE_URL=database_url)
    done = run_cli(["protocols", "check", str(custom)], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"session #{session.id} " in done.stderr
    assert f"step 3 of '{OURS}', which has 2 steps here" in done.stderr
    # Without a database there is no session to name, and the check says only what it read.
    alone = run_cli(["protocols", "check", str(custom)], bot_environment(), tmp_path)
    assert alone.returncode == 0 and "session" not in alone.stderr, alone.stderr


def _replaced_by_tuning(custom: Path) -> None:
    """The operator gives OURS's id to another protocol: the Tuning Protocol's six steps."""
    source = (BUILTIN_DIR / "tuning.yaml").read_text()
    (custom / f"{OURS}.yaml").write_text(source.replace("id: tuning", f"id: {OURS}", 1))


def test_a_session_whose_protocol_id_now_names_other_steps_is_held_not_run_on_them(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # It carried on, step by number, with the other protocol's steps: step 2's message, which
    # the team had replied under, was rewritten as the Tuning Protocol's, and its step 3 opened.
    custom = _ours(tmp_path)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        second = _moved_to(bot, 2)
        bot.reply(TEACHERS[0], "Most students met the goal with a model.", second)
        bot.settle()
    finally:
        bot.stop()
    _replaced_by_tuning(custom)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        bot.reply(TEACHERS[1], "Three wrote only the answer.", second)
        bot.settle()
        assert len(bot.recorded()) == 2
        status = str(bot.command("status"))
        assert "no longer the ones this session ran" in status and "extent" in status
        assert "no longer the ones this session ran" in bot.command("next")["text"]
        ended = str(bot.command("end"))
        assert "no longer the ones the session ran" in ended
        bot.settle()
        assert len(bot.step_posts()) == 2
        said = str(bot.posts())
        assert "Tuning" not in said and "Clarifying" not in said
        assert "Three wrote only the answer." in said
    finally:
        bot.stop()
    data = json.loads(export(bot.settings, "latest", "json"))
    assert [step["id"] for step in data["steps"]] == ["expectations", "extent"]


def test_protocols_check_names_a_session_whose_protocol_id_an_edit_gives_to_other_steps(
    engine: Engine, clock: HeldClock, database_url: str, tmp_path: Path
) -> None:
    custom = _ours(tmp_path)
    library, errors = load_library([BUILTIN_DIR, custom])
    assert not errors
    ours = Engine(engine.db, library, clock, timers=RecordingTimers())
    session = start(ours, OURS, step_seconds=3600)
    _replaced_by_tuning(custom)
    env = bot_environment(SLACK_BOT_TOKEN="xoxb-test", DATABASE_URL=database_url)
    done = run_cli(["protocols", "check", str(custom)], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"session #{session.id} " in done.stderr
    assert f"ran steps of '{OURS}' that it no longer has here" in done.stderr


def test_a_step_due_to_close_after_its_protocol_id_was_given_to_other_steps_holds_the_session(
    engine: Engine, library: dict[str, Protocol], clock: HeldClock
) -> None:
    session = start(engine, step_seconds=3600)
    clock.advance(3600)
    engine.close_step(session.id, 1)
    # Reworded (same step ids): the session runs on as the steps now read.
    atlas = library["atlas"]
    reworded = [dataclasses.replace(step, title=f"{step.title} (new)") for step in atlas.steps]
    worded = Engine(
        engine.db,
        {**library, "atlas": dataclasses.replace(atlas, steps=tuple(reworded))},
        engine.clock,
        timers=RecordingTimers(),
    )
    clock.advance(3600)
    worded.close_step(session.id, 2)
    assert session_row(worded, session.id).current_step == 3
    # The id now names the Tuning Protocol's steps: held at the close, the facilitator told once.
    timers = RecordingTimers()
    other = {**library, "atlas": dataclasses.replace(library["tuning"], id="atlas")}
    swapped = Engine(engine.db, other, engine.clock, timers=timers)
    clock.advance(3600)
    swapped.close_step(session.id, 3)
    swapped.close_step(session.id, 3)
    held = session_row(swapped, session.id)
    assert (held.status, held.current_step) == ("paused", 3)
    assert session.id in timers.cleared
    told = [r for r in outbox(swapped) if r.channel_id == FACILITATOR]
    assert len(told) == 1
    assert "no longer the ones the session ran" in str(told[0].payload)
    with pytest.raises(Refusal) as refused:
        controls.resume(swapped, actor())
    reply = refused.value.reply
    assert "no longer the ones" in render_message(reply.template, **reply.context).text
    # The operator puts the protocol back: the session carries on from where it was held.
    back = Engine(engine.db, library, engine.clock, timers=RecordingTimers())
    controls.resume(back, actor())
    back.close_step(session.id, 3)
    assert session_row(back, session.id).current_step == 4


def test_a_session_whose_protocol_was_cut_to_the_step_it_is_on_says_why_it_ended_there(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # It ended at that step's close as if the protocol had always ended there: the header had
    # planned a third step, and nobody was told why it never came.
    custom = _ours(tmp_path)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        second = _moved_to(bot, 2)
        bot.reply(TEACHERS[0], "Most students met the goal with a model.", second)
        bot.settle()
    finally:
        bot.stop()
    _cut(custom, 2)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        bot.reply(TEACHERS[1], "Three wrote only the answer.", second)
        bot.settle()
        status = str(bot.command("status"))  # it runs on: step 2 is there
        assert "can't move on" not in status
        assert "has 2 steps now, not the 3 the header planned" in status
        moved = bot.command("next")
        assert "That was the last step" in moved["text"] and "not the 3" in moved["text"]
        bot.settle()
        dm = f"D{FACILITATOR[1:]}"
        told = [m for m in bot.standin.messages(dm) if "ended after step 2" in str(m)]
        assert len(told) == 1
        assert "not step 3 as its header planned" in str(told[0])
        assert "has 2 steps now" in str(told[0])
        header = str(bot.posts()[0]["ts"])
        thread = [m for m in bot.posts() if m.get("thread_ts") == header]
        said = [i for i, m in enumerate(thread) if "not step 3 as planned" in str(m)]
        notes = [i for i, m in enumerate(thread) if "Three wrote only the answer." in str(m)]
        assert len(said) == 1 and notes and said[0] < notes[0]
        assert len(bot.step_posts()) == 2
    finally:
        bot.stop()


def test_extend_and_pause_on_a_session_its_protocol_can_t_run_on_say_so_and_keep_the_replies(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # They answered "Extended. Step 3 now closes ..." (it was held then) and "Paused ...
    # `/protocol resume` starts the clock again" (resume was refused), with a line in the thread.
    custom = _ours(tmp_path)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        third = _moved_to(bot, 3)
        bot.reply(TEACHERS[0], "We will reteach fractions on a number line.", third)
        bot.settle()
    finally:
        bot.stop()
    _cut(custom, 2)
    for said, edit in (("has 2 steps now", None), ("no longer installed", "remove")):
        if edit == "remove":
            (custom / f"{OURS}.yaml").unlink()
        bot = Bot(workspace, database_url, protocols_dir=custom).start()
        try:
            before = len(bot.posts())
            for command in ("extend 10m", "pause", "next"):
                assert said in bot.command(command)["text"], command
            bot.reply(TEACHERS[len(bot.recorded())], "Small groups next week.", third)
            bot.settle()
            assert len(bot.posts()) == before  # no line in the thread about more time or a pause
        finally:
            bot.stop()
    assert len(bot.recorded()) == 3


def test_home_shows_a_session_whose_protocol_id_now_names_other_steps_on_hold_at_its_own_step(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # Home named the step by number from the installed file, the Tuning Protocol's second step,
    # and called the session paused, though `resume` could only refuse.
    custom = _ours(tmp_path)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        _moved_to(bot, 2)
        bot.command("pause")
        bot.settle()
        running = _open_home(bot, FACILITATOR)
        assert "Extent students met the goals" in running and "step 2 of 3" in running
        assert "(paused)" in running
    finally:
        bot.stop()
    _replaced_by_tuning(custom)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        home = _open_home(bot, FACILITATOR)
        assert "step 2, *extent*" in home
        assert "Clarifying" not in home and "Tuning" not in home
        assert "on hold" in home and "(paused)" not in home
    finally:
        bot.stop()
