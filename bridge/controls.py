"""Live control inputs: text commands (``emotion sad``, ``quit``) for a running ``emoface live``.

``UdpControl`` reads datagrams on a loopback port; ``KeyboardControl`` reads single keys (0-6
set the emotion, q quits) from a terminal. ``bridge.runtime.live.LiveRunner`` polls them between
audio chunks and applies each command with ``apply_command``.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import sys
import threading
from typing import Any

from bridge.sources import DEFAULT_HOST, SourceError

log = logging.getLogger(__name__)

KEY_EMOTIONS = "0123456"  # keyboard control: an emotion id per key (angry 0 ... surprise 6)


class UdpControl:
    """Text commands in UDP datagrams (e.g. ``emotion sad:0.5``, ``quit``), loopback by default.

    ``echo "emotion happy" | nc -u -w0 127.0.0.1 PORT`` changes the emotion of a running
    ``emoface live``.

    Args:
        host: address to bind.
        port: port to bind; 0 picks a free one (see ``port`` after ``open``).
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0) -> None:
        if not 0 <= port <= 65535:
            raise SourceError(f"control port must be between 0 and 65535, but {port} is given")
        self.host = host
        self.port = port
        self._socket: socket.socket | None = None

    def open(self) -> UdpControl:
        """Bind the socket. Returns self.

        Raises:
            SourceError: the address cannot be bound.
        """
        if self._socket is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((self.host, self.port))
            except OSError as e:
                sock.close()
                raise SourceError(
                    f"control udp:{self.host}:{self.port}: cannot bind ({e.strerror or e})"
                ) from e
            sock.setblocking(False)
            self.port = sock.getsockname()[1]
            self._socket = sock
        return self

    def close(self) -> None:
        """Close the socket; safe to call twice."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> UdpControl:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def poll(self) -> list[str]:
        """Commands received since the last call (non-UTF-8 datagrams are dropped)."""
        commands: list[str] = []
        while self._socket is not None:
            try:
                data, _ = self._socket.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                log.warning("control socket error: %s", e)
                break
            try:
                text = data.decode("utf-8").strip()
            except UnicodeDecodeError:
                log.warning("ignored a control datagram that is not UTF-8 text")
                continue
            commands.extend(line for line in text.splitlines() if line.strip())
        return commands


class KeyboardControl:
    """Single keypresses on a terminal: ``0``-``6`` pick an emotion by id, ``q`` quits.

    The terminal is switched to cbreak mode (no Enter needed) while open and restored on close.
    Opening is refused when the stream is not a terminal.

    Args:
        stream: a text stream on a terminal; None = ``sys.stdin``.
    """

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream
        self._fd: int | None = None
        self._saved: Any = None
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread: threading.Thread | None = None

    def open(self) -> KeyboardControl:
        """Start reading keys.

        Raises:
            SourceError: the stream is not a terminal (or this platform has no termios).
        """
        stream = self._stream if self._stream is not None else sys.stdin
        try:
            import termios
            import tty
        except ImportError as e:  # Windows
            raise SourceError("keyboard control needs a POSIX terminal; use --control-port") from e
        fd = stream.fileno()
        if not os.isatty(fd):
            raise SourceError("keyboard control needs a terminal on standard input")
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self._fd = fd
        self._thread = threading.Thread(
            target=self._pump, args=(fd,), name="emoface-keys", daemon=True
        )
        self._thread.start()
        return self

    def _pump(self, fd: int) -> None:
        while self._fd is not None:
            try:
                data = os.read(fd, 1)
            except OSError:
                break
            if not data:
                break
            self._queue.put(data.decode("utf-8", errors="replace"))

    def close(self) -> None:
        """Restore the terminal; safe to call twice."""
        if self._fd is not None and self._saved is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        self._fd = None
        self._saved = None

    def __enter__(self) -> KeyboardControl:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def poll(self) -> list[str]:
        """Commands from the keys pressed since the last call (other keys are ignored)."""
        commands: list[str] = []
        while True:
            try:
                key = self._queue.get_nowait()
            except queue.Empty:
                return commands
            if key in KEY_EMOTIONS:
                commands.append(f"emotion {key}")
            elif key.lower() == "q":
                commands.append("quit")
