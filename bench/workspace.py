"""The Slack side of a run: the stand-in Web API, its people, running sessions, thread replies."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

from bench.signing import (
    FACILITATOR,
    FORM,
    JSON,
    PRESENTER,
    TEACHERS,
    command_body,
    reply_body,
    signed_headers,
)
from bot.slack_standin import SlackStandin

Request = tuple[str, str]  # (body, content type)


def start_standin() -> SlackStandin:
    standin = SlackStandin(team_id="T_BENCH").start()
    standin.add_user(FACILITATOR, "dana", tz="America/Los_Angeles")
    standin.add_user(PRESENTER, "maria")
    for i, user in enumerate(TEACHERS):
        standin.add_user(user, f"teacher{i + 1}")
    return standin


def post(port: int, body: str, content_type: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/slack/events",
        data=body.encode(),
        headers=signed_headers(body, content_type),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


def channel_name(i: int) -> str:
    return f"C_BENCH{i:05d}"


@dataclass(frozen=True)
class Thread:
    """The open step message of a running session: replies go under `ts`."""

    channel: str
    ts: str


def start_sessions(standin: SlackStandin, port: int, channels: int) -> list[Thread]:
    """Start an ATLAS session (hour-long steps) in each channel by slash command, as a team would,
    and return each session's step 1 message once the bot has posted it."""
    for i in range(channels):
        status, _ = post(
            port, command_body(f"start atlas <@{PRESENTER}|maria> step 1h", channel_name(i)), FORM
        )
        assert status == 200
    wanted = {channel_name(i) for i in range(channels)}
    deadline = time.monotonic() + 60
    threads: dict[str, Thread] = {}
    while len(threads) < channels and time.monotonic() < deadline:
        for channel in wanted - threads.keys():
            for message in standin.messages(channel):
                if str(message.get("text", "")).startswith("Step 1 "):
                    threads[channel] = Thread(channel, message["ts"])
        time.sleep(0.1)
    if len(threads) < channels:
        raise RuntimeError(f"only {len(threads)} of {channels} sessions posted their first step")
    time.sleep(1.0)  # the bot writes the step's ts back just after Slack answers
    return [threads[channel_name(i)] for i in range(channels)]


def status_requests(
    standin: SlackStandin, count: int, channels: int, start: int = 0
) -> tuple[list[Request], list[tuple[str, str]]]:
    """`count` status commands over the channels, each with its own response_url at the
    stand-in, where ours sends the answer after the ack; also returns each one's key."""
    requests: list[Request] = []
    keys: list[tuple[str, str]] = []
    for n in range(start, start + count):
        key = f"status-{n}"
        url = standin.response_url(key)
        requests.append(
            (command_body("status", channel_name(n % channels), response_url=url), FORM)
        )
        keys.append(("response", url))
    return requests, keys


def reply_requests(
    standin: SlackStandin, threads: list[Thread], count: int, start: int = 0
) -> tuple[list[Request], list[tuple[str, str]]]:
    """`count` thread replies spread over the sessions; each is first written into the stand-in,
    as a person would, so the bot's tag reaction has a message to land on. Also returns each
    reply's (channel, ts)."""
    requests: list[Request] = []
    keys: list[tuple[str, str]] = []
    for n in range(start, start + count):
        thread = threads[n % len(threads)]
        user = TEACHERS[n % len(TEACHERS)]
        text = f"Reply {n}: the second column of the work has no units."
        ts = standin.add_message(thread.channel, user, text, thread_ts=thread.ts)["ts"]
        requests.append((reply_body(thread.channel, user, text, ts, thread.ts), JSON))
        keys.append((thread.channel, ts))
    return requests, keys


def answers_seen(standin: SlackStandin) -> Iterator[tuple[tuple[str, str], float]]:
    """Each answer posted to a response_url: (("response", url), when it arrived)."""
    for call in standin.calls_to("response_url"):
        yield ("response", str(call.params.get("response_url"))), call.at


def reactions_seen(standin: SlackStandin) -> Iterator[tuple[tuple[str, str], float]]:
    """Each tag reaction the stand-in answered: ((channel, ts), when it arrived)."""
    for call in standin.calls_to("reactions.add"):
        if call.response.get("ok"):
            yield (str(call.params.get("channel")), str(call.params.get("timestamp"))), call.at


def arrivals(standin: SlackStandin, kind: str) -> Iterator[tuple[tuple[str, str], float]]:
    """What a request of `kind` ends in at the stand-in: a reply's tag reaction, a status answer."""
    return reactions_seen(standin) if kind == "reply" else answers_seen(standin)
