"""Shared fixtures: the Slack stand-in, a database (SQLite, or PostgreSQL when CI provides one)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.slack_standin import SlackStandin
from bot.store.db import Database
from bot.store.migrate import upgrade
from tests.harness import Bot, seed_workspace

pytest_plugins = ["tests.fakes.slack_api", "tests.engine_fixtures"]

# Set by .ci/run to an admin URL of a throwaway cluster, e.g. postgresql+psycopg://u@127.0.0.1:5433/postgres
PG_ADMIN_URL = os.environ.get("PROTOCOLBOT_TEST_POSTGRES")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With PROTOCOLBOT_TEST_POSTGRES set, only the tests that reach the database run: through
    the database_url fixture, or marked `postgres`. The others (parsing, templates, the demo's
    own SQLite, the command line's refusals) do the same on either, and the SQLite run has them."""
    if not PG_ADMIN_URL:
        return
    kept: list[pytest.Item] = []
    left: list[pytest.Item] = []
    for item in items:
        reaches = "database_url" in getattr(item, "fixturenames", ())
        (kept if reaches or item.get_closest_marker("postgres") else left).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


# The fixtures that run the migrations on the test's database before the test sees it (a Bot,
# an Engine): on PostgreSQL such a test's database is a copy of one migrated once per worker.
MIGRATING_FIXTURES = {"bot", "engine", "oauth_bot", "two_schools"}


@pytest.fixture(scope="session")
def migrated_postgres() -> Iterator[str]:
    """The name of a PostgreSQL database the migrations brought to head, for this worker's
    tests to be copies of (CREATE DATABASE ... TEMPLATE): running the migrations' DDL for each
    test cost the bot and the server more CPU than most tests. Nothing connects to it after."""
    name = f"t_migrated_{uuid.uuid4().hex[:12]}"
    admin = create_engine(str(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        made = Database(f"{str(PG_ADMIN_URL).rsplit('/', 1)[0]}/{name}")
        try:
            upgrade(made)
        finally:
            made.dispose()
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def database_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database for one test; on PostgreSQL, for a test whose fixtures migrate
    it anyway, a copy of one already migrated (`upgrade` then finds it at head)."""
    if not PG_ADMIN_URL:
        yield f"sqlite:///{tmp_path}/bot.sqlite3"
        return
    template = ""
    if MIGRATING_FIXTURES & set(request.fixturenames):
        template = f' TEMPLATE "{request.getfixturevalue("migrated_postgres")}"'
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{template}'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def workspace(slack_api: SlackStandin) -> SlackStandin:
    seed_workspace(slack_api)
    return slack_api


@pytest.fixture
def bot(workspace: SlackStandin, database_url: str) -> Iterator[Bot]:
    running = Bot(workspace, database_url).start()
    try:
        yield running
    finally:
        running.stop()


def cut_connections(database_url: str) -> int:
    """What a database restart does to the bot's open connections: end them server-side."""
    name = database_url.rsplit("/", 1)[1]
    admin = create_engine(str(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            pids = (
                conn.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity"
                        " WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
                .scalars()
                .all()
            )
            for pid in pids:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            # Ended is signalled, not done: a backend still there answered the bot's next query.
            deadline = time.monotonic() + 5
            while pids and time.monotonic() < deadline:
                left = conn.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                    {"pids": list(pids)},
                ).scalar()
                if not left:
                    break
                time.sleep(0.01)
    finally:
        admin.dispose()
    return len(pids)


@contextmanager
def _database_altered(
    database_url: str, during: str, after: str, *, cut_after: bool = False
) -> Iterator[None]:
    """`ALTER DATABASE <it> {during}` and every connection the bot holds ended, until the
    block ends; then `ALTER DATABASE <it> {after}` (and, `cut_after`, the connections made
    meanwhile ended: they keep what they were opened with)."""
    name = database_url.rsplit("/", 1)[1]
    admin = create_engine(str(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" {during}'))
        cut_connections(database_url)
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" {after}'))
        admin.dispose()
        if cut_after:
            cut_connections(database_url)


def database_out_of_reach(database_url: str) -> AbstractContextManager[None]:
    """As a database server stopped (or full) looks from the bot: every connection it holds is
    ended and every new one refused, until the block ends."""
    return _database_altered(database_url, "ALLOW_CONNECTIONS false", "ALLOW_CONNECTIONS true")


def database_read_only(database_url: str) -> AbstractContextManager[None]:
    """As a database that takes no writes looks from the bot (a failover onto a standby, a
    managed server that a full disk set read-only): every connection it holds is ended, and
    new ones read but do not write, until the block ends."""
    return _database_altered(
        database_url,
        "SET default_transaction_read_only = on",
        "RESET default_transaction_read_only",
        cut_after=True,
    )
