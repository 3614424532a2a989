"""The wire format: golden bytes, round trips, garbage resistance and the receiving rules."""

from __future__ import annotations

import ast
import importlib.util
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from bridge import protocol as p

PROTOCOL_FILE = Path(p.__file__)

# Golden messages, field by field (layout in the module docstring / docs/protocol.md).
HEADER_FRAME_NPC = b"EMFB" + b"\x01" + b"\x02" + b"\x03\x00" + b"npc"
GOLDEN_FRAME = HEADER_FRAME_NPC + (
    b"\x04\x03\x02\x01"  # schema_id 0x01020304
    b"\x02\x00\x00\x00"  # line_id 2
    b"\x07\x00\x00\x00"  # seq 7
    b"\x00\x00\x00\x00\x00\x00\xe0?"  # t_s 0.5 (f64)
    b"\x00\x00\x00@\xfcT\xd9A"  # t_capture 1.7e9 (f64)
    b"\x00\x00pB"  # fps 60.0 (f32)
    b"\x02\x00"  # n_values 2
    b"\x00\x00\x80>"  # 0.25
    b"\x00\x00\x80\xbf"  # -1.0
)
GOLDEN_SCHEMA = b"EMFB\x01\x01\x03\x00npc" + (
    b"\xa4#+|"  # schema_id = crc32(b"jaw.Y\nblink") = 0x7c2b23a4
    b"\x00\x00pB"  # fps 60.0
    b"\x02\x00"  # 2 targets
    b"\x01m"  # mapping_id "m"
    b"\x02ab"  # mapping_hash "ab"
    b"\x06custom"  # target_kind
    b"\x0b\x00\x00\x00jaw.Y\nblink"  # names
    b"\x00\x00\x00\x00\x00\x00\x80?"  # jaw.Y range [0, 1]
    b"\x00\x00\x80\xff\x00\x00\x80\x7f"  # blink unbounded [-inf, inf]
)
GOLDEN_START = b"EMFB\x01\x03\x03\x00npc" + (
    b"\x02\x00\x00\x00"  # line_id 2
    b"\x04\x03\x02\x01"  # schema_id
    b"Z\x00\x00\x00"  # n_frames 90
    b"\x00\x00pB"  # fps 60
    b"\x00\x00\x00\x00\x00\x00\xf8?"  # t_capture 1.5
    b'\x13\x00\x00\x00{"emotion":"happy"}'
)
GOLDEN_END = b"EMFB\x01\x04\x03\x00npc" + (
    b"\x02\x00\x00\x00"  # line_id 2
    b"Z\x00\x00\x00"  # 90 frames sent
    b"\x01"  # reason: interrupted
    b"\x00\x00\x00\x00\x00\x00\x08@"  # t_capture 3.0
)

SCHEMA = p.Schema(
    "npc", ("jaw.Y", "blink"), 60.0, "m", "ab", "custom", ((0.0, 1.0), (-math.inf, math.inf))
)
FRAME = p.Frame("npc", 7, 0.5, 60.0, (0.25, -1.0), 0x01020304, 2, 1.7e9)
START = p.StreamStart("npc", 2, 0x01020304, 90, 60.0, 1.5, {"emotion": "happy"})
END = p.StreamEnd("npc", 2, 90, p.EndReason.INTERRUPTED, 3.0)


@pytest.mark.parametrize(
    ("message", "golden"),
    [(FRAME, GOLDEN_FRAME), (SCHEMA, GOLDEN_SCHEMA), (START, GOLDEN_START), (END, GOLDEN_END)],
    ids=["frame", "schema", "start", "end"],
)
def test_golden_bytes_both_ways(message, golden):
    assert p.encode(message) == golden
    assert p.decode(golden) == message


