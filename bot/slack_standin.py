"""A local stand-in for the Slack Web API: a real HTTP server for the offline demo and the tests."""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from bot.socket_standin import SocketModeLinks

logger = logging.getLogger(__name__)

Params = dict[str, Any]

# Slack clients send these as JSON strings inside form bodies; decode them so tests see structures.
_JSON_PARAMS = ("blocks", "attachments", "metadata", "view", "files", "unfurls", "user_auth_blocks")
_APP_ID = "A_APP"
_MAX_TEXT = 40_000
# The text a message's blocks may hold all told: chat.postMessage answers msg_blocks_too_long
# past about 13,000 characters, though each block is within its own limit.
_MAX_BLOCKS_TEXT = 13_000


class _RealClock:
    """The real monotonic clock, where freezegun (it patches module attributes) can't reach."""

    monotonic = staticmethod(time.monotonic)


@dataclass
class Call:
    """One Web API request the stand-in received, and what it answered."""

    method: str
    params: dict[str, Any]
    at: float
    response: dict[str, Any]
    status: int
    token: str | None
    # False when the client had given up (timeout) before the answer was ready.
    delivered: bool = True


@dataclass
class _Fault:
    status: int
    error: str | None
    retry_after: int | None
    delay: float
    apply_on_timeout: bool
    channel: str | None = None  # only calls to this channel
    where: Callable[[Params], bool] | None = None  # only calls whose parameters it accepts

    def takes(self, params: Params) -> bool:
        if self.channel is not None and params.get("channel") != self.channel:
            return False
        return self.where is None or self.where(params)

    @property
    def answers_error(self) -> bool:
        return self.status != 200 or self.error is not None

    def answer(self) -> tuple[Params, int, dict[str, str]]:
        headers: dict[str, str] = {}
        if self.status == 429:
            error = self.error or "ratelimited"
            headers["Retry-After"] = str(1 if self.retry_after is None else self.retry_after)
        else:
            error = self.error or "internal_error"
            if self.retry_after is not None:
                headers["Retry-After"] = str(self.retry_after)
        return {"ok": False, "error": error}, self.status, headers


@dataclass
class _User:
    id: str
    name: str
    tz: str
    is_admin: bool
    is_bot: bool
    deleted: bool


class _SlackError(Exception):
    """An `ok: false` answer, as Slack gives it."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a burst of posts from the bot (a round of steps
    # closing, the outbox sending in parallel) would be refused and retried, not answered.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], standin: SlackStandin) -> None:
        super().__init__(address, _Handler)
        self.standin = standin
        # Connections are kept alive (HTTP/1.1), as Slack's are: stopping closes them too.
        self.connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self.connections.add(request)
            self.standin.connections_opened += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections, self.connections = set(self.connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: on a kept-alive connection Nagle's algorithm would
    # hold the body back until the client's delayed ACK (40 ms).
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        self._route()

    def do_GET(self) -> None:
        if urlsplit(self.path).path.startswith("/link/") and self.headers.get("Sec-WebSocket-Key"):
            # Socket Mode: the address apps.connections.open gave; the link holds this thread.
            self.close_connection = True
            self.server.standin.socket_mode.serve(
                self.connection, self.headers["Sec-WebSocket-Key"], self.rfile, self.wfile
            )
            return
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        standin = self.server.standin
        try:
            if url.path.startswith("/api/"):
                standin._serve_api(self, url.path[len("/api/") :], url.query, body)
            elif url.path.startswith("/upload/"):
                standin._serve_upload(self, url.path[len("/upload/") :], body)
            elif url.path.startswith("/response/"):
                standin._serve_response_url(self, body)
            else:
                self.reply(404, b"not found", "text/plain")
        except Exception:
            logger.exception("slack stand-in failed on %s", url.path)
            self.reply(500, b'{"ok": false, "error": "internal_error"}')

    def reply(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            logger.debug("slack stand-in: client went away before the answer")

    def client_gone(self) -> bool:
        """True when the client closed its end (a client timeout does that)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("slack stand-in: " + format, *args)


