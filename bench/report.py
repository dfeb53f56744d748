"""docs/performance.md: regenerated from every benchmark's latest figures, with a plot for each.

The figures live in the page itself (a JSON comment at its end), so running one benchmark keeps
the others' sections as they were, each stamped with when, where and at which commit it ran.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import figures, plots

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- bench-results"
ORDER = ("latency", "throughput", "sessions", "coldstart")
TITLES = {
    "latency": "Ack latency at a fixed rate",
    "throughput": "Thread replies recorded end to end: the highest rate that holds",
    "sessions": "10,000 concurrent sessions: transitions, memory",
    "coldstart": "Cold start to ready",
}
EXPLAIN = {
    "latency": (
        "Signed requests from a separate generator process over {connections} keep-alive "
        "connections, {rate:g} a second for {duration:g} s per target and kind, in {rounds} "
        "slices that alternate ours and the baseline. Latency runs from when a request was due "
        "to its answer, so a server's queue cannot hide behind the generator's. `/protocol "
        "status` goes to channels each running a session; thread replies go under the open "
        "step of {channels} running sessions, and for ours the end-to-end time runs from the "
        "event's send to the tag reaction reaching the Slack stand-in. Ours acknowledges "
        "`status` at once and sends the answer to the command's response_url (served by the "
        "stand-in); the time from the command's send to that answer is given too. Both kinds "
        "also go to the end-to-end floor (`bench/floor.py`): the same Bolt app, server and "
        "adapter, which commits each event before its ack and then, in the same process, "
        "records the reply and adds one reaction; and which acks each command, then reads "
        "the channel's state (one query) and posts a one-line answer to its response_url. It "
        "does about the least a bot can do and keep PRODUCT 5's promises, so its ack latency "
        "is what doing that work at all costs. It starts that work as soon as the ack is "
        "written; ours lets the ack settle for 2 ms first (`bot/foreground.py`), because here "
        "the generator shares the cores and work begun at once delays its read of the ack. "
        "Ours also records replies that come within 10 ms of each other in one transaction "
        "(`bot/inbox.py`), so its tag reaction comes up to 10 ms later; the floor records "
        "each reply on its own. "
        "Ours ran as {ours}. Web + clock is "
        "PostgreSQL's production shape (PRODUCT 4): "
        "a web process (`serve --no-scheduler`) that stores and acknowledges each event, and "
        "the clock, which handles the events, runs the timers and sends; requests go to the "
        "web process."
    ),
    "throughput": (
        "A stepped ramp of thread replies ({step_seconds:g} s a step, doubling from {first:g}/s, "
        "then bisecting twice; ceiling {ceiling:g}/s). The baseline holds a step when every ack "
        "is a 200 within 3 s; ours must also tag every reply (event in, row committed, reaction "
        "at the stand-in) with the 99th percentile of that within 3 s. CPU per request is the "
        "server process's CPU time over the step (for ours, until every reply was tagged) "
        "divided by the requests sent: a process that is bound by one interpreter holds at "
        "most the baseline's rate times the baseline's CPU per request over its own. The "
        "end-to-end floor (`bench/floor.py`, see above) is held to ours' criterion, its ramp "
        "starting at the rate ours held: the highest rate any bot on this stack could hold "
        "while recording and tagging every reply, and so the ceiling of the ratio to the "
        "baseline that PRODUCT 6 asks for. Ours ran as {ours} (see the latency section); as "
        "web + clock, its CPU is both processes'. Below the steps, that CPU per reply at the "
        "highest rate ours held is split by the job of each thread, for ours and the floor "
        "(`bench/threads.py`: user plus system time per thread from /proc, threads named by "
        "py-spy), so the work ours does beyond the floor's can be read off by thread."
    ),
    "sessions": (
        "{sessions:,} ATLAS sessions in distinct channels: {engine_starts:,} started through the "
        "engine, as `/protocol start` starts them, and the rest copies of their rows; the bot "
        "runs as `python -m bot` in its own process. 1-day steps for {idle_seconds:g} s (idle), "
        "then {step_seconds}-s steps with closes spread over a minute, for {run_seconds:g} s of "
        "the real scheduler. Lateness is when the next step was committed less when the "
        "schedule said; the post's lateness is when the Slack stand-in received it."
    ),
    "coldstart": (
        "Spawn to the first `/healthz` 200, median of {repeats} alternating runs each: "
        "`python -m bot` on an empty migrated database, and the bare app."
    ),
}


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{memory:.0f} GiB",
        "python": platform.python_version(),
    }


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "bot", "protocols", "messages")
    return f"{head} (with uncommitted changes)" if dirty else head


def stamp(database: str, load_before: float, busy_before: float | None = None) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": round(load_before, 2),
        "busy_before": None if busy_before is None else round(busy_before, 3),
        "commit": commit(),
        "database": database,
        **machine(),
    }


def load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    text = path.read_text()
    start = text.find(MARK)
    if start < 0:
        return {}
    body = text[start + len(MARK) : text.rindex("-->")]
    loaded: dict[str, Any] = json.loads(body)
    return loaded


def _meta_line(meta: dict[str, Any]) -> str:
    return (
        f"Ran {meta['date']} on {meta['cores']} cores ({meta['cpu']}, {meta['memory']}), "
        f"Python {meta['python']}, {meta['database']}, commit {meta['commit']}; "
        f"load average {meta.get('load_before', 'n/a')}{_busy(meta)} when it began."
    )


def _busy(meta: dict[str, Any]) -> str:
    """The cores' busy share in the second before the run (bench/quiet.py), where measured."""
    busy = meta.get("busy_before")
    return "" if busy is None else f", cores {busy:.0%} busy"


