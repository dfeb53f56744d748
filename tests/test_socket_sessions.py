"""Sessions driven over Socket Mode: the bot connected to the stand-in's WebSocket, Slack's
envelopes in, the bot's acks out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qsl

import pytest

from bot.socket_mode import SocketModeHandler
from bot.socket_standin import SocketModeLinks
from tests.fakes.signing import slash_command_body
from tests.harness import CHANNEL, FACILITATOR, PRESENTER, TEACHERS, Bot
from tests.test_processes import reply_body

APP_TOKEN = "xapp-1-A1-1-secret"


class SocketBot:
    """The harness's bot, reached over Socket Mode instead of HTTP."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.links: SocketModeLinks = bot.standin.socket_mode
        self.handler = SocketModeHandler(bot.app, APP_TOKEN)

    def command(self, text: str, user: str = FACILITATOR) -> dict[str, object]:
        body = dict(parse_qsl(slash_command_body(text, user_id=user), keep_blank_values=True))
        envelope_id = self.links.send("slash_commands", body)
        return self.links.ack_of(envelope_id).payload or {}

    def reply(self, user: str, text: str, thread_ts: str, **envelope: object) -> tuple[str, str]:
        """A thread reply's event: (its ts, its envelope's id)."""
        ts = str(self.bot.standin.add_message(CHANNEL, user, text, thread_ts=thread_ts)["ts"])
        body = json.loads(reply_body(user, text, thread_ts, ts))
        return ts, self.links.send("events_api", body, **envelope)  # type: ignore[arg-type]

    def open_step(self) -> str:
        answer = self.command(f"start atlas <@{PRESENTER}|maria> step 1h")
        assert answer, "no answer in the ack"
        self.bot.wait_until(lambda: bool(self.bot.step_posts()))
        self.bot.runtime.sender.drain(5)
        return str(self.bot.step_posts()[0]["ts"])


@pytest.fixture
def socket_bot(bot: Bot) -> Iterator[SocketBot]:
    running = SocketBot(bot)
    running.handler.connect()
    try:
        yield running
    finally:
        running.handler.close()


def test_a_start_command_over_socket_mode_is_acked_with_its_answer(
    socket_bot: SocketBot,
) -> None:
    bot = socket_bot.bot
    answer = socket_bot.command(f"start atlas <@{PRESENTER}|maria> step 1h")
    assert "starting" in json.dumps(answer)
    bot.wait_until(lambda: len(bot.step_posts()) == 1)
    assert [a.link for a in socket_bot.links.acks] == [1]


def test_a_thread_reply_over_socket_mode_is_recorded_once_and_tagged(
    socket_bot: SocketBot,
) -> None:
    bot = socket_bot.bot
    step_ts = socket_bot.open_step()
    ts, envelope = socket_bot.reply(TEACHERS[0], "The student drew a number line.", step_ts)
    socket_bot.links.ack_of(envelope)
    bot.wait_until(lambda: bot.recorded() == [ts])
    # Step 1 collects notes.
    bot.wait_until(lambda: bot.standin.reactions(CHANNEL, ts) == ["pencil2"])
    bot.settle()
    assert bot.recorded() == [ts]


def test_an_envelope_delivered_again_is_recorded_once(socket_bot: SocketBot) -> None:
    # Slack sends an envelope it saw no ack for again: a new envelope_id, the same event_id.
    bot = socket_bot.bot
    step_ts = socket_bot.open_step()
    ts, first = socket_bot.reply(TEACHERS[0], "The student drew a number line.", step_ts)
    payload = json.loads(json.dumps(_payload_of(socket_bot, first)))
    again = socket_bot.links.send("events_api", payload, retry_attempt=1, retry_reason="timeout")
    socket_bot.links.ack_of(first)
    socket_bot.links.ack_of(again)
    bot.wait_until(lambda: bot.recorded() == [ts])
    bot.settle()
    assert bot.recorded() == [ts]
    assert bot.standin.reactions(CHANNEL, ts) == ["pencil2"]
    tagged = [c for c in bot.standin.calls_to("reactions.add") if c.params["timestamp"] == ts]
    assert len(tagged) == 1


