"""The bot as a real separate process (`python -m bot`), to be killed and restarted in tests."""

from __future__ import annotations

import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Settings the child must not inherit from the developer's shell.
SETTINGS_NAMES = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_CLIENT_ID",
    "SLACK_CLIENT_SECRET",
    "SLACK_API_URL",
    "DATABASE_URL",
    "PORT",
    "PROTOCOLS_DIR",
    "LOG_LEVEL",
    "DATA_RETENTION_DAYS",
)


def workers_taking(pid: int, signals: set[signal.Signals]) -> list[str]:
    """The ids of a process's threads, besides the main one, that do not block all of `signals`
    (from Linux's /proc): the ones the kernel could hand such a signal to instead of the main
    thread. (A main thread waiting in sigwait shows the signals it waits for unblocked.)"""
    mask = sum(1 << (sig - 1) for sig in signals)
    open_to = []
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        if task.name == str(pid):
            continue
        fields = dict(line.split(":\t", 1) for line in (task / "status").read_text().splitlines())
        if int(fields["SigBlk"], 16) & mask != mask:
            open_to.append(task.name)
    return open_to


# Ports for bots under test come from a block of their own for each pytest-xdist worker, below
# Linux's ephemeral range (32768 and up). A port the kernel picks (bind to 0) and lets go can be
# picked again by another worker, or taken by an outgoing connection, before the bot binds it; that
# bot then fails to start while the other worker's bot answers its /healthz and its requests. Each
# worker starts at a random place in its block, so two test runs on one machine seldom meet.
FIRST_PORT = 10000
LAST_PORT = 32767
_next_port: Iterator[int] | None = None


def _worker() -> tuple[int, int]:
    """This worker's index and the number of workers (0 and 1 without pytest-xdist)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")
    index = int(name[2:]) if name[2:].isdigit() else 0
    return index, max(int(count) if count.isdigit() else 1, index + 1)


def port_block() -> range:
    """The ports this worker gives out."""
    index, count = _worker()
    size = (LAST_PORT + 1 - FIRST_PORT) // count
    return range(FIRST_PORT + index * size, FIRST_PORT + (index + 1) * size)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, and that no other test worker is given."""
    global _next_port
    block = port_block()
    if _next_port is None:
        _next_port = itertools.count(random.randrange(len(block)))
    for _ in range(len(block)):
        port = block[next(_next_port) % len(block)]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {block.start}..{block.stop - 1}")


def bot_environment(**settings: str) -> dict[str, str]:
    """The parent's environment without any protocolbot setting, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_NAMES}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


def as_from_a_terminal() -> None:
    """Given to Popen as preexec_fn: the child takes Ctrl-C (SIGINT) as it would from a
    terminal. A test run started in the background by a script (`.ci/run &`) has SIGINT
    ignored, and its children inherit that: Python then keeps ignoring it, and a test's Ctrl-C
    did nothing (the command ran on until its database connect timed out)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# `python -m bot.cli` would only import the module: it has no `__main__` guard.
CLI = "import sys; from bot.cli import main; sys.exit(main())"


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`protocolbot ARGS` in a child process, e.g. ["db", "upgrade"]."""
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class BotProcess:
    """`python -m bot` with a fixed environment; start, SIGKILL, start again."""

    def __init__(self, env: dict[str, str], workdir: Path, port: int) -> None:
        # The working directory is a scratch one, so no developer's .env is read.
        self.env, self.workdir, self.port = env, workdir, port
        self.base = f"http://127.0.0.1:{port}"
        self.events_url = f"{self.base}/slack/events"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / "bot.log"

    def start(self, timeout: float = 60.0) -> float:
        """Start the process and wait for /healthz; returns the wall-clock time it answered."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot"],
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"bot exited with {self.proc.returncode}:\n{self.log_path.read_text()}"
                )
            if self.healthy():
                return time.time()
            time.sleep(0.02)
        self.kill()
        raise AssertionError(f"bot did not become healthy:\n{self.log_path.read_text()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def kill(self) -> float:
        """SIGKILL: no shutdown hook runs, as when a machine or container dies."""
        if self.proc is None or self.proc.poll() is not None:
            return time.time()
        self.proc.send_signal(signal.SIGKILL)
        at = time.time()
        self.proc.wait(10)
        return at

    def stop(self) -> None:
        """A polite stop (SIGTERM), falling back to SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
