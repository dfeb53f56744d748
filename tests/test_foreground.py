"""Background work steps aside while an answer to Slack is in flight, and is never starved."""

from __future__ import annotations

import threading

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