def test_round_trip_unicode_subject_many_values_and_empty_info():
    names = tuple(f"CTRL_x{i}.Y" for i in range(300))
    schema = p.Schema("Élodie_01", names, 59.94, "custom", "0123456789abcdef", "control_rig")
    back = p.decode(p.encode(schema))
    assert back.names == names and back.subject == "Élodie_01"
    assert back.ranges == tuple((-math.inf, math.inf) for _ in names)
    values = tuple(float(np.float32(v)) for v in np.linspace(-1, 1, 300))
    frame = p.Frame("Élodie_01", 2**32 - 1, 599.98, 60.0, values, schema.schema_id)
    assert p.decode(p.encode(frame)) == frame
    start = p.StreamStart("Élodie_01", 1, schema.schema_id, 0, 60.0, 0.0)
    assert p.decode(p.encode(start)).info == {}


def test_frame_encoder_packed_path_is_byte_identical_to_struct_path():
    values = np.random.default_rng(1).standard_normal(171).astype(np.float32)
    encoder = p.FrameEncoder("npc1", 123, 60.0)
    slow = encoder.encode(9, 1.25, values.tolist(), line_id=4, t_capture=1.7e9)
    fast = encoder.encode_packed(
        9, 1.25, values.astype("<f4").tobytes(), line_id=4, t_capture=1.7e9
    )
    assert fast == slow
    assert fast == p.encode(p.Frame("npc1", 9, 1.25, 60.0, values.tolist(), 123, 4, 1.7e9))


def test_peek_reads_kind_and_subject_only():
    assert p.peek(GOLDEN_FRAME) == (p.MessageKind.FRAME, "npc")
    assert p.peek(GOLDEN_SCHEMA[:12]) == (p.MessageKind.SCHEMA, "npc")  # body not needed


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "shorter than the 8-byte header"),
        (b"XXXX" + GOLDEN_FRAME[4:], "bad magic"),
        (GOLDEN_FRAME[:4] + b"\x02" + GOLDEN_FRAME[5:], "unsupported protocol version 2"),
        (GOLDEN_FRAME[:5] + b"\x09" + GOLDEN_FRAME[6:], "unknown message kind 9"),
        (GOLDEN_FRAME[:-1], "FRAME message should be"),
        (GOLDEN_FRAME + b"\x00", "FRAME message should be"),
        (GOLDEN_FRAME[:6] + b"\xff\x00" + GOLDEN_FRAME[8:], "does not fit"),
        (GOLDEN_SCHEMA.replace(b"\xa4#+|", b"\x00\x00\x00\x00"), "does not match its names"),
        (GOLDEN_START.replace(b'{"emotion":"happy"}', b'["emotion","happy"]'), "JSON object"),
        (GOLDEN_END[:-9] + b"\x07" + GOLDEN_END[-8:], "unknown END reason 7"),
        (b"EMFB\x01\x02\x02\x00\xff\xfe" + GOLDEN_FRAME[11:], "not valid UTF-8"),
        ("text", "expected bytes"),
    ],
)
def test_malformed_messages_raise_protocol_error_naming_the_problem(data, fragment):
    with pytest.raises(p.ProtocolError, match=fragment):
        p.decode(data)


def test_decode_only_ever_raises_protocol_error_on_garbage():
    """Mutations, truncations and random bytes of every kind: ProtocolError or a valid message."""
    rng = random.Random(5)
    goldens = [GOLDEN_FRAME, GOLDEN_SCHEMA, GOLDEN_START, GOLDEN_END]
    n_rejected = 0
    for i in range(6000):
        data = bytearray(goldens[i % 4])
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data) + 1)]
        if rng.random() < 0.1:
            data = bytearray(rng.randbytes(rng.randrange(64)))
        try:
            message = p.decode(bytes(data))
        except p.ProtocolError:
            n_rejected += 1
        else:
            assert p.encode(message) is not None  # what decodes is a real message
    assert n_rejected > 3000  # most mutations are caught (the rest hit value bytes)


