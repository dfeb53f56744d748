"""What the processes log: never a token, the signing secret, or what someone wrote."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bot import logs
from tests.fakes.signing import event_body, signed_headers
from tests.harness import CHANNEL, SECRET, TEACHERS, Bot, http_post

WRITTEN = "Maria's student wrote 3/4 and crossed it out"


@pytest.fixture
def configured(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """The processes' logging (bot.logs.configure) at INFO, to the stderr capsys reads, put
    back as it was afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    floors = {name: logging.getLogger(name).level for name in logs.FLOORS}
    logs.configure("INFO", secrets=[SECRET])
    try:
        yield
    finally:
        root.handlers, root.level = handlers, level
        for name, floor in floors.items():
            logging.getLogger(name).setLevel(floor)


def test_a_request_with_a_bad_signature_is_logged_without_its_body(
    bot: Bot, configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    event = {"type": "message", "channel": CHANNEL, "user": TEACHERS[0], "text": WRITTEN}
    body = event_body(event, team_id="T_TEAM")
    status, _ = http_post(bot.url, body, signed_headers(body, "a-wrong-signing-secret"))
    assert status == 401
    logged = capsys.readouterr().err
    assert "Invalid request signature detected (request body not logged)" in logged
    assert "crossed it out" not in logged and "token" not in logged


@pytest.mark.parametrize(
    "line",
    [
        "Unhandled request ({'type': 'block_actions', 'text': %r})",
        "Invalid request signature detected (signature: v0=x, timestamp: 1, body: %r)",
        "A global middleware (m) skipped calling either `next()` for the request (%r)",
    ],
)
def test_a_library_line_that_quotes_a_request_keeps_its_words_not_the_request(
    configured: None, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    logging.getLogger("slack_bolt.App").warning(line, WRITTEN)
    logged = capsys.readouterr().err
    assert line.split("(", 1)[0] + "(request body not logged)" in logged
    assert "crossed it out" not in logged
