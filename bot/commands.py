"""Parse the text of the `/protocol` slash command into a typed command or a ParseError."""

from __future__ import annotations

import calendar
import difflib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from fractions import Fraction
from functools import lru_cache, partial
from typing import TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.engine.pacing import later
from bot.render import render_text, unescape_mrkdwn

DAY = 86_400
MAX_AHEAD_SECONDS = 90 * DAY  # the limit for `step`, `in`, `remind`, and how far away `at` may be
MAX_EXTEND_SECONDS = 14 * DAY
ECHO_LIMIT = 80  # user text quoted back in an error is clipped to this many characters


# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenDialog:
    """`/protocol` alone: open the start dialog."""


@dataclass(frozen=True)
class Help:
    """`/protocol help`."""


@dataclass(frozen=True)
class ListProtocols:
    """`/protocol list`."""


@dataclass(frozen=True)
class Preview:
    """`/protocol preview <protocol>`."""

    protocol: str


@dataclass(frozen=True)
class Start:
    """`/protocol start <protocol> ...`; None means "not given, use the default"."""

    protocol: str
    presenter: str | None = None
    start_at: datetime | None = None  # aware UTC
    step_seconds: int | None = None
    step_days: int | None = None  # of step_seconds, the days typed as days (`1d`, not `24h`)
    remind_seconds: int | None = None
    facilitator: str | None = None
    weekdays: bool = False
    # The time of day asked for (`02:30`) when the clocks go forward past it that day, and the
    # start was moved on to the first minute after the change.
    skipped: str | None = None


@dataclass(frozen=True)
class Status:
    """`/protocol status`."""


@dataclass(frozen=True)
class Next:
    """`/protocol next`."""


@dataclass(frozen=True)
class Extend:
    """`/protocol extend <duration>`, or `extend until <when>` (`until`: the close asked for,
    aware UTC, read in the caller's zone; `seconds` is then 0)."""

    seconds: int
    days: int = 0  # of `seconds`, the whole days written in days: counted on the calendar
    until: datetime | None = None


@dataclass(frozen=True)
class Pause:
    """`/protocol pause`."""


@dataclass(frozen=True)
class Resume:
    """`/protocol resume`."""


@dataclass(frozen=True)
class End:
    """`/protocol end`."""


@dataclass(frozen=True)
class Notes:
    """`/protocol notes [<session-number>]`."""

    session_number: int | None = None


@dataclass(frozen=True)
class Forget:
    """`/protocol forget`."""


@dataclass(frozen=True)
class Cancel:
    """`/protocol cancel [<session-number>]`."""

    session_number: int | None = None


@dataclass(frozen=True)
class Rotation:
    """`/protocol rotation <@a> <@b> ...`; no users means "show the rotation", `clear` (or
    `none`, `off`) removes it."""

    users: tuple[str, ...] = ()
    clear: bool = False


Command: TypeAlias = (
    OpenDialog
    | Help
    | ListProtocols
    | Preview
    | Start
    | Status
    | Next
    | Extend
    | Pause
    | Resume
    | End
    | Notes
    | Forget
    | Cancel
    | Rotation
)


@dataclass(frozen=True)
class ParseError:
    """Bad input: `code` names messages/errors/{code}.j2, `context` holds what it shows."""

    code: str
    context: dict[str, object] = field(default_factory=dict)

    def message(self) -> str:
        return render_text(f"errors/{self.code}.j2", **self.context)


class DurationError(ValueError):
    """A duration that is unreadable, zero, or over its limit; `code` is the error code."""

    def __init__(self, code: str, text: str, limit: int) -> None:
        super().__init__(f"{code}: {text!r}")
        self.code = code
        self.text = text
        self.limit = limit


class _Rejected(Exception):
    """Raised deep in the parser; parse() returns the ParseError it carries."""

    def __init__(self, code: str, **context: object) -> None:
        super().__init__(code)
        self.error = ParseError(code, context)


# What pasted or autocorrected text carries that nobody typed: invisible formatting characters
# (zero-width spaces and joiners, byte order marks, the direction marks of Hebrew and Arabic
# keyboards, soft hyphens: Unicode's category Cf, dropped); quotes around a protocol's name; a
# mark after a word, as in a sentence ("start atlas, @maria, step 1d."; "at Tues. 3 p.m.").
_QUOTES = "\"'`“”‘’«»„"
_AFTER_WORD = ".!?,;:"


def normalize(text: str) -> str:
    """`/protocol` text as the parser reads it: a typed &, < or > as typed (Slack sends them as
    entities), the full-width letters, digits and spaces that Chinese, Japanese and Korean input
    methods type as the plain ones (NFKC), invisible formatting characters dropped, one space
    between words, and no mark after a word (the ; that ends an entity is not one)."""
    typed = unescape_mrkdwn(text) if "&" in text else text
    if typed.isascii():
        words = typed.split()  # ASCII holds no Cf character, and NFKC leaves it as it is
    else:
        visible = "".join(ch for ch in typed if unicodedata.category(ch) != "Cf")
        # `1½ hours`: NFKC would make it `11⁄2`, eleven halves.
        visible = _VULGAR_FRACTION.sub(_spelled_fraction, visible)
        words = unicodedata.normalize("NFKC", visible).split()
    # A word of marks alone stays: `/protocol ?` is answered, not taken for the bare command.
    return " ".join(word.rstrip(_AFTER_WORD) or word for word in words)


_VULGAR_FRACTION = re.compile(r"(\d?)([½⅓⅔¼¾])")
_FRACTIONS = {"½": "1/2", "⅓": "1/3", "⅔": "2/3", "¼": "1/4", "¾": "3/4"}


def _spelled_fraction(match: re.Match[str]) -> str:
    """`1½` as `1 1/2`, `½` as `1/2`."""
    return f"{match[1]} {_FRACTIONS[match[2]]}" if match[1] else _FRACTIONS[match[2]]


def with_protocol_ids(text: str, ids: Iterable[str], names: Mapping[str, str] | None = None) -> str:
    """`start atlas equity ...` read as `start atlas-equity ...`: a protocol's id written with
    spaces for its hyphens, or followed by "protocol" (`preview tuning protocol`), or its name
    as `list` shows it (`names`: name to id; `preview Collaborative Assessment Conference`,
    `start "ATLAS - Learning from Student Work" ...`), as people write them."""
    words = normalize(text).split(" ")
    if len(words) < 2 or words[0].lower() not in ("start", "preview"):
        return text
    known = {each.lower() for each in ids}
    titled: dict[str, str] = {}
    for name, each in (names or {}).items():
        # Of protocols of one name (a copy of a built-in that kept its name), the first: the
        # built-in, as for an id (`protocols check` warns of the copy, bot.protocols.advice).
        if key := name_key(name):  # a name of emoji alone is not typed as the name
            titled.setdefault(key, each)
    found, span = None, 0  # the protocol the words after the subcommand name, and how many
    for n in range(min(4, len(words) - 1), 0, -1):
        joined = "-".join(word.strip(_QUOTES) for word in words[1 : 1 + n]).lower()
        if joined in known:
            protocol_word = len(words) > 1 + n and words[1 + n].lower() == "protocol"
            found, span = joined, n + protocol_word
            break
    # A name counts where it takes more words than an id does: `tuning protocol` is the id's,
    # whatever protocol an operator named "Tuning Protocol".
    for n in range(min(_NAME_WORDS, len(words) - 1), span, -1):
        key = name_key(" ".join(words[1 : 1 + n]))
        if key in titled:
            found, span = titled[key], n
            break
    if found is not None:
        words[1 : 1 + span] = [found]
    return " ".join(words)


# The most words of a protocol's name looked for after `start` or `preview`.
_NAME_WORDS = 8


def name_key(name: str) -> str:
    """A protocol's name as it is matched: without case, quotes, a dash between its words,
    "the" before it, or emoji (in the name as written, or as Slack sends them: `:dart:`)."""
    plain = "".join(ch for ch in unicodedata.normalize("NFKC", name) if not _emoji_part(ch))
    words = [word.strip(_QUOTES).lower() for word in plain.split()]
    words = [word for word in words if word.strip("-–—") and not _EMOJI_CODE.fullmatch(word)]
    return " ".join(words[1:] if words[:1] == ["the"] else words)


# An emoji as Slack writes it in a message's text (normalize takes the closing colon off).
_EMOJI_CODE = re.compile(r":[a-z0-9_+'-]+:?")


def _emoji_part(ch: str) -> bool:
    """A character of an emoji: the symbol, a skin tone, the joiner and the variation selector."""
    skin_tone = "\U0001f3fb" <= ch <= "\U0001f3ff"
    return unicodedata.category(ch) in ("So", "Cf") or ch == "\ufe0f" or skin_tone


# A link as Slack sends it (`<https://host/path|host/path>`, `<mailto:a@b.org|a@b.org>`), and a
# channel picked from Slack's list (`<#C123|math>`): in an error, the words people saw.
_LINK = re.compile(r"<((?:https?|mailto|ftp|tel):[^<>|\s]*)(?:\|([^<>]*))?>", re.IGNORECASE)
_LABELLED_CHANNEL = re.compile(r"<#[CG][A-Z0-9]+\|([^<>|]+)>")


def _seen(text: str) -> str:
    """Slack's markup of links and labelled mentions as the words it shows."""
    text = _LINK.sub(lambda link: link[2] or re.sub(r"(?i)^mailto:", "", link[1]), text)
    return _LABELLED_CHANNEL.sub(r"#\1", _LABELLED_MENTION.sub(r"@\1", text))


