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
import socket
import threading
import time
from collections.abc import Callable, Iterable
from urllib.error import URLError

from sqlalchemy.exc import DBAPIError, OperationalError

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
DATABASE = "the database"  # as an outage names it
# slack_sdk's words for a call that could not reach Slack (see SaidByTheCaller).
SLACK_UNREACHABLE = "Failed to send a request to Slack API server"
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


class SaidByTheCaller(logging.Filter):
    """Drops slack_sdk's ERROR line for a call that could not reach Slack: the exception goes on
    to the bot's caller, which says so itself (at most a line a minute for an outage, see
    Outage). With it every try of every post while Slack was out of reach logged two lines,
    one an ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name == "slack_sdk.web.base_client"
            and record.getMessage().startswith(SLACK_UNREACHABLE)
        )


class OutagesInOneLine(logging.Filter):
    """A database or Slack out of reach is no fault of the code: a line that reports one says
    what could not be reached, without the traceback (a screenful each, from every thread that
    met the outage)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        service = unreachable(error) if error is not None else None
        if error is not None and service is not None:
            said = f"{record.getMessage()} (cannot reach {service}: {_reason(error)})"
            record.msg, record.args, record.exc_info, record.exc_text = said, None, None, None
        return True


def configure(level: str, secrets: Iterable[str | None] = ()) -> None:
    """Log to stderr at `level` (a LOG_LEVEL name), libraries held at their floors."""
    number = getattr(logging, level, logging.INFO)
    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(SaidByTheCaller())
    handler.addFilter(OutagesInOneLine())
    handler.addFilter(KeepSecretsOut(secrets))
    root.handlers = [handler]
    root.setLevel(number)
    for name, floor in FLOORS.items():
        logging.getLogger(name).setLevel(max(floor, number))


def unreachable(error: BaseException) -> str | None:
    """What `error` says is out of reach ("the database", "Slack"), or None for any other
    failure: one that a retry will not cure, and whose traceback is wanted."""
    if isinstance(error, OperationalError) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    ):
        return DATABASE
    if _read_only(error):
        return DATABASE
    if isinstance(error, URLError | TimeoutError | ConnectionError | socket.gaierror):
        return "Slack"
    return None


# PostgreSQL's read_only_sql_transaction: the server takes no writes (a failover onto a standby,
# a managed server that a full disk set read-only). No retry cures it until someone does.
READ_ONLY_SQLSTATE = "25006"


def _read_only(error: BaseException) -> bool:
    """Whether PostgreSQL refused a write for taking none (said as SQLAlchemy says it, or by the
    driver alone, as the inbox's ack connections say it)."""
    cause: object = error.orig if isinstance(error, DBAPIError) else error
    return getattr(cause, "sqlstate", None) == READ_ONLY_SQLSTATE


def _reason(error: BaseException) -> str:
    """The first line of what the driver or socket said (no statement, no parameters)."""
    cause: object = error.orig if isinstance(error, DBAPIError) else error
    if isinstance(cause, URLError):
        cause = cause.reason
    said = (str(cause).strip().splitlines() or [""])[0][:160]
    return f"{type(error).__name__}: {said}" if said else type(error).__name__


class Outage:
    """A service out of reach while `doing` something again and again (a loop's rounds, every
    request): one line, no traceback, when it begins; another at most every `every` seconds
    while it lasts; one when it is over. Without this an outage of 15 s logged 60 tracebacks."""

    def __init__(
        self,
        logger: logging.Logger,
        doing: str,
        every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger, self.doing, self.every, self.clock = logger, doing, every, clock
        self._lock = threading.Lock()
        self._began: float | None = None
        self._service = ""
        self._said_at = 0.0
        self._failures = 0
        # Told what was out of reach, and for how many seconds, once it is back.
        self.on_over: Callable[[str, float], None] | None = None

    def failed(self, error: BaseException) -> bool:
        """Note a failure; False if it is not of the outage kind (the caller logs it in full)."""
        service = unreachable(error)
        if service is None:
            return False
        with self._lock:
            now = self.clock()
            self._failures += 1
            if self._began is not None and now - self._said_at < self.every:
                return True
            first, self._said_at = self._began is None, now
            if self._began is None:
                self._began, self._service = now, service
            lasted, failures = now - self._began, self._failures
        if first:
            self.logger.warning(
                "%s: cannot reach %s (%s); retrying", self.doing, service, _reason(error)
            )
        else:
            self.logger.warning(
                "%s: still cannot reach %s after %.0f s, %d failures (%s); retrying",
                self.doing,
                service,
                lasted,
                failures,
                _reason(error),
            )
        return True

    @property
    def service(self) -> str | None:
        """What is out of reach now ("the database", "Slack"), if anything."""
        return self._service if self._began is not None else None

    def ok(self) -> None:
        """It worked: if an outage was under way, say it is over."""
        if self._began is None:
            return
        with self._lock:
            if self._began is None:
                return
            lasted, failures = self.clock() - self._began, self._failures
            self._began, self._failures = None, 0
        self.logger.warning(
            "%s: %s is back after %.0f s, %d failures",
            self.doing,
            self._service,
            lasted,
            failures,
        )
        if self.on_over is not None:
            self.on_over(self._service, lasted)
