"""Jinja2 environment over messages/: every sentence a user reads comes from a template."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from jinja2.ext import Extension

MESSAGES_DIR = Path(__file__).resolve().parent.parent / "messages"

_MRKDWN_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MRKDWN_RE = re.compile(r"[&<>]")


# Slack's markup in a message's text: <target> or <target|label>. A typed < arrives as &lt;.
SLACK_MARKUP = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
# A line of rendered text that starts with this is an instruction to bot/blocks.py.
_DIRECTIVE_AT_LINE_START = re.compile(r"(^|\n)(?=::)")
# An @ that opens a word (`@here`, `@channel`, `@maria`, `(@math-team`): in a mrkdwn text object
# Slack parses "certain mentions" from plain text (verbatim defaults to false). Not one inside a
# word or an address (`ana@school.org`, `https://host/@user`), which pings nobody.
_AT_WORD_START = re.compile(r"(?:^|(?<=[\s(\[{\"'\u201c\u2018\u00ab*_~>]))@(?=\w)")


# Unicode's explicit direction marks: embeddings and overrides (LRE, RLE, LRO, RLO) end at a PDF,
# isolates (LRI, RLI, FSI) at a PDI; left open, each holds to the end of its line.
_EMBEDDINGS, _POP_EMBEDDING = "\u202a\u202b\u202d\u202e", "\u202c"
_ISOLATES, _POP_ISOLATE = "\u2066\u2067\u2068", "\u2069"
_DIRECTION_MARKS = re.compile(f"[{_EMBEDDINGS}{_POP_EMBEDDING}{_ISOLATES}{_POP_ISOLATE}]")


def _directions_closed(text: str) -> str:
    """User text whose lines close every direction mark they open: a reply that opens with a
    right-to-left override (pasted, or typed to play) would otherwise turn the rest of its
    line around, the ` - @author` the notes put after it too."""
    if not _DIRECTION_MARKS.search(text):
        return text
    lines = text.split("\n")
    for k, line in enumerate(lines):
        opened: list[str] = []
        for mark in _DIRECTION_MARKS.findall(line):
            if mark in _EMBEDDINGS or mark in _ISOLATES:
                opened.append(mark)
            elif mark == _POP_EMBEDDING and opened and opened[-1] in _EMBEDDINGS:
                opened.pop()
            elif mark == _POP_ISOLATE and any(m in _ISOLATES for m in opened):
                while opened.pop() not in _ISOLATES:
                    pass
        closers = (_POP_ISOLATE if m in _ISOLATES else _POP_EMBEDDING for m in reversed(opened))
        lines[k] = line + "".join(closers)
    return "\n".join(lines)


def escape_mrkdwn(text: object) -> str:
    """Escape user text so Slack shows it literally: no pings, no links, no broken formatting,
    and no line that bot/blocks.py would take for one of its directives (`:: section`): a zero-
    width space goes before a line's leading `::`, and after the @ of a word that would read as
    a mention (a reply quoting `@channel` or `@lee` shows them, and pings nobody again). A line
    closes the direction marks it opens, so it can't turn around what follows it."""
    unpinged = _AT_WORD_START.sub("@\u200b", _directions_closed(str(text)))
    escaped = _MRKDWN_RE.sub(lambda m: _MRKDWN_ESCAPES[m.group(0)], unpinged)
    return _DIRECTIVE_AT_LINE_START.sub("\\1\u200b", escaped)


# The indent of a list item's later lines: a width Slack shows (spaces at a line's start may not).
_ITEM_INDENT = "\u2003"


def continued(text: str, followed: bool = True) -> str:
    """A reply of several lines as one item of a list (`• text - <@author>`): its later lines
    indented under the first, so that a reply's own bullets read as its own and not as other
    items of the notes. Lines inside a code block keep their code as written, and a quote its
    `>` at the start of its line. For text already escaped (`e`). `followed`: the template puts
    words after it (the author): after a quote on the last line they start a line of their
    own, which Slack would otherwise show inside the quote, as if the quoted words said them."""
    lines = text.split("\n")
    in_code = lines[0].count("```") % 2 == 1
    for k in range(1, len(lines)):
        line = lines[k]
        if line and not in_code and not line.startswith("&gt;"):
            lines[k] = _ITEM_INDENT + line
        if line.count("```") % 2:
            in_code = not in_code
    if followed and len(lines) > 1 and lines[-1].startswith("&gt;") and not in_code:
        lines.append(_ITEM_INDENT)
    return "\n".join(lines)