def _echo(text: str) -> str:
    """User text to quote back: not escaped (templates do that), but one short line, with
    Slack's markup read as the words people saw."""
    line = " ".join(_seen(text).split()).replace("`", "'")
    return line if len(line) <= ECHO_LIMIT else line[: ECHO_LIMIT - 1] + "…"


# --- tokens ---------------------------------------------------------------------------------

# A Slack mention stays one token even if the name after `|` holds spaces.
_TOKEN = re.compile(r"<@[^\s<>|]*(?:\|[^<>]*)?>|\S+")
_MENTION = re.compile(r"<@([UW][A-Z0-9_]+)(?:\|[^<>]*)?>")
_LABELLED_MENTION = re.compile(r"<@[UW][A-Z0-9_]+\|([^<>]+)>")
_NAME_LIKE = re.compile(r"[^\W\d][\w.'-]*")


class _Cursor:
    """The words of the command, read left to right."""

    def __init__(self, text: str) -> None:
        self._words = _TOKEN.findall(text)
        self._pos = 0

    def peek(self) -> str | None:
        return self._words[self._pos] if self._pos < len(self._words) else None

    def take(self) -> str:
        word = self._words[self._pos]
        self._pos += 1
        return word

    def peek_after(self) -> str | None:
        """The word after the next one."""
        return self._words[self._pos + 1] if self._pos + 1 < len(self._words) else None

    def take_if(self, accept: Callable[[str], object]) -> str | None:
        word = self.peek()
        return self.take() if word is not None and accept(word) else None

    def drop(self, filler: str) -> None:
        """The first unread word that is `filler`, dropped (`extend 10 more minutes`)."""
        rest = [word.lower() for word in self._words[self._pos :]]
        if filler in rest:
            del self._words[self._pos + rest.index(filler)]

    @property
    def position(self) -> int:
        return self._pos

    def read_since(self, position: int) -> list[str]:
        """The words read from `position` on, as typed."""
        return self._words[position : self._pos]

    def peek_all(self) -> list[str]:
        """The words not read yet, left unread."""
        return self._words[self._pos :]

    def remaining(self) -> list[str]:
        words, self._pos = self._words[self._pos :], len(self._words)
        return words


@dataclass(frozen=True)
class _Clock:
    """The caller's now (UTC) and time zone; and who they are (`presenter me`), if known."""

    now: datetime
    zone: tzinfo
    caller: str | None = None

    @property
    def today(self) -> date:
        return self.now.astimezone(self.zone).date()


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return UTC


# --- entry points ---------------------------------------------------------------------------


def parse(
    text: str, *, now: datetime, tz: str = "UTC", caller: str | None = None
) -> Command | ParseError:
    """Read `/protocol` text; `now` is the caller's aware clock, `tz` their IANA zone, `caller`
    their user id (for `presenter me`)."""
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    clock = _Clock(now.astimezone(UTC), _zone(tz), caller)
    try:
        return _command(_Cursor(normalize(text)), clock)
    except _Rejected as rejected:
        return rejected.error


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice that `name` most likely misspells, for "did you mean ...?"."""
    by_lower = {choice.lower(): choice for choice in choices}
    matches = difflib.get_close_matches(name.lower()[:ECHO_LIMIT], list(by_lower), n=1)
    return by_lower[matches[0]] if matches else None


def unknown_protocol(name: str, choices: Iterable[str], command: str = "") -> ParseError:
    """The error for a protocol the library does not have (the caller knows the library).
    `command`: the text it came in, whose example is then that command with the protocol
    most likely meant (a `start` keeps its presenter and options)."""
    protocols = sorted(choices)
    suggestion = closest(name, protocols)
    words = normalize(command).split(" ", 1)
    example = ""
    if words[0].lower() == "start":
        meant = suggestion or (protocols[0] if protocols else "atlas")
        # Mentions as the names they show (in a code span Slack shows the markup itself).
        rest = _LABELLED_MENTION.sub(r"@\1", words[1] if len(words) > 1 else "")
        corrected = rest.replace(name, meant, 1)
        typed = corrected != rest and "<" not in corrected
        example = _echo(f"start {corrected}" if typed else f"start {meant} @maria step 1d")
    context = {"text": _echo(name), "suggestion": suggestion, "protocols": protocols}
    return ParseError("unknown_protocol", {**context, "example": example})


def meant_here(error: ParseError, status: str | None) -> ParseError:
    """An unknown subcommand's suggestion, for a word whose meaning hangs on the status of the
    channel's session (MEANT_BY_STATUS); other errors as they are."""
    meant = MEANT_BY_STATUS.get(str(error.context.get("text", "")).lower())
    if error.code != "unknown_subcommand" or meant is None:
        return error
    return ParseError(error.code, {**error.context, "suggestion": meant.get(status)})


def needs_status(error: ParseError) -> bool:
    """Whether the error's suggestion hangs on the channel's session (see meant_here)."""
    word = str(error.context.get("text", "")).lower()
    return error.code == "unknown_subcommand" and word in MEANT_BY_STATUS


def protocol_first(
    text: str, choices: Iterable[str], names: Mapping[str, str] | None = None
) -> ParseError | None:
    """`/protocol tuning @maria step 1d`: a protocol's name where the subcommand goes, as
    people type what they mean to run (the caller knows the library). The error shows that
    command with `start` before the name, and `preview` for its steps; None if the first words
    name no protocol."""
    known = {choice.lower(): choice for choice in choices}
    words = with_protocol_ids(f"start {normalize(text)}", known, names).split(" ")
    if len(words) < 2 or words[1].lower() not in known:
        return None
    protocol = known[words[1].lower()]
    # Mentions as the names they show (in a code span Slack shows the markup itself).
    rest = _LABELLED_MENTION.sub(r"@\1", " ".join(words[2:]))
    example = f"start {protocol} {rest}" if rest and "<" not in rest else ""
    context: dict[str, object] = {"text": _echo(normalize(text)), "protocol": protocol}
    return ParseError("protocol_first", {**context, "example": _echo(example)})


def _command(cursor: _Cursor, clock: _Clock) -> Command:
    word = cursor.take_if(bool)
    if word is None:
        return OpenDialog()
    if word in _ASKS_FOR_HELP:
        return _help(cursor, clock)
    # `status.`, `next!`: a full stop or a mark that autocorrect or habit puts after the word.
    handler = _HANDLERS.get(word.lower()) or _HANDLERS.get(word.lower().rstrip(_AFTER_WORD))
    if handler is None:
        lower = word.lower()
        raise _Rejected(
            "unknown_subcommand",
            text=_echo(word),
            suggestion=_MEANT[lower] if lower in _MEANT else closest(word, SUBCOMMANDS),
            subcommands=list(SUBCOMMANDS),
        )
    command = handler(cursor, clock)
    _expect_end(cursor, word.lower())
    return command


def _expect_end(cursor: _Cursor, subcommand: str) -> None:
    extra = cursor.remaining()
    if extra:
        raise _unexpected(extra, subcommand)


def _unexpected(words: list[str], subcommand: str) -> _Rejected:
    # A day or time written other than after `at` (`tue 3pm`, `on tue at 15:00`, `next tue`)
    # is the likeliest slip, so the message says so and shows the form that works.
    when = subcommand == "start" and any(_is_day_word(word) or _is_when(word) for word in words)
    return _Rejected(
        "unexpected_words",
        text=_echo(" ".join(words)),
        subcommand=subcommand,
        when=bool(when),
        control=subcommand in _CONTROLS,
    )


# --- subcommands ----------------------------------------------------------------------------

_Handler = Callable[[_Cursor, _Clock], Command]


def _bare(kind: Callable[[], Command]) -> _Handler:
    def handler(cursor: _Cursor, clock: _Clock) -> Command:
        return kind()

    return handler


def _help(cursor: _Cursor, clock: _Clock) -> Help:
    # `help start`, `help me`: whatever follows, the answer is the help.
    cursor.remaining()
    return Help()


def _preview(cursor: _Cursor, clock: _Clock) -> Preview:
    return Preview(_protocol(cursor, "preview"))


def _next(cursor: _Cursor, clock: _Clock) -> Next:
    cursor.take_if(_is_step)  # `next step`, as the button under each step says
    _courtesy(cursor)
    return Next()


def _control(kind: Callable[[], Command]) -> _Handler:
    """A control that acts at once on the channel's session, whatever courtesy follows it; so
    too a command that only reads (`status please`, `list pls`). Not `forget`, which deletes:
    `forget it` says never mind."""

    def handler(cursor: _Cursor, clock: _Clock) -> Command:
        _courtesy(cursor)
        return kind()

    return handler


# Words people add to a control that change nothing it does: `end now`, `pause please`,
# `end the session`, `extend 10m please`. Anything else after one (`end tomorrow`, `pause 10m`)
# is refused, and the refusal says to send the control alone.
_COURTESY = frozenset(
    [
        "now",
        "please",
        "pls",
        "plz",
        "thanks",
        "thank",
        "you",
        "thx",
        "ty",
        "it",
        "the",
        "this",
        "session",
        "protocol",
        "right",
        "asap",
    ]
)


def _courtesy(cursor: _Cursor) -> None:
    rest = cursor.peek_all()
    if rest and all(word.lower() in _COURTESY for word in rest):
        cursor.remaining()


