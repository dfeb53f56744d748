"""10,000 concurrent running sessions: idle on 1-day steps, then on 60-second steps.

The first 200 sessions are started through the engine, as `/protocol start` would start them; the
rest copy their rows for other channels, all in one database. Their first posts are marked sent,
since a steady state has no start-up backlog. Phase one runs the bot (`python -m bot`, its own
process) on 1-day steps, mostly idle: memory, CPU, and cold start with every session's timer to
restore. Phase two moves every session to 60-second steps whose closes are spread evenly over one
minute, restarts the bot, and lets its real scheduler run: each transition's lateness is when its
step was committed (the outbox row) less when the schedule said; a missed transition is one due in
the run that never happened, a duplicate is a step opened or posted twice.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from bench.context import Context
from bench.processes import start_ours
from bench.profiling import recording
from bench.signing import FACILITATOR, PRESENTER, SECRET, TEAM, TOKEN
from bench.stats import percentile
from bench.workspace import channel_name, start_standin
from bot.engine.core import Actor
from bot.protocols import load_library
from bot.runtime import Runtime
from bot.settings import Settings
from bot.store.db import Database
from bot.store.models import OutboxMessage, ProtocolSession, StepRun

PROTOCOL = "atlas"
TARGET_LATENESS_P99, TARGET_RSS_MB = 1.0, 300.0
MB = 1024 * 1024


# Sessions started through the engine; the rest are copies of their rows (see create_sessions).
ENGINE_STARTS = 200


def create_sessions(
    database_url: str,
    slack_api_url: str,
    count: int,
    step: int,
    engine_starts: int = ENGINE_STARTS,
) -> float:
    """`count` running sessions in distinct channels; returns seconds taken.

    The first `engine_starts` are started through the engine, as `/protocol start` would start them.
    The rest are copies of those rows (the session, its open step, its posts) for other channels,
    written in bulk: the rows the engine writes, in seconds rather than the minutes that 10,000
    starts take (8 ms of CPU each), which were a quarter of `bench all`.
    """
    settings = Settings(
        slack_bot_token=TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=slack_api_url,
        database_url=database_url,
    )
    runtime = Runtime(settings, with_scheduler=False)

    def start(i: int) -> None:
        runtime.engine.start(
            Actor(TEAM, FACILITATOR, channel_name(i)),
            protocol_id=PROTOCOL,
            presenter=PRESENTER,
            step_seconds=step,
        )

    started = time.perf_counter()
    # Each start mostly waits on the server's answers: on PostgreSQL four at a time made 1,000
    # in 4.6 s against 6.4 s one by one (one SQLite file takes one writer: there, one by one).
    workers = 4 if runtime.db.is_postgres else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(start, range(min(count, engine_starts))))  # raises what a start raised
    _copy_sessions(runtime.db, count)
    took = time.perf_counter() - started
    with runtime.db.session() as s:
        now = datetime.now(UTC)
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .values(status="sent", sent_at=now)
        )
    if runtime.db.is_postgres:
        # Rows loaded in bulk, as after a restore: until autovacuum gets to them the planner has
        # no statistics, and read the outbox by its ref with a parallel scan of the whole table
        # (58 ms a round against 0.7 ms by the index, once analyzed), every round of the run.
        with runtime.db.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    runtime.db.dispose()
    return took


def _copy_sessions(db: Database, count: int) -> None:
    """Sessions for the channels after the engine's, up to `count`: each copies the rows of one
    the engine made, with the channel and the session id (in refs like `step:<id>:1`) changed."""
    sessions_t, steps_t, outbox_t = (
        ProtocolSession.__table__,
        StepRun.__table__,
        OutboxMessage.__table__,
    )
    with db.session() as s:
        made = s.execute(select(sessions_t).order_by(sessions_t.c.id)).mappings().all()
        if not made or count <= len(made):
            return
        steps: dict[int, list[Any]] = defaultdict(list)
        for row in s.execute(select(steps_t)).mappings():
            steps[row["session_id"]].append(row)
        posts: dict[str, list[Any]] = defaultdict(list)
        for row in s.execute(select(outbox_t)).mappings():
            posts[row["channel_id"]].append(row)
        next_id = max(row["id"] for row in made) + 1
        batch = 1000
        for first in range(len(made), count, batch):
            new_sessions, new_steps, new_posts = [], [], []
            for i in range(first, min(count, first + batch)):
                template = made[i % len(made)]
                old_channel, new_channel = template["channel_id"], channel_name(i)
                old_id, new_id = template["id"], next_id
                next_id += 1
                new_sessions.append({**template, "id": new_id, "channel_id": new_channel})
                new_steps += [{**_without_id(row), "session_id": new_id} for row in steps[old_id]]
                for row in posts[old_channel]:
                    payload = json.loads(
                        json.dumps(row["payload"]).replace(f'"{old_channel}"', f'"{new_channel}"')
                    )
                    new_posts.append(
                        {
                            **_without_id(row),
                            "channel_id": new_channel,
                            "payload": payload,
                            "ref": _renumber(row["ref"], old_id, new_id),
                            "thread_ref": _renumber(row["thread_ref"], old_id, new_id),
                        }
                    )
            s.execute(insert(sessions_t), new_sessions)
            s.execute(insert(steps_t), new_steps)
            s.execute(insert(outbox_t), new_posts)
        if db.is_postgres:  # ids were given: the sequence continues after them
            s.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('sessions', 'id'), max(id)) FROM sessions"
                )
            )


def _without_id(row: Any) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != "id"}


def _renumber(ref: str | None, old_id: int, new_id: int) -> str | None:
    """`header:<old_id>` or `step:<old_id>:2` for the copy's session."""
    if ref is None:
        return None
    return re.sub(rf"^([a-z_]+):{old_id}(?=:|$)", rf"\g<1>:{new_id}", ref)


