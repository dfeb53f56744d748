"""Contribution tags: the reaction that marks each, and the order notes are written in."""

from __future__ import annotations

REACTIONS: dict[str, str] = {
    "observation": "eyes",
    "interpretation": "thought_balloon",
    "implication": "bulb",
    "question": "grey_question",
    "warm": "sunny",
    "cool": "snowflake",
    "reflection": "memo",
    "debrief": "speech_balloon",
    "note": "pencil2",
}
TAG_BY_REACTION = {emoji: tag for tag, emoji in REACTIONS.items()}
