"""Senders: golden OSC and Live Link bytes, ZeroMQ bytes and latest-only behaviour, UDP safety."""

from __future__ import annotations

import socket
import struct
import time

import numpy as np
import pytest
import zmq

from bridge import protocol as p
from bridge.errors import NotConnectedError, TransportError
from bridge.transports.base import parse_host_port
from bridge.transports.livelink import (
    LIVELINK_FACE_NAMES,
    LiveLinkSender,
    decode_packet,
    device_id_for,
    encode_packet,
    frame_rate,
)
from bridge.transports.osc import (
    FrameTemplate,
    OscSender,
    encode_frame_bundle,
    schema_message,
    start_message,
)
from bridge.transports.zmq import ZmqSender

SCHEMA = p.Schema("npc", ("jaw", "blink"), 60.0)  # schema_id 0x4f4b10b2
JAW_ONLY = p.Schema("npc", ("JawOpen",), 60.0)
FRAME = p.Frame("npc", 7, 0.5, 60.0, np.array([0.25, -1.0], np.float32), SCHEMA.schema_id, 2, 1.5)

OSC_FRAME_HEADER = (
    b"#bundle\x00"
    b"\x00\x00\x00\x00\x00\x00\x00\x01"  # time tag: immediately
    b"\x00\x00\x00\x3c"  # element size 60
    b"/emoface/npc/frame\x00\x00"
    b",iidfdi\x00"
    b"\x00\x00\x00\x07"  # seq 7
    b"\x00\x00\x00\x02"  # line_id 2
    b"?\xe0\x00\x00\x00\x00\x00\x00"  # t_s 0.5 (double)
    b"Bp\x00\x00"  # fps 60.0 (float)
    b"?\xf8\x00\x00\x00\x00\x00\x00"  # t_capture 1.5 (double)
    b"OK\x10\xb2"  # schema_id
)
GOLDEN_OSC_NAMED = OSC_FRAME_HEADER + (
    b"\x00\x00\x00\x1c/emoface/npc/jaw\x00\x00\x00\x00,f\x00\x00>\x80\x00\x00"  # 0.25
    b"\x00\x00\x00\x1c/emoface/npc/blink\x00\x00,f\x00\x00\xbf\x80\x00\x00"  # -1.0
)
GOLDEN_OSC_ARRAY = OSC_FRAME_HEADER + (
    b"\x00\x00\x00\x20/emoface/npc/values\x00,ff\x00>\x80\x00\x00\xbf\x80\x00\x00"
)
GOLDEN_OSC_SCHEMA = (
    b"/emoface/npc/schema\x00,ifsssss\x00\x00\x00\x00"
    b"OK\x10\xb2"  # schema_id
    b"Bp\x00\x00"  # fps
    b"\x00\x00\x00\x00"  # mapping_id ""
    b"\x00\x00\x00\x00"  # mapping_hash ""
    b"custom\x00\x00"
    b"jaw\x00"
    b"blink\x00\x00\x00"
)
GOLDEN_LIVELINK = (
    b"\x06"  # packet version
    b"\x00\x00\x00\x03dev"  # device id
    b"\x00\x00\x00\x03npc"  # subject
    b"\x00\x00\x00\x07"  # frame number 7
    b"\x00\x00\x00\x00"  # sub-frame 0.0
    b"\x00\x00\x00\x3c\x00\x00\x00\x01"  # 60/1 fps
    b"\x3d"  # 61 values
    + b"?\x80\x00\x00"  # EyeBlinkLeft 1.0
    + b"\x00" * 4 * 16
    + b"?\x00\x00\x00"  # JawOpen (index 17) 0.5
    + b"\x00" * 4 * 43
)


def _python_osc_bundle(messages):
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
    from pythonosc.osc_message_builder import OscMessageBuilder

    bundle = OscBundleBuilder(IMMEDIATELY)
    for address, args in messages:
        builder = OscMessageBuilder(address)
        for tag, value in args:
            builder.add_arg(value, tag)
        bundle.add_content(builder.build())
    return bundle.build().dgram


def test_osc_frame_bundles_match_golden_bytes_and_python_osc():
    assert encode_frame_bundle(SCHEMA, FRAME, "named") == GOLDEN_OSC_NAMED
    assert encode_frame_bundle(SCHEMA, FRAME, "array") == GOLDEN_OSC_ARRAY
    header = (
        "/emoface/npc/frame",
        [("i", 7), ("i", 2), ("d", 0.5), ("f", 60.0), ("d", 1.5), ("i", SCHEMA.schema_id)],
    )
    named = [header, ("/emoface/npc/jaw", [("f", 0.25)]), ("/emoface/npc/blink", [("f", -1.0)])]
    assert _python_osc_bundle(named) == GOLDEN_OSC_NAMED
    array = [header, ("/emoface/npc/values", [("f", 0.25), ("f", -1.0)])]
    assert _python_osc_bundle(array) == GOLDEN_OSC_ARRAY


