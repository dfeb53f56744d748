"""Turn a rendered message template into Slack text plus Block Kit, as plain dicts.

A template writes plain lines under directives, so every word stays in messages/:

    :: text              the notification fallback (defaults to the first section)
    :: header            plain-text header (Slack allows 150 characters)
    :: section           mrkdwn section (long ones are split at line breaks)
    :: context           a small mrkdwn line (long ones are split, as sections are)
    :: divider
    :: button ACTION_ID [primary|danger] [value=VALUE]   the next line is its label

The blocks are the dicts slack_sdk's models would give (tests/test_templates.py checks every
template's blocks against them); building them directly costs a tenth as much, and the clock
renders ~170 step messages a second at 10,000 sessions.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from bot.render import render_text

SECTION_LIMIT = 3000
HEADER_LIMIT = 150
TEXT_LIMIT = 3000
MAX_BLOCKS = 50
# What one message's blocks may weigh (their dicts as text): chat.postMessage, and a
# response_url, refuse blocks past about 13,000 characters of text all told
# (msg_blocks_too_long), each block within its own limit or not.
MESSAGE_CHARS = 11_000
BUTTON_LIMIT = 75
Block = dict[str, Any]


@dataclass(frozen=True)
class Message:
    text: str
    blocks: list[dict[str, Any]]


def _split(text: str, limit: int) -> list[str]:
    """A long section as parts within `limit`. A part ends at a line break outside a code block
    (a reply may hold one): Slack reads each block on its own, and a block cut inside one shows
    its ``` as text, and the next shows all that follows, mentions and bullets, as code. A code
    block too long for one part is closed where it is cut and opened again in the next."""
    parts: list[str] = []
    while len(text) > limit:
        fences = _fences(text)
        cut = _cut(text, limit, fences)
        part, text = text[:cut].rstrip(), text[cut:].lstrip("\n")
        if bisect_left(fences, cut) % 2:
            part, text = f"{part}\n{_FENCE}", f"{_FENCE}\n{text}"
        if part.strip():
            parts.append(part)
    if text.strip():
        parts.append(text)
    return parts


_FENCE = "```"


