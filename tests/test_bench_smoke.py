"""Each benchmark runs a few seconds with tiny parameters, so none can rot; no targets asserted."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.report import load

TINY = {
    "coldstart": ["--repeats", "1"],
    "latency": ["--rate", "20", "--duration", "2", "--channels", "3"],
    "throughput": ["--step-seconds", "1", "--first", "10", "--ceiling", "20", "--channels", "3"],
    "sessions": [
        "--sessions",
        "20",
        "--step",
        "2",
        "--run-seconds",
        "5",
        "--idle-seconds",
        "1",
        "--drain",
        "5",
    ],
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", list(TINY))
def test_benchmark_runs_and_reports_its_figures(name: str, tmp_path: Path) -> None:
    assert main([name, "--out", str(tmp_path), "--quiet", *TINY[name]]) == 0

    page = tmp_path / "performance.md"
    text = page.read_text()
    assert f"`python -m bench {name}`" in text
    assert "| measure" in text
    result = load(page)[name]["result"]
    assert result["params"]
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / f"performance-{name}.png").stat().st_size > 1000
