"""Background work steps aside while an answer to Slack is in flight, and is never starved."""

from __future__ import annotations

import threading

import pytest

from bot.foreground import Foreground


def _step_aside_in_thread(foreground: Foreground) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def work() -> None:
        foreground.step_aside()
        done.set()

    thread = threading.Thread(target=work)
    thread.start()
    return thread, done


def test_nothing_in_flight_means_no_wait() -> None:
    foreground = Foreground(patience=60)
    thread, done = _step_aside_in_thread(foreground)
    assert done.wait(10)
    thread.join()


def test_background_waits_until_the_answer_is_sent() -> None:
    foreground = Foreground(patience=60)
    foreground.begin()
    body = foreground.answer([b"{}"])
    thread, done = _step_aside_in_thread(foreground)
    assert not done.wait(0.2)  # the answer is still in flight
    assert list(body) == [b"{}"]
    assert not done.is_set()  # written, but the server has not closed it yet
    body.close()  # type: ignore[attr-defined]
    assert done.wait(10)
    thread.join()
    body.close()  # type: ignore[attr-defined]  # a second close counts nothing twice
    foreground.begin()
    _, again = _step_aside_in_thread(foreground)
    assert not again.wait(0.2)
    foreground.end()
    assert again.wait(10)


def test_a_steady_stream_of_answers_cannot_starve_the_background() -> None:
    foreground = Foreground(patience=0.05)
    foreground.begin()  # never ends
    thread, done = _step_aside_in_thread(foreground)
    assert done.wait(10)
    thread.join()


class _Clock:
    """A monotonic clock that moves only when told, and records what the background slept."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _settling(clock: _Clock, patience: float = 0.002, settle: float = 0.002) -> Foreground:
    return Foreground(patience, settle, monotonic=clock.monotonic, sleep=clock.sleep)


def test_background_lets_a_written_answer_settle_before_it_starts() -> None:
    clock = _Clock()
    foreground = _settling(clock)
    foreground.begin()
    foreground.answer([b"{}"]).close()  # type: ignore[attr-defined]  # written at 100.0
    clock.now += 0.0005
    foreground.after_answer()
    assert clock.slept == [pytest.approx(0.0015)]  # what is left of the 2 ms
    foreground.after_answer()  # settled: the next piece of work goes straight on
    assert len(clock.slept) == 1


def test_long_after_the_last_answer_background_does_not_wait() -> None:
    clock = _Clock()
    foreground = _settling(clock)
    foreground.after_answer()  # nothing answered yet
    foreground.begin()
    foreground.end()
    clock.now += 1.0
    foreground.after_answer()
    assert clock.slept == []


def test_the_settle_is_bounded_by_patience() -> None:
    clock = _Clock()
    foreground = _settling(clock, patience=0.001, settle=0.005)
    foreground.begin()
    foreground.end()
    foreground.after_answer()
    assert clock.slept == [pytest.approx(0.001)]


def test_other_background_work_does_not_wait_for_the_settle() -> None:
    clock = _Clock()
    foreground = _settling(clock)
    foreground.begin()
    foreground.end()
    foreground.step_aside()
    assert clock.slept == []
