"""Read the bridge's OSC stream (``emoface stream --osc``) with the standard library.

The bridge sends, under ``/emoface/<subject>/`` (see ``bridge/osc_transport.py``)::

    frame   ,iidfdi   seq, line_id, t_s, fps, t_capture, schema_id   (first in each frame bundle)
    <name>  ,f        one message per target (mode "named")  -- or --
    values  ,f...     every target in schema order (mode "array")
    schema  ,ifsss s...  schema_id, fps, mapping_id, mapping_hash, target_kind, target names
    start   ,iiifds   line_id, schema_id, n_frames, fps, t_capture, info JSON
    end     ,iisd     line_id, n_frames_sent, reason, t_capture

``OscToProtocol`` turns each datagram into protocol messages (``emoface_unreal.protocol``), so
OSC and ZeroMQ share one decoder: the same schema checks, ordering and counters. Anything that is
not well-formed raises ``OscError``; the caller counts it and carries on.
"""

from __future__ import annotations

import struct
from typing import Any

from emoface_unreal import protocol

OSC_ROOT = "/emoface"
MAX_BUNDLE_DEPTH = 4
_U32 = 0xFFFFFFFF
_END_REASONS = {reason.name.lower(): reason for reason in protocol.EndReason}


class OscError(ValueError):
    """A datagram is not OSC, or not the bridge's layout."""


_FIXED = {
    tag: struct.Struct(fmt)
    for tag, fmt in (
        ("i", ">i"),
        ("f", ">f"),
        ("d", ">d"),
        ("h", ">q"),
        ("t", ">Q"),
        ("r", ">I"),
        ("c", ">i"),
    )
}
_SIZE = struct.Struct(">i")
_FLAGS = {"T": True, "F": False, "N": None, "I": float("inf")}


def _string(data: bytes, offset: int, end: int) -> tuple[str, int]:
    stop = data.find(b"\x00", offset, end)
    if stop < 0:
        raise OscError("unterminated OSC string")
    try:
        text = data[offset:stop].decode("utf-8")
    except UnicodeDecodeError as e:
        raise OscError("OSC string is not UTF-8") from e
    return text, stop + 1 + (-(stop + 1 - offset) % 4)


def _arg(tag: str, data: bytes, offset: int, end: int) -> tuple[Any, int]:
    fixed = _FIXED.get(tag)
    if fixed is not None:
        if offset + fixed.size > end:
            raise OscError(f"OSC argument {tag!r} runs past the end of the packet")
        return fixed.unpack_from(data, offset)[0], offset + fixed.size
    if tag == "s" or tag == "S":
        return _string(data, offset, end)
    if tag == "b":
        if offset + 4 > end:
            raise OscError("OSC blob size runs past the end of the packet")
        (n,) = _SIZE.unpack_from(data, offset)
        if n < 0 or offset + 4 + n > end:
            raise OscError("OSC blob runs past the end of the packet")
        return data[offset + 4 : offset + 4 + n], offset + 4 + n + (-n % 4)
    if tag in _FLAGS:
        return _FLAGS[tag], offset
    raise OscError(f"unsupported OSC type tag {tag!r}")


def _message(data: bytes, start: int, end: int) -> tuple[str, list[Any]]:
    address, offset = _string(data, start, end)
    if not address.startswith("/"):
        raise OscError(f"OSC address must start with '/', got {address[:40]!r}")
    if offset >= end:
        return address, []  # OSC 1.0 allows a missing type tag string
    tags, offset = _string(data, offset, end)
    if not tags.startswith(","):
        raise OscError("OSC type tags must start with ','")
    if tags == ",f" and offset + 4 == end:  # the bridge's per-target value message
        return address, [_FIXED["f"].unpack_from(data, offset)[0]]
    args = []
    for tag in tags[1:]:
        value, offset = _arg(tag, data, offset, end)
        args.append(value)
    if offset != end:
        raise OscError(f"OSC message has {end - offset} stray bytes")
    return address, args


def _walk(data: bytes, start: int, end: int, depth: int, out: list[tuple[str, list[Any]]]) -> None:
    if data.startswith(b"#bundle\x00", start):
        if depth >= MAX_BUNDLE_DEPTH:
            raise OscError("OSC bundles nested too deep")
        if end - start < 16:
            raise OscError("OSC bundle shorter than its header")
        offset = start + 16
        while offset < end:
            if offset + 4 > end:
                raise OscError("OSC bundle element size runs past the end")
            (n,) = _SIZE.unpack_from(data, offset)
            if n <= 0 or n % 4 or offset + 4 + n > end:
                raise OscError(f"OSC bundle element of {n} bytes does not fit")
            _walk(data, offset + 4, offset + 4 + n, depth + 1, out)
            offset += 4 + n
    else:
        out.append(_message(data, start, end))


def parse_message(data: bytes) -> tuple[str, list[Any]]:
    """``(address, args)`` of one OSC message.

    Raises:
        OscError: malformed.
    """
    return _message(bytes(data), 0, len(data))


