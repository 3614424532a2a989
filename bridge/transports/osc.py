"""OSC over UDP: one bundle per frame, so all of a frame's values land together.

Addresses live under ``/emoface/<subject>/``; generic OSC tools (``oscdump``, TouchOSC, Unreal's
OSC plugin) read them without knowing this project::

    /emoface/<subject>/frame   ,iidfdi  seq, line_id, t_s, fps, t_capture, schema_id
    /emoface/<subject>/<name>  ,f       one message per target        (mode "named", default)
    /emoface/<subject>/values  ,f...    all targets in schema order    (mode "array", compact)
    /emoface/<subject>/schema  ,ifsss s...  schema_id, fps, mapping_id, mapping_hash,
                                            target_kind, then one string per target name
    /emoface/<subject>/start   ,iiifds  line_id, schema_id, n_frames, fps, t_capture, info JSON
    /emoface/<subject>/end     ,iisd    line_id, n_frames_sent, reason, t_capture

A frame is a bundle (time tag "immediately") holding the ``frame`` message first, then the
values. u32 fields (seq, schema_id) travel as OSC int32 with the same bits, so readers that see
them as signed get negative numbers past 2**31. Schema/start/end go as plain messages.

Frames are encoded from a per-subject template: everything but the numbers is fixed, and OSC
aligns every argument to 4 bytes, so a frame is one ``struct.pack_into`` for the header and one
numpy assignment into a big-endian float32 view of the template, with no per-target Python work.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from bridge.protocol import Frame, ProtocolError, Schema, StreamEnd, StreamStart
from bridge.transports.base import DEFAULT_HOST, UdpSender

DEFAULT_OSC_PORT = 9000
OSC_ROOT = "/emoface"
OSC_MODES = ("named", "array")
IMMEDIATELY = b"\x00\x00\x00\x00\x00\x00\x00\x01"  # OSC time tag 1: process on arrival
BUNDLE_TAG = b"#bundle\x00"
_FRAME_ARGS = struct.Struct(">IIdfdI")  # seq, line_id, t_s, fps, t_capture, schema_id
MAX_DATAGRAM_BYTES = 65_507  # the largest UDP payload over IPv4


def osc_address(subject: str, leaf: str) -> str:
    """``/emoface/<subject>/<leaf>``."""
    return f"{OSC_ROOT}/{subject}/{leaf}"


def _osc_string(text: str) -> bytes:
    raw = text.encode("utf-8") + b"\x00"
    return raw + b"\x00" * (-len(raw) % 4)


def encode_message(address: str, args: list[tuple[str, object]]) -> bytes:
    """Encode one OSC message from ``(type tag, value)`` pairs (tags i, f, d, s).

    Raises:
        ProtocolError: an unknown tag or a value that does not fit it.
    """
    tags = "," + "".join(tag for tag, _ in args)
    parts = [_osc_string(address), _osc_string(tags)]
    try:
        for tag, value in args:
            if tag == "i":
                parts.append(struct.pack(">i", value))
            elif tag == "f":
                parts.append(struct.pack(">f", value))
            elif tag == "d":
                parts.append(struct.pack(">d", value))
            elif tag == "s":
                parts.append(_osc_string(str(value)))
            else:
                raise ProtocolError(f"unsupported OSC type tag {tag!r}")
    except struct.error as e:
        raise ProtocolError(f"OSC argument does not fit its type: {e}") from e
    return b"".join(parts)


def encode_bundle(messages: list[bytes]) -> bytes:
    """Wrap encoded messages in one bundle with the time tag "immediately"."""
    parts = [BUNDLE_TAG, IMMEDIATELY]
    for message in messages:
        parts.append(struct.pack(">i", len(message)))
        parts.append(message)
    return b"".join(parts)


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def schema_message(schema: Schema) -> bytes:
    """The ``/schema`` message of a subject."""
    args: list[tuple[str, object]] = [
        ("i", _signed32(schema.schema_id)),
        ("f", schema.fps),
        ("s", schema.mapping_id),
        ("s", schema.mapping_hash),
        ("s", schema.target_kind),
    ]
    args += [("s", name) for name in schema.names]
    return encode_message(osc_address(schema.subject, "schema"), args)


def start_message(start: StreamStart) -> bytes:
    """The ``/start`` message of a line."""
    info = json.dumps(start.info, separators=(",", ":"), allow_nan=False)
    return encode_message(
        osc_address(start.subject, "start"),
        [
            ("i", _signed32(start.line_id)),
            ("i", _signed32(start.schema_id)),
            ("i", _signed32(start.n_frames)),
            ("f", start.fps),
            ("d", start.t_capture),
            ("s", info),
        ],
    )


def end_message(end: StreamEnd) -> bytes:
    """The ``/end`` message of a line."""
    return encode_message(
        osc_address(end.subject, "end"),
        [
            ("i", _signed32(end.line_id)),
            ("i", _signed32(end.n_frames_sent)),
            ("s", end.reason.name.lower()),
            ("d", end.t_capture),
        ],
    )


@dataclass
class FrameTemplate:
    """A frame bundle with holes: header fields at ``header_offset``, floats at ``value_slots``."""

    buffer: bytearray
    header_offset: int
    value_slots: np.ndarray  # indices into the buffer viewed as big-endian float32 words
    schema_id: int
    words: np.ndarray

    @classmethod
    def build(cls, schema: Schema, mode: str = "named") -> FrameTemplate:
        """Lay out the bundle of one subject's frames.

        Raises:
            ProtocolError: unknown mode, or a bundle too large for one UDP datagram.
        """
        if mode not in OSC_MODES:
            raise ProtocolError(f"OSC mode must be one of {', '.join(OSC_MODES)}, got {mode!r}")
        header = encode_message(
            osc_address(schema.subject, "frame"),
            [("i", 0), ("i", 0), ("d", 0.0), ("f", 0.0), ("d", 0.0), ("i", 0)],
        )
        if mode == "named":
            messages = [
                encode_message(osc_address(schema.subject, n), [("f", 0.0)]) for n in schema.names
            ]
        else:
            messages = [
                encode_message(
                    osc_address(schema.subject, "values"), [("f", 0.0)] * len(schema.names)
                )
            ]
        bundle = bytearray(encode_bundle([header, *messages]))
        if len(bundle) > MAX_DATAGRAM_BYTES:
            raise ProtocolError(
                f"an OSC frame of {len(schema.names)} targets is {len(bundle)} bytes, over the "
                f"UDP limit of {MAX_DATAGRAM_BYTES}; use mode 'array'"
            )
        # Element layout: 16-byte bundle head, then [size][message] for each message.
        header_offset = 16 + 4 + len(header) - _FRAME_ARGS.size
        slots: list[int] = []
        offset = 16 + 4 + len(header)
        for message in messages:
            end = offset + 4 + len(message)
            if mode == "named":
                slots.append((end - 4) // 4)
            else:
                n = len(schema.names)
                slots.extend(range((end - 4 * n) // 4, end // 4))
            offset = end
        words = np.frombuffer(bundle, dtype=">f4")
        return cls(bundle, header_offset, np.array(slots, dtype=np.intp), schema.schema_id, words)

    def fill(self, frame: Frame) -> bytearray:
        """Write a frame's numbers into the template and return the buffer (reused next call)."""
        _FRAME_ARGS.pack_into(
            self.buffer,
            self.header_offset,
            frame.seq & 0xFFFFFFFF,
            frame.line_id & 0xFFFFFFFF,
            frame.t_s,
            frame.fps,
            frame.t_capture,
            frame.schema_id,
        )
        self.words[self.value_slots] = frame.values
        return self.buffer


