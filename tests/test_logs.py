"""What the processes log: never a token, the signing secret, or what someone wrote."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.error import URLError

import pytest
from sqlalchemy import func, select

from bot import logs
from bot.activity import ACTIVITY, Reporter
from bot.clock import SystemClock
from bot.settings import Settings
from bot.slack import OutboxSender
from bot.slack_standin import SlackStandin
from bot.store.db import Database
from bot.store.migrate import upgrade
from bot.store.models import OutboxMessage
from tests.fakes.signing import event_body, signed_headers, slash_command_body
from tests.harness import CHANNEL, PRESENTER, SECRET, TEACHERS, Bot, http_post, wait_until
from tests.process import free_port

WRITTEN = "Maria's student wrote 3/4 and crossed it out"


@pytest.fixture
def configured(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """The processes' logging (bot.logs.configure) at INFO, to the stderr capsys reads, put
    back as it was afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    floors = {name: logging.getLogger(name).level for name in logs.FLOORS}
    logs.configure("INFO", secrets=[SECRET])
    try:
        yield
    finally:
        root.handlers, root.level = handlers, level
        for name, floor in floors.items():
            logging.getLogger(name).setLevel(floor)


def test_a_request_with_a_bad_signature_is_logged_without_its_body(
    bot: Bot, configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    event = {"type": "message", "channel": CHANNEL, "user": TEACHERS[0], "text": WRITTEN}
    body = event_body(event, team_id="T_TEAM")
    status, _ = http_post(bot.url, body, signed_headers(body, "a-wrong-signing-secret"))
    assert status == 401
    logged = capsys.readouterr().err
    assert "Invalid request signature detected (request body not logged)" in logged
    assert "crossed it out" not in logged and "token" not in logged


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_requests_refused_for_a_wrong_signing_secret_say_once_which_setting_to_fix(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    command = slash_command_body("status")
    event = event_body({"type": "message", "channel": CHANNEL, "user": TEACHERS[0], "text": "x"})
    for body in (command, event, command):
        status, _ = http_post(bot.url, body, signed_headers(body, "a-wrong-signing-secret"))
        assert status == 401
    said = [line for line in _warnings(caplog) if "SLACK_SIGNING_SECRET" in line]
    assert len(said) == 1, _warnings(caplog)
    assert "Basic Information" in said[0], said
    assert SECRET not in caplog.text


def test_requests_refused_for_this_machine_s_clock_say_to_set_it_right(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body = slash_command_body("status")
    headers = signed_headers(body, SECRET, timestamp=int(time.time()) - 20 * 60)
    assert http_post(bot.url, body, headers)[0] == 401
    said = _warnings(caplog)
    assert any("this machine's clock" in line and "NTP" in line for line in said), said
    assert not any("SLACK_SIGNING_SECRET" in line for line in said), said


def test_requests_not_signed_as_slack_signs_log_no_advice(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body = slash_command_body("status")
    headers = {**signed_headers(body, SECRET), "X-Slack-Signature": "v0=x"}
    assert http_post(bot.url, body, headers)[0] == 401
    assert _warnings(caplog) == []


@pytest.mark.parametrize(
    "line",
    [
        "Unhandled request ({'type': 'block_actions', 'text': %r})",
        "Invalid request signature detected (signature: v0=x, timestamp: 1, body: %r)",
        "A global middleware (m) skipped calling either `next()` for the request (%r)",
    ],
)
def test_a_library_line_that_quotes_a_request_keeps_its_words_not_the_request(
    configured: None, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    logging.getLogger("slack_bolt.App").warning(line, WRITTEN)
    logged = capsys.readouterr().err
    assert line.split("(", 1)[0] + "(request body not logged)" in logged
    assert "crossed it out" not in logged


# -- outages: Slack or the database out of reach -----------------------------------------------
def _outage_lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno >= logging.WARNING]


def test_the_outbox_says_once_that_the_database_is_out_of_reach_and_once_that_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.slack")
    # SQLite cannot open a file in a directory not there yet: every round fails to connect.
    url = f"sqlite:///{tmp_path}/later/bot.sqlite3"
    db = Database(url)
    sender = OutboxSender(db, lambda _team: None, SystemClock()).start()
    try:
        time.sleep(1.5)  # six rounds or more
        down = _outage_lines(caplog, "bot.slack")
        assert [r.getMessage().split(" (")[0] for r in down] == [
            "outbox dispatch: cannot reach the database"
        ]
        assert "unable to open database file" in down[0].getMessage()
        (tmp_path / "later").mkdir()
        upgraded = Database(url)
        upgrade(upgraded)
        upgraded.dispose()
        wait_until(lambda: len(_outage_lines(caplog, "bot.slack")) == 2, timeout=5)
    finally:
        sender.stop()
        db.dispose()
    back = _outage_lines(caplog, "bot.slack")[1].getMessage()
    assert back.startswith("outbox dispatch: the database is back after "), back
    assert all(r.exc_info is None for r in caplog.records if r.name == "bot.slack")


def test_requests_while_slack_is_out_of_reach_log_a_line_not_a_traceback_each(
    workspace: SlackStandin, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there yet: auth.test is refused
    settings = Settings(
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=f"http://127.0.0.1:{port}/api/",
        database_url=database_url,
    )
    caplog.set_level(logging.INFO, logger="bot.app")
    bot = Bot(workspace, database_url, settings=settings, with_scheduler=False).start()
    try:
        event = {"type": "message", "channel": CHANNEL, "user": TEACHERS[0], "text": WRITTEN}
        for n in range(3):
            assert bot.post(event_body(event, team_id="T_TEAM", event_id=f"Ev{n}"))[0] == 500
            assert bot.post(slash_command_body("status"))[0] == 200
        down = _outage_lines(caplog, "bot.app")
        assert len(down) == 1, [r.getMessage() for r in down]
        assert (
            down[0]
            .getMessage()
            .startswith("handling Slack requests: cannot reach Slack (URLError: ")
        )
        with SlackStandin(team_id="T_TEAM", port=port):
            assert bot.post(slash_command_body("help"))[0] == 200
    finally:
        bot.stop()
    lines = [r.getMessage() for r in _outage_lines(caplog, "bot.app")]
    assert len(lines) == 2 and lines[1].startswith("handling Slack requests: Slack is back after ")
    assert all(r.exc_info is None for r in caplog.records if r.name == "bot.app")
    assert WRITTEN not in caplog.text


def _tries_of_pending_posts(bot: Bot) -> int:
    with bot.db.session() as s:
        pending = OutboxMessage.status == "pending"
        return int(s.scalar(select(func.sum(OutboxMessage.attempts)).where(pending)) or 0)


def test_posts_while_slack_is_out_of_reach_log_a_line_as_it_goes_and_one_as_it_is_back(
    workspace: SlackStandin, database_url: str
) -> None:
    # Every try of every post logged two lines, slack_sdk's an ERROR, and none said it was over.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    floors = {name: logging.getLogger(name).level for name in logs.FLOORS}
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        logs.configure("INFO", secrets=[SECRET])  # the processes' logging, to `stderr`
    bot = Bot(workspace, database_url).start()
    try:
        bot.command(f"start atlas <@{PRESENTER}|maria> step 2s")
        bot.wait_until(lambda: len(bot.step_posts()) == 1)
        bot.runtime.sender.drain(5)
        workspace.stop()
        # Step 2 falls due: its post and the step 1 edit are tried again and again.
        bot.wait_until(lambda: _tries_of_pending_posts(bot) >= 4, timeout=20)
        workspace.start()
        bot.wait_until(lambda: len(bot.step_posts()) >= 2, timeout=30)
        bot.runtime.sender.drain(5)
    finally:
        bot.stop()
        root.handlers, root.level = handlers, level
        for name, floor in floors.items():
            logging.getLogger(name).setLevel(floor)
    logged = stderr.getvalue().splitlines()
    slack = [line.split(" bot.slack: ", 1)[1] for line in logged if " bot.slack: " in line]
    assert len(slack) == 2, logged
    assert slack[0].startswith("posting to Slack: cannot reach Slack (") and slack[0].endswith(
        "); retrying"
    )
    assert re.fullmatch(r"posting to Slack: Slack is back after \d+ s, \d+ failures", slack[1])
    assert not [line for line in logged if " ERROR " in line], logged


def test_an_outage_is_told_again_once_a_minute_and_other_failures_are_left_to_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    outage = logs.Outage(logging.getLogger("bot.test"), "doing it", clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="bot.test")
    refused = URLError(ConnectionRefusedError(111, "Connection refused"))
    for second in range(0, 150, 1):
        now[0] = float(second)
        assert outage.failed(refused)
    assert not outage.failed(ValueError("a bug"))  # its traceback is the caller's to log
    outage.ok()
    outage.ok()
    assert [r.getMessage() for r in caplog.records] == [
        "doing it: cannot reach Slack (URLError: [Errno 111] Connection refused); retrying",
        "doing it: still cannot reach Slack after 60 s, 61 failures "
        "(URLError: [Errno 111] Connection refused); retrying",
        "doing it: still cannot reach Slack after 120 s, 121 failures "
        "(URLError: [Errno 111] Connection refused); retrying",
        "doing it: Slack is back after 149 s, 150 failures",
    ]


def test_the_log_says_what_the_bot_did_in_counts_never_in_words(
    workspace: SlackStandin, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # An operator could not tell from the log whether sessions ran or steps went out on time.
    caplog.set_level(logging.INFO, logger="bot")
    ACTIVITY.report(0)  # what earlier tests in this process did is theirs
    bot = Bot(workspace, database_url)
    bot.runtime.reporter = Reporter(seconds=3600)  # its last stretch is told as it stops
    bot.start()
    try:
        bot.command(f"start atlas <@{PRESENTER}|maria> step 1s")
        bot.wait_until(lambda: len(bot.step_posts()) == 2)  # step 1 closed on its timer
        bot.runtime.sender.drain(5)
        bot.reply(TEACHERS[0], WRITTEN, str(bot.step_posts()[1]["ts"]))
        bot.wait_until(lambda: len(bot.recorded()) == 1)
        bot.command("end")
        bot.settle()
    finally:
        bot.stop()
    said = [r.getMessage() for r in caplog.records if r.name.startswith("bot.")]
    assert "session 1 started: atlas, 6 steps" in said and "session 1 ended" in said
    (line,) = [m for m in said if m.startswith("in the last ")]
    # Steps are a second long: on a loaded machine step 2 may close on its timer too before
    # `end`, and a close be more than a second late. The line counts them all the same.
    assert re.fullmatch(
        r"in the last \d+ s: 1 session started, 1 session ended,"
        r" (1 step closed on its timer|2 steps closed on their timers)"
        r" \(late by \d+\.\d\d s on average, \d+\.\d\d s at most\), 1 reply recorded,"
        r" \d+ Slack calls made",
        line,
    ), line
    assert WRITTEN not in caplog.text
