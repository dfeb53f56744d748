"""The group's notes ("the chart paper"): sections per tag in protocol order, and the figures."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple
from typing import Protocol as TypingProtocol

from sqlalchemy import bindparam, inspect, select
from sqlalchemy.orm import Session

from bot.blocks import Message, render_messages
from bot.engine.presenter import next_presenter_step
from bot.protocols import TAGS, Protocol, Step
from bot.render import render_text
from bot.store import raw
from bot.store.models import Contribution, ProtocolSession, StepRun


@dataclass(frozen=True)
class Item:
    text: str
    user: str
    step_index: int
    tag: str
    ts: str
    audience: str
    # What Slack called the author when the reply was recorded, if it could say.
    name: str | None = None


class _Said(NamedTuple):
    """What participation counts of a reply (an Item has these too)."""

    user: str
    step_index: int
    tag: str


class _StepTimes(NamedTuple):
    number: int  # the step's index
    started_at: datetime
    closes_at: datetime
    ended_at: datetime | None
    paused_at: datetime | None
    paused_seconds: int


def run_seconds(run: _StepTimes | StepRun) -> int:
    """How long a step ran, its pauses counted out: to its end, or to its planned close while
    it runs; to the pause that holds it (ended while paused, or paused still)."""
    end = run.paused_at or run.ended_at or run.closes_at
    return int((end - run.started_at).total_seconds()) - run.paused_seconds


@dataclass
class Notes:
    session: ProtocolSession
    protocol: Protocol
    steps: list[StepRun]
    sections: list[tuple[str, list[Item]]]
    presenter_notes: list[Item]
    participation: dict[str, Any] = field(default_factory=dict)
    # Replies recorded, then deleted (in Slack, or all at once by `/protocol forget`).
    deleted: int = 0

    @property
    def names(self) -> dict[str, str]:
        """The session's people by name, as far as their replies tell (the notes file and the
        exports show names; Slack's mrkdwn shows each reader's own name for a <@U...>)."""
        items = [i for _tag, section in self.sections for i in section] + self.presenter_notes
        return {i.user: i.name for i in items if i.name}


# A contribution's audience once deleted (see bot.engine.replies.DELETED).
DELETED = "deleted"

# Session.info key: replies read ahead for a round of steps opening (`read_ahead`), by session.
_READ_AHEAD = "notes_read_ahead"


def _items(s: Session, session_id: int) -> list[Item]:
    return _items_of(s, [session_id])[session_id]


# Built once (see bot/engine/core.py: _CHANNEL_SESSIONS).
_ITEMS = (
    select(
        Contribution.session_id,
        Contribution.text,
        Contribution.user_id,
        Contribution.step_index,
        Contribution.tag,
        Contribution.ts,
        Contribution.audience,
        Contribution.user_name,
    )
    .where(Contribution.session_id.in_(bindparam("ids", expanding=True)))
    .order_by(Contribution.session_id, Contribution.step_index, Contribution.ts)
)
_STEPS = (
    select(StepRun).where(StepRun.session_id == bindparam("session_id")).order_by(StepRun.index)
)


def _items_of(s: Session, session_ids: list[int]) -> dict[int, list[Item]]:
    """Each session's replies, in step order then as written (plain rows, no ORM objects)."""
    found: dict[int, list[Item]] = {sid: [] for sid in session_ids}
    rows = s.execute(_ITEMS, {"ids": session_ids})
    for sid, text, user, step_index, tag, ts, audience, name in rows:
        found[sid].append(Item(text, user, step_index, tag, ts, audience, name))
    return found


