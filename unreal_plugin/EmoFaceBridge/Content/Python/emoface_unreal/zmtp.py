"""A ZeroMQ SUB client in plain Python (ZMTP 3.0, NULL security), for editors without pyzmq.

pyzmq is a compiled package that the editor's Python does not ship; this speaks just enough of
the ZeroMQ wire protocol (https://rfc.zeromq.org/spec/23/) to subscribe to the bridge's PUB
socket over TCP:

1. greeting, 64 bytes each way: ``FF 00*8 7F``, version 3.0, mechanism "NULL", as-server 0;
2. each side sends a READY command with its ``Socket-Type`` (we are "SUB", the peer "PUB");
3. we send one subscription message per topic: ``01`` + topic prefix (ZMTP 3.0 style, which
   libzmq accepts from a 3.0 peer);
4. the peer sends multipart messages as frames: a flags byte (``01`` more, ``02`` long size,
   ``04`` command), a 1- or 8-byte size, then the body. Commands (e.g. PING) are skipped.

It connects to one endpoint; the owner reconnects when ``recv_multipart`` raises ``OSError``.
"""

from __future__ import annotations

import socket
import struct
import time

SIGNATURE = b"\xff" + b"\x00" * 8 + b"\x7f"
GREETING = SIGNATURE + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31  # 64 bytes
FLAG_MORE = 0x01
FLAG_LONG = 0x02
FLAG_COMMAND = 0x04
MAX_FRAME_BYTES = 16 * 1024 * 1024  # a protocol message is far smaller; refuse absurd sizes


class ZmtpError(OSError):
    """The peer is not a ZeroMQ PUB socket speaking ZMTP 3.x, or the connection broke."""


def _command(name: bytes, body: bytes = b"") -> bytes:
    payload = bytes([len(name)]) + name + body
    if len(payload) > 255:
        return bytes([FLAG_COMMAND | FLAG_LONG]) + struct.pack(">Q", len(payload)) + payload
    return bytes([FLAG_COMMAND, len(payload)]) + payload


def _property(name: bytes, value: bytes) -> bytes:
    return bytes([len(name)]) + name + struct.pack(">I", len(value)) + value


def _frame(body: bytes, more: bool = False) -> bytes:
    flags = FLAG_MORE if more else 0
    if len(body) > 255:
        return bytes([flags | FLAG_LONG]) + struct.pack(">Q", len(body)) + body
    return bytes([flags, len(body)]) + body


def parse_ready(body: bytes) -> dict[str, bytes]:
    """Properties of a READY command body (after the command name).

    Raises:
        ZmtpError: malformed properties.
    """
    props: dict[str, bytes] = {}
    offset = 0
    while offset < len(body):
        n = body[offset]
        name = body[offset + 1 : offset + 1 + n]
        offset += 1 + n
        if offset + 4 > len(body):
            raise ZmtpError("malformed READY property")
        (size,) = struct.unpack_from(">I", body, offset)
        offset += 4
        if offset + size > len(body):
            raise ZmtpError("malformed READY property value")
        props[name.decode("ascii", "replace").lower()] = body[offset : offset + size]
        offset += size
    return props


