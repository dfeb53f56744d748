"""Load and validate protocols/*.yaml into frozen Protocol and Step objects."""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import yaml
from jinja2 import TemplateSyntaxError, meta, nodes

from bot import render

_T = TypeVar("_T")

TAGS: tuple[str, ...] = (
    "observation",
    "interpretation",
    "implication",
    "question",
    "warm",
    "cool",
    "reflection",
    "debrief",
    "note",
)
PRESENTER_MODES: tuple[str, ...] = ("silent", "speaks", "only")
PREP_KINDS: tuple[str, ...] = ("standard", "equity")
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "protocols"
# What a step's template is rendered with (bot/engine/core.py's step_message, with
# notes.step_context's names): a `template:` that uses anything else cannot post its step.
STEP_TEMPLATE_NAMES = frozenset(
    {
        "session",
        "protocol",
        "step",
        "index",
        "count",
        "closes_at",
        "closed_at",
        "paused_remaining",
        "extension",
        "statement",
        "parked_interpretations",
        "parked_questions",
    }
)
# The protocols protocolbot comes with, in BUILTIN_DIR. A file someone adds to that folder
# runs like them, but is not one of them.
BUILTIN_IDS = frozenset(
    {
        "atlas",
        "atlas-equity",
        "collaborative-assessment",
        "consultancy",
        "dese-deep-dive",
        "dese-everyday",
        "tuning",
    }
)

_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_MAX_MINUTES = 600
# A step is one Slack message (about 13,000 characters of blocks): its own words, and room
# beside them for the presenter's statement and the replies parked for it.
_MAX_STEP_WORDS = 5000
# What the database keeps of an id: sessions.protocol_id, session_steps.step_id.
_MAX_ID = 64
# Slack caps a header block at 150 characters; the other caps keep a step message readable.
_MAX_CHARS = {
    "name": 150,
    "title": 150,
    "source": 300,
    "summary": 1000,
    "prompt": 300,
    "guidance": 200,
    "questions": 300,
    "template": 100,
    "presenter_brings": 300,
}
_PROTOCOL_REQUIRED = ("id", "name", "source", "summary", "steps")
_PROTOCOL_FIELDS = (*_PROTOCOL_REQUIRED, "presenter_prep", "asks_statement", "presenter_brings")
_STEP_REQUIRED = ("id", "title", "minutes", "prompt", "guidance", "presenter", "collects")
_STEP_FIELDS = (*_STEP_REQUIRED, "template", "everyone", "questions", "statement")


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    minutes: int
    prompt: str
    guidance: tuple[str, ...]
    presenter: str
    collects: str
    template: str | None = None
    everyone: bool = False
    questions: tuple[str, ...] = ()
    statement: bool = False


@dataclass(frozen=True)
class Protocol:
    id: str
    name: str
    source: str
    summary: str
    presenter_prep: str | None
    steps: tuple[Step, ...]
    path: Path | None = None
    # False where the steps' own words say what the presenter brings (a dilemma, a class set,
    # the rubric): the bot adds no request of its own for a statement of the assignment.
    asks_statement: bool = True
    # What the presenter's prep asks them to bring, where the protocol needs other work than
    # the prep's kind says (DESE: the task, exemplar and rubric, and a class set to sort).
    # Empty: the prep's own words (seeds 000 / 002).
    presenter_brings: tuple[str, ...] = ()

    @property
    def statement_step(self) -> int:
        """The step the presenter's statement of the assignment opens: step 1 unless one step
        says otherwise (the Collaborative Assessment Conference hears it only from step 5)."""
        return next((n for n, step in enumerate(self.steps, 1) if step.statement), 1)

    @property
    def live_minutes(self) -> int:
        return sum(step.minutes for step in self.steps)

    def step(self, index: int) -> Step:
        """The step numbered `index` as people count them: the first step is 1."""
        if not 1 <= index <= len(self.steps):
            raise IndexError(f"{self.id} has steps 1-{len(self.steps)}, not {index}")
        return self.steps[index - 1]


