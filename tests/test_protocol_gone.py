"""A session whose protocol dropped out of the library (its file removed, or failing validation
since a restart) can still be read, held and ended, and the channel freed for the next one."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from bot.blocks import render_message
from bot.engine import controls, home
from bot.engine.core import Engine
from bot.engine.errors import Refusal
from bot.export import export
from bot.protocols import BUILTIN_DIR, Protocol
from bot.slack_standin import SlackStandin
from tests.harness import CHANNEL, FACILITATOR, PRESENTER, TEACHERS, Bot
from tests.process import CLI, bot_environment
from tests.test_engine import HeldClock, RecordingTimers, actor, outbox, session_row, start
from tests.test_step_messages import (
    _in_thread,
    _refused,
    _step_post_deleted,
    _step_post_tombstoned,
    _written,
)

OURS = "our-everyday"


def without(library: dict[str, Protocol], protocol_id: str) -> dict[str, Protocol]:
    return {k: v for k, v in library.items() if k != protocol_id}


def restarted(engine: Engine, library: dict[str, Protocol], timers: RecordingTimers) -> Engine:
    """The same database after a restart that loaded `library`."""
    return Engine(engine.db, library, engine.clock, timers=timers)


def _ours(tmp_path: Path) -> Path:
    """A folder holding our own protocol, a copy of a built-in one under the id OURS."""
    custom = tmp_path / "protocols"
    custom.mkdir()
    source = (BUILTIN_DIR / "dese-everyday.yaml").read_text()
    (custom / f"{OURS}.yaml").write_text(source.replace("id: dese-everyday", f"id: {OURS}", 1))
    return custom


def _started_with_a_reply(bot: Bot) -> str:
    """Start a session of OURS and reply in its first step; the step's ts."""
    bot.command(f"start {OURS} <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: bool(bot.step_posts()))
    bot.runtime.sender.drain(5)
    step = str(bot.step_posts()[0]["ts"])
    bot.reply(TEACHERS[0], "Most students listed the criteria.", step)
    bot.settle()
    return step


def test_the_channel_can_be_read_and_ended_after_a_restart_without_its_protocol(
    workspace: SlackStandin, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    custom = _ours(tmp_path)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        step = _started_with_a_reply(bot)
    finally:
        bot.stop()
    (custom / f"{OURS}.yaml").unlink()
    caplog.set_level(logging.WARNING)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        bot.reply(TEACHERS[1], "Two used the rubric's own words.", step)
        bot.settle()
        assert len(bot.recorded()) == 2
        status = str(bot.command("status"))
        assert "no longer installed" in status and "expectations" in status
        notes = bot.command("notes")
        assert "no longer installed" in str(notes["blocks"])
        assert "Most students listed the criteria." in str(notes["blocks"])
        assert "no longer installed" in bot.command("next")["text"]
        assert "Only the facilitator" in bot.command("end", user=TEACHERS[1])["text"]
        ended = bot.command("end")
        assert "no longer installed" in str(ended)
        bot.settle()
        posted = [m for m in bot.posts() if m.get("thread_ts")]
        assert any("Most students listed the criteria." in str(m) for m in posted)
        started = bot.command(f"start tuning <@{PRESENTER}> step 1h")
        assert "already running" not in str(started)
        bot.wait_until(lambda: any("Tuning" in str(m) for m in bot.posts()))
    finally:
        bot.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_step_due_to_close_without_its_protocol_holds_the_session_and_says_so_once(
    engine: Engine, library: dict[str, Protocol], clock: HeldClock
) -> None:
    session = start(engine, step_seconds=3600)
    timers = RecordingTimers()
    gone = restarted(engine, without(library, "atlas"), timers)
    clock.advance(3600)
    gone.close_step(session.id, 1)
    gone.close_step(session.id, 1)  # a duplicate, or the clock's next reconcile
    held = session_row(gone, session.id)
    assert (held.status, held.current_step) == ("paused", 1)
    assert session.id in timers.cleared
    assert gone.due_work().closes == []
    told = [r for r in outbox(gone) if r.channel_id == FACILITATOR]
    assert len(told) == 1 and "no longer installed" in str(told[0].payload)
    # Status says it can't move on, and does not offer a resume that would be refused.
    status = gone.status(actor())
    said = json.dumps(render_message(status.template, **status.context).blocks)
    assert "can't move on" in said and "resume" not in said
    with pytest.raises(Refusal) as refused:
        controls.resume(gone, actor())
    assert refused.value.reply.template == "refusals/protocol_gone.j2"
    # The operator puts the protocol back: the session carries on from where it was held.
    back = restarted(engine, library, RecordingTimers())
    controls.resume(back, actor())
    back.close_step(session.id, 1)
    assert session_row(back, session.id).current_step == 2


def test_a_scheduled_session_without_its_protocol_is_called_off_at_its_start(
    engine: Engine, library: dict[str, Protocol], clock: HeldClock
) -> None:
    session = start(engine, start_at=clock.now() + timedelta(hours=1))
    gone = restarted(engine, without(library, "atlas"), RecordingTimers())
    clock.advance(3600)
    gone.begin(session.id)
    gone.begin(session.id)
    assert session_row(gone, session.id).status == "cancelled"
    told = [r for r in outbox(gone) if r.channel_id == FACILITATOR]
    assert len(told) == 1 and "did not start" in str(told[0].payload)
    assert not [r for r in outbox(gone) if r.channel_id == CHANNEL]
    presenter = [r for r in outbox(gone) if r.channel_id == PRESENTER]
    assert "is no longer installed" in str(presenter[-1].payload)


def test_the_notes_of_a_session_whose_protocol_is_gone_still_reach_the_home_tab(
    engine: Engine, library: dict[str, Protocol], clock: HeldClock
) -> None:
    session = start(engine, step_seconds=60)
    engine.end(actor())
    gone = restarted(engine, without(library, "atlas"), RecordingTimers())
    before = len(outbox(gone))
    home.send_notes(gone, actor(TEACHERS[0]), session.id)
    sent = outbox(gone)[before:]
    assert sent and all(r.channel_id == TEACHERS[0] for r in sent)
    assert "Notes" in str(sent[0].payload)


def test_a_session_whose_protocol_is_gone_can_still_be_exported(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    custom = _ours(tmp_path)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        _started_with_a_reply(bot)
        bot.command("end")
        bot.settle()
    finally:
        bot.stop()
    # The operator retires the protocol: what the team wrote under it is still theirs to export.
    (custom / f"{OURS}.yaml").unlink()
    for fmt in ("md", "csv", "json"):
        exported = export(bot.settings, "latest", fmt)
        assert "Most students listed the criteria." in exported, fmt
    data = json.loads(export(bot.settings, "latest", "json"))
    assert data["session"]["protocol"] == OURS
    assert [c["step"] for c in data["contributions"]] == ["expectations"]


def test_a_clock_without_the_web_process_s_protocols_says_every_process_needs_them(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # A web process with PROTOCOLS_DIR started the session, a clock without it held it: its log
    # said only that the protocol "is not installed", which it was, in the web process.
    custom = _ours(tmp_path)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        bot.command(f"start {OURS} <@{PRESENTER}> step 2s")
        bot.wait_until(lambda: bool(bot.step_posts()))
    finally:
        bot.stop()
    env = bot_environment(
        SLACK_BOT_TOKEN="xoxb-test", DATABASE_URL=database_url, SLACK_API_URL=workspace.url
    )
    log = tmp_path / "clock.log"
    with log.open("wb") as out:
        clock = subprocess.Popen(
            [sys.executable, "-c", CLI, "clock"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while " held: " not in log.read_text() and time.monotonic() < deadline:
            assert clock.poll() is None, log.read_text()
            time.sleep(0.1)
    finally:
        clock.terminate()
        clock.wait(20)
    said = log.read_text()
    assert (
        f"held: protocol '{OURS}' is not installed in this process: every serve and clock "
        "process needs the same PROTOCOLS_DIR (each logs the protocols it loaded at start-up)"
    ) in said, said


def test_the_team_hears_in_the_step_s_thread_that_the_session_is_on_hold(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # Only the facilitator was told: the team saw the step's close time pass and no next step.
    custom = _ours(tmp_path)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        bot.command(f"start {OURS} <@{PRESENTER}> step 4s")
        bot.wait_until(lambda: bool(bot.step_posts()))
        bot.runtime.sender.drain(5)
        step = str(bot.step_posts()[0]["ts"])
    finally:
        bot.stop()
    (custom / f"{OURS}.yaml").unlink()
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:

        def on_hold() -> list[dict[str, object]]:
            return [m for m in bot.posts() if m.get("thread_ts") == step and "on hold" in str(m)]

        bot.wait_until(on_hold)
        bot.reply(TEACHERS[0], "Most students listed the criteria.", step)
        bot.settle()
        assert len(on_hold()) == 1 and len(bot.step_posts()) == 1
        assert len(bot.recorded()) == 1
        assert "facilitator has been told" in str(on_hold()[0])
    finally:
        bot.stop()


def _step_message(bot: Bot) -> dict[str, object]:
    (step,) = bot.step_posts()
    return step


def _header(bot: Bot) -> str:
    header = [m for m in bot.posts() if not m.get("thread_ts") and m not in bot.step_posts()]
    return str(header[0]["blocks"])


def _buttons(message: dict[str, object]) -> list[object]:
    blocks = message.get("blocks") or []
    return [b for b in blocks if isinstance(b, dict) and b.get("type") == "actions"]


def test_a_held_step_says_it_is_on_hold_not_when_it_closed_and_loses_its_buttons(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    # The step message went on saying "Closes" at a time long past, with Next step, Extend and
    # Pause buttons that each answered that the protocol was gone.
    custom = _ours(tmp_path)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        bot.command(f"start {OURS} <@{PRESENTER}> step 4s")
        bot.wait_until(lambda: bool(bot.step_posts()))
        bot.runtime.sender.drain(5)
        prompt = str(_step_message(bot)["blocks"])
    finally:
        bot.stop()
    source = custom / f"{OURS}.yaml"
    kept = source.read_text()
    source.unlink()
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        bot.wait_until(lambda: "On hold" in str(_step_message(bot)["blocks"]))
        bot.settle()
        held = _step_message(bot)
        shown = str(held["blocks"])
        assert "Closes" not in shown and not _buttons(held)
        # What the step asks stays: the team still replies in its thread.
        assert "Reply in this thread" in shown
        assert prompt.split("'text': ")[2][:60] in shown
        # The header, whose plan has the step open until then, says so too.
        assert "On hold on step 1" in _header(bot)
    finally:
        bot.stop()
    source.write_text(kept)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        # The protocol is back: resume carries on, the held step closing at once (it was held
        # at its close) and the next one opening with its close time and buttons.
        assert "Resumed" in bot.command("resume")["text"]
        bot.wait_until(lambda: len(bot.step_posts()) == 2)
        bot.settle()
        first, second = bot.step_posts()
        assert "On hold" not in str(first["blocks"]) and "Closed" in str(first["blocks"])
        assert "On hold" not in _header(bot)
        assert "Closes" in str(second["blocks"]) and _buttons(second)
    finally:
        bot.stop()


def test_a_held_step_ended_says_when_it_closed(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    custom = _ours(tmp_path)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        bot.command(f"start {OURS} <@{PRESENTER}> step 4s")
        bot.wait_until(lambda: bool(bot.step_posts()))
        bot.runtime.sender.drain(5)
    finally:
        bot.stop()
    (custom / f"{OURS}.yaml").unlink()
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        bot.wait_until(lambda: "On hold" in str(_step_message(bot)["blocks"]))
        bot.command("end")
        bot.wait_until(lambda: "Closed" in str(_step_message(bot)["blocks"]))
        ended = _step_message(bot)
        assert "On hold" not in str(ended["blocks"]) and not _buttons(ended)
        bot.wait_until(lambda: "Ended" in _header(bot))
        assert "On hold" not in _header(bot)
    finally:
        bot.stop()


def _held(workspace: SlackStandin, database_url: str, tmp_path: Path) -> tuple[Bot, str]:
    """A session of OURS, a reply in its first step, held once that step was due to close with
    the protocol's file removed meanwhile: the bot, running, and the step's ts."""
    custom = _ours(tmp_path)
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    try:
        bot.command(f"start {OURS} <@{PRESENTER}> step 6s")
        bot.wait_until(lambda: bool(bot.step_posts()))
        step = str(bot.step_posts()[0]["ts"])
        kept = _written(bot, TEACHERS[0], "Most students listed the criteria.", step)
        bot.wait_until(lambda: kept in bot.recorded())
        bot.settle()
    finally:
        bot.stop()
    (custom / f"{OURS}.yaml").unlink()
    bot = Bot(workspace, database_url, protocols_dir=custom).start()
    bot.wait_until(lambda: "On hold" in json.dumps(bot.posts()), timeout=20)
    bot.settle()
    return bot, step


def test_the_held_steps_post_deleted_is_posted_again_as_it_stood(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    bot, step = _held(workspace, database_url, tmp_path)
    try:
        (held,) = bot.step_posts()
        _step_post_deleted(bot, step)
        bot.wait_until(lambda: [m["ts"] for m in bot.step_posts()] not in ([], [step]))
        bot.settle()
        (again,) = bot.step_posts()
        assert (again["text"], again["blocks"]) == (held["text"], held["blocks"])
        told = bot.standin.messages(f"D{FACILITATOR[1:]}")
        assert "posted it again" in told[-1]["text"]
        # Its new thread is the step's: a reply there is recorded.
        new = bot.reply(TEACHERS[1], "Two used the rubric's own words.", again["ts"])
        bot.wait_until(lambda: new in bot.recorded())
        bot.command("end")
        bot.settle()
        assert "*Closed " in json.dumps(bot.step_posts()[0])
        assert _refused(bot) == []
    finally:
        bot.stop()


def test_the_held_steps_post_deleted_with_replies_comes_back_in_its_thread(
    workspace: SlackStandin, database_url: str, tmp_path: Path
) -> None:
    bot, step = _held(workspace, database_url, tmp_path)
    try:
        (held,) = bot.step_posts()
        _step_post_tombstoned(bot, step)
        bot.wait_until(lambda: len(_in_thread(bot, step)) == 1)
        bot.settle()
        (copy,) = _in_thread(bot, step)
        assert (copy["text"], copy["blocks"]) == (held["text"], held["blocks"])
        bot.command("end")
        bot.settle()
        assert "*Closed " in json.dumps(_in_thread(bot, step)[0])
        assert _refused(bot) == []
    finally:
        bot.stop()