def section_order(protocol: Protocol) -> list[str]:
    """Tags in the order the protocol collects them. A tag no step collects (a prefix or a
    re-tag gave it) goes among its kin as TAGS, the order of PRODUCT.md 3.2, has them: after the
    last placed of the tags before it there, or else just before the next one placed. So ATLAS
    lists Questions for the presenter before Presenter reflection, and Tuning its Cool feedback
    beside the Warm."""
    order: list[str] = []
    for step in protocol.steps:
        if step.collects not in order:
            order.append(step.collects)
    for k, tag in enumerate(TAGS):
        if tag in order:
            continue
        before = [order.index(t) for t in TAGS[:k] if t in order]
        after = next((order.index(t) for t in TAGS[k + 1 :] if t in order), len(order))
        order.insert(max(before) + 1 if before else after, tag)
    return order


# What `/protocol status` reads of one session, as plain rows (on SQLite by the driver alone,
# see bot.store.raw): its group's replies, and when each of its steps ran.
_GROUP_ITEMS = raw.Statement(
    select(Contribution.user_id, Contribution.step_index, Contribution.tag)
    .where(Contribution.session_id == bindparam("session_id"), Contribution.audience == "group")
    .order_by(Contribution.step_index, Contribution.ts)
)
_STEP_TIMES = raw.Statement(
    select(
        StepRun.index,
        StepRun.started_at,
        StepRun.closes_at,
        StepRun.ended_at,
        StepRun.paused_at,
        StepRun.paused_seconds,
    )
    .where(StepRun.session_id == bindparam("session_id"))
    .order_by(StepRun.index)
)


def participation(s: Session, session_id: int, protocol: Protocol) -> dict[str, Any]:
    """The session's figures for `/protocol status`, read on their own."""
    key = {"session_id": session_id}
    items = [_Said(*row) for row in _GROUP_ITEMS.all(s, key)]
    steps = [_StepTimes(*row) for row in _STEP_TIMES.all(s, key)]
    return _participation(items, steps, protocol)


def _participation(
    items: list[_Said] | list[Item], steps: list[_StepTimes], protocol: Protocol
) -> dict[str, Any]:
    """Who said how much, in which steps, over how long: from the group's replies in step order
    and the steps' times."""
    per_step: dict[int, set[str]] = {}
    for item in items:
        per_step.setdefault(item.step_index, set()).add(item.user)
    tags = Counter(item.tag for item in items)
    return {
        "total": len(items),
        "people": len({item.user for item in items}),
        "per_person": Counter(item.user for item in items).most_common(),
        "per_step": [
            {
                "index": run.number,
                "title": protocol.step(run.number).title,
                "count": sum(1 for i in items if i.step_index == run.number),
                "people": sorted(per_step.get(run.number, set())),
                "seconds": run_seconds(run),
                # Still running (or paused): how long it ran is not known yet.
                "open": run.ended_at is None,
            }
            for run in steps
        ],
        "observations": tags.get("observation", 0),
        "interpretations": tags.get("interpretation", 0),
    }


class Reached(TypingProtocol):
    """A session as far as it got: its protocol's id and the step it reached."""

    @property
    def id(self) -> int: ...

    @property
    def protocol_id(self) -> str: ...

    @property
    def current_step(self) -> int: ...


def installed(
    library: dict[str, Protocol], session: Reached, ran: Mapping[int, str] | None = None
) -> Protocol | None:
    """The protocol `session` runs, if it can run on: installed under its id with every step the
    session has reached, each step it ran still there under its id. None when it is gone (its
    file removed, or failing validation), was cut short of that step by an operator's edit, or
    its id now names other steps (see replaced): the session is then held at its next close,
    shown from the steps it ran, and can be ended. A step whose wording changed runs as it now
    reads. `ran`: the steps' ids as the session ran them, by number (read from the session's
    step runs when not given)."""
    protocol = library.get(session.protocol_id)
    if protocol is None or len(protocol.steps) < session.current_step:
        return None
    if replaced(protocol, session, ran):
        return None
    return protocol