def parse_packet(data: bytes) -> list[tuple[str, list[Any]]]:
    """Every message of a packet (bundles flattened, in order).

    Raises:
        OscError: malformed.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise OscError(f"expected bytes, got {type(data).__name__}")
    out: list[tuple[str, list[Any]]] = []
    _walk(bytes(data), 0, len(data), 0, out)
    return out


def _split(address: str, root: str) -> tuple[str, str]:
    prefix = root + "/"
    if not address.startswith(prefix):
        raise OscError(f"address {address[:60]!r} is not under {root}/")
    subject, sep, leaf = address[len(prefix) :].partition("/")
    if not subject or not sep or not leaf:
        raise OscError(f"address {address[:60]!r} is not {root}/<subject>/<name>")
    return subject, leaf


def _types(args: list[Any], expected: str, what: str) -> None:
    kinds = {"i": int, "f": float, "d": float, "s": str}
    if len(args) < len(expected) or any(
        not isinstance(a, kinds[t]) or isinstance(a, bool) for a, t in zip(args, expected)
    ):
        raise OscError(f"{what} message must have arguments {expected!r}")


class OscToProtocol:
    """Converts the bridge's OSC datagrams to protocol messages, remembering schemas per subject.

    Args:
        root: address root (the bridge uses ``/emoface``).
    """

    def __init__(self, root: str = OSC_ROOT) -> None:
        self.root = root
        self.names: dict[str, tuple[str, ...]] = {}

    def convert(self, data: bytes) -> list[protocol.Message]:
        """The protocol messages one datagram carries.

        Raises:
            OscError: the datagram is not OSC or not in the bridge's layout.
        """
        messages = parse_packet(data)
        if not messages:
            return []
        subject, leaf = _split(messages[0][0], self.root)
        if leaf == "frame":
            return [self._frame(subject, messages)]
        out = []
        for address, args in messages:
            subject, leaf = _split(address, self.root)
            if leaf == "schema":
                out.append(self._schema(subject, args))
            elif leaf == "start":
                out.append(self._start(subject, args))
            elif leaf == "end":
                out.append(self._end(subject, args))
            else:
                raise OscError(f"unexpected OSC message {address[:60]!r} outside a frame bundle")
        return out

    def _schema(self, subject: str, args: list[Any]) -> protocol.Schema:
        _types(args, "ifsss", "schema")
        names = tuple(args[5:])
        if not all(isinstance(n, str) and n for n in names):
            raise OscError("schema target names must be non-empty strings")
        schema = protocol.Schema(subject, names, float(args[1]), args[2], args[3], args[4])
        if schema.schema_id != args[0] & _U32:
            raise OscError(f"schema_id {args[0] & _U32:#010x} does not match its names")
        self.names[subject] = names
        return schema

    def _start(self, subject: str, args: list[Any]) -> protocol.StreamStart:
        _types(args, "iiifds", "start")
        try:
            info = protocol.loads_json(args[5], max_bytes=len(args[5]))
        except ValueError as e:
            raise OscError(f"start info is not usable JSON: {e}") from e
        if not isinstance(info, dict):
            raise OscError("start info must be a JSON object")
        return protocol.StreamStart(
            subject,
            args[0] & _U32,
            args[1] & _U32,
            args[2] & _U32,
            float(args[3]),
            float(args[4]),
            info,
        )

    def _end(self, subject: str, args: list[Any]) -> protocol.StreamEnd:
        _types(args, "iisd", "end")
        reason = _END_REASONS.get(args[2])
        if reason is None:
            raise OscError(f"unknown end reason {args[2]!r}")
        return protocol.StreamEnd(subject, args[0] & _U32, args[1] & _U32, reason, float(args[3]))

    def _frame(self, subject: str, messages: list[tuple[str, list[Any]]]) -> protocol.Frame:
        header = messages[0][1]
        _types(header, "iidfdi", "frame")
        seq, line_id, t_s, fps, t_capture, sid = header[:6]
        named: dict[str, float] = {}
        array: list[float] | None = None
        prefix = f"{self.root}/{subject}/"
        n_prefix = len(prefix)
        for address, args in messages[1:]:
            if not address.startswith(prefix) or "/" in address[n_prefix:]:
                raise OscError(f"frame bundle of {subject!r} holds {address[:60]!r}")
            if not args or not all(type(a) is float for a in args):
                raise OscError(f"{address[:60]!r}: frame values must be floats")
            leaf = address[n_prefix:]
            if leaf == "values":
                array = args
            else:
                named[leaf] = args[0]
        names = self.names.get(subject, ())
        if array is not None:
            values: tuple[float, ...] = tuple(array)
        elif names and all(n in named for n in names):
            values = tuple(named[n] for n in names)
        else:
            values = ()  # schema not seen yet: the decoder counts it as waiting for the schema
        return protocol.Frame(
            subject,
            seq & _U32,
            float(t_s),
            float(fps),
            values,
            sid & _U32,
            line_id & _U32,
            float(t_capture),
        )