class ProtocolError(Exception):
    """A protocol file that cannot be used. Step fields are numbered from 1: `steps[2].collects`."""

    def __init__(
        self, file: str, field: str, problem: str, more: Sequence[ProtocolError] = ()
    ) -> None:
        super().__init__(f"{file}: {field}: {problem}")
        self.file = file
        self.field = field
        self.problem = problem
        # The file's other problems: one check shows them all, not one fix at a time.
        self.more = list(more)

    def every(self) -> list[ProtocolError]:
        """This problem and the file's others."""
        return [self, *self.more]


class _Problems:
    """A file's problems as its fields are read: a field that fails is noted, and the reading
    goes on to the fields that don't depend on it."""

    def __init__(self) -> None:
        self.found: list[ProtocolError] = []

    def read(self, check: Callable[..., _T], *args: Any) -> _T | None:
        try:
            return check(*args)
        except ProtocolError as error:
            self.found.extend(error.every())
            return None

    def note(self, file: str, field: str, problem: str) -> None:
        self.found.append(ProtocolError(file, field, problem))

    def given(
        self, raw: dict[Any, Any], key: str, check: Callable[..., _T], *args: Any
    ) -> _T | None:
        """A required field read if it is there (if not, _check_keys said so)."""
        return None if raw.get(key) is None else self.read(check, *args, raw[key])

    def raise_any(self) -> None:
        if self.found:
            first, *rest = self.found
            raise ProtocolError(first.file, first.field, first.problem, rest)


class _OneKeyOnce(yaml.constructor.SafeConstructor):
    """YAML as safe_load reads it, except that a key given twice in a mapping is an error:
    safe_load keeps the last one, so a second `prompt:` silently replaced the first. Merge keys
    (`<<: *step`, one step written from another) are read as safe_load reads them."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *step`: the keys written beside it take the place of its own
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, list | dict):
                raise yaml.constructor.ConstructorError(
                    None, None, "found a key that is a list or a mapping", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"found the key {key!r} twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _sexagesimal_as_written(constructor: Any, node: yaml.ScalarNode) -> Any:
    """YAML 1.1 reads `1:30` as 90, a number in base 60: `minutes: 1:30` was a 90-minute step,
    whether an hour and a half or a minute and a half was meant. Kept as the text it is, it is
    told as a length to write in minutes (and `title: 10:30` is the title it looks like)."""
    if ":" in str(node.value):
        return constructor.construct_scalar(node)
    if node.tag.endswith(":int"):
        return constructor.construct_yaml_int(node)
    return constructor.construct_yaml_float(node)


_OneKeyOnce.add_constructor("tag:yaml.org,2002:int", _sexagesimal_as_written)
_OneKeyOnce.add_constructor("tag:yaml.org,2002:float", _sexagesimal_as_written)


class _Loader(_OneKeyOnce, yaml.SafeLoader):
    """Pure Python: its errors say what to change (a tab, a colon) in words the C parser's lack."""


# libyaml's parser reads the library twenty times as fast (1 s of a cold start in pure Python on
# the 2-core machine); a file it refuses is read again by _Loader for the error's words.
_FastLoader: type = (
    type("_FastLoader", (_OneKeyOnce, yaml.CSafeLoader), {}) if yaml.__with_libyaml__ else _Loader
)


def _read_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_FastLoader)
    except yaml.YAMLError:
        return yaml.load(text, Loader=_Loader)  # raises, in the words of the pure Python parser


