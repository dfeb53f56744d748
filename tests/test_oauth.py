"""The OAuth install flow, per-workspace tokens and token rotation, against the stand-in Slack."""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from slack_sdk.oauth.installation_store import Bot as StoredBot
from sqlalchemy import inspect, select, update

from bot.clock import Clock
from bot.oauth import BOT_SCOPES, ROTATE_MINUTES, Installations, _expiring
from bot.settings import Settings
from bot.slack_standin import SlackStandin
from bot.store.db import Database
from bot.store.migrate import upgrade
from bot.store.models import OutboxMessage, ProtocolSession
from tests.harness import PRESENTER, SECRET, TEACHERS, Bot

CLIENT_ID, CLIENT_SECRET = "1111.2222", "oauth-client-secret"
TEAM_A, TEAM_B = "T_A", "T_B"
MANIFEST = Path(__file__).resolve().parent.parent / "manifest.yml"


class OAuthBot(Bot):
    """The harness's bot, installed by OAuth: SLACK_CLIENT_ID/SECRET and no SLACK_BOT_TOKEN."""

    def __init__(
        self,
        standin: SlackStandin,
        database_url: str,
        *,
        clock: Clock | None = None,
        with_scheduler: bool = True,
    ) -> None:
        settings = Settings(
            slack_signing_secret=SECRET,
            slack_client_id=CLIENT_ID,
            slack_client_secret=CLIENT_SECRET,
            slack_api_url=standin.url,
            database_url=database_url,
        )
        super().__init__(
            standin, database_url, clock=clock, with_scheduler=with_scheduler, settings=settings
        )

    @property
    def installations(self) -> Installations:
        assert self.runtime.installations is not None
        return self.runtime.installations

    def get(self, path: str, cookie: str | None = None) -> tuple[int, str, Any]:
        """A browser's GET of one of the bot's pages: status, body, headers."""
        url = self.url.removesuffix("/slack/events") + path
        request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, response.read().decode(), response.headers
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(), error.headers

    def begin_install(self) -> tuple[str, str]:
        """Open /slack/install as a browser does: the state Slack will hand back, and the cookie."""
        status, page, headers = self.get("/slack/install")
        assert status == 200, (status, page)
        cookie = headers["Set-Cookie"].split(";")[0]
        state = cookie.split("=", 1)[1]
        return state, cookie

    def install(
        self, team: str, *, expires_in: int | None = None, enterprise_id: str | None = None
    ) -> str:
        """The whole install, as a workspace admin goes through it; returns the bot token."""
        code = f"code-{team}-{uuid.uuid4().hex[:8]}"
        self.standin.add_install(code, team, expires_in=expires_in, enterprise_id=enterprise_id)
        state, cookie = self.begin_install()
        status, page, _ = self.get(f"/slack/oauth_redirect?code={code}&state={state}", cookie)
        assert status == 200, (status, page)
        token = self.installations.bot_token(team)
        assert token is not None
        return token


@pytest.fixture
def oauth_bot(workspace: SlackStandin, database_url: str) -> Iterator[OAuthBot]:
    running = OAuthBot(workspace, database_url).start()
    try:
        yield running
    finally:
        running.stop()


def _expire_soon(bot: OAuthBot, team: str, seconds: int = 60) -> None:
    """Make the stored token of `team` due for rotation (the stores keep naive UTC)."""
    soon = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(tzinfo=None)
    store = bot.installations.store
    with bot.db.engine.begin() as conn:
        for table in (store.installations, store.bots):
            conn.execute(
                update(table).where(table.c.team_id == team).values(bot_token_expires_at=soon)
            )


def _refreshes(bot: OAuthBot) -> list[Any]:
    return [
        call
        for call in bot.standin.calls_to("oauth.v2.access")
        if call.params.get("grant_type") == "refresh_token"
    ]


def test_install_page_sends_the_admin_to_slack_with_our_scopes_and_a_state(
    oauth_bot: OAuthBot,
) -> None:
    state, cookie = oauth_bot.begin_install()
    _, page, _ = oauth_bot.get("/slack/install")
    start = page.index("https://slack.com/oauth/v2/authorize?")
    url = page[start : page.index('"', start)].replace("&amp;", "&")
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["scope"][0].split(",") == list(BOT_SCOPES)
    assert "user_scope" not in query or query["user_scope"] == [""]
    assert cookie.startswith("slack-app-oauth-state=") and state


