"""`/protocol` as people type it, sent as Slack sends it (signed HTTP, the real app)."""

from __future__ import annotations

from tests.harness import Bot
from tests.prep_world import message_text


def test_help_with_more_words_after_it_is_still_help(bot: Bot) -> None:
    for text in ("help", "HELP", "help\u00a0", "help start", "help me please", "help extend"):
        answer = message_text(bot.command(text))
        assert "/protocol start" in answer and "I don't know what to do" not in answer, text