def test_osc_schema_message_golden_bytes_and_parse():
    from pythonosc.osc_message import OscMessage

    assert schema_message(SCHEMA) == GOLDEN_OSC_SCHEMA
    start = p.StreamStart("npc", 3, SCHEMA.schema_id, 90, 60.0, 12.5, {"emotion": "sad"})
    message = OscMessage(start_message(start))
    assert message.address == "/emoface/npc/start"
    assert message.params == [3, SCHEMA.schema_id, 90, 60.0, 12.5, '{"emotion":"sad"}']


def test_osc_template_reuse_writes_each_frame_fully():
    """The cached template must not leak values of the previous frame."""
    template = FrameTemplate.build(SCHEMA, "named")
    template.fill(FRAME)
    later = p.Frame(
        "npc", 2**32 - 1, 600.0, 60.0, np.array([0.5, 0.0], np.float32), SCHEMA.schema_id
    )
    fresh = encode_frame_bundle(SCHEMA, later, "named")
    assert bytes(template.fill(later)) == fresh
    from pythonosc.osc_bundle import OscBundle

    messages = list(OscBundle(fresh))
    assert messages[0].params[0] == -1  # u32 seq 2**32-1 travels as int32 -1
    assert [m.params[0] for m in messages[1:]] == [0.5, 0.0]


def test_live_link_packet_golden_bytes_and_round_trip():
    values = np.zeros(61, np.float32)
    values[LIVELINK_FACE_NAMES.index("EyeBlinkLeft")] = 1.0
    values[LIVELINK_FACE_NAMES.index("JawOpen")] = 0.5
    packet = encode_packet("npc", 7, values, device_id="dev")
    assert packet == GOLDEN_LIVELINK
    decoded = decode_packet(packet)
    assert decoded.subject == "npc" and decoded.device_id == "dev" and decoded.frame_number == 7
    assert decoded.rate == (60, 1) and decoded.named()["JawOpen"] == 0.5
    for bad in (packet[:-1], packet + b"\x00", b"\x05" + packet[1:], packet[:20], b""):
        with pytest.raises(p.ProtocolError):
            decode_packet(bad)


def test_live_link_rate_and_device_id_are_valid_and_stable():
    assert frame_rate(60) == (60, 1) and frame_rate(30) == (30, 1)
    assert frame_rate(29.97) == (2997, 100)  # never a zero denominator
    assert device_id_for("npc1") == device_id_for("npc1") != device_id_for("npc2")
    assert len(device_id_for("npc1")) == 36  # a UUID string, as the app sends
    with pytest.raises(ValueError):
        frame_rate(0)


def _udp_listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    return sock


def test_live_link_sender_places_values_by_name_not_position():
    schema = p.Schema("npc", ("JawOpen", "NotAShape", "EyeBlinkRight"), 60.0)
    frame = p.Frame("npc", 3, 0.0, 60.0, np.array([0.7, 9.0, 0.2], np.float32), schema.schema_id)
    listener = _udp_listener()
    try:
        with LiveLinkSender("127.0.0.1", listener.getsockname()[1]) as sender:
            assert sender.send_schema(schema)
            assert sender.send_frame(frame)
            named = decode_packet(listener.recv(2048)).named()
        assert named["JawOpen"] == pytest.approx(0.7)
        assert named["EyeBlinkRight"] == pytest.approx(0.2)
        assert sum(v != 0 for v in named.values()) == 2  # "NotAShape" went nowhere
    finally:
        listener.close()


def test_osc_sender_sends_one_bundle_per_frame_over_udp():
    listener = _udp_listener()
    try:
        with OscSender("127.0.0.1", listener.getsockname()[1]) as sender:
            sender.send_schema(SCHEMA)
            assert listener.recv(65536) == GOLDEN_OSC_SCHEMA
            for _ in range(3):
                assert sender.send_frame(FRAME)
            assert [listener.recv(65536) for _ in range(3)] == [GOLDEN_OSC_NAMED] * 3
        assert sender.stats.n_frames == 3 and sender.stats.n_control == 1
    finally:
        listener.close()


def test_udp_senders_never_raise_when_nobody_listens():
    port = _free_udp_port()
    with OscSender("127.0.0.1", port) as osc, LiveLinkSender("127.0.0.1", port) as ll:
        osc.send_schema(SCHEMA)
        ll.send_schema(JAW_ONLY)
        for _ in range(50):
            osc.send_frame(FRAME)
            ll.send_frame(p.Frame("npc", 1, 0.0, 60.0, np.ones(1, np.float32), JAW_ONLY.schema_id))
    assert osc.stats.n_frames + osc.stats.n_errors == 50


