"""The presenter's prep dialog: check and keep what they wrote, suggest a protocol, switch it.

A submission is a whole: reason, statement, link and confirmation are written together under
the session's row lock, so two submissions (a double click, two dialogs open) leave the result
of one of them, never a mix; the same content twice is one submission and says nothing new.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from bot.blocks import render_message
from bot.engine import prep
from bot.engine.core import Actor, Engine
from bot.engine.errors import Refusal, Reply
from bot.protocols import Protocol
from bot.store.models import ACTIVE, ProtocolSession

REASONS: dict[str, tuple[str, ...]] = {
    "standard": ("wondering", "revise", "dilemma"),
    "equity": ("wondering", "concerned"),
}
# Which protocols suit which reason (000: wondering, revise, dilemma; 002: wondering, concerned).
SUGGESTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("standard", "wondering"): ("atlas", "collaborative-assessment"),
    ("standard", "revise"): ("tuning", "dese-deep-dive"),
    ("standard", "dilemma"): ("consultancy",),
    ("equity", "wondering"): ("atlas-equity", "collaborative-assessment"),
    ("equity", "concerned"): ("dese-deep-dive", "dese-everyday"),
}
STATEMENT_LIMIT = 800
LINK_LIMIT = 1000
_LINK_UNSAFE = {"|": "%7C", "<": "%3C", ">": "%3E"}


@dataclass(frozen=True)
class Submission:
    reason: str | None
    statement: str
    link: str
    confirmed: bool

    def fingerprint(self) -> str:
        text = "\x1f".join((self.reason or "", self.statement, self.link))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def kind_of(protocol: Protocol) -> str:
    return protocol.presenter_prep or "standard"


def suggestions(library: dict[str, Protocol], kind: str, reason: str | None) -> list[Protocol]:
    ids = SUGGESTIONS.get((kind, reason or ""), ())
    return [library[pid] for pid in ids if pid in library]


def instead(library: dict[str, Protocol], protocol: Protocol, reason: str | None) -> list[Protocol]:
    """What to suggest instead of `protocol` for `reason`: nothing for a protocol no reason
    names (an operator's own), whose fit we cannot judge."""
    if not any(protocol.id in ids for ids in SUGGESTIONS.values()):
        return []
    return suggestions(library, kind_of(protocol), reason)


def fits(protocol: Protocol, reason: str | None) -> bool:
    return reason is None or protocol.id in SUGGESTIONS.get((kind_of(protocol), reason), ())


def clean_link(text: str) -> str:
    """An http(s) link with the characters that would break a Slack link token encoded."""
    link = text.strip()
    for char, code in _LINK_UNSAFE.items():
        link = link.replace(char, code)
    return link


def _shows_nothing(text: str) -> bool:
    """Blank to a reader: white space and invisible format characters (zero-width spaces,
    joiners, direction marks) alone, which step 1 would show as an empty quote."""
    return all(char.isspace() or unicodedata.category(char) == "Cf" for char in text)


def validate(sub: Submission, kind: str) -> dict[str, str]:
    """Problems by the block they belong to, as codes the dialog's words explain."""
    errors: dict[str, str] = {}
    if sub.reason not in REASONS[kind]:
        errors["reason"] = "reason_missing"
    if _shows_nothing(sub.statement):
        errors["statement"] = "statement_missing"
    elif len(sub.statement.strip()) > STATEMENT_LIMIT:
        errors["statement"] = "statement_long"
    # The link is optional (PRODUCT 3.2 asks for the reason, the statement and the
    # confirmation): work on paper is shared in step 1's thread instead.
    parts = urlsplit(sub.link) if sub.link else None
    if parts is not None and (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or re.search(r"\s", sub.link)
        or len(sub.link) > LINK_LIMIT
    ):
        errors["link"] = "link_bad"
    if not sub.confirmed:
        errors["confirm"] = "confirm_missing"
    return errors


def _open_to_prep(session: ProtocolSession, protocol: Protocol | None) -> bool:
    """Before the start, and until the step the statement opens (step 1 unless the protocol
    says otherwise) has closed: the statement is still wanted."""
    if protocol is None:
        return False
    at = protocol.statement_step
    return session.status == "scheduled" or (
        session.status in ACTIVE and session.current_step <= at
    )


def submit(
    engine: Engine, team_id: str, user_id: str, session_id: int, sub: Submission
) -> dict[str, str]:
    """Keep a submission; returns the errors to show in the dialog, {} when it is kept."""
    sub = Submission(sub.reason, sub.statement.strip(), clean_link(sub.link), sub.confirmed)
    with engine.transaction() as (s, _after):
        session = engine._lock(s, session_id)
        if session is None or session.team_id != team_id:
            return {"reason": "session_gone"}
        if user_id not in (session.presenter_id, session.facilitator_id):
            return {"reason": "not_yours"}
        # Cancelled while the dialog was open, and booked again for the same presenter (a
        # session is moved that way): what they wrote is for the new one.
        moved = prep.booked_again(engine, s, session, user_id)
        if moved is not None:
            session = engine._lock(s, moved.id) or session
        protocol = engine.installed(session)
        if protocol is None or not _open_to_prep(session, protocol):
            return {"reason": "session_closed"}
        errors = validate(sub, kind_of(protocol))
        if errors:
            return errors
        state = dict(session.prep or {})
        if state.get("fingerprint") == sub.fingerprint() and session.statement == sub.statement:
            return {}  # the same dialog again: already kept, already said
        first = not state.get("submitted_at")
        session.statement = sub.statement
        session.prep = {
            **state,
            "reason": sub.reason,
            "link": sub.link,
            "deidentified": True,
            "submitted_at": engine.clock.now().isoformat(),
            "submitted_by": user_id,
            "fingerprint": sub.fingerprint(),
        }
        _tell(engine, s, session, protocol, first=first, by=user_id)
    return {}


def _tell(
    engine: Engine,
    s: Session,
    session: ProtocolSession,
    protocol: Protocol,
    *,
    first: bool,
    by: str,
) -> None:
    reason = (session.prep or {}).get("reason")
    context = {
        "first": first,
        "reason": reason,
        "fits": fits(protocol, reason),
        "suggested": instead(engine.library, protocol, reason),
        "by": by,
    }
    prep.dm(engine, s, session, session.presenter_id, "prep/submitted.j2", "submitted", **context)
    # The facilitator hears of prep they did not fill in themselves, and of a better protocol
    # (the note holds the switch buttons) even when they did; presenting, the DM above has them.
    switch = session.status == "scheduled" and not context["fits"] and context["suggested"]
    if session.facilitator_id != session.presenter_id and (session.facilitator_id != by or switch):
        prep.dm(
            engine,
            s,
            session,
            session.facilitator_id,
            "prep/submitted_facilitator.j2",
            "submitted_facilitator",
            **context,
        )
    at = protocol.statement_step
    if session.status in ACTIVE and session.current_step >= at:
        # Its step is open already: the statement goes in its thread, where the team is reading,
        # and its message shows it in place of the call for one (or of the statement before).
        late = render_message("prep/statement_late.j2", session=session, updated=not first)
        engine.post(s, session, late, thread_ref=f"step:{session.id}:{at}")
        engine.show_step(s, session, protocol, at)
    elif session.status in ACTIVE and (session.prep or {}).get("link"):
        # The work is looked at first, the statement heard later (when its step opens).
        late = render_message("prep/statement_late.j2", session=session, link_only=True)
        engine.post(s, session, late, thread_ref=f"step:{session.id}:1")


def switch(engine: Engine, actor: Actor, session_id: int, protocol_id: str) -> Reply:
    """The facilitator moves a scheduled session to another protocol before it starts."""
    protocol = engine.protocol(protocol_id)
    with engine.transaction() as (s, _after):
        session = engine._lock(s, session_id)
        if session is None or session.team_id != actor.team_id:
            raise Refusal("prep/refusals/switch_gone.j2")
        engine.require_facilitator(session, actor, "switch")
        if session.status != "scheduled":
            raise Refusal("prep/refusals/switch_started.j2", session=session)
        if session.protocol_id == protocol.id:
            # A second press: done already, and nobody is told again.
            return Reply("prep/switched.j2", {"session": session, "protocol": protocol})
        before = engine.library.get(session.protocol_id)
        session.protocol_id = protocol.id
        # A reason picked from the other kind of prep's list (wondering, revise, dilemma; or
        # wondering, concerned) is not one of this protocol's: the presenter picks again.
        prep_so_far = dict(session.prep or {})
        choose_again = (
            before is not None
            and kind_of(before) != kind_of(protocol)
            and prep_so_far.pop("reason", None) is not None
        )
        if choose_again:
            session.prep = prep_so_far
        told = session.presenter_id != actor.user_id
        if told:
            prep.dm(
                engine,
                s,
                session,
                session.presenter_id,
                "prep/switched_presenter.j2",
                "switched",
                before=before,
                choose_again=choose_again,
            )
        return Reply("prep/switched.j2", {"session": session, "protocol": protocol, "told": told})


def opening(engine: Engine, team_id: str, user_id: str, session_id: int) -> ProtocolSession:
    """The session whose prep dialog `user_id` may open now (detached), or a Refusal saying why."""
    with engine.db.session() as s:
        session = s.get(ProtocolSession, session_id)
        if session is None or session.team_id != team_id:
            raise Refusal("prep/refusals/prep_closed.j2", session=None, protocol=None)
        # A button of the cancelled session's DMs opens the prep of the one booked in its place.
        session = prep.booked_again(engine, s, session, user_id) or session
        s.expunge(session)
    if user_id not in (session.presenter_id, session.facilitator_id):
        raise Refusal("prep/refusals/prep_not_yours.j2", session=session)
    protocol = engine.installed(session)
    if not _open_to_prep(session, protocol):
        raise Refusal("prep/refusals/prep_closed.j2", session=session, protocol=protocol)
    return session


def load(engine: Engine, session_id: int) -> ProtocolSession | None:
    with engine.db.session() as s:
        session = s.get(ProtocolSession, session_id)
        if session is not None:
            s.expunge(session)
        return session
