"""Database engine and sessions, SQLite tuned for one process and PostgreSQL for many."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.store.raw import stored_datetime, update_pairs

# The HTTP server's threads (bot/server.py). Each may store an event before its ack at the same
# moment, so a web process on PostgreSQL keeps an ack connection for each (see Database).
REQUEST_THREADS = 16

# Set while a thread is inside Database.reading(): its transactions begin without the write lock.
_reading = threading.local()
# How many times each thread has reached the database (a connection handed out to it, or an
# event stored by the driver alone): what tells an outage is over is a request that reached it.
_reached = threading.local()


def reached_database() -> int:
    """This thread's count of connections to the database it was handed; compare two."""
    return int(getattr(_reached, "count", 0))


def _note_reached(*_args: Any) -> None:
    _reached.count = getattr(_reached, "count", 0) + 1


# How long a new PostgreSQL connection may take. Without a limit, a server that is frozen (or a
# network that drops packets) accepts the connection and never answers: every request and timer
# waiting for a connection hung with it, rather than failing and being tried again.
CONNECT_SECONDS = 5


def connect_timeout(url: str) -> dict[str, Any]:
    """libpq's connect_timeout for `url`, unless the URL names its own."""
    return {} if "connect_timeout" in make_url(url).query else {"connect_timeout": CONNECT_SECONDS}


def make_engine(
    url: str,
    *,
    options: str = "",
    pre_ping: bool = True,
    pool_size: int = 10,
    autocommit: bool = False,
    application_name: str = "",
) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={
                "timeout": 30,
                "check_same_thread": False,
                "factory": _serialized_connection(),
            },
            pool_size=10,
            hide_parameters=True,
        )
        _tune_sqlite(engine)
        return engine
    # TimeZone=UTC: psycopg then hands timestamps back in datetime.UTC, which the store passes
    # through as they are; in a zone such as the usual Etc/UTC (a ZoneInfo) every one read is
    # converted, a tenth of the clock's CPU with 10,000 running sessions.
    given = make_url(url).query.get("options", ())
    options = " ".join(
        [*([given] if isinstance(given, str) else given), "-c TimeZone=UTC", options]
    ).strip()
    # hide_parameters: an error's message (which may reach a log) never quotes what people wrote.
    # pool_pre_ping costs a round trip a checkout, kept so a restarted server costs no request:
    # the clock takes a few dozen connections a second (steps and posts go in rounds), not hundreds.
    return create_engine(
        url,
        connect_args={
            "options": options,
            **connect_timeout(url),
            **({"application_name": application_name} if application_name else {}),
        },
        pool_size=pool_size,
        max_overflow=20,
        pool_pre_ping=pre_ping,
        hide_parameters=True,
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
    )


def _serialized_connection() -> type[sqlite3.Connection]:
    """A sqlite3 connection class whose write transactions queue on one in-process lock.

    SQLite's own busy handler polls with sleeps that grow to 100 ms, so under contention a writer
    waits far longer than the transaction ahead of it holds the lock. Queuing on a Python lock
    first wakes the next writer as soon as the previous one commits.
    """
    lock = threading.RLock()

    class Serialized(sqlite3.Connection):
        holding = False

        def begin_write(self) -> None:
            lock.acquire()
            self.holding = True

        def release_write(self) -> None:
            if self.holding:
                self.holding = False
                lock.release()

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self.release_write()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self.release_write()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self.release_write()

    return Serialized


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see the begin hook).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if getattr(_reading, "depth", 0):
            # A read sees the last commit (WAL) and never waits for a writer.
            connection.exec_driver_sql("BEGIN")
            return
        # IMMEDIATE takes the write lock up front: read-then-write transactions from several
        # threads then queue on busy_timeout instead of failing with "database is locked".
        dbapi = connection.connection.dbapi_connection
        if hasattr(dbapi, "begin_write"):
            dbapi.begin_write()
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except Exception:
            if hasattr(dbapi, "release_write"):
                dbapi.release_write()
            raise


