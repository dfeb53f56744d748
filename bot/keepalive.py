"""slack_sdk's WebClient, and its WebhookClient (answers to a command's response_url), on
kept-alive connections: one per thread and host, reused call to call and shared by every client
(each workspace's token has one; each command its own response_url on the same host).

slack_sdk's synchronous client opens a connection (and, against Slack, a TLS session) for every
call. The outbox makes one call per post and per tag reaction, ~170 a second with 10,000
sessions on one-minute steps. Against the plain-HTTP stand-in on loopback a call costs the caller
210-240 us of CPU on a kept-alive connection and 345-350 us on a new one; against Slack each new
connection is also a TLS handshake.

Only how the request travels changes: slack_sdk still builds it, and still reads the answer,
raises its errors and applies its retry handlers. A connection the server closed while idle is
noticed before a request goes out on it and replaced. A failure once a request has been sent is
raised as it is: the call may have reached Slack, and the outbox treats it as unsure (it looks for
the post before repeating it). A connection left idle for IDLE_SECONDS is not reused: a firewall
or NAT on the way may have forgotten it without a word, and a call on it would only time out.
"""

from __future__ import annotations

import functools
import http.client
import io
import select
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request

from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient, WebhookResponse

if TYPE_CHECKING:
    from slack_bolt import Respond

IDLE_SECONDS = 20.0
RESPOND_TIMEOUT = 10  # seconds: an answer is worth nothing to someone who has given up waiting


# scheme, host, port, timeout, TLS context: what a connection is made with
_Key = tuple[str, str, int, float | None, ssl.SSLContext | None]


class _Connections(threading.local):
    def __init__(self) -> None:
        self.open: dict[_Key, http.client.HTTPConnection] = {}
        self.last_used: dict[_Key, float] = {}


# Every client's, per thread. A connection carries no token (each request names its own), so
# the clients of many workspaces (OAuth: one a call, see bot/oauth.py) share a thread's
# connection to Slack instead of each opening, and shaking hands on, one of their own.
_SHARED = _Connections()


@functools.cache
def _default_tls() -> ssl.SSLContext:
    """Made at the first connection to Slack that needs it, not at import: loading the system's
    certificates is a tenth of a second or more of every start, before the bot can answer."""
    return ssl.create_default_context()


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """An idle kept-alive socket that is readable was closed (or spoken to) by the server."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class _KeptAlive:
    """The connection handling both clients share; `timeout`, `ssl` and `proxy` are theirs."""

    timeout: int
    ssl: ssl.SSLContext | None
    proxy: str | None

    def __init__(
        self,
        *args: Any,
        idle_seconds: float = IDLE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)  # the client's own
        self.idle_seconds, self._monotonic = idle_seconds, monotonic
        self._connections = _SHARED

    def _key(self, scheme: str, host: str, port: int) -> _Key:
        return (scheme, host, port, self.timeout, self.ssl)  # None: the shared default

    def _connection(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        key = self._key(scheme, host, port)
        connection = self._connections.open.get(key)
        now = self._monotonic()
        idle = now - self._connections.last_used.get(key, now)
        if connection is not None and (idle > self.idle_seconds or _dropped(connection)):
            connection.close()
            connection = None
        self._connections.last_used[key] = now
        if connection is None:
            if scheme == "https":
                connection = http.client.HTTPSConnection(
                    host, port, timeout=self.timeout, context=self.ssl or _default_tls()
                )
            else:
                connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
            self._connections.open[key] = connection
        return connection

    def _forget(self, scheme: str, host: str, port: int) -> None:
        connection = self._connections.open.pop(self._key(scheme, host, port), None)
        if connection is not None:
            connection.close()

    def _exchange(self, url: str, req: Request) -> tuple[http.client.HTTPResponse, bytes] | None:
        """Send the request on the thread's connection; None when this one can't go that way
        (a proxy, another scheme): the caller sends it as slack_sdk would. An HTTP error status
        is raised as urllib raises it, with the body to read."""
        parts = urlsplit(url)
        if self.proxy is not None or parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        scheme, host = parts.scheme, parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        body = req.data if isinstance(req.data, bytes) else None  # slack_sdk sends bytes or nothing
        connection = self._connection(scheme, host, port)
        try:
            connection.request(req.get_method(), path, body=body, headers=dict(req.header_items()))
            response = connection.getresponse()
            data = response.read()
        except http.client.HTTPException as exc:
            self._forget(scheme, host, port)
            raise URLError(exc) from exc
        except OSError:
            self._forget(scheme, host, port)
            raise
        if response.will_close:
            self._forget(scheme, host, port)
        if response.status >= 400:
            raise HTTPError(
                url, response.status, response.reason, response.headers, io.BytesIO(data)
            )
        return response, data


def _text(response: http.client.HTTPResponse, data: bytes) -> str:
    return data.decode(response.headers.get_content_charset() or "utf-8")


class KeepAliveWebClient(_KeptAlive, WebClient):
    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        exchanged = self._exchange(url, req)
        if exchanged is None:
            return super()._perform_urllib_http_request_internal(url, req)
        response, data = exchanged
        headers = response.headers
        if headers.get_content_type() == "application/gzip":
            return {"status": response.status, "headers": headers, "body": data}
        return {"status": response.status, "headers": headers, "body": _text(response, data)}


class KeepAliveWebhookClient(_KeptAlive, WebhookClient):
    """Answers to response_urls (all on Slack's one host) on the thread's kept-alive connection:
    a `/protocol status` answer costs no new connection, nor, against Slack, a TLS handshake."""

    def _perform_http_request_internal(self, url: str, req: Request) -> WebhookResponse:
        exchanged = self._exchange(url, req)
        if exchanged is None:
            return super()._perform_http_request_internal(url, req)  # type: ignore[no-any-return]
        response, data = exchanged
        return WebhookResponse(
            url=url,
            status_code=response.status,
            body=_text(response, data),
            headers=dict(response.headers.items()),
        )


def answer_to(respond: Respond) -> KeepAliveWebhookClient:
    """A command's response_url (Bolt's `respond`), over the thread's kept-alive connection."""
    return KeepAliveWebhookClient(
        str(respond.response_url), proxy=respond.proxy, ssl=respond.ssl, timeout=RESPOND_TIMEOUT
    )