def key(name: str, database: str) -> str:
    """Where a result is kept: SQLite runs under the bench's name, others beside them."""
    return name if database == "SQLite" else f"{name}-{database.lower()}"


def section(name: str, entry: dict[str, Any], image: str | None) -> str:
    result = entry["result"]
    database = entry["meta"]["database"]
    title = TITLES[name] + ("" if database == "SQLite" else f", on {database}")
    parts = [f"## {title} (`python -m bench {name}`)", "", _meta_line(entry["meta"]), ""]
    # Runs stored before ours could run as web + clock ran it as one process.
    params = {
        "ours": "one process",
        "engine_starts": result["params"].get("sessions"),
        **result["params"],
    }
    parts += [EXPLAIN[name].format(**params), ""]
    parts += [figures.render(figures.ROWS[name](result)), ""]
    if name == "throughput":
        parts += [figures.ramp_table(result), ""]
        if roles := figures.roles_table(result):
            parts += [roles, ""]
    if image:
        parts += [f"![{title}]({image})", ""]
    return "\n".join(parts)


def write(
    out: Path,
    name: str,
    result: dict[str, Any],
    database: str,
    load_before: float = 0.0,
    busy_before: float | None = None,
) -> Path:
    """Store `result` as `name`'s latest figures and regenerate the page and its plots."""
    out.mkdir(parents=True, exist_ok=True)
    page = out / "performance.md"
    entries = load(page)
    meta = stamp(database, load_before, busy_before)
    entries[key(name, database)] = {"meta": meta, "result": result}
    return render(out, entries)


def render(out: Path, entries: dict[str, Any] | None = None) -> Path:
    """Regenerate the page and its plots from `entries` (default: the figures it holds)."""
    page = out / "performance.md"
    entries = load(page) if entries is None else entries
    drew = plots.available()
    if drew:
        draw(out, entries)
    lines = [
        "# Performance",
        "",
        "Generated by `python -m bench all` (or `python -m bench <name>` for one section); do "
        "not edit by hand. Targets are PRODUCT 6's. The baseline is a bare Bolt app on the same "
        "server (waitress, 16 threads) and adapter (`SlackRequestHandler`) whose listeners only "
        "ack; it runs in the same invocation, alternating with ours. Everything runs on one "
        "machine over loopback: the bot, the baseline, the load generator and the Slack "
        "stand-in share its cores. `docs/scaling.md` turns these figures into a capacity model.",
        "",
    ]
    if not drew:
        lines += [
            "(Plots were not drawn: matplotlib is not installed; `pip install .[bench]`.)",
            "",
        ]
    for name in ORDER:
        for stored in sorted(k for k in entries if k.split("-")[0] == name):
            png = f"performance-{stored}.png"
            lines.append(section(name, entries[stored], png if (out / png).exists() else None))
    lines += [MARK, json.dumps(entries, indent=None), "-->", ""]
    page.write_text("\n".join(lines))
    return page


def draw(out: Path, entries: dict[str, Any]) -> None:
    for stored, entry in entries.items():
        name, _, suffix = stored.partition("-")
        path = out / f"performance-{stored}.png"
        if name == "coldstart":
            loaded = entries.get("sessions" + (f"-{suffix}" if suffix else ""), {}).get("result")
            plots.coldstart(entry["result"], path, loaded)
        else:
            getattr(plots, name)(entry["result"], path)
