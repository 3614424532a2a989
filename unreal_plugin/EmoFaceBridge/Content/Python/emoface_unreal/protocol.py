"""EmoFace frame protocol (version 1): schema, frame and stream start/end messages as bytes.

This module is standard-library only and imports nothing from the project, so the Unreal plugin
copies it unchanged into the editor's Python (3.11). The public API below is stable; any change
to the bytes bumps ``PROTOCOL_VERSION``.

Every message starts with the same header. Integers and floats are little-endian::

    offset  size  type     field
    0       4     bytes    magic b"EMFB"
    4       1     u8       protocol version (1)
    5       1     u8       kind: 1 SCHEMA, 2 FRAME, 3 START, 4 END
    6       2     u16      n_subject, byte length of the subject
    8       n     utf-8    subject: the NPC this message is about (1..255 bytes)

then, by kind (offsets relative to the end of the subject)::

    FRAME   0  u32 schema_id    CRC-32 of the target names the values follow (see schema_id())
            4  u32 line_id      the START this frame belongs to (0: none, e.g. a live stream)
            8  u32 seq          per-subject sequence number, +1 per frame, wraps at 2**32
            12 f64 t_s          time of the frame relative to the start of its audio, seconds
            20 f64 t_capture    sender's wall clock (Unix seconds) when the frame was produced
            28 f32 fps          frame rate of the line
            32 u16 n_values
            34 n_values x f32   values, in schema order

    SCHEMA  0  u32 schema_id    must equal schema_id(names)
            4  f32 fps
            8  u16 n_targets
            10 u8 + utf-8       mapping_id   (e.g. "metahuman_faceboard")
            .. u8 + utf-8       mapping_hash (hex digest of the mapping file)
            .. u8 + utf-8       target_kind  ("control_rig", "anim_curves", "arkit", "custom")
            .. u32 + utf-8      target names joined by newlines (0x0A)
            .. n_targets x (f32 lo, f32 hi)   each target's clamp range (+-inf when unbounded)

    START   0  u32 line_id      new line (utterance) of this subject
            4  u32 schema_id    schema its frames will follow
            8  u32 n_frames     frames planned (0: unknown, e.g. live)
            12 f32 fps
            16 f64 t_capture    wall clock (Unix seconds) at which audio time 0 plays
            24 u32 + utf-8      info: a JSON object (emotion, audio, engine...), "{}" when empty

    END     0  u32 line_id
            4  u32 n_frames_sent
            8  u8  reason       0 finished, 1 interrupted, 2 shutdown or error
            9  f64 t_capture    wall clock when the line ended

Each message is one datagram or one ZeroMQ message part; over ZeroMQ the PUB topic frame in front
of it is ``zmq_topic(subject)``. A message whose length does not match its fields exactly is
malformed: ``decode`` raises ``ProtocolError`` and nothing else, whatever the input.

The target names travel only in SCHEMA messages, which senders repeat (twice a second by default)
and re-send whenever the mapping changes; a receiver that joins late names frames as soon as one
arrives. ``Decoder`` is the receive side in one object: it keeps each subject's schema, drops
frames it cannot name yet, drops duplicates and frames older than the newest one seen, and counts
gaps, malformed packets and everything it drops.

About 600 lines: the whole wire format in one stdlib-only file, because the Unreal plugin ships a
byte-identical copy (``emoface unreal install`` generates it; a test keeps them equal).
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

PROTOCOL_VERSION = 1
MAGIC = b"EMFB"
MAX_SUBJECT_BYTES = 255
MAX_VALUES = 65_535  # u16 count
RESTART_WINDOW = 600  # frames (10 s at 60 fps); a seq further behind means the sender restarted

_HEADER = struct.Struct("<4sBBH")  # 8 bytes: magic, version, kind, n_subject
_FRAME = struct.Struct("<IIIddfH")  # 34 bytes before the values
_SCHEMA = struct.Struct("<IfH")  # 10 bytes, then three u8-prefixed strings and the names
_START = struct.Struct("<IIIfdI")  # 28 bytes, then the JSON info
_END = struct.Struct("<IIBd")  # 17 bytes
_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")
_SEQ_MOD = 1 << 32


MAX_JSON_DEPTH = 32  # START info and other JSON on the wire: nesting levels accepted
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNER_PAIR = re.compile(r"\[\]|\{\}")


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows here")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} does not fit a 64-bit float")
    return value


def loads_json(text: str, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for text from the network: bounded size and depth, finite numbers only.

    Depth is checked before parsing, on the bracket skeleton of the text (strings removed):
    each pass peels the innermost pairs, so after ``max_depth`` passes any bracket left means a
    deeper nesting. No Python loop per character, no recursion. (The core has the same rule in
    ``emoface_core.bounded``; this copy is stdlib-only because the Unreal plugin ships it.)

    Raises:
        ValueError: too large, too deep, not JSON, NaN/Infinity or a number that overflows.
    """
    if len(text) > max_bytes:
        raise ValueError(f"{len(text)} characters is more than the limit of {max_bytes}")
    if text.count("[") + text.count("{") > max_depth:
        skeleton = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
        for _ in range(max_depth):
            skeleton, n = _INNER_PAIR.subn("", skeleton)
            if not n:
                break
        if len(skeleton) > max_depth or (skeleton and n):
            raise ValueError(f"nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("nested too deep to read") from None


class ProtocolError(ValueError):
    """A packet is not a well-formed message of this protocol version (or a value can't be sent)."""


class MessageKind(IntEnum):
    """The byte at offset 5."""

    SCHEMA = 1
    FRAME = 2
    START = 3
    END = 4


class EndReason(IntEnum):
    """Why a line ended (END message)."""

    FINISHED = 0
    INTERRUPTED = 1
    SHUTDOWN = 2


@dataclass(frozen=True)
class Schema:
    """What a subject's frames contain: target names in value order, plus where they come from.

    Attributes:
        subject: the NPC the stream animates.
        names: target names (rig controls, curves or blendshapes), one per frame value.
        fps: frames per second of the stream.
        mapping_id: short name of the mapping that produced the values.
        mapping_hash: hex digest of that mapping file, to tell edited versions apart.
        target_kind: "control_rig", "anim_curves", "arkit" or "custom".
        ranges: ``(lo, hi)`` clamp range per target (``-inf``/``inf`` when unbounded); may be
            empty, which encodes as unbounded.
    """

    subject: str
    names: tuple[str, ...]
    fps: float
    mapping_id: str = ""
    mapping_hash: str = ""
    target_kind: str = "custom"
    ranges: tuple[tuple[float, float], ...] = ()

    @property
    def schema_id(self) -> int:
        """CRC-32 of the names; frames carry it so a receiver never applies the wrong schema."""
        return schema_id(self.names)


@dataclass(frozen=True)
class Frame:
    """One frame of one subject.

    Attributes:
        subject: the NPC.
        seq: sequence number, +1 per frame sent to this subject (modulo 2**32).
        t_s: time relative to the start of the line's audio, in seconds.
        fps: frames per second of the line.
        values: one float per schema target (decoded frames hold a tuple; senders may pass any
            sequence of floats, e.g. a float32 array).
        schema_id: ``schema_id(names)`` of the schema the values follow.
        line_id: the line (START) the frame belongs to; 0 when there is none.
        t_capture: sender's wall clock (Unix seconds) when the frame was produced.
    """

    subject: str
    seq: int
    t_s: float
    fps: float
    values: Sequence[float]
    schema_id: int
    line_id: int = 0
    t_capture: float = 0.0


@dataclass(frozen=True)
class StreamStart:
    """A subject starts a line (one utterance); audio time 0 plays at ``t_capture``."""

    subject: str
    line_id: int
    schema_id: int
    n_frames: int
    fps: float
    t_capture: float
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamEnd:
    """A subject's line is over (finished, interrupted by a new line, or the sender stopped)."""

    subject: str
    line_id: int
    n_frames_sent: int
    reason: EndReason
    t_capture: float


Message = Schema | Frame | StreamStart | StreamEnd


def schema_id(names: Iterable[str]) -> int:
    """CRC-32 (zlib) of the target names joined by newlines, as an unsigned 32-bit int."""
    return zlib.crc32("\n".join(names).encode("utf-8")) & 0xFFFFFFFF


def zmq_topic(subject: str) -> bytes:
    """The ZeroMQ topic frame for a subject: its UTF-8 bytes.

    SUB filters match prefixes, so subscribing to ``npc1`` also receives ``npc10``; compare the
    decoded ``subject`` (``Decoder(subjects=...)`` does) to keep exactly one.
    """
    return subject.encode("utf-8")


def _header(kind: MessageKind, subject: str) -> bytes:
    raw = subject.encode("utf-8")
    if not 1 <= len(raw) <= MAX_SUBJECT_BYTES:
        raise ProtocolError(
            f"subject must be 1..{MAX_SUBJECT_BYTES} bytes of UTF-8, got {subject!r}"
        )
    return _HEADER.pack(MAGIC, PROTOCOL_VERSION, kind, len(raw)) + raw


def _short_text(value: str, what: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > 255:
        raise ProtocolError(f"{what} must be at most 255 bytes of UTF-8, got {len(raw)}")
    return _U8.pack(len(raw)) + raw


class FrameEncoder:
    """Encodes one subject's frames with the header bytes computed once.

    ``encode_packed`` takes the values already packed as little-endian float32 bytes, which lets a
    numpy caller do ``values.astype("<f4").tobytes()`` and stay byte-identical to ``encode``.
    """

    def __init__(self, subject: str, schema_id: int, fps: float) -> None:
        self.subject = subject
        self.schema_id = schema_id
        self.fps = fps
        self._prefix = _header(MessageKind.FRAME, subject)

    def encode(
        self,
        seq: int,
        t_s: float,
        values: Sequence[float],
        *,
        line_id: int = 0,
        t_capture: float = 0.0,
    ) -> bytes:
        """Encode a frame whose values are any sequence of floats."""
        n = len(values)
        try:
            packed = struct.pack(f"<{n}f", *values)
        except (struct.error, TypeError) as e:
            raise ProtocolError(f"frame values must be {n} numbers: {e}") from e
        return self.encode_packed(seq, t_s, packed, line_id=line_id, t_capture=t_capture)

    def encode_packed(
        self,
        seq: int,
        t_s: float,
        packed_values: bytes,
        *,
        line_id: int = 0,
        t_capture: float = 0.0,
    ) -> bytes:
        """Encode a frame whose values are already little-endian float32 bytes."""
        n, rest = divmod(len(packed_values), 4)
        if rest or n > MAX_VALUES:
            raise ProtocolError(f"packed values must be 4*n bytes with n <= {MAX_VALUES}")
        try:
            fixed = _FRAME.pack(
                self.schema_id, line_id, seq % _SEQ_MOD, t_s, t_capture, self.fps, n
            )
        except struct.error as e:
            raise ProtocolError(f"frame field out of range: {e}") from e
        return b"".join((self._prefix, fixed, packed_values))


def encode_frame(frame: Frame) -> bytes:
    """Encode a FRAME message."""
    encoder = FrameEncoder(frame.subject, frame.schema_id, frame.fps)
    return encoder.encode(
        frame.seq, frame.t_s, frame.values, line_id=frame.line_id, t_capture=frame.t_capture
    )


def encode_schema(schema: Schema) -> bytes:
    """Encode a SCHEMA message.

    Raises:
        ProtocolError: a name is empty or contains a newline, too many names, or the number of
            ranges is neither 0 nor the number of names.
    """
    names = tuple(schema.names)
    if len(names) > MAX_VALUES:
        raise ProtocolError(f"a schema holds at most {MAX_VALUES} names, got {len(names)}")
    for name in names:
        if not name or "\n" in name:
            raise ProtocolError(f"target names must be non-empty without newlines, got {name!r}")
    ranges = schema.ranges or tuple((-math.inf, math.inf) for _ in names)
    if len(ranges) != len(names):
        raise ProtocolError(f"schema has {len(names)} names but {len(ranges)} ranges")
    joined = "\n".join(names).encode("utf-8")
    flat = [float(x) for pair in ranges for x in pair]
    return b"".join(
        (
            _header(MessageKind.SCHEMA, schema.subject),
            _SCHEMA.pack(schema_id(names), schema.fps, len(names)),
            _short_text(schema.mapping_id, "mapping_id"),
            _short_text(schema.mapping_hash, "mapping_hash"),
            _short_text(schema.target_kind, "target_kind"),
            _U32.pack(len(joined)),
            joined,
            struct.pack(f"<{len(flat)}f", *flat),
        )
    )


def encode_start(start: StreamStart) -> bytes:
    """Encode a START message (``info`` must be JSON-serialisable)."""
    try:
        info = json.dumps(start.info, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise ProtocolError(f"START info must be JSON-serialisable: {e}") from e
    try:
        fixed = _START.pack(
            start.line_id, start.schema_id, start.n_frames, start.fps, start.t_capture, len(info)
        )
    except struct.error as e:
        raise ProtocolError(f"START field out of range: {e}") from e
    return b"".join((_header(MessageKind.START, start.subject), fixed, info))


def encode_end(end: StreamEnd) -> bytes:
    """Encode an END message."""
    try:
        fixed = _END.pack(end.line_id, end.n_frames_sent, int(end.reason), end.t_capture)
    except struct.error as e:
        raise ProtocolError(f"END field out of range: {e}") from e
    return _header(MessageKind.END, end.subject) + fixed


_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    Schema: encode_schema,
    Frame: encode_frame,
    StreamStart: encode_start,
    StreamEnd: encode_end,
}


def encode(message: Message) -> bytes:
    """Encode any message."""
    try:
        return _ENCODERS[type(message)](message)
    except KeyError:
        raise ProtocolError(f"not a protocol message: {type(message).__name__}") from None


def peek(data: bytes) -> tuple[MessageKind, str]:
    """Read only the header: ``(kind, subject)``, for routing without decoding the body.

    Raises:
        ProtocolError: not a message of this protocol version.
    """
    kind, subject, _ = _read_header(data)
    return kind, subject


def _read_header(data: bytes) -> tuple[MessageKind, str, int]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"expected bytes, got {type(data).__name__}")
    if len(data) < _HEADER.size:
        raise ProtocolError(f"packet of {len(data)} bytes is shorter than the 8-byte header")
    magic, version, kind, n_subject = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {bytes(magic)!r} (expected {MAGIC!r})")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"unsupported protocol version {version} (this decoder reads {PROTOCOL_VERSION})"
        )
    if kind not in _DECODERS:
        raise ProtocolError(f"unknown message kind {kind}")
    end = _HEADER.size + n_subject
    if n_subject == 0 or len(data) < end:
        raise ProtocolError(f"subject length {n_subject} does not fit a {len(data)}-byte packet")
    subject = _utf8(data[_HEADER.size : end], "subject")
    return MessageKind(kind), subject, end


