"""Turning the generator's results into figures: latency summaries and end-to-end times."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bench.loadgen import Result
from bench.stats import percentile

ACK_LIMIT = 3.0  # Slack retries an event whose ack takes longer


def summarize(results: Sequence[Result | None]) -> dict[str, Any]:
    """Ack latency (seconds, from when each request was due) over the answered requests."""
    answered = [r for r in results if r is not None and r.status == 200]
    latencies = [r.latency for r in answered]
    lags = [r.sent - r.due for r in answered]
    return {
        "count": len(results),
        "errors": len(results) - len(answered),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies, default=float("nan")),
        "over_limit": sum(1 for x in latencies if x > ACK_LIMIT),
        "generator_lag_p99": percentile(lags, 99),
    }


def end_to_end(
    results: Sequence[Result | None],
    keys: Sequence[tuple[str, str]],
    seen: Iterable[tuple[tuple[str, str], float]],
) -> dict[str, Any]:
    """Event sent to tag reaction received by the stand-in, for the replies in `keys`."""
    arrived = dict(seen)
    times = [
        arrived[key] - r.sent_wall
        for r, key in zip(results, keys, strict=True)
        if r is not None and key in arrived
    ]
    return {
        "count": len(keys),
        "completed": len(times),
        "p50": percentile(times, 50),
        "p99": percentile(times, 99),
        "max": max(times, default=float("nan")),
    }
