"""The bot as Slack sees it: the real app over HTTP, a real database, the stand-in Web API."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, make_url, select, text

from bot import commands as cmd
from bot.app import build_app
from bot.clock import Clock
from bot.listeners.commands import READ_ONLY
from bot.runtime import Runtime
from bot.server import BackgroundServer, make_server
from bot.settings import Settings
from bot.slack import TokenBucket
from bot.slack_standin import SlackStandin, refusal_of_message
from bot.store.db import Database
from bot.store.migrate import upgrade
from bot.store.models import Contribution
from bot.store.revision import at_head
from tests.fakes.signing import event_body, interaction_body, signed_headers, slash_command_body

SECRET = "test-signing-secret"
TEAM, CHANNEL = "T_TEAM", "C_TEAM"
FACILITATOR, PRESENTER = "U_FAC", "U_PRE"
TEACHERS = ("U_T1", "U_T2", "U_T3")


def http_post(url: str, body: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def seed_workspace(standin: SlackStandin) -> None:
    standin.add_user(FACILITATOR, "dana", tz="America/Los_Angeles")
    standin.add_user(PRESENTER, "maria", tz="America/New_York")
    for i, user in enumerate(TEACHERS):
        standin.add_user(user, f"teacher{i + 1}")
    standin.add_user("U_ADMIN", "admin", is_admin=True)
    standin.add_channel(CHANNEL, [FACILITATOR, PRESENTER, *TEACHERS, "U_BOT"])


def tables_holding(bot: Bot, secret: str) -> list[str]:
    """The tables, in the main database and the inbox's, with a row that holds `secret`."""
    found = []
    for opened in (bot.db.session, bot.db.inbox_session):
        with opened() as s:
            for name in inspect(s.connection()).get_table_names():
                rows = s.execute(text(f'SELECT * FROM "{name}"')).all()
                found += [name for row in rows if secret in repr(tuple(row))]
    return found


_migrated_sqlite: list[Path] = []


def migrated_copy(database_url: str) -> None:
    """A SQLite file not made yet is made a copy of one that `upgrade` made in this process:
    the same schema for a tenth of the CPU (the migrations' DDL, compiled anew each time, cost
    more than most tests). `to_head` then finds the copy at head. Tests of the migrations
    themselves run `upgrade` on an empty database, as before."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    target = Path(str(url.database))
    if target.exists() or not target.parent.is_dir():
        return
    if not _migrated_sqlite:
        folder = Path(tempfile.mkdtemp(prefix="protocolbot-migrated-"))
        atexit.register(shutil.rmtree, folder, True)
        template = folder / "migrated.sqlite3"
        made = Database(f"sqlite:///{template}")
        try:
            upgrade(made)
        finally:
            made.dispose()
        _migrated_sqlite.append(template)
    shutil.copyfile(_migrated_sqlite[0], target)


def migrated(database_url: str) -> None:
    """The database at head, as `protocolbot db upgrade` leaves it, for bot processes a test
    starts: done here, where the migrations are already imported (a SQLite file copied as
    migrated_copy makes it), and not by a `db upgrade` child, which cost a second of CPU in
    imports, far more than the upgrade. test_cli runs `db upgrade` itself."""
    migrated_copy(database_url)
    db = Database(database_url)
    try:
        to_head(db)
    finally:
        db.dispose()


def to_head(db: Database) -> None:
    """`upgrade`, unless the database is at head already (one query, as serve checks at its
    start): Alembic reads every migration script again even to find nothing to do."""
    if not at_head(db):
        upgrade(db)


def wait_until(predicate: Callable[[], object], timeout: float = 15.0, poll: float = 0.05) -> None:
    """Poll until `predicate` holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise AssertionError("condition not met in time")


def sqlite_statements(db: Database) -> list[str]:
    """Every statement SQLite runs on `db`'s engine connections from now on, as run."""
    traced: list[str] = []
    event.listen(
        db.engine.pool,
        "checkout",
        lambda dbapi, _record, _proxy: dbapi.set_trace_callback(traced.append),
    )
    return traced


def statements(db: Database) -> list[str]:
    """Every statement run on `db`'s engine from now on, one for each row an executemany
    takes: on SQLite as SQLite ran them (statements sent by the driver alone included), on
    PostgreSQL as SQLAlchemy sent them."""
    if not db.is_postgres:
        return sqlite_statements(db)
    traced: list[str] = []

    def sent(_conn: Any, _cursor: Any, sql: str, params: Any, _context: Any, many: bool) -> None:
        traced.extend([sql] * (len(params) if many else 1))

    event.listen(db.engine, "before_cursor_execute", sent)
    return traced


