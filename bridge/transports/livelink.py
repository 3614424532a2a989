"""Live Link Face (the iPhone app's UDP protocol, packet version 6): encode, decode and send.

Unreal's built-in Live Link Face source listens on UDP 11111; a MetaHuman whose blueprint has a
Live Link face subject then moves with no plugin. The packet carries 61 floats in a fixed order
(52 ARKit blendshapes, then head and eye rotations); values are placed by *name* from the
stream's schema (``arkit52.yaml``), never by index. Packet layout, all big-endian::

    u8   version = 6
    i32  n, then n bytes  device id (UTF-8; the app sends a UUID)
    i32  n, then n bytes  subject name (UTF-8)
    i32  frame number     (this sender: the frame's seq, so receivers can count gaps)
    f32  sub-frame        (0)
    i32  frame-rate numerator, i32 denominator (60/1; never a zero denominator)
    u8   value count = 61
    61 x f32 values

It carries no schema, no line and no audio time; START/END and SCHEMA messages are not sent.
"""

from __future__ import annotations

import math
import struct
import uuid
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from bridge.arkit import LIVELINK_FACE_NAMES, LIVELINK_INDEX, N_VALUES
from bridge.protocol import Frame, ProtocolError, Schema, StreamEnd, StreamStart
from bridge.transports.base import DEFAULT_HOST, UdpSender

LIVELINK_PORT = 11111  # Unreal's Live Link Face source default
PACKET_VERSION = 6
_TIME = struct.Struct(">ifiiB")  # frame, sub-frame, rate numerator, denominator, value count
_VALUES = struct.Struct(f">{N_VALUES}f")
_DEVICE_NAMESPACE = uuid.UUID("6f1c9a52-64b1-4c1e-9d53-8c2f4f6b9a10")  # emoface's own namespace


@dataclass(frozen=True)
class LiveLinkPacket:
    """One decoded Live Link Face packet."""

    device_id: str
    subject: str
    frame_number: int
    sub_frame: float
    rate: tuple[int, int]
    values: tuple[float, ...]

    @property
    def fps(self) -> float:
        """Frame rate as a float."""
        return self.rate[0] / self.rate[1]

    def named(self) -> dict[str, float]:
        """``{value name: value}``."""
        return dict(zip(LIVELINK_FACE_NAMES, self.values))


def device_id_for(subject: str) -> str:
    """A stable UUID string per subject, so Unreal keeps one source across restarts."""
    return str(uuid.uuid5(_DEVICE_NAMESPACE, subject))


def frame_rate(fps: float) -> tuple[int, int]:
    """``fps`` as a valid rational rate, e.g. 60 -> (60, 1), 29.97 -> (2997, 100).

    Raises:
        ValueError: ``fps`` is not a positive finite number.
    """
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    rate = Fraction(fps).limit_denominator(1001)
    return rate.numerator, rate.denominator