def _fences(text: str) -> list[int]:
    """Where code blocks open and close. With an odd count the last ``` has no partner: Slack
    shows it as typed, and it opens nothing."""
    found = [m.start() for m in re.finditer(_FENCE, text)]
    return found[: len(found) // 2 * 2]


def _cut(text: str, limit: int, fences: list[int]) -> int:
    """Where the part of `text` within `limit` ends (see _split)."""
    cut = text.rfind("\n", 0, limit)
    while cut > 0 and bisect_left(fences, cut) % 2:
        cut = text.rfind("\n", 0, cut)
    if cut > 0:
        return cut
    # Inside a code block, or a line longer than a part: room to close a code block, and a cut
    # at a break outside Slack's markup (a mention, a link, a date), far enough on for the part
    # to hold more than the fence that opened it again. A word that would be cut (a long link)
    # goes whole to the next part, unless it is longer than a part itself.
    room = limit - len(_FENCE) - 1
    # Better still, a break outside a phrase marked bold, in italics, struck through or as code:
    # cut there, each part showed its half of the phrase after (or before) a stray `*`.
    marked = _MarkedPhrases(text)
    for mark in ("\n", " "):
        cut = text.rfind(mark, 0, room)
        while cut > room // 2 and (_in_markup(text, cut) or marked.holds(cut)):
            cut = text.rfind(mark, 0, cut)
        if cut > room // 2:
            return cut
    best = 0
    for mark in ("\n", " "):
        cut = text.rfind(mark, 0, room)
        while cut > 0 and _in_markup(text, cut):
            cut = text.rfind(mark, 0, cut)
        if cut > room // 2:
            return cut
        best = max(best, cut)
    if best > 2 * len(_FENCE) + 2:
        return best
    return _before_markup(text, room)


def _in_markup(text: str, at: int) -> bool:
    """Whether `at` is inside Slack's markup, `<...>` (a user's < arrives escaped: &lt;)."""
    return text.rfind("<", 0, at) > text.rfind(">", 0, at)


# Where a marked phrase may open (after a space, a bracket or a quote, or at its line's start)
# and close (before a space, a punctuation mark or its line's end), as Slack reads its markers.
_OPENS_AFTER = frozenset(" \t([{\"'")
_CLOSES_BEFORE = frozenset(" \t.,;:!?)]}\"'")
_MARKERS = "*_~`"


class _MarkedPhrases:
    """The phrases of a text marked bold (`*`), in italics (`_`), struck through (`~`) or as
    code (`` ` ``), each within its line, as Slack reads them: found a line at a time, as asked."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines: dict[int, list[tuple[int, int]]] = {}

    def holds(self, at: int) -> bool:
        """Whether `at` is inside a marked phrase (between its markers)."""
        start = self.text.rfind("\n", 0, at) + 1
        if start not in self.lines:
            end = self.text.find("\n", at)
            self.lines[start] = _phrases(self.text[start : end if end >= 0 else None])
        return any(start + a < at < start + b for a, b in self.lines[start])


def _phrases(line: str) -> list[tuple[int, int]]:
    """Where a line's marked phrases start and end (markers included). Inside code, the other
    markers are characters."""
    found: list[tuple[int, int]] = []
    opened: dict[str, int] = {}
    for i, c in enumerate(line):
        if c not in _MARKERS or ("`" in opened and c != "`"):
            continue
        before = line[i - 1] if i else " "
        after = line[i + 1] if i + 1 < len(line) else " "
        if c in opened and not before.isspace() and after in _CLOSES_BEFORE:
            found.append((opened.pop(c), i + 1))
        elif c not in opened and before in _OPENS_AFTER and not after.isspace():
            opened[c] = i
    return found


def _before_markup(text: str, at: int) -> int:
    """`at`, or the start of the markup (`<...>`) or escape (`&amp;`) it would cut in two."""
    if _in_markup(text, at) and text.rfind("<", 0, at) > 0:
        at = text.rfind("<", 0, at)
    amp = text.rfind("&", 0, at)
    if amp > 0 and at - amp < len("&amp;") and ";" not in text[amp:at]:
        at = amp
    return at


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Builder:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.fallback: str | None = None
        self.buttons: list[Block] = []
        # The heading of the section that a block goes on with, by the block's index: a part
        # of a section too long for one block, after its first.
        self.continues: dict[int, str] = {}

    def flush_buttons(self) -> None:
        if self.buttons:
            self.blocks.append({"type": "actions", "elements": self.buttons})
            self.buttons = []

    def add(self, directive: list[str], body: str) -> None:
        kind = directive[0]
        if kind != "button":
            self.flush_buttons()
        if kind == "text":
            self.fallback = body
        elif kind == "header":
            if body:
                text = _clip(" ".join(body.split()), HEADER_LIMIT)
                self.blocks.append({"type": "header", "text": _plain(text)})
        elif kind == "section":
            heading = _HEADING.match(body)
            for k, part in enumerate(_split(body, SECTION_LIMIT)):
                if k and heading:
                    self.continues[len(self.blocks)] = heading["heading"]
                self.blocks.append({"type": "section", "text": _mrkdwn(part)})
        elif kind == "context":
            # A long one (the notes' figures for the debrief, a step after another) goes on in
            # the next block rather than being cut: an element holds 3,000 characters.
            # `id=...`: its block_id, for an edit to find it (one short enough to fit a block).
            named = dict(word.split("=", 1) for word in directive[1:] if "=" in word)
            for part in _split(body, SECTION_LIMIT):
                block: Block = {"type": "context", "elements": [_mrkdwn(part)]}
                if "id" in named:
                    block["block_id"] = named["id"]
                self.blocks.append(block)
        elif kind == "divider":
            self.blocks.append({"type": "divider"})
        elif kind == "button":
            options = dict(word.split("=", 1) for word in directive[2:] if "=" in word)
            style = next((w for w in directive[2:] if w in ("primary", "danger")), None)
            button: Block = {
                "type": "button",
                "action_id": directive[1],
                "text": _plain(_clip(body, BUTTON_LIMIT)),
            }
            if style is not None:
                button["style"] = style
            if options.get("value") is not None:
                button["value"] = options["value"]
            self.buttons.append(button)
        else:
            raise ValueError(f"unknown message directive {kind!r}")


# A section's heading: a first line in bold and nothing else ("*Observations*").
_HEADING = re.compile(r"\*(?P<heading>[^*\n]+)\*\n")


def _plain(text: str) -> Block:
    return {"type": "plain_text", "text": text, "emoji": True}


def _mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": text}


def _build(rendered: str) -> _Builder:
    builder = _Builder()
    directive: list[str] | None = None
    body: list[str] = []
    # Lines end at "\n" only: str.splitlines() also ends one at a user's U+2028 or form feed.
    for line in rendered.split("\n"):
        if line.startswith(":: "):
            if directive is not None:
                builder.add(directive, "\n".join(body).strip())
            directive, body = line[3:].split(), []
        else:
            body.append(line)
    if directive is not None:
        builder.add(directive, "\n".join(body).strip())
    elif "\n".join(body).strip():
        builder.add(["section"], "\n".join(body).strip())
    builder.flush_buttons()
    return builder


def _text_of(block: Block) -> str | None:
    if block["type"] in ("section", "header"):
        return str(block["text"]["text"])
    if block["type"] == "context":
        return str(block["elements"][0]["text"])
    return None


def _message(blocks: list[Block], fallback: str | None) -> Message:
    if fallback is None:
        fallback = next((t for b in blocks if (t := _text_of(b))), "")
    return Message(text=_clip(fallback, TEXT_LIMIT), blocks=blocks)


def parse_message(rendered: str) -> Message:
    builder = _build(rendered)
    return _message(builder.blocks[:MAX_BLOCKS], builder.fallback)


def parse_messages(
    rendered: str, max_blocks: int = 40, max_chars: int = MESSAGE_CHARS
) -> list[Message]:
    """A long text (the notes) as several messages, each within Slack's block and size limits."""
    builder = _build(rendered)
    messages: list[Message] = []
    chunk: list[Block] = []
    size = 0
    fallback = builder.fallback
    for index, block in enumerate(builder.blocks):
        length = len(str(block))
        if chunk and (len(chunk) >= max_blocks or size + length > max_chars):
            messages.append(_message(chunk, fallback))
            chunk, size, fallback = [], 0, None
            if index in builder.continues:
                # A part that goes on with a section says which, as its first block.
                heading = _build(render_text("part_continued.j2", heading=builder.continues[index]))
                chunk, fallback = heading.blocks, heading.fallback
        chunk.append(block)
        size += length
    if chunk or not messages:
        messages.append(_message(chunk, fallback))
    return messages


def render_message(template: str, **context: Any) -> Message:
    return parse_message(render_text(template, **context))


def fits_one_message(template: str, **context: Any) -> bool:
    """Whether a template's blocks all fit one message: no more than MAX_BLOCKS of them
    (render_message keeps the first MAX_BLOCKS), and no more than MESSAGE_CHARS all told."""
    blocks = _build(render_text(template, **context)).blocks
    return len(blocks) <= MAX_BLOCKS and sum(len(str(b)) for b in blocks) <= MESSAGE_CHARS


def render_messages(template: str, **context: Any) -> list[Message]:
    return parse_messages(render_text(template, **context))