class Bot:
    """A running bot: send it signed requests, read what it posted from the stand-in."""

    def __init__(
        self,
        standin: SlackStandin,
        database_url: str,
        *,
        clock: Clock | None = None,
        with_scheduler: bool = True,
        handle_events: bool = False,
        settings: Settings | None = None,
        protocols_dir: Path | None = None,
        paced: bool = False,
    ) -> None:
        self.standin = standin
        self.settings = settings or Settings(
            slack_bot_token="xoxb-test",
            slack_signing_secret=SECRET,
            slack_api_url=standin.url,
            database_url=database_url,
            protocols_dir=protocols_dir,
        )
        migrated_copy(database_url)
        self.db = Database(database_url)
        to_head(self.db)
        self.runtime = Runtime(
            self.settings,
            clock=clock,
            with_scheduler=with_scheduler,
            handle_events=handle_events,
            database=self.db,
        )
        if not paced:
            # Posts go as soon as they are due, not a second apart in a channel as Slack would
            # have them: a test that walks a session's steps waited a second for each post. The
            # pacing has tests of its own (test_outbox_faults), and a bot process started by a
            # test (tests/process.py) paces as in production.
            self.runtime.sender.bucket = TokenBucket(rate=1000.0, burst=1000.0)
        self.app = build_app(self.runtime)
        self.server = BackgroundServer(
            make_server(self.app, self.runtime, host="127.0.0.1", port=0)
        )
        self.url = f"http://127.0.0.1:{self.server.port}/slack/events"

    def start(self) -> Bot:
        self.runtime.start()
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.runtime.stop()
        self.db.dispose()

    # -- requests as Slack sends them -----------------------------------------------------------
    def post(
        self, body: str, *, secret: str = SECRET, timestamp: int | None = None
    ) -> tuple[int, str]:
        return http_post(self.url, body, signed_headers(body, secret, timestamp))

    def command(
        self, text: str, user: str = FACILITATOR, channel: str = CHANNEL, team: str = TEAM
    ) -> dict[str, Any]:
        """The answer: in the ack, or, for a command that only reads, sent to response_url."""
        url = self.standin.response_url(f"cmd-{uuid.uuid4().hex}")
        status, body = self.post(
            slash_command_body(
                text, user_id=user, channel_id=channel, team_id=team, response_url=url
            )
        )
        assert status == 200, (status, body)
        if body:
            answer = dict(json.loads(body))
            # Slack shows the asker an error instead of an answer it would not post.
            assert refusal_of_message(answer) is None, refusal_of_message(answer)
            return answer
        if not isinstance(cmd.parse(text, now=datetime.now(UTC), tz="UTC"), READ_ONLY):
            return {}
        calls = self.standin.wait_for(
            lambda calls: any(c.params.get("response_url") == url for c in calls)
        )
        answer = next(c for c in calls if c.params.get("response_url") == url)
        return {k: v for k, v in answer.params.items() if k != "response_url"}

    def event(
        self,
        event: dict[str, Any],
        *,
        team: str = TEAM,
        event_id: str | None = None,
        retry: int | None = None,
        event_time: int | None = None,
    ) -> int:
        body = event_body(
            {"team": team, **event}, team_id=team, event_id=event_id, event_time=event_time
        )
        headers = signed_headers(body, SECRET)
        if retry is not None:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        status, _ = http_post(self.url, body, headers)
        return status

    def reply(
        self,
        user: str,
        text: str,
        thread_ts: str,
        *,
        channel: str = CHANNEL,
        team: str = TEAM,
        ts: str | None = None,
    ) -> str:
        ts = ts or f"{time.time():.6f}"
        status = self.event(
            {
                "type": "message",
                "channel": channel,
                "user": user,
                "text": text,
                "ts": ts,
                "thread_ts": thread_ts,
                "channel_type": "channel",
            },
            team=team,
        )
        assert status == 200
        return ts

    def action(
        self, action_id: str, value: str, user: str = FACILITATOR, team: str = TEAM
    ) -> tuple[int, str]:
        payload = {
            "type": "block_actions",
            "user": {"id": user, "team_id": team},
            "team": {"id": team, "domain": "standin"},
            "channel": {"id": CHANNEL},
            "api_app_id": "A_APP",
            "trigger_id": f"trigger.{uuid.uuid4().hex}",
            "response_url": self.standin.response_url(),
            "container": {"type": "message", "channel_id": CHANNEL},
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "value": value,
                    "block_id": "b",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        return self.post(interaction_body(payload))

    # -- what the bot said ----------------------------------------------------------------------
    def posts(self, channel: str = CHANNEL) -> list[dict[str, Any]]:
        return [m for m in self.standin.messages(channel) if m.get("user") == "U_BOT"]

    def step_posts(self) -> list[dict[str, Any]]:
        return [
            m
            for m in self.posts()
            if str(m.get("text", "")).startswith("Step ") and not m.get("thread_ts")
        ]

    def open_step(self) -> str:
        """Start an ATLAS session on hour-long steps; the first step message's ts, once sent."""
        self.command(f"start atlas <@{PRESENTER}|maria> step 1h")
        self.wait_until(lambda: bool(self.step_posts()))
        self.runtime.sender.drain(5)
        return str(self.step_posts()[0]["ts"])

    @contextmanager
    def sessions_locked(self) -> Iterator[None]:
        """Hold a lock that recording a reply needs (SQLite: the main database's write lock;
        PostgreSQL: the sessions' rows), from another thread, for the length of the block."""
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with self.db.session() as s:
                if self.db.is_postgres:
                    # Recording a reply takes a key-share lock on its session's row.
                    s.execute(text("SELECT id FROM sessions FOR UPDATE"))
                else:
                    s.execute(text("UPDATE sessions SET status = status"))
                holding.set()
                release.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert holding.wait(10)
            yield
            assert holder.is_alive()  # held until the end of the block
        finally:
            release.set()
            holder.join()

    # -- what the bot stored --------------------------------------------------------------------
    def recorded(self) -> list[str]:
        """The ts of every reply recorded as a contribution, in the order recorded."""
        with self.db.session() as s:
            return list(s.scalars(select(Contribution.ts).order_by(Contribution.id)))

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every event stored is handled and every post due is sent: what an
        assertion that nothing (more) happened needs, instead of a pause. Work a command set
        going after its ack (answers, a start's checks of who is in the channel) comes first:
        it can store events and queue posts."""
        self.wait_until(self.runtime.answers.idle, timeout)
        self.wait_until(self.runtime.inbox.idle, timeout)
        self.runtime.sender.drain(timeout)

    def wait_until(self, predicate: Callable[[], object], timeout: float = 15.0) -> None:
        wait_until(predicate, timeout)
