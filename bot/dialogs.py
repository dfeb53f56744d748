"""The start dialog: the modal /protocol opens, and reading what the facilitator chose."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.models.views import View

from bot.blocks import render_message
from bot.commands import DurationError, normalize, read_duration, read_reminder, unit_hint
from bot.engine.errors import Reply
from bot.protocols import Protocol
from bot.render import SLACK_MARKUP, render_text, unescape_mrkdwn

MAX_AHEAD = timedelta(days=90)
# Refusals of a start, shown under the field they are about. Slack shows an inline error as plain
# text, so each has its own words in dialog/: no mrkdwn, no mentions, no command to type.
INLINE_REFUSALS = {
    "prep/refusals/presenter_bot.j2": ("presenter", "dialog/presenter_bot.j2"),
    "prep/refusals/presenter_gone.j2": ("presenter", "dialog/presenter_gone.j2"),
    "refusals/already_running.j2": ("when", "dialog/already_running.j2"),
    "refusals/already_scheduled.j2": ("start_at", "dialog/already_scheduled.j2"),
    "prep/refusals/too_many_scheduled.j2": ("when", "dialog/too_many_scheduled.j2"),
}
# Slack's emphasis in a message: *bold*, _italic_, `code`, ~strike~ (links: SLACK_MARKUP).
_EMPHASIS = re.compile(r"(?<!\w)[*_`~]|[*_`~](?!\w)")
# What a mention taken out leaves: "the facilitator, , can" or "(facilitator )".
_GAP, _DOUBLE_COMMA = re.compile(r" +(?=[,.;:)])"), re.compile(r",(?=[,.])")


@dataclass(frozen=True)
class StartChoice:
    protocol: str
    presenter: str
    step_seconds: int | None
    start_at: datetime | None
    weekdays: bool = False
    remind_seconds: int | None = None
    step_days: int | None = None  # of step_seconds, the days typed as days (`1d`, not `24h`)


def start_view(
    library: dict[str, Protocol], metadata: dict[str, str], presenter: str | None = None
) -> dict[str, Any]:
    """The start dialog; `presenter`, the next in the channel's rotation, is picked already."""
    initial = "atlas" if "atlas" in library else sorted(library)[0]
    raw = render_text(
        "dialog/start.json.j2",
        library=library,
        initial=initial,
        alike=_alike_in_menu(library),
        metadata=json.dumps(metadata),
        presenter=presenter,
    )
    view = json.loads(raw)
    View(**view).validate_json()  # Slack's limits, checked before Slack sees it
    return view


# A menu option's text holds 75 characters: a longer name shows its first 74 and an ellipsis.
_OPTION_TEXT = 75


def _alike_in_menu(library: dict[str, Protocol]) -> set[str]:
    """The protocols whose names the start menu would show alike (the same name, or two long
    ones the same in all the menu shows of them): the menu adds their ids, to tell them apart."""
    shown: dict[str, list[str]] = {}
    for protocol in library.values():
        name = protocol.name
        cut = name if len(name) <= _OPTION_TEXT else name[: _OPTION_TEXT - 1] + "…"
        shown.setdefault(cut, []).append(protocol.id)
    return {pid for ids in shown.values() if len(ids) > 1 for pid in ids}


def _value(values: dict[str, Any], block: str) -> Any:
    element = (values.get(block) or {}).get("value") or {}
    kind = element.get("type")
    if kind in ("static_select", "radio_buttons"):
        return (element.get("selected_option") or {}).get("value")
    if kind == "users_select":
        return element.get("selected_user")
    if kind == "datetimepicker":
        return element.get("selected_date_time")
    if kind == "checkboxes":
        return [option.get("value") for option in element.get("selected_options") or []]
    return element.get("value")


def read_start(
    view: dict[str, Any], now: datetime, library: dict[str, Protocol]
) -> StartChoice | dict[str, str]:
    """The facilitator's choices, or Slack's inline errors keyed by block id."""
    values = (view.get("state") or {}).get("values") or {}
    errors: dict[str, str] = {}
    protocol = _value(values, "protocol")
    if protocol not in library:
        # Removed from the library since the dialog opened: its list has the others.
        errors["protocol"] = render_text("dialog/protocol_gone.j2")
    presenter = _value(values, "presenter")
    if not presenter:
        errors["presenter"] = render_text("dialog/presenter_bot.j2")
    step_seconds: int | None = None
    step_days: int | None = None
    # Read as the command reads it: full-width, pasted invisible characters, a full stop after.
    text = normalize(_value(values, "step") or "")
    if _value(values, "pacing") != "async" and text:
        # A length typed, Live left as it was: the session would have run in minutes.
        errors["step"] = render_text("dialog/step_live.j2", text=text[:100])
    elif _value(values, "pacing") == "async":
        if not text:
            errors["step"] = render_text("dialog/step_required.j2")
        else:
            try:
                step_seconds, step_days = read_duration(text)
            except DurationError as error:
                errors["step"] = render_text(
                    "dialog/step_bad.j2",
                    code=error.code,
                    text=text[:100],
                    limit=error.limit,
                    **unit_hint(text, error.limit),
                )
    start_at: datetime | None = None
    stamp = _value(values, "start_at")
    if _value(values, "when") != "later" and stamp is not None:
        # A time picked, Now left as it was: the session would have started at once.
        errors["when"] = render_text("dialog/start_at_now.j2")
    elif _value(values, "when") == "later":
        if stamp is None:
            errors["start_at"] = render_text("dialog/start_at_required.j2")
        else:
            start_at = datetime.fromtimestamp(int(stamp), UTC)
            if start_at <= now:
                errors["start_at"] = render_text("dialog/start_at_past.j2")
            elif start_at - now > MAX_AHEAD:
                errors["start_at"] = render_text("dialog/start_at_far.j2")
    remind_seconds: int | None = None
    remind = normalize(_value(values, "remind") or "")
    if remind and _value(values, "when") != "later":
        errors.setdefault("remind", render_text("dialog/remind_now.j2"))
    elif remind:
        try:
            remind_seconds = read_reminder(remind)
        except DurationError as error:
            errors["remind"] = render_text(
                "dialog/remind_bad.j2",
                code=error.code,
                text=remind[:100],
                limit=error.limit,
                written=error.text[:100],
                **unit_hint(remind, error.limit),
            )
    if errors:
        return errors
    weekdays = "weekdays" in (_value(values, "weekdays") or [])
    return StartChoice(
        str(protocol), str(presenter), step_seconds, start_at, weekdays, remind_seconds, step_days
    )


def inline_error(reply: Reply) -> dict[str, str]:
    """A refusal of the start as the dialog's inline errors: under its field, in plain text."""
    field, template = INLINE_REFUSALS.get(reply.template, ("when", ""))
    if template:
        return {field: render_text(template, **reply.context)[:2000]}
    # A refusal with no words of its own here: its message, with the markup taken out.
    text = render_message(reply.template, **reply.context).text
    text = _EMPHASIS.sub("", SLACK_MARKUP.sub(lambda link: link.group(2) or "", text))
    text = unescape_mrkdwn(_DOUBLE_COMMA.sub("", _GAP.sub("", text)))
    return {field: render_text("dialog/refused.j2", message=text)[:2000]}
