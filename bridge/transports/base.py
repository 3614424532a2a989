"""The ``Sender`` interface every transport implements, and address parsing shared by them.

A sender is subject-agnostic: every message names its subject, so one sender serves any number
of NPCs. Senders never block and never raise on a single frame: a frame that cannot go out now is
dropped and counted (``stats.n_dropped``), an unexpected socket error is counted
(``stats.n_errors``) and logged once. ``frame.values`` is only borrowed: the streamer reuses its
buffers, so a sender must encode (copy) the values before ``send_frame`` returns.
"""

from __future__ import annotations

import logging
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bridge.errors import NotConnectedError, TransportError
from bridge.protocol import Frame, ProtocolError, Schema, StreamEnd, StreamStart

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"  # loopback unless the user asks for more


@dataclass
class SenderStats:
    """Counters of one sender.

    Attributes:
        n_frames: frames handed to the network.
        n_dropped: frames dropped because the transport could not take them now.
        n_nonfinite: frames refused because a value was NaN or infinite.
        n_control: schema/start/end messages sent.
        n_errors: socket and encoding errors (each also drops its message).
        n_bytes: bytes handed to the network.
    """

    n_frames: int = 0
    n_dropped: int = 0
    n_nonfinite: int = 0
    n_control: int = 0
    n_errors: int = 0
    n_bytes: int = 0


class Sender(ABC):
    """A transport that sends protocol messages; use as ``with ZmqSender(...) as s: ...``."""

    kind: ClassVar[str] = ""
    # The mapping this transport needs whatever the stream's mapping is (Live Link: ARKit names).
    required_mapping: ClassVar[str | None] = None

    def __init__(self) -> None:
        self.stats = SenderStats()
        self._opened = False
        self._errors_logged: set[str] = set()

    @property
    @abstractmethod
    def address(self) -> str:
        """Where messages go, e.g. ``tcp://127.0.0.1:5555`` or ``127.0.0.1:9000``."""

    def open(self) -> Sender:
        """Create the socket. Returns self.

        Raises:
            TransportError: the endpoint is invalid, in use or unresolvable.
        """
        if not self._opened:
            self._open()
            self._opened = True
        return self

    def close(self) -> None:
        """Close the socket; safe to call twice."""
        if self._opened:
            self._opened = False
            self._close()

    def __enter__(self) -> Sender:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_schema(self, schema: Schema) -> bool:
        """Announce (or re-announce) a subject's target names. Returns whether it went out."""
        return self._control(self._send_schema, schema)

    def send_start(self, start: StreamStart) -> bool:
        """Announce a new line. Returns whether it went out."""
        return self._control(self._send_start, start)

    def send_end(self, end: StreamEnd) -> bool:
        """Announce the end of a line. Returns whether it went out."""
        return self._control(self._send_end, end)

    def send_frame(self, frame: Frame) -> bool:
        """Send one frame without blocking. Returns False when it was dropped.

        A frame holding NaN or infinity is never sent (counted in ``n_nonfinite``): no
        non-finite value crosses the wire, whatever produced it.
        """
        self._check_open()
        if not np.isfinite(frame.values).all():
            self.stats.n_nonfinite += 1
            self._warn_once("a frame with NaN or infinite values was dropped (counted)")
            return False
        try:
            n_bytes = self._send_frame(frame)
        except (OSError, ProtocolError) as e:
            self._count_error(e)
            return False
        if n_bytes is None:
            self.stats.n_dropped += 1
            return False
        self.stats.n_frames += 1
        self.stats.n_bytes += n_bytes
        return True

    def _control(self, send: Callable[[Any], int | None], message: object) -> bool:
        self._check_open()
        try:
            n_bytes = send(message)
        except (OSError, ProtocolError) as e:  # e.g. START info that is not strict JSON
            self._count_error(e)
            return False
        if n_bytes is None:
            return False
        self.stats.n_control += 1
        self.stats.n_bytes += n_bytes
        return True

    def _check_open(self) -> None:
        if not self._opened:
            raise NotConnectedError(f"{self.kind} sender to {self.address} is not open")

    def _count_error(self, error: Exception) -> None:
        self.stats.n_errors += 1
        self._warn_once(f"{error} (counted, not raised)")

    def _warn_once(self, message: str) -> None:
        if message not in self._errors_logged:  # once per message, not 60 times a second
            self._errors_logged.add(message)
            log.warning("%s sender to %s: %s", self.kind, self.address, message)

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _send_schema(self, schema: Schema) -> int | None: ...

    @abstractmethod
    def _send_start(self, start: StreamStart) -> int | None: ...

    @abstractmethod
    def _send_end(self, end: StreamEnd) -> int | None: ...

    @abstractmethod
    def _send_frame(self, frame: Frame) -> int | None:
        """Send; return the byte count, or None when the frame was dropped (not an error)."""


def parse_host_port(
    text: str, default_port: int, *, default_host: str = DEFAULT_HOST
) -> tuple[str, int]:
    """Parse ``HOST:PORT``, ``:PORT``, ``PORT`` or ``HOST`` (IPv6 as ``[::1]:PORT``).

    Raises:
        ValueError: the port is not an integer in 0..65535.
    """
    text = text.strip()
    host, port_text = default_host, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: unclosed '[' in IPv6 address")
        host = text[1:end]
        port_text = text[end + 2 :] if text[end + 1 : end + 2] == ":" else ""
    elif text.count(":") == 1:
        host_part, port_text = text.split(":")
        host = host_part or default_host
    elif text.isdigit():
        port_text = text
    elif text:
        host = text
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(
            f"port must be an integer between 0 and 65535, but {port_text!r} is provided"
        )
    return host, int(port_text)


def resolve_udp(host: str, port: int) -> tuple[int, tuple]:
    """Resolve a UDP destination to ``(address family, sockaddr)``.

    Raises:
        TransportError: the host does not resolve.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as e:
        raise TransportError(f"cannot resolve UDP host {host!r}: {e}") from e
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def _local_address_for(family: int, dest: tuple) -> str:
    """The local address the OS sends to ``dest`` from (connecting a UDP probe sends nothing)."""
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.connect(dest)
        return str(probe.getsockname()[0])
    finally:
        probe.close()


class UdpSender(Sender, ABC):
    """Shared plumbing of the datagram transports (OSC, Live Link): a non-blocking UDP socket."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self._sock: socket.socket | None = None
        self._dest: tuple | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the destination."""
        return f"{self.host}:{self.port}"

    def _open(self) -> None:
        family, self._dest = resolve_udp(self.host, self.port)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            # Bind to the interface the destination is reached through (loopback for a local
            # receiver), never to every interface as an unbound socket's first send would.
            sock.bind((_local_address_for(family, self._dest), 0))
        except OSError as e:
            sock.close()
            raise TransportError(f"cannot open a UDP socket towards {self.address}: {e}") from e
        sock.setblocking(False)  # a full socket buffer drops the datagram instead of waiting
        self._sock = sock

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _sendto(self, data: bytes | bytearray | memoryview) -> int | None:
        assert self._sock is not None and self._dest is not None
        try:
            return self._sock.sendto(data, self._dest)
        except (BlockingIOError, InterruptedError):
            return None
