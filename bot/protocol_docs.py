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
        "To add one of your own, see [Writing your own protocol](#writing-your-own-protocol).",
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
    lines += ["", *_WRITING]
    return "\n".join(lines) + "\n"


_WRITING = """\
## Writing your own protocol

1. Make a folder for your protocols, say `/srv/protocolbot/protocols`, and write one file per
   protocol in it, named after its id: `peer-feedback.yaml` (`.yml` works too). Copy the
   example below and change it.
2. Check it: `protocolbot protocols check /srv/protocolbot/protocols`. It checks the folder as
   the bot will load it, beside the built-in protocols, and prints one line for each problem,
   naming the file, the field and what to fix:
   `error: /srv/protocolbot/protocols/peer-feedback.yaml: steps[2].minutes: must be a whole
   number of minutes (got '10m')`. Steps are counted from 1. With no problem it says what it
   read: `8 protocols ok: 1 in /srv/protocolbot/protocols, 7 built-in`. A file not named
   after its id runs all the same: the check passes with a warning to rename it.
3. Set `PROTOCOLS_DIR=/srv/protocolbot/protocols` where the bot reads its settings, and
   restart every `serve` and `clock` process: protocols are read at start-up. A file with a
   problem is skipped (the log says why) and the other protocols run.
4. In Slack, `/protocol preview peer-feedback` shows every step, only to you.

```yaml
id: peer-feedback
name: Peer Feedback on a Draft
source: Our team's own protocol, adapted from ATLAS (NSRF)
summary: >-
  A short look at one student's draft: describe it, then say what the student might do next.
presenter_prep: standard
steps:
  - id: context
    title: The Assignment
    minutes: 5
    prompt: What was the student asked to do?
    guidance:
      - "Presenter: a very brief statement of the assignment, and the draft, name removed."
    presenter: only
    collects: note

  - id: describe
    title: Describing the Draft
    minutes: 10
    prompt: What do you see?
    guidance:
      - Say only what is in the work.
      - "If an interpretation comes to mind, start the reply with I: to park it."
    presenter: silent
    collects: observation
    everyone: true

  - id: next-steps
    title: Next Steps
    minutes: 10
    prompt: What could this student work on next?
    guidance: []
    presenter: speaks
    collects: implication
    questions:
      - What would you say to the student first?
```

| Field | Required | What it holds |
|---|---|---|
| `id` | yes | lowercase letters, digits and hyphens, starting with a letter or digit, up to \
64 characters: what people type after `/protocol start`. No two protocols may share one, and \
a built-in id (`atlas`, ...) is taken |
| `name` | yes | the title people see, one line of up to 150 characters |
| `source` | yes | where the protocol comes from, up to 300 characters |
| `summary` | yes | a few sentences shown at the top of the session, up to 1000 characters |
| `presenter_prep` | no | the reminder the presenter gets before a scheduled start: \
`standard` (work they wonder about, want to revise, or that shows a dilemma) or `equity` \
(work they wonder or are concerned about, for an equity conversation), or `none` (the same \
as leaving it out): no reminder |
| `asks_statement` | no | `false` when the steps' own words say what the presenter brings (a \
dilemma, a class set with its rubric): the first step then only calls on the presenter, with no \
request of the bot's for a very brief statement of the assignment. A statement their prep gave \
is still shown. Default `true` |
| `steps` | yes | the steps, in order, at least one |
| `steps[n].id` | yes | like the protocol's `id`; different for each step |
| `steps[n].title` | yes | one line of up to 150 characters |
| `steps[n].minutes` | yes | a whole number from 1 to 600: the step's length in a live \
session (write `10`, not `10m`) |
| `steps[n].prompt` | yes | the facilitator's question, up to 300 characters |
| `steps[n].guidance` | yes | a list of short lines, up to 200 characters each (`[]` for \
none). Quote a line that has `: ` in it |
| `steps[n].presenter` | yes | `silent` (the presenter listens: their replies become private \
notes), `speaks`, or `only` (only the presenter speaks) |
| `steps[n].collects` | yes | what a reply is recorded as: `observation`, `interpretation`, \
`implication`, `question`, `warm`, `cool`, `reflection`, `debrief` or `note` |
| `steps[n].everyone` | no | `true` when everyone should reply: members who have not get a \
private nudge before the step closes |
| `steps[n].questions` | no | questions listed under the prompt, up to 300 characters each. \
A step's prompt, guidance and questions together hold up to 5000 characters: the step is one \
Slack message |
| `steps[n].statement` | no | `true` on the one step that opens with the presenter's statement \
of the assignment from their prep, when that is not step 1 (step 1 then shows only the link to \
the work, or calls on the presenter to start). That step asks the presenter for the statement \
when their prep did not give it, so they should not be `silent` there: `protocols check` warns \
if they are |
| `steps[n].template` | no | a template in `messages/` to post the step with instead of \
`step.j2`. It is rendered again to edit the message as the step moves: `closes_at` is the close \
time while it runs, `paused_remaining` the seconds left while paused (else none), `closed_at` \
when it closed (else none) |
""".splitlines()


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