def _text_field(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack(">i", len(raw)) + raw


class LiveLinkEncoder:
    """Builds packets for one subject; the device id and name bytes are computed once."""

    def __init__(self, subject: str, *, device_id: str | None = None, fps: float = 60.0) -> None:
        self.subject = subject
        self.device_id = device_id or device_id_for(subject)
        self.rate = frame_rate(fps)
        self._prefix = bytes([PACKET_VERSION]) + _text_field(self.device_id) + _text_field(subject)

    def encode(self, frame_number: int, values: np.ndarray, *, sub_frame: float = 0.0) -> bytes:
        """A packet from the 61 values in ``LIVELINK_FACE_NAMES`` order."""
        values = np.asarray(values, dtype=">f4")
        if values.shape != (N_VALUES,):
            raise ValueError(f"expected {N_VALUES} Live Link values, got shape {values.shape}")
        header = _TIME.pack(
            frame_number % (1 << 31), sub_frame, self.rate[0], self.rate[1], N_VALUES
        )
        return b"".join((self._prefix, header, values.tobytes()))


def encode_packet(
    subject: str,
    frame_number: int,
    values: np.ndarray,
    *,
    device_id: str | None = None,
    fps: float = 60.0,
) -> bytes:
    """Encode one packet (see the module docstring)."""
    return LiveLinkEncoder(subject, device_id=device_id, fps=fps).encode(frame_number, values)


def decode_packet(data: bytes) -> LiveLinkPacket:
    """Decode one packet.

    Raises:
        ProtocolError: anything that is not exactly one version-6 packet.
    """
    try:
        if len(data) < 1 or data[0] != PACKET_VERSION:
            raise ProtocolError(f"not a Live Link Face v{PACKET_VERSION} packet")
        offset = 1
        texts = []
        for what in ("device id", "subject"):
            (n,) = struct.unpack_from(">i", data, offset)
            offset += 4
            if not 0 <= n <= 1024 or offset + n > len(data):
                raise ProtocolError(f"{what} length {n} does not fit the packet")
            texts.append(bytes(data[offset : offset + n]).decode("utf-8"))
            offset += n
        frame_number, sub_frame, num, den, count = _TIME.unpack_from(data, offset)
        offset += _TIME.size
        if count != N_VALUES or den <= 0 or num <= 0:
            raise ProtocolError(f"bad count {count} or frame rate {num}/{den}")
        if len(data) != offset + _VALUES.size:
            raise ProtocolError(f"packet should be {offset + _VALUES.size} bytes, got {len(data)}")
        values = _VALUES.unpack_from(data, offset)
    except ProtocolError:
        raise
    except (struct.error, UnicodeDecodeError, TypeError, IndexError) as e:
        raise ProtocolError(f"malformed Live Link Face packet: {e}") from e
    return LiveLinkPacket(texts[0], texts[1], frame_number, sub_frame, (num, den), values)


class LiveLinkSender(UdpSender):
    """Sends frames as Live Link Face packets (one datagram per frame).

    The stream's schema decides where each value goes: names found in ``LIVELINK_FACE_NAMES`` are
    placed by name, others are ignored (logged once); names it lacks are sent as 0. Use the
    ``arkit52`` mapping (``required_mapping``), which the streamer does by default.
    """

    kind = "livelink"
    required_mapping = "arkit52"

    def __init__(
        self, host: str = DEFAULT_HOST, port: int = LIVELINK_PORT, *, device_id: str | None = None
    ) -> None:
        super().__init__(host, port)
        self.device_id = device_id
        self._routes: dict[str, tuple[int, np.ndarray, np.ndarray, LiveLinkEncoder]] = {}
        self._buffer = np.zeros(N_VALUES, dtype=np.float32)

    def _send_schema(self, schema: Schema) -> int | None:
        slots, positions = [], []
        for position, name in enumerate(schema.names):
            if name in LIVELINK_INDEX:
                slots.append(LIVELINK_INDEX[name])
                positions.append(position)
        unused = len(schema.names) - len(slots)
        if unused:
            self._warn_once(
                f"{unused} of {len(schema.names)} targets of {schema.subject!r} are not Live Link "
                "Face names and are not sent (use the arkit52 mapping)"
            )
        encoder = LiveLinkEncoder(schema.subject, device_id=self.device_id, fps=schema.fps)
        self._routes[schema.subject] = (
            schema.schema_id,
            np.array(slots, dtype=np.intp),
            np.array(positions, dtype=np.intp),
            encoder,
        )
        return 0  # Live Link has no schema message; nothing goes on the wire

    def _send_start(self, start: StreamStart) -> int | None:
        return 0

    def _send_end(self, end: StreamEnd) -> int | None:
        return 0

    def _send_frame(self, frame: Frame) -> int | None:
        route = self._routes.get(frame.subject)
        if route is None or route[0] != frame.schema_id:
            raise OSError(f"no schema for subject {frame.subject!r}; call send_schema first")
        _, slots, positions, encoder = route
        self._buffer[:] = 0.0
        self._buffer[slots] = np.asarray(frame.values, dtype=np.float32)[positions]
        return self._sendto(encoder.encode(frame.seq, self._buffer))
