"""Many workspaces: nothing crosses between them, and a workspace that leaves stops cleanly."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy import text as sql_text

from bot.engine.replies import ANY_WORKSPACE, shared_channel_teams
from bot.scheduling import start_job_id, step_job_id
from bot.settings import Settings
from bot.slack_standin import SlackStandin
from bot.store.db import Database
from bot.store.migrate import upgrade
from bot.store.models import Contribution, InboxEvent, OutboxMessage, ProtocolSession, StepRun
from tests.fakes.signing import interaction_body, signed_headers, slash_command_body
from tests.harness import (
    CHANNEL,
    FACILITATOR,
    PRESENTER,
    SECRET,
    TEACHERS,
    Bot,
    http_post,
    wait_until,
)
from tests.test_oauth import MANIFEST, TEAM_A, TEAM_B, OAuthBot

START = f"start atlas <@{PRESENTER}|maria> step 1h"
NO_SESSION = "No protocol session is running in this channel"
NO_NOTES = "There are no notes in this channel yet"


@pytest.fixture
def two_schools(workspace: SlackStandin, database_url: str) -> Iterator[OAuthBot]:
    """Workspaces A and B have both installed the app; each has a channel with the same id."""
    running = OAuthBot(workspace, database_url).start()
    try:
        running.install(TEAM_A)
        running.install(TEAM_B)
        yield running
    finally:
        running.stop()


# -- helpers -----------------------------------------------------------------------------------
def _said(answer: dict[str, Any]) -> str:
    return json.dumps(answer)


def _status(bot: Bot, team: str) -> str:
    """What /protocol status says, but for the seconds left, which tick on."""
    return re.sub(r"\(in [^)]*\)", "(in …)", _said(bot.command("status", team=team)))


def _sessions(bot: Bot) -> list[tuple[str, str, int]]:
    with bot.db.session() as s:
        rows = s.execute(
            select(
                ProtocolSession.team_id, ProtocolSession.status, ProtocolSession.current_step
            ).order_by(ProtocolSession.id)
        ).all()
    return [tuple(row) for row in rows]


def _snapshot(bot: Bot) -> list[tuple[Any, ...]]:
    """Everything a session is, short of its timestamps: for before-and-after comparisons."""
    with bot.db.session() as s:
        rows = s.execute(
            select(
                ProtocolSession.id,
                ProtocolSession.team_id,
                ProtocolSession.status,
                ProtocolSession.current_step,
                ProtocolSession.protocol_id,
                ProtocolSession.facilitator_id,
                ProtocolSession.statement,
                ProtocolSession.prep,
                ProtocolSession.step_closes_at,
            ).order_by(ProtocolSession.id)
        ).all()
    return [tuple(row) for row in rows]


def _session_id(bot: Bot, team: str) -> int:
    with bot.db.session() as s:
        return s.scalars(
            select(ProtocolSession.id).where(ProtocolSession.team_id == team).limit(1)
        ).one()


def _step_ts(bot: Bot, session_id: int, index: int) -> str:
    def posted() -> str | None:
        with bot.db.session() as s:
            return s.scalars(
                select(StepRun.message_ts).where(
                    StepRun.session_id == session_id, StepRun.index == index
                )
            ).first()

    bot.wait_until(lambda: posted() is not None)
    ts = posted()
    assert ts is not None
    return ts


def _settled(bot: Bot) -> None:
    """Wait until every stored event has been handled, and every due post sent."""

    def done() -> bool:
        with bot.db.inbox_session() as s:
            waiting = s.scalar(
                select(func.count())
                .select_from(InboxEvent)
                .where(InboxEvent.processed_at.is_(None))
            )
        return waiting == 0

    bot.wait_until(done)
    bot.runtime.sender.drain()


def _contributions(bot: Bot) -> list[tuple[str, str, str, str]]:
    with bot.db.session() as s:
        rows = s.execute(
            select(
                Contribution.team_id, Contribution.ts, Contribution.text, Contribution.tag
            ).order_by(Contribution.id)
        ).all()
    return [tuple(row) for row in rows]


def _press(bot: Bot, action_id: str, value: str, *, team: str, user: str = FACILITATOR) -> None:
    status, body = bot.action(action_id, value, user=user, team=team)
    assert status == 200, body


def _submit_prep(
    bot: Bot, session_id: int, *, team: str, user: str, installed: str | None = None
) -> str:
    """The presenter-prep dialog submitted from `team`, naming a session by its id; from the
    other side of a Slack Connect channel, Slack names our workspace in `installed`. Returns
    the answer."""
    values = {
        "reason": {"prep_reason": {"selected_option": {"value": "wondering"}}},
        "statement": {"statement": {"value": "Statement from another school"}},
        "link": {"link": {"value": "https://example.org/work.pdf"}},
        "confirm": {"confirm": {"selected_options": [{"value": "yes"}]}},
    }
    payload = {
        "type": "view_submission",
        "team": {"id": team, "domain": team.lower()},
        "user": {"id": user, "team_id": team},
        "api_app_id": "A_APP",
        "view": {
            "id": "V_PREP",
            "team_id": team,
            "type": "modal",
            "callback_id": "presenter_prep",
            "private_metadata": json.dumps({"session_id": session_id}),
            "state": {"values": values},
            **({"app_installed_team_id": installed} if installed else {}),
        },
    }
    status, body = bot.post(interaction_body(payload))
    assert status == 200, body
    return body


def _responses(bot: Bot) -> str:
    return json.dumps([call.params for call in bot.standin.calls_to("response_url")])


def _leave(bot: Bot, team: str, event: dict[str, Any]) -> None:
    assert bot.event(event, team=team) == 200
    _settled(bot)


# -- isolation ---------------------------------------------------------------------------------
def test_workspace_b_cannot_see_or_change_workspace_a_in_a_channel_with_the_same_id(
    two_schools: OAuthBot,
) -> None:
    bot = two_schools
    t1, t2, _ = TEACHERS
    assert "starting" in bot.command(START, team=TEAM_A)["text"].lower()
    bot.command(f"start atlas <@{PRESENTER}|maria> in 3h", team=TEAM_A)  # one scheduled ahead
    a = _session_id(bot, TEAM_A)
    _step_ts(bot, a, 1)
    bot.command("next", team=TEAM_A)
    describe_ts = _step_ts(bot, a, 2)
    kept = bot.reply(t1, "I think they were confused by the graph.", describe_ts, team=TEAM_A)
    _settled(bot)
    contribution_id = _session_contribution_id(bot, kept)
    before = (_snapshot(bot), _contributions(bot), _status(bot, TEAM_A))
    assert before[1] == [(TEAM_A, kept, "I think they were confused by the graph.", "observation")]
    a_posts = len(bot.standin.calls_to("chat.postMessage"))

    # Every command from B, in the same channel id, by the same facilitator.
    status = _said(bot.command("status", team=TEAM_B))
    assert NO_SESSION in status and "ATLAS" not in status and "Scheduled here" not in status
    for text in ("next", "end", "pause", "resume", "extend 1h"):
        assert NO_SESSION in _said(bot.command(text, team=TEAM_B)), text
    for text in ("notes", "forget"):
        assert NO_NOTES in _said(bot.command(text, team=TEAM_B)), text
    assert "ATLAS" not in _said(bot.command(f"cancel {a + 1}", team=TEAM_B))

    # Events sent with team B that point at A's messages.
    bot.reply(t2, "Another observation", describe_ts, team=TEAM_B)
    bot.event(
        {
            "type": "reaction_added",
            "user": FACILITATOR,
            "reaction": "bulb",
            "item": {"type": "message", "channel": CHANNEL, "ts": kept},
            "event_ts": f"{time.time():.6f}",
        },
        team=TEAM_B,
    )
    bot.event(
        {
            "type": "message",
            "subtype": "message_changed",
            "channel": CHANNEL,
            "message": {"user": t1, "ts": kept, "thread_ts": describe_ts, "text": "I: rewritten"},
            "previous_message": {"ts": kept, "thread_ts": describe_ts},
            "ts": f"{time.time():.6f}",
        },
        team=TEAM_B,
    )
    bot.event(
        {
            "type": "message",
            "subtype": "message_deleted",
            "channel": CHANNEL,
            "deleted_ts": kept,
            "previous_message": {"ts": kept, "thread_ts": describe_ts},
            "ts": f"{time.time():.6f}",
        },
        team=TEAM_B,
    )
    # Buttons pressed from B carrying A's session and contribution ids.
    _press(bot, "step_next", f"{a}:2", team=TEAM_B)
    _press(bot, "nudge_park", str(contribution_id), team=TEAM_B, user=t1)
    _press(bot, "nudge_keep", str(contribution_id), team=TEAM_B, user=t1)
    _press(bot, "home_notes", str(a), team=TEAM_B)
    _press(bot, "prep_open", str(a + 1), team=TEAM_B, user=PRESENTER)
    _press(bot, "prep_switch", f"{a + 1}:tuning", team=TEAM_B)
    _submit_prep(bot, a + 1, team=TEAM_B, user=PRESENTER)
    # B's Home tab lists none of A's sessions, though the same people are in both.
    bot.event({"type": "app_home_opened", "user": FACILITATOR, "tab": "home"}, team=TEAM_B)
    _settled(bot)

    after = (_snapshot(bot), _contributions(bot), _status(bot, TEAM_A))
    assert after == before
    assert NO_SESSION in _responses(bot)
    assert "no longer being collected" in _responses(bot)
    assert len(bot.standin.calls_to("chat.postMessage")) == a_posts
    assert bot.standin.calls_to("views.open") == []
    homes = bot.standin.calls_to("views.publish")
    assert homes and all("ATLAS" not in json.dumps(call.params) for call in homes)
    assert bot.standin.calls_to("reactions.remove") == []
    # B's token only ever read who asked and drew B's own Home tab: it wrote nothing in A.
    token_b = bot.installations.bot_token(TEAM_B)
    used = {c.method for c in bot.standin.calls if c.token == token_b}
    assert used <= {"auth.test", "users.info", "views.publish"}, used


def _session_contribution_id(bot: Bot, ts: str) -> int:
    with bot.db.session() as s:
        return s.scalars(select(Contribution.id).where(Contribution.ts == ts)).one()


def test_two_workspaces_run_sessions_in_same_channel_id_without_touching_each_other(
    two_schools: OAuthBot,
) -> None:
    bot = two_schools
    bot.command(START, team=TEAM_A)
    bot.command(f"start dese-everyday <@{PRESENTER}|maria> step 1h", team=TEAM_B)
    a, b = _session_id(bot, TEAM_A), _session_id(bot, TEAM_B)
    a_ts, b_ts = _step_ts(bot, a, 1), _step_ts(bot, b, 1)
    bot.reply(TEACHERS[0], "From school A", a_ts, team=TEAM_A)
    bot.reply(TEACHERS[0], "From school B", b_ts, team=TEAM_B)
    # Each thread answered from the other workspace is not collected.
    bot.reply(TEACHERS[1], "A's thread, B's team", a_ts, team=TEAM_B)
    bot.reply(TEACHERS[1], "B's thread, A's team", b_ts, team=TEAM_A)
    bot.command("next", team=TEAM_A)
    _settled(bot)

    assert [(team, status, step) for team, status, step in _sessions(bot)] == [
        (TEAM_A, "running", 2),
        (TEAM_B, "running", 1),
    ]
    assert [(team, text) for team, _ts, text, _tag in _contributions(bot)] == [
        (TEAM_A, "From school A"),
        (TEAM_B, "From school B"),
    ]
    assert "ATLAS" in _said(bot.command("status", team=TEAM_A))
    assert "ATLAS" not in _said(bot.command("status", team=TEAM_B))

    assert "ended" in _said(bot.command("end", team=TEAM_A)).lower()
    _settled(bot)
    assert [status for _t, status, _s in _sessions(bot)] == ["ended", "running"]
    with bot.db.session() as s:
        posted = s.execute(select(OutboxMessage.team_id, OutboxMessage.status)).all()
    tokens = {team: bot.installations.bot_token(team) for team in (TEAM_A, TEAM_B)}
    calls = [c for c in bot.standin.calls if c.method in ("chat.postMessage", "reactions.add")]
    assert {c.token for c in calls} == set(tokens.values())
    assert all(status == "sent" for _team, status in posted)


# -- leaving -----------------------------------------------------------------------------------
def test_uninstall_stops_that_workspaces_sessions_drops_its_posts_and_deletes_its_tokens(
    two_schools: OAuthBot,
) -> None:
    bot = two_schools
    bot.command(START, team=TEAM_B)
    bot.command(START, team=TEAM_A)
    bot.command(f"start atlas <@{PRESENTER}|maria> in 3h", team=TEAM_A)
    a, b = _session_id(bot, TEAM_A), _session_id(bot, TEAM_B)
    _step_ts(bot, a, 1)
    _step_ts(bot, b, 1)
    _settled(bot)
    scheduler = bot.runtime.scheduler
    assert scheduler is not None
    assert scheduler._aps.get_job(step_job_id(a, 1)) is not None
    assert scheduler._aps.get_job(start_job_id(a + 1)) is not None

    # A's next step post is held back by Slack (429), so it is still pending at the uninstall.
    bot.standin.fail_next("chat.postMessage", status=429, retry_after=120)
    bot.command("next", team=TEAM_A)
    bot.standin.wait_for(lambda calls: any(c.status == 429 for c in calls))
    _leave(bot, TEAM_A, {"type": "app_uninstalled"})

    assert _sessions(bot) == [
        (TEAM_B, "running", 1),
        (TEAM_A, "ended", 2),
        (TEAM_A, "cancelled", 0),
    ]
    with bot.db.session() as s:
        ended = s.get(ProtocolSession, a)
        assert ended is not None and ended.ended_at is not None and ended.step_closes_at is None
        open_steps = s.scalars(
            select(StepRun).where(StepRun.session_id == a, StepRun.ended_at.is_(None))
        ).all()
        assert open_steps == []
        rows = s.execute(select(OutboxMessage.team_id, OutboxMessage.status, OutboxMessage.error))
        assert (TEAM_A, "failed", "app_uninstalled") in set(rows.all())
        pending = s.scalars(select(OutboxMessage.team_id).where(OutboxMessage.status == "pending"))
        assert list(pending) == []
    bot.wait_until(lambda: scheduler._aps.get_job(step_job_id(a, 2)) is None)
    assert scheduler._aps.get_job(start_job_id(a + 1)) is None
    assert scheduler._aps.get_job(step_job_id(b, 1)) is not None

    store = bot.installations.store
    assert store.find_installation(enterprise_id=None, team_id=TEAM_A) is None
    assert store.find_bot(enterprise_id=None, team_id=TEAM_A) is None
    assert bot.runtime.client_for(TEAM_A) is None
    assert bot.installations.bot_token(TEAM_B) is not None

    # A command from A now is told to reinstall; B goes on as before.
    told = bot.command("status", team=TEAM_A)["text"]
    assert "not installed in this workspace (or it was removed)" in told
    assert "ATLAS" in _said(bot.command("status", team=TEAM_B))
    # The same event again (Slack retrying, or a second delivery) changes nothing more.
    _leave(bot, TEAM_A, {"type": "app_uninstalled"})
    assert [s for _t, s, _i in _sessions(bot)] == ["running", "ended", "cancelled"]


def test_a_step_button_of_a_session_the_uninstall_ended_does_not_send_to_notes_never_posted(
    two_schools: OAuthBot,
) -> None:
    """The workspace uninstalled the app mid-session and installed it again; the facilitator
    pressed the old step's Next step and was told its notes were in the header's thread, where
    nothing was ever posted (the bot could not speak there when the session stopped)."""
    bot = two_schools
    bot.command(START, team=TEAM_A)
    a = _session_id(bot, TEAM_A)
    _step_ts(bot, a, 1)
    _leave(bot, TEAM_A, {"type": "app_uninstalled"})
    bot.install(TEAM_A)
    _press(bot, "step_next", f"{a}:1", team=TEAM_A)
    bot.wait_until(lambda: "That session is over" in _responses(bot))
    assert "header's thread" not in _responses(bot)
    assert "Send me the notes" in _responses(bot)


def test_a_revoked_bot_token_stops_the_workspace_like_an_uninstall(two_schools: OAuthBot) -> None:
    bot = two_schools
    bot.command(START, team=TEAM_A)
    _step_ts(bot, _session_id(bot, TEAM_A), 1)
    _leave(bot, TEAM_A, {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["U_BOT"]}})
    assert _sessions(bot) == [(TEAM_A, "ended", 1)]
    assert bot.installations.bot_token(TEAM_A) is None
    assert bot.installations.bot_token(TEAM_B) is not None


def test_revoked_user_tokens_alone_leave_the_bot_and_its_sessions_running(
    two_schools: OAuthBot,
) -> None:
    bot = two_schools
    bot.command(START, team=TEAM_A)
    _step_ts(bot, _session_id(bot, TEAM_A), 1)
    token = bot.installations.bot_token(TEAM_A)
    _leave(bot, TEAM_A, {"type": "tokens_revoked", "tokens": {"oauth": [FACILITATOR], "bot": []}})
    assert _sessions(bot) == [(TEAM_A, "running", 1)]
    store = bot.installations.store
    assert store.find_installation(enterprise_id=None, team_id=TEAM_A, user_id=FACILITATOR) is None
    assert bot.installations.bot_token(TEAM_A) == token  # the bot's own row stays
    assert "ATLAS" in _said(bot.command("status", team=TEAM_A))


def test_an_enterprise_workspace_is_found_and_forgotten_by_its_team_id(
    workspace: SlackStandin, database_url: str
) -> None:
    bot = OAuthBot(workspace, database_url).start()
    try:
        token = bot.install(TEAM_A, enterprise_id="E_DISTRICT")
        installation = bot.installations.store.find_installation(
            enterprise_id="E_DISTRICT", team_id=TEAM_A
        )
        assert installation is not None and installation.bot_token == token
        assert bot.installations.store.find_bot(enterprise_id=None, team_id=TEAM_A) is None
        _leave(bot, TEAM_A, {"type": "app_uninstalled"})
        assert bot.installations.bot_token(TEAM_A) is None
        assert bot.installations.store.find_bot(enterprise_id="E_DISTRICT", team_id=TEAM_A) is None
    finally:
        bot.stop()


def test_with_a_single_bot_token_an_uninstall_still_stops_the_sessions(bot: Bot) -> None:
    bot.command(START)
    with bot.db.session() as s:
        sid = s.scalars(select(ProtocolSession.id)).one()
    _step_ts(bot, sid, 1)
    _leave(bot, "T_TEAM", {"type": "app_uninstalled"})
    assert _sessions(bot) == [("T_TEAM", "ended", 1)]
    assert bot.runtime.client_for("T_TEAM") is not None  # nothing to delete: it is the env's


def _delivered(
    bot: Bot,
    event: dict[str, Any],
    *,
    team: str | None,
    installed: str | None,
    org: str | None = None,
    shared: bool = False,
    event_time: float | None = None,
) -> None:
    """An event as Slack delivers it: the envelope names `team` (in a Slack Connect channel,
    the workspace that made the channel), authorizations the installation it came to
    (`installed`, or None for an org-wide install of `org`)."""
    body = json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": team,
            "enterprise_id": org,
            "context_team_id": team,
            "context_enterprise_id": org,
            "api_app_id": "A_APP",
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(event_time or time.time()),
            "authorizations": [
                {
                    "enterprise_id": org,
                    "team_id": installed,
                    "user_id": "U_BOT",
                    "is_bot": True,
                    "is_enterprise_install": installed is None,
                }
            ],
            "is_ext_shared_channel": shared,
        }
    )
    status, answer = http_post(bot.url, body, signed_headers(body, SECRET))
    assert status == 200, answer


def test_an_org_wide_install_draws_the_home_tab_of_a_workspace_with_no_session_yet(
    workspace: SlackStandin, database_url: str
) -> None:
    bot = OAuthBot(workspace, database_url).start()
    try:
        workspace.add_install("code-org", TEAM_A, enterprise_id="E_DISTRICT", org_wide=True)
        state, cookie = bot.begin_install()
        status, page, _ = bot.get(f"/slack/oauth_redirect?code=code-org&state={state}", cookie)
        assert status == 200, page
        org = bot.installations.store.find_installation(
            enterprise_id="E_DISTRICT", team_id=None, is_enterprise_install=True
        )
        assert org is not None and org.team_id is None

        home = {"type": "app_home_opened", "user": FACILITATOR, "tab": "home"}
        for team in (TEAM_A, TEAM_B):  # two of the org's workspaces, neither with a session
            _delivered(bot, home, team=team, installed=None, org="E_DISTRICT")
        _settled(bot)
        published = bot.standin.calls_to("views.publish")
        assert [(c.token, c.response.get("ok")) for c in published] == [(org.bot_token, True)] * 2
        with bot.db.session() as s:
            assert s.scalars(select(OutboxMessage.error)).all() == [None, None]
    finally:
        bot.stop()


def test_in_an_org_wide_install_a_reply_from_another_workspace_of_the_org_is_collected(
    workspace: SlackStandin, database_url: str
) -> None:
    """A channel shared by two workspaces of an Enterprise Grid org, the app installed
    org-wide: a session started in A, and a teacher of B replying in its step's thread. The
    event named B, and the reply was looked for in B's sessions, and lost."""
    bot = OAuthBot(workspace, database_url).start()
    try:
        _install_org_wide(bot, workspace)
        assert "starting" in _org_command(bot, START, TEAM_A)
        describe_ts = _step_ts(bot, _session_id(bot, TEAM_A), 1)
        for user, team in ((TEACHERS[0], TEAM_A), (TEACHERS[1], TEAM_B)):
            reply = {
                "type": "message",
                "channel": CHANNEL,
                "user": user,
                "team": team,
                "text": f"From {team}",
                "ts": f"{time.time():.6f}",
                "thread_ts": describe_ts,
                "channel_type": "channel",
            }
            _delivered(bot, reply, team=team, installed=None, org="E_DISTRICT")
        _settled(bot)
        assert [(team, text) for team, _ts, text, _tag in _contributions(bot)] == [
            (TEAM_A, f"From {TEAM_A}"),
            (TEAM_A, f"From {TEAM_B}"),
        ]
    finally:
        bot.stop()