def test_redirect_exchanges_the_code_at_slack_api_url_and_stores_the_installation(
    oauth_bot: OAuthBot,
) -> None:
    token = oauth_bot.install(TEAM_A)
    access = oauth_bot.standin.calls_to("oauth.v2.access")
    assert len(access) == 1 and access[0].params["code"].startswith("code-T_A-")
    installation = oauth_bot.installations.store.find_installation(
        enterprise_id=None, team_id=TEAM_A
    )
    assert installation is not None
    assert installation.bot_token == token and installation.bot_id == "B_BOT"
    assert installation.user_id == "U_FAC"
    assert oauth_bot.installations.bot_token(TEAM_B) is None


def test_redirect_refuses_a_state_it_did_not_issue_or_already_used(oauth_bot: OAuthBot) -> None:
    oauth_bot.standin.add_install("code-forged", TEAM_A)
    forged = "slack-app-oauth-state=made-up"
    status, _, _ = oauth_bot.get("/slack/oauth_redirect?code=code-forged&state=made-up", forged)
    assert status == 401
    state, cookie = oauth_bot.begin_install()
    status, _, _ = oauth_bot.get(f"/slack/oauth_redirect?code=code-forged&state={state}")
    assert status == 400  # no cookie: not the browser that started the install
    assert oauth_bot.standin.calls_to("oauth.v2.access") == []
    assert oauth_bot.installations.bot_token(TEAM_A) is None

    oauth_bot.install(TEAM_B)
    # A state is spent by its first use: replaying the redirect installs nothing more.
    state, cookie = oauth_bot.begin_install()
    oauth_bot.standin.add_install("code-again", TEAM_B)
    ok, _, _ = oauth_bot.get(f"/slack/oauth_redirect?code=code-again&state={state}", cookie)
    again, _, _ = oauth_bot.get(f"/slack/oauth_redirect?code=code-again&state={state}", cookie)
    assert (ok, again) == (200, 401)
    assert len(oauth_bot.standin.calls_to("oauth.v2.access")) == 2


def test_each_workspace_is_answered_and_posted_to_with_its_own_token(oauth_bot: OAuthBot) -> None:
    token_a, token_b = oauth_bot.install(TEAM_A), oauth_bot.install(TEAM_B)
    assert token_a != token_b
    for team in (TEAM_A, TEAM_B):
        answer = oauth_bot.command(f"start atlas <@{PRESENTER}|maria> step 1h", team=team)
        assert "starting" in answer["text"].lower()
    oauth_bot.wait_until(lambda: len(oauth_bot.step_posts()) >= 2)
    oauth_bot.runtime.sender.drain()

    by_token: dict[str | None, int] = {}
    for call in oauth_bot.standin.calls_to("chat.postMessage"):
        by_token[call.token] = by_token.get(call.token, 0) + 1
    assert set(by_token) == {token_a, token_b}
    assert by_token[token_a] == by_token[token_b]
    with oauth_bot.db.session() as s:
        teams = sorted(s.scalars(select(ProtocolSession.team_id)))
    assert teams == [TEAM_A, TEAM_B]


def test_the_outbox_keeps_its_connections_to_slack_across_a_workspaces_calls(
    oauth_bot: OAuthBot,
) -> None:
    token = oauth_bot.install(TEAM_A)
    oauth_bot.command(f"start atlas <@{PRESENTER}|maria> step 1h", team=TEAM_A)
    oauth_bot.wait_until(lambda: bool(oauth_bot.step_posts()))
    oauth_bot.runtime.sender.drain(5)
    thread = str(oauth_bot.step_posts()[0]["ts"])

    def tagged(n: int) -> None:
        ts = oauth_bot.reply(TEACHERS[n % 3], f"Row {n} repeats the error.", thread, team=TEAM_A)
        oauth_bot.wait_until(
            lambda: any(
                c.params.get("timestamp") == ts for c in oauth_bot.standin.calls_to("reactions.add")
            )
        )

    # A first reply from each teacher has their name asked of Slack, from the thread that
    # records replies: that thread's connection is opened before the count starts.
    for n in range(3):
        tagged(n)
    opened = oauth_bot.standin.connections_opened
    replies = 10
    for n in range(3, 3 + replies):
        tagged(n)
    reactions = oauth_bot.standin.calls_to("reactions.add")
    assert [c.token for c in reactions] == [token] * (3 + replies)
    # Each call has a client of its own (the workspace's token, looked up then), but they share
    # a worker thread's connection: at most one new connection per worker, not one per call.
    workers = sum(t.name.startswith("outbox_") for t in threading.enumerate())
    assert workers < replies
    assert oauth_bot.standin.connections_opened - opened <= workers


