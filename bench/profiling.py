"""Optional py-spy profiles of our bot process while a benchmark measures it.

`python -m bench <name> --profile DIR` writes DIR/<label>.raw (collapsed stacks of the thread
holding the GIL: where the interpreter's time goes) for each measured stretch and prints the
hottest frames; `python -m bench.profiling FILE.raw` prints them again. Where a benchmark gives
its database (the sessions run), it also writes DIR/<label>-all.raw, every thread's stacks waiting
or not, summarised within the frames that close steps (`--within NAME` for others), and on
PostgreSQL DIR/<label>-server.txt: what the server's connections were doing, sampled from
pg_stat_activity (running, waiting on a lock or on the disk, or idle waiting for the bot), and the
statements that took the server the most time (pg_stat_statements).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

# Where the threads that close steps spend their time, waiting or not (`-all.raw`).
CLOSING = "close_steps"


def _spy(pid: int, raw: Path, mode: str) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200"]
        + ["--nonblocking", mode, "-o", str(raw)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def recording(
    pid: int, out: Path | None, label: str, database_url: str | None = None
) -> Iterator[None]:
    """Record `pid` with py-spy (when asked for and installed) for the body of the with; given
    its `database_url`, every thread too, and a PostgreSQL server's side of it."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if out is None or not Path(spy).exists():
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    raw, every = out / f"{label}.raw", out / f"{label}-all.raw"
    # --gil: only the thread holding the GIL, where the interpreter's time goes; --idle: every
    # thread, also while it waits (on the database, a lock, the network).
    spies = [_spy(pid, raw, "--gil")]
    if database_url is not None:
        spies.append(_spy(pid, every, "--idle"))
    server = _Server(database_url) if database_url and database_url.startswith("postgres") else None
    try:
        with server.watching() if server else contextlib.nullcontext():
            yield
    finally:
        for proc in spies:
            proc.send_signal(signal.SIGINT)
        for proc in spies:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if raw.exists():
            print(f"  profile {raw}:\n{summary(raw)}", flush=True)
        if database_url is not None and every.exists():
            print(f"  every thread within {CLOSING}, {every}:", flush=True)
            print(summary(every, within=CLOSING), flush=True)
        if server is not None:
            report = out / f"{label}-server.txt"
            report.write_text(server.report())
            print(f"  the database server, {report}:\n{server.report()}", flush=True)


class _Server:
    """A PostgreSQL server's side of a stretch: what its other connections were doing, sampled
    every 20 ms from pg_stat_activity, and its most costly statements from pg_stat_statements
    (when the server loaded it: `TemporaryPostgres(statements=True)`)."""

    def __init__(self, database_url: str) -> None:
        self.engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
        self.states: Counter[str] = Counter()
        self.samples = 0
        self.statements: list[tuple[float, int, float, str]] = []
        self._stop = threading.Event()

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        with self.engine.connect() as conn:
            try:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
                conn.execute(text("SELECT pg_stat_statements_reset()"))
                statements = True
            except SQLAlchemyError:
                statements = False  # not loaded by this server: activity only
        sampler = threading.Thread(target=self._sample, daemon=True)
        sampler.start()
        try:
            yield
        finally:
            self._stop.set()
            sampler.join(5)
            if statements:
                self._read_statements()
            self.engine.dispose()

    def _sample(self) -> None:
        query = text(
            "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        with self.engine.connect() as conn:
            while not self._stop.wait(0.02):
                self.samples += 1
                for state, kind, event in conn.execute(query):
                    if state == "active":
                        self.states[f"active: {kind}/{event}" if kind else "active: running"] += 1
                    else:
                        self.states[f"{state}: {event or '-'}"] += 1

    def _read_statements(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT total_exec_time, calls, mean_exec_time, query "
                    "FROM pg_stat_statements WHERE dbid = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "ORDER BY total_exec_time DESC LIMIT 15"
                )
            ).all()
        self.statements = [(float(t), int(c), float(m), " ".join(q.split())) for t, c, m, q in rows]

    def report(self) -> str:
        n = max(1, self.samples)
        lines = [f"    connections, by what they were doing (mean over {self.samples} samples):"]
        lines += [f"    {count / n:7.2f}  {state}" for state, count in self.states.most_common(12)]
        if self.statements:
            lines += ["    statements by the server's time (total ms, calls, mean ms):"]
            lines += [
                f"    {total:9.0f} {calls:7d} {mean:7.2f}  {query[:150]}"
                for total, calls, mean, query in self.statements
            ]
        return "\n".join(lines)


def _frame(frame: str) -> str:
    name, _, where = frame.partition(" (")
    return f"{name} ({where.split(':')[0]})" if where else name


def _named(frame: str, name: str) -> bool:
    """Whether `frame` ("Class.method (file)" or "function (file)") is `name`'s."""
    qualified = frame.split(" (")[0]
    return qualified == name or qualified.endswith("." + name)


def summary(raw: Path, top: int = 25, within: str | None = None) -> str:
    """The frames where the most samples were spent, inclusive of callees, and self time; with
    `within`, only the stacks that pass through a frame of that name (from it down)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        if within is not None:
            inner = [i for i, frame in enumerate(frames) if _named(frame, within)]
            if not inner:
                continue
            frames = frames[inner[0] :]
        n = int(count)
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    if not total:
        return "    (no samples)"
    lines = [f"    {total} samples; inclusive:"]
    lines += [f"    {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    lines += ["    self:"]
    lines += [f"    {n / total:6.1%}  {frame}" for frame, n in own.most_common(top // 2)]
    return "\n".join(lines)


if __name__ == "__main__":
    cli = argparse.ArgumentParser(prog="python -m bench.profiling")
    cli.add_argument("raw", nargs="+", type=Path)
    cli.add_argument("--within", help="only stacks through a frame of this name")
    cli.add_argument("--top", type=int, default=25)
    a = cli.parse_args()
    for name in a.raw:
        print(f"{name}:\n{summary(name, a.top, a.within)}")
