"""What reaches Bolt: bodies that parse, of a kind Slack sends, within Slack's sizes.

Bolt parses a body before anything else and answers a malformed one with a stack trace and a 500,
and it logs whole payloads it has no listener for. Slack would retry a 500, and a log must not hold
what people wrote. So a POST to /slack/events is screened first: a body too big for any Slack
request gets 413; one that doesn't parse gets 400 (401 when unsigned, as Bolt would say); an
envelope of a type the app doesn't take, or a message longer than Slack allows, is acknowledged
and dropped. Each refusal is logged once, by its kind, never with the body. Everything else goes
to Bolt untouched, which checks the signature again.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from bot.blocks import render_message
from bot.render import unescape_mrkdwn

log = logging.getLogger(__name__)

MAX_BODY = 1_000_000  # bytes: Slack's largest payloads (modal views) are far smaller
MAX_MESSAGE_TEXT = 40_000  # Slack's own limit for a message's text
MAX_COMMAND_TEXT = 4_000
ENVELOPES = frozenset({"event_callback", "url_verification"})
MAX_AGE = 5 * 60  # seconds: an older signature is a replay


@dataclass(frozen=True)
class Verdict:
    """An answer given here instead of Bolt's."""

    status: str
    body: bytes = b""
    content_type: str = "text/plain"


OK = Verdict("200 OK")


def screen(environ: dict[str, Any], signing_secret: str) -> Verdict | None:
    """None lets the request through (its body put back for Bolt to read); else the answer."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if length < 0 or length > MAX_BODY:
        log.warning("refused a request body of %s bytes", environ.get("CONTENT_LENGTH"))
        return Verdict("413 Payload Too Large")
    raw = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    if not str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP") or "").isdigit():
        # Not from Slack, and Bolt's own check would fail on it with a stack trace.
        return Verdict("401 Unauthorized")

    def signed() -> bool:
        return is_signed(
            signing_secret,
            raw,
            str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP") or ""),
            str(environ.get("HTTP_X_SLACK_SIGNATURE") or ""),
        )

    if _short_command(raw):
        return None  # Bolt parses it: a second parse here was a fifth of a command's ack
    kind, parsed = _parse(raw, str(environ.get("CONTENT_TYPE") or ""))
    if kind == "malformed":
        if not signed():
            return Verdict("401 Unauthorized")
        log.warning("refused a malformed request body (%s)", parsed)
        return Verdict("400 Bad Request")
    if kind == "form" and "command" in parsed:
        text = str(parsed.get("text") or "")
        if len(text) > MAX_COMMAND_TEXT and signed():
            log.warning("refused a command of %d characters", len(text))
            return _ephemeral("errors/command_too_long.j2", length=len(text))
        return None
    if kind == "form" and ("payload" in parsed or "ssl_check" in parsed):
        return None
    if kind == "json" and parsed.get("type") in ENVELOPES:
        if parsed.get("type") == "event_callback" and _too_long(parsed.get("event") or {}):
            if not signed():
                return Verdict("401 Unauthorized")
            log.warning("ignored an event whose text is longer than Slack allows")
            return OK
        return None
    if not signed():
        return Verdict("401 Unauthorized")
    what = parsed.get("type") if kind == "json" else "form"
    if what == "app_rate_limited":
        log.warning("Slack is holding back events for team %s", parsed.get("team_id"))
    else:
        log.warning("ignored a request of an unknown kind (%s)", str(what)[:40])
    return OK


SLACK_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
REFUSALS_LOGGED_EVERY = 600.0  # seconds


class RefusedSignatures:
    """Says in the log what to do when requests signed as Slack signs them are refused: the
    operator's log would otherwise hold only Bolt's INFO line, and everyone in Slack sees
    `dispatch_failed`. A wrong SLACK_SIGNING_SECRET, or this machine's clock more than five
    minutes off Slack's, refuses every request: said once every ten minutes, not per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._said_at: float | None = None

    def refused(self, environ: dict[str, Any]) -> None:
        stamp = str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP") or "")
        signature = str(environ.get("HTTP_X_SLACK_SIGNATURE") or "")
        if not stamp.isdigit() or not SLACK_SIGNATURE.fullmatch(signature):
            return  # not signed as Slack signs: a scanner, not Slack
        now = time.monotonic()
        with self._lock:
            if self._said_at is not None and now - self._said_at < REFUSALS_LOGGED_EVERY:
                return
            self._said_at = now
        off = time.time() - int(stamp)
        if abs(off) > MAX_AGE:
            log.warning(
                "refused a request signed %d s %s this machine's clock (over %d s is refused as "
                "a replay): if every request from Slack is refused, set this machine's clock "
                "right (NTP)",
                abs(off),
                "behind" if off > 0 else "ahead of",
                MAX_AGE,
            )
        else:
            log.warning(
                "refused a request whose signature does not match SLACK_SIGNING_SECRET: if "
                "every request from Slack is refused (people see dispatch_failed), set it to the "
                "Signing Secret on the app's Basic Information page"
            )