def test_a_workspace_that_has_not_installed_the_app_is_told_to_and_nothing_runs(
    oauth_bot: OAuthBot,
) -> None:
    oauth_bot.install(TEAM_A)
    answer = oauth_bot.command(f"start atlas <@{PRESENTER}|maria>", team="T_NOT_INSTALLED")
    assert answer == {}
    told = oauth_bot.standin.calls_to("response_url")
    assert told and told[-1].params.get("text") == (
        ":warning: protocolbot is not installed in this workspace (or it was removed). "
        "Ask a workspace admin to install it, then try again."
    )
    with oauth_bot.db.session() as s:
        assert s.scalars(select(ProtocolSession)).first() is None
    assert oauth_bot.runtime.client_for("T_NOT_INSTALLED") is None


def test_the_outbox_refreshes_an_expiring_token_through_slack_api_url(oauth_bot: OAuthBot) -> None:
    old = oauth_bot.install(TEAM_A, expires_in=12 * 3600)
    assert old.startswith("xoxe.xoxb-")
    assert oauth_bot.installations.bot_token(TEAM_A) == old
    assert _refreshes(oauth_bot) == []

    _expire_soon(oauth_bot, TEAM_A)
    client = oauth_bot.runtime.client_for(TEAM_A)
    assert client is not None and client.token != old
    assert client.retry_handlers == []  # the outbox retries; the client must not repeat a post
    assert len(_refreshes(oauth_bot)) == 1
    # Both of the store's tables hold the new token, and the next use does not refresh again.
    store = oauth_bot.installations.store
    installation = store.find_installation(enterprise_id=None, team_id=TEAM_A)
    bot = store.find_bot(enterprise_id=None, team_id=TEAM_A)
    assert installation is not None and bot is not None
    assert installation.bot_token == bot.bot_token == client.token
    assert installation.bot_refresh_token == bot.bot_refresh_token
    assert oauth_bot.installations.bot_token(TEAM_A) == client.token
    assert len(_refreshes(oauth_bot)) == 1

    _expire_soon(oauth_bot, TEAM_A)  # the new refresh token works: the spent one was not kept
    assert oauth_bot.installations.bot_token(TEAM_A) not in (old, client.token)
    assert len(_refreshes(oauth_bot)) == 2


def test_a_request_refreshes_an_expiring_token_once_and_posts_use_the_new_one(
    oauth_bot: OAuthBot,
) -> None:
    old = oauth_bot.install(TEAM_A, expires_in=12 * 3600)
    _expire_soon(oauth_bot, TEAM_A)
    answer = oauth_bot.command(f"start atlas <@{PRESENTER}|maria> step 1h", team=TEAM_A)
    assert "starting" in answer["text"].lower()
    oauth_bot.wait_until(lambda: len(oauth_bot.step_posts()) >= 1)
    assert len(_refreshes(oauth_bot)) == 1
    tokens = {call.token for call in oauth_bot.standin.calls_to("chat.postMessage")}
    assert tokens == {oauth_bot.installations.bot_token(TEAM_A)} and old not in tokens


def test_a_failed_refresh_keeps_the_old_token_until_a_later_one_works(
    oauth_bot: OAuthBot, caplog: pytest.LogCaptureFixture
) -> None:
    old = oauth_bot.install(TEAM_A, expires_in=12 * 3600)
    _expire_soon(oauth_bot, TEAM_A, seconds=3600)
    oauth_bot.standin.fail_next("oauth.v2.access", status=500)
    with caplog.at_level(logging.WARNING, logger="bot.oauth"):
        assert oauth_bot.installations.bot_token(TEAM_A) == old
    assert "could not refresh" in caplog.text
    assert oauth_bot.installations.bot_token(TEAM_A) != old


def test_a_command_while_a_refresh_fails_is_answered_with_the_token_that_still_works(
    oauth_bot: OAuthBot,
) -> None:
    """Slack failed the refresh once (a 500), an hour before the token expired: Bolt's
    authorize gave the request up, and the facilitator who typed /protocol start was told that
    protocolbot was not installed in the workspace and to ask an admin to install it."""
    old = oauth_bot.install(TEAM_A, expires_in=12 * 3600)
    _expire_soon(oauth_bot, TEAM_A, seconds=3600)
    oauth_bot.standin.fail_next("oauth.v2.access", status=500)
    answer = oauth_bot.command(f"start atlas <@{PRESENTER}|maria> step 1h", team=TEAM_A)
    assert "starting" in str(answer.get("text")).lower(), answer
    oauth_bot.wait_until(lambda: len(oauth_bot.step_posts()) >= 1)
    assert "not installed" not in str([c.params for c in oauth_bot.standin.calls])
    assert oauth_bot.installations.bot_token(TEAM_A) != old  # a later use refreshed it