def _utf8(raw: bytes | memoryview, what: str) -> str:
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolError(f"{what} is not valid UTF-8") from e


def _need(data: bytes, offset: int, size: int, what: str) -> None:
    if len(data) < offset + size:
        raise ProtocolError(f"packet ends inside {what} ({len(data)} bytes)")


def _exact(data: bytes, end: int, kind: str) -> None:
    if len(data) != end:
        raise ProtocolError(f"{kind} message should be {end} bytes, got {len(data)}")


def _decode_frame(data: bytes, subject: str, offset: int) -> Frame:
    _need(data, offset, _FRAME.size, "the frame fields")
    sid, line_id, seq, t_s, t_capture, fps, n = _FRAME.unpack_from(data, offset)
    start = offset + _FRAME.size
    _exact(data, start + 4 * n, "FRAME")
    values = struct.unpack_from(f"<{n}f", data, start)
    if not (math.isfinite(t_s) and math.isfinite(t_capture) and math.isfinite(fps) and fps > 0):
        raise ProtocolError("FRAME times and fps must be finite (and fps positive)")
    return Frame(subject, seq, t_s, fps, values, sid, line_id, t_capture)


def _read_short_text(data: bytes, offset: int, what: str) -> tuple[str, int]:
    _need(data, offset, 1, what)
    (n,) = _U8.unpack_from(data, offset)
    _need(data, offset + 1, n, what)
    return _utf8(data[offset + 1 : offset + 1 + n], what), offset + 1 + n