def inbox_url(url: str) -> str | None:
    """Where a SQLite database keeps its inbox: a file beside it (bot.db -> bot.inbox.db).

    SQLite lets one transaction write at a time per file. Events are stored before Slack hears
    the ack, so in a file of their own they never wait behind the engine or the outbox.
    PostgreSQL, and SQLite in memory, keep the inbox with everything else (None).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database or "")
    return parsed.set(
        database=str(path.with_name(f"{path.stem}.inbox{path.suffix}"))
    ).render_as_string(hide_password=False)


class Database:
    """The engine and a session factory; `with db.session() as s:` commits on success."""

    def __init__(self, url: str, application_name: str = "") -> None:
        """application_name: what the connections call themselves on PostgreSQL (a clock's
        name, by which a standby taking over from it finds them all)."""
        self.url = url
        self.engine = make_engine(url, application_name=application_name)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        beside = inbox_url(url)
        self.inbox_engine = make_engine(beside) if beside else self.engine
        self._inbox_factory = (
            sessionmaker(self.inbox_engine, expire_on_commit=False) if beside else self._factory
        )
        if beside:

            @event.listens_for(self.inbox_engine, "connect")
            def _no_checkpoint_on_commit(dbapi_connection: Any, _record: Any) -> None:
                # A commit that fills the WAL would copy it back and fsync, inside an ack;
                # checkpoint_inbox() does that from a background thread instead.
                dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

        # PostgreSQL: the events stored before each ack go through connections of their own.
        # Their commits don't wait for the WAL to reach the disk (synchronous_commit=off):
        # PostgreSQL has the row the moment it answers, so a bot process that dies after the
        # ack loses nothing; only a crash of the database server itself within 0.6 s could
        # (3 x wal_writer_delay), as a power cut could with SQLite in WAL mode. No pre-ping
        # either (a round trip a checkout): a connection found dead is replaced and the insert
        # tried again. With the driver alone, the insert took 0.32 ms p50 and 0.84 ms p99 on
        # loopback, against 0.77 and 1.88 ms through SQLAlchemy on a pre-pinged connection.
        # One connection kept for each server thread: with four kept, every insert past four at
        # once opened a connection (a backend started on the server) and closed it after. At
        # 700 replies/s that was 46 to 585 connections in 8 s, and the ack p99 went from 5.3
        # and 17 ms to 28 and 110 ms.
        self._ack_engine: Engine | None = (
            make_engine(
                url,
                options="-c synchronous_commit=off",
                pre_ping=False,
                pool_size=REQUEST_THREADS,
                autocommit=True,
            )
            if self.engine.dialect.name == "postgresql"
            else None
        )
        for each in {self.engine, self.inbox_engine, self._ack_engine} - {None}:
            event.listen(each, "checkout", _note_reached)
        # The inbox file and its table are made on first use (it holds only a day of events).
        self._inbox_ready = not beside
        self._inbox_lock = threading.Lock()
        # The inbox's own connections, one per thread that writes with the driver alone.
        self._inbox_local = threading.local()
        self._inbox_conns: list[Any] = []

    @property
    def separate_inbox(self) -> bool:
        return self.inbox_engine is not self.engine

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        # A write opened inside a read still takes the write lock.
        depth, _reading.depth = getattr(_reading, "depth", 0), 0
        try:
            with self._factory() as session, session.begin():
                yield session
        finally:
            _reading.depth = depth

    @contextmanager
    def inbox_session(self) -> Iterator[Session]:
        """Like session(), on the inbox's own database when it has one (see inbox_url)."""
        self._prepare_inbox()
        with self._inbox_factory() as session, session.begin():
            yield session

    @contextmanager
    def inbox_write(self) -> Iterator[Connection]:
        """A Core connection in a write transaction on the inbox's database."""
        self._prepare_inbox()
        with self.inbox_engine.begin() as conn:
            yield conn

    def insert_event_sqlite(self, sql: str, params: tuple[Any, ...]) -> int:
        """SQLite with an inbox file only: run the inbox's INSERT with the driver alone, as one
        statement in autocommit (no BEGIN and COMMIT around it), and return the row's id. For
        the one insert before every ack, where the ORM, or even Core, costs four times what the
        write itself does. A duplicate raises sqlite3.IntegrityError.

        Each thread has a connection of its own, and no lock of ours is taken: SQLite takes its
        write lock and lets it go within the one call, while the thread does not hold the GIL.
        Acks used to share one connection behind a Python lock. Under load the lock's holder
        then waited for the GIL after the write while every other ack queued on the lock, and
        at 800-900 replies/s acks went from milliseconds to seconds (py-spy: 91 of 96 samples
        of the server's threads waiting on that lock)."""
        self._prepare_inbox()
        row_id = int(self._inbox_driver().execute(sql, params).lastrowid or 0)
        _note_reached()
        return row_id

    def mark_events_sqlite(self, marks: list[tuple[int, datetime]]) -> None:
        """SQLite with an inbox file only: note events handled (id, when), each MARK_CHUNK in
        one statement in autocommit, on the thread's own connection as insert_event_sqlite().
        A transaction around several statements would hold the file's write lock while this
        thread waited for the GIL between them, and an ack meeting it would sleep in SQLite's
        busy handler (a millisecond at least)."""
        self._prepare_inbox()
        update_pairs(
            self._inbox_driver(),
            "UPDATE inbox SET processed_at = marked.column2"
            " FROM (VALUES {rows}) AS marked WHERE inbox.id = marked.column1",
            [(row_id, stored_datetime(at)) for row_id, at in marks],
        )

    def _inbox_driver(self) -> Any:
        """This thread's connection to the inbox file, kept out of the engine's pool."""
        conn = getattr(self._inbox_local, "conn", None)
        if conn is None:
            pooled = self.inbox_engine.raw_connection()
            pooled.detach()
            conn = self._inbox_local.conn = pooled.dbapi_connection
            with self._inbox_lock:
                self._inbox_conns.append(conn)
        return conn

    def insert_event_pg(self, sql: str, params: tuple[Any, ...]) -> int:
        """PostgreSQL: run the inbox's INSERT ... RETURNING id on an ack connection (see
        __init__) with the driver alone, committed; a duplicate raises IntegrityError."""
        assert self._ack_engine is not None
        dbapi = self._ack_engine.dialect.loaded_dbapi
        for attempt in (1, 2):
            try:
                pooled = self._ack_engine.raw_connection()
            except dbapi.OperationalError as exc:
                # The server is down or full. Said as SQLAlchemy says it, as every other
                # statement's failure is: the ack's error handler then knows an outage (one
                # log line for all the events it turns away) from a fault.
                raise OperationalError("connect", None, exc) from None
            try:
                conn: Any = pooled.dbapi_connection
                try:
                    # One statement in autocommit: one round trip, where a transaction
                    # around it would take three (BEGIN, the insert, COMMIT).
                    row = conn.execute(sql, params).fetchone()
                    return int(row[0])
                except conn.IntegrityError as exc:
                    raise IntegrityError("INSERT INTO inbox", None, exc) from None
                except conn.OperationalError as exc:
                    # The server went away (a restart): this connection is done for.
                    pooled.invalidate()
                    if attempt == 2:
                        raise OperationalError("INSERT INTO inbox", None, exc) from None
            finally:
                pooled.close()
        raise AssertionError("unreachable")

    def checkpoint_inbox(self) -> None:
        """Fold the inbox file's WAL back into it (SQLite with an inbox file; else nothing).
        PASSIVE: never waits for, nor blocks, a writer."""
        if not self.separate_inbox or not self._inbox_ready:
            return
        pooled = self.inbox_engine.raw_connection()
        try:
            pooled.dbapi_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
        finally:
            pooled.close()

    def _prepare_inbox(self) -> None:
        if self._inbox_ready:
            return
        with self._inbox_lock:
            if not self._inbox_ready:
                from bot.store.models import InboxEvent  # models import nothing from here

                InboxEvent.metadata.tables["inbox"].create(self.inbox_engine, checkfirst=True)
                self._inbox_ready = True

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only look at the last committed state, for answers that change nothing.

        On SQLite it takes no write lock, so a read never queues behind the outbox or the
        inbox. Nothing is committed: whatever the block might add is discarded at its end.
        Objects stay readable after the block, as with session().
        """
        _reading.depth = getattr(_reading, "depth", 0) + 1
        try:
            with self._factory() as session:
                yield session
        finally:
            _reading.depth -= 1

    def dispose(self) -> None:
        with self._inbox_lock:
            conns, self._inbox_conns = self._inbox_conns, []
        for conn in conns:
            conn.close()
        self._inbox_local = threading.local()
        self.engine.dispose()
        if self._ack_engine is not None:
            self._ack_engine.dispose()
        if self.separate_inbox:
            self.inbox_engine.dispose()