def _extend(cursor: _Cursor, clock: _Clock) -> Extend:
    # `extend step 10m`, `extend by 10m`, `extend the step for 10 minutes`: the step is the one
    # thing extend lengthens, and a length what it is given.
    if (cursor.peek() or "").lower() == "the" and _is_step(cursor.peek_after() or ""):
        cursor.take()
    cursor.take_if(_is_step)
    cursor.take_if(lambda word: word.lower() in ("by", "for"))
    if cursor.take_if(lambda word: word.lower() in _UNTIL):
        return _extend_until(cursor, clock)
    # `extend another 10m`, `extend 10 more minutes`, `extend 10m more`: more time is what
    # extend gives (`another hour` is one, as `an hour` is).
    if (cursor.peek() or "").lower() == "another" and (cursor.peek_after() or "")[:1].isdigit():
        cursor.take()
    cursor.drop("more")
    seconds, text = _read_duration_text(cursor, "extend", MAX_EXTEND_SECONDS)
    _courtesy(cursor)
    return Extend(seconds, calendar_days(text))


_UNTIL = frozenset({"until", "till"})


def _extend_until(cursor: _Cursor, clock: _Clock) -> Extend:
    """`extend until 3pm` (today), `extend until thu 3pm`, `until tomorrow 9am`: the step closes
    then, a day and a time read as `at` reads them, in the caller's zone."""
    which = _which(cursor)
    words, which = _when_words(cursor, which)
    if not words or words[0].lower() in _COURTESY:
        raise _Rejected("missing_value", option="until")
    _day_without_month(cursor, words, which, clock, option="until")
    text = " ".join(words)
    day = words[0] if _is_day_word(words[0]) else None
    try:
        if which == "next":
            # `next fri`: the coming one or the one after? `at` asks; here the day alone says.
            raise _Rejected("bad_when")
        hour, minute = _time_of_day(" ".join(words[1:] if day else words), text, clock)
        local = _place(day, hour, minute, clock, text) if day else None
    except _Rejected as rejected:
        context, code = rejected.error.context, rejected.error.code
        if code == "when_past":  # a date gone by
            raise _until_past(text, clock, today=False) from None
        if code in ("which_midnight", "which_date", "weekday_wrong", "bad_date", "when_too_far"):
            # `fri midnight`, `1/2 3pm`, `fri dec 10`, `feb 30`: asked about, as `at` asks
            raise _Rejected(code, **context, option="until") from None
        unclear = context if code == "time_unclear" else {}
        day_alone = bool(context.get("day_alone")) and which != "next"
        raise _Rejected(
            "until_bad",
            **{**unclear, "text": _echo(text), "day_alone": day_alone, "which": which == "next"},
        ) from None
    # `until midnight`, alone, is the coming one (today's end), as `at midnight` reads it.
    today = clock.today + timedelta(days=1) if words[0].lower() == _MIDNIGHT else clock.today
    until = (local or _local(today, hour, minute, clock.zone)).astimezone(UTC)
    if until <= clock.now:
        raise _until_past(text, clock, today=day is None)
    _courtesy(cursor)
    return Extend(0, until=until)


def _until_past(text: str, clock: _Clock, *, today: bool) -> _Rejected:
    zone_name = getattr(clock.zone, "key", "UTC")
    return _Rejected("until_bad", text=_echo(text), past=True, today=today, zone=zone_name)


def _notes(cursor: _Cursor, clock: _Clock) -> Notes:
    # `notes last`, `notes the latest session`: the channel's latest, as `notes` alone gives.
    if (cursor.peek() or "").lower() == "the" and (cursor.peek_after() or "").lower() in _LAST:
        cursor.take()
    if cursor.take_if(lambda word: word.lower() in _LAST):
        _courtesy(cursor)
        return Notes()
    # `notes 3`, `notes #3`, `notes session 3`: session #3's, as `cancel 3` names it.
    if (cursor.peek() or "").lower() == "session" and _SESSION_NUMBER.fullmatch(
        cursor.peek_after() or ""
    ):
        cursor.take()
    number = cursor.take_if(_SESSION_NUMBER.fullmatch)
    _courtesy(cursor)
    return Notes(int(number.lstrip("#")) if number is not None else None)


_LAST = frozenset({"last", "latest"})
_SESSION_NUMBER = re.compile(r"#?[1-9]\d{0,8}", re.ASCII)


def _is_step(word: str) -> bool:
    return word.lower() == "step"


def _cancel(cursor: _Cursor, clock: _Clock) -> Cancel:
    # `cancel session 3`, `cancel session #3 please`: the session is the one thing cancelled.
    cursor.take_if(lambda word: word.lower() == "session")
    word = cursor.take_if(bool)
    if word is None:
        return Cancel()
    number = re.fullmatch(r"#?(\d{1,9})", word, re.ASCII)
    if number is None or int(number[1]) == 0:
        # `cancel dec 10`, `cancel the one on thursday`: quoted whole, and where numbers are.
        raise _Rejected("bad_session_number", text=_echo(" ".join([word, *cursor.remaining()])))
    _courtesy(cursor)
    return Cancel(int(number[1]))


def _rotation(cursor: _Cursor, clock: _Clock) -> Rotation:
    words = cursor.remaining()
    if len(words) == 1 and words[0].lower() in _SHOW_ROTATION:
        return Rotation()  # `rotation show`: as `rotation` alone, the order as it stands
    if words and words[0].lower().strip(_QUOTES + ".") in _NO_ROTATION:
        if len(words) > 1:
            # `clear @maria`: a clear and a new order at once, or one person taken off. Which
            # is not clear, so neither is done: both commands are shown.
            raise _Rejected("rotation_clear_words", word=_echo(words[0]))
        return Rotation(clear=True)
    return Rotation(tuple(_user_id(word, "user_format", option="rotation") for word in words))


_NO_ROTATION = frozenset({"clear", "none", "off", "reset", "delete", "remove"})
_SHOW_ROTATION = frozenset({"show", "list", "status", "order"})


def _protocol(cursor: _Cursor, subcommand: str) -> str:
    word = cursor.take_if(lambda w: not _is_option(w) and not w.startswith(("<", "@")))
    # Quotes around the name (“atlas”, as smart punctuation types them) are not part of it.
    name = word.strip(_QUOTES).lower() if word is not None else ""
    if not name:
        raise _Rejected("missing_protocol", subcommand=subcommand)
    return name


# What Slack's list offers after an @ besides people, as Slack escapes it in a command: a user
# group, @here / @channel / @everyone; and a channel, after a #.
_NOT_A_PERSON = re.compile(
    r"<!subteam\^[A-Z0-9]+(?:\|(?P<group>[^<>]*))?>"
    r"|<!(?P<everyone>here|channel|everyone)(?:\|[^<>]*)?>"
    r"|<#[CG][A-Z0-9]+(?:\|(?P<channel>[^<>]*))?>"
)


def _user_id(word: str, code: str, **context: object) -> str:
    mention = _MENTION.fullmatch(word)
    if mention is None:
        other = _NOT_A_PERSON.fullmatch(word)
        if other is not None:
            # Picked from the list Slack offers: say what it is, as Slack showed it.
            kind = str(other.lastgroup or ("group" if word.startswith("<!") else "channel"))
            shown = other[kind] or ""  # empty: Slack sent no name
            if shown and kind != "group":
                shown = f"{'@' if kind == 'everyone' else '#'}{shown}"
            raise _Rejected(code, text=_echo(shown), kind=kind, **context)
        raise _Rejected(code, text=_echo(word), **context)
    return mention[1]


# --- start and its options ------------------------------------------------------------------


def _start(cursor: _Cursor, clock: _Clock) -> Start:
    given: set[str] = set()
    # `start @maria atlas`: the presenter named before the protocol, as people say it.
    first = cursor.peek()
    presenter = cursor.take() if first is not None and _MENTION.fullmatch(first) else None
    command = Start(_protocol(cursor, "start"))
    if presenter is not None:
        _claim(given, "presenter")
        command = replace(command, presenter=_user_id(presenter, "presenter_format"))
    while cursor.peek() is not None:
        command = _start_option(cursor, clock, command, given)
    if "remind" in given and not given & {"at", "in"}:
        # The presenter is reminded ahead of a start; a session that starts now has none.
        raise _Rejected("remind_without_when")
    return command


def _start_option(cursor: _Cursor, clock: _Clock, command: Start, given: set[str]) -> Start:
    if _which_day_ahead(cursor):
        # `on jan 5 at 9am`, `on tue at 3pm`, `this fri 3pm` without `at`: a day, read as `at`
        # reads it (`next tue` is asked about there).
        _claim(given, "at")
        return _option_at(cursor, clock, command)
    word = cursor.take()
    key = word.lower()
    if key in _START_OPTIONS:
        _claim(given, key)
        return _START_OPTIONS[key](cursor, clock, command)
    after = cursor.peek() or ""
    if key in _DONE_BY and after.lower() == "by":
        # `presented by @maria`, `facilitated by @sam`: as `presenter @maria`, `facilitator @sam`.
        cursor.take()
        _claim(given, _DONE_BY[key])
        return _START_OPTIONS[_DONE_BY[key]](cursor, clock, command)
    if (
        key in ("with", "for")
        and "presenter" not in given
        and _looks_like_person(after)
        and not _is_option(after)
    ):
        # `start atlas with @maria`: the mention after it is the presenter (and an @maria that
        # Slack did not make a mention is the word an error names, not `with`).
        return command

    if _MENTION.fullmatch(word) or ("presenter" not in given and _looks_like_person(word)):
        _claim(given, "presenter")
        return replace(command, presenter=_user_id(word, "presenter_format"))
    raise _unexpected([word, *cursor.remaining()], "start")


_DONE_BY = {"presented": "presenter", "facilitated": "facilitator"}