# A line Markdown would make a heading ("# of students who...").
_MARKDOWN_HEADING = re.compile(r"^(\s*)#", re.MULTILINE)
# A line break inside a Markdown list item: a hard break, the next line indented under the first.
_HARD_BREAK = "  \n  "
# A quote's line (`> `), and what ends a quote inside a list item: a blank line, then the indent.
_QUOTE_LINE = re.compile(r"^\s*>")
_AFTER_QUOTE = "\n\n  "


# A `<` that Markdown would read as the start of HTML (`<div>`, `</p>`, `<!--`), and code spans,
# where a `<` is shown as written.
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])")
_CODE_SPAN = re.compile(r"(`+).+?\1")


def _no_html(lines: list[str]) -> list[str]:
    """Lines of a reply whose `<` outside code stay text (`a<b and b>c`, `her <div> tags`):
    a Markdown viewer shows HTML as what it makes, a tag as nothing. A line that opens or
    closes a code block is left as written."""
    shown, in_code = [], False
    for line in lines:
        if line.count("```") % 2:
            in_code = not in_code
        elif not in_code:
            pieces, last = [], 0
            for code in _CODE_SPAN.finditer(line):
                pieces += [_HTML_START.sub(r"\\<", line[last : code.start()]), code.group()]
                last = code.end()
            line = "".join(pieces) + _HTML_START.sub(r"\\<", line[last:])
        shown.append(line)
    return shown


# What Slack's markup leaves as written, and so does the notes file: a code block (to its close,
# or the end where it has none), a code span, and a link (its closing punctuation aside, which
# may close a bold phrase around it: `*see https://x.org*`).
_AS_WRITTEN = re.compile(
    r"```[\s\S]*?(?:```|\Z)|(`+)[^\n]+?\1"
    r"|\b[A-Za-z][A-Za-z0-9+.-]*://\S+?(?=[*~_.,;:!?)\]]*(?:\s|\Z))"
)
# Slack's *bold* and ~struck~ phrases: opened and closed at a word's edge (inside italics too:
# `_*both*_`), on one line, with no space inside the marks (`5 * 3`, `2*3*4` and `~5 and ~10`
# are not marked in Slack either).
# Each as Markdown marks it, where *x* is italics: **bold**, ~~struck~~ (`_italics_` is the same).
_SLACK_MARKED = [
    (re.compile(r"(?<![^\W_]|\*)\*(?=[^\s*])([^*\n]*?[^\s*])\*(?![^\W_]|\*)"), r"**\1**"),
    (re.compile(r"(?<![^\W_]|~)~(?=[^\s~])([^~\n]*?[^\s~])~(?![^\W_]|~)"), r"~~\1~~"),
]

# What stands for a piece left as written while the rest is marked: a character of a private-
# use plane, neither a space nor a word's, as the piece is to the marks around it. A reply that
# holds such characters already (none that a keyboard types) keeps its marks as written.
_KEPT = re.compile("[\U000f0000-\U000ffffd]")


def _slack_marks_in_markdown(text: str) -> str:
    """A reply's bold and struck words, marked as Slack marks them, marked so in Markdown;
    code and links as written."""
    if _KEPT.search(text):
        return text
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group())
        return chr(0xF0000 + len(kept) - 1)

    marked_text = _AS_WRITTEN.sub(keep, text)
    if len(kept) > 0xFFFD:
        return text
    for phrase, markdown in _SLACK_MARKED:
        marked_text = phrase.sub(markdown, marked_text)
    return _KEPT.sub(lambda m: kept[ord(m.group()) - 0xF0000], marked_text)


def markdown_item(text: str, by: str | None = None) -> str:
    """A reply as one item of a Markdown list: its Slack *bold* and ~struck~ words marked so
    in Markdown (where *x* is italics), a line that opens with `#` (a count, in a
    teacher's words) stays text, not a heading, a `<` stays a character rather than open HTML,
    and each line stays a line of the item (a hard break, indented under the first; a line
    after a quote, after a blank line). Then its author, `(by)`: on a line of its own after a
    code block, whose closing ``` with words after it would close nothing, and after a quote,
    which would take it for its own words."""
    text = _slack_marks_in_markdown(text)
    lines = _no_html(_MARKDOWN_HEADING.sub(r"\1\\#", _directions_closed(text)).split("\n"))
    item, in_code = lines[0], lines[0].count("```") % 2 == 1
    for previous, line in zip(lines, lines[1:], strict=False):
        # After a quote, a blank line: Markdown reads a line right after one as more of it.
        ends_quote = not in_code and _QUOTE_LINE.match(previous) and not _QUOTE_LINE.match(line)
        item += (_AFTER_QUOTE if ends_quote else _HARD_BREAK) + line
        in_code ^= line.count("```") % 2 == 1
    if by is None:
        return item
    if not in_code and _QUOTE_LINE.match(lines[-1]):
        return f"{item}{_AFTER_QUOTE}({by})"
    fenced = len(lines) > 1 and lines[-1].lstrip().startswith("```")
    return f"{item}{_HARD_BREAK if fenced else ' '}({by})"


