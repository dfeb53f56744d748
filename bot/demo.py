"""protocolbot demo: a rehearsal with no Slack account.

The real app, engine, scheduler and SQLite database run against the in-process Slack stand-in; a
scripted team replies over signed HTTP as Slack would deliver their messages, and the conversation
is printed as a transcript ending with the notes.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

import yaml
from slack_sdk.signature import SignatureVerifier

from bot.app import build_app
from bot.runtime import Runtime
from bot.server import BackgroundServer, make_server
from bot.settings import Settings
from bot.slack_standin import Call, SlackStandin
from bot.store.db import Database
from bot.store.migrate import upgrade

TEAM = "T_DEMO"
SECRET = "demo-signing-secret"
SCRIPT = Path(__file__).with_name("demo_team.yaml")
STEP_RE = re.compile(r"^Step (\d+) of (\d+)")
DATE_RE = re.compile(r"<!date\^(\d+)\^([^|>]*)\|[^>]*>")
# Slack's date tokens, as the transcript shows them (the demo runs within the day: "today").
DATE_TOKENS = {
    "{time}": "%H:%M:%S",
    "{time_secs}": "%H:%M:%S",
    "{date_num}": "%Y-%m-%d",
    "{date}": "%B %d, %Y",
    "{date_short}": "%b %d",
    "{date_long}": "%A, %B %d",
    "{date_pretty}": "today",
    "{date_short_pretty}": "today",
    "{date_long_pretty}": "today",
}
MENTION_RE = re.compile(r"<@(\w+)(?:\|[^>]*)?>")
CHANNEL_RE = re.compile(r"<#(\w+)(?:\|([^>]*))?>")
CHANNEL_NAME = "team"  # the stand-in's name for a channel it is not told one for


def _shown_date(match: re.Match[str]) -> str:
    """A `<!date^ts^format|fallback>` as the reader's Slack would show it, in UTC."""
    shown = match.group(2) or "{time}"
    for token, pattern in DATE_TOKENS.items():
        shown = shown.replace(token, pattern)
    return datetime.fromtimestamp(int(match.group(1)), UTC).strftime(shown)


class Transcript:
    """Prints what the team would see in the channel, in order, as plain text."""

    def __init__(
        self,
        out: TextIO,
        names: dict[str, str],
        started: float,
        on_gone: Callable[[], object] = lambda: None,
    ) -> None:
        self.out, self.names, self.started = out, names, started
        self._lock = threading.Lock()
        # The reader of the output went (`protocolbot demo | head`, a pager quit): nothing more
        # is shown, and on_gone ends the rehearsal.
        self.gone = False
        self._on_gone = on_gone

    def write(self, text: str) -> None:
        with self._lock:
            if self.gone:
                return
            try:
                print(text, file=self.out, flush=True)
            except BrokenPipeError:
                self.gone = True
        if self.gone:
            self._on_gone()

    def _plain(self, text: str) -> str:
        text = DATE_RE.sub(_shown_date, text)
        text = MENTION_RE.sub(lambda m: "@" + self.names.get(m.group(1), m.group(1)), text)
        text = CHANNEL_RE.sub(lambda m: "#" + (m.group(2) or CHANNEL_NAME), text)
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    def line(self, who: str, text: str, *, thread: bool = False, private: bool = False) -> None:
        stamp = f"{time.monotonic() - self.started:5.1f}s"
        indent = "      │ " if thread else ""
        tag = " (only you)" if private else ""
        body = self._plain(text).rstrip().replace("\n", "\n" + " " * 8 + indent)
        self.write(f"{stamp} {indent}{who}{tag}: {body}")

    def blocks(self, blocks: list[dict[str, Any]], fallback: str) -> str:
        parts: list[str] = []
        for block in blocks:
            kind = block.get("type")
            if kind == "header":
                parts.append(f"== {block['text']['text']} ==")
            elif kind == "section":
                parts.append(block["text"]["text"])
            elif kind == "context":
                parts.append(" ".join(e.get("text", "") for e in block["elements"]))
            elif kind == "actions":
                parts.append(" ".join(f"[{e['text']['text']}]" for e in block["elements"]))
        return "\n".join(parts) if parts else fallback


def _button(blocks: list[dict[str, Any]], action_id: str) -> dict[str, Any] | None:
    for block in blocks:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id:
                return dict(element)
    return None


