"""Cold start to ready: spawn, time to the first /healthz 200, ours beside the baseline."""

from __future__ import annotations

import statistics
from typing import Any

from bench.context import Context
from bench.processes import Server, rss_bytes, start_bare, start_ours
from bench.workspace import start_standin

MB = 1024 * 1024


def run(ctx: Context, *, repeats: int = 3) -> dict[str, Any]:
    """`python -m bot` on an empty, migrated database, and the bare app, alternately."""
    standin = start_standin()
    url = ctx.fresh_database()
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    memory: dict[str, list[int]] = {"ours": [], "baseline": []}
    try:
        for i in range(repeats):
            for name in ("baseline", "ours") if i % 2 == 0 else ("ours", "baseline"):
                server: Server = (
                    start_ours(ctx.workdir, url, standin.url)
                    if name == "ours"
                    else start_bare(ctx.workdir, standin.url)
                )
                times[name].append(server.ready_seconds)
                memory[name].append(rss_bytes(server.pid))
                server.stop()
        ctx.say(f"  coldstart: ours {times['ours']}, baseline {times['baseline']}")
    finally:
        standin.stop()
    return {
        "params": {"repeats": repeats},
        **{
            name: {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
                "rss_mb": statistics.median(memory[name]) / MB,
            }
            for name, values in times.items()
        },
    }