def load_protocol(path: Path, taken: Mapping[str, Protocol] | None = None) -> Protocol:
    """Read one protocol file; raise ProtocolError naming the file, the field and the problem.
    An id in `taken` (the protocols loaded before it) is one of the file's problems."""
    file = str(path)
    try:
        raw = _read_yaml(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProtocolError(file, "(file)", _yaml_problem(exc)) from exc
    except UnicodeDecodeError as exc:
        # Saved by an editor in its own encoding (Windows-1252 for a name with an accent):
        # said as the .env file's is (bot/settings.py), at the line to look at.
        line = exc.object[: exc.start].count(b"\n") + 1
        problem = f"is not UTF-8 at line {line}: save it as UTF-8"
        raise ProtocolError(file, "(file)", problem) from exc
    except OSError as exc:
        if Path(path).is_symlink() and not Path(path).exists():
            target = Path(path).readlink()
            problem = f"cannot be read: it links to {target}, which is not there (fix or remove it)"
            raise ProtocolError(file, "(file)", problem) from exc
        raise ProtocolError(file, "(file)", f"cannot be read ({exc})") from exc
    if not isinstance(raw, dict):
        _fail(file, "(file)", f"must be a mapping of protocol fields (got {_kind(raw)})")
    problems = _Problems()
    _check_keys(problems, file, "", raw, _PROTOCOL_FIELDS, _PROTOCOL_REQUIRED)
    protocol_id = problems.given(raw, "id", _ident, file, "id")
    if taken and protocol_id is not None and protocol_id in taken:
        problems.note(file, "id", _duplicate(protocol_id, taken[protocol_id]))
    name = problems.given(raw, "name", _line, file, "name")
    source = problems.given(raw, "source", _text, file, "source")
    summary = problems.given(raw, "summary", _text, file, "summary")
    prep = raw.get("presenter_prep")
    if prep == "none":  # PRODUCT 2 writes the choices as `standard` | `equity` | none
        prep = None
    if prep is not None:
        prep = problems.read(_choice, file, "presenter_prep", prep, (*PREP_KINDS, "none"))
    brings = raw.get("presenter_brings")
    brings = () if brings is None else problems.read(_text_list, file, "presenter_brings", brings)
    asks = raw.get("asks_statement", True)
    asks = problems.read(_flag, file, "asks_statement", asks)
    steps = raw.get("steps")
    if steps is None:
        steps = []  # told: required
    elif not isinstance(steps, list):
        problems.note(file, "steps", f"must be a list of steps (got {_kind(steps)})")
        steps = []
    elif not steps:
        problems.note(file, "steps", "must list at least one step (got none)")
    read = [problems.read(_load_step, file, f"steps[{n}]", item) for n, item in enumerate(steps, 1)]
    for key, check in (("id", _ident), ("title", _line)):
        # Steps are told apart by their titles in every message ("parked for step 3, *...*").
        # Read from the file, not from the steps read: a step with a problem elsewhere (its
        # minutes, a missing field) still has its id and title, and a second one alike is named.
        seen: dict[str, int] = {}
        for n, item in enumerate(steps, 1):
            value = _quietly(check, file, key, item.get(key)) if isinstance(item, dict) else None
            if value is None:
                continue
            if value in seen:
                problem = f"duplicate step {key} {value!r} (also steps[{seen[value]}])"
                problems.note(file, f"steps[{n}].{key}", problem)
            seen[value] = n
    marked = [n for n, step in enumerate(read, 1) if step is not None and step.statement]
    for n in marked[1:]:
        problem = f"only one step can open with the statement (steps[{marked[0]}] does)"
        problems.note(file, f"steps[{n}].statement", problem)
    problems.raise_any()
    loaded = tuple(step for step in read if step is not None)
    assert protocol_id and name and source and summary  # read, or raised just above
    return Protocol(
        protocol_id,
        name,
        source,
        summary,
        prep,
        loaded,
        path=Path(path),
        asks_statement=asks is not False,
        presenter_brings=brings or (),
    )


def load_library(
    dirs: Sequence[Path] | None = None,
) -> tuple[dict[str, Protocol], list[ProtocolError]]:
    """Load every *.yaml / *.yml in each directory in order; a bad file never stops the others."""
    protocols: dict[str, Protocol] = {}
    errors: list[ProtocolError] = []
    for directory in [BUILTIN_DIR] if dirs is None else [Path(d) for d in dirs]:
        if not directory.is_dir():
            problem = "not found"
            if directory.exists():  # a file, a pipe: what serve refuses as PROTOCOLS_DIR
                problem = "not a directory: name the folder that holds the protocol files"
            errors.append(ProtocolError(str(directory), "(directory)", problem))
            continue
        # By stem, so that atlas.yaml comes before atlas-equity.yaml. A link to a file that is
        # not there is kept, to be named as a file that cannot be read, not passed over.
        files = sorted(
            (
                p
                for p in directory.iterdir()
                if p.suffix in (".yaml", ".yml")
                and not p.name.startswith(".")
                and (p.is_file() or (p.is_symlink() and not p.exists()))
            ),
            key=lambda p: (p.stem, p.suffix),
        )
        # A folder's files are all read before any of them is taken: of two with one id, the
        # one named after it runs, whatever the other is called (else the first by name).
        found: dict[str, list[Protocol]] = {}
        for path in files:
            try:
                protocol = load_protocol(path, protocols)
            except ProtocolError as error:
                errors.extend(error.every())
                continue
            found.setdefault(protocol.id, []).append(protocol)
        for protocol_id, alike in found.items():
            named = [p for p in alike if p.path is not None and p.path.stem == protocol_id]
            runs = (named or alike)[0]
            protocols[protocol_id] = runs
            for other in alike:
                if other is not runs:
                    errors.append(
                        ProtocolError(str(other.path), "id", _duplicate(protocol_id, runs))
                    )
    return protocols, errors


def _duplicate(protocol_id: str, runs: Protocol) -> str:
    """Said of a file whose id another file has: which of the two the bot runs."""
    builtin = runs.path is not None and runs.path.parent == BUILTIN_DIR and runs.id in BUILTIN_IDS
    which, fix = ("the built-in one", "") if builtin else ("the one", ", or remove one of the two")
    return (
        f"duplicate protocol id {protocol_id!r}: the bot runs {which} in {runs.path} and skips "
        f"this file (give this protocol an id of its own{fix})"
    )


def advice(library: Mapping[str, Protocol]) -> list[ProtocolError]:
    """Warnings for files the bot loads all the same, but not as their writer may mean:
    - a file not named after its protocol's id, as docs/protocols.md asks (whoever looks for
      `/protocol start peer-feedback` in the folder looks for peer-feedback.yaml);
    - a presenter who listens in the step that opens with their statement of the assignment:
      that step asks them for it, in its thread when their prep did not give it, and their
      reply there is then kept as a private note and the norm recalled to them;
    - a protocol with the name of one before it (a copy of a built-in that kept its name): the
      two look alike in `/protocol list` and the start dialog, and a start by the name runs
      the first."""
    from bot.commands import name_key  # here: commands reads protocols (bot.engine.pacing)

    found = []
    by_name: dict[str, Protocol] = {}
    for protocol in library.values():
        first = by_name.setdefault(name_key(protocol.name) or protocol.id, protocol)
        if first is not protocol and protocol.path is not None:
            problem = (
                f"{protocol.name!r} is the name of {first.id} too ({first.path}), and a start "
                f"by that name runs {first.id}: give this protocol a name of its own"
            )
            found.append(ProtocolError(str(protocol.path), "name", problem))
        if protocol.path is None:
            continue
        if protocol.path.stem != protocol.id:
            named = protocol.path.with_name(f"{protocol.id}{protocol.path.suffix}")
            problem = (
                f"is {protocol.id!r}, not the file's name: rename the file {named.name}"
                if not named.exists()
                # Renamed as told, it took the place of the file that holds the name.
                else f"is {protocol.id!r}, not the file's name, and {named.name} is there "
                "already: give this protocol an id of its own, or remove one of the two files"
            )
            found.append(ProtocolError(str(protocol.path), "id", problem))
        opening = protocol.statement_step
        if protocol.asks_statement and protocol.step(opening).presenter == "silent":
            problem = (
                "the presenter listens in the step that opens with their statement of the"
                " assignment, which asks them for it: set presenter: speaks or only here, or"
                " statement: true on the step where they speak first"
            )
            found.append(ProtocolError(str(protocol.path), f"steps[{opening}].presenter", problem))
    return found


def _load_step(file: str, where: str, raw: Any) -> Step:
    if not isinstance(raw, dict):
        _fail(file, where, f"must be a mapping of step fields (got {_kind(raw)})")
    problems = _Problems()
    _check_keys(problems, file, f"{where}.", raw, _STEP_FIELDS, _STEP_REQUIRED)
    fields: dict[str, Any] = {
        "everyone": False,
        "statement": False,
        "questions": (),
        "template": None,
    }
    for key, value in raw.items():  # in the file's order, as its problems are listed
        if key not in _STEP_CHECKS or (value is None and key in (*_STEP_REQUIRED, "template")):
            continue  # unknown, or missing: told above (a template left empty is none)
        check, *choices = _STEP_CHECKS[key]
        fields[key] = problems.read(check, file, f"{where}.{key}", value, *choices)
    problems.raise_any()
    step = Step(**fields)
    words = len(step.prompt) + sum(map(len, step.guidance)) + sum(map(len, step.questions))
    if words > _MAX_STEP_WORDS:
        problem = (
            f"prompt, guidance and questions come to {words} characters, more than the "
            f"{_MAX_STEP_WORDS} a step's message has room for (move some to the summary, "
            "or split the step)"
        )
        _fail(file, where, problem)
    return step


def _quietly(check: Callable[..., _T], *args: Any) -> _T | None:
    """A field's value if it passes its check, else None (its problem is told elsewhere)."""
    try:
        return check(*args)
    except ProtocolError:
        return None


def _minutes(file: str, field: str, minutes: Any) -> int:
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        problem = f"must be a whole number of minutes (got {_kind(minutes)})"
        _fail(file, field, problem + _minutes_hint(minutes))
    if not 1 <= minutes <= _MAX_MINUTES:
        problem = f"must be from 1 to {_MAX_MINUTES} (got {minutes})"
        if minutes > _MAX_MINUTES:  # a day's step (1440) for a team that meets over days
            problem += (
                ": minutes are the step's length in a live meeting; for steps of hours or days,"
                " start the session with `step`, as in `/protocol start <id> @presenter step 1d`"
            )
        _fail(file, field, problem)
    return minutes


def _minutes_hint(value: Any) -> str:
    """What to write for a length written as people write one: `"5"`, `10 min`, `1h30`, `1:30`."""
    if not isinstance(value, str):
        return ""
    text = value.strip()
    if text.isascii() and text.isdigit():
        return f": write it without quotes, minutes: {int(text)}"
    if clock := re.fullmatch(r"(\d{1,2}):([0-5]\d)", text):
        hours, minutes = int(clock[1]), int(clock[2])
        return (
            f": write {hours * 60 + minutes} for {hours} h {minutes} min, "
            f"or {hours + (minutes >= 30)} for {hours} min {minutes} s"
        )
    from bot import commands  # here: commands reads protocols (bot.engine.pacing)

    try:
        seconds = commands.read_duration(text)[0]
    except commands.DurationError:
        return ""
    if seconds % 60:
        return ""
    return f": write the number alone, minutes: {seconds // 60}"


def _flag(file: str, field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(file, field, f"must be true or false (got {_kind(value)})")
    return value


def _check_keys(
    problems: _Problems,
    file: str,
    prefix: str,
    raw: dict[Any, Any],
    allowed: tuple[str, ...],
    required: tuple[str, ...],
) -> None:
    """Every unknown field and every missing one, each a problem of its own; a field name
    mistyped (`promt`, `Guidance`, `presenter-prep`) is one problem, that names the field."""
    meant: set[str] = set()
    for key in raw:
        if key not in allowed:
            absent = [field for field in allowed if field not in raw]
            field = _mistyped(str(key), absent)
            if field is not None:
                meant.add(field)
                problems.note(file, f"{prefix}{key}", f"unknown field: write it {field}")
                continue
            expected = f"unknown field (expected one of {', '.join(allowed)})"
            problems.note(file, f"{prefix}{key}", expected)
    for key in required:
        if raw.get(key) is None and key not in meant:
            # `guidance:` left empty for none, where the docs write `guidance: []`.
            empty = key == "guidance" and key in raw
            problems.note(
                file, f"{prefix}{key}", "is empty: write [] for none" if empty else "is required"
            )


def _mistyped(key: str, fields: list[str]) -> str | None:
    """The field a key not known was meant to be: in other case or with a hyphen for its
    underscore, or a letter or two off (`promt`, `colects`)."""
    written = key.strip().lower().replace("-", "_").replace(" ", "_")
    if written in fields:
        return written
    close = difflib.get_close_matches(written, fields, n=1, cutoff=0.8)
    return close[0] if close else None


def _text(file: str, field: str, value: Any) -> str:
    if isinstance(value, dict):
        _fail(file, field, f"must be text (got a mapping): {_quote_hint(value)}")
    if not isinstance(value, str):
        _fail(file, field, f"must be text (got {_kind(value)}){_unquoted(value)}")
    text = value.strip()
    if not text:
        _fail(file, field, "must not be empty")
    limit = _MAX_CHARS[_base_name(field)]
    if len(text) > limit:
        _fail(file, field, f"must be at most {limit} characters (got {len(text)})")
    return text


def _quote_hint(mapping: dict[Any, Any]) -> str:
    """YAML reads an unquoted `- Presenter: do this` as a mapping: the line, quoted."""
    hint = 'quote a line that has ": " in it'
    if len(mapping) != 1:
        return hint
    ((key, value),) = mapping.items()
    if not isinstance(key, str) or not isinstance(value, str | None):
        return hint
    line = f"{key}: {value}" if value else f"{key}:"
    if len(line) > 60:
        line = f"{key}: ..."
    return f"{hint}: {json.dumps(line, ensure_ascii=False)}"


def _line(file: str, field: str, value: Any) -> str:
    """A name or title: Slack headers, YAML dialogs and Markdown headings take one line."""
    text = _text(file, field, value)
    if len(text.splitlines()) > 1:
        _fail(file, field, "must be one line (it holds a line break)")
    return text


def _text_list(file: str, field: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        problem = f"must be a list of text (got {_kind(value)})"
        if isinstance(value, str):  # one bullet written on the key's own line
            key = _base_name(field)
            problem += f': write each item on a line of its own below {key}:, starting with "- "'
        _fail(file, field, problem)
    problems = _Problems()
    items = [problems.read(_text, file, f"{field}[{n}]", item) for n, item in enumerate(value, 1)]
    problems.raise_any()
    return tuple(item for item in items if item is not None)


def _ident(file: str, field: str, value: Any) -> str:
    if not isinstance(value, str) or not _ID_PATTERN.match(value):
        problem = f"must match {_ID_PATTERN.pattern}: lowercase letters, digits and hyphens"
        _fail(file, field, f"{problem} (got {value!r}){_unquoted(value) or _id_hint(value)}")
    if len(value) > _MAX_ID:
        _fail(file, field, f"must be at most {_MAX_ID} characters (got {len(value)})")
    return value


def _id_hint(value: Any) -> str:
    """The id a name written as words makes (`Describe the work`: describe-the-work; accents
    dropped, as an id takes none)."""
    if not isinstance(value, str):
        return ""
    plain = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    made = re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")
    return f": write it {made}" if made and _ID_PATTERN.match(made) else ""


def _choice(file: str, field: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        _fail(file, field, f"must be one of {', '.join(choices)} (got {_kind(value)})")
    return str(value)


def _template(file: str, field: str, value: Any) -> str:
    name = _text(file, field, value)
    messages = render.MESSAGES_DIR
    target = (messages / name).resolve()
    if Path(name).is_absolute() or not target.is_relative_to(messages.resolve()):
        _fail(file, field, f"must name a file inside {messages} (got {name!r})")
    if not target.is_file():
        _fail(file, field, f"no such template in {messages} (got {name!r})")
    env = render.environment()
    try:
        parsed = env.parse(target.read_text(encoding="utf-8"))
    except TemplateSyntaxError as error:
        _fail(file, field, f"{name} line {error.lineno}: {error.message}")
    if _writes_nothing(parsed):
        # A partial (`_tags.j2`): checked ok, its step was posted with nothing in it.
        _fail(
            file,
            field,
            f"{name} writes nothing of its own (it only sets names and macros for other "
            "templates to include): name a step's message, such as step.j2",
        )
    unknown = meta.find_undeclared_variables(parsed) - STEP_TEMPLATE_NAMES - set(env.globals)
    unknown -= _guarded(parsed)
    if unknown:
        # Checked here, not at the first /protocol start, which failed with "Something went
        # wrong on my side" for a template in messages/ that is not a step's (header.j2).
        _fail(
            file,
            field,
            f"{name} is not a step's message: it uses {', '.join(sorted(unknown))}, which a "
            f"step's message does not have (it has {', '.join(sorted(STEP_TEMPLATE_NAMES))})",
        )
    return name


def _writes_nothing(parsed: nodes.Template) -> bool:
    """A template whose top level only defines (`set`, `macro`, imports) and spaces them out:
    a file meant to be included by others, which renders as an empty message."""
    defines = (nodes.Macro, nodes.Assign, nodes.AssignBlock, nodes.Import, nodes.FromImport)
    for node in parsed.body:
        if isinstance(node, defines):
            continue
        if isinstance(node, nodes.Output) and all(
            isinstance(part, nodes.TemplateData) and not part.data.strip() for part in node.nodes
        ):
            continue
        return False
    return True


def _guarded(parsed: nodes.Template) -> set[str]:
    """Names a template asks after before it uses them (`x is defined`, `x | default(...)`):
    rendered without them, it takes the other way and does not fail."""
    tests = [t.node for t in parsed.find_all(nodes.Test) if t.name in ("defined", "undefined")]
    filters = [f.node for f in parsed.find_all(nodes.Filter) if f.name in ("default", "d")]
    return {n.name for n in [*tests, *filters] if isinstance(n, nodes.Name)}


def _unquoted(value: Any) -> str:
    """What to do with a value YAML read as a number, true/false or a date (`id: 2024`,
    `id: yes`, `title: 2024-01-01`): written in quotes, it is the text it looks like."""
    if isinstance(value, bool | int | float | date):
        return ": YAML read it as a number, true/false or a date: write it in quotes"
    return ""


def _base_name(field: str) -> str:
    """`steps[2].guidance[1]` -> `guidance`: the key that sets a field's length limit."""
    return re.sub(r"\[\d+\]", "", field).rsplit(".", 1)[-1]


def _kind(value: Any) -> str:
    """How a wrong value is shown in an error: scalars as written, containers by kind."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        shown = repr(value)
        return shown if len(shown) <= 40 else shown[:37] + "..."
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"a {type(value).__name__}"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        parts = [p for p in (exc.context, exc.problem) if p]
        said = f"invalid YAML: {', '.join(parts)} (line {mark.line + 1}, column {mark.column + 1})"
        # The two slips of a first protocol file, said in YAML's words alone: what to change.
        if "'\\t'" in (exc.problem or ""):
            said += ": YAML takes no tabs: write spaces instead"
        elif exc.problem == "mapping values are not allowed here":
            said += ': quote a line that has ": " in it, or indent it as the lines around it'
        return said
    return f"invalid YAML: {exc}"


def _fail(file: str, field: str, problem: str) -> NoReturn:
    raise ProtocolError(file, field, problem)


# Each step field's check, and the choices it takes.
_STEP_CHECKS: dict[str, tuple[Any, ...]] = {
    "id": (_ident,),
    "title": (_line,),
    "minutes": (_minutes,),
    "prompt": (_text,),
    "guidance": (_text_list,),
    "presenter": (_choice, PRESENTER_MODES),
    "collects": (_choice, TAGS),
    "template": (_template,),
    "everyone": (_flag,),
    "questions": (_text_list,),
    "statement": (_flag,),
}
