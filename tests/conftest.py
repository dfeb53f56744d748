"""Shared fixtures: the Slack stand-in, a database (SQLite, or PostgreSQL when CI provides one)."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

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
        # A test handed its own DATABASE_URL (test_cli's that cannot be opened or are refused
        # before connecting) does not reach the test database, on either run.
        callspec = getattr(item, "callspec", None)
        given = callspec is not None and "database_url" in callspec.params
        reaches = "database_url" in getattr(item, "fixturenames", ()) and not given
        (kept if reaches or item.get_closest_marker("postgres") else left).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


# The fixtures that run the migrations on the test's database before the test sees it (a Bot,
# an Engine, a prep world): on PostgreSQL such a test's database is one already migrated.
MIGRATING_FIXTURES = {"bot", "engine", "oauth_bot", "two_schools", "world"}

# Everything a database holds outside PostgreSQL's own schemas, each column with its type and
# default: a database handed back by a test is used again only if, once reset, this reads the
# same as in a database just made (empty, or migrated).
_SHAPE = """
SELECT 'relation', n.nspname, c.relname, c.relkind::text,
       coalesce(a.attname, ''), coalesce(format_type(a.atttypid, a.atttypmod), ''),
       coalesce(pg_get_expr(d.adbin, d.adrelid), '') || a.attnotnull::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
