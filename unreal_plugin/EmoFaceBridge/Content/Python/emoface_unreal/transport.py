"""Network side of live drive: packet sources (ZeroMQ, OSC) and the thread that feeds the editor.

The editor's game thread must never wait on a socket, so a daemon thread reads and puts
``(wall time, protocol bytes)`` into a bounded ``queue.Queue``; the editor tick drains it. When
the queue is full the oldest packet is dropped (and counted): a live face wants the newest frame.
A source that fails (publisher not running yet, port in use) is retried with a backoff, and the
error is kept for the status display; nothing here raises into the editor.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from emoface_unreal import protocol
from emoface_unreal.osc import OscToProtocol
from emoface_unreal.settings import LiveSettings, check_endpoint
from emoface_unreal.zmtp import ZmtpSubscriber

log = logging.getLogger(__name__)

RECV_TIMEOUT_S = 0.1  # how long the thread blocks per read; bounds how fast stop() returns
MIN_BACKOFF_S = 0.25
MAX_BACKOFF_S = 2.0
MALFORMED = b""  # fed to the decoder for a packet the source could not read, so it is counted


class PacketSource(ABC):
    """Where protocol messages come from. Used from the reader thread only."""

    description = ""

    @abstractmethod
    def open(self) -> None:
        """Connect or bind. Raises ``OSError`` on failure (the thread retries)."""

    @abstractmethod
    def recv(self, timeout_s: float) -> list[bytes]:
        """Protocol messages that arrived within ``timeout_s`` (possibly none).

        Raises:
            OSError: the connection broke (the thread closes, waits and reopens).
        """

    @abstractmethod
    def close(self) -> None:
        """Release the socket (safe to call twice)."""


def _payload(parts: list[bytes]) -> bytes:
    # [topic, message]; anything else is not the bridge's framing and is counted as malformed.
    return parts[1] if len(parts) == 2 else MALFORMED


class BuiltinZmqSource(PacketSource):
    """SUB over the built-in ZMTP client (no pyzmq needed)."""

    def __init__(self, endpoint: str, subjects: list[str]) -> None:
        host, port = check_endpoint("zmq", endpoint)
        self.description = f"zmq {endpoint} (built-in subscriber)"
        self._sub = ZmtpSubscriber(host, port, [protocol.zmq_topic(s) for s in subjects])

    def open(self) -> None:
        """Connect and subscribe."""
        self._sub.connect()

    def recv(self, timeout_s: float) -> list[bytes]:
        """Messages of one read."""
        out = []
        parts = self._sub.recv_multipart(timeout_s)
        while parts is not None:
            out.append(_payload(parts))
            parts = self._sub.recv_multipart(0.0)
        return out

    def close(self) -> None:
        """Disconnect."""
        self._sub.close()


class PyzmqSource(PacketSource):
    """SUB over pyzmq (when the editor has it): reconnects by itself."""

    def __init__(self, endpoint: str, subjects: list[str], zmq_module: Any = None) -> None:
        check_endpoint("zmq", endpoint)
        if zmq_module is None:
            import zmq as zmq_module  # optional compiled dependency
        self._zmq = zmq_module
        self.endpoint = endpoint
        self.subjects = subjects
        self.description = f"zmq {endpoint} (pyzmq)"
        self._sock: Any = None

    def open(self) -> None:
        """Create the SUB socket and connect (ZeroMQ retries the TCP connection itself)."""
        zmq = self._zmq
        sock = zmq.Context.instance().socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 256)
        for subject in self.subjects:
            sock.setsockopt(zmq.SUBSCRIBE, protocol.zmq_topic(subject))
        try:
            sock.connect(self.endpoint)
        except zmq.ZMQError as e:
            sock.close(0)
            raise OSError(f"cannot connect to {self.endpoint}: {e}") from e
        self._sock = sock

    def recv(self, timeout_s: float) -> list[bytes]:
        """Messages of one read."""
        zmq = self._zmq
        out = []
        if self._sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            while True:
                try:
                    out.append(_payload(self._sock.recv_multipart(zmq.NOBLOCK)))
                except zmq.Again:
                    break
        return out

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None


class OscSource(PacketSource):
    """Listens for the bridge's OSC datagrams on UDP and converts them to protocol messages."""

    def __init__(self, endpoint: str) -> None:
        self.host, self.port = check_endpoint("osc", endpoint)
        self.description = f"osc udp {self.host}:{self.port}"
        self.converter = OscToProtocol()
        self.last_error = ""
        self.last_error_wall = 0.0
        self._sock: socket.socket | None = None

    def open(self) -> None:
        """Bind the UDP port (``OSError`` when it is in use)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self._sock = sock

    @property
    def bound_port(self) -> int:
        """The UDP port actually bound (useful with port 0 in tests)."""
        return self._sock.getsockname()[1] if self._sock else self.port

    def recv(self, timeout_s: float) -> list[bytes]:
        """Messages of the datagrams that are waiting (at least one read with the timeout)."""
        assert self._sock is not None
        out: list[bytes] = []
        self._sock.settimeout(timeout_s)
        while True:
            try:
                data = self._sock.recv(65536)
            except (TimeoutError, BlockingIOError):
                return out
            self._sock.settimeout(0.0)
            try:  # each datagram alone: whatever a hostile one raises, it is one bad packet
                out.extend(protocol.encode(m) for m in self.converter.convert(data))
            except Exception as e:  # noqa: BLE001 - counted as malformed, the socket stays
                self.last_error = f"bad OSC packet: {type(e).__name__}: {str(e)[:120]}"
                self.last_error_wall = time.time()
                out.append(MALFORMED)

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def make_source(settings: LiveSettings, subjects: list[str]) -> PacketSource:
    """The source the settings ask for.

    Raises:
        ImportError: ``zmq_backend`` is "pyzmq" and the editor has no pyzmq.
    """
    if settings.transport == "osc":
        return OscSource(settings.endpoint)
    if settings.zmq_backend == "builtin":
        return BuiltinZmqSource(settings.endpoint, subjects)
    try:
        return PyzmqSource(settings.endpoint, subjects)
    except ImportError:
        if settings.zmq_backend == "pyzmq":
            raise ImportError(
                "zmq_backend is 'pyzmq' but this Python has no pyzmq; install it into "
                "the plugin (emoface unreal install --wheel pyzmq-...-cp311-....whl) or "
                "use zmq_backend 'builtin'"
            ) from None
        return BuiltinZmqSource(settings.endpoint, subjects)


class Receiver:
    """Runs a source on a daemon thread, filling ``queue`` with ``(wall time, packet)``.

    Counters are written by the thread and read by the editor; plain ints are safe to share.

    Args:
        source: where packets come from.
        queue_size: packets kept; when full, the oldest is dropped.
        clock: wall clock (seconds) stamped on each packet.
    """

    def __init__(
        self, source: PacketSource, queue_size: int = 256, clock: Callable[[], float] = time.time
    ) -> None:
        self.source = source
        self.queue: queue.Queue[tuple[float, bytes]] = queue.Queue(maxsize=queue_size)
        self.clock = clock
        self.n_packets = 0
        self.n_queue_dropped = 0
        self.n_connect_errors = 0
        self.connected = False
        self.last_error = ""
        self.last_error_wall = 0.0
        self._stop = threading.Event()
        self._first_attempt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, wait_s: float = 0.0) -> None:
        """Start the thread; connection errors show in ``last_error``, never raise.

        Args:
            wait_s: wait up to this long for the first connect/bind attempt, so a caller can
                report "listening" or the error right away.
        """
        if self._thread is not None:
            return
        self._stop.clear()
        self._first_attempt.clear()
        self._thread = threading.Thread(target=self._run, name="EmoFaceReceiver", daemon=True)
        self._thread.start()
        if wait_s > 0:
            self._first_attempt.wait(wait_s)

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop the thread and close the source."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        backoff = MIN_BACKOFF_S
        try:
            while not self._stop.is_set():
                if not self.connected:
                    try:
                        self.source.open()
                    except Exception as e:  # noqa: BLE001 - any failure is retried, never raised
                        self._fail(f"cannot open {self.source.description}: {e}")
                        self._first_attempt.set()
                        self._stop.wait(backoff)
                        backoff = min(backoff * 2, MAX_BACKOFF_S)
                        continue
                    self.connected = True
                    self._first_attempt.set()
                    backoff = MIN_BACKOFF_S
                try:
                    packets = self.source.recv(RECV_TIMEOUT_S)
                except Exception as e:  # noqa: BLE001
                    self.connected = False
                    self.source.close()
                    self._fail(f"{self.source.description}: {e}")
                    self._stop.wait(backoff)
                    continue
                now = self.clock()
                for packet in packets:
                    self._put((now, packet))
        finally:
            self.connected = False
            self.source.close()

    def _fail(self, message: str) -> None:
        self.n_connect_errors += 1
        if message != self.last_error:
            log.warning("EmoFace: %s", message)
        self.last_error = message
        self.last_error_wall = self.clock()

    def _put(self, item: tuple[float, bytes]) -> None:
        self.n_packets += 1
        while True:
            try:
                self.queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self.queue.get_nowait()
                    self.n_queue_dropped += 1
                except queue.Empty:
                    pass