class SlackStandin:
    """A Slack Web API stand-in served over HTTP: point `WebClient(base_url=standin.url)` at it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        team_id: str = "T_TEAM",
        bot_user_id: str = "U_BOT",
        bot_id: str = "B_BOT",
    ) -> None:
        self.host = host
        self.port = port
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_name = "Stand-in School"
        self.domain = "standin"
        self.listeners: list[Callable[[Call], None]] = []
        # Socket Mode links to the address apps.connections.open gives, envelopes and acks.
        self.socket_mode = SocketModeLinks()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._calls: list[Call] = []
        self._faults: dict[str, list[_Fault]] = {}
        # HTTP connections clients opened to this stand-in (kept alive, a client reuses one).
        self.connections_opened = 0
        self._users: dict[str, _User] = {}
        self._channels: dict[str, Params] = {}
        self._dms: dict[str, str] = {}
        self._messages: list[Params] = []
        # Indexes over _messages, so that big runs (benchmarks) stay fast.
        self._index: dict[tuple[str, str], Params] = {}
        self._by_channel: dict[str, list[Params]] = {}
        self._replies: dict[tuple[str, str], list[Params]] = {}
        self._ephemerals: list[Params] = []
        self._reactions: dict[tuple[str, str], dict[str, list[str]]] = {}
        self._views: dict[str, Params] = {}
        self._home_views: dict[str, str] = {}
        self._uploads: dict[str, Params] = {}
        self._files: list[Params] = []
        # Files people shared, by id, as files.info gives them (see add_file).
        self._shared_files: dict[str, Params] = {}
        # OAuth: codes and refresh tokens -> the install they grant; tokens issued -> their team.
        self._grants: dict[str, Params] = {}
        self._issued: dict[str, Params] = {}
        self._last_ts_us = 0
        self._counter = 0
        self._methods: dict[str, Callable[[Params, str], Params]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "conversations.members": self._conversations_members,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.join": self._conversations_join,
            "users.info": self._users_info,
            "users.list": self._users_list,
            "team.info": self._team_info,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.delete": self._files_delete,
            "files.info": self._files_info,
            "apps.connections.open": self._apps_connections_open,
            "oauth.v2.access": self._oauth_v2_access,
            "auth.revoke": self._auth_revoke,
        }
        self.add_user(bot_user_id, "protocolbot", is_bot=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SlackStandin:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="slack-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self.socket_mode.close_all()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> SlackStandin:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The Web API base URL (what SLACK_API_URL is set to)."""
        return f"{self._origin}/api/"

    @property
    def _origin(self) -> str:
        if self._server is None:
            raise RuntimeError("the Slack stand-in is not started")
        return f"http://{self.host}:{self.port}"

    def response_url(self, key: str = "r") -> str:
        """A response_url served here; POSTs to it are recorded as calls to "response_url"."""
        return f"{self._origin}/response/{key}"

    # ------------------------------------------------------------------ setup and inspection

    def add_user(
        self,
        user_id: str,
        name: str,
        tz: str = "America/New_York",
        is_admin: bool = False,
        is_bot: bool = False,
        deleted: bool = False,
    ) -> None:
        ZoneInfo(tz)  # fail here, not on the first users.info
        with self._lock:
            self._users[user_id] = _User(user_id, name, tz, is_admin, is_bot, deleted)

    def add_channel(
        self, channel_id: str, members: list[str], name: str = "team", *, private: bool = False
    ) -> None:
        """A channel with these members; a `private` one is hidden from the bot until it is a
        member (Slack answers `channel_not_found` there), and the bot can't join it itself."""
        with self._lock:
            self._channels[channel_id] = {
                "id": channel_id,
                "name": name,
                "members": list(members),
                "created": int(time.time()),
                "private": private,
            }

    def archive_channel(self, channel_id: str, archived: bool = True) -> None:
        """Archive (or unarchive) a channel: from now on Slack refuses posts, reactions and
        private lines there with `is_archived`, and conversations.info says so."""
        with self._lock:
            self._channels[channel_id]["archived"] = archived

    def add_member(self, channel_id: str, user_id: str) -> None:
        """Put someone in a channel (`/invite @protocolbot` puts the bot in a private one)."""
        with self._lock:
            members = self._channels[channel_id]["members"]
            if user_id not in members:
                members.append(user_id)

    def remove_member(self, channel_id: str, user_id: str) -> None:
        """Take someone out of a channel (the bot too: then Slack answers `not_in_channel`)."""
        with self._lock:
            members = self._channels[channel_id]["members"]
            if user_id in members:
                members.remove(user_id)

    def add_install(
        self,
        code: str,
        team_id: str,
        *,
        enterprise_id: str | None = None,
        installer: str = "U_FAC",
        expires_in: int | None = None,
        org_wide: bool = False,
    ) -> None:
        """Let oauth.v2.access exchange `code` for a bot token in `team_id` (once); with
        `expires_in`, the token rotates: it comes with a single-use refresh token. `org_wide`:
        an Enterprise Grid org admin installs for the whole org `enterprise_id` (no team)."""
        with self._lock:
            self._grants[code] = {
                "team_id": team_id,
                "enterprise_id": enterprise_id,
                "installer": installer,
                "expires_in": expires_in,
                "org_wide": org_wide,
            }

    def add_token(
        self,
        token: str,
        team_id: str | None,
        *,
        enterprise_id: str | None = None,
        org_wide: bool = False,
    ) -> None:
        """A bot token issued outside OAuth (the app's own install page), as auth.test tells
        it: for `team_id`, or with `org_wide` for the whole Enterprise Grid org."""
        with self._lock:
            self._issued[token] = {
                "team_id": team_id,
                "enterprise_id": enterprise_id,
                "expires_at": None,
                "revoked": False,
                "org_wide": org_wide,
            }

    def expire_token(self, token: str) -> None:
        """`token` has expired: every call with it is refused with token_expired."""
        with self._lock:
            self._issued[token]["expires_at"] = time.time() - 1

    def refuse_token(self, token: str, error: str = "token_revoked") -> None:
        """From now on every call with `token` is refused with `error` (revoked by an admin,
        the bot's account deactivated: account_inactive), and no event says so."""
        with self._lock:
            issued = self._issued.setdefault(
                token, {"team_id": None, "enterprise_id": None, "expires_at": None}
            )
            issued["revoked"] = error

    def add_message(
        self,
        channel: str,
        user: str,
        text: str,
        thread_ts: str | None = None,
        blocks: list[Params] | None = None,
    ) -> dict[str, Any]:
        """Store a message a person wrote, so history and replies show it; returns it, with ts."""
        with self._lock:
            message = self._store_message(
                channel=channel,
                text=text,
                blocks=blocks or [],
                thread_ts=self._thread_root(channel, thread_ts),
                user=user,
                metadata=None,
            )
            message.pop("bot_id")
            message.pop("app_id")
            message["client_msg_id"] = f"standin-{message['ts']}"
            return copy.deepcopy(message)

    def add_file(
        self, file_id: str, name: str, user: str, *, title: str | None = None
    ) -> dict[str, Any]:
        """A file a person shared, as files.info gives it (id, name, title, who, a permalink)."""
        with self._lock:
            record: Params = {
                "id": file_id,
                "name": name,
                "title": title or name,
                "user": user,
                "created": int(time.time()),
                "permalink": f"https://standin.slack.com/files/{user}/{file_id}/{name}",
            }
            self._shared_files[file_id] = record
            return dict(record)

    def edit_message(self, channel: str, ts: str, text: str) -> dict[str, Any]:
        """A person edits their message: history and replies show the new text, marked edited
        (as Slack marks it: by whom, and when)."""
        with self._lock:
            message = self._find(channel, ts)
            message["text"] = text
            message["edited"] = {"user": message["user"], "ts": self._next_ts()}
            return copy.deepcopy(message)

    def delete_message(self, channel: str, ts: str) -> None:
        """A person deletes their message: it is gone from history and replies."""
        with self._lock:
            self._remove_message(self._find(channel, ts))

    def tombstone_message(self, channel: str, ts: str) -> dict[str, Any]:
        """A message with replies is deleted (a person's, or the bot's by a workspace admin):
        Slack keeps a tombstone in its place, its thread and replies as they were; the tombstone
        is no one's to edit (chat.update: cant_update_message). The tombstone as Slack shows it."""
        with self._lock:
            message = self._find(channel, ts)
            for key in ("bot_id", "app_id", "metadata", "edited"):
                message.pop(key, None)
            message.update(
                subtype="tombstone",
                text="This message was deleted.",
                user="USLACKBOT",
                blocks=[],
                metadata=None,
                hidden=True,
            )
            return self._public(message)

    def react(self, channel: str, ts: str, user: str, name: str, *, removed: bool = False) -> None:
        """A person puts a reaction on a message, or takes theirs off: Slack shows it on the
        message (conversations.history and .replies), beside the bot's own."""
        with self._lock:
            users = self._reactions.setdefault((channel, ts), {}).setdefault(name, [])
            if removed and user in users:
                users.remove(user)
            elif not removed and user not in users:
                users.append(user)

    def fail_next(
        self,
        method: str,
        *,
        times: int = 1,
        status: int = 200,
        error: str | None = None,
        retry_after: int | None = None,
        delay: float = 0.0,
        apply_on_timeout: bool = False,
        channel: str | None = None,
        where: Callable[[Params], bool] | None = None,
    ) -> None:
        """Make the next `times` calls of `method` fail (with `channel`, its calls to that one;
        with `where`, those whose parameters it accepts; "response_url": the next POSTs to any
        response_url, answered with the status given and `error` as plain text).

        status=429 answers `ratelimited` with a Retry-After header (default 1 s); another status
        answers `internal_error` (or `error`); `error` alone answers HTTP 200 with `ok: false`.
        `delay` sleeps before answering; when the client has given up by then, nothing is answered
        and, unless `apply_on_timeout`, nothing happens (with it, the call takes effect unheard,
        as when Slack posted but the answer was lost). With no status, error or delay, the calls
        answer `internal_error`.
        """
        if status == 200 and error is None and delay <= 0:
            error = "internal_error"
        fault = _Fault(status, error, retry_after, delay, apply_on_timeout, channel, where)
        with self._lock:
            self._faults.setdefault(method, []).extend(copy.copy(fault) for _ in range(times))

    def faults_left(self, method: str) -> int:
        """How many faults armed by `fail_next` for `method` no call has reached yet."""
        with self._lock:
            return len(self._faults.get(method, ()))

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self._calls if call.method == method]

    def wait_for(
        self, predicate: Callable[[list[Call]], bool], timeout: float = 10.0
    ) -> list[Call]:
        """Wait until `predicate(calls)` holds, or raise AssertionError listing the calls."""
        deadline = _RealClock.monotonic() + timeout
        while True:
            snapshot = self.calls
            if predicate(snapshot):
                return snapshot
            remaining = deadline - _RealClock.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"Slack stand-in: condition not met within {timeout}s\n" + _summary(snapshot)
                )
            with self._changed:
                if len(self._calls) == len(snapshot):
                    self._changed.wait(remaining)

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Posted messages (top level and replies) in post order; deleted ones are gone."""
        with self._lock:
            chosen = self._messages if channel is None else self._by_channel.get(channel, [])
            return copy.deepcopy(chosen)

    def ephemerals(self, channel: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in self._ephemerals
                if channel is None or m["channel"] == channel
            ]

    def reactions(self, channel: str, ts: str) -> list[str]:
        """Names of the reactions on a message, in the order they were first added."""
        with self._lock:
            return [n for n, users in self._reactions.get((channel, ts), {}).items() if users]

    @property
    def files(self) -> list[dict[str, Any]]:
        """Completed uploads: id, name, title, channel_id, thread_ts, initial_comment, content."""
        with self._lock:
            return [dict(f) for f in self._files]

    # ------------------------------------------------------------------ HTTP plumbing

    def _serve_api(self, handler: _Handler, method: str, query: str, body: bytes) -> None:
        received = time.time()
        try:
            params = _parse_params(query, handler.headers.get("Content-Type", ""), body)
        except _SlackError as e:
            self._answer(
                handler, Call(method, {}, received, {"ok": False, "error": e.error}, 200, None)
            )
            return
        token = _bearer(handler.headers.get("Authorization")) or _str_or_none(params.get("token"))
        if token is None and method == "oauth.v2.access":
            token = ""  # authenticated by client id and secret (HTTP Basic), not a token
        if token is None:
            response: Params = {"ok": False, "error": "not_authed"}
            self._answer(handler, Call(method, params, received, response, 200, None))
            return
        fault = self._take_fault(method, params)
        if fault is not None and fault.delay > 0:
            self._stopping.wait(fault.delay)
            if self._stopping.is_set() or handler.client_gone():
                self._drop(method, params, token, received, fault)
                handler.close_connection = True
                return
        headers: dict[str, str] = {}
        if fault is not None and fault.answers_error:
            response, status, headers = fault.answer()
        else:
            response, status = self._dispatch(method, params, token), 200
        self._answer(handler, Call(method, params, received, response, status, token), headers)

    def _drop(self, method: str, params: Params, token: str, at: float, fault: _Fault) -> None:
        if fault.apply_on_timeout and not fault.answers_error:
            call = Call(
                method, params, at, self._dispatch(method, params, token), 200, token, False
            )
        else:
            call = Call(method, params, at, {}, 0, token, False)
        self._record(call)

    def _answer(self, handler: _Handler, call: Call, headers: dict[str, str] | None = None) -> None:
        self._record(call)
        handler.reply(call.status, json.dumps(call.response).encode(), headers=headers)

    def _record(self, call: Call) -> None:
        with self._changed:
            self._calls.append(call)
            self._changed.notify_all()
        if call.response.get("ok"):
            for listener in list(self.listeners):
                try:
                    listener(call)
                except Exception:
                    logger.exception("slack stand-in listener failed")

    def _take_fault(self, method: str, params: Params) -> _Fault | None:
        with self._lock:
            queue = self._faults.get(method) or []
            for n, fault in enumerate(queue):
                if fault.takes(params):
                    return queue.pop(n)
            return None

    def _dispatch(self, method: str, params: Params, token: str) -> Params:
        impl = self._methods.get(method)
        if impl is None:
            return {"ok": False, "error": "unknown_method"}
        issued = self._issued.get(token)
        if issued is not None and issued["revoked"]:
            refused = issued["revoked"]
            return {"ok": False, "error": refused if isinstance(refused, str) else "token_revoked"}
        if issued is not None and (issued["expires_at"] or time.time() + 1) < time.time():
            return {"ok": False, "error": "token_expired"}
        try:
            with self._lock:
                return {"ok": True, **impl(params, token)}
        except _SlackError as e:
            return {"ok": False, "error": e.error, **e.extra}
        except (ValueError, TypeError, KeyError, AttributeError):
            logger.debug("slack stand-in: malformed %s call", method, exc_info=True)
            return {"ok": False, "error": "invalid_arguments"}

    def _serve_upload(self, handler: _Handler, file_id: str, body: bytes) -> None:
        with self._lock:
            upload = self._uploads.get(file_id)
            if upload is not None:
                upload["content"] = body
        if upload is None:
            handler.reply(404, b"file not found", "text/plain")
        else:
            handler.reply(200, f"OK - {len(body)}".encode(), "text/plain")

    def _serve_response_url(self, handler: _Handler, body: bytes) -> None:
        try:
            params = _parse_params("", handler.headers.get("Content-Type", ""), body)
        except _SlackError:
            params = {}
        params["response_url"] = f"{self._origin}{handler.path}"
        fault = self._take_fault("response_url", {})
        try:
            if fault is not None and fault.answers_error:
                # fail_next("response_url", status=404, error="expired_url"): a used-up one.
                raise _SlackError(fault.error or "invalid_payload", status=fault.status)
            _check_blocks(params.get("blocks"))
        except _SlackError as refused:
            # As Slack answers a response_url: HTTP 400 (or 404 for one used up or expired),
            # the error as plain text.
            status = int(refused.extra.get("status") or 400)
            status = status if status != 200 else 400
            answer = {"error": refused.error}
            self._record(Call("response_url", params, time.time(), answer, status, None))
            handler.reply(status, refused.error.encode(), "text/plain")
            return
        self._answer(handler, Call("response_url", params, time.time(), {"ok": True}, 200, None))

    # ------------------------------------------------------------------ shared helpers

    def _next_ts(self) -> str:
        """A unique, increasing Slack ts from the current time, e.g. "1700000000.000100"."""
        micros = max(int(time.time() * 1_000_000), self._last_ts_us + 1)
        self._last_ts_us = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter:08d}"

    def _channel_param(self, p: Params, key: str = "channel") -> str:
        channel = str(p.get(key) or "")
        if not channel:
            raise _SlackError("channel_not_found")
        if channel[0] in "UW":  # posting to a user id posts in the app's DM with them
            return self._open_dm(channel)
        if channel[0] == "D" and (channel in self._dms or f"U{channel[1:]}" in self._users):
            return channel
        if self._channels and channel not in self._channels:
            raise _SlackError("channel_not_found")
        registered = self._channels.get(channel)
        if registered is not None and registered["private"] and not self._is_member(registered):
            raise _SlackError("channel_not_found")  # a private channel is hidden to non-members
        return channel

    def _is_member(self, registered: Params) -> bool:
        return self.bot_user_id in registered["members"]

    def _writable(self, channel: str) -> str:
        """A channel the bot may post in: not archived, and (registered ones) with the bot in."""
        registered = self._channels.get(channel)
        if registered is not None and registered.get("archived"):
            raise _SlackError("is_archived")
        if registered is not None and self.bot_user_id not in registered["members"]:
            raise _SlackError("not_in_channel")
        return channel

    def _open_dm(self, user_id: str) -> str:
        dm = f"D{user_id[1:]}"
        self._dms[dm] = user_id
        return dm

    def _find(self, channel: str, ts: str) -> Params:
        message = self._index.get((channel, ts))
        if message is None:
            raise _SlackError("message_not_found")
        return message

    def _thread_root(self, channel: str, thread_ts: Any) -> str | None:
        if not thread_ts:
            return None
        try:
            parent = self._find(channel, str(thread_ts))
        except _SlackError:
            return str(thread_ts)
        return parent["thread_ts"] or parent["ts"]

    def _store_message(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[Params],
        thread_ts: str | None,
        user: str,
        metadata: Params | None,
    ) -> Params:
        message: Params = {
            "type": "message",
            "ts": self._next_ts(),
            "channel": channel,
            "text": text,
            "blocks": blocks,
            "thread_ts": thread_ts,
            "user": user,
            "metadata": metadata,
            "bot_id": self.bot_id,
            "app_id": _APP_ID,
            "team": self.team_id,
        }
        if thread_ts is not None:
            with contextlib.suppress(_SlackError):
                message["parent_user_id"] = self._find(channel, thread_ts)["user"]
            self._replies.setdefault((channel, thread_ts), []).append(message)
        self._messages.append(message)
        self._index[(channel, message["ts"])] = message
        self._by_channel.setdefault(channel, []).append(message)
        return message

    def _remove_message(self, message: Params) -> None:
        channel, ts = message["channel"], message["ts"]
        self._messages.remove(message)
        del self._index[(channel, ts)]
        self._by_channel[channel].remove(message)
        if message["thread_ts"] is not None:
            self._replies[(channel, message["thread_ts"])].remove(message)
        self._reactions.pop((channel, ts), None)

    def _public(self, message: Params, with_metadata: bool = True) -> Params:
        """A stored message as Slack's API shows it."""
        hidden = {"channel", "metadata", "blocks", "thread_ts"}
        out = {k: copy.deepcopy(v) for k, v in message.items() if k not in hidden and v is not None}
        if message["blocks"]:
            out["blocks"] = copy.deepcopy(message["blocks"])
        if with_metadata and message["metadata"]:
            out["metadata"] = copy.deepcopy(message["metadata"])
        if message["thread_ts"]:
            out["thread_ts"] = message["thread_ts"]
        replies = self._replies.get((message["channel"], message["ts"]), [])
        if replies:
            users = list(dict.fromkeys(m["user"] for m in replies))
            out.update(
                thread_ts=message["ts"],
                reply_count=len(replies),
                reply_users=users,
                reply_users_count=len(users),
                latest_reply=replies[-1]["ts"],
            )
        reactions = self._reactions.get((message["channel"], message["ts"]), {})
        listed = [
            {"name": name, "users": list(users), "count": len(users)}
            for name, users in reactions.items()
            if users
        ]
        if listed:
            out["reactions"] = listed
        return out

    def _channel_info(self, channel: str) -> Params:
        if channel in self._dms:
            return {
                "id": channel,
                "created": int(time.time()),
                "is_im": True,
                "is_org_shared": False,
                "user": self._dms[channel],
                "is_user_deleted": False,
                "priority": 0,
            }
        registered = self._channels.get(channel, {"name": "team", "created": int(time.time())})
        return {
            "id": channel,
            "name": registered["name"],
            # A private channel made before March 2021 has a G id, and is a "group".
            "is_channel": not channel.startswith("G"),
            "is_group": channel.startswith("G"),
            "is_im": False,
            "is_mpim": False,
            "is_private": bool(registered.get("private")),
            "is_archived": bool(registered.get("archived")),
            "is_general": False,
            "is_member": self.bot_user_id in registered.get("members", [self.bot_user_id]),
            "created": registered["created"],
            "creator": self.bot_user_id,
            "name_normalized": registered["name"],
            "context_team_id": self.team_id,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
            "num_members": len(registered.get("members", [])),
        }

    def _user_object(self, user: _User) -> Params:
        now = datetime.now(ZoneInfo(user.tz))
        offset = now.utcoffset()
        profile: Params = {
            "real_name": user.name,
            "real_name_normalized": user.name,
            "display_name": user.name,
            "display_name_normalized": user.name,
            "team": self.team_id,
            "image_48": f"https://avatars.invalid/{user.id}_48.png",
        }
        if user.is_bot:
            profile["bot_id"] = self.bot_id
        return {
            "id": user.id,
            "team_id": self.team_id,
            "name": user.name.lower().replace(" ", "."),
            "deleted": user.deleted,
            "real_name": user.name,
            "tz": user.tz,
            "tz_label": now.tzname(),
            "tz_offset": int(offset.total_seconds()) if offset is not None else 0,
            "profile": profile,
            "is_admin": user.is_admin,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": user.is_bot,
            "is_app_user": False,
            "updated": int(time.time()),
        }

    def _view_object(self, view: Any, view_id: str | None = None) -> Params:
        _check_view(view)
        stored: Params = {
            "id": view_id or self._next_id("V"),
            "team_id": self.team_id,
            "type": view["type"],
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{self._next_id('h')}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "app_id": _APP_ID,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        if "title" in view:
            stored["title"] = view["title"]
        stored["root_view_id"] = stored["id"]
        self._views[stored["id"]] = stored
        return copy.deepcopy(stored)

    # ------------------------------------------------------------------ Web API methods

    def _auth_test(self, p: Params, token: str) -> Params:
        issued = self._issued.get(token) or {}
        return {
            "url": f"https://{self.domain}.slack.com/",
            "team": self.team_name,
            "user": "protocolbot",
            "team_id": issued.get("team_id") or self.team_id,
            "enterprise_id": issued.get("enterprise_id"),
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": bool(issued.get("org_wide")),
        }

    def _chat_post_message(self, p: Params, token: str) -> Params:
        channel = self._writable(self._channel_param(p))
        text, blocks = _text_and_blocks(p)
        metadata = _check_metadata(p.get("metadata"))
        message = self._store_message(
            channel=channel,
            text=text,
            blocks=blocks,
            thread_ts=self._thread_root(channel, p.get("thread_ts")),
            user=self.bot_user_id,
            metadata=metadata,
        )
        if p.get("attachments"):
            message["attachments"] = p["attachments"]
        if message["thread_ts"] and _flag(p.get("reply_broadcast")):
            message["subtype"] = "thread_broadcast"
        return {"channel": channel, "ts": message["ts"], "message": self._public(message)}

    def _edited_channel(self, p: Params) -> str:
        """The channel of a message to edit or delete: as Slack documents for chat.update, a
        direct message's conversation id (D...), not the user's (U...)."""
        if str(p.get("channel") or "")[:1] in ("U", "W"):
            raise _SlackError("channel_not_found")
        return self._channel_param(p)

    def _chat_update(self, p: Params, token: str) -> Params:
        channel = self._edited_channel(p)
        message = self._find(channel, str(p.get("ts") or ""))
        if message.get("bot_id") != self.bot_id:
            raise _SlackError("cant_update_message")
        if "blocks" in p:
            _check_blocks(p["blocks"])
            message["blocks"] = p["blocks"] or []
        if "text" in p:
            if len(str(p["text"] or "")) > _MAX_TEXT:
                raise _SlackError("msg_too_long")
            message["text"] = str(p["text"] or "")
        if "attachments" in p:
            message["attachments"] = p["attachments"]
        if "metadata" in p:
            message["metadata"] = _check_metadata(p["metadata"])
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "channel": channel,
            "ts": message["ts"],
            "text": message["text"],
            "message": self._public(message),
        }

    def _chat_delete(self, p: Params, token: str) -> Params:
        channel = self._edited_channel(p)
        message = self._find(channel, str(p.get("ts") or ""))
        if message.get("bot_id") != self.bot_id:
            raise _SlackError("cant_delete_message")
        self._remove_message(message)
        return {"channel": channel, "ts": message["ts"]}

    def _chat_post_ephemeral(self, p: Params, token: str) -> Params:
        channel = self._writable(self._channel_param(p))
        user = str(p.get("user") or "")
        if not user:
            raise _SlackError("user_not_found")
        registered = self._channels.get(channel)
        if registered is not None and user not in registered["members"]:
            raise _SlackError("user_not_in_channel")
        text, blocks = _text_and_blocks(p)
        ts = self._next_ts()
        self._ephemerals.append(
            {
                "ts": ts,
                "channel": channel,
                "user": user,
                "text": text,
                "blocks": blocks,
                "thread_ts": _str_or_none(p.get("thread_ts")),
            }
        )
        return {"message_ts": ts}

    def _chat_get_permalink(self, p: Params, token: str) -> Params:
        channel = self._channel_param(p)
        message = self._find(channel, str(p.get("message_ts") or ""))
        link = (
            f"https://{self.domain}.slack.com/archives/{channel}/p{message['ts'].replace('.', '')}"
        )
        if message["thread_ts"]:
            link += f"?thread_ts={message['thread_ts']}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _reaction_target(self, p: Params) -> tuple[tuple[str, str], str]:
        channel = self._writable(self._channel_param(p))
        message = self._find(channel, str(p.get("timestamp") or ""))
        name = str(p.get("name") or "").strip(":")
        if not name:
            raise _SlackError("invalid_name")
        return (channel, message["ts"]), name

    def _reactions_add(self, p: Params, token: str) -> Params:
        key, name = self._reaction_target(p)
        users = self._reactions.setdefault(key, {}).setdefault(name, [])
        if self.bot_user_id in users:
            raise _SlackError("already_reacted")
        users.append(self.bot_user_id)
        return {}

    def _reactions_remove(self, p: Params, token: str) -> Params:
        key, name = self._reaction_target(p)
        users = self._reactions.get(key, {}).get(name, [])
        if self.bot_user_id not in users:
            raise _SlackError("no_reaction")
        users.remove(self.bot_user_id)
        return {}

    def _conversations_open(self, p: Params, token: str) -> Params:
        if p.get("channel"):
            channel = self._channel_param(p)
            return {
                "channel": self._channel_info(channel)
                if _flag(p.get("return_im"))
                else {"id": channel}
            }
        users = [u for u in str(p.get("users") or "").split(",") if u and u != self.bot_user_id]
        if not users:
            raise _SlackError("users_list_not_supplied")
        known_people = len(self._users) > 1  # the bot itself is always known
        if known_people and any(user not in self._users for user in users):
            raise _SlackError("user_not_found")
        if len(users) == 1:
            already = f"D{users[0][1:]}" in self._dms
            channel = self._open_dm(users[0])
            answer: Params = {"channel": {"id": channel}}
            if _flag(p.get("return_im")):
                answer["channel"] = self._channel_info(channel)
            if already:
                answer.update(no_op=True, already_open=True)
            return answer
        digest = hashlib.sha1(",".join(sorted(users)).encode()).hexdigest()[:10].upper()
        return {"channel": {"id": f"G{digest}"}}

    def _conversations_info(self, p: Params, token: str) -> Params:
        return {"channel": self._channel_info(self._channel_param(p))}

    def _conversations_members(self, p: Params, token: str) -> Params:
        channel = self._channel_param(p)
        if channel in self._dms:
            members = [self._dms[channel], self.bot_user_id]
        else:
            members = list(self._channels.get(channel, {}).get("members", []))
        page, cursor = _paginate(members, p, default_limit=100)
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    def _readable(self, channel: str) -> str:
        """A channel whose messages the bot may read: a bot token reads only the channels it
        is a member of (a public one it is not in answers `not_in_channel`)."""
        registered = self._channels.get(channel)
        if registered is not None and self.bot_user_id not in registered["members"]:
            raise _SlackError("not_in_channel")
        return channel

    def _conversations_history(self, p: Params, token: str) -> Params:
        channel = self._readable(self._channel_param(p))
        visible = [
            m
            for m in self._by_channel.get(channel, [])
            if (m["thread_ts"] is None or m.get("subtype") == "thread_broadcast")
            and _in_window(m["ts"], p)
        ]
        visible.reverse()
        page, cursor = _paginate(visible, p, default_limit=100)
        with_metadata = _flag(p.get("include_all_metadata"))
        return {
            "messages": [self._public(m, with_metadata) for m in page],
            "has_more": bool(cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_replies(self, p: Params, token: str) -> Params:
        channel = self._readable(self._channel_param(p))
        ts = str(p.get("ts") or "")
        first = self._index.get((channel, ts))
        root = (first["thread_ts"] or first["ts"]) if first is not None else ts
        parent = self._index.get((channel, root))
        thread = ([parent] if parent is not None else []) + self._replies.get((channel, root), [])
        thread += self._file_shares(channel, root)
        if not thread:
            raise _SlackError("thread_not_found")
        thread = [m for m in thread if _in_window(m["ts"], p)]
        page, cursor = _paginate(thread, p, default_limit=100)
        with_metadata = _flag(p.get("include_all_metadata"))
        return {
            "messages": [self._public(m, with_metadata) for m in page],
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }

    def _file_shares(self, channel: str, thread_ts: str) -> list[Params]:
        """Files shared into a thread, as the messages Slack shows for them (not in messages())."""
        return [
            {
                "type": "message",
                "user": f["user"],
                "channel": channel,
                "ts": f["share_ts"],
                "thread_ts": thread_ts,
                "text": f.get("initial_comment") or "",
                "blocks": None,
                "metadata": None,
                "files": [{"id": f["id"], "name": f["name"], "title": f["title"]}],
            }
            for f in self._files
            if f.get("thread_ts") == thread_ts and channel in f["channels"]
        ]

    def _conversations_join(self, p: Params, token: str) -> Params:
        registered = self._channels.get(str(p.get("channel") or ""))
        if registered is not None and registered["private"]:
            # Only public channels can be joined: a private one's members invite the bot.
            raise _SlackError("method_not_supported_for_channel_type")
        channel = self._channel_param(p)
        if registered is not None and registered.get("archived"):
            raise _SlackError("is_archived")
        if registered is not None and self.bot_user_id not in registered["members"]:
            registered["members"].append(self.bot_user_id)
        return {"channel": self._channel_info(channel)}

    def _users_info(self, p: Params, token: str) -> Params:
        user = self._users.get(str(p.get("user") or ""))
        if user is None:
            raise _SlackError("user_not_found")
        return {"user": self._user_object(user)}

    def _users_list(self, p: Params, token: str) -> Params:
        users = [self._user_object(u) for u in self._users.values()]
        page, cursor = _paginate(users, p, default_limit=200)
        return {
            "members": page,
            "cache_ts": int(time.time()),
            "response_metadata": {"next_cursor": cursor},
        }

    def _team_info(self, p: Params, token: str) -> Params:
        return {
            "team": {
                "id": self.team_id,
                "name": self.team_name,
                "domain": self.domain,
                "email_domain": "",
                "icon": {"image_default": True},
            }
        }

    def _views_open(self, p: Params, token: str) -> Params:
        if not p.get("trigger_id"):
            raise _SlackError("invalid_arguments")
        return {"view": self._view_object(p.get("view"))}

    def _views_update(self, p: Params, token: str) -> Params:
        view_id = str(p.get("view_id") or "")
        if not view_id and p.get("external_id"):
            wanted = p["external_id"]
            view_id = next(
                (v["id"] for v in self._views.values() if v["external_id"] == wanted), ""
            )
        current = self._views.get(view_id)
        if current is None:
            raise _SlackError("not_found")
        if p.get("hash") and p["hash"] != current["hash"]:
            raise _SlackError("hash_conflict")
        return {"view": self._view_object(p.get("view"), view_id=view_id)}

    def _views_publish(self, p: Params, token: str) -> Params:
        user = str(p.get("user_id") or "")
        if not user:
            raise _SlackError("invalid_arguments")
        view = p.get("view")
        if not isinstance(view, dict) or view.get("type") != "home":
            raise _SlackError("invalid_arguments")
        published = self._view_object(view, view_id=self._home_views.get(user))
        self._home_views[user] = published["id"]
        return {"view": published}

    def _files_get_upload_url(self, p: Params, token: str) -> Params:
        filename = str(p.get("filename") or "")
        length = int(p.get("length") or 0)
        if not filename or length <= 0:
            raise _SlackError("invalid_arguments")
        file_id = self._next_id("F")
        self._uploads[file_id] = {
            "filename": filename,
            "length": length,
            "alt_txt": p.get("alt_txt"),
            "snippet_type": p.get("snippet_type"),
            "content": None,
        }
        return {"upload_url": f"{self._origin}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, p: Params, token: str) -> Params:
        entries = p.get("files")
        if not isinstance(entries, list) or not entries:
            raise _SlackError("invalid_arguments")
        channel_id = self._channel_param(p, "channel_id") if p.get("channel_id") else None
        channels = [c for c in str(p.get("channels") or "").split(",") if c]
        if channel_id:
            channels.insert(0, channel_id)
        uploads = [self._uploads.get(str(entry.get("id"))) for entry in entries]
        if any(u is None or u["content"] is None for u in uploads):
            raise _SlackError("file_not_found")
        answered = []
        for entry, upload in zip(entries, uploads, strict=True):
            assert upload is not None
            record: Params = {
                "id": str(entry["id"]),
                "name": upload["filename"],
                "title": entry.get("title") or upload["filename"],
                "channel_id": channel_id,
                "channels": channels,
                "thread_ts": _str_or_none(p.get("thread_ts")),
                "initial_comment": _str_or_none(p.get("initial_comment")),
                "content": upload["content"],
                "size": len(upload["content"]),
                "user": self.bot_user_id,
                "created": int(time.time()),
                # The file share is a message of its own in the channel or thread, as in Slack.
                "share_ts": self._next_ts(),
            }
            self._files.append(record)
            answered.append(
                {k: v for k, v in record.items() if k not in ("content", "channel_id", "share_ts")}
            )
        return {"files": answered}

    def _files_delete(self, p: Params, token: str) -> Params:
        found = [f for f in self._files if f["id"] == str(p.get("file") or "")]
        if not found:
            raise _SlackError("file_not_found")
        if found[0]["user"] != self.bot_user_id:
            raise _SlackError("cant_delete_file")
        self._files.remove(found[0])
        return {}

    def _files_info(self, p: Params, token: str) -> Params:
        file_id = str(p.get("file") or "")
        shared = self._shared_files.get(file_id)
        if shared is not None:
            return {"file": dict(shared)}
        uploaded = [f for f in self._files if f["id"] == file_id]
        if not uploaded:
            raise _SlackError("file_not_found")
        hidden = ("content", "channel_id", "share_ts")
        return {"file": {k: v for k, v in uploaded[0].items() if k not in hidden}}

    def _oauth_v2_access(self, p: Params, token: str) -> Params:
        refreshing = p.get("grant_type") == "refresh_token"
        grant = self._grants.pop(str(p.get("refresh_token" if refreshing else "code") or ""), None)
        if grant is None:
            raise _SlackError("invalid_refresh_token" if refreshing else "invalid_code")
        expires_in = grant["expires_in"]
        access = f"{'xoxe.' if expires_in else ''}xoxb-{grant['team_id']}-{self._next_id('')}"
        self._issued[access] = {
            "team_id": grant["team_id"],
            "enterprise_id": grant["enterprise_id"],
            "expires_at": time.time() + expires_in if expires_in else None,
            "revoked": False,
            "org_wide": bool(grant.get("org_wide")),
        }
        answer: Params = {"access_token": access, "token_type": "bot"}
        if expires_in:
            refresh = f"xoxe-1-{self._next_id('')}"
            self._grants[refresh] = grant
            answer.update(refresh_token=refresh, expires_in=expires_in)
        if refreshing:
            return answer
        enterprise = grant["enterprise_id"]
        org = {"id": enterprise, "name": f"District {enterprise}"} if enterprise else None
        return {
            **answer,
            "scope": "chat:write,commands",
            "bot_user_id": self.bot_user_id,
            "app_id": _APP_ID,
            "team": (
                None
                if grant.get("org_wide")
                else {"id": grant["team_id"], "name": f"School {grant['team_id']}"}
            ),
            "enterprise": org,
            "is_enterprise_install": bool(grant.get("org_wide")),
            "authed_user": {"id": grant["installer"]},
        }

    def _auth_revoke(self, p: Params, token: str) -> Params:
        if token in self._issued:
            self._issued[token]["revoked"] = True
        return {"revoked": True}

    def _apps_connections_open(self, p: Params, token: str) -> Params:
        if not token.startswith("xapp-"):
            raise _SlackError("not_allowed_token_type")
        return {"url": f"ws://{self.host}:{self.port}/link/?ticket={self._next_id('t')}"}


# ---------------------------------------------------------------------- module helpers


def _parse_params(query: str, content_type: str, body: bytes) -> Params:
    params: Params = dict(parse_qsl(query, keep_blank_values=True))
    if body:
        if content_type.split(";")[0].strip().lower() == "application/json":
            try:
                decoded = json.loads(body)
            except ValueError:
                raise _SlackError("invalid_json") from None
            if not isinstance(decoded, dict):
                raise _SlackError("invalid_json")
            params.update(decoded)
        else:
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    for key in _JSON_PARAMS:
        value = params.get(key)
        if isinstance(value, str) and value.startswith(("[", "{")):
            with contextlib.suppress(ValueError):  # else left as sent, for the method to reject
                params[key] = json.loads(value)
    return params


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[len("bearer ") :].strip() or None
    return None


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True", "TRUE")


def _text_and_blocks(p: Params) -> tuple[str, list[Params]]:
    text = str(p.get("text") or "")
    blocks = p.get("blocks") or []
    if not text and not blocks and not p.get("attachments"):
        raise _SlackError("no_text")
    if len(text) > _MAX_TEXT:
        raise _SlackError("msg_too_long")
    _check_blocks(blocks)
    return text, blocks


def refusal_of_message(message: Params) -> str | None:
    """What Slack answers a message given to it other than through the Web API (a slash
    command's or an interaction's answer in its acknowledgement), or None when it takes it."""
    try:
        _text_and_blocks(message)
    except _SlackError as refused:
        return refused.error
    return None


def _invalid_blocks(why: str) -> _SlackError:
    return _SlackError("invalid_blocks", response_metadata={"messages": [f"[ERROR] {why}"]})


def _check_blocks(blocks: Any, limit: int = 50) -> None:
    """Slack's Block Kit limits that a mistake in our templates would most likely break."""
    if blocks is None:
        return
    if not isinstance(blocks, list):
        raise _invalid_blocks("blocks must be a list")
    if len(blocks) > limit:
        raise _invalid_blocks(f"no more than {limit} items allowed")
    if limit == 50 and sum(len(text) for text in _texts(blocks)) > _MAX_BLOCKS_TEXT:
        # A message's blocks all told, each within its own limit (views have none such).
        raise _SlackError("msg_blocks_too_long")
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _invalid_blocks(f"missing required field: type [json-pointer:/blocks/{i}]")
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in seen or len(str(block_id)) > 255:
                raise _invalid_blocks(f"invalid block_id [json-pointer:/blocks/{i}/block_id]")
            seen.add(block_id)
        text = block.get("text")
        text_len = len(str(text.get("text", ""))) if isinstance(text, dict) else 0
        if block["type"] == "section" and text_len > 3000:
            raise _invalid_blocks(
                f"must be less than 3001 characters [json-pointer:/blocks/{i}/text]"
            )
        if block["type"] == "header" and text_len > 150:
            raise _invalid_blocks(
                f"must be less than 151 characters [json-pointer:/blocks/{i}/text]"
            )
        if block["type"] == "actions" and len(block.get("elements", [])) > 25:
            raise _invalid_blocks(
                f"no more than 25 items allowed [json-pointer:/blocks/{i}/elements]"
            )
        _check_elements(block, f"/blocks/{i}")


# Slack's limits on what an element holds: a button's label and value, a menu's options.
_ELEMENT_LIMITS = {"button": (("text", 75), ("value", 2000))}
_OPTION_LIMITS = (("text", 75), ("value", 150), ("description", 75))
_MAX_OPTIONS = {"radio_buttons": 10, "checkboxes": 10}


def _check_elements(node: Any, where: str) -> None:
    """Every element under a block, at any depth (an accessory, an input's element, an
    actions block's elements), within Slack's limits."""
    if isinstance(node, list):
        for n, item in enumerate(node):
            _check_elements(item, f"{where}/{n}")
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    for field, limit in _ELEMENT_LIMITS.get(str(kind), ()):
        _check_length(node, field, limit, where)
    if isinstance(node.get("options"), list) or isinstance(node.get("option_groups"), list):
        _check_options(node, _MAX_OPTIONS.get(str(kind), 100), where)
    for key, value in node.items():
        if key not in ("options", "option_groups", "initial_option", "initial_options"):
            _check_elements(value, f"{where}/{key}")


def _check_options(menu: Params, limit: int, where: str) -> None:
    groups = menu.get("option_groups")
    if isinstance(groups, list):
        if len(groups) > limit:
            raise _invalid_blocks(f"no more than {limit} items allowed [{where}/option_groups]")
        for n, group in enumerate(groups):
            _check_length(group, "label", 75, f"{where}/option_groups/{n}")
            _check_options(group, 100, f"{where}/option_groups/{n}")
        return
    options = menu.get("options") or []
    if len(options) > limit:
        raise _invalid_blocks(f"no more than {limit} items allowed [{where}/options]")
    for n, option in enumerate(options):
        for field, most in _OPTION_LIMITS:
            _check_length(option, field, most, f"{where}/options/{n}")


def _check_length(node: Any, field: str, limit: int, where: str) -> None:
    value = node.get(field) if isinstance(node, dict) else None
    text = value.get("text", "") if isinstance(value, dict) else value
    if text is not None and len(str(text)) > limit:
        raise _invalid_blocks(
            f"must be less than {limit + 1} characters [json-pointer:{where}/{field}]"
        )


def _texts(node: Any) -> list[str]:
    """Every text object's text in some blocks."""
    if isinstance(node, list):
        return [text for item in node for text in _texts(item)]
    if not isinstance(node, dict):
        return []
    own = [str(node["text"])] if node.get("type") in ("mrkdwn", "plain_text") else []
    return own + [text for value in node.values() for text in _texts(value)]


def _check_metadata(metadata: Any) -> Params | None:
    if metadata in (None, ""):
        return None
    if (
        not isinstance(metadata, dict)
        or not isinstance(metadata.get("event_type"), str)
        or not isinstance(metadata.get("event_payload"), dict)
    ):
        raise _SlackError("invalid_metadata_format")
    return metadata


def _check_view(view: Any) -> None:
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        raise _SlackError("invalid_arguments")
    _check_blocks(view.get("blocks", []), limit=100)
    if len(str(view.get("private_metadata") or "")) > 3000:
        raise _SlackError(
            "invalid_arguments",
            response_metadata={
                "messages": [
                    "[ERROR] must be less than 3001 characters "
                    "[json-pointer:/view/private_metadata]"
                ]
            },
        )
    title = view.get("title")
    if view["type"] == "modal" and (
        not isinstance(title, dict) or not 0 < len(str(title.get("text", ""))) <= 24
    ):
        raise _SlackError(
            "invalid_arguments",
            response_metadata={
                "messages": [
                    "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]"
                ]
            },
        )


def _ts_value(ts: Any) -> Decimal:
    try:
        return Decimal(str(ts))
    except InvalidOperation:
        raise _SlackError("invalid_ts_latest") from None


def _in_window(ts: str, p: Params) -> bool:
    """Slack's oldest/latest filter: bounds excluded unless `inclusive`."""
    value = Decimal(ts)
    inclusive = _flag(p.get("inclusive"))
    oldest, latest = p.get("oldest"), p.get("latest")
    if oldest not in (None, ""):
        low = _ts_value(oldest)
        if value < low or (value == low and not inclusive):
            return False
    if latest not in (None, ""):
        high = _ts_value(latest)
        if value > high or (value == high and not inclusive):
            return False
    return True


def _paginate(items: list[Any], p: Params, default_limit: int) -> tuple[list[Any], str]:
    limit = int(p.get("limit") or default_limit)
    if limit <= 0:
        limit = default_limit
    cursor = str(p.get("cursor") or "")
    offset = 0
    if cursor:
        try:
            offset = int(base64.b64decode(cursor).decode().removeprefix("offset:"))
        except ValueError:
            raise _SlackError("invalid_cursor") from None
    end = offset + limit
    next_cursor = base64.b64encode(f"offset:{end}".encode()).decode() if end < len(items) else ""
    return items[offset:end], next_cursor


def _summary(calls: list[Call]) -> str:
    if not calls:
        return "  (no calls)"
    lines = []
    for call in calls[-50:]:
        outcome = (
            "ok" if call.response.get("ok") else call.response.get("error", f"HTTP {call.status}")
        )
        where = call.params.get("channel") or call.params.get("channel_id") or ""
        text = str(call.params.get("text") or "")[:60]
        lines.append(f"  {call.method} {where} {outcome} {text!r}".rstrip())
    if len(calls) > 50:
        lines.insert(0, f"  ... {len(calls) - 50} earlier calls")
    return "\n".join(lines)
