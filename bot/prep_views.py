"""The prep modals, built with slack_sdk's models; their words come from messages/prep/.

`dialog.yaml.j2` renders to YAML holding every label, hint, option and error message, so the
words stay in templates while the shapes (and Slack's limits) are checked here.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from slack_sdk.models.blocks import (
    CheckboxesElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    RadioButtonsElement,
    SectionBlock,
    UrlInputElement,
)
from slack_sdk.models.views import View

from bot.blocks import render_message
from bot.engine import prep
from bot.engine.prep_dialog import (
    REASONS,
    STATEMENT_LIMIT,
    Submission,
    fits,
    instead,
    kind_of,
    suggestions,
)
from bot.protocols import Protocol
from bot.render import render_text
from bot.store.models import ProtocolSession

CALLBACK_ID = "presenter_prep"
REASON_ACTION = "prep_reason"


def words(
    session: ProtocolSession,
    protocol: Protocol,
    library: dict[str, Protocol],
    reason: str | None = None,
    viewer: str | None = None,
) -> dict[str, Any]:
    kind = kind_of(protocol)
    text = render_text(
        "prep/dialog.yaml.j2",
        session=session,
        protocol=protocol,
        kind=kind,
        reason=reason,
        fits=fits(protocol, reason),
        suggested=instead(library, protocol, reason),
        choices={r: suggestions(library, kind, r) for r in REASONS[kind]},
        starts_label=prep.local_label(session.starts_at, session.tz),
        limit=STATEMENT_LIMIT,
        viewer=viewer,
    )
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def _mrkdwn(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text.strip())


def dialog_view(
    session: ProtocolSession,
    protocol: Protocol,
    library: dict[str, Protocol],
    reason: str | None = None,
    viewer: str | None = None,
    from_home: bool = False,
) -> dict[str, Any]:
    """The prep dialog, filled in with what the presenter sent before (if anything); `viewer`,
    who opened it: the presenter, or the facilitator filling it in for them; `from_home`:
    opened from App Home, which is published again once the prep is saved."""
    state = session.prep or {}
    kind = kind_of(protocol)
    if reason not in REASONS[kind]:
        reason = state.get("reason") if state.get("reason") in REASONS[kind] else None
    w = words(session, protocol, library, reason, viewer)
    options = {
        r: Option(
            value=r,
            text=w["reason"]["options"][r]["text"],
            description=w["reason"]["options"][r]["description"],
        )
        for r in REASONS[kind]
    }
    confirm = Option(value="yes", text=w["confirm"]["option"])
    blocks = [
        SectionBlock(block_id="intro", text=_mrkdwn(w["intro"])),
        InputBlock(
            block_id="reason",
            label=w["reason"]["label"],
            dispatch_action=True,
            element=RadioButtonsElement(
                action_id=REASON_ACTION,
                options=list(options.values()),
                initial_option=options[reason] if reason else None,
            ),
        ),
        ContextBlock(block_id="suggestion", elements=[_mrkdwn(w["suggestion"])]),
        InputBlock(
            block_id="statement",
            label=w["statement"]["label"],
            hint=w["statement"]["hint"].strip(),
            element=PlainTextInputElement(
                action_id="statement",
                multiline=True,
                max_length=STATEMENT_LIMIT,
                placeholder=w["statement"]["placeholder"],
                initial_value=session.statement or None,
            ),
        ),
        InputBlock(
            block_id="link",
            optional=True,
            label=w["link"]["label"],
            hint=w["link"]["hint"].strip(),
            element=UrlInputElement(
                action_id="link",
                placeholder=w["link"]["placeholder"],
                initial_value=state.get("link") or None,
            ),
        ),
        InputBlock(
            block_id="confirm",
            label=w["confirm"]["label"],
            element=CheckboxesElement(
                action_id="confirm",
                options=[confirm],
                initial_options=[confirm] if state.get("deidentified") else None,
            ),
        ),
    ]
    return View(
        type="modal",
        callback_id=CALLBACK_ID,
        title=w["title"],
        submit=w["submit"],
        close=w["close"],
        private_metadata=json.dumps(
            {"session_id": session.id, **({"home": True} if from_home else {})}
        ),
        blocks=blocks,
    ).to_dict()


def guidance_view(
    session: ProtocolSession, protocol: Protocol, library: dict[str, Protocol]
) -> dict[str, Any]:
    """The full guidance from the seed (000, or 002 for equity), a tap away from the DM."""
    w = words(session, protocol, library)
    message = render_message(f"prep/guidance_{kind_of(protocol)}.j2", protocol=protocol)
    return View(
        type="modal",
        title=w["guidance"]["title"],
        close=w["guidance"]["close"],
        blocks=message.blocks,
    ).to_dict()


def error_messages(
    codes: dict[str, str],
    session: ProtocolSession | None,
    protocol: Protocol | None,
    library: dict[str, Protocol],
) -> dict[str, str]:
    """Inline errors for `response_action: errors`, block by block."""
    if session is None or protocol is None:
        session_words = render_text("prep/dialog_gone.j2")
        return {block: session_words for block in codes}
    errors = words(session, protocol, library)["errors"]
    return {block: str(errors[code]).strip() for block, code in codes.items()}


def notice_view(template: str, **context: Any) -> dict[str, Any]:
    """A refusal shown in a small dialog, where a button (on App Home) has no reply under it."""
    w = yaml.safe_load(render_text("prep/notice.yaml.j2"))
    message = render_message(template, **context)
    return View(type="modal", title=w["title"], close=w["close"], blocks=message.blocks).to_dict()


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        loaded = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def session_id_of(view: dict[str, Any]) -> int | None:
    value = _metadata(view).get("session_id")
    return value if isinstance(value, int) else None


def from_home(view: dict[str, Any]) -> bool:
    """Whether the dialog was opened from App Home (see dialog_view)."""
    return _metadata(view).get("home") is True


def _value(values: dict[str, Any], block: str, action: str) -> dict[str, Any]:
    found = (values.get(block) or {}).get(action) or {}
    return found if isinstance(found, dict) else {}


def read_submission(view: dict[str, Any]) -> Submission:
    values = (view.get("state") or {}).get("values") or {}
    reason = (_value(values, "reason", REASON_ACTION).get("selected_option") or {}).get("value")
    chosen = _value(values, "confirm", "confirm").get("selected_options") or []
    return Submission(
        reason=str(reason) if reason else None,
        statement=str(_value(values, "statement", "statement").get("value") or ""),
        link=str(_value(values, "link", "link").get("value") or ""),
        confirmed=any(option.get("value") == "yes" for option in chosen),
    )
