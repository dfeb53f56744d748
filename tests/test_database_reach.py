"""A PostgreSQL server that takes a connection and never answers (frozen, or behind a network
that drops packets) fails a new connection within seconds instead of hanging whatever waits."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError

from bot.notify import ClockLink
from bot.store.db import CONNECT_SECONDS, make_engine

pytest.importorskip("psycopg")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A URL whose server accepts connections and never says a word."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(16)
        port = listening.getsockname()[1]
        yield f"postgresql+psycopg://protocolbot@127.0.0.1:{port}/protocolbot"


@pytest.mark.timeout(60)
def test_a_pool_connection_to_a_silent_server_fails_in_seconds(silent_server: str) -> None:
    engine = make_engine(silent_server)
    began = time.monotonic()
    with pytest.raises(OperationalError):
        engine.connect()
    assert time.monotonic() - began < CONNECT_SECONDS + 10
    engine.dispose()


@pytest.mark.timeout(60)
def test_the_clocks_listening_connection_to_a_silent_server_fails_in_seconds(
    silent_server: str,
) -> None:
    import psycopg

    link = ClockLink(silent_server, lambda: None, lambda: None)
    began = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        link._try_acquire()
    assert time.monotonic() - began < CONNECT_SECONDS + 10


def test_a_connect_timeout_in_the_url_is_kept(silent_server: str) -> None:
    engine = make_engine(silent_server + "?connect_timeout=2")
    began = time.monotonic()
    with pytest.raises(OperationalError):
        engine.connect()
    assert time.monotonic() - began < CONNECT_SECONDS
    engine.dispose()
