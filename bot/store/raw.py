"""Core statements run with the database's driver alone, inside a session's transaction.

For the few statements every thread reply and every step's close runs. SQLAlchemy's execution
(building a context, processing each parameter and row, the events around it) costs several
times what the database takes to run them. Each statement here is still written once, in Core,
and compiled once for each database; only the values are converted here, the way the store
keeps them (see UTCDateTime): on SQLite datetimes as UTC text and dicts and lists as JSON text;
on PostgreSQL aware datetimes and JSON text, which psycopg reads back as Python values.

On PostgreSQL the statements run on a psycopg RawCursor, with `$1` placeholders: psycopg then
sends the text as it is. Its usual cursor parses every statement's text for `%s` placeholders,
in Python, and keeps the parse only of short statements with few values, which left out the
ORM's inserts of many rows: a tenth of the clock's CPU at 10,000 sessions (py-spy).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import JSON, Connection, Insert, Select, Update, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bot.clock import as_utc
from bot.store.models import UTCDateTime

if TYPE_CHECKING:
    from psycopg import RawCursor

_DIALECT = sqlite.dialect()
# PostgreSQL as SQLAlchemy's psycopg dialect writes it (its casts of each value), numbered.
_PG_DIALECT = postgresql.psycopg.dialect(paramstyle="numeric_dollar")
# Session.info keys: the transaction whose driver connection _found() found, and what it found
# (the SQLite connection, or a _Pg); the rows gathered for the driver to insert (gathering).
_DRIVER = "raw_driver"
_GATHERED = "raw_gathered"
# Values the driver takes as they are (most of them: looked up before any isinstance).
_AS_THEY_ARE = frozenset({str, int, float, bool, bytes, type(None)})
# Pairs written per UPDATE ... FROM (VALUES ...) (update_pairs): 2 values each, within SQLite's
# oldest limit of 999 values a statement.
MARK_CHUNK = 400


def driver(s: Session) -> sqlite3.Connection | None:
    """The session's SQLite connection, in its transaction (begun if it wasn't); None on any
    other database."""
    found = _found(s)
    return found if isinstance(found, sqlite3.Connection) else None


class _Pg:
    """A RawCursor on a session's psycopg connection, and that connection as SQLAlchemy holds
    it. A statement run here is seen by SQLAlchemy's cursor events, as one of its own is (a
    tracer, a test counting statements); a failure is raised as SQLAlchemy raises it (an
    OperationalError when the server is out of reach, which the loops tell as an outage), and
    a connection lost is not pooled again."""

    __slots__ = ("cursor", "connection")

    def __init__(self, cursor: RawCursor[Any], connection: Connection) -> None:
        self.cursor, self.connection = cursor, connection

    def run(self, sql: str, params: list[Any], *, many: bool = False) -> RawCursor[Any]:
        connection, cursor = self.connection, self.cursor
        dispatch = connection.dispatch
        before, after = dispatch.before_cursor_execute, dispatch.after_cursor_execute
        # Where SQLAlchemy's listeners find its execution context, what a tracer keeps from one
        # event to the other (its span): these statements have no such context of their own.
        context = SimpleNamespace() if before or after else None
        if before:
            before(connection, cursor, sql, params, context, many)
        try:
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
        except Exception as error:
            self.failed(sql, error)
        if after:
            after(connection, cursor, sql, params, context, many)
        return cursor

    def failed(self, sql: str, error: Exception) -> NoReturn:
        connection = self.connection
        dialect = connection.dialect
        dbapi = dialect.loaded_dbapi
        lost = isinstance(error, dbapi.Error) and dialect.is_disconnect(
            error, connection.connection.dbapi_connection, None
        )
        if lost:
            connection.invalidate(error)
        raise DBAPIError.instance(
            sql,
            None,
            error,
            dbapi.Error,
            hide_parameters=True,
            connection_invalidated=lost,
            dialect=dialect,
        ) from error


def _found(s: Session) -> sqlite3.Connection | _Pg:
    """The session's SQLite connection, or a RawCursor on its psycopg connection (a _Pg), in
    its transaction (begun if it wasn't). Kept in the session for the rest of its transaction: a
    lane runs several statements for each reply of a batch, and finding the connection through
    the session each time cost a fifth of the lane's CPU (cProfile)."""
    transaction = s.get_transaction()
    kept = s.info.get(_DRIVER)
    if kept is not None and transaction is not None and kept[0] is transaction:
        return kept[1]  # type: ignore[no-any-return]
    connection = s.connection()
    dbapi = connection.connection.dbapi_connection
    found: sqlite3.Connection | _Pg
    if isinstance(dbapi, sqlite3.Connection):
        found = dbapi
    else:
        import psycopg

        assert isinstance(dbapi, psycopg.Connection)
        found = _Pg(psycopg.RawCursor(dbapi), connection)
    s.info[_DRIVER] = (s.get_transaction(), found)
    return found


def update_pairs(
    conn: sqlite3.Connection, sql: str, pairs: list[tuple[Any, Any]], *first: Any
) -> None:
    """Run `sql`, an UPDATE ... FROM (VALUES {rows}) AS marked ... whose VALUES rows are pairs
    (marked.column1, marked.column2), for every pair, MARK_CHUNK pairs a statement; `first`: the
    values of the placeholders before the VALUES. One statement where an executemany steps once
    a row, and on each step gives up the GIL and waits to have it back while holding the file's
    write lock."""
    for start in range(0, len(pairs), MARK_CHUNK):
        chunk = pairs[start : start + MARK_CHUNK]
        rows = ", ".join(["(?, ?)"] * len(chunk))
        conn.execute(sql.format(rows=rows), [*first, *(value for pair in chunk for value in pair)])


def stored_datetime(at: datetime) -> str:
    """A datetime as SQLAlchemy's DateTime stores it in SQLite: UTC, without an offset."""
    return as_utc(at).isoformat(" ", "microseconds")[:-6]  # less "+00:00" (as_utc gives UTC)


def _bind(value: Any, when: Callable[[datetime], Any] = stored_datetime) -> Any:
    """A value as the driver takes it: datetimes by `when` (SQLite's text, or PostgreSQL's aware
    UTC: as_utc), dicts and lists as JSON text."""
    if type(value) in _AS_THEY_ARE:
        return value
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def _read_datetime(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:  # as stored_datetime writes them: UTC without an offset, read with one (the fast way)
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # a value written some other way, say with its offset
        return as_utc(datetime.fromisoformat(value))


def _read_pg_datetime(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _read_json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


class Statement:
    """A Core statement run in a session's transaction by the driver alone, compiled once for
    each database. Values are given by name, as to Core.

    columns: for an INSERT, the columns it sets (every one it is given), in any order.
    An IN list (an expanding parameter) can't be compiled once: such statements stay Core.
    """

    def __init__(
        self,
        statement: Select[*tuple[Any, ...]] | Insert | Update,
        columns: list[str] | None = None,
    ) -> None:
        self.statement = statement
        self._columns = columns
        self._pg: tuple[str, tuple[str, ...]] | None = None  # compiled at its first use
        compiled = statement.compile(dialect=_DIALECT, column_keys=columns)
        self.sql = compiled.string
        self._names = tuple(compiled.positiontup or ())
        # Values the statement carries itself (`.values(status="sent")`): not asked of callers.
        binds = {name: compiled.binds[name] for name in self._names}
        self._fixed = {
            name: bind.value
            for name, bind in binds.items()
            if not bind.required and bind.value is not None
        }
        # What Core would fill in from a column's default (an INSERT not given that column) is
        # not done here: such a statement must be given every column.
        if defaulted := [n for n, b in binds.items() if not b.required and b.value is None]:
            raise ValueError(f"give these columns too: {', '.join(defaulted)}")
        types = (
            [column.type for column in statement.selected_columns]
            if isinstance(statement, Select)
            else [column["type"] for column in statement.returning_column_descriptions]
        )
        # Columns read back as SQLAlchemy would hand them out (the rest come as they are).
        self._reads: list[tuple[int, Callable[[Any], Any]]] = [
            (i, _read_datetime if isinstance(kind, UTCDateTime) else _read_json)
            for i, kind in enumerate(types)
            if isinstance(kind, UTCDateTime | JSON)
        ]
        # On PostgreSQL psycopg reads JSON as Python values and timestamps as aware datetimes.
        self._pg_reads: list[tuple[int, Callable[[Any], Any]]] = [
            (i, _read_pg_datetime) for i, kind in enumerate(types) if isinstance(kind, UTCDateTime)
        ]

    def _pg_statement(self) -> tuple[str, tuple[str, ...]]:
        if self._pg is None:
            compiled = self.statement.compile(dialect=_PG_DIALECT, column_keys=self._columns)
            self._pg = (compiled.string, tuple(compiled.positiontup or ()))
        return self._pg

    def _args(
        self,
        values: dict[str, Any],
        names: tuple[str, ...] | None = None,
        when: Callable[[datetime], Any] = stored_datetime,
    ) -> list[Any]:
        """The values in placeholder order (SQLite's, or `names`: PostgreSQL's, with its `when`
        for datetimes), the statement's own filled in."""
        fixed = self._fixed
        return [
            _bind(values[name] if name in values or name not in fixed else fixed[name], when)
            for name in (self._names if names is None else names)
        ]

    def execute(self, s: Session, values: dict[str, Any]) -> None:
        """Run the statement; whatever it returns is not read."""
        found = _found(s)
        if isinstance(found, sqlite3.Connection):
            found.execute(self.sql, self._args(values))
        else:
            sql, names = self._pg_statement()
            found.run(sql, self._args(values, names, as_utc))

    def executemany(self, s: Session, rows: list[dict[str, Any]]) -> None:
        """Run the statement once for each set of values, as Core's executemany does (on
        PostgreSQL in one round trip: psycopg pipelines them)."""
        if not rows:
            return
        found = _found(s)
        if isinstance(found, sqlite3.Connection):
            found.executemany(self.sql, [self._args(values) for values in rows])
        else:
            sql, names = self._pg_statement()
            found.run(sql, [self._args(values, names, as_utc) for values in rows], many=True)

    def all(self, s: Session, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Every row the statement returns."""
        found = _found(s)
        if isinstance(found, sqlite3.Connection):
            return [self._read(row) for row in found.execute(self.sql, self._args(values))]
        sql, names = self._pg_statement()
        return [
            self._read(row, self._pg_reads)
            for row in found.run(sql, self._args(values, names, as_utc)).fetchall()
        ]

    def first(self, s: Session, values: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row the statement returns, or None."""
        found = _found(s)
        if isinstance(found, sqlite3.Connection):
            row = found.execute(self.sql, self._args(values)).fetchone()
            return None if row is None else self._read(row)
        sql, names = self._pg_statement()
        got = found.run(sql, self._args(values, names, as_utc)).fetchone()
        return None if got is None else self._read(got, self._pg_reads)

    def _read(
        self, row: tuple[Any, ...], reads: list[tuple[int, Callable[[Any], Any]]] | None = None
    ) -> tuple[Any, ...]:
        """A row as SQLAlchemy would hand it out: its columns converted by `reads` (SQLite's
        unless given)."""
        reads = self._reads if reads is None else reads
        if not reads:
            return row
        read = list(row)
        for i, convert in reads:
            read[i] = convert(read[i])
        return tuple(read)


class Gathered:
    """The rows a transaction puts in together (see gathering): each statement's, in order."""

    def __init__(self, s: Session) -> None:
        self._s = s
        self._rows: dict[Statement, list[dict[str, Any]]] = {}

    def add(self, statement: Statement, values: dict[str, Any]) -> None:
        self._rows.setdefault(statement, []).append(values)

    def insert(self, *_: Any) -> None:
        """Insert what is gathered: each statement's rows in one executemany."""
        rows, self._rows = self._rows, {}
        for statement, values in rows.items():
            statement.executemany(self._s, values)


def gathered(s: Session) -> Gathered | None:
    """The rows `s` gathers for the driver to insert, if it is inside gathering()."""
    found: Gathered | None = s.info.get(_GATHERED)
    return found


@contextmanager
def gathering(s: Session) -> Iterator[Gathered]:
    """Rows for INSERTs that the ORM would otherwise write (its objects added, flushed at the
    commit) are gathered while inside, and inserted by the driver at its end, or before that at
    a flush of the session: so they stand where the ORM's rows would, seen by the reads after a
    flush. For a transaction that adds many and reads them no more: the clock's round of closes.
    The ORM built an object for each and wrote each table's as one statement, which returned
    the ids; on PostgreSQL psycopg parsed that statement's text anew every time, in Python.
    Where the ORM will not flush before the end (no_autoflush), reads see neither."""
    rows = Gathered(s)
    s.info[_GATHERED] = rows
    event.listen(s, "before_flush", rows.insert)
    try:
        yield rows
        rows.insert()
    finally:
        event.remove(s, "before_flush", rows.insert)
        del s.info[_GATHERED]
