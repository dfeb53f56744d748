"""Fixtures for engine tests on a held clock: the protocol library, the clock, recorded timers and
an Engine on a fresh database (tests/test_engine.py, tests/test_closing.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.engine.core import Engine
from bot.protocols import Protocol, load_library
from bot.store.db import Database
from tests.harness import migrated_copy, to_head
from tests.test_engine import WEDNESDAY, HeldClock, RecordingTimers


@pytest.fixture(scope="module")
def library() -> dict[str, Protocol]:
    loaded, errors = load_library()
    assert not errors
    return loaded


@pytest.fixture
def clock() -> HeldClock:
    return HeldClock(WEDNESDAY)


@pytest.fixture
def timers() -> RecordingTimers:
    return RecordingTimers()


@pytest.fixture
def engine(
    database_url: str, library: dict[str, Protocol], clock: HeldClock, timers: RecordingTimers
) -> Iterator[Engine]:
    migrated_copy(database_url)
    db = Database(database_url)
    to_head(db)
    try:
        yield Engine(db, library, clock, timers=timers)
    finally:
        db.dispose()