def _install_org_wide(bot: OAuthBot, workspace: SlackStandin) -> None:
    workspace.add_install("code-org", TEAM_A, enterprise_id="E_DISTRICT", org_wide=True)
    state, cookie = bot.begin_install()
    status, page, _ = bot.get(f"/slack/oauth_redirect?code=code-org&state={state}", cookie)
    assert status == 200, page


def _org_command(bot: OAuthBot, text: str, team: str) -> str:
    """/protocol typed in `team`, a workspace of the org that installed the app org-wide."""
    body = slash_command_body(
        text, team_id=team, enterprise_id="E_DISTRICT", response_url=bot.standin.response_url()
    ).replace("is_enterprise_install=false", "is_enterprise_install=true")
    status, answer = bot.post(body)
    assert status == 200, answer
    return answer


def _org_wide_with_a_session_each(bot: OAuthBot, workspace: SlackStandin) -> None:
    """The app installed org-wide, and a session started in each of the org's two workspaces."""
    _install_org_wide(bot, workspace)
    for team in (TEAM_A, TEAM_B):
        assert "starting" in _org_command(bot, START, team)
    _settled(bot)


@pytest.mark.parametrize("envelope_team", [None, TEAM_A], ids=["no-team", "a-workspace"])
def test_an_org_wide_uninstall_stops_every_workspaces_sessions_and_forgets_the_token(
    envelope_team: str | None, workspace: SlackStandin, database_url: str
) -> None:
    """The org's admin removed the app installed org-wide: Slack's event names the org (and no
    workspace, or one). With none it was dropped; with one, that workspace's sessions stopped
    and the others' ran on; either way the org's token was kept."""
    bot = OAuthBot(workspace, database_url).start()
    try:
        _org_wide_with_a_session_each(bot, workspace)
        leaving = {"type": "app_uninstalled"}
        _delivered(bot, leaving, team=envelope_team, installed=None, org="E_DISTRICT")
        _settled(bot)
        assert sorted(_sessions(bot)) == [(TEAM_A, "ended", 1), (TEAM_B, "ended", 1)]
        store = bot.installations.store
        assert (
            store.find_installation(
                enterprise_id="E_DISTRICT", team_id=None, is_enterprise_install=True
            )
            is None
        )
        assert bot.installations.bot_token(TEAM_B) is None
    finally:
        bot.stop()