UNION ALL
SELECT 'index', schemaname, indexname, indexdef, '', '', '' FROM pg_indexes
WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'constraint', conrelid::regclass::text, conname, pg_get_constraintdef(oid), '', '', ''
FROM pg_constraint WHERE connamespace NOT IN
  (SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog', 'information_schema'))
UNION ALL
SELECT 'schema', nspname, nspowner::regrole::text, coalesce(nspacl::text, ''), '', '', ''
FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' AND nspname <> 'information_schema'
UNION ALL
SELECT 'type', n.nspname, t.typname, t.typtype::text, '', '', ''
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
UNION ALL
SELECT 'function', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), '', '', ''
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'extension', extname, extversion, '', '', '', '' FROM pg_extension
UNION ALL
SELECT 'trigger', tgrelid::regclass::text, tgname, '', '', '', '' FROM pg_trigger
WHERE NOT tgisinternal
UNION ALL
SELECT 'large object', oid::text, '', '', '', '', '' FROM pg_largeobject_metadata
UNION ALL
SELECT 'setting', coalesce(setconfig::text, ''), '', '', '', '', '' FROM pg_db_role_setting
WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY 1, 2, 3, 4, 5
"""


class _DatabasePool:
    """This worker's PostgreSQL databases for tests, each handed to one test at a time.

    CREATE DATABASE copies template1 (7.5 MB): 0.3 CPU s of the server's for every test, and
    the migrations' DDL as much again for a test that needs the schema, more than most tests
    cost. A database a test is done with is instead reset and handed to the next test: its
    connections ended (as DROP DATABASE ... WITH (FORCE) does), its settings reset (ALTER
    DATABASE ... RESET ALL, connections allowed), then emptied (the public schema made again)
    or, for a migrated one, its rows and sequences cleared. It is used again only if it then
    holds what a database just made holds, object for object (_SHAPE, and the revision);
    otherwise, or on any error, it is dropped and the next test gets a new one."""

    def __init__(self, admin_url: str) -> None:
        self.base = admin_url.rsplit("/", 1)[0]
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.free: dict[bool, list[str]] = {False: [], True: []}
        self.made: list[str] = []
        self.shapes: dict[bool, list[Any]] = {}
        self.revisions: list[Any] = []

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def _create(self, migrated: bool) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.made.append(name)
        if migrated:
            db = Database(self.url(name))
            try:
                upgrade(db)
            finally:
                db.dispose()
        if migrated not in self.shapes:
            self.shapes[migrated] = self._read(name, _SHAPE)
            if migrated:
                self.revisions = self._read(name, "SELECT version_num FROM alembic_version")
        return name

    def _read(self, name: str, sql: str) -> list[Any]:
        engine = create_engine(self.url(name), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(sql))]
        finally:
            engine.dispose()

    def take(self, migrated: bool) -> str:
        free = self.free[migrated]
        return free.pop() if free else self._create(migrated)

    def give_back(self, name: str, migrated: bool) -> None:
        try:
            kept = self._renamed(name) if self._reset(name, migrated) else ""
        except Exception:
            kept = ""
        if kept:
            self.free[migrated].append(kept)
        else:
            self._drop(name)

    def _renamed(self, name: str) -> str:
        """The database under a new name: a process the test left behind, still trying the
        old URL, reaches no database, as after DROP DATABASE. "" if something still holds it."""
        new = f"t_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            for _ in range(100):
                try:
                    conn.execute(text(f'ALTER DATABASE "{name}" RENAME TO "{new}"'))
                except OperationalError:
                    time.sleep(0.01)  # the reset's own connection is still closing
                    continue
                self.made[self.made.index(name)] = new
                return new
        return ""

    def _reset(self, name: str, migrated: bool) -> bool:
        with self.admin.connect() as conn:
            for change in ("ALLOW_CONNECTIONS true CONNECTION LIMIT -1", "RESET ALL"):
                conn.execute(text(f'ALTER DATABASE "{name}" {change}'))
            ended = time.monotonic() + 5
            while True:
                left = conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                ).all()
                if not left:
                    break
                if time.monotonic() > ended:
                    return False
                time.sleep(0.01)
        engine = create_engine(self.url(name), poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                if migrated:
                    tables = conn.execute(
                        text(
                            "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname ="
                            " 'public' AND tablename <> 'alembic_version'"
                        )
                    ).scalars()
                    listed = ", ".join(tables)
                    if listed:
                        conn.execute(text(f"TRUNCATE {listed} RESTART IDENTITY CASCADE"))
                    for sequence in conn.execute(
                        text("SELECT quote_ident(sequencename) FROM pg_sequences")
                    ).scalars():
                        conn.execute(text(f"ALTER SEQUENCE {sequence} RESTART"))
                    revisions = [
                        tuple(row)
                        for row in conn.execute(text("SELECT version_num FROM alembic_version"))
                    ]
                    if revisions != self.revisions:
                        return False
                else:
                    for schema in conn.execute(
                        text(
                            "SELECT quote_ident(nspname) FROM pg_namespace WHERE nspname NOT"
                            " LIKE 'pg_%' AND nspname NOT IN ('information_schema', 'public')"
                        )
                    ).scalars():
                        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
                    conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                    conn.execute(text("CREATE SCHEMA public AUTHORIZATION pg_database_owner"))
                    conn.execute(text("GRANT USAGE ON SCHEMA public TO PUBLIC"))
                    conn.execute(text("COMMENT ON SCHEMA public IS 'standard public schema'"))
                shape = [tuple(row) for row in conn.execute(text(_SHAPE))]
        finally:
            engine.dispose()
        return shape == self.shapes[migrated]

    def _drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        for name in self.made:
            with contextlib.suppress(Exception):
                self._drop(name)
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres_pool() -> Iterator[_DatabasePool]:
    pool = _DatabasePool(str(PG_ADMIN_URL))
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def database_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database for one test; on PostgreSQL, for a test whose fixtures migrate
    it anyway, one at head (`upgrade` then finds nothing to do). On PostgreSQL it comes from
    this worker's pool (_DatabasePool): as fresh, and a fraction of the CPU."""
    if not PG_ADMIN_URL:
        yield f"sqlite:///{tmp_path}/bot.sqlite3"
        return
    pool: _DatabasePool = request.getfixturevalue("postgres_pool")
    migrated = bool(MIGRATING_FIXTURES & set(request.fixturenames))
    name = pool.take(migrated)
    try:
        yield pool.url(name)
    finally:
        pool.give_back(name, migrated)


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