def marked(text: object, marker: str) -> str:
    """Text shown bold (`*`) or in italics (`_`): each line marked on its own, as Slack ends a
    marker at a line's end. Slack has no escape for a marker, so text that holds the marker's
    character (a prompt's `student_id`, `fill in the ___`) is shown as written, unmarked, rather
    than cut into marked and unmarked pieces."""
    lines = str(text).split("\n")
    if marker in str(text):
        return "\n".join(lines)
    return "\n".join(f"{marker}{line.strip()}{marker}" if line.strip() else line for line in lines)


def quoted(text: object) -> str:
    """Text as a quote block of its own: every line opens with `>`, whatever it holds."""
    return "\n".join(f">{line}" for line in str(text).split("\n"))


def unescape_mrkdwn(text: str) -> str:
    """Slack's three entities back to the characters they stand for (&amp; last): text as typed."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _slack_date(ts: Any, fmt: str = "{date_short_pretty} {time}", fallback: str = "") -> str:
    """A time every reader sees in their own zone: Slack's <!date^...> token."""
    epoch = int(ts.timestamp()) if hasattr(ts, "timestamp") else int(ts)
    if not fallback:
        fallback = ts.strftime("%Y-%m-%d %H:%M UTC") if hasattr(ts, "strftime") else str(ts)
    text = fallback
    return f"<!date^{epoch}^{fmt}|{text}>"


_TAGS = re.compile(r"\{%.*?%\}|\{#.*?#\}")
_LAST_TAG_END = re.compile(r"(?<![-+])%\}(\s*)$")
_INCLUDE = re.compile(r"\{%[-+]?\s*include\b")


class _LinesKeepTheirBreak(Extension):
    """trim_blocks drops the line break after every block tag, which is what a line holding
    only tags wants. A line that also prints something and ends in a tag (`- {{ x }}{% endif %}`,
    or an include) would lose its own break and run into the next: its last tag is given `+%}`,
    which keeps it.
    Lines of a tag that spans several (`{% set names = {` ... `} %}`) are left as they are."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        lines = source.split("\n")
        opened = ""  # "%" or "#" while inside a tag or comment begun on an earlier line
        for i, line in enumerate(lines):
            if opened:
                if f"{opened}}}" in line:
                    opened = ""
                continue
            bare = _TAGS.sub("", line)
            unclosed = re.search(r"\{([%#])", bare)
            if unclosed:
                opened = unclosed.group(1)
                continue
            prints = bare.strip() or _INCLUDE.search(line)
            if prints and _LAST_TAG_END.search(line):
                lines[i] = _LAST_TAG_END.sub(r"+%}\1", line)
        return "\n".join(lines)


def _duration(seconds: Any, days: int | None = None) -> str:
    """A length of time as people read it: `1 d 2 h`, `3 h 5 min`, `4 min 30 s`, `0 s`.
    `days`: at most so many whole days, the rest in hours (a step typed `24h` is `24 h`, not
    the same time a day on)."""
    seconds = int(seconds)
    if seconds <= 0:
        return "0 s"  # under a second: in the unit the shortest times are shown in
    days, rest = divmod(seconds, 86400) if days is None else (days, seconds - days * 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} d")
    if hours:
        parts.append(f"{hours} h")
    if minutes:
        parts.append(f"{minutes} min")
    if secs and not days and not hours:
        parts.append(f"{secs} s")
    return " ".join(parts)


@lru_cache(maxsize=4)
def environment(directory: str = str(MESSAGES_DIR)) -> Environment:
    env = Environment(
        loader=FileSystemLoader(directory),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        extensions=[_LinesKeepTheirBreak],
        # Templates change with a deploy, which restarts the bot: with auto_reload every render
        # looked at each template's file on disk (two stat calls for a step message).
        auto_reload=False,
    )
    # `e` is the mrkdwn escape: templates write {{ text | e }} for anything a user typed.
    env.filters["e"] = escape_mrkdwn
    env.filters["escape"] = escape_mrkdwn
    env.filters["continued"] = continued
    env.filters["markdown_item"] = markdown_item
    env.filters["marked"] = marked
    env.filters["quoted"] = quoted
    env.filters["slack_date"] = _slack_date
    env.filters["duration"] = _duration
    return env


def render_text(template: str, **context: Any) -> str:
    """Render a template from messages/ to a string, trimmed."""
    return environment().get_template(template).render(**context).strip()
