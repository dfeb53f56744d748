"""The ports tests give their bots: never the same one to two pytest-xdist workers."""

from __future__ import annotations

import socket

import pytest

from tests import process


def test_each_worker_has_its_own_ports_below_the_ephemeral_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given: dict[str, set[int]] = {}
    for worker in ("gw0", "gw1", "gw3"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        given[worker] = {process.free_port() for _ in range(5)}
    assert len(given["gw0"]) == 5
    assert not given["gw0"] & given["gw1"]
    assert not given["gw1"] & given["gw3"]
    low = process.FIRST_PORT + 3 * process.PORT_BLOCK
    assert all(low <= port < low + process.PORT_BLOCK for port in given["gw3"])
    assert max(max(ports) for ports in given.values()) < 32768


def test_a_port_in_use_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw2")
    first = process.free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first + 1))
        taken.listen()
        assert process.free_port() not in {first, first + 1}