def _which_day_ahead(cursor: _Cursor) -> bool:
    """Whether the words ahead are `on`, `this` or `next` and a day (`on tue`, `on dec 10`,
    `on the 10th`)."""
    after = cursor.peek_after() or ""
    third = (cursor.peek_all()[2:3] or [""])[0]
    the = after.lower() == "the" and _DAY_OF_MONTH.fullmatch(third) is not None
    day = _is_day_word(after) or after.lower() in _TWO_LETTER_DAYS or _is_month_date_start(after)
    day = day or the
    return (cursor.peek() or "").lower() in _WHICH and day


def _claim(given: set[str], option: str) -> None:
    """Each option at most once, and only one of `at` and `in`."""
    if option in given:
        raise _Rejected("duplicate_option", option=option)
    if option in ("at", "in") and given & {"at", "in"}:
        raise _Rejected("at_and_in")
    given.add(option)


def _looks_like_person(word: str) -> bool:
    """Where a presenter should be: an @name, a <...> token, or a plain name (not a day)."""
    if word.startswith(("@", "<")):
        return True
    return bool(_NAME_LIKE.fullmatch(word)) and not (_is_day_word(word) or _is_time(word))


def _is_option(word: str) -> bool:
    return word.lower() in _START_OPTIONS


_StartOption = Callable[[_Cursor, _Clock, Start], Start]


def _option_at(cursor: _Cursor, clock: _Clock, command: Start) -> Start:
    start_at, skipped = _read_at(cursor, clock)
    return replace(command, start_at=start_at, skipped=skipped)


def _option_in(cursor: _Cursor, clock: _Clock, command: Start) -> Start:
    seconds, text = _read_duration_text(cursor, "in", MAX_AHEAD_SECONDS)
    # `in 2d` from 3 PM is 3 PM two days on, on the caller's calendar, across a clock change
    # too; hours are hours: `in 24h` is 24 hours on, 3 PM or 4 PM as the clocks have it.
    days = calendar_days(text)
    start_at = later(clock.now, seconds, clock.zone, days)
    return replace(command, start_at=start_at)


def _option_step(cursor: _Cursor, clock: _Clock, command: Start) -> Start:
    # `step 1d` closes at the time of day it opened, across a clock change too; `step 24h`
    # closes 24 hours on.
    seconds, text = _read_duration_text(cursor, "step", MAX_AHEAD_SECONDS)
    return replace(command, step_seconds=seconds, step_days=calendar_days(text))


def _option_remind(cursor: _Cursor, clock: _Clock, command: Start) -> Start:
    if who := _everyone(cursor):
        # `remind everyone 2 days before`: only the presenter gets the prep reminder.
        start = cursor.position
        try:
            _read_reminder(cursor)
            written: str | None = " ".join(cursor.read_since(start))
        except _Rejected:
            written = None
        raise _Rejected("remind_everyone", who=_echo(who), written=_echo(written or "1d"))
    return replace(command, remind_seconds=_read_reminder(cursor))


def _read_reminder(cursor: _Cursor) -> int:
    _reminded(cursor)
    seconds = DAY if _the_day(cursor) else _read_duration(cursor, "remind", MAX_AHEAD_SECONDS)
    _before(cursor)
    return seconds


def _everyone(cursor: _Cursor) -> str | None:
    """`everyone`, `all`, `the team`, `the whole group`, `all of us` after `remind`, taken."""
    ahead = [word.lower() for word in cursor.peek_all()[:3]]
    words = (n for n in (3, 2, 1) if n <= len(ahead) and " ".join(ahead[:n]) in _EVERYONE)
    count = next(words, 0)
    if not count:
        return None
    return " ".join(cursor.take() for _ in range(count))


_EVERYONE = frozenset(
    {"everyone", "everybody", "all", "all of us", "all of them", "y'all", "team", "group"}
    | {"the team", "the group", "the whole team", "the whole group", "the teachers"}
)


def _reminded(cursor: _Cursor) -> None:
    """`remind me 2 days before`, `remind them a day ahead`, as a reminder is asked for: the
    word, taken. The presenter is the one reminded, as the answer to the start says."""
    after = cursor.peek_after()
    if (cursor.peek() or "").lower() in _REMINDED and after is not None and not _is_option(after):
        cursor.take()


_REMINDED = frozenset({"me", "them", "us"})


def _the_day(cursor: _Cursor) -> bool:
    """`the day before` (or `the day ahead`, `the day in advance`): a day, taken."""
    ahead = [word.lower() for word in cursor.peek_all()[:3]]
    if ahead[:2] != ["the", "day"] or not (ahead[2:] and (ahead[2] in _BEFORE or ahead[2] == "in")):
        return False
    cursor.take()
    cursor.take()
    return True


def _before(cursor: _Cursor) -> None:
    """`1 day before`, `2h ahead`, `3d in advance`: a reminder is ever before the start, and the
    words that say so, taken."""
    if cursor.take_if(lambda word: word.lower() in _BEFORE) is None:
        in_advance = [(cursor.peek() or "").lower(), (cursor.peek_after() or "").lower()]
        if in_advance == ["in", "advance"]:
            cursor.take()
            cursor.take()
        else:
            return
    # `2 days before the session`, `a day before it`: the start is what a reminder comes before.
    if (cursor.peek() or "").lower() == "it":
        cursor.take()
    elif (cursor.peek() or "").lower() == "the" and (cursor.peek_after() or "").lower() in _IT:
        cursor.take()
        cursor.take()


def read_reminder(text: str, *, limit: int = MAX_AHEAD_SECONDS) -> int:
    """How long before the start a reminder goes, as `remind` reads it (`2d`, `2 days before`,
    `a day in advance`): its seconds; DurationError as for parse_duration, and one coded
    remind_everyone, with the words to write, for a reminder asked for everyone (as `remind`)."""
    cursor = _Cursor(normalize(text))
    everyone = _everyone(cursor)
    start = cursor.position
    _reminded(cursor)
    words = ["1d"] if _the_day(cursor) else _duration_words(cursor)
    _before(cursor)
    if not words or cursor.peek() is not None:
        raise DurationError("bad_duration", text, limit)
    seconds = parse_duration(" ".join(words), limit=limit)
    if everyone:
        raise DurationError("remind_everyone", " ".join(cursor.read_since(start)), limit)
    return seconds


_BEFORE = frozenset({"before", "ahead", "beforehand", "prior", "earlier"})
_IT = frozenset({"session", "start", "meeting", "protocol"})
_ME = frozenset({"me", "myself"})


def _option_facilitator(cursor: _Cursor, clock: _Clock, command: Start) -> Start:
    word = cursor.take_if(lambda w: not _is_option(w))
    if word is None:
        raise _Rejected("missing_value", option="facilitator")
    if word.lower() in _ME:
        return replace(command, facilitator=None)  # who starts it facilitates it, by default
    return replace(command, facilitator=_user_id(word, "user_format", option="facilitator"))


def _option_presenter(cursor: _Cursor, clock: _Clock, command: Start) -> Start:
    # `presenter @maria`, written as `facilitator @sam` is: the same as `@maria` alone.
    word = cursor.take_if(lambda w: not _is_option(w))
    if word is None:
        raise _Rejected("missing_value", option="presenter")
    if word.lower() in _ME and clock.caller is not None:
        return replace(command, presenter=clock.caller)  # the teacher starting it presents
    return replace(command, presenter=_user_id(word, "presenter_format"))


def _option_weekdays(cursor: _Cursor, clock: _Clock, command: Start) -> Start:
    # `weekdays only`, as the dialog and the session's header put it.
    cursor.take_if(lambda word: word.lower() == "only")
    return replace(command, weekdays=True)


# --- durations ------------------------------------------------------------------------------

_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), DAY),
    # A week is 7 days, counted on the calendar as days are (`in 1 week` as `in 7 days`).
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), 7 * DAY),
}
# A number may have a fraction, after a point or (as much of Europe writes it) a comma: `1.5h`,
# `1,5 hours`, `0.5d`.
# Or be a fraction: `1/2 hour`, `1/2h` (and `1 1/2 hours` is read as 3/2, _and_a_fraction).
_NUMBER = r"\d+(?:[.,]\d+|/\d*[1-9]\d*)?"
_DURATION = re.compile(rf"(?:{_NUMBER}\s*[a-z]+\s*)+", re.IGNORECASE | re.ASCII)
_DURATION_PART = re.compile(rf"({_NUMBER})\s*([a-z]+)", re.IGNORECASE | re.ASCII)
# `2h30` (or `2hrs30`, `2h 30`, `2 hours 30`), as `15h30` writes a time: the two digits after
# the hours are minutes.
_HOURS_MINUTES = re.compile(r"(.*\d\s*(?:h|hrs?|hours?))\s*([0-5]\d)", re.IGNORECASE | re.ASCII)


def parse_duration(text: str, *, limit: int = MAX_AHEAD_SECONDS) -> int:
    """Seconds in `90m`, `1h30m`, `2 days`; DurationError if unreadable, zero or over `limit`."""
    seconds = _sum_duration(text.strip())
    if seconds is None:
        raise DurationError("bad_duration", text, limit)
    if seconds <= 0:
        raise DurationError("duration_zero", text, limit)
    if seconds > limit:
        raise DurationError("duration_too_long", text, limit)
    return seconds


