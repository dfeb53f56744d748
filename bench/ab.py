"""python -m bench.ab NAME=TREE ...: variants of ours side by side, measured in one run.

Each TREE is a directory holding the project: a `git worktree` of another commit, or a copy with
one change. Each variant runs as `python -m bot` with its TREE first on PYTHONPATH, on a database
of its own and against a Slack stand-in of its own; the baseline (bench/bare.py) and the
end-to-end floor (bench/floor.py) run beside them. Every round sends each target the same number
of requests at the same rate, in an order that reverses every other round, so a stretch of noise
on the machine falls on all of them alike.

The table gives, per target, ack p50/p99/max, CPU per request (user + system time of the process
over its slices and a second after each, divided by its requests) and, for ours and the floor,
the time to the tag reaction (replies) or to the answer at the response_url (status). The last
column is each figure over the first variant's: a comparison read as a ratio within one run.
Nothing is written to docs/: this is for deciding between variants, not for the report.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.loadgen import Job, Result, run_in_process
from bench.measure import end_to_end, summarize
from bench.postgres import TemporaryPostgres
from bench.processes import Server, start_bare, start_floor, start_ours
from bench.stats import fmt, ratio, table
from bench.workspace import (
    arrivals,
    reply_requests,
    start_sessions,
    start_standin,
    status_requests,
)
from bot.slack_standin import SlackStandin

KINDS = ("reply", "status")


@dataclass
class Target:
    name: str
    server: Server
    standin: SlackStandin
    kind: str  # "ours", "floor" or "baseline"
    results: list[Result | None] = field(default_factory=list)
    keys: list[tuple[str, str]] = field(default_factory=list)
    cpu: float = 0.0
    made: int = 0


def run(
    ctx: Context,
    variants: list[tuple[str, Path]],
    *,
    kind: str = "reply",
    rate: float = 100.0,
    rounds: int = 6,
    seconds: float = 10.0,
    channels: int = 50,
    connections: int = 64,
) -> dict[str, dict[str, Any]]:
    """Each target gets `rounds` slices of `seconds` at `rate`; returns figures by target."""
    targets: list[Target] = []
    try:
        for name, tree in variants:
            standin = start_standin()
            targets.append(Target(name, _ours(ctx, tree, standin), standin, "ours"))
        standin = start_standin()
        floor = start_floor(ctx.workdir, standin.url, ctx.fresh_database())
        targets.append(Target("floor", floor, standin, "floor"))
        standin = start_standin()
        targets.append(
            Target("baseline", start_bare(ctx.workdir, standin.url), standin, "baseline")
        )
        # Each variant is sent replies under its own sessions' open steps; the floor and the
        # baseline, which take a reply in any thread, under the first variant's.
        threads = {
            t.name: start_sessions(t.standin, t.server.port, channels)
            for t in targets
            if t.kind == "ours"
        }
        first = threads[variants[0][0]]
        per_slice = max(1, round(rate * seconds))
        for r in range(rounds):
            for target in targets if r % 2 == 0 else targets[::-1]:
                if kind == "reply":
                    mine = threads.get(target.name, first)
                    requests, keys = reply_requests(target.standin, mine, per_slice, target.made)
                else:
                    requests, keys = status_requests(
                        target.standin, per_slice, channels, target.made
                    )
                target.made += per_slice
                ctx.say(f"  ab: round {r + 1}/{rounds}, {kind} -> {target.name}")
                before = target.server.cpu_seconds()
                target.results.extend(
                    run_in_process(
                        Job("127.0.0.1", target.server.port, requests, rate, connections)
                    )
                )
                time.sleep(1.0)  # the slice's work after the ack counts too
                target.cpu += target.server.cpu_seconds() - before
                target.keys.extend(keys)
        time.sleep(2.0)
        return {target.name: _figures(target, kind) for target in targets}
    finally:
        for target in targets:
            target.server.stop()
            target.standin.stop()


def _ours(ctx: Context, tree: Path, standin: SlackStandin) -> Server:
    return start_ours(
        ctx.workdir,
        ctx.fresh_database(migrate=False),
        standin.url,
        with_clock=ctx.production_shape,
        source=tree,
        migrate=True,
    )


def _figures(target: Target, kind: str) -> dict[str, Any]:
    acks = summarize(target.results)
    figures: dict[str, Any] = {
        "p50": acks["p50"],
        "p99": acks["p99"],
        "max": acks["max"],
        "errors": acks["errors"],
        "cpu_per_request": target.cpu / max(1, len(target.results)),
    }
    if target.kind != "baseline":
        e2e = end_to_end(target.results, target.keys, arrivals(target.standin, kind))
        figures.update(
            e2e_p50=e2e["p50"], e2e_p99=e2e["p99"], completed=e2e["completed"], count=e2e["count"]
        )
    return figures


def render(figures: dict[str, dict[str, Any]], kind: str) -> str:
    first = next(iter(figures.values()))
    then = "tag reaction" if kind == "reply" else "answer"
    rows = []
    for name, f in figures.items():
        rows.append(
            [
                name,
                _ms(f["p50"]),
                _ms(f["p99"]),
                _ms(f["max"]),
                _ms(f["cpu_per_request"]),
                _ms(f["e2e_p50"]) + " / " + _ms(f["e2e_p99"]) if "e2e_p50" in f else "",
                f"{f['completed']}/{f['count']}" if "completed" in f else "",
                f["errors"],
                f"p99 {fmt(ratio(f['p99'], first['p99']), 'x')}, "
                f"CPU {fmt(ratio(f['cpu_per_request'], first['cpu_per_request']), 'x')}",
            ]
        )
    headers = (
        "target",
        "ack p50",
        "ack p99",
        "ack max",
        "CPU per request",
        f"to the {then} p50 / p99",
        "done",
        "errors",
        "over the first",
    )
    return table(headers, rows)


def _ms(seconds: float) -> str:
    return fmt(seconds * 1000, " ms")


def _variant(text: str) -> tuple[str, Path]:
    name, _, tree = text.partition("=")
    path = Path(tree).expanduser().resolve()
    if not name or not tree or not (path / "bot" / "__main__.py").is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: want NAME=DIR, where DIR/bot is the app")
    return name, path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n")[0])
    p.add_argument("variants", nargs="+", type=_variant, metavar="NAME=DIR")
    p.add_argument("--kind", choices=KINDS, default="reply")
    p.add_argument("--rate", type=float, default=100.0, help="requests per second")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each slice")
    p.add_argument("--channels", type=int, default=50, help="running sessions per variant")
    db = p.add_mutually_exclusive_group()
    db.add_argument("--database-url", help="a PostgreSQL server URL to create databases on")
    db.add_argument("--postgres", action="store_true", help="start a throwaway PostgreSQL")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    names = [name for name, _ in args.variants]
    if len(set(names)) != len(names) or {"floor", "baseline"} & set(names):
        print("python -m bench.ab: give each variant its own name (not floor or baseline)")
        return 2
    with TemporaryPostgres.maybe(args.postgres) as started_url:
        ctx = Context(postgres_admin_url=started_url or args.database_url, quiet=args.quiet)
        try:
            ctx.say(
                f"ab: {', '.join(names)} on {ctx.database_kind}, {args.kind} at {args.rate:g}/s"
            )
            figures = run(
                ctx,
                args.variants,
                kind=args.kind,
                rate=args.rate,
                rounds=args.rounds,
                seconds=args.seconds,
                channels=args.channels,
            )
        finally:
            ctx.close()
    print(render(figures, args.kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())