def _decode_schema(data: bytes, subject: str, offset: int) -> Schema:
    _need(data, offset, _SCHEMA.size, "the schema fields")
    sid, fps, n = _SCHEMA.unpack_from(data, offset)
    offset += _SCHEMA.size
    mapping_id, offset = _read_short_text(data, offset, "mapping_id")
    mapping_hash, offset = _read_short_text(data, offset, "mapping_hash")
    target_kind, offset = _read_short_text(data, offset, "target_kind")
    _need(data, offset, 4, "the names length")
    (n_bytes,) = _U32.unpack_from(data, offset)
    offset += 4
    _need(data, offset, n_bytes, "the names")
    joined = _utf8(data[offset : offset + n_bytes], "names")
    offset += n_bytes
    names = tuple(joined.split("\n")) if n else ()
    if len(names) != n or any(not name for name in names):
        raise ProtocolError(f"schema announces {n} names but holds {len(names)}")
    if schema_id(names) != sid:
        raise ProtocolError(f"schema_id {sid:#010x} does not match its names")
    _exact(data, offset + 8 * n, "SCHEMA")
    flat = struct.unpack_from(f"<{2 * n}f", data, offset)
    ranges = tuple(zip(flat[0::2], flat[1::2]))
    return Schema(subject, names, fps, mapping_id, mapping_hash, target_kind, ranges)