def is_signed(secret: str, raw: bytes, timestamp: str, signature: str) -> bool:
    """Slack's v0 signature over the raw bytes (which need not be UTF-8), and fresh."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if not secret or abs(time.time() - stamp) > MAX_AGE:
        return False
    base = b"v0:" + timestamp.encode() + b":" + raw
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _short_command(raw: bytes) -> bool:
    """A slash command's form too short to hold a text over MAX_COMMAND_TEXT (its text takes
    at least a byte a character), in UTF-8: nothing to screen it for."""
    if len(raw) > MAX_COMMAND_TEXT or not (raw.startswith(b"command=") or b"&command=" in raw):
        return False
    if b"payload=" in raw or b"ssl_check=" in raw:
        return False  # not as Slack sends a command: screened in full
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _parse(raw: bytes, content_type: str) -> tuple[str, Any]:
    """("json"|"form", the parsed body) or ("malformed", why)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "malformed", "not UTF-8"
    if content_type.split(";")[0].strip().lower() == "application/json" or text.startswith("{"):
        try:
            body = json.loads(text)
        except ValueError:
            return "malformed", "json"
        if not isinstance(body, dict):
            return "malformed", "json, not an object"
        event = body.get("event")
        if body.get("type") == "event_callback" and not (
            isinstance(event, dict) and isinstance(event.get("type"), str)
        ):
            return "malformed", "an event callback without an event"
        if isinstance(event, dict) and not isinstance(event.get("message", {}), dict):
            return "malformed", "an event whose message is not an object"
        return "json", body
    form = {key: values[0] for key, values in parse_qs(text, keep_blank_values=True).items()}
    if "payload" in form:
        try:
            payload = json.loads(form["payload"])
        except ValueError:
            return "malformed", "form payload"
        if not isinstance(payload, dict):
            return "malformed", "form payload, not an object"
        actions = payload.get("actions")
        if payload.get("type") == "block_actions" and not (
            isinstance(actions, list) and actions and isinstance(actions[0], dict)
        ):
            return "malformed", "block actions without an action"
    return "form", form


def _too_long(event: dict[str, Any]) -> bool:
    """Longer than Slack lets anyone write, counted as typed: Slack sends a typed &, < or > as
    an entity of four or five characters, and a reply full of "x < 5" is longer in the event."""
    texts = [event.get("text"), (event.get("message") or {}).get("text")]
    return any(isinstance(t, str) and _typed_length(t) > MAX_MESSAGE_TEXT for t in texts)


def _typed_length(text: str) -> int:
    # Entities make text longer, never shorter: a short one needs no unescaping.
    return len(text) if len(text) <= MAX_MESSAGE_TEXT else len(unescape_mrkdwn(text))


def _ephemeral(template: str, **context: Any) -> Verdict:
    message = render_message(template, limit=MAX_COMMAND_TEXT, **context)
    body = {"response_type": "ephemeral", "text": message.text, "blocks": message.blocks}
    return Verdict("200 OK", json.dumps(body).encode(), "application/json")