def respread(database_url: str, count: int, step: int, first_close: datetime) -> None:
    """Every session on `step`-second steps, step 1 closing evenly over [first_close, +step)."""
    db = Database(database_url)
    with db.session() as s:
        ids = s.scalars(select(ProtocolSession.id).order_by(ProtocolSession.id)).all()
        closes = {
            sid: first_close + timedelta(seconds=step * i / count) for i, sid in enumerate(ids)
        }
        s.execute(
            update(ProtocolSession),
            [{"id": sid, "step_seconds": step, "step_closes_at": at} for sid, at in closes.items()],
        )
        runs = s.execute(select(StepRun.id, StepRun.session_id).where(StepRun.index == 1)).all()
        s.execute(
            update(StepRun),
            [
                {
                    "id": run_id,
                    "closes_at": closes[sid],
                    "started_at": closes[sid] - timedelta(seconds=step),
                }
                for run_id, sid in runs
            ],
        )
    db.dispose()


def _memory(samples: list[tuple[float, int, float]]) -> dict[str, Any]:
    if not samples:
        return {"rss_peak_mb": 0.0, "rss_final_mb": 0.0, "cpu_percent": 0.0, "series": []}
    (t0, _, c0), (t1, _, c1) = samples[0], samples[-1]
    return {
        "rss_peak_mb": max(rss for _, rss, _ in samples) / MB,
        "rss_final_mb": samples[-1][1] / MB,
        "cpu_percent": 100 * (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0,
        "series": [(round(t - t0, 2), round(rss / MB, 1)) for t, rss, _ in samples],
    }


def _transitions(
    database_url: str, steps: int
) -> tuple[dict[tuple[int, int], datetime], dict[tuple[int, int], datetime], Counter[str], dict]:
    """Planned and actual times of each boundary (session, k): step k closing."""
    db = Database(database_url)
    with db.session() as s:
        runs = s.execute(select(StepRun.session_id, StepRun.index, StepRun.closes_at)).all()
        planned = {(sid, index): closes for sid, index, closes in runs}
        rows = s.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.ref,
                OutboxMessage.thread_ref,
                OutboxMessage.created_at,
            )
        ).all()
        refs = Counter(ref for _, ref, _, _ in rows if ref and ref.startswith("step:"))
        ended = dict(
            s.execute(
                select(ProtocolSession.id, ProtocolSession.ended_at).where(
                    ProtocolSession.status == "ended"
                )
            ).all()
        )
    db.dispose()
    actual: dict[tuple[int, int], datetime] = {}
    ids: dict[int, tuple[int, int]] = {}
    for row_id, ref, thread_ref, created in rows:
        if ref and ref.startswith("step:"):
            _, sid, index = ref.split(":")
            if int(index) > 1:
                key = (int(sid), int(index) - 1)
                actual[key] = min(created, actual.get(key, created))
                ids[row_id] = key
        elif thread_ref and thread_ref.startswith("header:") and int(thread_ref[7:]) in ended:
            key = (int(thread_ref[7:]), steps)
            actual[key] = min(created, actual.get(key, created))
    return planned, actual, refs, ids


