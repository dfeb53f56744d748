"""The baseline, the floor for an ack: a Bolt App whose listeners only ack, on the same waitress
setup and adapter as ours.

Run as `python -m bench.bare --port N --slack-api-url URL`; serves /slack/events and /healthz
until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from waitress.server import create_server

from bench.signing import SECRET, TOKEN

StartResponse = Callable[..., Any]


def bolt_app(slack_api_url: str, secret: str = SECRET, name: str = "bench.bare") -> App:
    """An App with bot.app.build_app's options and no listeners yet.

    Like ours, its client points at the Slack stand-in: Bolt calls auth.test once, then caches it.
    """
    return App(
        signing_secret=secret,
        client=WebClient(token=TOKEN, base_url=slack_api_url, timeout=10),
        process_before_response=True,
        token_verification_enabled=False,
        logger=logging.getLogger(name),
    )


def build_bare_app(slack_api_url: str, secret: str = SECRET) -> App:
    """Every listener acks and does nothing else."""
    app = bolt_app(slack_api_url, secret)

    @app.command("/protocol")
    def command(ack: Ack) -> None:
        ack()

    @app.event(re.compile(".*"))
    def event(ack: Ack) -> None:
        ack()

    return app


def make_bare_server(app: App, host: str = "127.0.0.1", port: int = 0) -> Any:
    """waitress with bot.server.make_server's settings, routing /healthz and /slack/events."""
    slack = SlackRequestHandler(app, path="/slack/events")
    ok = json.dumps({"ok": True}).encode()

    def wsgi(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") == "GET":
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(ok)))]
            )
            return [ok]
        return slack(environ, start_response)

    return create_server(
        wsgi,
        host=host,
        port=port,
        threads=16,
        ident="protocolbot",
        clear_untrusted_proxy_headers=True,
    )


def serve(app: App, host: str, port: int) -> None:
    """Serve `app` until SIGTERM or SIGINT."""
    server = make_bare_server(app, host, port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.run, name="http", daemon=True)
    thread.start()
    stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--slack-api-url", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    serve(build_bare_app(args.slack_api_url), args.host, args.port)


if __name__ == "__main__":
    main()
