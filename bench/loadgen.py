"""The load generator: signed requests at a fixed rate over many keep-alive connections.

It runs in its own process (`python -m bench.loadgen`, a JSON job on stdin, JSON results on
stdout) so that its work does not share a GIL with the server it measures. Request i is due at
t0 + i/rate; its latency runs from when it was due, not from when a free connection sent it, so
a slow server cannot hide its queue behind the generator's (no coordinated omission).
Bounded: it sends exactly the requests it is given and gives up `grace` seconds after the last
is due.
"""

from __future__ import annotations

import gc
import http.client
import itertools
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench.signing import SECRET, signed_headers


@dataclass(frozen=True)
class Job:
    host: str
    port: int
    requests: list[tuple[str, str]]  # (body, content type)
    rate: float
    connections: int = 64
    timeout: float = 10.0
    grace: float = 15.0
    secret: str = SECRET
    path: str = "/slack/events"


@dataclass(frozen=True)
class Result:
    """One request: when it was due, sent and answered (seconds from t0), and the answer."""

    due: float
    sent: float
    done: float
    status: int
    sent_wall: float  # wall-clock send time, to line up with what the Slack stand-in saw

    @property
    def latency(self) -> float:
        return self.done - self.due


def run_job(job: Job) -> list[Result | None]:
    """Send every request of `job`; None for one never sent because time ran out."""
    results: list[Result | None] = [None] * len(job.requests)
    counter = itertools.count()
    t0 = time.perf_counter() + 0.05
    wall0 = time.time() + (t0 - time.perf_counter())
    deadline = t0 + len(job.requests) / job.rate + job.grace

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        while True:
            i = next(counter)
            if i >= len(job.requests):
                break
            due = i / job.rate
            wait = t0 + due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            if time.perf_counter() > deadline:
                break
            body, content_type = job.requests[i]
            sent = time.perf_counter() - t0
            status = 0
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(job.host, job.port, timeout=job.timeout)
                conn.request(
                    "POST", job.path, body.encode(), signed_headers(body, content_type, job.secret)
                )
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
            done = time.perf_counter() - t0
            results[i] = Result(due, sent, done, status, wall0 + sent)
        if conn is not None:
            conn.close()

    threads = [
        threading.Thread(target=worker, daemon=True)
        for _ in range(min(job.connections, len(job.requests)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.perf_counter()) + job.timeout)
    return results


def run_in_process(job: Job) -> list[Result | None]:
    """Run `job` in a fresh generator process and collect its results."""
    payload = json.dumps(job.__dict__)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
        timeout=len(job.requests) / job.rate + job.grace + job.timeout + 30,
    )
    rows = json.loads(proc.stdout)
    return [None if row is None else Result(*row) for row in rows]


def main() -> None:
    spec: dict[str, Any] = json.loads(sys.stdin.read())
    spec["requests"] = [tuple(r) for r in spec["requests"]]
    # The generator's own collections would show up as latency of whichever server it measures.
    gc.disable()
    results = run_job(Job(**spec))
    rows = [None if r is None else [r.due, r.sent, r.done, r.status, r.sent_wall] for r in results]
    json.dump(rows, sys.stdout)


if __name__ == "__main__":
    main()
