"""Logging for the processes: one format, quiet libraries, and nothing secret or personal written.

Tokens, the signing secret and what people wrote must never reach a log, at any level we allow.
slack_sdk logs request bodies (and headers) at DEBUG, Bolt logs its answers (which may quote
a user) at DEBUG and whole unhandled payloads in a warning, and SQLAlchemy logs statement
parameters when its logger is at INFO: those loggers are held above the levels that do so, and
a filter on our handler masks anything token-shaped that gets through anyway.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The lowest level each library may log at, whatever LOG_LEVEL says.
FLOORS = {
    "slack_sdk": logging.INFO,
    "slack_bolt": logging.INFO,
    "bot.bolt": logging.INFO,
    "sqlalchemy": logging.WARNING,
    "apscheduler": logging.WARNING,
    "alembic": logging.WARNING,
    "urllib3": logging.WARNING,
    "websocket": logging.INFO,
}
TOKEN = re.compile(r"\b(?:xox[a-z]|xapp)-[A-Za-z0-9-]+")
MASK = "[redacted]"
# Bolt's log lines that quote a whole request body (what someone wrote, a verification token):
# the line is kept as far as its first "(", and the rest dropped.
QUOTES_A_BODY = (
    "Unhandled request (",
    "Invalid request signature detected (",
    "A global middleware (",
)


class KeepSecretsOut(logging.Filter):
    """Masks tokens and the given secrets; drops the request body from Bolt's lines that quote
    one (QUOTES_A_BODY)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        message = clean = record.getMessage()
        if clean.startswith(QUOTES_A_BODY):
            clean = clean.split("(", 1)[0] + "(request body not logged)"
        clean = TOKEN.sub(MASK, clean)
        for secret in self.secrets:
            clean = clean.replace(secret, MASK)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = TOKEN.sub(MASK, record.exc_text)
            for secret in self.secrets:
                record.exc_text = record.exc_text.replace(secret, MASK)
        return True


def configure(level: str, secrets: Iterable[str | None] = ()) -> None:
    """Log to stderr at `level` (a LOG_LEVEL name), libraries held at their floors."""
    number = getattr(logging, level, logging.INFO)
    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(KeepSecretsOut(secrets))
    root.handlers = [handler]
    root.setLevel(number)
    for name, floor in FLOORS.items():
        logging.getLogger(name).setLevel(max(floor, number))
