"""HTTP mode under waitress (a production WSGI server): /slack/events, /healthz, OAuth paths."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import text
from waitress.server import create_server

from bot.runtime import Runtime

log = logging.getLogger(__name__)
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def make_wsgi(
    app: App, runtime: Runtime
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    slack = SlackRequestHandler(app, path="/slack/events")

    def healthz(start_response: StartResponse) -> Iterable[bytes]:
        try:
            with runtime.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            status, body = "200 OK", {"ok": True, "database": "ok"}
        except Exception:
            status, body = "503 Service Unavailable", {"ok": False, "database": "unreachable"}
        payload = json.dumps(body).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        )
        return [payload]

    def wsgi(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") == "GET":
            return healthz(start_response)
        return slack(environ, start_response)

    return wsgi


def make_server(app: App, runtime: Runtime, host: str = "0.0.0.0", port: int = 3000) -> Any:
    """A waitress server; .run() serves until .close(). port=0 picks a free one."""
    return create_server(
        make_wsgi(app, runtime),
        host=host,
        port=port,
        threads=16,
        ident="protocolbot",
        clear_untrusted_proxy_headers=True,
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
        self._closing = True
        self.server.close()
        self._thread.join(timeout)
