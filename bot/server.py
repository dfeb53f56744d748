"""HTTP mode under waitress (a production WSGI server): /slack/events, /healthz, OAuth paths."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import text
from waitress import wasyncore
from waitress.server import create_server

from bot.runtime import Runtime
from bot.screening import MAX_BODY, RefusedSignatures, screen
from bot.store.db import REQUEST_THREADS

log = logging.getLogger(__name__)
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def make_wsgi(
    app: App, runtime: Runtime
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    slack = SlackRequestHandler(app, path="/slack/events")
    refusals = RefusedSignatures()

    def healthz(start_response: StartResponse) -> Iterable[bytes]:
        try:
            with runtime.db.engine.connect() as conn:
                # PostgreSQL may answer and take no writes (a failover onto a standby, a full
                # disk on a managed server): no event could be stored, as when it is down.
                asked = "SHOW transaction_read_only" if runtime.db.is_postgres else "SELECT 1"
                read_only = conn.execute(text(asked)).scalar() == "on"
            status, body = "200 OK", {"ok": True, "database": "ok"}
            if read_only:
                status, body = "503 Service Unavailable", {"ok": False, "database": "read-only"}
            elif runtime.clock_watch is not None:
                # Still a 200: a web process is fine without the clock, and a platform's health
                # check would restart it or send Slack's requests elsewhere, which helps no one.
                body["clock"] = "missing" if runtime.clock_watch.missing else "running"
        except Exception:
            status, body = "503 Service Unavailable", {"ok": False, "database": "unreachable"}
        payload = json.dumps(body).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        )
        return [payload]

    def wsgi(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO"), environ.get("REQUEST_METHOD")
        if path == "/healthz" and method in ("GET", "HEAD"):  # uptime checkers send either
            return healthz(start_response)
        if path == "/slack/events" and method == "POST":
            verdict = screen(environ, runtime.settings.slack_signing_secret or "")
            if verdict is not None and verdict.status.startswith("401"):
                refusals.refused(environ)
            if verdict is not None:
                start_response(
                    verdict.status,
                    [
                        ("Content-Type", verdict.content_type),
                        ("Content-Length", str(len(verdict.body))),
                    ],
                )
                return [verdict.body]
            foreground = runtime.foreground
            foreground.begin()

            def answer(status: str, headers: Any, exc_info: Any = None) -> Any:
                if status.startswith("401"):
                    refusals.refused(environ)
                return start_response(status, headers, exc_info)

            try:
                body = slack(environ, answer)
            except BaseException:
                foreground.end()
                raise
            # In flight until waitress has written it and closed the body.
            return foreground.answer(body)
        return slack(environ, start_response)

    return wsgi


def make_server(app: App, runtime: Runtime, host: str = "0.0.0.0", port: int = 3000) -> Any:
    """A waitress server; .run() serves until .close(). port=0 picks a free one."""
    return create_server(
        make_wsgi(app, runtime),
        host=host,
        port=port,
        threads=REQUEST_THREADS,
        ident="protocolbot",
        clear_untrusted_proxy_headers=True,
        max_request_body_size=MAX_BODY,
    )


class BackgroundServer:
    """A waitress server on its own thread, stopped cleanly from another one."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.port: int = server.effective_port
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)

    def _run(self) -> None:
        try:
            self.server.run()
        except (OSError, ValueError):
            # Closing the listening socket under a running select() ends the loop this way.
            if not self._closing:
                raise

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let the requests in flight be answered, then close everything."""
        self._closing = True
        server = self.server
        # The socket belongs to the server's loop thread: close it from there.
        server.trigger.pull_trigger(lambda: wasyncore.dispatcher.close(server))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._busy():
            time.sleep(0.02)
        # If the loop already ended (nothing left to serve), it closed its trigger with it.
        with contextlib.suppress(OSError):
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        self._thread.join(max(0.1, deadline - time.monotonic()))
        server.task_dispatcher.shutdown(timeout=max(0.1, deadline - time.monotonic()))

    def _busy(self) -> bool:
        """A request is queued, being handled, or its answer not yet fully sent."""
        tasks = self.server.task_dispatcher
        if tasks.queue or tasks.active_count > 0:
            return True
        channels = list(self.server.active_channels.values())
        return any(c.requests or c.total_outbufs_len > 0 for c in channels)