def _decode_start(data: bytes, subject: str, offset: int) -> StreamStart:
    _need(data, offset, _START.size, "the START fields")
    line_id, sid, n_frames, fps, t_capture, n_info = _START.unpack_from(data, offset)
    offset += _START.size
    _exact(data, offset + n_info, "START")
    try:
        info = loads_json(_utf8(data[offset:], "START info"), max_bytes=n_info)
    except ValueError as e:  # JSONDecodeError is a ValueError
        raise ProtocolError(f"START info is not usable JSON: {e}") from e
    if not isinstance(info, dict):
        raise ProtocolError("START info must be a JSON object")
    return StreamStart(subject, line_id, sid, n_frames, fps, t_capture, info)


def _decode_end(data: bytes, subject: str, offset: int) -> StreamEnd:
    _need(data, offset, _END.size, "the END fields")
    _exact(data, offset + _END.size, "END")
    line_id, n_sent, reason, t_capture = _END.unpack_from(data, offset)
    if reason not in EndReason.__members__.values():
        raise ProtocolError(f"unknown END reason {reason}")
    return StreamEnd(subject, line_id, n_sent, EndReason(reason), t_capture)


_DECODERS: dict[int, Callable[[bytes, str, int], Any]] = {
    MessageKind.SCHEMA: _decode_schema,
    MessageKind.FRAME: _decode_frame,
    MessageKind.START: _decode_start,
    MessageKind.END: _decode_end,
}