def test_encoding_refuses_what_the_wire_cannot_carry():
    with pytest.raises(p.ProtocolError, match="subject"):
        p.encode(p.Frame("", 0, 0.0, 60.0, (), 0))
    with pytest.raises(p.ProtocolError, match="newlines"):
        p.encode(p.Schema("npc", ("a\nb",), 60.0))
    with pytest.raises(p.ProtocolError, match="ranges"):
        p.encode(p.Schema("npc", ("a", "b"), 60.0, ranges=((0.0, 1.0),)))
    with pytest.raises(p.ProtocolError, match="JSON"):
        p.encode(p.StreamStart("npc", 1, 0, 0, 60.0, 0.0, {"x": object()}))
    with pytest.raises(p.ProtocolError, match="numbers"):
        p.encode(p.Frame("npc", 0, 0.0, 60.0, ("a",), 0))


def test_protocol_module_is_standard_library_only_and_self_contained(tmp_path):
    """The Unreal plugin copies the file: it must import nothing but the standard library."""
    tree = ast.parse(PROTOCOL_FILE.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
    # Loaded as a lone file under another name (as inside the plugin), it works the same.
    copy = tmp_path / "emoface_protocol_copy.py"
    copy.write_bytes(PROTOCOL_FILE.read_bytes())
    spec = importlib.util.spec_from_file_location("emoface_protocol_copy", copy)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
        assert module.decode(GOLDEN_FRAME).values == (0.25, -1.0)
        assert module.encode(module.decode(GOLDEN_SCHEMA)) == GOLDEN_SCHEMA
    finally:
        del sys.modules[spec.name]


def _frame(seq: int, subject: str = "npc", schema: p.Schema = SCHEMA) -> bytes:
    return p.encode(p.Frame(subject, seq, seq / 60, 60.0, (0.5, 0.5), schema.schema_id))


def test_decoder_counts_gaps_duplicates_out_of_order_and_keeps_only_newer_frames():
    dec = p.Decoder()
    assert dec.feed(_frame(0)) is None  # no schema yet: cannot be named
    assert dec.stats.n_waiting_for_schema == 1
    assert isinstance(dec.feed(p.encode(SCHEMA)), p.Schema)
    accepted = [m.seq for s in (1, 2, 5, 5, 4, 6, 9) if (m := dec.feed(_frame(s))) is not None]
    assert accepted == [1, 2, 5, 6, 9]
    st = dec.stats
    counts = (st.n_frames, st.n_gaps, st.n_missing, st.n_duplicates, st.n_out_of_order)
    assert counts == (5, 2, 4, 1, 1)
    assert dec.named(dec.feed(_frame(10))) == {"jaw.Y": 0.5, "blink": 0.5}


def test_decoder_handles_seq_wrap_restart_and_start_messages():
    dec = p.Decoder()
    dec.feed(p.encode(SCHEMA))
    assert dec.feed(_frame(2**32 - 2)) and dec.feed(_frame(2**32 - 1))
    assert dec.feed(_frame(0)) is not None  # the u32 wrap is the next frame, not a restart
    assert dec.stats.n_gaps == 0 and dec.stats.n_restarts == 0
    assert dec.feed(_frame(1000)) is not None  # a gap of 999
    assert dec.feed(_frame(1000 - p.RESTART_WINDOW)) is None  # still within the window: late
    assert dec.feed(_frame(5)) is not None  # far behind: a restarted sender counting from 0
    assert (dec.stats.n_gaps, dec.stats.n_out_of_order, dec.stats.n_restarts) == (1, 1, 1)
    dec.feed(p.encode(START))  # a new line resets ordering: seq may start over
    assert dec.feed(_frame(3)) is not None
    assert dec.stats.n_out_of_order == 1


def test_decoder_rejects_frames_of_a_stale_schema_and_filters_subjects():
    dec = p.Decoder(subjects=["npc"])
    dec.feed(p.encode(SCHEMA))
    other = p.Schema("npc", ("jaw.Y",), 60.0)
    assert dec.feed(_frame(1, schema=other)) is None  # schema_id mismatch
    assert dec.stats.n_waiting_for_schema == 1
    assert dec.feed(_frame(1, subject="npc10")) is None
    assert dec.stats.n_other_subject == 1
    assert dec.feed(b"\x00garbage") is None and dec.stats.n_malformed == 1
    assert dec.stats.n_packets == 4
