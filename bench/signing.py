"""Signed Slack requests as Slack sends them: slash commands and Events API thread replies."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
TEAM = "T_BENCH"
FACILITATOR, PRESENTER = "U_FAC", "U_PRE"
TEACHERS = tuple(f"U_T{i}" for i in range(1, 7))
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def signature(body: str, secret: str, stamp: str) -> str:
    """Slack's v0 HMAC-SHA256 over "v0:{timestamp}:{body}"."""
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256)
    return f"v0={digest.hexdigest()}"


def signed_headers(body: str, content_type: str, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature(body, secret, stamp),
    }


def command_body(
    text: str,
    channel: str,
    user: str = FACILITATOR,
    team: str = TEAM,
    response_url: str | None = None,
) -> str:
    """A /protocol invocation, form-encoded; answers after the ack go to `response_url`."""
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": team,
            "team_domain": "bench",
            "channel_id": channel,
            "channel_name": channel.lower(),
            "user_id": user,
            "user_name": user.lower(),
            "command": "/protocol",
            "text": text,
            "api_app_id": "A_APP",
            "is_enterprise_install": "false",
            "response_url": response_url
            or f"https://hooks.slack.com/commands/{team}/1/{uuid.uuid4().hex}",
            "trigger_id": f"trigger.{uuid.uuid4().hex}",
        }
    )


def event_body(event: dict[str, Any], team: str = TEAM) -> str:
    """An Events API event_callback envelope, JSON."""
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": team,
            "context_team_id": team,
            "context_enterprise_id": None,
            "api_app_id": "A_APP",
            "event": {"team": team, **event},
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:12].upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team,
                    "user_id": "U_BOT",
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-bench-{uuid.uuid4().hex[:12]}",
        }
    )


def reply_body(channel: str, user: str, text: str, ts: str, thread_ts: str) -> str:
    """A thread reply, as a `message` event in a channel."""
    return event_body(
        {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "thread_ts": thread_ts,
            "channel_type": "channel",
            "event_ts": ts,
        }
    )
