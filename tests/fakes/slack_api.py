"""The Slack Web API stand-in for tests, and the `slack_api` fixture that serves it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.slack_standin import Call, SlackStandin

__all__ = ["Call", "SlackStandin", "slack_api"]


@pytest.fixture
def slack_api() -> Iterator[SlackStandin]:
    """A started stand-in (team T_TEAM, bot U_BOT/B_BOT); point a WebClient at `slack_api.url`."""
    standin = SlackStandin().start()
    try:
        yield standin
    finally:
        standin.stop()
