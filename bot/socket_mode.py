"""Socket Mode: Bolt's handler on slack_sdk's built-in client, connecting again as soon as Slack
ends a link.

The built-in client reads a link Slack has ended (TCP closed, no close frame: a load balancer
or a server going away) as "no data yet": its reader spins on the closed socket, and only its
pings find out, after five failures ten seconds apart, each logged as an ERROR. Nothing Slack
sent reached the bot meanwhile. Here the end of the stream ends the link, and a link that ended
(that way, by Slack's close frame, or by an error) is replaced at once; a replacement Slack
refuses is left to the client's own monitor, which tries again every `ping_interval`.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler as BoltSocketModeHandler
from slack_sdk.socket_mode.builtin import SocketModeClient

log = logging.getLogger(__name__)

PING_SECONDS = 10.0


class LinkEnded(ConnectionResetError):
    """Slack ended the link: the stream reached its end."""

    def __init__(self) -> None:
        super().__init__(errno.ECONNRESET, "Slack ended the Socket Mode connection")


class _EndAware:
    """A link's socket whose end of stream raises LinkEnded instead of reading as no data."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def recv(self, size: int, *flags: int) -> bytes:
        data: bytes = self._sock.recv(size, *flags)
        if not data and size:
            raise LinkEnded()
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Client(SocketModeClient):
    def connect(self) -> None:
        super().connect()
        session = self.current_session
        if session is not None and session.sock is not None:
            session.sock = _EndAware(session.sock)  # type: ignore[assignment]

    def _on_error(self, error: Exception) -> None:
        if isinstance(error, LinkEnded):
            log.info("Slack ended the Socket Mode connection: connecting again")
            return
        super()._on_error(error)

    def _run_current_session(self) -> None:
        # The client's own run set its link's state back to running as it began: a link
        # swapped meanwhile (a reconnect) left it reading a state no close() would end, and
        # stopping the bot hung. This one never does so.
        session, state = self.current_session, self.current_session_state
        if session is None or not session.is_active():
            return
        try:
            session.run_until_completion(state)
        except Exception as error:
            log.warning("the Socket Mode link failed: %s", type(error).__name__)
        if self.closed or not self.auto_reconnect_enabled:
            return
        if self.current_session is session and not session.is_active():
            self.connect_to_new_endpoint()

    def connect_to_new_endpoint(self, force: bool = False) -> None:
        # Called for Slack's `disconnect` too, where a failure went up as a stack trace.
        try:
            super().connect_to_new_endpoint(force)
        except Exception as error:
            log.warning(
                "could not connect to Slack again (%s): trying again once the link ends, or in "
                "%.0f s",
                type(error).__name__,
                self.ping_interval,
            )


class SocketModeHandler(BoltSocketModeHandler):
    """Bolt's Socket Mode handler (slack_bolt.adapter.socket_mode) on the client above."""

    def __init__(self, app: App, app_token: str, ping_interval: float = PING_SECONDS) -> None:
        self.app = app
        self.app_token = app_token
        self.client = _Client(
            app_token=app_token,
            logger=app.logger,
            web_client=app.client,
            proxy=app.client.proxy,
            ping_interval=ping_interval,
        )
        self.client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]