def _free_udp_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_sender_must_be_open_and_frames_need_a_schema():
    sender = OscSender("127.0.0.1", 9)
    with pytest.raises(NotConnectedError):
        sender.send_frame(FRAME)
    with sender:
        assert sender.send_frame(FRAME) is False  # no schema yet: counted, not raised
        assert sender.stats.n_errors == 1


def _sub(endpoint: str, topic: bytes = b"") -> zmq.Socket:
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, topic)
    sub.setsockopt(zmq.RCVTIMEO, 2000)
    sub.connect(endpoint)
    return sub


def _wait_subscribed(sender: ZmqSender, sub: zmq.Socket) -> None:
    """Publish schemas until the subscriber sees one (ZeroMQ drops before subscription)."""
    sub.setsockopt(zmq.RCVTIMEO, 50)
    for _ in range(100):
        sender.send_schema(SCHEMA)
        try:
            sub.recv_multipart()
            break
        except zmq.Again:
            continue
    while True:  # drain the extra schemas
        try:
            sub.recv_multipart()
        except zmq.Again:
            break
    sub.setsockopt(zmq.RCVTIMEO, 2000)


def test_zmq_fast_path_bytes_equal_the_protocol_encoder():
    with ZmqSender("tcp://127.0.0.1:*") as sender:
        assert sender.address.startswith("tcp://127.0.0.1:") and not sender.address.endswith("*")
        sub = _sub(sender.address, b"npc")
        try:
            _wait_subscribed(sender, sub)
            assert sender.send_frame(FRAME)  # numpy values: the packed fast path
            topic, payload = sub.recv_multipart()
        finally:
            sub.close()
    assert topic == b"npc"
    expected = dict(FRAME.__dict__, values=tuple(FRAME.values.tolist()))
    assert payload == p.encode(p.Frame(**expected))


def test_zmq_subscriber_that_stops_reading_does_not_delay_the_sender():
    with ZmqSender("tcp://127.0.0.1:*", sndhwm=4) as sender:
        sub = _sub(sender.address)
        try:
            _wait_subscribed(sender, sub)  # connected, then never reads again
            values = np.zeros(171, np.float32)
            worst_s = 0.0
            start = time.perf_counter()
            for seq in range(20_000):  # ~15 MB: far beyond every queue and socket buffer
                t = time.perf_counter()
                sender.send_frame(p.Frame("npc", seq, 0.0, 60.0, values, SCHEMA.schema_id))
                worst_s = max(worst_s, time.perf_counter() - t)
            total_s = time.perf_counter() - start
        finally:
            sub.close()
    assert sender.stats.n_frames + sender.stats.n_dropped == 20_000
    assert total_s < 5.0 and worst_s < 0.25, (total_s, worst_s)


def test_zmq_nodrop_counts_frames_a_stalled_subscriber_could_not_take():
    with ZmqSender("tcp://127.0.0.1:*", sndhwm=2, nodrop=True) as sender:
        sub = _sub(sender.address)
        try:
            _wait_subscribed(sender, sub)
            values = np.zeros(171, np.float32)
            for seq in range(20_000):
                sender.send_frame(p.Frame("npc", seq, 0.0, 60.0, values, SCHEMA.schema_id))
        finally:
            sub.close()
    assert sender.stats.n_dropped > 0
    assert sender.stats.n_frames + sender.stats.n_dropped == 20_000


def test_zmq_errors_are_clear():
    with pytest.raises(ValueError, match="must start with"):
        ZmqSender("127.0.0.1:5555")
    with (
        ZmqSender("tcp://127.0.0.1:*") as first,
        pytest.raises(TransportError, match="cannot bind"),
    ):
        ZmqSender(first.address).open()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9000", ("127.0.0.1", 9000)),
        (":9001", ("127.0.0.1", 9001)),
        ("9002", ("127.0.0.1", 9002)),
        ("localhost", ("localhost", 11111)),
        ("[::1]:9003", ("::1", 9003)),
    ],
)
def test_parse_host_port(text, expected):
    assert parse_host_port(text, 11111) == expected


def test_parse_host_port_rejects_bad_ports():
    with pytest.raises(ValueError, match="between 0 and 65535"):
        parse_host_port("127.0.0.1:70000", 1)
    with pytest.raises(ValueError, match="between 0 and 65535"):
        parse_host_port("host:port", 1)


def test_struct_layout_constants_match_docs():
    """The documented fixed sizes (docs/protocol.md) are what the encoder produces."""
    frame = p.encode(p.Frame("n", 0, 0.0, 60.0, (), 0))
    assert len(frame) == 8 + 1 + 34
    end = p.encode(p.StreamEnd("n", 0, 0, p.EndReason.FINISHED, 0.0))
    assert len(end) == 8 + 1 + 17
    assert struct.calcsize("<IIIddfH") == 34
