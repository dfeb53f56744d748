"""Socket Mode for the Slack stand-in: the WebSocket apps.connections.open hands out, served by
the stand-in's own HTTP server, sending envelopes as Slack does and recording the acks."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's, for Sec-WebSocket-Accept
_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA


@dataclass
class Ack:
    """What the app answered an envelope: its id, the optional payload, when."""

    envelope_id: str
    payload: dict[str, Any] | None
    at: float
    link: int


@dataclass
class Link:
    """One open Socket Mode connection."""

    number: int
    sock: socket.socket
    opened_at: float
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    open: bool = True

    def send_text(self, text: str) -> None:
        self._send(_TEXT, text.encode())

    def _send(self, opcode: int, data: bytes) -> None:
        header = bytes([0x80 | opcode])
        if len(data) < 126:
            header += bytes([len(data)])
        elif len(data) < 1 << 16:
            header += bytes([126]) + struct.pack("!H", len(data))
        else:
            header += bytes([127]) + struct.pack("!Q", len(data))
        with self.send_lock:
            self.sock.sendall(header + data)

    def drop(self) -> None:
        """End the TCP connection without a close frame (a network fault, a server gone)."""
        self.open = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class SocketModeLinks:
    """The Socket Mode side of the stand-in: every link opened, every envelope sent and ack."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self.links: list[Link] = []
        self.acks: list[Ack] = []
        self.sent: dict[str, tuple[float, int]] = {}  # envelope_id -> (when, link)
        self.payloads: dict[str, dict[str, Any]] = {}  # envelope_id -> payload
        # Called with each envelope the app acked, before the ack is recorded.
        self.on_ack: list[Callable[[Ack], None]] = []

    # -- the server side -------------------------------------------------------------------
    def serve(self, connection: socket.socket, key: str, rfile: Any, wfile: Any) -> None:
        """Upgrade a GET on the link's address, say hello, then read until the link ends."""
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        wfile.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        wfile.flush()
        with self._lock:
            link = Link(len(self.links) + 1, connection, time.monotonic())
            self.links.append(link)
            self._lock.notify_all()
        hello = {
            "type": "hello",
            "num_connections": sum(1 for x in self.links if x.open),
            "debug_info": {"host": "standin", "approximate_connection_time": 18060},
            "connection_info": {"app_id": "A_APP"},
        }
        try:
            link.send_text(json.dumps(hello))
            self._read(link, rfile)
        except (OSError, ValueError):
            pass
        finally:
            link.open = False
            with self._lock:
                self._lock.notify_all()

    def _read(self, link: Link, rfile: Any) -> None:
        while link.open:
            head = rfile.read(2)
            if len(head) < 2:
                return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", rfile.read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", rfile.read(8))
            mask = rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(rfile.read(length)))
            if opcode == _PING:
                link._send(_PONG, data)
            elif opcode == _CLOSE:
                with contextlib.suppress(OSError):
                    link._send(_CLOSE, data[:2])
                return
            elif opcode == _TEXT:
                self._received(link, json.loads(data.decode()))

    def _received(self, link: Link, message: dict[str, Any]) -> None:
        if "envelope_id" not in message:
            return
        envelope_id = str(message["envelope_id"])
        ack = Ack(envelope_id, message.get("payload"), time.monotonic(), link.number)
        for listener in list(self.on_ack):
            listener(ack)
        with self._lock:
            self.acks.append(ack)
            self._lock.notify_all()

    # -- what a test does ------------------------------------------------------------------
    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        with self._lock:
            if not self._lock.wait_for(predicate, timeout):
                raise AssertionError(
                    f"Socket Mode stand-in: condition not met within {timeout}s "
                    f"({len(self.links)} links, {len(self.acks)} acks)"
                )

    def open_links(self) -> list[Link]:
        with self._lock:
            return [x for x in self.links if x.open]

    def wait_connected(self, count: int = 1, timeout: float = 15.0) -> Link:
        """The newest open link, once `count` links have been opened in all."""
        self.wait(lambda: len(self.links) >= count and any(x.open for x in self.links), timeout)
        return self.open_links()[-1]

    def send(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        link: Link | None = None,
        envelope_id: str | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> str:
        """Send an envelope (`events_api`, `slash_commands`, `interactive`) on `link` (the
        newest open one); its envelope_id."""
        link = link or self.wait_connected()
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = retry_reason or ""
        with self._lock:
            self.sent[envelope_id] = (time.monotonic(), link.number)
            self.payloads[envelope_id] = payload
        link.send_text(json.dumps(envelope))
        return envelope_id

    def disconnect(self, reason: str = "refresh_requested", link: Link | None = None) -> Link:
        """Ask the app to reconnect, as Slack does before it closes a link."""
        link = link or self.wait_connected()
        link.send_text(
            json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "standin"}})
        )
        return link

    def ack_of(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        self.wait(lambda: any(a.envelope_id == envelope_id for a in self.acks), timeout)
        with self._lock:
            return next(a for a in self.acks if a.envelope_id == envelope_id)

    def close_all(self) -> None:
        for link in self.open_links():
            link.drop()
