"""Ack latency of `/protocol status` and thread replies at a fixed rate, ours beside the floor."""

from __future__ import annotations

import time
from typing import Any

from bench.context import Context
from bench.loadgen import Job, Result, run_in_process
from bench.measure import end_to_end, summarize
from bench.processes import Server, start_bare, start_ours
from bench.profiling import recording
from bench.workspace import (
    answers_seen,
    reactions_seen,
    reply_requests,
    start_sessions,
    start_standin,
    status_requests,
)

KINDS = ("status", "reply")
TARGET_RATIO, TARGET_MAX = 1.25, 3.0


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
    baseline = ours = None
    try:
        baseline = start_bare(ctx.workdir, standin.url)
        ours = start_ours(ctx.workdir, ctx.fresh_database(), standin.url)
        threads = start_sessions(standin, ours.port, channels)
        per_slice = max(1, round(rate * duration / rounds))
        collected: dict[str, dict[str, list[Result | None]]] = {
            kind: {"ours": [], "baseline": []} for kind in KINDS
        }
        # For ours: the reply's tag reaction, or the status answer, reaching the stand-in.
        e2e_results: dict[str, list[Result | None]] = {kind: [] for kind in KINDS}
        e2e_keys: dict[str, list[tuple[str, str]]] = {kind: [] for kind in KINDS}
        made = 0
        for kind in KINDS:
            for r in range(rounds):
                targets: list[tuple[str, Server]] = [("baseline", baseline), ("ours", ours)]
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
                    if name == "ours":
                        e2e_results[kind].extend(results)
                        e2e_keys[kind].extend(keys)
                    time.sleep(1.0)  # let the bot's background work from this slice settle
        time.sleep(3.0)
        summary = {
            kind: {name: summarize(results) for name, results in by_target.items()}
            for kind, by_target in collected.items()
        }
        return {
            "params": {
                "rate": rate,
                "duration": duration,
                "rounds": rounds,
                "channels": channels,
                "connections": connections,
            },
            "latency": summary,
            "reply_end_to_end": end_to_end(
                e2e_results["reply"], e2e_keys["reply"], reactions_seen(standin)
            ),
            "status_end_to_end": end_to_end(
                e2e_results["status"], e2e_keys["status"], answers_seen(standin)
            ),
        }
    finally:
        for server in (ours, baseline):
            if server is not None:
                server.stop()
        standin.stop()