def read_duration(text: str, *, limit: int = MAX_AHEAD_SECONDS) -> tuple[int, int]:
    """A length alone, as `step` reads one (`1d`, `a day`, `2 hours and 30 minutes`, `an hour
    and a half`): its seconds, and of them the whole days typed as days (calendar_days);
    DurationError as for parse_duration."""
    cursor = _Cursor(normalize(text))
    words = _duration_words(cursor)
    if not words or cursor.peek() is not None:
        raise DurationError("bad_duration", text, limit)
    joined = " ".join(words)
    return parse_duration(joined, limit=limit), calendar_days(joined)


def _sum_duration(text: str) -> int | None:
    if joined := _HOURS_MINUTES.fullmatch(text):
        text = f"{joined[1]}{joined[2]}m"
    if not _DURATION.fullmatch(text):
        return None
    total = Fraction(0)
    for number, unit in _DURATION_PART.findall(text):
        if unit.lower() not in _UNITS:
            return None
        # More digits than any limit needs: cap, so int() never meets a 4,300-digit string.
        total += _amount(number) * _UNITS[unit.lower()] if len(number) <= 12 else 10**13
    return round(total)


def _amount(number: str) -> Fraction:
    return Fraction(number.replace(",", "."))


def calendar_days(text: str) -> int:
    """The whole days written in days or weeks (`2d`, `1 day`, `1 week`: 7; `1.5d`: 1, its half
    day counted in hours) in a duration already read."""
    parts = _DURATION_PART.findall(text)
    return sum(
        int(_amount(number) * _UNITS[unit.lower()] // DAY)
        for number, unit in parts
        if _UNITS[unit.lower()] % DAY == 0
    )


def _read_duration(cursor: _Cursor, option: str, limit: int) -> int:
    return _read_duration_text(cursor, option, limit)[0]


def _read_duration_text(cursor: _Cursor, option: str, limit: int) -> tuple[int, str]:
    """The seconds, and the words they were written in."""
    start = cursor.position
    words = _duration_words(cursor)
    if not words:
        raise _Rejected("missing_value", option=option)
    text = " ".join(words)
    try:
        return parse_duration(text, limit=limit), text
    except DurationError as error:
        # Quoted as typed (`2 and a half`, `half a day`), not as read (`2.5`, `12h`).
        typed = " ".join(cursor.read_since(start))
        hint = unit_hint(typed, limit)
        context = {"text": _echo(typed), "option": option, "limit": limit, **hint}
        raise _Rejected(error.code, **context) from None


_BARE_NUMBER = re.compile(r"\d{1,4}", re.ASCII)
_HINTED_UNITS = (("m", 60), ("h", 3600), ("d", DAY))  # 9999m, the most, is within every limit
_CLOCK_LENGTH = re.compile(r"(\d{1,2}):([0-5]\d)", re.ASCII)


def unit_hint(text: str, limit: int = MAX_AHEAD_SECONDS) -> dict[str, object]:
    """For a length written without a unit, what to write: a number alone (`45`), the number
    with each unit that keeps within the limit (`extend 45`: not `45d`); one written as a clock
    (`1:30`), its hours and minutes or its minutes and seconds (`1h30m`, `1m30s`), whichever was
    meant."""
    text = text.strip()
    if _BARE_NUMBER.fullmatch(text):
        units = [unit for unit, seconds in _HINTED_UNITS if int(text) * seconds <= limit]
        return {"bare": text, "units": units}
    if clock := _CLOCK_LENGTH.fullmatch(text):
        big, small = int(clock[1]), clock[2]
        return {
            "as_hours": f"{big}h{small}m" if big else f"{int(small)}m",
            "as_minutes": f"{big}m{small}s" if big else f"{int(small)}s",
            "big": big,
            "small": int(small),
        }
    return {}


def _duration_words(cursor: _Cursor) -> list[str]:
    """The first word, then any that continue it: `90 min`, `1h 30m`, `2 hours 30 minutes`;
    `an hour`, `a week` as `1 hour`, `1 week`; `half an hour`, `another half hour` as `30m`."""
    half = _half_of(cursor)
    if half is not None:
        return half
    unit = (cursor.peek_after() or "").lower()
    if (cursor.peek() or "").lower() in _ONE and len(unit) > 1 and unit in _UNITS:
        cursor.take()
        words = ["1", cursor.take()]
    else:
        words = [w for w in [cursor.take_if(lambda w: not _is_option(w))] if w]
        if words and words[0].lower() in _COUNTS and _counts(cursor):
            words[0] = str(_COUNTS[words[0].lower()])  # `ten minutes`, `two and a half hours`
    while words:
        _and_a_fraction(cursor, words)
        _and_a_half(cursor, words)
        _and_more(cursor, words[-1])
        more = cursor.take_if(partial(_continues_duration, words[-1]))
        if more is None:
            break
        words.append(more)
        # A number with its unit as the next word: `... 30 minutes`.
        if more.isdigit() and not words[-2][-1].isdigit():
            words += [w for w in [cursor.take_if(lambda w: w.lower() in _UNITS)] if w]
    return words


def _and_a_fraction(cursor: _Cursor, words: list[str]) -> None:
    """`1 1/2 hours`, `1 1/2h`, `1 and 1/2 hours` (and `1½`, see normalize) as `3/2 hours`,
    `3/2h`: the fraction after a whole number, taken."""
    joined = (cursor.peek() or "").lower() == "and"
    fraction = _FRACTION.fullmatch((cursor.peek_after() if joined else cursor.peek()) or "")
    if not words[-1].isdigit() or fraction is None or len(words[-1]) > 12:
        return
    if joined:
        cursor.take()
    cursor.take()
    words[-1] = f"{Fraction(int(words[-1])) + Fraction(fraction[1])}{fraction[2]}"


_FRACTION = re.compile(r"(\d{1,3}/\d{0,2}[1-9]\d{0,2})([a-z]*)", re.IGNORECASE | re.ASCII)


def _and_a_half(cursor: _Cursor, words: list[str]) -> None:
    """`1 and a half hours` as `1.5 hours`, `an hour and a half` as `1 hour 0.5 hour` (and `an
    hour and a quarter` as `1 hour 0.25 hour`): the words `and a half`, taken."""
    ahead = [word.lower() for word in cursor.peek_all()[:3]]
    if ahead[:2] != ["and", "a"] or ahead[2:] == [] or ahead[2] not in _AND_A:
        return
    unit = _TRAILING_UNIT.search(words[-1])
    if words[-1].isdigit():
        words[-1] += _AND_A[ahead[2]]
    elif unit is not None and unit[0].lower() in _UNITS:
        words += [f"0{_AND_A[ahead[2]]}", unit[0]]
    else:
        return
    for _ in range(3):
        cursor.take()


_TRAILING_UNIT = re.compile(r"[a-z]+$", re.IGNORECASE | re.ASCII)
_AND_A = {"half": ".5", "quarter": ".25"}


def _and_more(cursor: _Cursor, previous: str) -> None:
    """`2 hours and 30 minutes`: an `and` after a unit, before a number, taken."""
    after = cursor.peek_after() or ""
    joins = (cursor.peek() or "").lower() == "and" and _STARTS_NUMBER.match(after) is not None
    if joins and not previous[-1].isdigit():
        cursor.take()


_STARTS_NUMBER = re.compile(r"\d", re.ASCII)


def _half_of(cursor: _Cursor) -> list[str] | None:
    """`half an hour`, `half a day`, `another half hour`, `a quarter of an hour`, `three
    quarters of an hour`: that share of the unit (`30m`, `720m`, `15m`, `45m`), taken; None,
    and nothing taken, if the words are not that."""
    ahead = [word.lower() for word in cursor.peek_all()[:6]]
    skip = 1 if ahead[:1] and ahead[0] in _ONE else 0  # `another half hour`
    if ahead[skip : skip + 2] == ["three", "quarters"]:
        share, used = Fraction(3, 4), 2
    elif ahead[skip : skip + 1] and ahead[skip] in _SHARES:
        share, used = _SHARES[ahead[skip]], 1
    else:
        return None
    rest = ahead[skip + used :]
    of = 1 if rest[:1] == ["of"] else 0
    article = 1 if rest[of : of + 1] in (["a"], ["an"]) else 0
    unit = rest[of + article] if len(rest) > of + article else ""
    if unit not in _SHARED:
        return None
    for _ in range(skip + used + of + article + 1):
        cursor.take()
    return [f"{share * _SHARED[unit]}m"]


_SHARES = {"half": Fraction(1, 2), "quarter": Fraction(1, 4)}
_SHARED = {"hour": 60, "hr": 60, "day": 1440}  # in minutes


# Words for one before a unit (`in an hour`, `extend another hour`).
_ONE = frozenset({"a", "an", "one", "another"})
# Numbers written out, as people say a length (`extend ten minutes`, `in two hours`).
_COUNTS = {
    **{"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8},
    **{"nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20},
    **{"thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50, "ninety": 90},
}


def _counts(cursor: _Cursor) -> bool:
    """Whether the words ahead make the word just read a number: a unit (`ten minutes`), or `and
    a half` (`two and a half hours`)."""
    ahead = [word.lower() for word in cursor.peek_all()[:3]]
    unit = bool(ahead) and ahead[0] in _UNITS and len(ahead[0]) > 1
    return unit or (ahead[:2] == ["and", "a"] and ahead[2:3] != [] and ahead[2] in _AND_A)


def _continues_duration(previous: str, word: str) -> bool:
    if re.fullmatch(_NUMBER, previous, re.ASCII):
        # A number's unit, or the word in its place (`1 month`, `2 fortnights`), for the error
        # to quote with it; not an option (`step 90 weekdays`) or a courtesy (`extend 10 please`).
        return word.lower() in _UNITS or (
            word.isalpha() and not _is_option(word) and word.lower() not in _COURTESY
        )
    if previous[-1].isdigit():
        return word.lower() in _UNITS
    if word.isdigit():
        # After a unit, a number whose unit follows it; or one with none, which nothing else
        # after a duration could be: read with it, as minutes after hours (`1h 30`, as `1h30`),
        # else refused as no duration (`2d 12`).
        return True
    return bool(_DURATION.fullmatch(word))


# --- times ----------------------------------------------------------------------------------

_WEEKDAYS = {
    **dict.fromkeys(("mon", "monday"), 0),
    **dict.fromkeys(("tue", "tues", "tuesday"), 1),
    **dict.fromkeys(("wed", "weds", "wednesday"), 2),
    **dict.fromkeys(("thu", "thur", "thurs", "thursday"), 3),
    **dict.fromkeys(("fri", "friday"), 4),
    **dict.fromkeys(("sat", "saturday"), 5),
    **dict.fromkeys(("sun", "sunday"), 6),
}
# A weekday in two letters, as calendars print them (`tu 3pm`, `th 15:00`, `3pm on th`): a day
# only beside a time, as alone `we`, `mo` or `su` are as likely a word or a name.
_TWO_LETTER_DAYS = {"mo": "mon", "tu": "tue", "we": "wed", "th": "thu", "fr": "fri"}
_TWO_LETTER_DAYS |= {"sa": "sat", "su": "sun"}
_RELATIVE_DAYS = {
    **dict.fromkeys(("today", "tonight"), 0),
    # and as it is shortened or misspelled in a hurry
    **dict.fromkeys(("tomorrow", "tmrw", "tmr", "tomorow", "tommorow", "tommorrow"), 1),
}
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})", re.ASCII)
# A date as teachers write it: `12/10` (month/day, or day/month: see _calendar_date), and with
# its month in words, `dec 10`, `10 dec`, `December 10th`, `10th of december`.
_SLASH_DATE = re.compile(r"(\d{1,2})/(\d{1,2})(?:/(\d{2}|\d{4}))?", re.ASCII)
_MONTHS = {
    **dict.fromkeys(("jan", "january"), 1),
    **dict.fromkeys(("feb", "february"), 2),
    **dict.fromkeys(("mar", "march"), 3),
    **dict.fromkeys(("apr", "april"), 4),
    **dict.fromkeys(("may",), 5),
    **dict.fromkeys(("jun", "june"), 6),
    **dict.fromkeys(("jul", "july"), 7),
    **dict.fromkeys(("aug", "august"), 8),
    **dict.fromkeys(("sep", "sept", "september"), 9),
    **dict.fromkeys(("oct", "october"), 10),
    **dict.fromkeys(("nov", "november"), 11),
    **dict.fromkeys(("dec", "december"), 12),
}
_DAY_OF_MONTH = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?", re.IGNORECASE | re.ASCII)
_YEAR = re.compile(r"20\d\d", re.ASCII)
# 15:00, 3pm, 3:30 p.m., 3p; 15h30, and 15h (as French writes 15:00); 1500 (a 24-hour time
# without its colon); and 9.30am or 15.30, with the dot alone only where what follows it is no
# month: 10.03 alone is as likely a date (10 March) as a time.
_TIME = re.compile(
    r"(\d{1,2})(?:([:.h])?(\d{2})|(h))?\s*(?:([ap])(?:\.?m)?\.?)?", re.IGNORECASE | re.ASCII
)
# A time of day written H:MM without am or pm, before this hour, is asked about (see _time_of_day).
NIGHT_ENDS = 7
_AM_PM = re.compile(r"[ap](?:\.?m)?\.?", re.IGNORECASE)
# Noon as people say it; midnight alone is the coming one, but `fri midnight` is as often the
# night after Friday as the one before, and a start a day early is worse than a question.
_NOON = frozenset({"noon", "midday", "12noon"})
_MIDNIGHT = "midnight"
_MAX_GAP_MINUTES = 24 * 60  # longer than any daylight-saving gap


def _which(cursor: _Cursor) -> str | None:
    """`on`, `this` or `next` before a day (`on fri`, `this fri`, `next tue`), taken."""
    return cursor.take().lower() if _which_day_ahead(cursor) else None


_WHICH = frozenset({"on", "this", "next"})


def _is_time(word: str) -> bool:
    return bool(_TIME.fullmatch(word)) or word.lower() in _NOON or word.lower() == _MIDNIGHT


def _is_when(word: str) -> bool:
    """A time of day, and not a duration too: `start atlas 2h` is as likely `step 2h` or `in
    2h` as `at 2h`."""
    return _is_time(word) and not word.lower().endswith("h")


def _is_day_word(word: str) -> bool:
    lower = word.lower()
    if lower in _WEEKDAYS or lower in _RELATIVE_DAYS or _ISO_DATE.fullmatch(word):
        return True
    return bool(_SLASH_DATE.fullmatch(word) or (" " in word and _readings(word)))


def _month_date(cursor: _Cursor) -> str | None:
    """A date with its month in words (`dec 10`, `10 dec`, `10th of december`, `Dec 10th 2026`),
    taken, as one word."""
    ahead = cursor.peek_all()[:5]
    lower = [word.lower() for word in ahead] + ["", "", "", ""]
    # `the 10th of december`; `the 10th` alone, of this month or the next (see _next_date).
    the = 1 if lower[0] == "the" and _DAY_OF_MONTH.fullmatch(lower[1]) else 0
    lower = lower[the:]
    day_first = _DAY_OF_MONTH.fullmatch(lower[0]) and lower[1] in _MONTHS
    if day_first or (lower[0] in _MONTHS and _DAY_OF_MONTH.fullmatch(lower[1])):
        count = 2
    elif _DAY_OF_MONTH.fullmatch(lower[0]) and lower[1] == "of" and lower[2] in _MONTHS:
        count = 3
    elif the:
        count = 1
    else:
        return None
    # A year after it, where a time follows (`dec 10 2030` alone may be 20:30).
    after = lower[count + 1]
    if _YEAR.fullmatch(lower[count]) and (after == "at" or _is_time(after)):
        count += 1
    return " ".join(cursor.take() for _ in range(the + count))


def _date_after_weekday(cursor: _Cursor) -> str | None:
    """The date after a weekday (`thu dec 10`, `thu 12/10`), taken."""
    dated = _SLASH_DATE.fullmatch(cursor.peek() or "") or _ISO_DATE.fullmatch(cursor.peek() or "")
    return cursor.take() if dated else _month_date(cursor)


def _is_month_date_start(word: str) -> bool:
    """Whether a word may begin a date with its month in words (after `on`: `on dec 10`)."""
    return word.lower() in _MONTHS or bool(_DAY_OF_MONTH.fullmatch(word))


def _read_at(cursor: _Cursor, clock: _Clock) -> tuple[datetime, str | None]:
    """The start, and the time of day asked for if the clocks skip it that day (see _local)."""
    # `this fri 3pm` is `fri 3pm`; `next fri 3pm` is a week on when said on a Friday, and asked
    # about on another day (the coming Friday, or the one after?).
    which = _which(cursor)
    words, which = _when_words(cursor, which)
    if not words:
        raise _Rejected("missing_value", option="at")
    _day_without_month(cursor, words, which, clock)
    text = " ".join(words)
    day = words[0] if _is_day_word(words[0]) else None
    hour, minute = _time_of_day(" ".join(words[1:] if day else words), text, clock)
    local = _place(day, hour, minute, clock, text)
    weekday = _WEEKDAYS.get((day or "").lower()) if which == "next" else None
    if weekday is not None and local.date() == clock.today:
        local = _local(clock.today + timedelta(days=7), hour, minute, clock.zone)
    elif weekday is not None and weekday != clock.today.weekday():
        later_one = local.date() + timedelta(days=7)
        raise _Rejected(
            "which_day",
            text=_echo(f"next {text}"),
            day=_echo(words[0]),
            time=_echo(" ".join(words[1:])),
            coming=local.date(),
            after=later_one,
        )
    start = local.astimezone(UTC)
    if start <= clock.now:
        raise _Rejected("when_past", text=_echo(text))
    if start - clock.now > timedelta(seconds=MAX_AHEAD_SECONDS):
        raise _Rejected("when_too_far", text=_echo(text), days=MAX_AHEAD_SECONDS // DAY)
    _own_zone_only(cursor, local, text)
    moved = (local.hour, local.minute) != (hour, minute)
    return start, f"{hour:02d}:{minute:02d}" if moved else None


# Time zones as people write them after a time (`tue 3pm ET`, `15:00 CET`). The time is read in
# the caller's Slack zone: one of these that names it is read past, another is refused, as the
# start would be hours from the one meant.
_ZONE_WORDS = frozenset(
    {"ET", "EST", "EDT", "CT", "CST", "CDT", "MT", "MST", "MDT", "PT", "PST", "PDT", "AKST"}
    | {"AKDT", "HST", "UTC", "GMT", "BST", "IST", "WET", "WEST", "CET", "CEST", "EET", "EEST"}
    | {"MSK", "SAST", "AEST", "AEDT", "ACST", "ACDT", "AWST", "NZST", "NZDT", "JST", "KST"}
    | {"HKT", "SGT", "EASTERN", "CENTRAL", "MOUNTAIN", "PACIFIC"}
)
_OFFSET_ZONE = re.compile(r"(?:UTC|GMT)[+-]\d{1,2}(?::?\d{2})?", re.IGNORECASE | re.ASCII)
# A zone's names for winter and summer, and the ones it goes by all year, are one to people:
# `3pm EST` in July, `15:00 CET` in a Berlin summer, `3pm Eastern` mean the caller's own time.
_SAME_ZONE = [
    {"ET", "EST", "EDT", "EASTERN"},
    {"CT", "CST", "CDT", "CENTRAL"},
    {"MT", "MST", "MDT", "MOUNTAIN"},
    {"PT", "PST", "PDT", "PACIFIC"},
    {"AKST", "AKDT"},
    {"GMT", "BST"},
    {"WET", "WEST"},
    {"CET", "CEST"},
    {"EET", "EEST"},
    {"AEST", "AEDT"},
    {"ACST", "ACDT"},
    {"NZST", "NZDT"},
]


def _is_zone_word(word: str) -> bool:
    return (
        word.upper() in _ZONE_WORDS
        or bool(_OFFSET_ZONE.fullmatch(word))
        or ("/" in word and _zone(word) is not UTC)
    )


def _own_zone_only(cursor: _Cursor, local: datetime, text: str) -> None:
    """Read past a zone written after the time if it is the caller's; refuse any other."""
    word = cursor.take_if(_is_zone_word)
    if word is None:
        return
    if (cursor.peek() or "").lower() == "time":
        cursor.take()  # `3pm Eastern time`, `15:00 CET time`
    named = local.tzname() or ""
    upper = word.upper()
    if "/" in word:
        same = _zone(word).utcoffset(local.replace(tzinfo=None)) == local.utcoffset()
    elif upper in ("UTC", "GMT"):
        same = local.utcoffset() == timedelta(0)
    else:
        same = upper == named.upper() or any({upper, named} <= names for names in _SAME_ZONE)
    if not same:
        zone_name = getattr(local.tzinfo, "key", "UTC")
        raise _Rejected("zone_written", text=_echo(f"{text} {word}"), zone=zone_name, named=named)


def _when_words(cursor: _Cursor, which: str | None) -> tuple[list[str], str | None]:
    """An optional day, a time, an optional am/pm, the day first or last (`tue 15:00`, `tue at
    15:00`, `9am tomorrow`, `3pm on tue`), as day and time, and the word before the day, if
    any; else one word, so the error can name it."""
    day = _month_date(cursor) or cursor.take_if(_is_day_word) or _two_letter_day(cursor)
    if day and day.lower() in _WEEKDAYS and (date_too := _date_after_weekday(cursor)):
        day = f"{day} {date_too}"  # `thu dec 10`, `Thursday, December 10`, `thu 12/10`
    between = (cursor.peek() or "").lower() in ("at", "@")  # `dec 10 @ 3pm`, as in a calendar
    if day and between and _is_time(cursor.peek_after() or ""):
        cursor.take()
    time = cursor.take_if(_is_time)
    if time and time.isdigit() and (cursor.peek() or "").lower() == "h":
        # `15 h`, `15 h 30`: the spaced form of French typography, as `15h`, `15h30`.
        time += cursor.take() + (cursor.take_if(_MINUTES.fullmatch) or "")
    words = [w for w in [day, time] if w]
    if time and time[-1].isdigit():
        words += [w for w in [cursor.take_if(_AM_PM.fullmatch)] if w]
    if time and not day and which is None:
        which = _which(cursor)
        if after := _month_date(cursor) or cursor.take_if(_is_day_word):
            if after.lower() in _WEEKDAYS and (date_too := _date_after_weekday(cursor)):
                after = f"{after} {date_too}"
            words.insert(0, after)
        elif after := cursor.take_if(lambda w: w.lower() in _TWO_LETTER_DAYS):
            words.insert(0, _TWO_LETTER_DAYS[after.lower()])  # `3pm tu`: after a time, a day
    if not words:
        words = [w for w in [cursor.take_if(lambda w: not _is_option(w))] if w]
        # A day misspelled (`fryday 3pm`): its time too, for the answer to show both.
        if words and _meant_day(words[0]) and (time := cursor.take_if(_is_time)):
            words += [time, *[w for w in [cursor.take_if(_AM_PM.fullmatch)] if w]]
    return words, which


_MINUTES = re.compile(r"[0-5]\d", re.ASCII)


def _day_without_month(
    cursor: _Cursor, words: list[str], which: str | None, clock: _Clock, option: str = "at"
) -> None:
    """Refuse a day of the month with no month, before the time or after it (`on 5 at 3pm`,
    `at 3pm on 5`, `until 5 at 3pm`), where `on the 5th` is read: as a time, or as words left
    over, it was answered as if it were one or none."""
    before = len(words) == 1 and _DAY_OF_MONTH.fullmatch(words[0])
    after = which == "on" and _is_time(words[0]) and _DAY_OF_MONTH.fullmatch(cursor.peek() or "")
    day_of_month = before or after
    if not day_of_month:
        return
    meant = _next_date((None, 0, int(day_of_month[1])), clock.today)
    if meant is None:
        return
    if before:
        typed, time = words[0], _time_after_day(cursor)
    else:
        typed, time = cursor.take(), " ".join(words)
    if time:
        raise _Rejected(
            "day_without_month", text=_echo(typed), date=meant, time=_echo(time), option=option
        )


def _time_after_day(cursor: _Cursor) -> str | None:
    """The time after a day (`at 3pm`, `@ 3:30 pm`, `15:00`), taken, without its `at`."""
    if (cursor.peek() or "").lower() in ("at", "@") and _is_time(cursor.peek_after() or ""):
        cursor.take()
    time = cursor.take_if(_is_time)
    if time and time[-1].isdigit() and (am_pm := cursor.take_if(_AM_PM.fullmatch)):
        time = f"{time} {am_pm}"
    return time


def _two_letter_day(cursor: _Cursor) -> str | None:
    """A two-letter weekday before a time (`tu 3pm`, `th at 15:00`), taken, as its usual
    abbreviation (`tue`)."""
    word, after = (cursor.peek() or "").lower(), (cursor.peek_after() or "").lower()
    if word not in _TWO_LETTER_DAYS or not (after == "at" or _is_time(after)):
        return None
    cursor.take()
    return _TWO_LETTER_DAYS[word]


def _meant_day(word: str) -> str | None:
    """The day a word of five letters or more most likely misspells (`fryday`, `thrusday`)."""
    if len(word) < 5 or _is_day_word(word):
        return None
    days = [day for day in (*_WEEKDAYS, *_RELATIVE_DAYS) if len(day) >= 5]
    matches = difflib.get_close_matches(word.lower(), days, n=1, cutoff=0.75)
    return matches[0] if matches else None


def _time_of_day(time_text: str, text: str, clock: _Clock) -> tuple[int, int]:
    """(hour, minute) from `15:00`, `3pm`, `3:30 pm`; a bare `15` is too vague, and a bare `3`
    asked about (am or pm?)."""
    # The error's example of a date is one ahead, as the caller's calendar has it: a date
    # written into the message would be in the past, and refused, for most of its life.
    first, *rest = text.split(" ")
    meant = _meant_day(first)
    bad = _Rejected(
        "bad_when",
        text=_echo(text),
        day=(clock.today + timedelta(days=7)).isoformat(),
        ahead=clock.today + timedelta(days=7),
        meant=_echo(" ".join([meant, *rest])) if meant else None,
        day_alone=_is_day_word(text) or bool(meant and not rest),
    )
    if time_text.lower() in _NOON:
        return 12, 0
    if time_text.lower() == _MIDNIGHT:
        if first.lower() != _MIDNIGHT:
            day = text[: -len(time_text)].strip() if text.endswith(time_text) else first
            raise _Rejected("which_midnight", text=_echo(text), day=_echo(day))
        return 0, 0
    match = _TIME.fullmatch(time_text)
    hours_only, am_pm = match and match[4], match and match[5]
    bare_hour = match is not None and match[3] is None and am_pm is None and hours_only is None
    if match is not None and bare_hour and 1 <= int(match[1]) <= 12:
        # `at 3`, `dec 10 3`, `tue at 3`: a number alone is an hour, asked about as 330 is.
        raise _Rejected("time_unclear", text=_echo(text), hour=int(match[1]), minute=0)
    if match is None or bare_hour:
        raise bad
    if hours_only and am_pm:
        raise bad  # 3hpm: a 24-hour time with a 12-hour clock's pm
    if match[2] == "." and am_pm is None and 1 <= int(match[3]) <= 12:
        # 10.03: three minutes past ten, or the tenth of March? 15.30 and 16.00 are no dates.
        raise bad
    hour, minute = int(match[1]), int(match[3] or 0)
    if am_pm is not None:
        if not 1 <= hour <= 12:
            raise bad
        hour = hour % 12 + (12 if am_pm.lower() == "p" else 0)
    if hour > 23 or minute > 59:
        raise bad
    joined = match[2] is None and match[3] is not None  # 330, 1500: no colon
    # 330 for 3:30: a teacher means the afternoon, a 24-hour clock the night (1500 and 0930
    # are 24-hour times). So too 3:30 itself, at an hour when no team meets in the night (a
    # 24-hour clock writes 03:30 for that, and 7:45 may be before school); and 3h.
    night = (match[2] or hours_only) is not None and 1 <= hour < NIGHT_ENDS
    if am_pm is None and len(match[1]) == 1 and (joined and hour > 0 or night):
        raise _Rejected("time_unclear", text=_echo(text), hour=hour, minute=minute)
    return hour, minute


def _place(day: str | None, hour: int, minute: int, clock: _Clock, text: str) -> datetime:
    """The local moment meant by a day word (or none) and a time of day."""
    today = clock.today
    lower = (day or "").lower()
    if day is None:
        return _next_occurrence(today, hour, minute, clock, every=1)
    if lower in _WEEKDAYS:
        first = today + timedelta(days=(_WEEKDAYS[lower] - today.weekday()) % 7)
        return _next_occurrence(first, hour, minute, clock, every=7)
    if lower in _RELATIVE_DAYS:
        return _local(today + timedelta(days=_RELATIVE_DAYS[lower]), hour, minute, clock.zone)
    return _local(_calendar_date(day, today, text), hour, minute, clock.zone)


def _next_occurrence(first: date, hour: int, minute: int, clock: _Clock, every: int) -> datetime:
    moment = _local(first, hour, minute, clock.zone)
    if moment <= clock.now:
        moment = _local(first + timedelta(days=every), hour, minute, clock.zone)
    return moment


def _calendar_date(text: str, today: date, phrase: str) -> date:
    """A date (YYYY-MM-DD, `dec 10`, `10 dec`, `12/10`), checked to exist and to be near enough
    to place in a zone. A date without its year is its next one: `jan 5` in December is next
    January's. Of a date written with slashes, the reading (month/day or day/month) that falls
    in the days a session may be set for; asked about if both do."""
    last = today + timedelta(days=MAX_AHEAD_SECONDS // DAY + 1)
    meant = {reading: _next_date(reading, today) for reading in _readings(text)}
    dates = sorted({each for each in meant.values() if each is not None})
    if not dates:
        raise _Rejected("bad_date", text=_echo(phrase), **_month_length(meant, today))
    near = [each for each in dates if today - timedelta(days=1) <= each <= last]
    weekday = _WEEKDAYS.get(text.partition(" ")[0].lower())
    if weekday is not None and near:
        # `thu dec 10`: the date of that weekday; `fri dec 10`, where 10 December is a
        # Thursday, is asked about, as either may be the slip.
        named = [each for each in near if each.weekday() == weekday]
        if not named:
            said = text.partition(" ")[0]
            raise _Rejected("weekday_wrong", text=_echo(phrase), said=_echo(said), date=near[0])
        near = named
    if len(near) > 1:
        time = phrase[len(text) :].strip()
        raise _Rejected("which_date", text=_echo(phrase), dates=near, time=_echo(time))
    if near:
        return near[0]
    rolled = [each for reading, each in meant.items() if reading[0] is None and each is not None]
    if dates[0] < today or any(_gone_by(each, today) for each in rolled):
        raise _Rejected("when_past", text=_echo(phrase))
    raise _Rejected("when_too_far", text=_echo(phrase), days=MAX_AHEAD_SECONDS // DAY)


_Reading: TypeAlias = tuple[int | None, int, int]  # year (None: not written), month, day


def _readings(text: str) -> list[_Reading]:
    """The (year, month, day) a date word may mean: one, or two for a slash date whose day and
    month could be either (`12/10`)."""
    weekday, _, rest = text.partition(" ")
    if weekday.lower() in _WEEKDAYS and rest:
        return _readings(rest)  # `thu dec 10`: the date, its weekday checked (_calendar_date)
    if iso := _ISO_DATE.fullmatch(text):
        return [(int(iso[1]), int(iso[2]), int(iso[3]))]
    if slash := _SLASH_DATE.fullmatch(text):
        first, second = int(slash[1]), int(slash[2])
        year = None if slash[3] is None else int(slash[3]) + (2000 if len(slash[3]) == 2 else 0)
        if first > 12:
            return [(year, second, first)]  # 15/12: the day first
        return list(dict.fromkeys([(year, first, second), (year, second, first)]))
    words = [word.lower() for word in text.split(" ") if word.lower() not in ("of", "the")]
    months = [_MONTHS[word] for word in words if word in _MONTHS]
    days = [int(m[1]) for word in words if (m := _DAY_OF_MONTH.fullmatch(word))]
    years = [int(word) for word in words if _YEAR.fullmatch(word)]
    if text.lower().startswith("the ") and not months and len(words) == 1 and days:
        return [(None, 0, days[0])]  # `the 10th`: no month written (0), see _next_date
    if len(months) != 1 or len(days) != 1 or len(words) != 2 + len(years) or len(years) > 1:
        return []
    return [(years[0] if years else None, months[0], days[0])]


def _next_date(reading: _Reading, today: date) -> date | None:
    """The date read, its next one on the calendar if no year was written; None if no such
    date exists."""
    year, month, day = reading
    if month == 0:
        # `the 10th`: this month's, or if gone by or not in it (`the 31st`), the next's.
        start = today.replace(day=1)
        for ahead in range(3):
            months = start.month - 1 + ahead
            try:
                result = date(start.year + months // 12, months % 12 + 1, day)
            except ValueError:
                continue
            if result >= today:
                return result
        return None
    for each in [year] if year is not None else [today.year, today.year + 1]:
        try:
            result = date(each, month, day)
        except ValueError:
            continue
        if year is not None or result >= today:
            return result
    return None


def _gone_by(meant: date, today: date) -> bool:
    """Whether a date taken for next year's went by this year lately (`dec 1` on 8 December):
    meant for this year, and past, rather than for a day too far away."""
    try:
        this_year = meant.replace(year=meant.year - 1)
    except ValueError:
        return False
    return today - timedelta(days=183) <= this_year < today


def _month_length(meant: Mapping[_Reading, date | None], today: date) -> dict[str, object]:
    """For a day its month does not have (`feb 30`): the month, and its last day."""
    if len(meant) != 1:
        return {}
    year, month, _ = next(iter(meant))
    if not 1 <= month <= 12:
        return {}
    year = year if year is not None else today.year + (month < today.month)
    if not 1 <= year <= 9999:
        return {}
    last = date(year, month, calendar.monthrange(year, month)[1])  # 9999-12 too
    return {"month": last, "last_day": last.day}


def _local(day: date, hour: int, minute: int, zone: tzinfo) -> datetime:
    """Wall time in `zone`: a time skipped by spring-forward moves on to the first valid one;
    a repeated (fall-back) time is its first occurrence (fold=0)."""
    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
    for _ in range(_MAX_GAP_MINUTES):
        if _exists(moment):
            break
        moment += timedelta(minutes=1)
    return moment


def _exists(moment: datetime) -> bool:
    back = moment.astimezone(UTC).astimezone(moment.tzinfo)
    return (back.date(), back.time()) == (moment.date(), moment.time())


_START_OPTIONS: dict[str, _StartOption] = {
    "at": _option_at,
    "in": _option_in,
    "step": _option_step,
    "remind": _option_remind,
    "facilitator": _option_facilitator,
    "presenter": _option_presenter,
    "weekdays": _option_weekdays,
}

_HANDLERS: dict[str, _Handler] = {
    "help": _help,
    "list": _control(ListProtocols),
    "preview": _preview,
    "start": _start,
    "status": _control(Status),
    "next": _next,
    "extend": _extend,
    "pause": _control(Pause),
    "resume": _control(Resume),
    "end": _control(End),
    "notes": _notes,
    "forget": _bare(Forget),
    "cancel": _cancel,
    "rotation": _rotation,
}
SUBCOMMANDS = tuple(_HANDLERS)
# The controls that take no words: each acts at once (see _courtesy).
_CONTROLS = frozenset({"next", "pause", "resume", "end"})
# Other words a facilitator reaches for mid-session, and the subcommand each means. ("stop" is
# not here: it could mean pause or end, and end can't be undone.)
# `/protocol ?`: a question mark alone asks what the command does.
_ASKS_FOR_HELP = frozenset({"?", "??", "???"})
_MEANT: dict[str, str | None] = {
    # Going back a step, which no command does: not `preview`, the subcommand it is closest to.
    "previous": None,
    "prev": None,
    "back": None,
    "stat": "status",
    "stats": "status",
    "skip": "next",
    "advance": "next",
    "finish": "end",
    "continue": "resume",
    "unpause": "resume",
    "hold": "pause",
    # The command line's `protocolbot export`: in Slack, a session's notes are `notes`.
    "export": "notes",
    "download": "notes",
    # Words whose closest spelling is another command's, some of them one that acts (`more`
    # is nearest `forget`, `abort` `start`, `steps` `notes`); "abort" and "reset" as "stop".
    "more": "extend",
    "abort": None,
    "reset": None,
    "steps": "preview",
    "options": "help",
    "time": "status",
    "timer": "status",
    "remaining": "status",
    "summary": "notes",
    "transcript": "notes",
    # In Spanish, which many teachers write in (their replies' tags are read in it too).
    "ayuda": "help",
    "lista": "list",
    "iniciar": "start",
    "empezar": "start",
    "comenzar": "start",
    "estado": "status",
    "siguiente": "next",
    "extender": "extend",
    "pausa": "pause",
    "pausar": "pause",
    "reanudar": "resume",
    "continuar": "resume",
    "terminar": "end",
    "finalizar": "end",
    "fin": "end",
    "notas": "notes",
    "anotaciones": "notes",
    "resumen": "notes",  # a summary, not `resume`
    "detener": None,  # stop: pause or end?
    "cancelar": "cancel",
    "rotacion": "rotation",
    "rotación": "rotation",
}

# Words whose meaning hangs on the channel's session (see meant_here), by its status (None: no
# session running or paused). `restart` of a paused session is `resume`, and where none runs,
# `start`; of a running one, neither: no command starts a step over, and `start` would be
# refused while it runs.
MEANT_BY_STATUS: dict[str, dict[str | None, str | None]] = {
    "restart": {"paused": "resume", "running": None, None: "start"},
    "reiniciar": {"paused": "resume", "running": None, None: "start"},
}
