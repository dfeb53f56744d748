"""Build the signed HTTP requests Slack sends: slash commands, events and interactions."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

PAYLOADS_DIR = Path(__file__).resolve().parent / "payloads"

API_APP_ID = "A_APP"
BOT_USER_ID = "U_BOT"
VERIFICATION_TOKEN = "legacy-verification-token"


def signed_headers(body: str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack sends with `body`: a v0 HMAC-SHA256 signature over "v0:{timestamp}:{body}"."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    content_type = (
        "application/json"
        if body.lstrip().startswith("{")
        else ("application/x-www-form-urlencoded")
    )
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    }


def slash_command_body(
    text: str,
    user_id: str = "U_FAC",
    channel_id: str = "C_TEAM",
    team_id: str = "T_TEAM",
    command: str = "/protocol",
    trigger_id: str | None = None,
    response_url: str | None = None,
    user_name: str = "facilitator",
    channel_name: str = "team",
    enterprise_id: str | None = None,
) -> str:
    """A slash command invocation, form-urlencoded as Slack sends it (from a workspace of an
    Enterprise Grid org with `enterprise_id`)."""
    grid = {"enterprise_id": enterprise_id, "enterprise_name": "District"} if enterprise_id else {}
    return urlencode(
        {
            **grid,
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "team_domain": "standin",
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": API_APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url
            or f"https://hooks.slack.com/commands/{team_id}/1/{uuid.uuid4().hex}",
            "trigger_id": trigger_id or f"trigger.{uuid.uuid4().hex}",
        }
    )


def event_body(
    event: dict[str, Any],
    team_id: str = "T_TEAM",
    event_id: str | None = None,
    event_time: int | None = None,
) -> str:
    """An Events API `event_callback` envelope around `event`, as JSON (sent now, unless
    `event_time` says when)."""
    return json.dumps(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "context_team_id": team_id,
            "context_enterprise_id": None,
            "api_app_id": API_APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": event_time if event_time is not None else int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team_id,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-standin-{uuid.uuid4().hex[:12]}",
        }
    )


def interaction_body(payload: dict[str, Any]) -> str:
    """An interactivity request (block_actions, view_submission): form-encoded `payload=<json>`."""
    return urlencode({"payload": json.dumps(payload)})


def load_payload(name: str) -> dict[str, Any]:
    """A fixture from tests/fakes/payloads/, by file name with or without ".json"."""
    path = PAYLOADS_DIR / (name if name.endswith(".json") else f"{name}.json")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded
