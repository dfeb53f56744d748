"""One PNG per benchmark (matplotlib, Agg), each readable at a glance: ours beside the baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

OURS, BASE, FLOOR, TARGET, BAD = "#1f77b4", "#9e9e9e", "#2ca02c", "#d62728", "#d62728"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _duration(seconds: float) -> str:
    return f"{seconds:.3g} s" if seconds >= 1 else f"{seconds * 1000:.3g} ms"


def latency(result: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    rate = result["params"]["rate"]
    for ax, (kind, title) in zip(
        axes, (("status", "/protocol status"), ("reply", "thread reply")), strict=True
    ):
        data = result["latency"][kind]
        xs = range(3)
        labels = ("p50", "p99", "max")
        shown = [("baseline", BASE), ("ours", OURS)]
        if "floor" in data:
            shown.append(("floor", FLOOR))
        width = 0.8 / len(shown)
        for i, (name, color) in enumerate(shown):
            offset = (i - (len(shown) - 1) / 2) * width
            values = [data[name][q] * 1000 for q in labels]
            label = "end-to-end floor" if name == "floor" else name
            ax.bar([x + offset for x in xs], values, width, label=label, color=color)
            for x, v in zip(xs, values, strict=True):
                ax.annotate(f"{v:.3g}", (x + offset, v), ha="center", va="bottom", fontsize=8)
        limit = 1.25 * data["baseline"]["p99"] * 1000
        ax.hlines(limit, 0.6, 1.4, colors=TARGET, linestyles="--", label="target p99 (1.25x)")
        ax.axhline(3000, color=TARGET, linewidth=0.8, linestyle=":", label="3 s limit")
        ax.set_xticks(list(xs), labels)
        ax.set_yscale("log")
        ax.set_title(f"{title} at {rate:g}/s")
    axes[0].set_ylabel("ack latency (ms, log)")
    axes[1].legend(fontsize=8, loc="upper left")
    fig.suptitle("Ack latency: ours beside a bare Bolt app")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def throughput(result: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    fig, (bars, ramp) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1, 2]})
    names = ["baseline\n(ack only)", "ours\n(end to end)"]
    values, colors = [result["baseline"], result["ours"]], [BASE, OURS]
    if "floor" in result:
        names.append("floor\n(end to end)")
        values.append(result["floor"])
        colors.append(FLOOR)
    base = result["baseline"]
    bars.bar(names, values, color=colors)
    bars.axhline(0.8 * base, color=TARGET, linestyle="--", label="target (0.8x baseline)")
    for x, v in enumerate(values):
        bars.annotate(f"{v:g}/s", (x, v), ha="center", va="bottom", fontsize=9)
    bars.set_ylabel("replies per second that hold")
    bars.legend(fontsize=8)
    for name, color in (("baseline", BASE), ("ours", OURS), ("floor", FLOOR)):
        steps = sorted((s for s in result["steps"] if s["target"] == name), key=lambda s: s["rate"])
        if not steps:
            continue
        rates = [s["rate"] for s in steps]
        p99 = [s["acks"]["p99"] * 1000 for s in steps]
        ramp.plot(rates, p99, "-o", color=color, label=f"{name} ack p99")
        failed = [(s["rate"], s["acks"]["p99"] * 1000) for s in steps if not s["held"]]
        if failed:
            ramp.scatter(
                *zip(*failed, strict=True),
                s=90,
                facecolors="none",
                edgecolors=BAD,
                label=f"{name}: step failed",
            )
        if name != "baseline":
            e2e = [s["end_to_end"]["p99"] * 1000 for s in steps]
            ramp.plot(rates, e2e, "--^", color=color, label=f"{name} end-to-end p99")
    ramp.axhline(3000, color=TARGET, linestyle=":", label="3 s")
    ramp.set_xscale("log")
    ramp.set_yscale("log")
    ramp.set_xlabel("offered thread replies per second (log)")
    ramp.set_ylabel("ms (log)")
    ramp.legend(fontsize=7)
    fig.suptitle("Thread replies: highest rate that holds, and the ramp")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sessions(result: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    minute, idle = result["minute"], result["idle"]
    fig, (hist, memory) = plt.subplots(1, 2, figsize=(10, 4))
    edges = [edge for edge, _ in minute["lateness_histogram"]]
    counts = [count for _, count in minute["lateness_histogram"]]
    lefts = [edges[0] / (edges[1] / edges[0])] + edges[:-1]
    widths = [r - left for left, r in zip(lefts, edges, strict=True)]
    hist.bar(lefts, counts, width=widths, align="edge", color=OURS, edgecolor="white")
    hist.axvline(1.0, color=TARGET, linestyle="--", label="target p99 < 1 s")
    hist.axvline(
        minute["lateness_p99"],
        color="black",
        linestyle=":",
        label=f"p99 {_duration(minute['lateness_p99'])}",
    )
    hist.set_xscale("log")
    hist.set_xlabel("transition lateness (s, log)")
    hist.set_ylabel("transitions")
    hist.set_title(
        f"{result['params']['sessions']:,} sessions, {result['params']['step_seconds']}-s steps"
    )
    hist.legend(fontsize=8)
    step = result["params"]["step_seconds"]
    for phase, label, color in ((idle, "1-day steps", BASE), (minute, f"{step}-s steps", OURS)):
        series = phase.get("series") or []
        if series:
            memory.plot([t for t, _ in series], [m for _, m in series], color=color, label=label)
    memory.axhline(300, color=TARGET, linestyle="--", label="target < 300 MB")
    memory.set_ylim(0, max(320, minute["rss_peak_mb"] * 1.1))
    memory.set_xlabel("seconds after ready")
    memory.set_ylabel("resident memory (MB)")
    memory.set_title("memory of the bot process")
    memory.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def coldstart(result: dict[str, Any], path: Path, loaded: dict[str, Any] | None = None) -> None:
    plt = _pyplot()
    labels = ["baseline", "ours (empty database)"]
    values = [result["baseline"]["median"], result["ours"]["median"]]
    colors = [BASE, OURS]
    if loaded is not None:
        labels.append(f"ours ({loaded['params']['sessions']:,} sessions)")
        values.append(loaded["idle"]["ready_seconds"])
        colors.append(OURS)
    fig, ax = plt.subplots(figsize=(8, 2.6))
    ax.barh(labels, values, color=colors)
    for y, v in enumerate(values):
        ax.annotate(f" {v:.2f} s", (v, y), va="center", fontsize=9)
    ax.set_xlabel("spawn to first /healthz 200 (s)")
    ax.set_title("Cold start to ready")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True
