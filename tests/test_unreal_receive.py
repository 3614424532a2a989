"""The plugin's receive side against the bridge's real senders on loopback: OSC decoding, the
built-in ZeroMQ subscriber, the reader thread and queue, and the per-tick session logic."""

from __future__ import annotations

import os
import queue
import socket
import time
from pathlib import Path

import fake_unreal
import numpy as np
import pytest

from bridge import protocol as bp
from bridge.mapping import load_mapping
from bridge.transports.osc import (
    OscSender,
    encode_frame_bundle,
    end_message,
    schema_message,
    start_message,
)
from bridge.transports.zmq import ZmqSender
from emoface_core.controllers import CONTROLLER_NAMES

fake_unreal.fake_plugin_on_path()

from emoface_unreal import live, osc, protocol, transport  # noqa: E402
from emoface_unreal.settings import LiveSettings  # noqa: E402

TIMEOUT_S = 5.0
MAPPING = load_mapping("metahuman_faceboard")


def frames_of(n: int, seed: int = 0) -> np.ndarray:
    return (
        np.random.default_rng(seed)
        .uniform(-1, 1, size=(n, len(CONTROLLER_NAMES)))
        .astype(np.float32)
    )


def until(predicate, timeout_s: float = TIMEOUT_S, step=None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if step is not None:
            step()
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_plugin_protocol_is_the_bridge_protocol_byte_for_byte():
    copy, source = Path(protocol.__file__).read_bytes(), Path(bp.__file__).read_bytes()
    assert copy == source, (
        "the plugin's protocol.py differs from bridge/protocol.py: run `emoface unreal sync`"
    )


@pytest.mark.parametrize("mode", ["named", "array"])
def test_osc_messages_convert_to_the_same_protocol_messages(mode):
    schema = MAPPING.schema("npc1", 60.0)
    values = MAPPING.apply_array(frames_of(1))[0]
    frame = bp.Frame("npc1", 4_000_000_000, 1.25, 60.0, values, schema.schema_id, 7, 1234.5)
    converter = osc.OscToProtocol()
    (got_schema,) = converter.convert(schema_message(schema))
    assert (got_schema.names, got_schema.schema_id, got_schema.mapping_id) == (
        schema.names,
        schema.schema_id,
        "metahuman_faceboard",
    )
    (got,) = converter.convert(encode_frame_bundle(schema, frame, mode))
    assert (got.seq, got.line_id, got.t_s, got.schema_id, got.t_capture) == (
        4_000_000_000,
        7,
        1.25,
        schema.schema_id,
        1234.5,
    )
    np.testing.assert_array_equal(np.float32(got.values), values)
    start = bp.StreamStart("npc1", 7, schema.schema_id, 120, 60.0, 99.5, {"source": "a.wav"})
    assert converter.convert(start_message(start)) == [
        protocol.StreamStart("npc1", 7, schema.schema_id, 120, 60.0, 99.5, {"source": "a.wav"})
    ]
    end = bp.StreamEnd("npc1", 7, 120, bp.EndReason.INTERRUPTED, 100.0)
    assert converter.convert(end_message(end))[0].reason == protocol.EndReason.INTERRUPTED


def test_osc_frame_before_its_schema_is_left_for_the_decoder_to_count():
    schema = MAPPING.schema("npc1", 60.0)
    frame = bp.Frame("npc1", 0, 0.0, 60.0, MAPPING.apply_array(frames_of(1))[0], schema.schema_id)
    decoder = protocol.Decoder()
    (message,) = osc.OscToProtocol().convert(encode_frame_bundle(schema, frame))
    assert decoder.feed(protocol.encode(message)) is None
    assert decoder.stats.n_waiting_for_schema == 1


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"/x\x00",
        b"#bundle\x00" + b"\x00" * 7,
        b"/emoface/a/frame\x00\x00\x00\x00,ii\x00\x00\x00\x00\x01",
        b"/emoface/npc1/schema\x00\x00\x00\x00,i\x00\x00\x00\x00\x00\x01",
        b"\xff" * 40,
    ],
)
def test_malformed_osc_raises_osc_error(data):
    with pytest.raises(osc.OscError):
        osc.OscToProtocol().convert(data)


