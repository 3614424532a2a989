"""The mock receiver: garbage resistance, sequence checks, late joiners, timing, recording, CLI."""

from __future__ import annotations

import json
import random
import socket
import threading
import time

import numpy as np
import pytest
import zmq

from bridge import protocol as p
from bridge.cli import main
from bridge.mapping import load_mapping
from bridge.receiver import MockReceiver
from bridge.runtime.subject import Output, SubjectStream
from bridge.transports.livelink import encode_packet
from bridge.transports.osc import OscSender, encode_frame_bundle, encode_message, schema_message
from bridge.transports.zmq import ZmqSender

SCHEMA = p.Schema("npc", ("jaw", "blink"), 60.0)
TIMEOUT_S = 5.0


def _frame(seq: int, subject: str = "npc", values=(0.25, -1.0)) -> p.Frame:
    return p.Frame(
        subject, seq, seq / 60, 60.0, tuple(values), p.schema_id(("jaw", "blink")), 1, 0.0
    )


def _garbage(rng: random.Random, valid: list[bytes]) -> bytes:
    """Random bytes, or a valid packet truncated/corrupted in its header."""
    kind = rng.randrange(3)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 300))
    base = bytearray(rng.choice(valid))
    if kind == 1:
        return bytes(base[: rng.randrange(1, len(base) - 1)])
    base[rng.randrange(min(8, len(base)))] ^= 0xFF  # header byte flipped: never valid
    return bytes(base)


def _send_in_batches(send, packets: list[bytes], rx: MockReceiver, batch: int = 100) -> None:
    """Send, pausing until the receiver has counted each batch, so no socket buffer overflows."""
    base = rx.stats.n_packets
    for start in range(0, len(packets), batch):
        for packet in packets[start : start + batch]:
            send(packet)
        target = base + start + min(batch, len(packets) - start)
        assert rx.wait_until(lambda t=target: rx.stats.n_packets >= t, TIMEOUT_S)


def _udp_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def test_osc_receiver_counts_1000_garbage_packets_and_keeps_receiving():
    rng = random.Random(11)
    valid = [schema_message(SCHEMA), encode_frame_bundle(SCHEMA, _frame(1))]
    packets = [_garbage(rng, valid) for _ in range(990)]
    packets += [encode_message("/other/app", [("f", 1.0)])] * 5  # valid OSC, not ours
    packets += [encode_message("/emoface/npc/frame", [("i", 1)])] * 5  # ours, wrong arguments
    with MockReceiver("osc", "127.0.0.1:0") as rx:
        out = _udp_socket()
        try:
            _send_in_batches(lambda b: out.sendto(b, ("127.0.0.1", rx.port)), packets, rx)
            assert rx.stats.n_malformed == 1000 and rx.stats.n_frames == 0
            with OscSender("127.0.0.1", rx.port) as sender:
                sender.send_schema(SCHEMA)
                for seq in range(10):
                    sender.send_frame(_frame(seq))
                assert rx.wait_for(10, TIMEOUT_S)
        finally:
            out.close()
    assert rx.stats.n_malformed == 1000
    assert [f.seq for f in rx.frames] == list(range(10))
    assert rx.frames[0].named() == {"jaw": 0.25, "blink": -1.0}


def test_live_link_receiver_counts_1000_garbage_packets_and_keeps_receiving():
    rng = random.Random(12)
    values = np.linspace(0, 1, 61, dtype=np.float32)
    valid = [encode_packet("npc", 1, values)]
    packets = [_garbage(rng, valid) for _ in range(1000)]
    with MockReceiver("livelink", "127.0.0.1:0") as rx:
        out = _udp_socket()
        try:
            _send_in_batches(lambda b: out.sendto(b, ("127.0.0.1", rx.port)), packets, rx)
            for seq in range(5):
                out.sendto(encode_packet("npc", seq, values), ("127.0.0.1", rx.port))
            assert rx.wait_for(5, TIMEOUT_S)
        finally:
            out.close()
    assert rx.stats.n_malformed == 1000
    assert rx.frames[-1].named()["TongueOut"] == pytest.approx(values[51])


def test_zmq_receiver_counts_1000_garbage_messages_and_keeps_receiving():
    rng = random.Random(13)
    valid = [p.encode(SCHEMA), p.encode(_frame(1))]
    packets = [_garbage(rng, valid) for _ in range(1000)]
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    try:
        with MockReceiver("zmq", f"tcp://127.0.0.1:{port}") as rx:
            assert _until_connected(lambda: pub.send_multipart([b"npc", p.encode(SCHEMA)]), rx)
            n_before = rx.stats.n_packets

            counter = iter(range(len(packets)))

            def send(packet: bytes) -> None:
                n = next(counter)
                if n % 10 == 0:
                    pub.send(packet)  # a single-part message: no topic frame
                elif n % 10 == 1:
                    pub.send_multipart([b"npc", packet, b"extra"])
                else:
                    pub.send_multipart([b"npc", packet])

            _send_in_batches(send, packets, rx)
            assert rx.stats.n_packets - n_before == 1000
            for seq in range(5):
                pub.send_multipart([b"npc", p.encode(_frame(seq))])
            assert rx.wait_for(5, TIMEOUT_S)
    finally:
        pub.close()
    assert rx.stats.n_malformed == 1000


