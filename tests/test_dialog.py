"""The start dialog over signed HTTP: /protocol opens it, its submission starts a session."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import select

from bot.dialogs import inline_error
from bot.engine.errors import Reply
from bot.store.models import ProtocolSession
from tests.fakes.signing import interaction_body
from tests.harness import CHANNEL, FACILITATOR, PRESENTER, TEAM, Bot


def _opened_view(bot: Bot) -> dict[str, Any]:
    answer = bot.command("")
    assert answer == {} or not answer.get("text")
    calls = bot.standin.calls_to("views.open")
    assert len(calls) == 1
    view = calls[0].params["view"]
    return view if isinstance(view, dict) else json.loads(view)


def _submit(bot: Bot, view: dict[str, Any], **choices: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "protocol": {
            "value": {
                "type": "static_select",
                "selected_option": {"value": choices.get("protocol", "atlas")},
            }
        },
        "presenter": {
            "value": {"type": "users_select", "selected_user": choices.get("presenter", PRESENTER)}
        },
        "pacing": {
            "value": {
                "type": "radio_buttons",
                "selected_option": {"value": choices.get("pacing", "live")},
            }
        },
        "step": {"value": {"type": "plain_text_input", "value": choices.get("step")}},
        "when": {
            "value": {
                "type": "radio_buttons",
                "selected_option": {"value": choices.get("when", "now")},
            }
        },
        "start_at": {
            "value": {"type": "datetimepicker", "selected_date_time": choices.get("start_at")}
        },
        "weekdays": {
            "value": {
                "type": "checkboxes",
                "selected_options": [{"value": "weekdays"}] if choices.get("weekdays") else [],
            }
        },
        "remind": {"value": {"type": "plain_text_input", "value": choices.get("remind")}},
    }
    payload = {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "standin"},
        "user": {"id": FACILITATOR, "team_id": TEAM},
        "api_app_id": "A_APP",
        "trigger_id": "t.1",
        "view": {**view, "id": "V1", "team_id": TEAM, "state": {"values": values}},
    }
    status, body = bot.post(interaction_body(payload))
    assert status == 200, body
    return json.loads(body) if body else {}


def _sessions(bot: Bot) -> list[ProtocolSession]:
    with bot.db.session() as s:
        rows = list(s.scalars(select(ProtocolSession)))
        s.expunge_all()
        return rows


def test_slash_protocol_alone_opens_the_start_dialog(bot: Bot) -> None:
    view = _opened_view(bot)
    assert view["callback_id"] == "start_dialog"
    assert json.loads(view["private_metadata"]) == {
        "team": TEAM,
        "channel": CHANNEL,
        "enterprise": "",
    }
    blocks = {b["block_id"] for b in view["blocks"]}
    assert {"protocol", "presenter", "pacing", "step", "when", "start_at"} <= blocks
    options = next(b for b in view["blocks"] if b["block_id"] == "protocol")["element"]["options"]
    assert len(options) == len(bot.runtime.library)


def _presenter_element(bot: Bot) -> dict[str, Any]:
    """The presenter field of the dialog `/protocol` opens."""
    bot.command("")
    view = bot.standin.calls_to("views.open")[-1].params["view"]
    view = view if isinstance(view, dict) else json.loads(view)
    block = next(b for b in view["blocks"] if b["block_id"] == "presenter")
    return dict(block["element"])


def test_the_dialog_picks_the_next_presenter_of_the_teams_rotation(bot: Bot) -> None:
    # `/protocol start atlas` takes the rotation's next presenter; the dialog left the field
    # empty, and the facilitator had to remember whose turn it was.
    assert "initial_user" not in _presenter_element(bot)
    bot.command(f"rotation <@{PRESENTER}> <@U_T1>")
    bot.command("start atlas in 2d")  # PRESENTER's turn, scheduled
    assert _presenter_element(bot)["initial_user"] == "U_T1"


def test_submitting_the_dialog_starts_an_asynchronous_session(bot: Bot) -> None:
    view = _opened_view(bot)
    answer = _submit(bot, view, pacing="async", step="1d")
    assert answer == {}  # the modal closes
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    (session,) = _sessions(bot)
    assert (session.protocol_id, session.presenter_id, session.facilitator_id) == (
        "atlas",
        PRESENTER,
        FACILITATOR,
    )
    assert session.step_seconds == 86400 and session.status == "running"
    assert session.step_days == 1  # closes at the time of day it opened, as `step 1d` does
    bot.wait_until(
        lambda: any(
            c.params.get("user") == FACILITATOR for c in bot.standin.calls_to("chat.postEphemeral")
        )
    )


def test_a_step_length_typed_as_a_command_would_take_it_starts_the_session(bot: Bot) -> None:
    # Full-width, as Chinese, Japanese and Korean input methods type it, with a zero-width space
    # pasted along and a full stop: `/protocol start ... step １ｄ.` reads it; the dialog said
    # it was not a length.
    view = _opened_view(bot)
    answer = _submit(bot, view, pacing="async", step="\uff11\uff44\u200b.")
    assert answer == {}, answer
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    (session,) = _sessions(bot)
    assert (session.step_seconds, session.step_days) == (86400, 1)


def test_a_step_length_typed_in_hours_in_the_dialog_is_hours(bot: Bot) -> None:
    # As `/protocol start ... step 24h`: 24 hours across a clock change, not the time of day.
    view = _opened_view(bot)
    assert _submit(bot, view, pacing="async", step="24h") == {}
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    (session,) = _sessions(bot)
    assert (session.step_seconds, session.step_days) == (86400, 0)


def test_a_step_length_in_words_is_read_in_the_dialog_as_the_command_reads_it(
    bot: Bot,
) -> None:
    # `/protocol start ... step a day` (or `2 hours and 30 minutes`) was read, and the same
    # words in the dialog's step length were "not a length of time".
    view = _opened_view(bot)
    for n, (step, length) in enumerate(
        (
            ("a day", (86400, 1)),
            ("2 hours and 30 minutes", (9000, 0)),
            ("1 1/2 hours", (5400, 0)),
            ("1½ days", (129600, 1)),
        ),
        start=1,
    ):
        assert _submit(bot, view, pacing="async", step=step) == {}, step
        bot.wait_until(lambda n=n: len(bot.step_posts()) == n)  # type: ignore[misc]
        session = _sessions(bot)[-1]
        assert (session.step_seconds, session.step_days) == length, step
        bot.command("end")
    answer = _submit(bot, view, pacing="async", step="1 day weekdays")
    assert "not a length" in answer["errors"]["step"]


def test_a_length_typed_without_its_unit_is_shown_what_to_write(bot: Bot) -> None:
    # `2` and `1:30` were "not a length of time" and no more: 2 what, and 1:30 of what?
    view = _opened_view(bot)
    answer = _submit(bot, view, pacing="async", step="2")
    assert "2m for minutes, 2h for hours, 2d for days" in answer["errors"]["step"]
    answer = _submit(bot, view, pacing="async", step="1:30")
    assert "write 1h30m for 1 h 30 min, or 1m30s for 1 min 30 s" in answer["errors"]["step"]
    at = int(time.time()) + 3 * 86400
    later = {"pacing": "async", "step": "1d", "when": "later", "start_at": at}
    answer = _submit(bot, view, **later, remind="48")
    assert "48m for minutes, 48h for hours" in answer["errors"]["remind"]
    # Only the units within the limit: 120 days is over the 90 a step may last.
    answer = _submit(bot, view, pacing="async", step="120")
    assert answer["errors"]["step"] == "120 needs a unit: 120m for minutes, 120h for hours."
    assert _sessions(bot) == []


def test_dialog_errors_are_shown_inline_and_change_nothing(bot: Bot) -> None:
    view = _opened_view(bot)
    answer = _submit(bot, view, pacing="async")
    assert answer["response_action"] == "errors" and "step" in answer["errors"]
    for step, said in (("5x", "not a length"), ("0m", "no time"), ("400d", "longer than")):
        answer = _submit(bot, view, pacing="async", step=step)
        shown = answer["errors"]["step"]
        assert step in shown and said in shown and _plain(shown) and "/protocol" not in shown
    answer = _submit(bot, view, when="later")
    assert "start_at" in answer["errors"]
    answer = _submit(bot, view, when="later", start_at=int(time.time()) - 60)
    assert "passed" in answer["errors"]["start_at"]
    answer = _submit(bot, view, when="later", start_at=int(time.time()) + 100 * 86400)
    assert "90 days" in answer["errors"]["start_at"]
    assert _sessions(bot) == []


def test_a_step_length_or_start_time_left_with_live_or_now_is_asked_about(bot: Bot) -> None:
    # A length typed with Live left chosen started a live session (steps of minutes, not the
    # day asked for); a time picked with Now left chosen started the session at once.
    view = _opened_view(bot)
    answer = _submit(bot, view, step="1d")
    assert set(answer["errors"]) == {"step"}
    assert "1d" in answer["errors"]["step"] and "choose Asynchronous" in answer["errors"]["step"]
    tomorrow = int(time.time()) + 86400
    answer = _submit(bot, view, pacing="async", step="1d", start_at=tomorrow)
    assert set(answer["errors"]) == {"when"}
    assert "choose Later" in answer["errors"]["when"]
    assert all(_plain(shown) for shown in answer["errors"].values())
    assert _sessions(bot) == []
    assert _submit(bot, view, pacing="async", step="1d", when="later", start_at=tomorrow) == {}
    (session,) = _sessions(bot)
    assert session.status == "scheduled" and session.step_seconds == 86400


def test_the_dialog_takes_weekdays_and_the_presenters_reminder_as_the_command_does(
    bot: Bot,
) -> None:
    # `/protocol start ... weekdays remind 2d` had both; the dialog had neither.
    view = _opened_view(bot)
    blocks = {block["block_id"]: block for block in view["blocks"]}
    assert blocks["weekdays"]["element"]["type"] == "checkboxes"
    assert blocks["remind"]["optional"] is True
    at = int(time.time()) + 3 * 86400
    later = {"pacing": "async", "step": "1d", "when": "later", "start_at": at}
    for remind, said in (("5x", "not a length"), ("0h", "no time"), ("100d", "longer than")):
        shown = _submit(bot, view, **later, remind=remind)["errors"]["remind"]
        assert remind in shown and said in shown and _plain(shown)
    answer = _submit(bot, view, pacing="async", step="1d", remind="2d")
    assert set(answer["errors"]) == {"remind"} and "choose Later" in answer["errors"]["remind"]
    assert _sessions(bot) == []
    assert _submit(bot, view, **later, weekdays=True, remind="2d") == {}
    (session,) = _sessions(bot)
    assert session.weekdays is True and session.remind_seconds == 2 * 86400
    assert session.tz == "America/Los_Angeles"  # the facilitator's: their weekend


def test_the_dialogs_reminder_reads_the_words_the_command_reads(bot: Bot) -> None:
    # `remind 2 days before` was read by the command, and the same words in the dialog's
    # reminder were "not a length of time".
    view = _opened_view(bot)
    at = int(time.time()) + 3 * 86400
    later = {"pacing": "async", "step": "1d", "when": "later"}
    typed = ("2 days before", "a day in advance", "36h ahead", "the day before", "me 2h before")
    typed += ("2 days before the session", "a day before it")
    for n, remind in enumerate(typed):
        assert _submit(bot, view, **later, start_at=at + n * 3600, remind=remind) == {}, remind
    assert [session.remind_seconds for session in _sessions(bot)] == [
        2 * 86400,
        86400,
        36 * 3600,
        86400,
        7200,
        2 * 86400,
        86400,
    ]
    shown = _submit(bot, view, **later, start_at=at + 86400, remind="2 days after")
    assert "not a length" in shown["errors"]["remind"]
    # As `remind everyone 2 days before` is answered: the presenter alone is reminded.
    shown = _submit(bot, view, **later, start_at=at + 86400, remind="everyone 2 days before")
    assert shown["errors"]["remind"] == (
        "Only the presenter gets this reminder, to choose the work to bring: write 2 days before."
    )


def test_a_later_start_submitted_twice_schedules_one_session(bot: Bot) -> None:
    # A double click (or Slack's retry) booked two identical sessions: two prep DMs to the
    # presenter, two "scheduled" answers, two sessions queued one after the other.
    view = _opened_view(bot)
    at = int(time.time()) + 3 * 86400
    assert _submit(bot, view, pacing="async", step="1d", when="later", start_at=at) == {}
    again = _submit(bot, view, pacing="async", step="1d", when="later", start_at=at)
    assert list(again["errors"]) == ["start_at"] and _plain(again["errors"]["start_at"])
    assert "already scheduled here for that time" in again["errors"]["start_at"]
    assert len(_sessions(bot)) == 1

    # Typed twice, the second is told which session it is.
    command = f"start tuning <@{PRESENTER}> at tomorrow 15:00 step 1d"
    assert "scheduled" in bot.command(command)["text"]
    again = bot.command(command)["text"]
    assert "That session is already scheduled" in again and "session #2" in again
    assert len(_sessions(bot)) == 2


def test_a_protocol_gone_since_the_dialog_opened_is_refused_in_plain_words(bot: Bot) -> None:
    view = _opened_view(bot)
    answer = _submit(bot, view, protocol="old-protocol")
    assert answer["errors"] == {
        "protocol": "That protocol is no longer available here. Pick another from the list."
    }


def test_dialog_start_while_a_session_runs_is_refused_inline(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    view = _opened_view(bot)
    answer = _submit(bot, view)
    assert answer["response_action"] == "errors"
    assert "already running" in answer["errors"]["when"]
    assert len(_sessions(bot)) == 1


def test_a_later_start_waits_for_slack_to_give_the_time_zone(bot: Bot) -> None:
    view = _opened_view(bot)
    bot.standin.fail_next("users.info", status=503, times=5)
    answer = _submit(bot, view, when="later", start_at=int(time.time()) + 86400)
    assert answer["response_action"] == "errors"
    assert "time zone" in answer["errors"]["start_at"]
    assert _sessions(bot) == []


MARKUP = ("<@", "<#", "<!", "*", "`", "&lt;", "/protocol")


def _plain(text: str) -> bool:
    return not any(mark in text for mark in MARKUP)


def test_refusals_are_shown_in_plain_text_under_the_field_they_are_about(bot: Bot) -> None:
    view = _opened_view(bot)
    for presenter, said in (("U_BOT", "bot"), ("U_GONE", "left this workspace")):
        answer = _submit(bot, view, presenter=presenter)
        assert answer["response_action"] == "errors"
        assert list(answer["errors"]) == ["presenter"]
        assert said in answer["errors"]["presenter"] and _plain(answer["errors"]["presenter"])
    assert _submit(bot, view) == {}
    answer = _submit(bot, view)
    assert list(answer["errors"]) == ["when"]
    assert "already running" in answer["errors"]["when"] and _plain(answer["errors"]["when"])
    assert len(_sessions(bot)) == 1


def test_a_refusal_without_words_of_its_own_loses_its_markup() -> None:
    refusal = Reply("refusals/only_facilitator.j2", {"facilitator": "U_FAC", "action": "start"})
    assert inline_error(refusal) == {"when": "Only the facilitator, can start this session."}
