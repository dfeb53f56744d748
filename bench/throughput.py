"""The highest rate of thread replies that holds: ours end to end, the baseline's acks (a ramp).

A step at rate r sends r replies a second for `step_seconds`. The baseline (bench/bare.py) holds a
step when every ack is a 200 within 3 s. Ours must also record every reply end to end (event in,
row committed, tag reaction at the Slack stand-in) with the 99th percentile of that within 3 s, so
a backlog that grows through the step fails it. The ramp doubles until a step fails, then bisects
twice (down to a quarter of the first rate when even that fails).

The end-to-end floor (bench/floor.py) is held to ours' criterion. It does only what any bot must
to record a reply end to end, so it shows how much of the gap to the baseline is the work itself.
Its ramp starts at the rate ours held.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.context import Context
from bench.loadgen import Job, run_in_process
from bench.measure import ACK_LIMIT, end_to_end, summarize
from bench.processes import Server, start_bare, start_floor, start_ours
from bench.profiling import recording
from bench.threads import ThreadCpu, per_request
from bench.workspace import Thread, reactions_seen, reply_requests, start_sessions, start_standin

TARGET_RATIO = 0.8


def ramp(first: float, ceiling: float, step: Callable[[float], bool], refine: int = 2) -> float:
    """The highest rate for which `step(rate)` held (0 if none): doubling, then bisection."""
    passed, failed, rate = 0.0, None, first
    while rate <= ceiling:
        if step(rate):
            passed, rate = rate, rate * 2
        else:
            failed = rate
            break
    for _ in range(refine):
        if failed is None:
            break
        middle = round((passed + failed) / 2) if passed else round(failed / 2)
        if middle in (passed, failed) or middle <= 0:
            break
        if step(middle):
            passed = middle
        else:
            failed = middle
    return passed


def run(
    ctx: Context,
    *,
    step_seconds: float = 30.0,
    first: float = 100.0,
    ceiling: float = 3200.0,
    channels: int = 50,
    connections: int = 64,
    drain_seconds: float = 10.0,
) -> dict[str, Any]:
    standin = start_standin()
    baseline = ours = floor = None
    steps: list[dict[str, Any]] = []
    made = 0
    try:
        baseline = start_bare(ctx.workdir, standin.url)
        ours = start_ours(
            ctx.workdir, ctx.fresh_database(), standin.url, with_clock=ctx.production_shape
        )
        floor = start_floor(ctx.workdir, standin.url, ctx.fresh_database())
        threads = start_sessions(standin, ours.port, channels)
        by_thread = {"ours": ThreadCpu(ours), "floor": ThreadCpu(floor)}

        def attempt(name: str, server: Server, rate: float, threads: list[Thread]) -> bool:
            nonlocal made
            count = max(1, round(rate * step_seconds))
            requests, keys = reply_requests(standin, threads, count, made)
            made += count
            ctx.say(f"  throughput: {name} at {rate:g}/s for {step_seconds:g}s")
            job = Job("127.0.0.1", server.port, requests, rate, connections)
            profile = ctx.profile if name == "ours" else None
            cpu_before = server.cpu_seconds()
            counter = by_thread.get(name)
            roles_before = counter.snapshot() if counter and counter.available else None
            with recording(server.pid, profile, f"throughput-{rate:g}"):
                results = run_in_process(job)
            acks = summarize(results)
            held = acks["errors"] == 0 and acks["over_limit"] == 0
            row: dict[str, Any] = {"target": name, "rate": rate, "acks": acks}
            if name != "baseline":
                deadline = time.monotonic() + drain_seconds
                wanted = set(keys)
                while time.monotonic() < deadline:
                    if wanted <= {key for key, _ in reactions_seen(standin)}:
                        break
                    time.sleep(0.25)
                e2e = end_to_end(results, keys, reactions_seen(standin))
                row["end_to_end"] = e2e
                held = held and e2e["completed"] == e2e["count"] and e2e["p99"] <= ACK_LIMIT
            # The server's CPU for the step, per request: end to end, until every reply was tagged
            # (or the drain gave up), so the work done after the ack counts too.
            row["cpu_ms_per_request"] = (server.cpu_seconds() - cpu_before) / count * 1000
            if counter is not None and roles_before is not None:
                row["cpu_us_by_role"] = per_request(roles_before, counter.snapshot(), count)
            row["held"] = held
            steps.append(row)
            time.sleep(0.5)
            return held

        best_baseline = ramp(first, ceiling, lambda r: attempt("baseline", baseline, r, threads))
        best_ours = ramp(first, ceiling, lambda r: attempt("ours", ours, r, threads))
        best_floor = ramp(
            max(first, best_ours), ceiling, lambda r: attempt("floor", floor, r, threads)
        )
        return {
            "params": {
                "ours": "web + clock" if ctx.production_shape else "one process",
                "step_seconds": step_seconds,
                "first": first,
                "ceiling": ceiling,
                "channels": channels,
                "connections": connections,
            },
            "ours": best_ours,
            "baseline": best_baseline,
            "floor": best_floor,
            "baseline_capped": best_baseline >= ceiling,
            "steps": steps,
        }
    finally:
        for server in (floor, ours, baseline):
            if server is not None:
                server.stop()
        standin.stop()