def replaced(protocol: Protocol, session: Reached, ran: Mapping[int, str] | None = None) -> bool:
    """A step the session ran has another id at its number in `protocol`: the operator reused
    the id for other steps (or reordered or renamed them). Its next step by number would not be
    the one its team was heading for, so the session is held as if its protocol were gone."""
    if session.current_step < 1:
        return False  # not started: nothing ran to compare
    if ran is None:
        # An ORM session's step runs, read in its transaction; a plain row, or a session read
        # apart from its steps and no longer in its transaction, is not compared.
        if not isinstance(session, ProtocolSession):
            return False
        state = inspect(session)
        if state.session is None and "steps" in state.unloaded:
            return False
        ran = {run.index: run.step_id for run in session.steps}
    return any(
        1 <= index <= len(protocol.steps) and protocol.step(index).id != step_id
        for index, step_id in ran.items()
    )


def cut_short(
    library: dict[str, Protocol], session: Reached, ran: Mapping[int, str] | None = None
) -> bool:
    """Installed, but not with the steps the session reached (see installed): cut short of
    them, or its id given to other steps."""
    return session.protocol_id in library and installed(library, session, ran) is None


def ran_steps(s: Session, session_id: int) -> dict[int, str]:
    """The ids of the steps a session ran, by number."""
    return {run.index: run.step_id for run in s.scalars(_STEPS, {"session_id": session_id})}


def shown(
    library: dict[str, Protocol],
    s: Session,
    session: Reached,
    ran_ids: Mapping[int, str] | None = None,
) -> Protocol:
    """The session's protocol, or, if it cannot run on (see installed), a stand-in: the steps
    still installed, then those it ran past them titled with their stored ids (or, its id given
    to other steps, only those it ran); enough to show what was recorded, never to run a step."""
    protocol = installed(library, session, ran_ids)
    if protocol is not None:
        return protocol
    ran = stand_in(s, session.id, session.protocol_id)
    kept = library.get(session.protocol_id)
    if kept is None or replaced(kept, session, ran_ids):
        return ran
    return replace(kept, steps=kept.steps + ran.steps[len(kept.steps) :])


def stand_in(s: Session, session_id: int, protocol_id: str) -> Protocol:
    """For a session whose protocol is no longer installed: a protocol made of the steps it ran,
    each titled with its stored id, enough to show what was recorded (never to run a step)."""
    ran = {run.index: run.step_id for run in s.scalars(_STEPS, {"session_id": session_id})}
    steps = tuple(
        Step(
            id=ran.get(index, str(index)),
            title=ran.get(index, str(index)),
            minutes=0,
            prompt="",
            guidance=(),
            presenter="speaks",
            collects="note",
        )
        for index in range(1, max(ran, default=0) + 1)
    )
    return Protocol(
        id=protocol_id, name=protocol_id, source="", summary="", presenter_prep=None, steps=steps
    )


def answers(session: ProtocolSession, protocol: Protocol, group: list[Item]) -> set[Item]:
    """The presenter's answers: what they said, kept as a note, in a step where they speak and
    the others ask them questions, after a question there. Listed under the questions, each
    after the one it follows, not apart in the Notes."""
    asked: set[int] = set()
    found: set[Item] = set()
    for item in group:  # in step order, then as written
        step = protocol.step(item.step_index)
        if step.collects != "question" or step.presenter != "speaks":
            continue
        if item.tag == "question" and item.user != session.presenter_id:
            asked.add(item.step_index)
        elif item.tag == "note" and item.user == session.presenter_id and item.step_index in asked:
            found.add(item)
    return found


def build_notes(s: Session, session: ProtocolSession, protocol: Protocol) -> Notes:
    items = _items(s, session.id)
    group = [i for i in items if i.audience == "group"]
    answered = answers(session, protocol, group)

    def section(tag: str) -> list[Item]:
        if tag == "question":
            return [i for i in group if i.tag == tag or i in answered]
        return [i for i in group if i.tag == tag and i not in answered]

    sections = [(tag, listed) for tag in section_order(protocol) if (listed := section(tag))]
    steps = list(s.scalars(_STEPS, {"session_id": session.id}))
    return Notes(
        session=session,
        protocol=protocol,
        steps=steps,
        sections=sections,
        presenter_notes=[i for i in items if i.audience == "presenter"],
        deleted=sum(1 for i in items if i.audience == DELETED),
        # From what was just read (this transaction's own changes included, by autoflush).
        participation=_participation(
            group,
            [
                _StepTimes(
                    r.index, r.started_at, r.closes_at, r.ended_at, r.paused_at, r.paused_seconds
                )
                for r in steps
            ],
            protocol,
        ),
    )