def _minute_phase(
    ctx: Context,
    standin: Any,
    url: str,
    count: int,
    step: int,
    run_seconds: float,
    lead: float,
    warmup: float,
    drain: float,
) -> dict[str, Any]:
    first_close = datetime.now(UTC) + timedelta(seconds=lead)
    respread(url, count, step, first_close)
    standin_start = len(standin.calls)
    bot = start_ours(ctx.workdir, url, standin.url)
    ready = datetime.now(UTC)
    try:
        bot.sample_every(1.0)
        ctx.say(
            f"  sessions: {count} on {step}s steps, ready in {bot.ready_seconds:.1f}s; "
            f"running {run_seconds:g}s"
        )
        with recording(bot.pid, ctx.profile, "sessions-minute", url):
            time.sleep(run_seconds)
        window_end = datetime.now(UTC)
        db = Database(url)
        steps = 0
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline:
            with db.session() as s:
                steps = s.scalar(select(func.count()).select_from(StepRun)) or 0
                due = (
                    s.scalar(
                        select(func.count())
                        .select_from(ProtocolSession)
                        .where(
                            ProtocolSession.status == "running",
                            ProtocolSession.step_closes_at <= window_end,
                        )
                    )
                    or 0
                )
            if due == 0:
                break
            time.sleep(1.0)
        db.dispose()
        drained = datetime.now(UTC)
        ctx.say(f"  sessions: drained ({due} still due)")
        time.sleep(2.0)  # posts of the last transitions reach the stand-in
        bot.sample()
        memory = _memory(bot.samples)
        ready_seconds = bot.ready_seconds
    finally:
        bot.stop()
    ctx.say("  sessions: stopped; reading the transitions")
    protocol_steps = len(load_library()[0][PROTOCOL].steps)
    planned, actual, refs, ids = _transitions(url, protocol_steps)
    done = [at for at in actual.values() if ready <= at <= drained]
    achieved = len(done) / max(1e-9, (drained - ready).total_seconds())
    lateness, missed, before_ready = [], 0, 0
    for key, at in planned.items():
        if at > window_end or at < first_close:
            continue
        if key not in actual:
            missed += 1
            continue
        if at < ready + timedelta(seconds=warmup):
            before_ready += 1
            continue
        lateness.append((actual[key] - at).total_seconds())
    posted: dict[tuple[int, int], float] = {}
    post_counts: Counter[int] = Counter()
    per_channel: dict[str, list[float]] = defaultdict(list)
    for call in standin.calls[standin_start:]:
        if call.method != "chat.postMessage" or not call.response.get("ok"):
            continue
        per_channel[str(call.response.get("channel"))].append(call.at)
        outbox_id = ((call.params.get("metadata") or {}).get("event_payload") or {}).get(
            "outbox_id"
        )
        if isinstance(outbox_id, int) and outbox_id in ids:
            post_counts[outbox_id] += 1
            key = ids[outbox_id]
            posted.setdefault(key, call.at)
    post_lateness = [
        at - planned[key].timestamp()
        for key, at in posted.items()
        if key in planned and planned[key] >= ready + timedelta(seconds=warmup)
    ]
    return {
        "ready_seconds": ready_seconds,
        "transitions": len(lateness),
        "achieved_per_second": achieved,
        "lateness_p50": percentile(lateness, 50),
        "lateness_p99": percentile(lateness, 99),
        "lateness_max": max(lateness, default=float("nan")),
        "post_lateness_p50": percentile(post_lateness, 50),
        "post_lateness_p99": percentile(post_lateness, 99),
        "post_lateness_max": max(post_lateness, default=float("nan")),
        "missed": missed,
        "duplicated_steps": sum(n - 1 for n in refs.values() if n > 1),
        "duplicated_posts": sum(n - 1 for n in post_counts.values() if n > 1),
        "before_ready": before_ready,
        "max_posts_per_channel_second": _max_per_second(per_channel),
        "step_rows": steps,
        "lateness_histogram": histogram(lateness),
        **memory,
    }