def decode(data: bytes) -> Message:
    """Decode one message.

    Raises:
        ProtocolError: for any input that is not exactly one well-formed message; no other
            exception escapes, whatever the bytes.
    """
    kind, subject, offset = _read_header(data)
    try:
        return _DECODERS[kind](data, subject, offset)
    except ProtocolError:
        raise
    except (struct.error, ValueError, TypeError, OverflowError, RecursionError) as e:
        raise ProtocolError(f"malformed {kind.name} message: {e}") from e


@dataclass
class DecoderStats:
    """Counters of one ``Decoder`` (all start at 0).

    Attributes:
        n_packets: packets fed.
        n_malformed: packets that were not a valid message (garbage, truncated, other version).
        n_frames: frames accepted (decoded, named and newer than the last one).
        n_schemas / n_starts / n_ends: control messages accepted.
        n_gaps: times a frame arrived with seq more than one past the previous one.
        n_missing: frames those gaps skipped over (lost or dropped on the way).
        n_duplicates: frames with the same seq as the newest one, dropped.
        n_out_of_order: frames older than the newest one, dropped.
        n_restarts: large backwards seq jumps taken as a restarted sender (state reset).
        n_waiting_for_schema: frames dropped because their schema had not arrived yet.
        n_other_subject: messages for subjects this decoder does not follow.
        n_nonfinite: frames dropped because a value was NaN or infinite (never applied).
    """

    n_packets: int = 0
    n_malformed: int = 0
    n_frames: int = 0
    n_schemas: int = 0
    n_starts: int = 0
    n_ends: int = 0
    n_gaps: int = 0
    n_missing: int = 0
    n_duplicates: int = 0
    n_out_of_order: int = 0
    n_restarts: int = 0
    n_waiting_for_schema: int = 0
    n_other_subject: int = 0
    n_nonfinite: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict (for JSON and printing)."""
        return dict(self.__dict__)


class Decoder:
    """Receive side of the protocol: decode, remember schemas, keep each subject's frames in order.

    ``feed(packet)`` returns the message when it is accepted, else ``None`` (and counts why).
    Frames are accepted only when their subject's schema is known and matches ``schema_id``, and
    only when newer than the newest frame of that subject (latest-wins: a late frame is useless
    to a live rig). Sequence numbers compare modulo 2**32; a START, or a seq more than
    ``RESTART_WINDOW`` behind the newest, begins a new run (a restarted sender counts from 0).
    It never raises.
    """

    def __init__(self, subjects: Iterable[str] | None = None) -> None:
        self.subjects = frozenset(subjects) if subjects is not None else None
        self.schemas: dict[str, Schema] = {}
        self.last_seq: dict[str, int] = {}
        self.stats = DecoderStats()

    def feed(self, data: bytes) -> Message | None:
        """Decode and classify one packet; see the class docstring."""
        self.stats.n_packets += 1
        try:
            message = decode(data)
        except ProtocolError:
            self.stats.n_malformed += 1
            return None
        return self.accept(message)

    def accept(self, message: Message) -> Message | None:
        """Classify a message decoded elsewhere (e.g. from OSC); ``feed`` without the bytes."""
        if self.subjects is not None and message.subject not in self.subjects:
            self.stats.n_other_subject += 1
            return None
        if isinstance(message, Frame):
            return message if self._accept_frame(message) else None
        if isinstance(message, Schema):
            self.schemas[message.subject] = message
            self.stats.n_schemas += 1
        elif isinstance(message, StreamStart):
            # A line may come from a restarted sender whose seq began again at 0: start afresh.
            self.last_seq.pop(message.subject, None)
            self.stats.n_starts += 1
        else:
            self.stats.n_ends += 1
        return message

    def names_of(self, frame: Frame) -> tuple[str, ...]:
        """Target names of an accepted frame's values."""
        return self.schemas[frame.subject].names

    def named(self, frame: Frame) -> dict[str, float]:
        """An accepted frame as ``{target name: value}``."""
        return dict(zip(self.names_of(frame), frame.values))

    def _accept_frame(self, frame: Frame) -> bool:
        # float32 values cannot overflow a float64 sum: it is finite exactly when all are.
        if not math.isfinite(sum(frame.values)):
            self.stats.n_nonfinite += 1
            return False
        schema = self.schemas.get(frame.subject)
        if (
            schema is None
            or schema.schema_id != frame.schema_id
            or len(frame.values) != len(schema.names)
        ):
            self.stats.n_waiting_for_schema += 1
            return False
        last = self.last_seq.get(frame.subject)
        if last is not None:
            ahead = (frame.seq - last) % _SEQ_MOD  # modular, so the u32 wrap is not a restart
            if ahead == 0:
                self.stats.n_duplicates += 1
                return False
            if ahead > _SEQ_MOD // 2:  # behind the newest frame
                if _SEQ_MOD - ahead <= RESTART_WINDOW:
                    self.stats.n_out_of_order += 1
                    return False
                self.stats.n_restarts += 1
            elif ahead > 1:
                self.stats.n_gaps += 1
                self.stats.n_missing += ahead - 1
        self.last_seq[frame.subject] = frame.seq
        self.stats.n_frames += 1
        return True
