"""Socket Mode: with SLACK_APP_TOKEN set, `python -m bot` connects through SLACK_API_URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.slack_standin import SlackStandin
from bot.store.db import Database
from bot.store.migrate import upgrade


def test_socket_mode_opens_its_connection_at_the_configured_api_url(
    slack_api: SlackStandin, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/bot.sqlite3"
    db = Database(url)
    upgrade(db)
    db.dispose()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_APP_TOKEN": "xapp-1-A1-1-secret",
        "SLACK_API_URL": slack_api.url,
        "DATABASE_URL": url,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("SLACK_SIGNING_SECRET", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        calls = slack_api.wait_for(
            lambda calls: any(c.method == "apps.connections.open" for c in calls), timeout=20
        )
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    opened = [c for c in calls if c.method == "apps.connections.open"]
    assert opened[0].token == "xapp-1-A1-1-secret"
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert "xoxb-test" not in output and "secret" not in output
