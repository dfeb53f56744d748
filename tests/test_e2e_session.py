"""A whole ATLAS session over signed HTTP against the stand-in Slack, on real (short) time."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text

from bot.engine import notes as notes_mod
from bot.export import export
from bot.slack_standin import SlackStandin
from bot.store.models import Contribution, ProtocolSession
from tests.fakes.signing import interaction_body
from tests.harness import CHANNEL, PRESENTER, SECRET, TEACHERS, TEAM, Bot
from tests.test_templates import HeldClock


def _session(bot: Bot) -> ProtocolSession:
    with bot.db.session() as s:
        session = s.scalars(select(ProtocolSession)).one()
        s.expunge(session)
        return session


def test_full_atlas_session_runs_on_time_and_keeps_the_replies(bot: Bot) -> None:
    answer = bot.command(f"start atlas <@{PRESENTER}|maria> step 2s")
    assert "starting" in answer["text"].lower()
    t1, t2, t3 = TEACHERS

    bot.wait_until(lambda: len(bot.step_posts()) >= 2)
    describe_ts = bot.step_posts()[1]["ts"]
    kept = bot.reply(t1, "There are three crossed-out attempts at the top.", describe_ts)
    edited = bot.reply(t2, "The graph has no labels.", describe_ts)
    deleted = bot.reply(t3, "Typo reply, please ignore", describe_ts)
    bot.wait_until(lambda: len(bot.standin.calls_to("reactions.add")) >= 3)
    bot.event(
        {
            "type": "message",
            "subtype": "message_changed",
            "channel": CHANNEL,
            "message": {
                "type": "message",
                "user": t2,
                "ts": edited,
                "thread_ts": describe_ts,
                "text": "The graph has no axis labels.",
            },
            "previous_message": {"ts": edited, "thread_ts": describe_ts},
            "ts": "1.0",
        }
    )
    bot.event(
        {
            "type": "message",
            "subtype": "message_deleted",
            "channel": CHANNEL,
            "deleted_ts": deleted,
            "previous_message": {"ts": deleted, "thread_ts": describe_ts},
            "ts": "2.0",
        }
    )

    bot.wait_until(
        lambda: any(str(m.get("text", "")).startswith("Notes from") for m in bot.posts()),
        timeout=30,
    )
    session = _session(bot)
    assert session.status == "ended"

    posts = [m for m in bot.posts() if not m.get("thread_ts") or m.get("reply_broadcast")]
    texts = [str(m["text"]) for m in bot.posts()]
    assert texts[0].startswith("ATLAS")  # the header comes first
    steps = bot.step_posts()
    assert [s["text"].split(" - ")[0] for s in steps] == [f"Step {k} of 6" for k in range(1, 7)]
    assert texts[-1].startswith("Notes from") or any(t.startswith("Notes from") for t in texts)
    assert len(posts) >= 7

    # Each step is posted within 1.5 s of when the schedule says it opens.
    assert session.started_at is not None
    calls = [
        c
        for c in bot.standin.calls_to("chat.postMessage")
        if str(c.params.get("text", "")).startswith("Step ")
    ]
    for k, call in enumerate(calls):
        due = session.started_at.timestamp() + 2 * k
        assert abs(call.at - due) <= 1.5, (k + 1, call.at - due)

    # The notes hold the observations, with the edit and without the deleted reply.
    notes = next(m for m in bot.posts() if str(m.get("text", "")).startswith("Notes from"))
    body = json.dumps(notes["blocks"])
    assert "three crossed-out attempts" in body
    assert "no axis labels" in body
    assert "Typo reply" not in body
    assert notes["thread_ts"] == bot.posts()[0]["ts"]  # in the header's thread
    # and the presenter gets a copy by DM (another channel: it may land just after)
    dm_channel = f"D{PRESENTER[1:]}"
    bot.wait_until(lambda: bool(bot.standin.messages(dm_channel)), timeout=10)
    assert bot.standin.messages(dm_channel)[0]["text"].startswith("Notes from")

    with bot.db.session() as s:
        data = json.loads(
            notes_mod.export_json(
                notes_mod.build_notes(
                    s, s.get(ProtocolSession, session.id), bot.runtime.library["atlas"]
                )
            )
        )
    observations = [c for c in data["contributions"] if c["tag"] == "observation"]
    assert {c["text"] for c in observations} == {
        "There are three crossed-out attempts at the top.",
        "The graph has no axis labels.",
    }
    assert {c["ts"] for c in observations} == {kept, edited}
    assert [s["title"] for s in data["steps"]][1] == "Describing the Student Work"
    assert all(s["message_ts"] for s in data["steps"])

    # The full notes are also uploaded as a Markdown file in the header's thread.
    bot.wait_until(lambda: len(bot.standin.files) == 1)
    upload = bot.standin.files[0]
    assert upload["content"].decode().startswith("# Notes: ATLAS")
    assert "three crossed-out attempts" in upload["content"].decode()
    assert upload["thread_ts"] == bot.posts()[0]["ts"]

    reactions = {c.params["name"] for c in bot.standin.calls_to("reactions.add")}
    assert "eyes" in reactions


def test_only_the_facilitator_moves_the_session_on(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    refused = bot.command("next", user=TEACHERS[0])
    assert "Only the facilitator, <@U_FAC>" in refused["text"]
    bot.settle()
    assert len(bot.step_posts()) == 1
    assert _session(bot).current_step == 1
    # an admin may act as facilitator
    bot.command("next", user="U_ADMIN")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    # the button obeys the same rule, and a stale button does nothing
    status, _ = bot.action("step_next", f"{_session(bot).id}:2", user=TEACHERS[1])
    assert status == 200
    status, _ = bot.action("step_next", f"{_session(bot).id}:1")
    bot.settle()
    assert _session(bot).current_step == 2
    bot.action("step_next", f"{_session(bot).id}:2")
    bot.wait_until(lambda: len(bot.step_posts()) == 3)
    assert _session(bot).current_step == 3


def test_forged_or_stale_requests_get_401_and_change_nothing(bot: Bot) -> None:
    from tests.fakes.signing import slash_command_body

    body = slash_command_body(f"start atlas <@{PRESENTER}> step 2s")
    assert bot.post(body, secret="not-the-secret")[0] == 401
    assert bot.post(body, timestamp=int(time.time()) - 6 * 60)[0] == 401
    from tests.harness import http_post

    assert http_post(bot.url, body, {"Content-Type": "application/x-www-form-urlencoded"})[0] == 401
    bot.settle()
    with bot.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ProtocolSession)) == 0
    assert bot.standin.calls_to("chat.postMessage") == []
    assert SECRET  # the same body with the right signature works:
    assert bot.post(body)[0] == 200


def _a_reply(thread: str) -> dict[str, Any]:
    return {
        "type": "message",
        "channel": CHANNEL,
        "user": TEACHERS[0],
        "text": "I see a chart.",
        "ts": "1800000000.000100",
        "thread_ts": thread,
    }


@contextmanager
def _out_of_reach(opened: Callable[[], Any], table: str) -> Iterator[None]:
    """A table renamed away under the bot, as with the database down; back afterwards."""
    with opened() as conn:
        conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
    try:
        yield
    finally:
        with opened() as conn:
            conn.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))


def test_retried_event_is_recorded_once(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    thread = bot.step_posts()[1]["ts"]
    event = _a_reply(thread)
    assert bot.event(event, event_id="EvSAME") == 200
    assert bot.event(event, event_id="EvSAME", retry=1) == 200
    assert bot.event(event, event_id="EvOTHER") == 200  # a duplicate delivery, new event id
    bot.wait_until(lambda: len(bot.standin.calls_to("reactions.add")) >= 1)
    bot.settle()
    with bot.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Contribution)) == 1
    assert len(bot.standin.calls_to("reactions.add")) == 1


def test_an_event_that_could_not_be_stored_is_not_acknowledged(bot: Bot) -> None:
    """Slack sends again what got no 200; what got a 200 it never sends again."""
    thread = bot.open_step()
    event = _a_reply(thread)
    with _out_of_reach(bot.db.inbox_write, "inbox"):
        assert bot.event(event, event_id="EvLATER") == 500
    assert bot.event(event, event_id="EvLATER", retry=1) == 200
    bot.wait_until(lambda: bot.recorded() == [event["ts"]])


def test_a_command_that_fails_on_our_side_says_so(bot: Bot) -> None:
    with _out_of_reach(bot.db.session, "sessions"):
        answer = bot.command(f"start atlas <@{PRESENTER}> step 1h")
    assert answer["response_type"] == "ephemeral"
    assert "Something went wrong on my side" in answer["text"]


def test_every_subscribed_event_type_is_acknowledged(bot: Bot) -> None:
    for event in (
        {"type": "message", "channel": CHANNEL, "user": "U_T1", "text": "hello", "ts": "1.1"},
        {
            "type": "message",
            "subtype": "bot_message",
            "channel": CHANNEL,
            "bot_id": "B_X",
            "text": "x",
            "ts": "1.2",
        },
        {
            "type": "reaction_added",
            "user": "U_T1",
            "reaction": "eyes",
            "item": {"type": "message", "channel": CHANNEL, "ts": "1.1"},
            "event_ts": "1.3",
        },
        {
            "type": "reaction_removed",
            "user": "U_T1",
            "reaction": "eyes",
            "item": {"type": "message", "channel": CHANNEL, "ts": "1.1"},
            "event_ts": "1.4",
        },
        {"type": "app_home_opened", "user": "U_T1", "channel": "D1", "tab": "home"},
        {"type": "app_uninstalled"},
        {"type": "tokens_revoked", "tokens": {"bot": ["U_BOT"]}},
        {"type": "member_joined_channel", "user": "U_T1", "channel": CHANNEL},
        {"type": "some_future_event"},
    ):
        assert bot.event(event) == 200, event["type"]


def test_every_kind_of_interaction_is_acknowledged(bot: Bot) -> None:
    """What Slack may send to the interactivity URL, ours or not: a 404 shows the person a
    warning, and counts against the app."""
    user = {"id": "U_T1", "team_id": TEAM}
    team = {"id": TEAM, "domain": "standin"}
    for payload in (
        # A select with options from the app (none of ours has one; a message of another
        # version of the app might).
        {
            "type": "block_suggestion",
            "user": user,
            "team": team,
            "api_app_id": "A_APP",
            "action_id": "someone_else",
            "block_id": "b",
            "value": "mar",
            "container": {"type": "message", "channel_id": CHANNEL, "message_ts": "1.1"},
        },
        {"type": "shortcut", "callback_id": "not_ours", "trigger_id": "t.1", "user": user},
        {
            "type": "message_action",
            "callback_id": "not_ours",
            "trigger_id": "t.2",
            "user": user,
            "team": team,
            "channel": {"id": CHANNEL},
            "message": {"ts": "1.1", "text": "x"},
            "response_url": bot.standin.response_url(),
        },
        {"type": "view_closed", "user": user, "team": team, "view": {"callback_id": "x"}},
    ):
        status, body = bot.post(interaction_body(payload))
        assert status == 200, (payload["type"], body)


def test_export_latest_is_the_session_that_ran_last_not_one_scheduled_after_it(bot: Bot) -> None:
    with pytest.raises(LookupError, match="no session has started"):
        export(bot.settings, "latest", "json")
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    bot.reply(TEACHERS[0], "Three crossed-out attempts at the top.", bot.step_posts()[0]["ts"])
    bot.wait_until(lambda: len(bot.recorded()) == 1)
    bot.command("end")
    ran = _session(bot).id
    bot.command(f"start tuning <@{PRESENTER}|maria> in 2d")

    exported = json.loads(export(bot.settings, "latest", "json"))
    assert exported["session"]["id"] == ran
    assert [c["text"] for c in exported["contributions"]] == [
        "Three crossed-out attempts at the top."
    ]


def test_the_export_of_a_cancelled_session_says_it_was_cancelled(bot: Bot) -> None:
    bot.command(f"start atlas <@{PRESENTER}|maria> in 2d")
    session = _session(bot)
    assert "Cancelled session" in bot.command(f"cancel {session.id}")["text"]
    exported = export(bot.settings, str(session.id), "md")
    lines = exported.splitlines()
    assert "- Started: not started" in lines
    assert any(line.startswith("- Cancelled: ") for line in lines), exported
    assert not any(line.startswith("- Ended: ") for line in lines), exported


def test_the_csv_export_tells_the_presenters_own_notes_from_the_groups_replies(bot: Bot) -> None:
    bot.open_step()
    bot.command("next")
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    bot.runtime.sender.drain(5)
    describing = bot.step_posts()[1]["ts"]
    bot.reply(TEACHERS[0], "The graph has no labels.", describing)
    # The presenter listens in step 2: what they write is their own note, not the group's.
    bot.reply(PRESENTER, "Remember to say it was a first draft.", describing)
    bot.settle()
    bot.command("end")
    rows = list(csv.DictReader(io.StringIO(export(bot.settings, "latest", "csv"))))
    marked = {row["text"]: row["presenter_note"] for row in rows}
    assert marked == {
        "The graph has no labels.": "no",
        "Remember to say it was a first draft.": "yes",
    }


def test_the_csv_export_says_when_each_reply_was_written(bot: Bot) -> None:
    # Its only time was Slack's ts (1796639254.789958), which a spreadsheet shows as
    # 1.79664E+09: no reader could tell a Monday reply from a Thursday one in a week's session.
    step = bot.open_step()
    ts = bot.reply(TEACHERS[0], "The graph has no labels.", step)
    written = datetime.fromtimestamp(float(ts), UTC)
    bot.settle()
    bot.command("end")
    (row,) = csv.DictReader(io.StringIO(export(bot.settings, "latest", "csv")))
    assert row["written_at"] == f"{written:%Y-%m-%d %H:%M:%S}", row
    (item,) = json.loads(export(bot.settings, "latest", "json"))["contributions"]
    assert item["written_at"] == written.isoformat(), item


def test_a_steps_length_counts_out_the_time_it_was_paused(
    workspace: SlackStandin, database_url: str, request: pytest.FixtureRequest
) -> None:
    # A step run for ten minutes before a weekend's pause, and five after, took a quarter of an
    # hour; the debrief figures gave it two days. One ended while paused ran until the pause.
    clock = HeldClock(datetime.now(UTC))
    bot = Bot(workspace, database_url, clock=clock).start()
    request.addfinalizer(bot.stop)
    bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    for minutes, command in ((10, "pause"), (2 * 24 * 60, "resume"), (5, "next")):
        clock.advance(minutes * 60)
        bot.command(command)
    bot.wait_until(lambda: len(bot.step_posts()) == 2)
    for minutes, command in ((20, "pause"), (60, "end")):
        clock.advance(minutes * 60)
        bot.command(command)
    bot.wait_until(lambda: "For the debrief" in json.dumps(bot.posts()))
    debrief = json.dumps(bot.posts())
    assert "Getting Started: no replies in 15 min;" in debrief
    assert "Describing the Student Work: no replies in 20 min." in debrief
    data = json.loads(export(bot.settings, "latest", "json"))
    assert [step["seconds"] for step in data["steps"]] == [15 * 60, 20 * 60]
    table = export(bot.settings, "latest", "md").splitlines()
    assert "| 1 | Getting Started | 0 | 0 | 15 min |" in table


def test_the_export_of_a_running_session_says_it_has_not_ended(bot: Bot) -> None:
    bot.open_step()
    lines = export(bot.settings, "latest", "md").splitlines()
    assert "- Ended: not yet (running)" in lines
    bot.command("pause")
    assert "- Ended: not yet (paused)" in export(bot.settings, "latest", "md").splitlines()
