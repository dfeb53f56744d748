"""python -m bench <name>|all: run benchmarks beside a bare Bolt app and regenerate the report."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import coldstart, figures, latency, quiet, report, scaling, sessions, throughput
from bench.context import DOCS, Context
from bench.postgres import TemporaryPostgres

Runner = Callable[[Context, argparse.Namespace, bool], dict[str, Any]]


def _latency(ctx: Context, a: argparse.Namespace, short: bool) -> dict[str, Any]:
    duration = a.duration if a.duration is not None else (20.0 if short else 30.0)
    return latency.run(ctx, rate=a.rate, duration=duration, rounds=a.rounds, channels=a.channels)


def _throughput(ctx: Context, a: argparse.Namespace, short: bool) -> dict[str, Any]:
    step = a.step_seconds if a.step_seconds is not None else (6.0 if short else 30.0)
    return throughput.run(
        ctx, step_seconds=step, first=a.first, ceiling=a.ceiling, channels=a.channels
    )


def _sessions(ctx: Context, a: argparse.Namespace, short: bool) -> dict[str, Any]:
    run_seconds = a.run_seconds if a.run_seconds is not None else (130.0 if short else 180.0)
    return sessions.run(
        ctx,
        sessions=a.sessions,
        step_seconds=a.step,
        run_seconds=run_seconds,
        idle_seconds=a.idle_seconds,
        drain=a.drain,
        engine_starts=a.engine_starts,
    )


def _coldstart(ctx: Context, a: argparse.Namespace, short: bool) -> dict[str, Any]:
    return coldstart.run(ctx, repeats=a.repeats)


BENCHES: dict[str, Runner] = {
    "coldstart": _coldstart,
    "latency": _latency,
    "throughput": _throughput,
    "sessions": _sessions,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "name",
        choices=[*BENCHES, "all", "report"],
        help="one benchmark, all of them, or `report`: rewrite the pages from the stored figures",
    )
    p.add_argument("--out", type=Path, default=DOCS, help="where performance.md goes (docs/)")
    db = p.add_mutually_exclusive_group()
    db.add_argument(
        "--database-url",
        help="a PostgreSQL server URL on which to create (and drop) one database per run",
    )
    db.add_argument(
        "--postgres", action="store_true", help="start a throwaway PostgreSQL cluster to run on"
    )
    p.add_argument("--profile", type=Path, help="record py-spy profiles of our bot into DIR")
    p.add_argument("--quiet", action="store_true")
    p.add_argument(
        "--settle",
        type=float,
        default=15.0,
        help="before each benchmark, wait up to this many seconds for the cores to go quiet",
    )
    lat = p.add_argument_group("latency and throughput")
    lat.add_argument("--rate", type=float, default=100.0, help="requests per second (latency)")
    lat.add_argument("--duration", type=float, help="seconds per target and kind (latency)")
    lat.add_argument("--rounds", type=int, default=2, help="alternating slices (latency)")
    lat.add_argument("--channels", type=int, default=50, help="running sessions replied to")
    lat.add_argument("--step-seconds", type=float, help="seconds per ramp step (throughput)")
    lat.add_argument(
        "--first", type=float, default=100.0, help="first ramp rate (ours and the baseline)"
    )
    lat.add_argument("--ceiling", type=float, default=3200.0, help="highest ramp rate")
    ses = p.add_argument_group("sessions and coldstart")
    ses.add_argument("--sessions", type=int, default=10_000)
    ses.add_argument("--step", type=int, default=60, help="seconds per step (busy phase)")
    ses.add_argument("--run-seconds", type=float, help="busy phase length")
    ses.add_argument("--idle-seconds", type=float, default=20.0, help="idle phase length")
    ses.add_argument("--drain", type=float, default=30.0, help="wait for late transitions")
    ses.add_argument(
        "--engine-starts",
        type=int,
        default=sessions.ENGINE_STARTS,
        help="sessions started through the engine; the rest copy their rows",
    )
    ses.add_argument("--repeats", type=int, default=3, help="cold starts per target")
    return p


def run(names: list[str], args: argparse.Namespace, short: bool) -> dict[str, dict[str, Any]]:
    """Run `names` in order; print each one's table and regenerate the report after each."""
    results: dict[str, dict[str, Any]] = {}
    with TemporaryPostgres.maybe(args.postgres, statements=bool(args.profile)) as started_url:
        admin_url = started_url or args.database_url
        for name in names:
            ctx = Context(
                out=args.out, postgres_admin_url=admin_url, quiet=args.quiet, profile=args.profile
            )
            try:
                busy = quiet.settle(most=args.settle)
                ctx.say(f"{name}: running on {ctx.database_kind}")
                began, load_before = time.monotonic(), os.getloadavg()[0]
                result = BENCHES[name](ctx, args, short)
                result["elapsed_seconds"] = time.monotonic() - began
                page = report.write(args.out, name, result, ctx.database_kind, load_before, busy)
            finally:
                ctx.close()
            results[name] = result
            print(f"\n{name} ({result['elapsed_seconds']:.0f} s), written to {page}:")
            print(figures.render(figures.ROWS[name](result)) + "\n", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.name == "report":
        print(f"rewrote {report.render(args.out)}")
    else:
        names = list(BENCHES) if args.name == "all" else [args.name]
        run(names, args, short=args.name == "all")
    if args.name in ("all", "report"):
        print(f"capacity model written to {scaling.write(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