def _drain(session: live.LiveSession, events: list) -> None:
    out = session.tick()
    if out:
        events.append(out)


@pytest.mark.parametrize("mode", ["named", "array"])
def test_osc_stream_from_the_bridge_reaches_the_session(mode):
    source = transport.OscSource("127.0.0.1:0")
    receiver = transport.Receiver(source, queue_size=256)
    receiver.start()
    try:
        assert until(lambda: receiver.connected)
        raw = frames_of(5)
        schema = MAPPING.schema("npc1", 60.0)
        session = live.LiveSession(["npc1"], receiver.queue)
        events: list = []
        with OscSender("127.0.0.1", source.bound_port, mode=mode) as sender:
            sender.send_schema(schema)
            for i, row in enumerate(raw):
                sender.send_frame(
                    bp.Frame("npc1", i, i / 60, 60.0, MAPPING.apply_array(row), schema.schema_id)
                )
            assert until(
                lambda: session.decoder.stats.n_frames == 5, step=lambda: _drain(session, events)
            )
        last = [e.frames["npc1"] for e in events if "npc1" in e.frames][-1]
        assert last.seq == 4
        np.testing.assert_allclose(last.values, MAPPING.apply_array(raw[4]), atol=1e-6)
        assert session.state["npc1"].schema.names == MAPPING.names
    finally:
        receiver.stop()
    assert not receiver.running


def test_a_thousand_garbage_datagrams_are_counted_and_the_receiver_keeps_going():
    source = transport.OscSource("127.0.0.1:0")
    receiver = transport.Receiver(source, queue_size=4096)
    receiver.start()
    rng = np.random.default_rng(1)
    try:
        assert until(lambda: receiver.connected)
        session = live.LiveSession(["npc1"], receiver.queue)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(1000):
                junk = rng.bytes(int(rng.integers(1, 300)))
                if i % 3 == 0:
                    junk = b"/emoface/npc1/frame\x00" + junk  # plausible prefixes, broken bodies
                s.sendto(junk, ("127.0.0.1", source.bound_port))
                if i % 100 == 0:
                    time.sleep(0.002)  # let the reader keep up with the kernel buffer
        assert until(lambda: session.decoder.stats.n_malformed == 1000, step=session.tick), (
            session.decoder.stats
        )
        assert receiver.running and source.last_error.startswith("bad OSC packet")
        schema = MAPPING.schema("npc1", 60.0)
        with OscSender("127.0.0.1", source.bound_port) as sender:
            sender.send_schema(schema)
            sender.send_frame(
                bp.Frame(
                    "npc1", 0, 0.0, 60.0, MAPPING.apply_array(frames_of(1)[0]), schema.schema_id
                )
            )
            assert until(lambda: session.decoder.stats.n_frames == 1, step=session.tick)
    finally:
        receiver.stop()