def test_an_org_wide_install_taken_from_one_workspace_stops_that_workspaces_sessions_only(
    workspace: SlackStandin, database_url: str
) -> None:
    """The org's admin took the app, installed org-wide, away from one workspace of the org:
    Slack says so with team_access_revoked and the workspaces' ids. It was dropped (not even
    subscribed to), and that workspace's session ran on, posting where the bot no longer may;
    its sessions stop, the other workspace's run on, and the org's token stays for them."""
    bot = OAuthBot(workspace, database_url).start()
    try:
        _org_wide_with_a_session_each(bot, workspace)
        revoked = {"type": "team_access_revoked", "team_ids": [TEAM_A]}
        _delivered(bot, revoked, team=None, installed=None, org="E_DISTRICT")
        _settled(bot)
        assert sorted(_sessions(bot)) == [(TEAM_A, "ended", 1), (TEAM_B, "running", 1)]
        assert bot.installations.bot_token(TEAM_B) is not None
        manifest = yaml.safe_load(MANIFEST.read_text())
        assert "team_access_revoked" in manifest["settings"]["event_subscriptions"]["bot_events"]
    finally:
        bot.stop()


def test_replies_in_a_slack_connect_channel_another_org_made_are_collected(bot: Bot) -> None:
    """Slack names the channel's creator in the envelope's team_id; the installation the event
    came to (ours) is in authorizations."""
    describe_ts = bot.open_step()
    guest, made_by = "U_GUEST", "T_OTHER_ORG"
    for user, text, team in ((TEACHERS[0], "Ours", "T_TEAM"), (guest, "A guest's", made_by)):
        reply = {
            "type": "message",
            "channel": CHANNEL,
            "user": user,
            "team": team,
            "user_team": team,
            "text": text,
            "ts": f"{time.time():.6f}",
            "thread_ts": describe_ts,
            "channel_type": "channel",
        }
        _delivered(bot, reply, team=made_by, installed="T_TEAM", shared=True)
    _settled(bot)
    assert [(team, text) for team, _ts, text, _tag in _contributions(bot)] == [
        ("T_TEAM", "Ours"),
        ("T_TEAM", "A guest's"),
    ]


