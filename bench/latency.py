"""Ack latency of `/protocol status` and thread replies at a fixed rate, ours beside the baseline.

Both kinds also go to the end-to-end floor (bench/floor.py), a bot that records and tags each
reply, and reads and answers each status, in the same process that acks: how much of ours' ack
latency any such bot pays.
"""

from __future__ import annotations

import time
from typing import Any

from bench.context import Context
from bench.loadgen import Job, Result, run_in_process
from bench.measure import end_to_end, summarize
from bench.processes import Server, start_bare, start_floor, start_ours
from bench.profiling import recording
from bench.workspace import (
    arrivals,
    reply_requests,
    start_sessions,
    start_standin,
    status_requests,
)
from bot.slack_standin import SlackStandin

KINDS = ("status", "reply")
# Where each target's time to the answer or tag reaction goes in the figures.
END_KEYS = {
    ("status", "ours"): "status_end_to_end",
    ("status", "floor"): "floor_status_end_to_end",
    ("reply", "ours"): "reply_end_to_end",
    ("reply", "floor"): "floor_reply_end_to_end",
}
TARGET_RATIO, TARGET_MAX = 1.25, 3.0
# How long a slice's replies and statuses may take to reach the stand-in before the next slice,
# and, at the end, before what has not arrived counts as not completed.
SETTLE_SECONDS, LAST_SETTLE_SECONDS = 1.0, 3.0


def settle(standin: SlackStandin, kind: str, keys: list[tuple[str, str]], seconds: float) -> None:
    """Wait until every request in `keys` has reached the stand-in, or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    wanted = set(keys)
    while time.monotonic() < deadline:
        if wanted <= {key for key, _ in arrivals(standin, kind)}:
            time.sleep(0.05)  # what the bot does after its last call (commits, logs)
            return
        time.sleep(0.02)


def run(
    ctx: Context,
    *,
    rate: float = 100.0,
    duration: float = 30.0,
    rounds: int = 2,
    channels: int = 50,
    connections: int = 64,
) -> dict[str, Any]:
    """Each target gets `duration` seconds per kind, in `rounds` alternating slices."""
    standin = start_standin()
    baseline = ours = floor = None
    try:
        baseline = start_bare(ctx.workdir, standin.url)
        ours = start_ours(
            ctx.workdir, ctx.fresh_database(), standin.url, with_clock=ctx.production_shape
        )
        floor = start_floor(ctx.workdir, standin.url, ctx.fresh_database())
        threads = start_sessions(standin, ours.port, channels)
        per_slice = max(1, round(rate * duration / rounds))
        collected: dict[str, dict[str, list[Result | None]]] = {
            kind: {"ours": [], "baseline": [], "floor": []} for kind in KINDS
        }
        # The reply's tag reaction, or the status answer, reaching the stand-in: ours and floor's.
        e2e_results: dict[tuple[str, str], list[Result | None]] = {end: [] for end in END_KEYS}
        e2e_keys: dict[tuple[str, str], list[tuple[str, str]]] = {end: [] for end in END_KEYS}
        targets: list[tuple[str, Server]] = [
            ("baseline", baseline),
            ("ours", ours),
            ("floor", floor),
        ]
        made = 0
        for kind in KINDS:
            for r in range(rounds):
                for name, server in targets if r % 2 == 0 else targets[::-1]:
                    if kind == "status":
                        requests, keys = status_requests(standin, per_slice, channels, made)
                        made += per_slice
                    else:
                        requests, keys = reply_requests(standin, threads, per_slice, made)
                        made += per_slice
                    ctx.say(f"  latency: {kind} -> {name}, {per_slice} requests at {rate:g}/s")
                    job = Job("127.0.0.1", server.port, requests, rate, connections)
                    with recording(
                        server.pid if name == "ours" else 0,
                        ctx.profile if name == "ours" else None,
                        f"latency-{kind}-{r}",
                    ):
                        results = run_in_process(job)
                    collected[kind][name].extend(results)
                    if name != "baseline":
                        e2e_results[kind, name].extend(results)
                        e2e_keys[kind, name].extend(keys)
                        # Let the bot's background work from this slice settle before the next.
                        settle(standin, kind, keys, SETTLE_SECONDS)
        for (kind, _), keys in e2e_keys.items():
            settle(standin, kind, keys, LAST_SETTLE_SECONDS)
        summary = {
            kind: {name: summarize(results) for name, results in by_target.items()}
            for kind, by_target in collected.items()
        }
        return {
            "params": {
                "ours": "web + clock" if ctx.production_shape else "one process",
                "rate": rate,
                "duration": duration,
                "rounds": rounds,
                "channels": channels,
                "connections": connections,
            },
            "latency": summary,
            **{
                key: end_to_end(
                    e2e_results[kind, name],
                    e2e_keys[kind, name],
                    arrivals(standin, kind),
                )
                for (kind, name), key in END_KEYS.items()
            },
        }
    finally:
        for each in (floor, ours, baseline):
            if each is not None:
                each.stop()
        standin.stop()
