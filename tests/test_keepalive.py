"""Slack calls on kept-alive connections (bot/keepalive.py), against the stand-in over HTTP."""

from __future__ import annotations

import threading
from urllib.error import URLError

import pytest
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.keepalive import KeepAliveWebClient, answer_to
from bot.slack import make_client
from bot.slack_standin import SlackStandin

pytest_plugins = ["tests.fakes.slack_api"]  # the slack_api fixture

CHANNEL = "C_ROOM"


def post(client: WebClient, text: str) -> str:
    return str(client.chat_postMessage(channel=CHANNEL, text=text)["ts"])


@pytest.fixture
def standin(slack_api: SlackStandin) -> SlackStandin:
    slack_api.add_channel(CHANNEL, ["U_BOT"])
    return slack_api


def test_calls_from_one_thread_share_one_connection(standin: SlackStandin) -> None:
    client = make_client("xoxb-test", standin.url, retries=False)
    for n in range(5):
        post(client, f"post {n}")
    client.reactions_add(channel=CHANNEL, timestamp=post(client, "tagged"), name="eyes")
    assert standin.connections_opened == 1
    assert [m["text"] for m in standin.messages(CHANNEL)][-6:] == [
        *(f"post {n}" for n in range(5)),
        "tagged",
    ]
    # slack_sdk's own client, for comparison: a connection a call.
    plain = WebClient(token="xoxb-test", base_url=standin.url)
    for n in range(3):
        post(plain, f"plain {n}")
    assert standin.connections_opened == 1 + 3


def test_each_thread_keeps_its_own_connection(standin: SlackStandin) -> None:
    client = make_client("xoxb-test", standin.url, retries=False)
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            for n in range(4):
                post(client, f"{name} {n}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{k}",)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(standin.messages(CHANNEL)) == 12
    assert standin.connections_opened == 3


def test_clients_of_different_workspaces_share_a_threads_connection(
    standin: SlackStandin,
) -> None:
    # OAuth: the outbox makes a client with the workspace's token for each call.
    for n in range(6):
        post(make_client(f"xoxb-team-{n % 2}", standin.url, retries=False), f"post {n}")
    assert standin.connections_opened == 1
    # Each request still carried its own workspace's token.
    assert [call.token for call in standin.calls_to("chat.postMessage")] == [
        f"xoxb-team-{n % 2}" for n in range(6)
    ]
    # A client made differently (here, a shorter timeout) keeps a connection of its own.
    post(KeepAliveWebClient(token="xoxb-team-0", base_url=standin.url, timeout=2), "quick")
    assert standin.connections_opened == 2


def test_a_connection_the_server_closed_is_replaced_before_the_next_call(
    standin: SlackStandin,
) -> None:
    client = make_client("xoxb-test", standin.url, retries=False)  # no retry to hide a failure
    post(client, "before")
    standin.stop()  # Slack closes idle connections (and restarts servers) as it likes
    standin.start()
    post(client, "after")
    assert [m["text"] for m in standin.messages(CHANNEL)][-2:] == ["before", "after"]
    assert standin.connections_opened == 2


def test_a_connection_left_idle_too_long_is_not_reused(standin: SlackStandin) -> None:
    now = [1000.0]
    client = KeepAliveWebClient(
        token="xoxb-test", base_url=standin.url, idle_seconds=20, monotonic=lambda: now[0]
    )
    post(client, "first")
    now[0] += 19
    post(client, "soon after")
    assert standin.connections_opened == 1
    now[0] += 21  # a NAT on the way may have forgotten it by now, without a word
    post(client, "much later")
    assert standin.connections_opened == 2
    assert [m["text"] for m in standin.messages(CHANNEL)] == ["first", "soon after", "much later"]


def test_error_answers_keep_their_status_headers_and_connection(standin: SlackStandin) -> None:
    client = make_client("xoxb-test", standin.url, retries=False)
    standin.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as limited:
        post(client, "too soon")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers.get("Retry-After") == "7"
    assert limited.value.response["error"] == "ratelimited"
    standin.fail_next("chat.postMessage", status=503)
    with pytest.raises(SlackApiError) as down:
        post(client, "while down")
    assert down.value.response.status_code == 503
    standin.fail_next("chat.postMessage", error="channel_not_found")
    with pytest.raises(SlackApiError) as refused:
        post(client, "nowhere")
    assert refused.value.response["error"] == "channel_not_found"
    post(client, "in time")
    assert [m["text"] for m in standin.messages(CHANNEL)] == ["in time"]
    assert standin.connections_opened == 1


def test_a_call_that_times_out_leaves_no_half_read_connection(standin: SlackStandin) -> None:
    client = KeepAliveWebClient(token="xoxb-test", base_url=standin.url, timeout=1)
    client.retry_handlers = []
    post(client, "first")
    standin.fail_next("chat.postMessage", delay=3, apply_on_timeout=True)
    with pytest.raises((TimeoutError, URLError)):
        post(client, "unheard")
    # The late answer to the call that timed out is never read as the answer to the next one.
    ts = post(client, "next")
    assert [m["text"] for m in standin.messages(CHANNEL) if m["ts"] == ts] == ["next"]
    assert standin.connections_opened == 2


def test_answers_to_response_urls_from_one_thread_share_one_connection(
    standin: SlackStandin,
) -> None:
    # Each /protocol command has its own response_url, all on Slack's one host.
    for n in range(4):
        url = standin.response_url(f"cmd-{n}")
        answer = answer_to(Respond(response_url=url)).send(response_type="ephemeral", text=f"a{n}")
        assert answer.status_code == 200
    answers = standin.calls_to("response_url")
    assert [(a.params["text"], a.params["response_type"]) for a in answers] == [
        (f"a{n}", "ephemeral") for n in range(4)
    ]
    assert standin.connections_opened == 1
    # Bolt's own respond, for comparison: a connection an answer.
    for n in range(2):
        Respond(response_url=standin.response_url(f"bolt-{n}"))(text="plain")
    assert standin.connections_opened == 1 + 2


def test_an_answer_refused_by_slack_is_a_status_and_the_next_one_goes_through(
    standin: SlackStandin,
) -> None:
    expired = standin.response_url("hook").replace("/response/", "/expired/")
    gone = answer_to(Respond(response_url=expired)).send(text="late")
    assert gone.status_code == 404
    ok = answer_to(Respond(response_url=standin.response_url("next"))).send(text="in time")
    assert ok.status_code == 200
    assert [a.params["text"] for a in standin.calls_to("response_url")] == ["in time"]
