"""The quickstart's first command: `protocolbot demo` runs a whole session offline."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.demo import run_demo
from bot.protocols import BUILTIN_DIR
from tests.process import CLI, bot_environment, run_cli


def test_demo_runs_atlas_to_the_notes() -> None:
    out = io.StringIO()
    assert run_demo("atlas", step_seconds=2, out=out) == 0
    transcript = out.getvalue()
    steps = re.findall(r"== Step (\d) of 6 · ", transcript)
    assert steps == ["1", "2", "3", "4", "5", "6"]
    assert "== Notes · ATLAS" in transcript
    assert "What do you see in the work that makes you say that?" in transcript
    assert "[Park as interpretation]" in transcript
    # Each step's message is edited as it closes, and the header's plan when the session ends.
    closed = re.findall(r"protocolbot \(edited Step (\d) of 6 · [^)]+\): .*\*Closed ", transcript)
    assert closed == ["1", "2", "3", "4", "5", "6"]
    assert re.search(r"protocolbot \(edited ATLAS - Learning from Student Work\): 1\. ", transcript)
    assert "is open in #team" in transcript  # Slack's markup for the channel, as it shows
    # Dates as Slack shows them: the notes name the day they ended (not "on today", which is
    # what "today"'s token read there), the plan today's close times.
    ended = re.search(
        r"Presented by @Maria, facilitated by @Dana, in #team on (\w+ \d+)\.", transcript
    )
    now = datetime.now(UTC)
    assert ended and ended[1] in {(now - timedelta(minutes=m)).strftime("%b %d") for m in (0, 2)}
    assert "on today" not in transcript and "until today " in transcript
    assert not re.search(r"<[@#!]", transcript), transcript
    notes = transcript[transcript.index("== Notes · ATLAS") :]
    interpretations = notes[notes.index("*Interpretations*") : notes.index("*Implications*")]
    assert "Her explanation is weak" in interpretations  # parked by its author
    assert "Traceback" not in transcript
    assert transcript.rstrip().endswith("Done.")


def test_demo_names_the_protocols_when_asked_for_an_unknown_one() -> None:
    out = io.StringIO()
    assert run_demo("no-such-protocol", out=out) == 2
    assert "atlas" in out.getvalue()


def test_demo_takes_a_protocol_in_any_case() -> None:
    # /protocol start takes ATLAS as atlas; the demo answered there is no protocol 'ATLAS'.
    out = io.StringIO()
    assert run_demo("DESE-Everyday", step_seconds=2, out=out) == 0
    transcript = out.getvalue()
    assert re.findall(r"== Step (\d) of 3 · ", transcript) == ["1", "2", "3"]
    assert transcript.rstrip().endswith("Done.")


def test_ctrl_c_stops_the_demo_without_a_traceback() -> None:
    out = io.StringIO()

    def press_ctrl_c() -> None:
        deadline = time.monotonic() + 30
        while "== Step 1 of 6" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: KeyboardInterrupt in the main thread

    # As in a terminal: Ctrl-C raises KeyboardInterrupt (a test runner's worker may ignore it).
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=press_ctrl_c, daemon=True).start()
    try:
        stopped = run_demo("atlas", step_seconds=5, out=out)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C ended the demo in a KeyboardInterrupt traceback")
    finally:
        signal.signal(signal.SIGINT, before)
    assert stopped == 130
    assert out.getvalue().rstrip().endswith("Stopped.")


def test_sigterm_stops_the_demo_tidily_and_leaves_no_files(tmp_path: Path) -> None:
    # `timeout` (SIGTERM) left the demo's temporary folder behind, where Ctrl-C removed it.
    demo = subprocess.Popen(
        [sys.executable, "-c", CLI, "demo", "--step", "5"],
        env={**bot_environment(), "TMPDIR": str(tmp_path)},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    for line in demo.stdout:
        if "== Step 1 of 6" in line:
            break
    assert list(tmp_path.glob("protocolbot-demo-*"))
    demo.send_signal(signal.SIGTERM)
    rest = demo.stdout.read()
    assert demo.wait(30) == 130, rest
    assert rest.rstrip().endswith("Stopped.") and "Traceback" not in rest
    assert list(tmp_path.glob("protocolbot-demo-*")) == []


def test_the_demo_piped_to_a_reader_that_stops_ends_quietly(tmp_path: Path) -> None:
    # `protocolbot demo | head` (or a pager quit early): the transcript met a closed pipe, the
    # stand-in's listener logged a traceback of BrokenPipeError, and the rehearsal ran on with
    # nobody to read it.
    demo = subprocess.Popen(
        [sys.executable, "-c", CLI, "demo", "tuning", "--step", "5"],
        env={**bot_environment(), "TMPDIR": str(tmp_path)},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert demo.stdout is not None and demo.stderr is not None
    for line in demo.stdout:
        if "== Tuning Protocol ==" in line:
            break
    demo.stdout.close()  # `head` has its lines
    # Timed from here: timed from the launch, a loaded machine's slow start made it 18.5 s.
    stopped = time.monotonic()
    assert demo.wait(30) == 1
    assert time.monotonic() - stopped < 15  # not the 30 s the rehearsal takes
    errors = demo.stderr.read()
    assert "Traceback" not in errors and "BrokenPipeError" not in errors, errors
    assert list(tmp_path.glob("protocolbot-demo-*")) == []


def test_the_scripted_team_keeps_the_norms_of_any_protocol() -> None:
    # Tuning's presenter speaks alone in steps 1 and 5 and listens in 3 and 4: the ATLAS team
    # talked through both, was corrected for it, and said one line twice.
    out = io.StringIO()
    assert run_demo("tuning", step_seconds=2, out=out) == 0
    transcript = out.getvalue()
    told = re.findall(r"protocolbot → (\w+) \(only you\)", transcript)
    assert set(told) == {"Dana"}, transcript  # the answer to the start; nobody corrected
    said = re.findall(r"│ (\w+: .+)", transcript[: transcript.index("== Notes")])
    assert said and len(said) == len(set(said)), said


def test_the_demo_runs_a_protocol_from_protocols_dir(tmp_path: Path) -> None:
    # `protocols check` and `serve` read PROTOCOLS_DIR; the demo said there was no such protocol.
    folder = tmp_path / "protocols"
    folder.mkdir()
    everyday = (BUILTIN_DIR / "dese-everyday.yaml").read_text(encoding="utf-8")
    ours = everyday.replace("id: dese-everyday", "id: peer-feedback", 1)
    (folder / "peer-feedback.yaml").write_text(ours, encoding="utf-8")
    env = bot_environment(PROTOCOLS_DIR=str(folder))
    done = run_cli(["demo", "peer-feedback", "--step", "2"], env, tmp_path)
    assert (done.returncode, done.stderr) == (0, ""), done.stdout + done.stderr
    assert re.findall(r"== Step (\d) of 3 · ", done.stdout) == ["1", "2", "3"]
    assert done.stdout.rstrip().endswith("Done.")


def test_the_demo_of_a_one_step_protocol_says_one_step(tmp_path: Path) -> None:
    # "protocolbot demo: Solo, 1 steps of 2 s".
    (tmp_path / "solo.yaml").write_text(
        "id: solo\nname: Solo\nsource: ours\nsummary: One step.\nsteps:\n"
        "  - id: look\n    title: Looking\n    minutes: 5\n    prompt: What do you see?\n"
        "    guidance: []\n    presenter: speaks\n    collects: observation\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    assert run_demo("solo", step_seconds=2, out=out, protocols_dir=tmp_path) == 0
    first = out.getvalue().splitlines()[0]
    assert first == "protocolbot demo: Solo, 1 step of 2 s (a live session would take 5 min)"