class Team:
    """The scripted teachers: they answer each step a moment after it is posted."""

    def __init__(
        self, script: dict[str, Any], url: str, transcript: Transcript, response_url: str
    ) -> None:
        self.script, self.url, self.transcript = script, url, transcript
        self.response_url = response_url
        self._events = 0
        # Set once the rehearsal ends (Ctrl-C): whoever was still typing says nothing more.
        self.gone = threading.Event()
        self._said: set[tuple[str, str]] = set()  # a line is said once, in the first step for it

    def send(self, body: str, content_type: str) -> dict[str, Any] | str:
        if self.gone.is_set():
            return ""
        stamp = str(int(time.time()))
        signature = SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body)
        request = urllib.request.Request(
            self.url,
            data=body.encode(),
            method="POST",
            headers={
                "Content-Type": content_type,
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": str(signature),
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read().decode()
        try:
            return json.loads(raw) if raw else ""
        except json.JSONDecodeError:
            return raw

    def command(self, user: str, text: str) -> dict[str, Any] | str:
        channel = self.script["channel"]
        body = urlencode(
            {
                "command": "/protocol",
                "text": text,
                "user_id": user,
                "channel_id": channel,
                "team_id": TEAM,
                "team_domain": "demo",
                "channel_name": "plc-grade7",
                "user_name": user,
                "trigger_id": "demo.trigger",
                "response_url": "",
                "api_app_id": "A_DEMO",
                "token": "legacy",
            }
        )
        return self.send(body, "application/x-www-form-urlencoded")

    def reply(self, user: str, text: str, thread_ts: str) -> None:
        self._events += 1
        ts = f"{time.time():.6f}"
        event = {
            "type": "message",
            "channel": self.script["channel"],
            "user": user,
            "text": text,
            "ts": ts,
            "thread_ts": thread_ts,
            "channel_type": "channel",
            "team": TEAM,
        }
        body = json.dumps(
            {
                "token": "legacy",
                "team_id": TEAM,
                "api_app_id": "A_DEMO",
                "type": "event_callback",
                "event": event,
                "event_id": f"Ev_DEMO_{self._events}",
                "event_time": int(time.time()),
                "authorizations": [{"team_id": TEAM, "user_id": "U_BOT", "is_bot": True}],
            }
        )
        self.transcript.line(self.transcript.names.get(user, user), text, thread=True)
        self.send(body, "application/json")

    def press(self, user: str, button: dict[str, Any], delay: float) -> None:
        """A teacher presses a button on a private message, as Slack delivers the click."""
        time.sleep(delay)
        label = button["text"]["text"]
        self.transcript.line(self.transcript.names.get(user, user), f"[{label}]", thread=True)
        payload = {
            "type": "block_actions",
            "user": {"id": user, "team_id": TEAM},
            "team": {"id": TEAM, "domain": "demo"},
            "channel": {"id": self.script["channel"]},
            "api_app_id": "A_DEMO",
            "trigger_id": "demo.trigger",
            "response_url": self.response_url,
            "container": {"type": "message", "is_ephemeral": True},
            "actions": [{**button, "block_id": "demo", "action_ts": f"{time.time():.6f}"}],
        }
        self.send(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def answer_step(
        self, index: int, collects: str, presenter: str, ts: str, pace: float, opens: bool
    ) -> None:
        """The team's lines for a step that collects `collects`, as the step's roles have it
        (`presenter`: silent, speaks, or only): in any protocol the team keeps the norms, but
        for the one slip in step 2 that shows the presenter's reminder."""
        presenter_id = self.script["presenter"]["id"]
        lines = [
            line
            for line in self.script["replies"].get(collects) or []
            if (line[0] == presenter_id) == (presenter == "only") or presenter == "speaks"
        ]
        lines = [line for line in lines if tuple(line) not in self._said]
        self._said |= {tuple(line) for line in lines}
        if opens:  # the step that opens with the statement of the assignment
            lines = [[presenter_id, self.script["statement"]], *lines]
        if presenter == "silent" and index == 2:
            lines.append([presenter_id, self.script["presenter_slip"]])
        gap = pace * 0.6 / max(1, len(lines))
        for user, text in lines:
            time.sleep(gap)
            self.reply(user, text, ts)


def run_demo(
    protocol_id: str = "atlas",
    *,
    step_seconds: float = 3.0,
    out: TextIO,
    protocols_dir: Path | None = None,
) -> int:
    """Rehearse `protocol_id` from the library `serve` would load: the built-in protocols and
    those in `protocols_dir` (PROTOCOLS_DIR)."""
    script = yaml.safe_load(SCRIPT.read_text())
    people = [script["facilitator"], script["presenter"], *script["members"]]
    protocol_id = protocol_id.lower()  # ids are lowercase; /protocol takes any case too
    names = {p["id"]: p["name"] for p in people} | {"U_BOT": "protocolbot"}
    step = max(2, int(round(step_seconds)))
    with (
        tempfile.TemporaryDirectory(prefix="protocolbot-demo-") as tmp,
        SlackStandin(team_id=TEAM) as standin,
    ):
        for person in people:
            standin.add_user(person["id"], person["name"], tz="America/New_York")
        members = [p["id"] for p in people] + ["U_BOT"]
        standin.add_channel(script["channel"], members, name=CHANNEL_NAME)
        settings = Settings(
            slack_bot_token="xoxb-demo",
            slack_signing_secret=SECRET,
            slack_api_url=standin.url,
            database_url=f"sqlite:///{tmp}/demo.sqlite3",
            protocols_dir=protocols_dir,
        )
        db = Database(settings.database_url)
        upgrade(db)
        runtime = Runtime(settings, database=db)
        if protocol_id not in runtime.library:
            print(
                f"protocolbot demo: no protocol {protocol_id!r}; try one of: "
                + ", ".join(sorted(runtime.library)),
                file=out,
            )
            return 2
        protocol = runtime.library[protocol_id]
        server = BackgroundServer(
            make_server(build_app(runtime), runtime, host="127.0.0.1", port=0)
        ).start()
        url = f"http://127.0.0.1:{server.port}/slack/events"
        finished = threading.Event()
        transcript = Transcript(out, names, time.monotonic(), on_gone=finished.set)
        team = Team(script, url, transcript, standin.response_url("demo"))

        shown: dict[str, str] = {}  # each post's text as last shown, by its ts

        def on_call(call: Call) -> None:
            if call.method == "chat.update" and call.response.get("ok"):
                edited(call.params)
            if call.method != "chat.postMessage" or not call.response.get("ok"):
                return
            params = call.params
            text = transcript.blocks(params.get("blocks") or [], str(params.get("text") or ""))
            shown[str(call.response.get("ts"))] = text
            channel = str(params.get("channel") or "")
            # The stand-in opens DM channel D_X for user U_X.
            dm_user = "U" + channel[1:] if channel.startswith("D") else channel
            where = "DM to " + names.get(dm_user, dm_user) if channel[:1] in ("U", "D") else ""
            transcript.line(
                "protocolbot" + (f" ({where})" if where else ""),
                text,
                thread=bool(params.get("thread_ts")),
            )
            if str(params.get("text", "")).startswith("Notes from") and not where:
                finished.set()
            match = STEP_RE.match(str(params.get("text") or ""))
            if match and not params.get("thread_ts"):
                index = int(match.group(1))
                s = protocol.step(index)
                threading.Thread(
                    target=team.answer_step,
                    args=(
                        index,
                        s.collects,
                        s.presenter,
                        call.response["ts"],
                        step,
                        index == protocol.statement_step,
                    ),
                    daemon=True,
                ).start()

        def edited(params: dict[str, Any]) -> None:
            """An edited post as the lines that changed, under its first line: a step that
            closed, a header whose plan moved."""
            ts = str(params.get("ts"))
            before = shown.get(ts, "").split("\n")
            text = transcript.blocks(params.get("blocks") or [], str(params.get("text") or ""))
            shown[ts] = text
            lines = text.split("\n")
            changed = [line for line in lines[1:] if line not in before]
            if changed:
                title = lines[0].strip("= ")
                transcript.line(f"protocolbot (edited {title})", "\n".join(changed))

        def on_private(call: Call) -> None:
            if call.method == "response_url" and call.params.get("text"):
                transcript.line("protocolbot (only you)", str(call.params["text"]), thread=True)
            if call.method == "chat.postEphemeral" and call.response.get("ok"):
                who = names.get(str(call.params.get("user")), "someone")
                transcript.line(
                    f"protocolbot → {who}",
                    transcript.blocks(
                        call.params.get("blocks") or [], str(call.params.get("text") or "")
                    ),
                    thread=True,
                    private=True,
                )
                park = _button(call.params.get("blocks") or [], "nudge_park")
                if park is not None:
                    user = str(call.params.get("user"))
                    threading.Thread(
                        target=team.press, args=(user, park, step * 0.1), daemon=True
                    ).start()

        standin.listeners.extend([on_call, on_private])
        try:
            runtime.start()
            transcript.write(
                f"protocolbot demo: {protocol.name}, {len(protocol.steps)} "
                f"step{'s' if len(protocol.steps) != 1 else ''} of {step} s "
                f"(a live session would take {protocol.live_minutes} min)\n"
            )
            command = f"start {protocol_id} <@{script['presenter']['id']}|maria> step {step}s"
            transcript.line("Dana", f"/protocol {command}")
            answer = team.command(script["facilitator"]["id"], command)
            if isinstance(answer, dict):
                transcript.line("protocolbot → Dana", str(answer.get("text", "")), private=True)
            ok: bool | None = finished.wait(timeout=step * (len(protocol.steps) + 4) + 30)
            runtime.sender.drain(timeout=10)
        except KeyboardInterrupt:
            ok = None  # Ctrl-C: the rehearsal stops here, tidily
        team.gone.set()
        server.stop()
        runtime.stop()
        db.dispose()
        if transcript.gone:
            return 1
        if ok is None:
            transcript.write("\nStopped.")
            return 130
        transcript.write("\nDone." if ok else "\nThe demo did not finish in time.")
        return 0 if ok else 1