def histogram(values: list[float]) -> list[tuple[float, int]]:
    """Counts over log-spaced bins from 1 ms to 1,000 s: (upper edge in seconds, count)."""
    edges = [10 ** (e / 4) for e in range(-12, 13)]
    counts = [0] * len(edges)
    for value in values:
        i = next((i for i, edge in enumerate(edges) if value <= edge), len(edges) - 1)
        counts[i] += 1
    return list(zip(edges, counts, strict=True))


def database_size(database_url: str) -> dict[str, Any]:
    """Rows per table and bytes on disk, for the capacity model's bytes per row."""
    db = Database(database_url)
    tables = ("sessions", "session_steps", "outbox", "inbox", "contributions")
    rows: dict[str, int] = {}
    with db.engine.connect() as conn:
        for table in tables:
            try:
                rows[table] = int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)
            except SQLAlchemyError:
                conn.rollback()
        if db.is_postgres:
            size = int(
                conn.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0
            )
        else:
            # The main file plus its write-ahead log: what the rows take on disk right now.
            path = Path(database_url.removeprefix("sqlite:///"))
            size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    db.dispose()
    return {"rows": rows, "bytes": size}


def _max_per_second(per_channel: dict[str, list[float]]) -> int:
    """The most posts any channel got within one second."""
    most = 0
    for times in per_channel.values():
        times.sort()
        lo = 0
        for hi, at in enumerate(times):
            while at - times[lo] >= 1.0:
                lo += 1
            most = max(most, hi - lo + 1)
    return most


def run(
    ctx: Context,
    *,
    sessions: int = 10_000,
    step_seconds: int = 60,
    run_seconds: float = 150.0,
    idle_seconds: float = 30.0,
    warmup: float = 5.0,
    drain: float = 30.0,
    engine_starts: int = ENGINE_STARTS,
) -> dict[str, Any]:
    standin = start_standin()
    try:
        url = ctx.fresh_database()
        ctx.say(
            f"  sessions: creating {sessions}, {min(sessions, engine_starts)} through the engine"
        )
        create_seconds = create_sessions(url, standin.url, sessions, 86_400, engine_starts)
        bot = start_ours(ctx.workdir, url, standin.url)
        try:
            ctx.say(
                f"  sessions: {sessions} on 1-day steps, ready in {bot.ready_seconds:.1f}s; "
                f"idle {idle_seconds:g}s"
            )
            bot.sample_every(1.0)
            time.sleep(idle_seconds)
            bot.sample()
            idle = {"ready_seconds": bot.ready_seconds, **_memory(bot.samples)}
        finally:
            bot.stop()
        lead = max(5.0, 1.5 * bot.ready_seconds + 3.0)
        minute = _minute_phase(
            ctx, standin, url, sessions, step_seconds, run_seconds, lead, warmup, drain
        )
        return {
            "params": {
                "drain": drain,
                "sessions": sessions,
                "engine_starts": min(sessions, engine_starts),
                "step_seconds": step_seconds,
                "run_seconds": run_seconds,
                "idle_seconds": idle_seconds,
                "protocol": PROTOCOL,
            },
            "create_seconds": create_seconds,
            "database": database_size(url),
            "idle": idle,
            "minute": minute,
        }
    finally:
        standin.stop()