class ZmtpSubscriber:
    """Connects to a PUB socket at ``tcp://HOST:PORT`` and yields its multipart messages.

    Args:
        host: the publisher's host.
        port: its TCP port.
        topics: subscription prefixes (``b""`` receives everything).
        timeout_s: connect and handshake timeout.
    """

    def __init__(
        self, host: str, port: int, topics: list[bytes], *, timeout_s: float = 2.0
    ) -> None:
        self.host = host
        self.port = port
        self.topics = list(topics) or [b""]
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._parts: list[bytes] = []

    def connect(self) -> None:
        """Connect, handshake and subscribe.

        Raises:
            OSError: the connection failed (``ConnectionRefusedError`` when nothing listens).
            ZmtpError: the peer is not a ZMTP 3 PUB socket.
        """
        self.close()
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._buf.clear()
        self._parts = []
        try:
            sock.sendall(GREETING)
            greeting = self._read_exact(64, time.monotonic() + self.timeout_s)
            if greeting[0] != 0xFF or greeting[9] != 0x7F or greeting[10] < 3:
                raise ZmtpError(f"{self.host}:{self.port} is not a ZMTP 3 peer")
            if greeting[12:32].rstrip(b"\x00") != b"NULL":
                raise ZmtpError("the publisher uses a security mechanism; only NULL is supported")
            sock.sendall(_command(b"READY", _property(b"Socket-Type", b"SUB")))
            name, body = self._read_command(time.monotonic() + self.timeout_s)
            if name == b"ERROR":
                raise ZmtpError(
                    f"publisher refused the connection: {body[1:].decode('utf-8', 'replace')}"
                )
            if name != b"READY":
                raise ZmtpError(f"expected READY from the publisher, got {name!r}")
            socket_type = parse_ready(body).get("socket-type", b"")
            if socket_type not in (b"PUB", b"XPUB"):
                raise ZmtpError(
                    f"peer is a {socket_type.decode('ascii', 'replace')} socket, not PUB"
                )
            for topic in self.topics:
                sock.sendall(_frame(b"\x01" + topic))
        except BaseException:
            self.close()
            raise

    @property
    def connected(self) -> bool:
        """Whether a connection is up."""
        return self._sock is not None

    def close(self) -> None:
        """Drop the connection (safe to call twice)."""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def recv_multipart(self, timeout_s: float) -> list[bytes] | None:
        """The next complete message, or None when none arrived within ``timeout_s``.

        Raises:
            OSError: the connection broke (call ``connect`` again).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            frame = self._next_frame()
            if frame is not None:
                flags, body = frame
                if flags & FLAG_COMMAND:
                    continue  # PING and friends: nothing a subscriber must answer in 3.0
                self._parts.append(body)
                if not flags & FLAG_MORE:
                    parts, self._parts = self._parts, []
                    return parts
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._fill(remaining)

    def _fill(self, timeout_s: float) -> bool:
        if self._sock is None:
            raise ZmtpError("not connected")
        self._sock.settimeout(max(timeout_s, 0.001))
        try:
            chunk = self._sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return False
        if not chunk:
            self.close()
            raise ConnectionResetError(
                f"publisher at {self.host}:{self.port} closed the connection"
            )
        self._buf += chunk
        return True

    def _next_frame(self) -> tuple[int, bytes] | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        flags = buf[0]
        if flags & ~(FLAG_MORE | FLAG_LONG | FLAG_COMMAND):
            self.close()
            raise ZmtpError(f"bad ZMTP frame flags {flags:#04x}")
        if flags & FLAG_LONG:
            if len(buf) < 9:
                return None
            (size,) = struct.unpack_from(">Q", buf, 1)
            head = 9
        else:
            size, head = buf[1], 2
        if size > MAX_FRAME_BYTES:
            self.close()
            raise ZmtpError(f"ZMTP frame of {size} bytes is over the {MAX_FRAME_BYTES}-byte limit")
        if len(buf) < head + size:
            return None
        body = bytes(buf[head : head + size])
        del buf[: head + size]
        return flags, body

    def _read_exact(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ZmtpError(f"{self.host}:{self.port}: handshake timed out")
            self._fill(remaining)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _read_command(self, deadline: float) -> tuple[bytes, bytes]:
        while True:
            frame = self._next_frame()
            if frame is not None:
                flags, body = frame
                if not flags & FLAG_COMMAND or not body:
                    raise ZmtpError("expected a command frame during the handshake")
                n = body[0]
                return body[1 : 1 + n], body[1 + n :]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ZmtpError(f"{self.host}:{self.port}: handshake timed out")
            self._fill(remaining)