@pytest.mark.parametrize("backend", ["builtin", "pyzmq"])
def test_zeromq_stream_from_the_bridge_reaches_the_session(backend):
    if backend == "pyzmq":
        pytest.importorskip("zmq")
    with ZmqSender("tcp://127.0.0.1:*") as sender:
        settings = LiveSettings(
            transport="zmq", endpoint=sender.address, subject="npc1", zmq_backend=backend
        )
        source = transport.make_source(settings, ["npc1"])
        expected = transport.BuiltinZmqSource if backend == "builtin" else transport.PyzmqSource
        assert isinstance(source, expected)
        receiver = transport.Receiver(source)
        receiver.start()
        try:
            schema = MAPPING.schema("npc1", 60.0)
            other = MAPPING.schema("npc10", 60.0)  # a prefix match on the topic: dropped by subject
            session = live.LiveSession(["npc1"], receiver.queue)
            raw = frames_of(1)[0]

            def publish() -> None:  # PUB drops until the subscription lands: keep sending
                sender.send_schema(schema)
                sender.send_schema(other)
                sender.send_frame(
                    bp.Frame(
                        "npc1", publish.seq, 0.0, 60.0, MAPPING.apply_array(raw), schema.schema_id
                    )
                )
                publish.seq += 1
                session.tick()

            publish.seq = 0
            assert until(lambda: session.decoder.stats.n_frames >= 3, step=publish)
            assert session.decoder.stats.n_other_subject > 0
            np.testing.assert_allclose(
                session.state["npc1"].last_frame.values, MAPPING.apply_array(raw), atol=1e-6
            )
        finally:
            receiver.stop()


def test_builtin_subscriber_reports_a_missing_publisher_and_connects_when_it_appears():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = LiveSettings(
        endpoint=f"tcp://127.0.0.1:{port}", subject="npc1", zmq_backend="builtin"
    )
    receiver = transport.Receiver(transport.make_source(settings, ["npc1"]))
    receiver.start()
    try:
        assert until(lambda: "cannot open" in receiver.last_error)
        assert not receiver.connected and receiver.running
        with ZmqSender(f"tcp://127.0.0.1:{port}") as sender:
            assert until(lambda: receiver.connected)
            schema = MAPPING.schema("npc1", 60.0)
            assert until(lambda: sender.send_schema(schema) and receiver.queue.qsize() > 0)
    finally:
        receiver.stop()


def test_full_queue_drops_the_oldest_packets():
    class Burst(transport.PacketSource):
        description = "burst"

        def __init__(self) -> None:
            self.sent = False

        def open(self) -> None:
            pass

        def recv(self, timeout_s: float) -> list[bytes]:
            if self.sent:
                time.sleep(timeout_s)
                return []
            self.sent = True
            return [bytes([i]) for i in range(50)]

        def close(self) -> None:
            pass

    receiver = transport.Receiver(Burst(), queue_size=8)
    receiver.start()
    try:
        assert until(lambda: receiver.n_packets == 50)
    finally:
        receiver.stop()
    assert receiver.n_queue_dropped == 42
    assert [receiver.queue.get_nowait()[1][0] for _ in range(8)] == list(range(42, 50))


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_session(clock: Clock, **kwargs) -> tuple[live.LiveSession, queue.Queue]:
    packets: queue.Queue = queue.Queue(maxsize=256)
    return live.LiveSession(["npc1", "npc2"], packets, clock=clock, **kwargs), packets


def put(packets: queue.Queue, clock: Clock, *messages) -> None:
    for m in messages:
        packets.put((clock.t, m if isinstance(m, bytes) else protocol.encode(m)))


def test_session_applies_only_the_newest_frame_and_counts_the_rest():
    clock = Clock()
    session, packets = make_session(clock)
    schema = protocol.Schema("npc1", ("a", "b"), 60.0, "m", "h", "control_rig")
    frame = lambda seq, v: protocol.Frame("npc1", seq, seq / 60, 60.0, (v, v), schema.schema_id)  # noqa: E731
    put(packets, clock, frame(0, 0.0))  # before the schema: cannot be named
    put(
        packets,
        clock,
        schema,
        frame(1, 0.1),
        frame(2, 0.2),
        frame(3, 0.3),
        frame(3, 0.3),
        frame(2, 0.2),
    )
    put(packets, clock, protocol.Schema("npc3", ("a",), 60.0), b"garbage!")
    events = session.tick()
    assert [s.subject for s in events.schemas] == ["npc1"]
    assert events.frames["npc1"].seq == 3 and events.frames["npc1"].values == pytest.approx(
        (0.3, 0.3)
    )
    stats = session.decoder.stats
    assert (
        session.n_superseded,
        stats.n_duplicates,
        stats.n_out_of_order,
        stats.n_waiting_for_schema,
        stats.n_other_subject,
        stats.n_malformed,
    ) == (2, 1, 1, 1, 1, 1)
    assert session.n_dropped == 5
    assert "bad magic" in session.last_error
    assert not session.tick()  # nothing new: no events
    put(packets, clock, schema)  # the periodic repeat is not a change
    assert session.tick().schemas == []


