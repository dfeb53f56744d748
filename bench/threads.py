"""Where a server's CPU per request goes: user plus system time by thread, grouped by the job
each thread does.

/proc gives every thread's CPU time, but Python 3.11 does not give its threads' names to the
OS, so they are read with `py-spy dump` (the tool --profile records with). Without py-spy no
breakdown is made. Unlike a sampled profile, this counts what a thread spends outside the
interpreter too: in the database driver, in socket calls, and in the kernel waking it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.processes import Server, stat_cpu_seconds

# Thread name (its number left off) -> the job it does, in ours and in the floor.
ROLES = {
    "waitress": "requests: read, verify, store, ack",
    "http": "server loop: sockets",
    "inbox": "replies recorded (inbox lane)",
    "outbox": "Slack calls (outbox workers)",
    "outbox-dispatch": "outbox rounds: outcomes written back",
    "inbox-marks": "events noted handled",
    "floor": "replies recorded, and Slack calls (floor lanes)",
    "clock-link": "events named by web processes",
}
OTHER = "other"


def spy() -> str | None:
    """py-spy's path, when installed."""
    found = shutil.which("py-spy")
    beside = Path(sys.executable).with_name("py-spy")
    return found or (str(beside) if beside.exists() else None)


def role(name: str) -> str:
    """The job of a thread called `name` ("outbox_3" and "waitress-1" by their prefix)."""
    return ROLES.get(re.sub(r"[_-]?\d+$", "", name), OTHER)


class ThreadCpu:
    """Snapshots of a server's CPU time by role (its companion, the clock, included)."""

    def __init__(self, server: Server) -> None:
        self.pids = [server.pid, *(proc.pid for proc in server.companions)]
        self.spy = spy()
        self._names: dict[int, str] = {}

    @property
    def available(self) -> bool:
        return self.spy is not None

    def snapshot(self) -> Counter[str]:
        """CPU seconds by role, of the threads alive now."""
        by_role: Counter[str] = Counter()
        for pid in self.pids:
            times = _thread_times(pid)
            if any(tid not in self._names for tid in times):
                self._names.update(self._read_names(pid))
            for tid, seconds in times.items():
                by_role[role(self._names.get(tid, ""))] += seconds
        return by_role

    def _read_names(self, pid: int) -> dict[int, str]:
        if self.spy is None:
            return {}
        done = subprocess.run(
            [self.spy, "dump", "--pid", str(pid), "--json", "--nonblocking"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        try:
            threads = json.loads(done.stdout)
        except json.JSONDecodeError:
            return {}
        return {
            int(t["os_thread_id"]): str(t.get("thread_name") or "")
            for t in threads
            if t.get("os_thread_id")
        }


def per_request(before: Counter[str], after: Counter[str], requests: int) -> dict[str, float]:
    """Microseconds of CPU per request by role, between two snapshots (largest first)."""
    spent = {name: (after[name] - before[name]) * 1e6 / requests for name in after}
    return dict(sorted(((k, v) for k, v in spent.items() if v > 0), key=lambda kv: -kv[1]))


def _thread_times(pid: int) -> dict[int, float]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return {}
    return {int(task.name): stat_cpu_seconds(task / "stat") for task in tasks}