def test_a_step_due_while_an_expired_token_fails_to_refresh_is_posted_when_it_refreshes(
    oauth_bot: OAuthBot,
) -> None:
    """Nothing was posted for the hours the token had left (a day-long step), so it expired;
    the first call due when the step closed refreshed it, Slack failed that refresh (a 500),
    and the call went out with the expired token: refused (token_expired), it was given up
    (here the edit that marks step 1's message closed; as well the next step's post)."""
    token = oauth_bot.install(TEAM_A, expires_in=12 * 3600)
    oauth_bot.command(f"start atlas <@{PRESENTER}|maria> step 3s", team=TEAM_A)
    oauth_bot.wait_until(lambda: len(oauth_bot.step_posts()) >= 1)
    _expire_soon(oauth_bot, TEAM_A, seconds=-60)
    oauth_bot.standin.expire_token(token)
    oauth_bot.standin.fail_next("oauth.v2.access", status=500)
    oauth_bot.wait_until(lambda: len(oauth_bot.step_posts()) >= 2, timeout=20)

    def all_sent() -> bool:
        with oauth_bot.db.session() as s:
            return set(s.scalars(select(OutboxMessage.status))) == {"sent"}

    oauth_bot.wait_until(all_sent, timeout=10)
    # The outbox's calls (the engine's lookups of names may meet the expired token too).
    calls = [c for c in oauth_bot.standin.calls if c.method.startswith("chat.")]
    refused = [c for c in calls if c.response.get("error") == "token_expired"]
    assert len(refused) == 1
    again = [c for c in calls if c.method == refused[0].method]
    assert again[-1].token != token and again[-1].response.get("ok")