def test_session_rests_idle_faces_after_the_watchdog_timeout():
    clock = Clock()
    session, packets = make_session(clock, watchdog_timeout_s=0.5)
    schema = protocol.Schema("npc1", ("a",), 60.0)
    put(packets, clock, schema, protocol.Frame("npc1", 0, 0.0, 60.0, (1.0,), schema.schema_id))
    assert "npc1" in session.tick().frames
    clock.t += 0.4
    assert session.tick().idle == []
    clock.t += 0.2
    assert session.tick().idle == ["npc1"]
    clock.t += 5
    assert session.tick().idle == []  # once, not every tick


def test_session_schedules_line_audio_with_the_offset():
    clock = Clock(1000.0)
    session, packets = make_session(clock, audio_offset_s=0.1)
    start = protocol.StreamStart(
        "npc1", 1, 0, 60, 60.0, 1000.5, {"source": "/lines/a.wav", "emotion": "happy"}
    )
    put(packets, clock, start)
    events = session.tick()
    assert events.starts == [start] and events.play_audio == []
    assert events.prepare_audio == [("npc1", "/lines/a.wav")]  # imported before it is due
    clock.t = 1000.59
    assert session.tick().play_audio == []
    clock.t = 1000.65
    (play,) = session.tick().play_audio
    assert play[:2] == ("npc1", "/lines/a.wav") and play[2] == pytest.approx(1000.6)
    assert session.tick().play_audio == []
    # A new line stops the old audio; a late START plays from where the audio should be.
    put(
        packets,
        clock,
        protocol.StreamStart("npc1", 2, 0, 60, 60.0, 999.0, {"audio": "/lines/b.wav"}),
    )
    events = session.tick()
    assert events.stop_audio == ["npc1"] and events.play_audio[0][2] == pytest.approx(999.1)
    put(packets, clock, protocol.StreamEnd("npc1", 2, 10, protocol.EndReason.INTERRUPTED, 1001.0))
    assert session.tick().stop_audio == ["npc1"]
    put(
        packets, clock, protocol.StreamStart("npc2", 1, 0, 60, 60.0, 999.0, {"source": "line.json"})
    )
    events = session.tick()
    assert events.play_audio == [] and events.prepare_audio == []  # a baked file is not audio


def test_session_lag_is_measured_against_the_line_audio_clock():
    clock = Clock(1000.0)
    session, packets = make_session(clock)
    schema = protocol.Schema("npc1", ("a",), 60.0)
    put(
        packets,
        clock,
        schema,
        protocol.StreamStart("npc1", 5, schema.schema_id, 60, 60.0, 999.0, {}),
    )
    clock.t = 1000.02
    put(packets, clock, protocol.Frame("npc1", 60, 1.0, 60.0, (0.5,), schema.schema_id, 5, 1000.01))
    session.tick()
    state = session.state["npc1"]
    assert state.lag_ms == pytest.approx(20.0, abs=1e-6) and state.latency_ms == pytest.approx(
        10.0, abs=1e-6
    )


@pytest.mark.skipif(os.name == "nt", reason="port reuse semantics differ")
def test_osc_port_in_use_shows_as_an_error_not_an_exception():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        receiver = transport.Receiver(transport.OscSource(f"127.0.0.1:{port}"))
        receiver.start()
        try:
            assert until(lambda: "cannot open osc udp" in receiver.last_error)
            assert receiver.running and not receiver.connected
        finally:
            receiver.stop()
