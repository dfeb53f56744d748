"""Optional py-spy profiles of our bot process while a benchmark measures it.

`python -m bench <name> --profile DIR` writes DIR/<label>.raw (collapsed stacks) for each measured
stretch and prints the hottest frames; `python -m bench.profiling FILE.raw` prints them again.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def recording(pid: int, out: Path | None, label: str) -> Iterator[None]:
    """Record `pid` with py-spy (when asked for and installed) for the body of the with."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if out is None or not Path(spy).exists():
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"{label}.raw"
    proc = subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "200",
            "--nonblocking",
            # Only the thread holding the GIL: where the interpreter's time goes, not which
            # threads are waiting for it.
            "--gil",
            "-o",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if raw.exists():
            print(f"  profile {raw}:\n{summary(raw)}", flush=True)


def _frame(frame: str) -> str:
    name, _, where = frame.partition(" (")
    return f"{name} ({where.split(':')[0]})" if where else name


def summary(raw: Path, top: int = 25) -> str:
    """The frames where the most samples were spent, inclusive of callees, and self time."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
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
    for name in sys.argv[1:]:
        print(f"{name}:\n{summary(Path(name))}")
