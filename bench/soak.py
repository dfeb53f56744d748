"""python -m bench.soak: the bot's memory over a long run of sessions that start, run and end.

The sessions bench holds 10,000 sessions for a few minutes; this one runs for as long as asked,
as a busy workspace would: `--sessions` ATLAS sessions kept running, each started by a signed
`/protocol start ... step Ns` to a channel with none, running its six steps and ending, and a new
one started in its place; teachers reply in the open steps' threads at `--replies` a second. It
samples the bot's resident memory every 5 s and reports how it moved once warmed up: a leak shows
as a slope that keeps on however many sessions have come and gone. Writes `soak.md` to `--out`.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, select

from bench.processes import start_ours
from bench.report import commit, machine
from bench.sessions import MB, _transitions
from bench.signing import FORM, JSON, PRESENTER, TEACHERS, command_body, reply_body
from bench.stats import percentile, table
from bench.workspace import channel_name, post, reactions_seen, start_standin
from bot.protocols import load_library
from bot.store.db import Database
from bot.store.migrate import upgrade
from bot.store.models import Contribution, ProtocolSession, StepRun

PROTOCOL = "atlas"
WARMUP = 120.0  # seconds before memory is compared: pools and caches fill up first
REPLIES = (
    "The second column of the work has no units.",
    "I notice she crossed out two answers and wrote new ones beside them.",
    "Maybe the student thought the scale started at one?",
    "What was the time limit on this task?",
)


class Soak:
    def __init__(self, url: str, port: int, standin: Any, sessions: int, step: int) -> None:
        self.db, self.port, self.standin = Database(url), port, standin
        self.sessions, self.step = sessions, step
        self.channels = [channel_name(i) for i in range(2 * sessions)]
        self.asked: dict[str, float] = {}  # channel -> when a start was sent there
        self.started = self.replies = self.refused = 0
        self.stop = threading.Event()

    def _active(self) -> tuple[set[str], int]:
        with self.db.reading() as s:
            rows = s.execute(
                select(ProtocolSession.channel_id, ProtocolSession.status).where(
                    ProtocolSession.status.in_(("running", "paused", "scheduled"))
                )
            ).all()
        return {channel for channel, _ in rows}, sum(status == "running" for _, status in rows)

    def feed(self) -> None:
        """Keep `sessions` running: a start for each one missing, in a channel with none."""
        command = f"start {PROTOCOL} <@{PRESENTER}|maria> step {self.step}s"
        while not self.stop.wait(1.0):
            active, running = self._active()
            now = time.monotonic()
            waiting = {c for c, at in self.asked.items() if now - at < 15 and c not in active}
            free = (c for c in self.channels if c not in active and c not in waiting)
            for channel in itertools.islice(free, self.sessions - running - len(waiting)):
                status, _ = post(self.port, command_body(command, channel), FORM)
                self.asked[channel] = now
                self.started += status == 200
                self.refused += status != 200

    def reply(self, per_second: float) -> None:
        """Teachers' replies under the open steps' messages, `per_second` of them."""
        users = itertools.cycle(TEACHERS)
        texts = itertools.cycle(REPLIES)
        with ThreadPoolExecutor(4) as pool:
            while not self.stop.wait(1.0):
                with self.db.reading() as s:
                    open_steps = s.execute(
                        select(ProtocolSession.channel_id, StepRun.message_ts)
                        .join(
                            StepRun,
                            and_(
                                StepRun.session_id == ProtocolSession.id,
                                StepRun.index == ProtocolSession.current_step,
                            ),
                        )
                        .where(ProtocolSession.status == "running", StepRun.message_ts.is_not(None))
                    ).all()
                for channel, thread_ts in random.sample(
                    open_steps, min(len(open_steps), round(per_second))
                ):
                    user, text = next(users), next(texts)
                    ts = self.standin.add_message(channel, user, text, thread_ts=thread_ts)["ts"]
                    body = reply_body(channel, user, text, ts, thread_ts)
                    pool.submit(post, self.port, body, JSON)
                    self.replies += 1


def _slope_mb_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB), in MB an hour."""
    if len(points) < 3:
        return float("nan")
    xs, ys = [x for x, _ in points], [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 3600 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def run(
    minutes: float, sessions: int, step: int, replies: float, database_url: str | None = None
) -> dict[str, Any]:
    standin = start_standin()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        workdir = Path(tmp)
        url = database_url or f"sqlite:///{workdir}/soak.sqlite3"
        db = Database(url)
        upgrade(db)
        bot = start_ours(workdir, url, standin.url)
        soak = Soak(url, bot.port, standin, sessions, step)
        began = datetime.now(UTC)
        threads = [
            threading.Thread(target=soak.feed, daemon=True),
            threading.Thread(target=soak.reply, args=(replies,), daemon=True),
        ]
        try:
            bot.sample_every(5.0)
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + minutes * 60
            while time.monotonic() < deadline:
                time.sleep(min(60.0, max(0.0, deadline - time.monotonic())))
                _, rss, _ = bot.samples[-1]
                print(
                    f"[{(datetime.now(UTC) - began).total_seconds():6.0f}s] started "
                    f"{soak.started}, replies {soak.replies}, memory {rss / MB:.1f} MB",
                    flush=True,
                )
            soak.stop.set()
            for thread in threads:
                thread.join(30)
            ended_at = datetime.now(UTC)
            time.sleep(5.0)  # the last replies tagged, the last posts sent
            bot.sample()
        finally:
            soak.stop.set()
            bot.stop()
            standin_calls = list(reactions_seen(standin))
            standin.stop()
        with db.reading() as s:
            ended = s.scalar(
                select(func.count())
                .select_from(ProtocolSession)
                .where(ProtocolSession.status == "ended")
            )
            recorded = s.scalar(select(func.count()).select_from(Contribution))
        steps = len(load_library()[0][PROTOCOL].steps)
        planned, actual, refs, _ = _transitions(url, steps)
        db.dispose()
    window = (began + timedelta(seconds=30), ended_at - timedelta(seconds=30))
    lateness = [
        (actual[key] - at).total_seconds()
        for key, at in planned.items()
        if window[0] <= at <= window[1] and key in actual
    ]
    missed = sum(
        1 for key, at in planned.items() if window[0] <= at <= window[1] and key not in actual
    )
    t0 = bot.samples[0][0]
    series = [(t - t0, rss / MB) for t, rss, _ in bot.samples]
    warm = [(t, mb) for t, mb in series if t >= WARMUP]
    half = [(t, mb) for t, mb in warm if t >= (WARMUP + series[-1][0]) / 2]
    cpu = bot.samples[-1][2] - bot.samples[0][2]
    return {
        "params": {"minutes": minutes, "sessions": sessions, "step": step, "replies": replies},
        "started": soak.started,
        "refused": soak.refused,
        "ended": ended,
        "replies_sent": soak.replies,
        "replies_recorded": recorded,
        "replies_tagged": len(standin_calls),
        "transitions": len(lateness),
        "missed": missed,
        "duplicated": sum(n - 1 for n in refs.values() if n > 1),
        "lateness_p50": percentile(lateness, 50),
        "lateness_p99": percentile(lateness, 99),
        "lateness_max": max(lateness, default=float("nan")),
        "rss_warm_mb": warm[0][1] if warm else float("nan"),
        "rss_peak_mb": max(mb for _, mb in series),
        "rss_final_mb": series[-1][1],
        "slope_mb_per_hour": _slope_mb_per_hour(warm),
        "slope_second_half_mb_per_hour": _slope_mb_per_hour(half),
        "cpu_percent": 100 * cpu / max(1e-9, series[-1][0]),
        "series": [(round(t), round(mb, 1)) for t, mb in series],
    }


def rows(r: dict[str, Any]) -> list[list[str]]:
    ms = 1000
    return [
        ["sessions started by slash command / ended", f"{r['started']:,} / {r['ended']:,}"],
        ["start commands refused (non-200)", f"{r['refused']}"],
        [
            "replies sent / recorded / tagged",
            f"{r['replies_sent']:,} / {r['replies_recorded']:,} / {r['replies_tagged']:,}",
        ],
        ["transitions measured", f"{r['transitions']:,}"],
        [
            "transition lateness p50 / p99 / max",
            f"{r['lateness_p50'] * ms:.0f} / {r['lateness_p99'] * ms:.0f} / "
            f"{r['lateness_max'] * ms:.0f} ms",
        ],
        ["missed / duplicated transitions", f"{r['missed']} / {r['duplicated']}"],
        [
            f"resident memory at {WARMUP:.0f} s / peak / at the end",
            f"{r['rss_warm_mb']:.1f} / {r['rss_peak_mb']:.1f} / {r['rss_final_mb']:.1f} MB",
        ],
        [
            "memory trend after warm-up / over the second half",
            f"{r['slope_mb_per_hour']:+.1f} / {r['slope_second_half_mb_per_hour']:+.1f} MB an hour",
        ],
        ["CPU of the bot", f"{r['cpu_percent']:.1f} %"],
    ]


def write(out: Path, result: dict[str, Any]) -> Path:
    meta = machine()
    p = result["params"]
    every = max(1, len(result["series"]) // 24)
    series = ", ".join(f"{t // 60}:{t % 60:02d} {mb:.0f}" for t, mb in result["series"][::every])
    text = "\n".join(
        [
            "# Soak: memory over a long run",
            "",
            "Generated by `python -m bench.soak`; do not edit by hand. " + __doc__.split("\n\n")[1]
            if __doc__
            else "",
            "",
            f"Ran {datetime.now(UTC):%Y-%m-%d %H:%M UTC} on {meta['cores']} cores "
            f"({meta['cpu']}, {meta['memory']}), Python {meta['python']}, commit {commit()}: "
            f"{p['minutes']:g} minutes, {p['sessions']} sessions kept running on "
            f"{p['step']}-s steps, {p['replies']:g} replies a second.",
            "",
            table(("measure", "figure"), rows(result)),
            "",
            f"Resident memory (minutes:seconds MB): {series}.",
            "",
        ]
    )
    out.mkdir(parents=True, exist_ok=True)
    page = out / "soak.md"
    page.write_text(text)
    return page


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--sessions", type=int, default=300, help="kept running")
    p.add_argument("--step", type=int, default=20, help="seconds per step")
    p.add_argument("--replies", type=float, default=10.0, help="thread replies a second")
    p.add_argument("--database-url", help="a migrated-or-empty database (default: SQLite)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs")
    a = p.parse_args(argv)
    result = run(a.minutes, a.sessions, a.step, a.replies, a.database_url)
    print(table(("measure", "figure"), rows(result)))
    print(f"written to {write(a.out, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
