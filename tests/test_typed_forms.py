"""`/protocol` as people type it, sent as Slack sends it (signed HTTP, the real app)."""

from __future__ import annotations

import pytest

from tests.harness import Bot
from tests.prep_world import message_text


def test_help_with_more_words_after_it_is_still_help(bot: Bot) -> None:
    for text in ("help", "HELP", "help\u00a0", "help start", "help me please", "help extend"):
        answer = message_text(bot.command(text))
        assert "/protocol start" in answer and "I don't know what to do" not in answer, text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("preview “atlas”", "Getting Started"),  # smart quotes, as macOS and iOS type them
        ("preview 'ATLAS'", "Getting Started"),
        ("status.", "No protocol session"),
        ("Next!", "No protocol session"),
        ("next\u200b", "No protocol session"),  # a zero-width space, pasted with the word
        ("\u200bhelp", "/protocol start"),
    ],
)
def test_marks_that_autocorrect_or_pasting_add_are_read_past(
    bot: Bot, text: str, expected: str
) -> None:
    answer = message_text(bot.command(text))
    assert expected in answer, answer
