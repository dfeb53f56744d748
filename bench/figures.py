"""Each benchmark's figures as rows: measure, ours, baseline, ratio, target, and whether met."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.stats import fmt, ratio, table


@dataclass(frozen=True)
class Row:
    measure: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: no target

    def cells(self) -> list[str]:
        verdict = "" if self.met is None else ("yes" if self.met else "**no**")
        return [self.measure, self.ours, self.baseline, self.ratio, self.target, verdict]


HEADERS = ("measure", "ours", "baseline", "ours/baseline", "target", "met")


def render(rows: list[Row]) -> str:
    return table(HEADERS, [row.cells() for row in rows])


def ms(seconds: float) -> str:
    return fmt(seconds * 1000, " ms")


def _x(value: float) -> str:
    return fmt(value, "x")


def latency_rows(result: dict[str, Any]) -> list[Row]:
    rows = []
    rate = result["params"]["rate"]
    for kind, label in (("status", "`/protocol status`"), ("reply", "thread reply")):
        ours, base = result["latency"][kind]["ours"], result["latency"][kind]["baseline"]
        p99 = ratio(ours["p99"], base["p99"])
        rows += [
            Row(
                f"{label} ack p50 at {rate:g}/s",
                ms(ours["p50"]),
                ms(base["p50"]),
                _x(ratio(ours["p50"], base["p50"])),
                "",
                None,
            ),
            Row(
                f"{label} ack p99 at {rate:g}/s",
                ms(ours["p99"]),
                ms(base["p99"]),
                _x(p99),
                "<= 1.25x",
                p99 <= 1.25,
            ),
            Row(
                f"{label} ack max",
                ms(ours["max"]),
                ms(base["max"]),
                _x(ratio(ours["max"], base["max"])),
                "<= 3 s",
                ours["max"] <= 3.0,
            ),
            Row(
                f"{label} errors (non-200 or unanswered)",
                fmt(ours["errors"]),
                fmt(base["errors"]),
                "",
                "0",
                ours["errors"] == 0,
            ),
        ]
    for kind, label in (("status", "`/protocol status`"), ("reply", "thread reply")):
        floor = result["latency"][kind].get("floor")
        if floor is None:  # figures from before the floor answered status
            continue
        base = result["latency"][kind]["baseline"]
        rows.append(
            Row(
                f"end-to-end floor: {label} ack p50 / p99 at {rate:g}/s (baseline's p99)",
                f"{ms(floor['p50'])} / {ms(floor['p99'])}",
                ms(base["p99"]),
                _x(ratio(floor["p99"], base["p99"])),
                "",
                None,
            )
        )
    lag = [
        result["latency"][k][t]["generator_lag_p99"]
        for k in ("status", "reply")
        for t in ("ours", "baseline")
    ]
    rows.append(
        Row(
            "load generator lag p99 (due to sent; small = not the bottleneck)",
            ms(max(lag[0], lag[1])),
            ms(max(lag[2], lag[3])),
            "",
            "",
            None,
        )
    )
    ends = (
        ("status_end_to_end", "`/protocol status` answer at the stand-in"),
        ("floor_status_end_to_end", "end-to-end floor: `/protocol status` to its answer"),
        ("reply_end_to_end", "thread reply end to end (tag reaction at the stand-in)"),
        ("floor_reply_end_to_end", "end-to-end floor: thread reply to its reaction"),
    )
    for key, label in ends:
        e2e = result.get(key)
        if e2e is None:  # figures from before answers came after the ack
            continue
        rows.append(
            Row(
                f"{label} p50 / p99 at {rate:g}/s",
                f"{ms(e2e['p50'])} / {ms(e2e['p99'])} ({e2e['completed']}/{e2e['count']})",
                "",
                "",
                "",
                None,
            )
        )
    return rows


def throughput_rows(result: dict[str, Any]) -> list[Row]:
    ours, base = result["ours"], result["baseline"]
    r = ratio(ours, base)
    capped = " (ramp ceiling)" if result.get("baseline_capped") else ""
    rows = [
        Row(
            "thread replies/s that hold (ours end to end, baseline ack)",
            fmt(ours, "/s"),
            fmt(base, "/s") + capped,
            _x(r),
            ">= 0.8x",
            r >= 0.8,
        ),
    ]
    if "floor" in result:
        rows += [
            Row(
                "end-to-end floor: thread replies/s that hold (baseline ack)",
                fmt(result["floor"], "/s"),
                fmt(base, "/s") + capped,
                _x(ratio(result["floor"], base)),
                "",
                None,
            ),
            Row(
                "ours over the end-to-end floor (replies/s that hold)",
                fmt(ours, "/s"),
                fmt(result["floor"], "/s"),
                _x(ratio(ours, result["floor"])),
                "",
                None,
            ),
        ]
    cpu = {name: _cpu_at_best(result, name) for name in ("ours", "baseline", "floor")}
    if cpu["ours"] and cpu["baseline"]:
        rows.append(
            Row(
                "server CPU per request at its highest held rate (ours end to end, baseline ack)",
                f"{cpu['ours']:.2f} ms",
                f"{cpu['baseline']:.2f} ms",
                _x(cpu["ours"] / cpu["baseline"]),
                "",
                None,
            )
        )
        if cpu["floor"]:
            rows.append(
                Row(
                    "end-to-end floor: server CPU per reply at its highest held rate",
                    f"{cpu['floor']:.2f} ms",
                    f"{cpu['baseline']:.2f} ms",
                    _x(cpu["floor"] / cpu["baseline"]),
                    "",
                    None,
                )
            )
        rows.append(
            Row(
                "highest ratio one interpreter allows (baseline CPU / ours CPU per request)",
                _x(cpu["baseline"] / cpu["ours"]),
                "",
                "",
                ">= 0.8x",
                cpu["baseline"] / cpu["ours"] >= 0.8,
            )
        )
    return rows


def _cpu_at_best(result: dict[str, Any], name: str) -> float | None:
    held = [
        s
        for s in result.get("steps", [])
        if s["target"] == name and s["held"] and "cpu_ms_per_request" in s
    ]
    return max(held, key=lambda s: s["rate"])["cpu_ms_per_request"] if held else None


def sessions_rows(result: dict[str, Any]) -> list[Row]:
    n = result["params"]["sessions"]
    idle, minute = result["idle"], result["minute"]
    step = result["params"]["step_seconds"]
    drain = result["params"].get("drain", 30)
    lateness_ok = minute["lateness_p99"] < 1.0
    return [
        Row(
            f"{n:,} sessions, {step}-s steps: transitions measured",
            fmt(minute["transitions"]),
            "",
            "",
            "",
            None,
        ),
        Row(
            "transition lateness p50 / p99",
            f"{ms(minute['lateness_p50'])} / {ms(minute['lateness_p99'])}",
            "",
            "",
            "p99 < 1 s",
            lateness_ok,
        ),
        Row("transition lateness max", ms(minute["lateness_max"]), "", "", "", None),
        Row(
            "step post at Slack, lateness p50 / p99",
            f"{ms(minute['post_lateness_p50'])} / {ms(minute['post_lateness_p99'])}",
            "",
            "",
            "",
            None,
        ),
        Row(
            f"missed transitions (due in the run, not done {drain:g} s after it)",
            fmt(minute["missed"]),
            "",
            "",
            "0",
            minute["missed"] == 0,
        ),
        Row(
            "duplicated steps / posts",
            f"{minute['duplicated_steps']} / {minute['duplicated_posts']}",
            "",
            "",
            "0",
            minute["duplicated_steps"] == 0 and minute["duplicated_posts"] == 0,
        ),
        Row(
            "most posts to one channel in 1 s",
            fmt(minute["max_posts_per_channel_second"]),
            "",
            "",
            "about 1",
            minute["max_posts_per_channel_second"] <= 3,
        ),
        Row(
            f"resident memory, {step}-s steps (peak)",
            fmt(minute["rss_peak_mb"], " MB"),
            "",
            "",
            "< 300 MB",
            minute["rss_peak_mb"] < 300,
        ),
        Row(f"CPU, {step}-s steps", fmt(minute["cpu_percent"], " %"), "", "", "", None),
        Row(
            f"{n:,} sessions, 1-day steps: resident memory (peak)",
            fmt(idle["rss_peak_mb"], " MB"),
            "",
            "",
            "< 300 MB",
            idle["rss_peak_mb"] < 300,
        ),
        Row("1-day steps: CPU while idle", fmt(idle["cpu_percent"], " %"), "", "", "", None),
        Row(
            f"cold start to ready with {n:,} sessions",
            fmt(idle["ready_seconds"], " s"),
            "",
            "",
            "",
            None,
        ),
    ]


def coldstart_rows(result: dict[str, Any]) -> list[Row]:
    ours, base = result["ours"], result["baseline"]
    return [
        Row(
            "cold start to ready (median)",
            fmt(ours["median"], " s"),
            fmt(base["median"], " s"),
            _x(ratio(ours["median"], base["median"])),
            "",
            None,
        ),
        Row(
            "resident memory at ready",
            fmt(ours["rss_mb"], " MB"),
            fmt(base["rss_mb"], " MB"),
            _x(ratio(ours["rss_mb"], base["rss_mb"])),
            "",
            None,
        ),
    ]


ROWS = {
    "latency": latency_rows,
    "throughput": throughput_rows,
    "sessions": sessions_rows,
    "coldstart": coldstart_rows,
}


def ramp_table(result: dict[str, Any]) -> str:
    """Every step of the ramp, in the order it ran."""
    rows = []
    for step in result["steps"]:
        acks, e2e = step["acks"], step.get("end_to_end")
        rows.append(
            [
                step["target"],
                fmt(step["rate"], "/s"),
                ms(acks["p99"]),
                ms(acks["max"]),
                fmt(acks["errors"]),
                ms(acks["generator_lag_p99"]),
                "" if e2e is None else f"{ms(e2e['p99'])} ({e2e['completed']}/{e2e['count']})",
                "yes" if step["held"] else "**no**",
            ]
        )
    headers = (
        "target",
        "offered",
        "ack p99",
        "ack max",
        "errors",
        "generator lag p99",
        "end to end p99 (tagged)",
        "held",
    )
    return table(headers, rows)


def roles_table(result: dict[str, Any]) -> str | None:
    """CPU per reply by the job of each thread, for ours and the floor at the highest rate ours
    held (the floor's ramp starts there); None for a run without the breakdown."""
    rate = result["ours"]
    found = {
        step["target"]: step["cpu_us_by_role"]
        for step in result["steps"]
        if step["rate"] == rate and step["target"] in ("ours", "floor") and "cpu_us_by_role" in step
    }
    if "ours" not in found:
        return None
    ours, floor = found["ours"], found.get("floor", {})
    roles = list(ours) + [name for name in floor if name not in ours]
    rows = [[name, _us(ours.get(name)), _us(floor.get(name)) if floor else ""] for name in roles]
    rows.append(
        [
            "**all threads**",
            _us(sum(ours.values())),
            _us(sum(floor.values())) if floor else "",
        ]
    )
    return f"CPU per reply by thread at {fmt(rate, '/s')}:\n\n" + table(
        ("thread's job", "ours", "end-to-end floor"), rows
    )


def _us(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f} us"