def test_in_a_slack_connect_channel_both_installed_a_reply_goes_to_the_threads_session(
    two_schools: OAuthBot,
) -> None:
    """A channel shared by A and B, who both installed the app, each running a session there.
    Slack sends each event once and names either installation in authorizations: a reply in
    A's step thread named for B was looked for in B's sessions, and lost."""
    bot = two_schools
    bot.command(START, team=TEAM_A)
    bot.command(f"start dese-everyday <@{PRESENTER}|maria> step 1h", team=TEAM_B)
    a_ts = _step_ts(bot, _session_id(bot, TEAM_A), 1)
    b_ts = _step_ts(bot, _session_id(bot, TEAM_B), 1)

    def reply(user: str, text: str, thread: str) -> dict[str, Any]:
        return {
            "type": "message",
            "channel": CHANNEL,
            "user": user,
            "text": text,
            "ts": f"{time.time():.6f}",
            "thread_ts": thread,
            "channel_type": "channel",
        }

    ours, theirs, edited = (
        reply(TEACHERS[0], "In A's", a_ts),
        reply(TEACHERS[1], "In B's", b_ts),
        reply(TEACHERS[2], "Before", a_ts),
    )
    _delivered(bot, ours, team=TEAM_A, installed=TEAM_B, shared=True)
    _delivered(bot, theirs, team=TEAM_A, installed=TEAM_A, shared=True)
    _delivered(bot, edited, team=TEAM_A, installed=TEAM_A, shared=True)
    _settled(bot)
    change = {
        "type": "message",
        "subtype": "message_changed",
        "channel": CHANNEL,
        "message": {**edited, "text": "Q: After"},
        "previous_message": edited,
        "ts": f"{time.time():.6f}",
    }
    _delivered(bot, change, team=TEAM_A, installed=TEAM_B, shared=True)
    retag = {
        "type": "reaction_added",
        "user": FACILITATOR,
        "reaction": "bulb",
        "item": {"type": "message", "channel": CHANNEL, "ts": ours["ts"]},
        "event_ts": f"{time.time():.6f}",
    }
    _delivered(bot, retag, team=TEAM_A, installed=TEAM_B, shared=True)
    _settled(bot)
    assert sorted((team, text, tag) for team, _ts, text, tag in _contributions(bot)) == [
        (TEAM_A, "After", "question"),
        (TEAM_A, "In A's", "implication"),
        (TEAM_B, "In B's", "note"),
    ]
    tokens = {bot.installations.bot_token(team): team for team in (TEAM_A, TEAM_B)}
    reacted = {
        (tokens[c.token], c.params["timestamp"]) for c in bot.standin.calls_to("reactions.add")
    }
    assert reacted == {(TEAM_A, ours["ts"]), (TEAM_A, edited["ts"]), (TEAM_B, theirs["ts"])}