def encode_frame_bundle(schema: Schema, frame: Frame, mode: str = "named") -> bytes:
    """One frame as an OSC bundle (a fresh template; the sender caches one per subject)."""
    return bytes(FrameTemplate.build(schema, mode).fill(frame))


class OscSender(UdpSender):
    """Sends protocol messages as OSC to ``host:port`` (default ``127.0.0.1:9000``).

    Args:
        host: destination host.
        port: destination UDP port.
        mode: "named" (one message per target; any OSC tool can bind an address) or "array"
            (one message with every value; about 8x smaller).
    """

    kind = "osc"

    def __init__(
        self, host: str = DEFAULT_HOST, port: int = DEFAULT_OSC_PORT, *, mode: str = "named"
    ) -> None:
        super().__init__(host, port)
        if mode not in OSC_MODES:
            raise ValueError(
                f"mode must be one of {', '.join(OSC_MODES)}, but {mode!r} is provided"
            )
        self.mode = mode
        self._templates: dict[str, FrameTemplate] = {}

    def _send_schema(self, schema: Schema) -> int | None:
        template = self._templates.get(schema.subject)
        if template is None or template.schema_id != schema.schema_id:
            self._templates[schema.subject] = FrameTemplate.build(schema, self.mode)
        return self._sendto(schema_message(schema))

    def _send_start(self, start: StreamStart) -> int | None:
        return self._sendto(start_message(start))

    def _send_end(self, end: StreamEnd) -> int | None:
        return self._sendto(end_message(end))

    def _send_frame(self, frame: Frame) -> int | None:
        template = self._templates.get(frame.subject)
        if template is None or template.schema_id != frame.schema_id:
            raise OSError(f"no schema for subject {frame.subject!r}; call send_schema first")
        return self._sendto(template.fill(frame))