def _payload_of(socket_bot: SocketBot, envelope_id: str) -> dict[str, object]:
    return socket_bot.links.payloads[envelope_id]


@pytest.mark.parametrize("reason", ["refresh_requested", "link_disabled", "warning"])
def test_after_a_disconnect_the_bot_reconnects_and_loses_nothing(
    socket_bot: SocketBot, reason: str
) -> None:
    bot = socket_bot.bot
    links = socket_bot.links
    step_ts = socket_bot.open_step()
    old = links.disconnect(reason)
    # Slack keeps the old link open a while: what it sends there meanwhile counts too.
    before, _ = socket_bot.reply(TEACHERS[0], "Before the new link.", step_ts, link=old)
    new = links.wait_connected(count=2)
    assert new is not old
    after, envelope = socket_bot.reply(TEACHERS[1], "On the new link.", step_ts, link=new)
    assert links.ack_of(envelope).link == new.number
    bot.wait_until(lambda: sorted(bot.recorded()) == sorted([before, after]))
    # The old link is let go once the new one is up; no more links are asked for.
    links.wait(lambda: not old.open)
    bot.settle()
    assert len(bot.standin.calls_to("apps.connections.open")) == 2
    assert [x.number for x in links.open_links()] == [new.number]


def test_a_link_the_server_drops_mid_session_is_opened_again(socket_bot: SocketBot) -> None:
    bot = socket_bot.bot
    links = socket_bot.links
    step_ts = socket_bot.open_step()
    links.open_links()[0].drop()
    new = links.wait_connected(count=2, timeout=30)
    ts, envelope = socket_bot.reply(TEACHERS[0], "After the drop.", step_ts, link=new)
    links.ack_of(envelope)
    bot.wait_until(lambda: bot.recorded() == [ts])
    bot.settle()
    assert len(links.links) == 2
    assert len(bot.standin.calls_to("apps.connections.open")) == 2


def test_every_envelope_is_acked_in_time_while_the_database_is_slow(
    socket_bot: SocketBot,
) -> None:
    bot = socket_bot.bot
    links = socket_bot.links
    step_ts = socket_bot.open_step()
    sent = []
    with bot.sessions_locked():
        for i in range(12):
            sent.append(socket_bot.reply(TEACHERS[i % 3], f"Reply {i}.", step_ts))
        for _, envelope in sent:
            ack = links.ack_of(envelope, timeout=10)
            assert ack.at - links.sent[envelope][0] < 3
    bot.wait_until(lambda: sorted(bot.recorded()) == sorted(ts for ts, _ in sent))


def test_a_link_slack_will_not_replace_yet_logs_one_line_and_is_replaced_later(
    socket_bot: SocketBot, caplog: pytest.LogCaptureFixture
) -> None:
    # Asked to reconnect, the bot could not get a new address (Slack's error): a stack trace
    # in the log. The old link still works; when Slack ends it, the bot connects again.
    bot = socket_bot.bot
    links = socket_bot.links
    step_ts = socket_bot.open_step()
    bot.standin.fail_next("apps.connections.open")
    old = links.disconnect("refresh_requested")
    bot.standin.wait_for(lambda calls: bot.standin.faults_left("apps.connections.open") == 0)
    kept, envelope = socket_bot.reply(TEACHERS[0], "On the old link.", step_ts, link=old)
    links.ack_of(envelope)
    old.drop()
    new = links.wait_connected(count=2, timeout=20)
    after, envelope = socket_bot.reply(TEACHERS[1], "On the new link.", step_ts, link=new)
    links.ack_of(envelope)
    bot.wait_until(lambda: sorted(bot.recorded()) == sorted([kept, after]))
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    assert len(bot.standin.calls_to("apps.connections.open")) == 3