def test_a_guest_presenter_from_another_org_can_send_their_prep(bot: Bot) -> None:
    """A dialog submitted from the other side of a Slack Connect channel names the guest's
    workspace in team, and ours in view.app_installed_team_id."""
    guest_org = "T_GUEST_ORG"
    bot.command(f"start atlas <@{PRESENTER}|maria> in 3h")
    with bot.db.session() as s:
        session_id = s.scalars(select(ProtocolSession.id)).one()
    answer = _submit_prep(bot, session_id, team=guest_org, user=PRESENTER, installed="T_TEAM")
    assert answer == ""  # the dialog closes: kept
    with bot.db.session() as s:
        session = s.get(ProtocolSession, session_id)
        assert session is not None and session.statement == "Statement from another school"


@pytest.mark.parametrize(
    "leaving",
    [{"type": "app_uninstalled"}, {"type": "tokens_revoked", "tokens": {"bot": ["U_BOT"]}}],
    ids=["uninstalled", "revoked"],
)
def test_a_late_uninstall_from_before_a_reinstall_leaves_the_new_install_running(
    leaving: dict[str, Any], two_schools: OAuthBot
) -> None:
    """Slack retries an event it saw unanswered (the bot down) for half an hour, with the
    time it happened; meanwhile the workspace installed the app again and started a session."""
    bot = two_schools
    uninstalled_at = time.time() - 600
    bot.command(START, team=TEAM_A)
    _step_ts(bot, _session_id(bot, TEAM_A), 1)
    token = bot.installations.bot_token(TEAM_A)
    _delivered(bot, leaving, team=TEAM_A, installed=TEAM_A, event_time=uninstalled_at)
    _settled(bot)
    assert _sessions(bot) == [(TEAM_A, "running", 1)]
    assert bot.installations.bot_token(TEAM_A) == token
    assert "ATLAS" in _said(bot.command("status", team=TEAM_A))