def notes_messages(notes: Notes, *, for_presenter: bool = False) -> list[Message]:
    return render_messages("notes.j2", notes=notes, for_presenter=for_presenter)


def lists_parked(protocol: Protocol, index: int, reply_step: int, tag: str) -> bool:
    """Whether step `index`'s message lists a reply of step `reply_step` tagged `tag` among
    the parked ones (see step_context)."""
    if reply_step >= index or index > len(protocol.steps):
        return False
    interpretations, listened = _parked(protocol, index)
    if tag == "interpretation":
        return interpretations and protocol.step(reply_step).collects != "interpretation"
    return tag == "question" and reply_step in listened


def _parked(protocol: Protocol, index: int) -> tuple[bool, set[int]]:
    """Whether step `index` shows parked interpretations, and the listening steps whose
    questions it gives back (none when the presenter does not speak in it)."""
    step = protocol.step(index)
    # Questions parked while the presenter listened (or while only they spoke, the others
    # reading along) since the last step where they spoke: each is listed at the step the
    # parked reply named, the presenter's next step.
    listened = {
        k
        for k in range(1, index)
        if protocol.step(k).presenter in ("silent", "only")
        and next_presenter_step(protocol, k) == index
    }
    return step.collects == "interpretation", listened if step.presenter != "silent" else set()


def read_ahead(s: Session, opening: list[tuple[int, Protocol, int]]) -> None:
    """Read in one query the replies of each (session, protocol, step about to open) whose step
    shows parked items; `step_context` then finds them in this transaction.

    The clock opens ~170 steps a second with 10,000 sessions on one-minute steps, in rounds: one
    read a session cost the round as much as the rest of its reads together.
    """
    ids = list(
        dict.fromkeys(
            sid
            for sid, protocol, index in opening
            if index <= len(protocol.steps) and any(_parked(protocol, index))
        )
    )
    if ids:
        s.info.setdefault(_READ_AHEAD, {}).update(_items_of(s, ids))


def session_items(s: Session, session_id: int) -> list[Item]:
    """A session's replies (see _items_of): those read ahead in this transaction, or read now."""
    ahead = s.info.get(_READ_AHEAD, {}).get(session_id)
    return ahead if ahead is not None else _items(s, session_id)


def step_context(
    s: Session, session: ProtocolSession, protocol: Protocol, index: int
) -> dict[str, Any]:
    """What a step message shows beyond the protocol: parked items, the presenter's statement."""
    wants_interpretations, listened = _parked(protocol, index)
    # Most steps show nothing parked and skip the read: one per step opened, 170 a second
    # with 10,000 sessions on one-minute steps.
    earlier: list[Item] = []
    if wants_interpretations or listened:
        earlier = [
            i
            for i in session_items(s, session.id)
            if i.step_index < index and i.audience == "group"
        ]
    return {
        "statement": session.statement if index == protocol.statement_step else None,
        "parked_interpretations": [
            i
            for i in earlier
            if wants_interpretations
            and i.tag == "interpretation"
            and protocol.step(i.step_index).collects != "interpretation"
        ],
        "parked_questions": [
            i for i in earlier if i.tag == "question" and i.step_index in listened
        ],
    }


# -- export ------------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _written(ts: str) -> datetime:
    """When a reply was written: its Slack ts is the moment, in seconds since the epoch."""
    return datetime.fromtimestamp(float(ts), UTC)


