"""Database engine and sessions, SQLite tuned for one process and PostgreSQL for many."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
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
    # hide_parameters: an error's message (which may reach a log) never quotes what people wrote.
    return create_engine(
        url, pool_size=10, max_overflow=20, pool_pre_ping=True, hide_parameters=True
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


class Database:
    """The engine and a session factory; `with db.session() as s:` commits on success."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._factory() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
