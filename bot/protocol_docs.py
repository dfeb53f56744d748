"""Generate docs/protocols.md from protocols/*.yaml: a table and a Mermaid diagram per protocol."""

from __future__ import annotations

from collections.abc import Mapping

from bot.protocols import BUILTIN_DIR, Protocol, Step

DOCS_PATH = BUILTIN_DIR.parent / "docs" / "protocols.md"

_WHO_SPEAKS = {
    "silent": "group; presenter silent",
    "speaks": "group and presenter",
    "only": "presenter only",
}
_STYLES = (
    ("silent", "stroke-dasharray: 5 5", "Dashed: the presenter is silent."),
    ("only", "stroke-width:3px", "Thick border: only the presenter speaks."),
)
_PREP = {
    "standard": "standard reminder (seeds/000)",
    "equity": "equity reminder (seeds/002)",
    None: "none",
}


def render_docs(library: Mapping[str, Protocol]) -> str:
    """The whole of docs/protocols.md for these protocols, in the library's order."""
    lines = [
        "# Protocols",
        "",
        "<!-- Generated from protocols/*.yaml by `protocolbot protocols docs`. Do not edit. -->",
        "",
        "The protocols protocolbot runs out of the box. Minutes are those of a live meeting;",
        "`/protocol start ... step 1d` stretches every step for a team that meets asynchronously.",
        "",
        "| Protocol | Steps | Live minutes |",
        "|---|---:|---:|",
    ]
    for protocol in library.values():
        anchor = _anchor(protocol)
        row = f"[{_cell(protocol.name)}](#{anchor})"
        lines.append(f"| {row} | {len(protocol.steps)} | {protocol.live_minutes} |")
    for protocol in library.values():
        lines += ["", *_section(protocol)]
    return "\n".join(lines) + "\n"


def _section(protocol: Protocol) -> list[str]:
    lines = [
        f"## {protocol.name} (`{protocol.id}`)",
        "",
        protocol.summary,
        "",
        f"- **Source:** {protocol.source}",
        f"- **Presenter prep:** {_PREP[protocol.presenter_prep]}",
        f"- **Live meeting:** {protocol.live_minutes} minutes in {len(protocol.steps)} steps",
        "",
        "| # | Step | Facilitator question | Who speaks | Minutes | Collects |",
        "|---:|---|---|---|---:|---|",
    ]
    for n, step in enumerate(protocol.steps, 1):
        who = _WHO_SPEAKS[step.presenter] + ("; everyone replies" if step.everyone else "")
        cells = [str(n), step.title, step.prompt, who, str(step.minutes), step.collects]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return [*lines, "", *_diagram(protocol.steps)]


def _diagram(steps: tuple[Step, ...]) -> list[str]:
    lines = ["```mermaid", "flowchart TD"]
    for n, step in enumerate(steps, 1):
        label = f"{n}. {step.title}<br/>{step.minutes} min, {_WHO_SPEAKS[step.presenter]}"
        lines.append(f'    s{n}["{_mermaid(label)}"]')
    lines.append("    " + " --> ".join(f"s{n}" for n in range(1, len(steps) + 1)))
    legend = []
    for mode, style, meaning in _STYLES:
        nodes = [f"s{n}" for n, step in enumerate(steps, 1) if step.presenter == mode]
        if nodes:
            lines += [f"    classDef {mode} {style}", f"    class {','.join(nodes)} {mode}"]
            legend.append(meaning)
    lines.append("```")
    return [*lines, "", " ".join(legend)] if legend else lines


def _anchor(protocol: Protocol) -> str:
    """GitHub's heading anchor for the section heading `name (`id`)`."""
    heading = f"{protocol.name} {protocol.id}".lower()
    return "".join(c for c in heading.replace(" ", "-") if c.isalnum() or c in "-_")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _mermaid(text: str) -> str:
    return text.replace('"', "#quot;")


if __name__ == "__main__":
    from bot.cli import main

    raise SystemExit(main(["protocols", "docs"]))