# -- one bot token -----------------------------------------------------------------------------
OTHER_WORKSPACE = "runs for another Slack workspace"


def _command_from(bot: Bot, text: str, team: str, enterprise: str | None = None) -> str:
    body = slash_command_body(
        text, team_id=team, enterprise_id=enterprise, response_url=bot.standin.response_url()
    )
    status, answer = bot.post(body)
    assert status == 200, answer
    return answer


def test_a_single_bot_token_serves_its_own_workspace_only(bot: Bot) -> None:
    """SLACK_BOT_TOKEN belongs to T_TEAM: a command or event from another workspace signed
    with the app's secret is acknowledged, its author told, and nothing runs."""
    answer = json.loads(_command_from(bot, START, "T_ELSEWHERE"))
    assert OTHER_WORKSPACE in answer["text"] and answer["response_type"] == "ephemeral"
    assert OTHER_WORKSPACE in _command_from(bot, "status", "T_ELSEWHERE")
    assert _sessions(bot) == []
    reply = {"type": "message", "channel": CHANNEL, "user": TEACHERS[0], "text": "Hi"}
    assert bot.event({**reply, "ts": f"{time.time():.6f}"}, team="T_ELSEWHERE") == 200
    _press(bot, "step_next", "1:1", team="T_ELSEWHERE")
    assert OTHER_WORKSPACE in _responses(bot)
    _settled(bot)
    with bot.db.inbox_session() as s:
        assert s.scalar(select(func.count()).select_from(InboxEvent)) == 0

    assert "starting" in bot.command(START)["text"].lower()  # its own workspace
    assert _sessions(bot) == [("T_TEAM", "running", 1)]


