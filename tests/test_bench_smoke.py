"""Each benchmark runs a few seconds with tiny parameters, so none can rot; no targets asserted."""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path

import pytest

from bench import ab, quiet, soak
from bench.__main__ import main
from bench.report import load
from bench.threads import OTHER, ROLES, spy
from tests.conftest import PG_ADMIN_URL

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
    args = [name, "--out", str(tmp_path), "--quiet", "--settle", "0", *TINY[name]]
    assert main(args) == 0

    page = tmp_path / "performance.md"
    text = page.read_text()
    assert f"`python -m bench {name}`" in text
    assert "| measure" in text
    # How busy the cores were just before it ran (bench/quiet.py), not only the load average.
    assert re.search(r"load average [\d.]+, cores \d+% busy when it began", text)
    result = load(page)[name]["result"]
    assert result["params"]
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / f"performance-{name}.png").stat().st_size > 1000
    # The end-to-end floor (bench/floor.py) records and tags every reply it is sent, and answers
    # every status command at its response_url.
    if name == "latency":
        for kind in ("reply", "status"):
            floor = result[f"floor_{kind}_end_to_end"]
            assert floor["count"] > 0
            assert floor["completed"] == floor["count"], kind
            assert result["latency"][kind]["floor"]["errors"] == 0
        assert "end-to-end floor: `/protocol status` ack" in text
    if name == "throughput":
        assert result["floor"] >= 10
        # Where each reply's CPU went, by the job of each thread: py-spy (the bench extras)
        # names the threads; the README's test command installs the dev extras alone.
        if spy() is not None:
            at_best = [s for s in result["steps"] if s["rate"] == result["ours"]]
            ours = next(s["cpu_us_by_role"] for s in at_best if s["target"] == "ours")
            assert set(ours) <= {*ROLES.values(), OTHER}
            assert set(ours) - {OTHER}  # threads named, and some of their time told apart
            assert "CPU per reply by thread at" in text


@pytest.mark.postgres
@pytest.mark.timeout(90)
def test_on_postgresql_ours_runs_as_a_web_process_and_the_clock(tmp_path: Path) -> None:
    """The shape production runs (PRODUCT 4): the clock handles what the web process stores."""
    if not PG_ADMIN_URL:
        pytest.skip("set PROTOCOLBOT_TEST_POSTGRES to an admin URL, as .ci/run does")
    args = ["latency", "--out", str(tmp_path), "--quiet", "--database-url", PG_ADMIN_URL]
    assert main([*args, *TINY["latency"]]) == 0
    result = load(tmp_path / "performance.md")["latency-postgresql"]["result"]
    ours = result["reply_end_to_end"]
    assert ours["count"] > 0 and ours["completed"] == ours["count"]
    assert result["params"]["ours"] == "web + clock"


@pytest.mark.timeout(90)
@pytest.mark.skipif(bool(PG_ADMIN_URL), reason="runs on SQLite alone: the SQLite run covers it")
def test_ab_compares_variants_of_the_bot_in_one_run(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parent.parent
    args = ["--rounds", "2", "--seconds", "1", "--rate", "20", "--channels", "2", "--quiet"]
    assert ab.main([f"this={root}", f"again={root}", *args]) == 0
    rows = {
        cells[0]: cells
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| ") and (cells := [c.strip() for c in line.strip("|").split("|")])
    }
    assert list(rows) == ["target", "this", "again", "floor", "baseline"]
    done, errors, against = (rows["target"].index(h) for h in ("done", "errors", "over the first"))
    for name in ("this", "again", "floor"):
        assert rows[name][done] == "40/40", name  # every reply reached its tag reaction
        assert rows[name][errors] == "0"
    assert rows["baseline"][done] == ""
    assert rows["this"][against] == "p99 1x, CPU 1x"  # the first variant is the yardstick


def test_ab_refuses_a_directory_without_the_bot(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        ab.main(["x=/nonexistent"])
    assert "want NAME=DIR" in capsys.readouterr().err


def test_the_capacity_model_sizes_the_clock_from_its_postgresql_run() -> None:
    import copy

    from bench.scaling import model

    entries = load(Path(__file__).resolve().parent.parent / "docs" / "performance.md")
    if "sessions-postgresql" not in entries or "coldstart-postgresql" not in entries:
        pytest.skip("docs/performance.md holds no PostgreSQL run")
    entries = copy.deepcopy(entries)
    behind = entries["sessions-postgresql"]["result"]["minute"]
    behind.update(lateness_p99=4.9, missed=0, achieved_per_second=120.0)
    entries["sessions"]["result"]["minute"].update(lateness_p99=0.1, missed=0)
    page = model(entries)
    assert re.search(r"PostgreSQL\)\s*\| 120/s \(fell behind: p99 over 1 s\)\s*\| sessions", page)
    assert "held 120 transitions a second" in page
    assert re.search(r"single process held \(same load, SQLite\)\s*\| 167/s\s*\|", page)
    # Run as web + clock, the clock handles every event: the model says where that ends.
    if "throughput-postgresql" in entries:
        shape = entries["throughput-postgresql"]["result"]["params"]
        shape["ours"] = "web + clock"
        entries["throughput-postgresql"]["result"]["ours"] = 400
        page = model(entries)
        assert re.search(r"by a web process and the clock \(PostgreSQL\)\s*\| 400/s", page)
        assert re.search(r"reach it at about 30,000 workspaces", page)
        shape["ours"] = "one process"
        assert "by one web process (PostgreSQL)" in model(entries)
    # Without a PostgreSQL run the single process on SQLite sizes it.
    del entries["sessions-postgresql"]
    assert "held 167 transitions a second" in model(entries)


def test_settling_waits_for_quiet_cores_at_most_as_long_as_it_is_told() -> None:
    began = time.monotonic()
    share = quiet.settle(threshold=1.01, most=10.0)  # any second is quiet enough
    assert share is not None and 0.0 <= share <= 1.0
    assert time.monotonic() - began < 5.0
    began = time.monotonic()
    quiet.settle(threshold=-1.0, most=2.0)  # no second is: it gives up
    assert 2.0 <= time.monotonic() - began < 6.0


@pytest.mark.timeout(90)
def test_the_soak_starts_sessions_by_command_and_tags_the_replies_to_them(tmp_path: Path) -> None:
    result = soak.run(minutes=0.3, sessions=3, step=3, replies=2)
    assert result["started"] >= 3 and result["refused"] == 0
    assert result["ended"] >= 1  # six 3-s steps: the first ones ended, others started
    assert result["replies_sent"] > 0
    assert 0 < result["replies_recorded"] <= result["replies_sent"]
    assert result["replies_tagged"] > 0
    assert result["duplicated"] == 0
    page = soak.write(tmp_path, result).read_text()
    assert "| sessions started by slash command / ended" in page
    assert "Resident memory (minutes:seconds MB): 0:00 " in page