def test_a_reply_while_an_expired_token_fails_to_renew_is_kept_when_slack_sends_it_again(
    oauth_bot: OAuthBot,
) -> None:
    """A quiet workspace's token had expired, and Slack failed its renewal (a 500) when a
    teacher's reply came: Bolt's authorize gave the event up and answered 200, so Slack never
    sent it again and the reply was lost; a /protocol command was told the app was not
    installed. The event is answered 500 (Slack sends it again, by then renewed), and the
    command is told to give it a moment and try again."""
    token = oauth_bot.install(TEAM_A, expires_in=12 * 3600)
    oauth_bot.command(f"start atlas <@{PRESENTER}|maria> step 1h", team=TEAM_A)
    oauth_bot.wait_until(lambda: len(oauth_bot.step_posts()) >= 1)
    step_ts = oauth_bot.step_posts()[0]["ts"]
    _expire_soon(oauth_bot, TEAM_A, seconds=-60)
    oauth_bot.standin.expire_token(token)
    oauth_bot.standin.fail_next("oauth.v2.access", times=2, status=500)
    reply = {
        "type": "message",
        "channel": "C_TEAM",
        "user": TEACHERS[0],
        "text": "The essay has three paragraphs.",
        "ts": f"{time.time():.6f}",
        "thread_ts": step_ts,
        "channel_type": "channel",
    }
    event_id = f"Ev{uuid.uuid4().hex[:10].upper()}"
    assert oauth_bot.event(reply, team=TEAM_A, event_id=event_id) == 500
    answer = oauth_bot.command("status", team=TEAM_A)
    assert "not installed" not in str(answer)
    assert "Something went wrong on my side" in str(answer.get("text")), answer
    # The step's Next button, pressed meanwhile, says so too, and not nothing at all.
    (step,) = oauth_bot.step_posts()
    (value,) = [
        e["value"]
        for b in step["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "step_next"
    ]
    oauth_bot.standin.fail_next("oauth.v2.access", status=500)
    assert oauth_bot.action("step_next", value, team=TEAM_A)[0] == 200
    oauth_bot.wait_until(
        lambda: any(
            "Something went wrong on my side" in str(c.params)
            for c in oauth_bot.standin.calls_to("response_url")
        )
    )

    # Slack's retry, once the renewal works.
    assert oauth_bot.event(reply, team=TEAM_A, event_id=event_id, retry=1) == 200
    oauth_bot.wait_until(lambda: oauth_bot.recorded() == [reply["ts"]])


def test_a_renewal_slack_refuses_is_not_answered_as_one_to_try_again(
    oauth_bot: OAuthBot,
) -> None:
    """Slack refusing the renewal for good (invalid_refresh_token) is no outage to wait out:
    events are not answered 500 (Slack would send each again, and disables an app that fails
    5 % of its deliveries in an hour), and a command is told to have the app installed."""
    token = oauth_bot.install(TEAM_A, expires_in=12 * 3600)
    _expire_soon(oauth_bot, TEAM_A, seconds=-60)
    oauth_bot.standin.expire_token(token)
    oauth_bot.standin.fail_next("oauth.v2.access", times=2, error="invalid_refresh_token")
    reply = {"type": "message", "channel": "C_TEAM", "user": TEACHERS[0], "text": "Hi"}
    assert oauth_bot.event({**reply, "ts": f"{time.time():.6f}"}, team=TEAM_A) == 200
    assert "not installed" in str(oauth_bot.command("status", team=TEAM_A))


def test_no_token_or_secret_reaches_the_logs_at_info(
    workspace: SlackStandin, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        bot = OAuthBot(workspace, database_url).start()
        try:
            token = bot.install(TEAM_A, expires_in=12 * 3600)
            _expire_soon(bot, TEAM_A)
            bot.command(f"start atlas <@{PRESENTER}|maria> step 1h", team=TEAM_A)
            bot.wait_until(lambda: len(bot.step_posts()) >= 1)
            new = bot.installations.bot_token(TEAM_A)
        finally:
            bot.stop()
    for secret in (token, str(new), CLIENT_SECRET, "xoxe-1-", "code-T_A-"):
        assert secret not in caplog.text


def test_the_migrations_make_the_stores_tables(database_url: str) -> None:
    db = Database(database_url)
    try:
        upgrade(db)
        tables = set(inspect(db.engine).get_table_names())
        assert {"slack_installations", "slack_bots", "slack_oauth_states"} <= tables
        # The columns are the ones slack_sdk's stores build, so they can read and write them.
        settings = Settings(
            slack_client_id=CLIENT_ID, slack_client_secret=CLIENT_SECRET, database_url=database_url
        )
        installations = Installations(settings, db)
        for table in (
            installations.store.installations,
            installations.store.bots,
            installations.states.oauth_states,
        ):
            ours = {c["name"] for c in inspect(db.engine).get_columns(table.name)}
            assert ours == {c.name for c in table.columns}, table.name
        state = installations.states.issue()
        assert installations.states.consume(state) and not installations.states.consume(state)
        # A state nobody came back with is cleared once expired, as new ones are issued.
        states = installations.states.oauth_states
        abandoned = installations.states.issue()
        with db.engine.begin() as conn:
            conn.execute(update(states).values(expire_at=datetime(2020, 1, 1)))
        kept = installations.states.issue()
        with db.engine.connect() as conn:
            assert list(conn.scalars(select(states.c.state))) == [kept] != [abandoned]
    finally:
        db.dispose()


def test_the_scopes_asked_for_are_the_manifests() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert list(BOT_SCOPES) == manifest["oauth_config"]["scopes"]["bot"]
    assert "app_uninstalled" in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert "tokens_revoked" in manifest["settings"]["event_subscriptions"]["bot_events"]


def test_the_messages_tab_takes_no_messages_for_nobody_reads_them() -> None:
    # The bot DMs nudges, reminders and notes; a teacher answering one there was never heard.
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert "message.im" not in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert manifest["features"]["app_home"]["messages_tab_read_only_enabled"] is True


def test_with_a_single_bot_token_there_is_no_install_flow(bot: Bot) -> None:
    assert bot.app.oauth_flow is None and bot.runtime.installations is None
    client = bot.runtime.client_for("T_ANY")
    assert client is not None and client.token == "xoxb-test"
    request = urllib.request.Request(bot.url.removesuffix("/slack/events") + "/slack/install")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 404


def test_rotation_happens_before_expiry_not_after() -> None:
    # A token rotates within two hours of expiring, never at the last moment.
    def stored(expires_in: float) -> StoredBot:
        return StoredBot(
            bot_token="xoxe.xoxb-1",
            bot_id="B",
            bot_user_id="U",
            installed_at=time.time(),
            bot_token_expires_at=int(time.time() + expires_in),
        )

    assert not _expiring(stored(ROTATE_MINUTES * 60 + 300))
    assert _expiring(stored(ROTATE_MINUTES * 60 - 300))