def test_a_single_org_wide_token_serves_every_workspace_of_its_org(
    workspace: SlackStandin, database_url: str
) -> None:
    workspace.add_token("xoxb-org", None, enterprise_id="E_DISTRICT", org_wide=True)
    settings = Settings(
        slack_bot_token="xoxb-org",
        slack_signing_secret=SECRET,
        slack_api_url=workspace.url,
        database_url=database_url,
    )
    bot = Bot(workspace, database_url, settings=settings).start()
    try:
        for team in (TEAM_A, TEAM_B):
            answer = _command_from(bot, START, team, "E_DISTRICT")
            assert "starting" in answer.lower(), answer
        assert sorted(_sessions(bot)) == [(TEAM_A, "running", 1), (TEAM_B, "running", 1)]
        assert OTHER_WORKSPACE in _command_from(bot, START, "T_ELSEWHERE", "E_ELSEWHERE")
        assert OTHER_WORKSPACE in _command_from(bot, START, "T_ELSEWHERE")
        assert len(_sessions(bot)) == 2
    finally:
        bot.stop()


# -- a token Slack refuses, with no event to say why --------------------------------------------
NOT_INSTALLED = "protocolbot is not installed in this workspace"


def _refused_calls(bot: Bot) -> list[str]:
    return [c.method for c in bot.standin.calls if c.response.get("ok") is False]


