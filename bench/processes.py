"""The servers under test, each in its own process: ours (`python -m bot`) and the bare app.

On PostgreSQL ours can also run as production does (PRODUCT 4, the Procfile): a web process
(`serve --no-scheduler`) that stores and acknowledges, and the clock (`clock`) that handles the
events, runs the timers and sends. Requests go to the web process; CPU counts both.
"""

from __future__ import annotations

import compileall
import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.signing import SECRET, TOKEN

ROOT = Path(__file__).resolve().parent.parent
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


@functools.cache
def compiled(tree: Path) -> Path:
    """Byte-compile a tree's `bot` and `bench` once, as an install or an image build does. Where
    PYTHONDONTWRITEBYTECODE is set (it is on the 2-core machine), every process the bench starts
    would otherwise compile ours again, 0.4 s of CPU at each cold start, while the libraries the
    bare app runs on were compiled when pip installed them."""
    for package in ("bot", "bench"):
        if (tree / package).is_dir():
            compileall.compile_dir(tree / package, quiet=1)
    return tree


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident memory of one process, from /proc (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * PAGE_SIZE


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def stat_cpu_seconds(stat: Path) -> float:
    """User plus system CPU time in a /proc stat file (a process's, or one of its threads');
    0 once it is gone."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


class Server:
    """A server process on 127.0.0.1; `ready_seconds` is spawn to the first /healthz 200."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, workdir: Path):
        self.name, self.port, self.workdir = name, port, workdir
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("ab")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, env=env, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.ready_seconds = self._wait_ready(started)
        self.samples: list[tuple[float, int, float]] = []  # (time, rss, cpu seconds)
        self.companions: tuple[subprocess.Popen[bytes], ...] = ()  # the clock, beside a web process
        self._sampling = threading.Event()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, started: float, timeout: float = 300.0) -> float:
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.perf_counter() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.01)
        raise RuntimeError(f"{self.name} not ready within {timeout}s; see {self.log_path}")

    def sample(self) -> None:
        """Record RSS and CPU time now."""
        self.samples.append((time.time(), rss_bytes(self.pid), cpu_seconds(self.pid)))

    def sample_every(self, seconds: float) -> None:
        """Record RSS and CPU time in the background until stop()."""

        def loop() -> None:
            while not self._sampling.wait(seconds):
                self.sample()

        self.sample()
        threading.Thread(target=loop, daemon=True).start()

    def cpu_seconds(self) -> float:
        """CPU time of the server and of any process serving with it (the clock)."""
        return cpu_seconds(self.pid) + sum(cpu_seconds(proc.pid) for proc in self.companions)

    def stop(self) -> None:
        self._sampling.set()
        for proc in (self.proc, *self.companions):
            _terminate(proc)
        self._log.close()


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _start_clock(
    env: dict[str, str], workdir: Path, timeout: float = 60.0
) -> subprocess.Popen[bytes]:
    """`protocolbot clock`, once it holds the clock lock (it says so in its log)."""
    log_path = workdir / "ours-clock.log"
    with log_path.open("ab") as log:
        since = log.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "clock"],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"our clock exited early; see {log_path}")
        with log_path.open("rb") as log:
            log.seek(since)
            if b"clock running" in log.read():
                return proc
        time.sleep(0.01)
    _terminate(proc)
    raise RuntimeError(f"our clock not running within {timeout}s; see {log_path}")


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def start_ours(
    workdir: Path,
    database_url: str,
    slack_api_url: str,
    *,
    with_clock: bool = False,
    source: Path = ROOT,
    migrate: bool = False,
) -> Server:
    """`python -m bot` (serve, with the scheduler and outbox) as an operator would run it; with
    `with_clock` (PostgreSQL), a web process and the clock, as in production. `source`: the
    project tree whose `bot` runs (bench/ab.py's variants); with `migrate`, its `db upgrade`
    first brings the database to its own schema, which may be older or newer than this tree's."""
    port = free_port()
    env = _env(
        {
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack_api_url,
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "INFO",
        }
    )
    if source != ROOT:
        env["PYTHONPATH"] = str(source) + os.pathsep + env["PYTHONPATH"]
    compiled(source)
    if migrate:
        subprocess.run(
            [sys.executable, "-m", "bot.cli", "db", "upgrade"],
            env=env,
            cwd=workdir,
            check=True,
            capture_output=True,
        )
    address = ["--host", "127.0.0.1", "--port", str(port)]
    if not with_clock:
        return Server("ours", [sys.executable, "-m", "bot", *address], env, port, workdir)
    clock = _start_clock(env, workdir)
    web_argv = [sys.executable, "-m", "bot.cli", "serve", "--no-scheduler", *address]
    try:
        web = Server("ours", web_argv, env, port, workdir)
    except BaseException:
        _terminate(clock)
        raise
    web.companions = (clock,)
    return web


def _start_module(name: str, module: str, workdir: Path, *args: str) -> Server:
    compiled(ROOT)
    port = free_port()
    argv = [sys.executable, "-m", module, "--port", str(port), *args]
    return Server(name, argv, _env({}), port, workdir)


def start_bare(workdir: Path, slack_api_url: str) -> Server:
    """bench/bare.py: Bolt's floor for an ack."""
    return _start_module("baseline", "bench.bare", workdir, "--slack-api-url", slack_api_url)


def start_floor(workdir: Path, slack_api_url: str, database_url: str) -> Server:
    """bench/floor.py: the least a bot can do per reply, end to end."""
    return _start_module(
        "floor",
        "bench.floor",
        workdir,
        "--slack-api-url",
        slack_api_url,
        "--database-url",
        database_url,
    )


@contextlib.contextmanager
def running(server: Server):  # type: ignore[no-untyped-def]
    try:
        yield server
    finally:
        server.stop()
