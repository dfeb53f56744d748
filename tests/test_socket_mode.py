"""Socket Mode: with SLACK_APP_TOKEN set, `python -m bot` connects through SLACK_API_URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl

from bot.slack_standin import SlackStandin
from bot.store.db import Database
from bot.store.migrate import upgrade
from tests.fakes.signing import slash_command_body
from tests.harness import PRESENTER, seed_workspace, wait_until


def test_socket_mode_opens_its_connection_at_the_configured_api_url(
    slack_api: SlackStandin, tmp_path: Path
) -> None:
    process = _socket_mode_bot(slack_api, tmp_path)
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


def _socket_mode_bot(slack_api: SlackStandin, tmp_path: Path) -> subprocess.Popen[str]:
    """`python -m bot` in Socket Mode against the stand-in."""
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
        "LOG_LEVEL": "INFO",
    }
    env.pop("SLACK_SIGNING_SECRET", None)
    return subprocess.Popen(
        [sys.executable, "-m", "bot"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_socket_mode_connects_at_once_while_auth_test_does_not_answer(
    slack_api: SlackStandin, tmp_path: Path
) -> None:
    # The bot token's check waited out the client's 10 s, then stopped start-up as if Slack
    # could not be reached; and apps.connections.open, asked to check the app token, was asked
    # again for the connection (here slow: 10 s more on the client's timeout).
    slack_api.fail_next("auth.test", delay=15)
    asked: list[str] = []

    def again(params: dict[str, object]) -> bool:
        asked.append("apps.connections.open")
        return len(asked) > 1

    slack_api.fail_next("apps.connections.open", delay=15, where=again)
    began = time.monotonic()
    process = _socket_mode_bot(slack_api, tmp_path)
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        slack_api.wait_for(
            lambda calls: any(c.method == "apps.connections.open" for c in calls), timeout=10
        )
        assert time.monotonic() - began < 8
        # Connected with the address the check was given, not after asking again.
        wait_until(lambda: any("connected to Slack in Socket Mode" in x for x in lines), 10)
    finally:
        process.terminate()
        process.wait(timeout=20)
        reader.join(timeout=20)
    said = "".join(lines)
    assert "could not check SLACK_BOT_TOKEN: Slack is out of reach (TimeoutError)" in said
    assert "connected to Slack in Socket Mode" in said
    assert process.returncode == 0, said


def test_socket_mode_refused_its_connection_stops_with_one_line(
    slack_api: SlackStandin, tmp_path: Path
) -> None:
    # Slack answering apps.connections.open with an error of its own (not a refused token): a
    # traceback from the connection's second try, where one line says what happened and what to do.
    slack_api.fail_next("apps.connections.open", times=3)
    process = _socket_mode_bot(slack_api, tmp_path)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 2, output
    assert "Traceback" not in output
    assert output.strip().splitlines()[-1] == (
        "protocolbot: Slack would not open a Socket Mode connection (internal_error): start the "
        "bot again in a minute; if this goes on, see https://status.slack.com"
    )


def test_a_session_started_over_socket_mode_is_answered_and_the_bot_stops_cleanly(
    slack_api: SlackStandin, tmp_path: Path
) -> None:
    seed_workspace(slack_api)
    process = _socket_mode_bot(slack_api, tmp_path)
    try:
        body = dict(parse_qsl(slash_command_body(f"start atlas <@{PRESENTER}|maria> step 1h")))
        envelope = slack_api.socket_mode.send("slash_commands", body)
        answer = slack_api.socket_mode.ack_of(envelope, timeout=20).payload
        assert answer is not None and "starting" in json.dumps(answer)
        slack_api.wait_for(
            lambda calls: any(
                str(c.params.get("text", "")).startswith("Step 1")
                for c in calls
                if c.method == "chat.postMessage"
            ),
            timeout=20,
        )
        # One link: the address start-up's check was given.
        assert len(slack_api.socket_mode.links) == 1
        assert len(slack_api.calls_to("apps.connections.open")) == 1
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert "maria" not in output and "secret" not in output
