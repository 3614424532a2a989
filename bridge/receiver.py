"""The mock receiver: listens on one transport, decodes, checks and records frames.

It stands in for Unreal in tests and on a desk: ``with MockReceiver("osc", "127.0.0.1:0") as rx``
binds (UDP) or subscribes (ZeroMQ) and decodes on a background thread; ``rx.frames`` holds what
arrived, ``rx.stats`` counts malformed packets, gaps, duplicates and out-of-order frames
(``bridge.protocol.Decoder`` rules, for every transport), and ``rx.timing()`` gives the frame rate,
latency and jitter. Nothing a sender does, garbage included, stops the thread.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.arkit import LIVELINK_FACE_NAMES
from bridge.errors import NotConnectedError, TransportError
from bridge.protocol import (
    Decoder,
    DecoderStats,
    EndReason,
    Frame,
    Message,
    ProtocolError,
    Schema,
    StreamEnd,
    StreamStart,
    loads_json,
    schema_id,
    zmq_topic,
)
from bridge.transports.base import parse_host_port
from bridge.transports.livelink import LIVELINK_PORT, decode_packet
from bridge.transports.osc import DEFAULT_OSC_PORT, OSC_ROOT
from bridge.transports.zmq import DEFAULT_ZMQ_ENDPOINT, check_endpoint

log = logging.getLogger(__name__)

TRANSPORTS = ("zmq", "osc", "livelink")
POLL_INTERVAL_S = 0.05  # how quickly close() is noticed by the receive thread
TIMING_WINDOW = 600  # arrivals kept for rate/latency/jitter (10 s at 60 fps)
UDP_RCVBUF_BYTES = 4 * 1024 * 1024  # ask for room for bursts (the OS may grant less)
LIVELINK_SCHEMA_ID = schema_id(LIVELINK_FACE_NAMES)


@dataclass(frozen=True)
class ReceivedFrame:
    """One accepted frame with its names and arrival time.

    Attributes:
        subject: the NPC.
        seq: sequence number (Live Link: the packet's frame number).
        t_s: time in the line's audio (NaN over Live Link, which does not carry it).
        fps: frame rate.
        names: target names, in value order.
        values: the values.
        line_id: the line (0 over Live Link).
        t_capture: sender's wall clock when sent (0 when unknown).
        t_received: this receiver's wall clock on arrival.
    """

    subject: str
    seq: int
    t_s: float
    fps: float
    names: tuple[str, ...]
    values: tuple[float, ...]
    line_id: int
    t_capture: float
    t_received: float

    def named(self) -> dict[str, float]:
        """``{name: value}``."""
        return dict(zip(self.names, self.values))

    @property
    def latency_s(self) -> float:
        """Arrival minus send time (NaN when the sender's time is unknown)."""
        return self.t_received - self.t_capture if self.t_capture > 0 else math.nan


def default_address(transport: str) -> str:
    """Where ``emoface receive`` listens by default for a transport."""
    return {
        "zmq": DEFAULT_ZMQ_ENDPOINT,
        "osc": f"127.0.0.1:{DEFAULT_OSC_PORT}",
        "livelink": f"127.0.0.1:{LIVELINK_PORT}",
    }[transport]


class MockReceiver:
    """Receives one transport on a background thread. Use as a context manager.

    Args:
        transport: "zmq" (subscribes to a PUB endpoint), "osc" or "livelink" (binds UDP).
        address: ZeroMQ endpoint to connect to, or ``host:port`` to bind (port 0 = any free
            port; read it back from ``address`` after ``open``). Default per transport.
        subject: keep only this subject (others are counted, not recorded).
        keep_frames: record frames in ``frames`` (turn off for endless monitoring).
        on_frame: called on the receive thread for every accepted frame.
        context: ``zmq.Context`` for ``inproc://`` endpoints.
        wall_clock: Unix seconds, for arrival times.
    """

    def __init__(
        self,
        transport: str = "zmq",
        address: str | None = None,
        *,
        subject: str | None = None,
        keep_frames: bool = True,
        on_frame: Callable[[ReceivedFrame], None] | None = None,
        context: Any = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(
                f"transport must be one of {', '.join(TRANSPORTS)}, but {transport!r} is provided"
            )
        self.transport = transport
        self.address = address or default_address(transport)
        if transport == "zmq":
            check_endpoint(self.address)
        else:
            parse_host_port(self.address, 0)  # fail early on a bad port
        self.subject = subject
        self.keep_frames = keep_frames
        self.on_frame = on_frame
        self.wall_clock = wall_clock
        self._context = context
        self.decoder = Decoder([subject] if subject else None)
        self.frames: list[ReceivedFrame] = []
        self.starts: list[StreamStart] = []
        self.ends: list[StreamEnd] = []
        self._arrivals: deque[float] = deque(maxlen=TIMING_WINDOW)
        self._latencies: deque[float] = deque(maxlen=TIMING_WINDOW)
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._socket: Any = None
        self._internal_errors = 0

    @property
    def stats(self) -> DecoderStats:
        """Counters (malformed, gaps, missing, duplicates, out-of-order...)."""
        return self.decoder.stats

    @property
    def schemas(self) -> dict[str, Schema]:
        """The latest schema per subject."""
        return self.decoder.schemas

    def open(self) -> MockReceiver:
        """Bind or subscribe and start the receive thread. Returns self.

        Raises:
            TransportError: cannot bind/connect.
        """
        if self._thread is not None:
            return self
        if self.transport == "zmq":
            self._open_zmq()
            target = self._run_zmq
        else:
            self._open_udp()
            target = self._run_udp
        self._stop.clear()
        self._thread = threading.Thread(
            target=target, name=f"emoface-{self.transport}-rx", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread and close the socket; safe to call twice."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> MockReceiver:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_for(self, n_frames: int, timeout_s: float) -> bool:
        """Block until ``n_frames`` frames were accepted or the timeout passes."""
        return self.wait_until(lambda: self.decoder.stats.n_frames >= n_frames, timeout_s)

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Block until ``predicate()`` holds (checked after every packet) or the timeout passes."""
        if self._thread is None:
            raise NotConnectedError("MockReceiver is not open")
        with self._lock:
            return self._lock.wait_for(predicate, timeout=timeout_s)

    def timing(self) -> dict[str, float]:
        """Recent frame rate (fps), latency p50/p99 and jitter (std of arrival intervals), in ms."""
        with self._lock:
            arrivals = list(self._arrivals)
            latencies = sorted(self._latencies)
        out = {
            "fps": math.nan,
            "latency_p50_ms": math.nan,
            "latency_p99_ms": math.nan,
            "jitter_ms": math.nan,
        }
        if len(arrivals) >= 2:
            intervals = [b - a for a, b in zip(arrivals, arrivals[1:])]
            span = arrivals[-1] - arrivals[0]
            out["fps"] = (len(arrivals) - 1) / span if span > 0 else math.nan
            mean = sum(intervals) / len(intervals)
            out["jitter_ms"] = 1e3 * math.sqrt(
                sum((x - mean) ** 2 for x in intervals) / len(intervals)
            )
        if latencies:
            out["latency_p50_ms"] = 1e3 * _percentile(latencies, 0.50)
            out["latency_p99_ms"] = 1e3 * _percentile(latencies, 0.99)
        return out

    def process(self, packet: bytes | list[bytes]) -> None:
        """Handle one packet as the thread does (ZeroMQ: the list of message parts)."""
        try:
            if self.transport == "zmq":
                self._process_zmq(packet)  # type: ignore[arg-type]
            elif self.transport == "osc":
                self._process_osc(packet)  # type: ignore[arg-type]
            else:
                self._process_livelink(packet)  # type: ignore[arg-type]
        except Exception as e:
            self._internal_errors += 1
            self.decoder.stats.n_malformed += 1
            if self._internal_errors == 1:  # one line, not a traceback per hostile packet
                log.warning(
                    "a packet could not be decoded (%s: %s); counted as malformed",
                    type(e).__name__,
                    str(e)[:120],
                )
                log.debug("decoding error", exc_info=True)
        with self._lock:
            self._lock.notify_all()

    def write(self, path: str | Path) -> Path:
        """Write the recorded frames: ``.jsonl`` (one frame per line) or ``.json`` (per channel).

        The ``.json`` layout mirrors a baked file (``fps``, ``n_frames``, ``metadata``,
        ``channels: {name: [values]}``) with the schema's target names as channels, plus ``seq``
        and ``t_s`` per frame; diff it against ``mapping.apply_array`` of a bake.

        Raises:
            ValueError: unknown extension, or ``.json`` with frames of several subjects.
        """
        from emoface_core.formats import atomic_write

        path = Path(path)
        frames = list(self.frames)
        if path.suffix == ".jsonl":
            lines = [
                json.dumps(
                    {
                        "subject": f.subject,
                        "line_id": f.line_id,
                        "seq": f.seq,
                        "t_s": _json_float(f.t_s),
                        "t_capture": f.t_capture,
                        "t_received": f.t_received,
                        "values": f.named(),
                    }
                )
                for f in frames
            ]
            atomic_write(path, "".join(line + "\n" for line in lines))
            return path
        if path.suffix != ".json":
            raise ValueError(f"{path}: recording must end in .jsonl or .json")
        subjects = sorted({f.subject for f in frames})
        if len(subjects) > 1:
            raise ValueError(
                f"{path}: frames of several subjects ({', '.join(subjects)}); "
                "use --subject or a .jsonl file"
            )
        names = frames[0].names if frames else ()
        kept = [f for f in frames if f.names == names]  # a mapping change starts other columns
        subject = subjects[0] if subjects else None
        schema = self.decoder.schemas.get(subject) if subject else None
        doc = {
            "format": "emoface-received",
            "format_version": 1,
            "fps": kept[0].fps if kept else None,
            "n_frames": len(kept),
            "metadata": {
                "subject": subject,
                "transport": self.transport,
                "mapping_id": schema.mapping_id if schema else "",
                "mapping_hash": schema.mapping_hash if schema else "",
                "target_kind": schema.target_kind if schema else "",
                "n_frames_other_schema": len(frames) - len(kept),
                "stats": self.stats.as_dict(),
            },
            "seq": [f.seq for f in kept],
            "t_s": [_json_float(f.t_s) for f in kept],
            "channels": {name: [f.values[i] for f in kept] for i, name in enumerate(names)},
        }
        atomic_write(path, json.dumps(doc, indent=1) + "\n")
        return path

    def _record(self, message: Message | None, t_received: float) -> None:
        if message is None:
            return
        if isinstance(message, Frame):
            names = self.decoder.names_of(message)
            frame = ReceivedFrame(
                message.subject,
                message.seq,
                message.t_s,
                message.fps,
                names,
                tuple(message.values),
                message.line_id,
                message.t_capture,
                t_received,
            )
            with self._lock:
                self._arrivals.append(t_received)
                if not math.isnan(frame.latency_s):
                    self._latencies.append(frame.latency_s)
                if self.keep_frames:
                    self.frames.append(frame)
            if self.on_frame is not None:
                self.on_frame(frame)
        elif isinstance(message, StreamStart):
            self.starts.append(message)
        elif isinstance(message, StreamEnd):
            self.ends.append(message)

    def _open_zmq(self) -> None:
        import zmq

        context = self._context or zmq.Context.instance()
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, zmq_topic(self.subject) if self.subject else b"")
        try:
            sock.connect(self.address)
        except zmq.ZMQError as e:
            sock.close(0)
            raise TransportError(f"cannot connect ZeroMQ SUB to {self.address}: {e}") from e
        self._socket = sock

    def _run_zmq(self) -> None:
        import zmq

        sock = self._socket
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(int(POLL_INTERVAL_S * 1000)):
                continue
            while True:
                try:
                    parts = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                except zmq.ZMQError:
                    if self._stop.is_set():
                        return
                    raise
                self.process(parts)

    def _process_zmq(self, parts: list[bytes]) -> None:
        now = self.wall_clock()
        if len(parts) != 2:
            self.decoder.stats.n_packets += 1
            self.decoder.stats.n_malformed += 1
            return
        self._record(self.decoder.feed(parts[1]), now)

    def _open_udp(self) -> None:
        host, port = parse_host_port(self.address, 0)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            family, _, _, _, sockaddr = infos[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
        except OSError as e:
            raise TransportError(f"cannot listen on UDP {self.address}: {e}") from e
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF_BYTES)
            sock.bind(sockaddr)
        except OSError as e:
            sock.close()
            raise TransportError(f"cannot listen on UDP {self.address}: {e}") from e
        sock.settimeout(POLL_INTERVAL_S)
        bound_host, bound_port = sock.getsockname()[:2]
        self.address = (
            f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"
        )
        self._socket = sock

    @property
    def port(self) -> int:
        """The UDP port (useful after binding port 0); for ZeroMQ, the endpoint's port."""
        return int(self.address.rsplit(":", 1)[1])

    def _run_udp(self) -> None:
        sock = self._socket
        while not self._stop.is_set():
            try:
                data = sock.recv(65_536)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            self.process(data)

    def _process_livelink(self, data: bytes) -> None:
        now = self.wall_clock()
        stats = self.decoder.stats
        stats.n_packets += 1
        try:
            packet = decode_packet(data)
        except ProtocolError:
            stats.n_malformed += 1
            return
        schema = self.decoder.schemas.get(packet.subject)
        if schema is None or schema.fps != packet.fps:
            # Live Link has no schema message: its 61 names are fixed.
            self.decoder.schemas[packet.subject] = Schema(
                packet.subject, LIVELINK_FACE_NAMES, packet.fps, "livelink", "", "arkit"
            )
        frame = Frame(
            packet.subject,
            packet.frame_number,
            math.nan,
            packet.fps,
            packet.values,
            LIVELINK_SCHEMA_ID,
        )
        self._record(self.decoder.accept(frame), now)

    def _process_osc(self, data: bytes) -> None:
        now = self.wall_clock()
        stats = self.decoder.stats
        stats.n_packets += 1
        try:
            message = self._osc_to_message(data)
        except (ProtocolError, ValueError, TypeError, IndexError, KeyError, RecursionError):
            message = None
        if message is None:
            stats.n_malformed += 1
            return
        self._record(self.decoder.accept(message), now)

    def _osc_to_message(self, data: bytes) -> Message | None:
        from pythonosc.osc_packet import OscPacket, ParseError

        if not _osc_well_framed(data):
            return None
        try:
            packet = OscPacket(data)
        except ParseError:
            return None
        messages = [(m.message.address, list(m.message.params)) for m in packet.messages]
        if not messages:
            return None
        subject, leaf = _split_osc(messages[0][0])
        if leaf == "frame":
            return self._osc_frame(subject, messages)
        if len(messages) != 1:
            return None
        params = messages[0][1]
        if leaf == "schema":
            names = tuple(str(p) for p in params[5:])
            if schema_id(names) != params[0] & 0xFFFFFFFF:
                return None
            return Schema(
                subject, names, float(params[1]), str(params[2]), str(params[3]), str(params[4])
            )
        if leaf == "start":
            info = loads_json(str(params[5]), max_bytes=len(str(params[5])))
            if not isinstance(info, dict):
                return None
            return StreamStart(
                subject,
                params[0] & 0xFFFFFFFF,
                params[1] & 0xFFFFFFFF,
                params[2] & 0xFFFFFFFF,
                float(params[3]),
                float(params[4]),
                info,
            )
        if leaf == "end":
            return StreamEnd(
                subject,
                params[0] & 0xFFFFFFFF,
                params[1] & 0xFFFFFFFF,
                EndReason[str(params[2]).upper()],
                float(params[3]),
            )
        return None

    def _osc_frame(self, subject: str, messages: list[tuple[str, list[Any]]]) -> Frame | None:
        seq, line_id, t_s, fps, t_capture, sid = messages[0][1]
        sid &= 0xFFFFFFFF
        rest = messages[1:]
        if len(rest) == 1 and _split_osc(rest[0][0]) == (subject, "values"):
            values = tuple(float(v) for v in rest[0][1])
        else:
            names = []
            for address, params in rest:
                msg_subject, leaf = _split_osc(address)
                if msg_subject != subject or len(params) != 1:
                    return None
                names.append(leaf)
            names_t = tuple(names)
            if schema_id(names_t) != sid:
                return None
            known = self.decoder.schemas.get(subject)
            if known is None or known.schema_id != sid:
                # Named messages describe themselves: a late joiner can name frames at once.
                self.decoder.schemas[subject] = Schema(subject, names_t, float(fps))
            values = tuple(float(p[0]) for _, p in rest)
        if not (math.isfinite(t_s) and math.isfinite(fps) and fps > 0 and math.isfinite(t_capture)):
            return None
        return Frame(
            subject,
            seq & 0xFFFFFFFF,
            float(t_s),
            float(fps),
            values,
            sid,
            line_id & 0xFFFFFFFF,
            float(t_capture),
        )


def _osc_well_framed(data: bytes) -> bool:
    """Check OSC framing exactly: python-osc pads truncated arguments and accepts any "#bundle"."""
    if len(data) % 4:
        return False
    if data[:9] == b"/emoface/":
        return True
    if data[:8] != b"#bundle\x00" or len(data) < 16:
        return False
    offset = 16
    while offset < len(data):
        if offset + 4 > len(data):
            return False
        (size,) = struct.unpack_from(">i", data, offset)
        if size <= 0 or size % 4 or offset + 4 + size > len(data):
            return False
        offset += 4 + size
    return offset == len(data)


def _split_osc(address: str) -> tuple[str, str]:
    """``/emoface/<subject>/<leaf>`` -> ``(subject, leaf)``; raises ValueError otherwise."""
    prefix = OSC_ROOT + "/"
    if not address.startswith(prefix):
        raise ValueError(f"not an emoface address: {address!r}")
    subject, sep, leaf = address[len(prefix) :].partition("/")
    if not subject or not sep or not leaf:
        raise ValueError(f"not an emoface address: {address!r}")
    return subject, leaf


def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else x
