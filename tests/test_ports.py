"""The ports tests give their bots: never the same one to two pytest-xdist workers."""

from __future__ import annotations

import socket

import pytest

from tests import process


def _given(monkeypatch: pytest.MonkeyPatch, worker: str, workers: int, n: int) -> set[int]:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(workers))
    block = process.port_block()
    ports = {process.free_port() for _ in range(n)}
    assert ports <= set(block)
    return ports


def test_each_worker_has_its_own_ports_below_the_ephemeral_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given = {worker: _given(monkeypatch, worker, 4, 5) for worker in ("gw0", "gw1", "gw3")}
    assert len(given["gw0"]) == 5
    assert not given["gw0"] & given["gw1"]
    assert not given["gw1"] & given["gw3"]
    assert max(max(ports) for ports in given.values()) < 32768


def test_a_port_in_use_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    (first,) = _given(monkeypatch, "gw2", 4, 1)
    block = process.port_block()
    after = block[(block.index(first) + 1) % len(block)]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", after))
        taken.listen()
        assert process.free_port() not in {first, after}
