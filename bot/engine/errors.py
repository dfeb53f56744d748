"""What the engine answers a person: a template name and its context, rendered by the caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reply:
    template: str
    context: dict[str, Any] = field(default_factory=dict)


class Refusal(Exception):
    """A request the engine will not carry out; the reply says why and what to do instead."""

    def __init__(self, template: str, **context: Any) -> None:
        super().__init__(template)
        self.reply = Reply(template, context)


class NotYet(Exception):
    """An event the engine can't place yet (its step's post is still in flight): keep it, retry."""
