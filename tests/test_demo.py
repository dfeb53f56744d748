"""The quickstart's first command: `protocolbot demo` runs a whole session offline."""

from __future__ import annotations

import io
import re

from bot.demo import run_demo


def test_demo_runs_atlas_to_the_notes() -> None:
    out = io.StringIO()
    assert run_demo("atlas", step_seconds=2, out=out) == 0
    transcript = out.getvalue()
    steps = re.findall(r"== Step (\d) of 6 · ", transcript)
    assert steps == ["1", "2", "3", "4", "5", "6"]
    assert "== Notes · ATLAS" in transcript
    assert "What do you see in the work that makes you say that?" in transcript
    assert "[Park as interpretation]" in transcript
    notes = transcript[transcript.index("== Notes · ATLAS") :]
    interpretations = notes[notes.index("*Interpretations*") : notes.index("*Implications*")]
    assert "Her explanation is weak" in interpretations  # parked by its author
    assert "Traceback" not in transcript
    assert transcript.rstrip().endswith("Done.")


def test_demo_names_the_protocols_when_asked_for_an_unknown_one() -> None:
    out = io.StringIO()
    assert run_demo("no-such-protocol", out=out) == 2
    assert "atlas" in out.getvalue()
