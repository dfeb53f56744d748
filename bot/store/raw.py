"""Core statements run with SQLite's driver alone, inside a session's transaction.

For the few statements every thread reply runs. SQLAlchemy's execution (building a context,
processing each parameter and row, the events around it) costs several times what SQLite takes
to run them. Each statement here is still written once, in Core, and compiled for SQLite once;
only the values are converted here, the way the store keeps them: datetimes as UTC text (see
UTCDateTime), dicts and lists as JSON text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Insert, Select, Update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from bot.clock import as_utc
from bot.store.models import UTCDateTime

_DIALECT = sqlite.dialect()
# Session.info key: the transaction whose driver connection driver() found, and that connection.
_DRIVER = "raw_driver"
# Values the driver takes as they are (most of them: looked up before any isinstance).
_AS_THEY_ARE = frozenset({str, int, float, bool, bytes, type(None)})
# Pairs written per UPDATE ... FROM (VALUES ...) (update_pairs): 2 values each, within SQLite's
# oldest limit of 999 values a statement.
MARK_CHUNK = 400


def driver(s: Session) -> sqlite3.Connection | None:
    """The session's SQLite connection, in its transaction (begun if it wasn't); None on any
    other database. Kept in the session for the rest of its transaction: a lane runs several
    statements for each reply of a batch, and finding the connection through the session each
    time cost a fifth of the lane's CPU (cProfile)."""
    transaction = s.get_transaction()
    kept = s.info.get(_DRIVER)
    if kept is not None and transaction is not None and kept[0] is transaction:
        return kept[1]
    dbapi: sqlite3.Connection | None = None
    if s.get_bind().dialect.name == "sqlite":
        found = s.connection().connection.dbapi_connection
        assert isinstance(found, sqlite3.Connection)
        dbapi = found
    s.info[_DRIVER] = (s.get_transaction(), dbapi)
    return dbapi


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


def _bind(value: Any) -> Any:
    if type(value) in _AS_THEY_ARE:
        return value
    if isinstance(value, datetime):
        return stored_datetime(value)
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


def _read_json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


class Statement:
    """A Core statement run in a session's transaction: on SQLite by the driver alone, compiled
    once; on PostgreSQL through SQLAlchemy. Values are given by name, as to Core.

    columns: for an INSERT, the columns it sets (every one it is given), in any order.
    An IN list (an expanding parameter) can't be compiled once: such statements stay Core.
    """

    def __init__(
        self,
        statement: Select[*tuple[Any, ...]] | Insert | Update,
        columns: list[str] | None = None,
    ) -> None:
        self.statement = statement
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

    def _args(self, values: dict[str, Any]) -> list[Any]:
        fixed = self._fixed
        return [
            _bind(values[name] if name in values or name not in fixed else fixed[name])
            for name in self._names
        ]

    def execute(self, s: Session, values: dict[str, Any]) -> None:
        """Run the statement; whatever it returns is not read."""
        dbapi = driver(s)
        if dbapi is None:
            s.connection().execute(self.statement, values)
        else:
            dbapi.execute(self.sql, self._args(values))

    def executemany(self, s: Session, rows: list[dict[str, Any]]) -> None:
        """Run the statement once for each set of values, as Core's executemany does."""
        dbapi = driver(s)
        if dbapi is None:
            s.connection().execute(self.statement, rows)
        else:
            dbapi.executemany(self.sql, [self._args(values) for values in rows])

    def all(self, s: Session, values: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Every row the statement returns."""
        dbapi = driver(s)
        if dbapi is None:
            return [tuple(row) for row in s.connection().execute(self.statement, values)]
        return [self._read(row) for row in dbapi.execute(self.sql, self._args(values))]

    def first(self, s: Session, values: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row the statement returns, or None."""
        dbapi = driver(s)
        if dbapi is None:
            found = s.connection().execute(self.statement, values).first()
            return None if found is None else tuple(found)
        row = dbapi.execute(self.sql, self._args(values)).fetchone()
        return None if row is None else self._read(row)

    def _read(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        if not self._reads:
            return row
        read = list(row)
        for i, convert in self._reads:
            read[i] = convert(read[i])
        return tuple(read)