def _until_connected(publish, rx: MockReceiver) -> bool:
    """ZeroMQ drops what is published before the subscription lands: publish until it does."""
    for _ in range(100):
        publish()
        if rx.wait_until(lambda: rx.stats.n_packets > 0, 0.05):
            return True
    return False


def test_receiver_counts_gaps_duplicates_and_out_of_order_frames():
    with ZmqSender("tcp://127.0.0.1:*") as sender, MockReceiver("zmq", sender.address) as rx:
        assert _until_connected(lambda: sender.send_schema(SCHEMA), rx)
        for seq in (0, 1, 3, 3, 2, 4):
            sender.send_frame(_frame(seq))
        assert rx.wait_until(lambda: rx.stats.n_packets >= rx.stats.n_schemas + 6, TIMEOUT_S)
    stats = rx.stats
    assert [f.seq for f in rx.frames] == [0, 1, 3, 4]
    assert (stats.n_gaps, stats.n_missing, stats.n_duplicates, stats.n_out_of_order) == (1, 1, 1, 1)


class _SteppingClock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_late_zmq_joiner_decodes_after_the_schema_repeat():
    mapping = load_mapping("metahuman_faceboard")
    clock = _SteppingClock()
    values = np.random.default_rng(0).uniform(-1, 1, (400, 174)).astype(np.float32)
    with ZmqSender("tcp://127.0.0.1:*") as sender:
        stream = SubjectStream("npc", [Output(sender, mapping)], schema_interval_s=0.5, clock=clock)
        stream.start_line()  # schema + START go out at t=0 with nobody listening
        with MockReceiver("zmq", sender.address) as rx:
            # Frames at t=0 reach the new subscriber but cannot be named: no schema yet.
            for _ in range(100):
                stream.push(values[stream.seq])
                if rx.wait_until(lambda: rx.stats.n_waiting_for_schema > 0, 0.05):
                    break
            assert rx.stats.n_waiting_for_schema > 0 and rx.stats.n_frames == 0
            joined_seq = stream.seq
            for _ in range(31):  # half a second of stream time: the schema is repeated
                clock.now_s += 1 / 60
                stream.push(values[stream.seq])
                time.sleep(0.002)  # a burst would overflow the latest-only queue (by design)
            assert rx.wait_for(1, TIMEOUT_S)
            first = rx.frames[0]
    assert first.names == mapping.names
    assert joined_seq <= first.seq <= joined_seq + 30
    np.testing.assert_array_equal(
        np.array(first.values, np.float32), mapping.apply_array(values[first.seq])
    )


def _free_udp_port() -> int:
    sock = _udp_socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.mark.parametrize("mode", ["array", "named"])
def test_late_osc_joiner_names_frames_after_the_schema_repeat(mode):
    """Array frames need the repeated schema; named frames describe themselves at once."""
    mapping = load_mapping("arkit52")
    clock = _SteppingClock()
    port = _free_udp_port()
    values = np.random.default_rng(1).uniform(-1, 1, (120, 174)).astype(np.float32)
    with OscSender("127.0.0.1", port, mode=mode) as sender:
        stream = SubjectStream("npc", [Output(sender, mapping)], schema_interval_s=0.5, clock=clock)
        stream.start_line()  # lost: nobody is bound yet
        with MockReceiver("osc", f"127.0.0.1:{port}") as rx:
            for i in range(60):  # one second of stream time
                clock.now_s = (i + 1) / 60
                stream.push(values[i])
            assert rx.wait_until(lambda: rx.stats.n_packets >= 60 + 1, TIMEOUT_S)
    accepted = [f.seq for f in rx.frames]
    if mode == "named":
        assert accepted == list(range(60)) and rx.stats.n_waiting_for_schema == 0
    else:
        first = 29  # the schema repeats once 0.5 s of clock has passed since the line start
        assert accepted == list(range(first, 60))
        assert rx.stats.n_waiting_for_schema == first
    for frame in rx.frames:
        np.testing.assert_array_equal(
            np.array(frame.values, np.float32), mapping.apply_array(values[frame.seq])
        )


def test_subject_filter_is_exact_despite_zmq_prefix_matching():
    schema10 = p.Schema("npc10", SCHEMA.names, 60.0)
    with (
        ZmqSender("tcp://127.0.0.1:*") as sender,
        MockReceiver("zmq", sender.address, subject="npc") as rx,
    ):
        assert _until_connected(lambda: sender.send_schema(SCHEMA), rx)
        sender.send_schema(schema10)
        for seq in range(3):
            sender.send_frame(_frame(seq, "npc10"))
            sender.send_frame(_frame(seq, "npc"))
        assert rx.wait_for(3, TIMEOUT_S)
        assert rx.wait_until(lambda: rx.stats.n_other_subject >= 4, TIMEOUT_S)
    assert {f.subject for f in rx.frames} == {"npc"}


