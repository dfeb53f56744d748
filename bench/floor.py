"""The end-to-end floor: the least a bot can do per thread reply, or per `/protocol status`, and
keep PRODUCT 5's promises.

The bare app (bench/bare.py) is the floor for an ack. This one is the floor for work done after
the ack in the process that acks, on the same Bolt options, server and adapter:

- a thread reply: before the ack it commits the event, so an acknowledged event survives a crash;
  after the ack, one of LANES threads records the reply (a row keyed by channel and ts, so a
  second delivery changes nothing) and adds a reaction to it over a kept-alive connection;
- a slash command: it acks at once; then a lane reads the channel's state (one query) and posts a
  one-line answer to the command's response_url over a kept-alive connection, as ours does.

It knows nothing of sessions, steps, tags, norms, permissions or retries: every reply gets the
same reaction, every command the same kind of answer, and a failed call is dropped. Whatever
ours does beyond this is product; this much any bot on this stack pays. The database is raw
driver calls (sqlite3 or psycopg), the cheapest way to them.

Run as `python -m bench.floor --port N --slack-api-url URL --database-url URL`.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import queue
import re
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond

from bench.bare import bolt_app, serve
from bench.signing import SECRET, TOKEN
from bot.keepalive import KeepAliveWebClient, answer_to

LANES = 4
REACTION = "eyes"
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS floor_events (id {serial} PRIMARY KEY,"
    " event_id TEXT NOT NULL UNIQUE, payload TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS floor_replies (id {serial} PRIMARY KEY,"
    " channel TEXT NOT NULL, ts TEXT NOT NULL, user_id TEXT, text TEXT, UNIQUE (channel, ts))",
)
log = logging.getLogger("bench.floor")


class Store:
    """One connection per thread, each write its own committed transaction."""

    def __init__(self, url: str) -> None:
        self.postgres = url.startswith("postgresql")
        self._duplicate: tuple[type[Exception], ...]
        if self.postgres:
            from psycopg.errors import UniqueViolation

            self._target = re.sub(r"^postgresql\+\w+://", "postgresql://", url)
            self._duplicate = (UniqueViolation,)
        else:
            self._target = url.removeprefix("sqlite:///")
            self._duplicate = (sqlite3.IntegrityError,)
        self._local = threading.local()
        serial = "BIGSERIAL" if self.postgres else "INTEGER"
        conn = self._conn()
        for statement in SCHEMA:
            conn.execute(statement.format(serial=serial))
        mark = "%s" if self.postgres else "?"
        self._event = f"INSERT INTO floor_events (event_id, payload) VALUES ({mark}, {mark})"
        self._reply = (
            "INSERT INTO floor_replies (channel, ts, user_id, text)"
            f" VALUES ({mark}, {mark}, {mark}, {mark}) ON CONFLICT DO NOTHING"
        )
        self._count = f"SELECT count(*) FROM floor_replies WHERE channel = {mark}"

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.postgres:
                import psycopg

                conn = psycopg.connect(self._target, autocommit=True)
            else:
                # Autocommit (isolation_level=None), WAL and synchronous=NORMAL, as ours runs.
                conn = sqlite3.connect(
                    self._target, timeout=30, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def keep_event(self, event_id: str, payload: dict[str, Any]) -> bool:
        """Commit the event; False for one already kept (a retry)."""
        try:
            self._conn().execute(self._event, (event_id, json.dumps(payload)))
        except self._duplicate:
            return False
        return True

    def record(self, event: dict[str, Any]) -> None:
        self._conn().execute(
            self._reply, (event["channel"], event["ts"], event.get("user"), event.get("text"))
        )

    def replies_in(self, channel: str) -> int:
        return int(self._conn().execute(self._count, (channel,)).fetchone()[0])


def build_floor_app(slack_api_url: str, store: Store, secret: str = SECRET) -> App:
    app = bolt_app(slack_api_url, secret, name=log.name)
    client = KeepAliveWebClient(token=TOKEN, base_url=slack_api_url, timeout=10)
    client.retry_handlers = []
    work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def lane() -> None:
        while True:
            job = work.get()
            try:
                job()
            except Exception as exc:
                log.warning("reply or answer dropped: %s", type(exc).__name__)

    def tag(event: dict[str, Any]) -> None:
        store.record(event)
        client.reactions_add(channel=event["channel"], timestamp=event["ts"], name=REACTION)

    def answer(channel: str, respond: Respond) -> None:
        count = store.replies_in(channel)
        answer_to(respond).send(
            response_type="ephemeral", text=f"{count} replies in this channel so far."
        )

    for i in range(LANES):
        threading.Thread(target=lane, name=f"floor{i}", daemon=True).start()

    @app.command("/protocol")
    def command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        ack()
        if command.get("response_url"):
            work.put(functools.partial(answer, str(command.get("channel_id")), respond))

    @app.event("message")
    def message(ack: Ack, body: dict[str, Any], event: dict[str, Any]) -> None:
        kept = store.keep_event(str(body.get("event_id")), event)
        ack()
        if kept and event.get("thread_ts") and not event.get("subtype"):
            work.put(functools.partial(tag, event))

    @app.event(re.compile(".*"))
    def other(ack: Ack) -> None:
        ack()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3002)
    parser.add_argument("--slack-api-url", required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    serve(build_floor_app(args.slack_api_url, Store(args.database_url)), args.host, args.port)


if __name__ == "__main__":
    main()