def export_json(notes: Notes) -> str:
    session = notes.session
    items = [i for _tag, section in notes.sections for i in section] + notes.presenter_notes
    items.sort(key=lambda i: (i.step_index, i.ts))
    # Each reply's step by the id the session ran it under, as "steps" gives it: the protocol's
    # file may have renamed a step since.
    ran = {run.index: run.step_id for run in notes.steps}
    data = {
        "session": {
            "id": session.id,
            "protocol": session.protocol_id,
            "team": session.team_id,
            "channel": session.channel_id,
            "presenter": session.presenter_id,
            "facilitator": session.facilitator_id,
            "status": session.status,
            "created_at": _iso(session.created_at),
            "starts_at": _iso(session.starts_at),
            "started_at": _iso(session.started_at),
            "ended_at": _iso(session.ended_at),
            # What work the team looked at, from the presenter's prep (None once deleted).
            "statement": session.statement,
            "link": (session.prep or {}).get("link"),
            # When retention deleted the contributions (None while they are kept).
            "purged_at": _iso(session.purged_at),
        },
        "steps": [
            {
                "index": run.index,
                "id": run.step_id,
                "title": notes.protocol.step(run.index).title,
                "started_at": _iso(run.started_at),
                "ended_at": _iso(run.ended_at),
                # How long it ran, as the notes give it: the time it was paused is counted out.
                "seconds": run_seconds(run),
                "message_ts": run.message_ts,
            }
            for run in notes.steps
        ],
        "contributions": [
            {
                "step": ran.get(i.step_index) or notes.protocol.step(i.step_index).id,
                "step_index": i.step_index,
                "user": i.user,
                "user_name": i.name,
                "text": i.text,
                "tag": i.tag,
                "ts": i.ts,
                "written_at": _iso(_written(i.ts)),
                "presenter_note": i.audience == "presenter",
            }
            for i in items
        ],
    }
    return json.dumps(data, indent=2, ensure_ascii=False)


# A cell a spreadsheet program reads as a formula (CSV injection): `=HYPERLINK(...)`, `+1`,
# `-`, `@`, or a tab or carriage return before one of them.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """A CSV cell as spreadsheet programs show it as text: one that would start a formula gets
    a leading apostrophe, as OWASP advises (the apostrophe shows; nothing runs)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _text_cell(value: str) -> str:
    """A cell a spreadsheet program would read as a number, and round: Slack's ts (16 digits,
    of which a spreadsheet keeps 15), with the leading apostrophe that keeps it text, whole."""
    return "'" + value


def export_csv(notes: Notes) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    # presenter_note as in the JSON: the presenter's own notes while listening, not the group's.
    # user_name, then written_at (UTC, as spreadsheets read a time: the ts is no time to a
    # reader) last: columns a reader of earlier exports knows keep their place.
    header = ["step", "step_title", "user", "tag", "text", "ts", "presenter_note"]
    header += ["user_name", "written_at"]
    writer.writerow(header)
    items = [i for _tag, section in notes.sections for i in section] + notes.presenter_notes
    for i in sorted(items, key=lambda i: (i.step_index, i.ts)):
        title = notes.protocol.step(i.step_index).title
        own = "yes" if i.audience == "presenter" else "no"
        written = f"{_written(i.ts):%Y-%m-%d %H:%M:%S}"
        # The ts is for finding the reply (the JSON has it bare, for programs); written_at is
        # its time for a reader.
        ts = _text_cell(i.ts)
        row = [i.step_index, title, i.user, i.tag, i.text, ts, own, i.name or "", written]
        writer.writerow([_cell(value) for value in row])
    return out.getvalue()


def export_markdown(notes: Notes, names: dict[str, str] | None = None) -> str:
    """The notes as a Markdown file; `names`: people's names beside those their replies gave."""
    return render_text("notes.md.j2", notes=notes, names={**(names or {}), **notes.names}) + "\n"