def test_timing_reports_rate_latency_and_jitter_from_arrivals():
    now = {"t": 0.0}
    rx = MockReceiver("zmq", "tcp://127.0.0.1:1", wall_clock=lambda: now["t"])
    rx.process([b"npc", p.encode(SCHEMA)])
    for seq in range(61):
        t_capture = 100.0 + seq / 60
        now["t"] = t_capture + 0.002  # 2 ms on the way
        frame = p.Frame("npc", seq, seq / 60, 60.0, (0.0, 0.0), SCHEMA.schema_id, 1, t_capture)
        rx.process([b"npc", p.encode(frame)])
    timing = rx.timing()
    assert timing["fps"] == pytest.approx(60.0)
    assert timing["latency_p50_ms"] == pytest.approx(2.0, abs=1e-6)
    assert timing["latency_p99_ms"] == pytest.approx(2.0, abs=1e-6)
    assert timing["jitter_ms"] == pytest.approx(0.0, abs=1e-6)


def test_recordings_hold_what_arrived(tmp_path):
    rx = MockReceiver("zmq", "tcp://127.0.0.1:1")
    rx.process([b"npc", p.encode(SCHEMA)])
    for seq in range(4):
        rx.process([b"npc", p.encode(_frame(seq, values=(seq / 4, -seq / 4)))])
    lines = rx.write(tmp_path / "rec.jsonl").read_text().splitlines()
    assert [json.loads(line)["values"]["jaw"] for line in lines] == [0.0, 0.25, 0.5, 0.75]
    doc = json.loads(rx.write(tmp_path / "rec.json").read_text())
    assert doc["format"] == "emoface-received" and doc["metadata"]["subject"] == "npc"
    assert doc["seq"] == [0, 1, 2, 3] and doc["channels"]["blink"] == [0.0, -0.25, -0.5, -0.75]
    rx.process([b"other", p.encode(p.Schema("other", SCHEMA.names, 60.0))])
    rx.process([b"other", p.encode(_frame(0, "other"))])
    with pytest.raises(ValueError, match="several subjects"):
        rx.write(tmp_path / "both.json")
    with pytest.raises(ValueError, match=".jsonl or .json"):
        rx.write(tmp_path / "rec.csv")


def test_receive_cli_records_count_frames_and_fails_on_timeout(tmp_path, capsys):
    port = _free_udp_port()
    out = tmp_path / "rec.json"
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(
            rc=main(
                [
                    "receive",
                    "--osc",
                    f"127.0.0.1:{port}",
                    "--count",
                    "5",
                    "--timeout",
                    "5",
                    "--out",
                    str(out),
                    "-q",
                ]
            )
        )
    )
    thread.start()
    try:
        with OscSender("127.0.0.1", port) as sender:
            seq = 0
            deadline = time.monotonic() + TIMEOUT_S
            while thread.is_alive() and time.monotonic() < deadline:
                sender.send_schema(SCHEMA)  # until the command has bound its port
                sender.send_frame(_frame(seq))
                seq += 1
                time.sleep(0.01)
    finally:
        thread.join(TIMEOUT_S)
    assert result["rc"] == 0
    doc = json.loads(out.read_text())
    assert doc["n_frames"] >= 5 and doc["channels"]["jaw"][0] == 0.25
    assert "frames from 1 subject(s)" in capsys.readouterr().err
    rc = main(["receive", "--osc", f"127.0.0.1:{_free_udp_port()}", "--count", "5",
               "--timeout", "0.3", "-q"])  # fmt: skip
    assert rc == 1
    assert "received 0 of 5 frames before the timeout" in capsys.readouterr().err


def test_receive_cli_refuses_an_unwritable_recording_before_listening(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    out = tmp_path / "a_file" / "rec.json"
    started = time.monotonic()
    rc = main(["receive", "--osc", f"127.0.0.1:{_free_udp_port()}", "--timeout", "30",
               "--out", str(out), "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc != 0 and time.monotonic() - started < 10  # did not wait for the 30 s timeout
    assert f"{out}: cannot write there" in err and "receiving" not in err


@pytest.mark.parametrize("flag, value", [("--timeout", "-1"), ("--timeout", "0"), ("--count", "0")])
def test_receive_cli_rejects_non_positive_timeout_and_count(capsys, flag, value):
    # A negative --timeout used to be accepted and end the receiver at once, reporting success.
    with pytest.raises(SystemExit) as exit_info:
        main(["receive", "--osc", f"127.0.0.1:{_free_udp_port()}", flag, value, "-q"])
    assert exit_info.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err