@pytest.mark.parametrize("refused", ["token_revoked", "account_inactive"])
def test_a_token_slack_refuses_is_taken_as_an_uninstall(
    bot: Bot, refused: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An admin revoked the token, or deactivated the bot's account, and no tokens_revoked or
    app_uninstalled event reached the bot: the session ran on, each post failing, and the
    facilitator was told 'Moved on' at every `next` (the first one still was, since Slack
    refused only the post of step 2 that came after the answer)."""
    bot.command(START)
    _step_ts(bot, _session_id(bot, "T_TEAM"), 1)
    bot.standin.refuse_token("xoxb-test", refused)
    with caplog.at_level(logging.INFO):
        first = _said(bot.command("next"))
        assert "Moved on" not in first, first
        assert "Slack refused protocolbot" in first and "reinstall" in first, first
        assert _sessions(bot) == [("T_TEAM", "ended", 1)]
        _settled(bot)
        for text in ("next", "status", START):
            answer = _said(bot.command(text))
            assert NOT_INSTALLED in answer and "Moved on" not in answer, (text, answer)
    assert _sessions(bot) == [("T_TEAM", "ended", 1)]
    # Step 2 was never tried; nobody was sent word of it (the bot can't speak there).
    assert _refused_calls(bot).count("chat.postMessage") == 0
    with bot.db.session() as s:
        pending = select(func.count()).where(OutboxMessage.status == "pending")
        assert s.scalar(pending) == 0
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    said = [r.getMessage() for r in warned if refused in r.getMessage()]
    assert len(said) == 1 and "T_TEAM" in said[0], said
    assert not any("xoxb-test" in r.getMessage() for r in caplog.records)


def test_a_step_button_pressed_after_slack_refused_the_token_says_so(bot: Bot) -> None:
    """The Next step button after the token was revoked answered 'Moved on' to a step that
    could not be posted."""
    bot.command(START)
    _step_ts(bot, _session_id(bot, "T_TEAM"), 1)
    (step,) = bot.step_posts()
    (next_button,) = [
        e
        for b in step["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "step_next"
    ]
    bot.standin.refuse_token("xoxb-test", "token_revoked")
    assert bot.action("step_next", next_button["value"])[0] == 200
    bot.wait_until(lambda: "Slack refused protocolbot" in _responses(bot))
    assert "Moved on" not in _responses(bot)
    assert _sessions(bot) == [("T_TEAM", "ended", 1)]
    assert _refused_calls(bot).count("chat.postMessage") == 0


def test_a_start_just_after_slack_refused_the_token_tells_the_facilitator(bot: Bot) -> None:
    """/protocol start right after an admin revoked the token answered 'starting' and said no
    more: the session stopped at its first post, and the facilitator waited for steps that
    never came. Asking before the answer would pass Slack's 3 seconds (a start's lookups take up
    to 2), so Slack is asked just after it, and the facilitator told through response_url."""
    assert NOT_INSTALLED not in _said(bot.command("help"))  # running, Slack's word kept
    bot.standin.refuse_token("xoxb-test", "token_revoked")
    bot.command(START)
    bot.wait_until(lambda: "Slack refused protocolbot" in _responses(bot))
    assert "reinstall" in _responses(bot)
    _settled(bot)
    assert [status for _team, status, _n in _sessions(bot)] == ["ended"]
    assert _refused_calls(bot).count("chat.postEphemeral") == 0


def test_a_web_process_learns_that_slack_refuses_the_token_without_a_restart(
    workspace: SlackStandin, database_url: str
) -> None:
    """Web processes beside a clock: only the clock posts, so only the clock heard Slack
    refuse the token. A web process kept answering /protocol start with 'starting' (a session
    nobody would see) until it was restarted."""
    web = Bot(workspace, database_url, with_scheduler=False).start()
    try:
        assert web.runtime.one_workspace is not None
        assert NOT_INSTALLED not in _said(web.command("help"))
        workspace.refuse_token("xoxb-test", "account_inactive")
        web.runtime.one_workspace.recheck_seconds = 0.0  # the minute is up
        # A request past the minute goes on with what auth.test said last, and has it asked
        # again in the background; the requests after that are told.
        wait_until(lambda: NOT_INSTALLED in _said(web.command("help")), timeout=5)
        for text in (START, "help"):
            assert NOT_INSTALLED in _said(web.command(text)), text
        with web.db.session() as s:
            assert s.scalar(select(func.count()).select_from(ProtocolSession)) == 0
    finally:
        web.stop()


def test_a_workspace_whose_token_slack_refuses_is_forgotten_and_the_others_run_on(
    two_schools: OAuthBot,
) -> None:
    bot = two_schools
    bot.command(START, team=TEAM_A)
    _step_ts(bot, _session_id(bot, TEAM_A), 1)
    token = bot.installations.bot_token(TEAM_A)
    assert token is not None
    bot.standin.refuse_token(token, "invalid_auth")
    assert "Slack refused protocolbot" in _said(bot.command("next", team=TEAM_A))
    bot.wait_until(lambda: bot.installations.bot_token(TEAM_A) is None)
    assert _sessions(bot) == [(TEAM_A, "ended", 1)]
    assert bot.command("next", team=TEAM_A) == {}
    assert NOT_INSTALLED in _responses(bot)
    assert bot.installations.bot_token(TEAM_B) is not None
    assert "starting" in bot.command(START, team=TEAM_B)["text"].lower()


def test_the_minutely_token_check_holds_up_no_request(
    workspace: SlackStandin, database_url: str
) -> None:
    """auth.test is asked again in the background: a request that finds the last answer stale
    goes on with it rather than wait for Slack (here 1 s, the call's limit, and no answer)."""
    web = Bot(workspace, database_url, with_scheduler=False).start()
    try:
        assert web.runtime.one_workspace is not None
        web.command("help")
        web.runtime.one_workspace.recheck_seconds = 0.0  # the minute is up
        workspace.fail_next("auth.test", delay=3.0)
        began = time.monotonic()
        assert NOT_INSTALLED not in _said(web.command("help"))
        assert time.monotonic() - began < 0.9
        wait_until(lambda: workspace.faults_left("auth.test") == 0, timeout=5)
    finally:
        web.stop()


def test_a_request_turned_away_for_want_of_a_token_is_one_line_at_info(
    two_schools: OAuthBot,
    workspace: SlackStandin,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A workspace that uninstalled the app, or a web process started while Slack refuses the
    one token: every /protocol typed there logged Bolt's ERROR ('Although the app should be
    installed into this workspace, the AuthorizeResult ... was not found'; 'Failed to
    authorize with the given token (The request to the Slack API failed. (url: ...)' and
    Slack's answer on a second line), an alert for what the person typing is already told."""
    _leave(two_schools, TEAM_A, {"type": "app_uninstalled"})
    workspace.refuse_token("xoxb-test", "token_revoked")
    web = Bot(workspace, database_url, with_scheduler=False).start()
    try:
        with caplog.at_level(logging.INFO):
            two_schools.command("status", team=TEAM_A)
            # Bolt's own answer, in plain text, before the request reaches the bot's middleware.
            status, body = web.post(slash_command_body("status"))
            assert status == 200 and NOT_INSTALLED in body, (status, body)
            two_schools.standin.wait_for(
                lambda calls: any(NOT_INSTALLED in str(c.params) for c in calls)
            )
    finally:
        web.stop()
    bolt = [r for r in caplog.records if r.name.startswith("slack_bolt")]
    assert [r.levelno for r in bolt] == [logging.INFO, logging.INFO], bolt
    assert [r.getMessage() for r in bolt] == [
        "a request turned away: the app is not installed in its workspace",
        "a request turned away: Slack refuses the bot's token (token_revoked)",
    ]


def test_a_shared_channels_sessions_are_found_by_its_channel_alone_through_an_index(
    database_url: str,
) -> None:
    # An event from a channel workspaces share is looked up in every workspace's sessions by
    # its channel: the index on sessions led with the workspace, so each read scanned them all.
    db = Database(database_url)
    upgrade(db)
    try:
        with db.engine.connect() as conn:
            for shared_with in ("E_ORG", ANY_WORKSPACE):
                sql = shared_channel_teams("C_SHARED", shared_with).compile(
                    dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}
                )
                if db.is_postgres:
                    # An empty table: without this, a scan is the cheaper plan.
                    conn.execute(sql_text("SET enable_seqscan = off"))
                explain = "EXPLAIN" if db.is_postgres else "EXPLAIN QUERY PLAN"
                plan = " ".join(str(row) for row in conn.execute(sql_text(f"{explain} {sql}")))
                assert "ix_sessions_channel_id" in plan, plan
    finally:
        db.dispose()
