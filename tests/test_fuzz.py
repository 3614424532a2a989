"""Fuzzing every decoder at the boundary: nothing escapes, every bad input is counted.

Fixed seeds and bounded counts, so CI runs the same inputs every time in a few seconds. Inputs
are valid messages mutated (bytes flipped, cut, repeated, spliced), hostile shapes (deep JSON,
NaN, huge counts) and plain random bytes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import UNREAL_PLUGIN_PYTHON

from bridge import protocol as bp
from bridge.transports import osc as bosc
from bridge.transports.livelink import LiveLinkEncoder

N_CASES = 1500


def mutations(seeds: list[bytes], rng: random.Random, n: int) -> Iterator[bytes]:
    """Mutated copies of ``seeds`` and random bytes, ``n`` in all."""
    for i in range(n):
        base = bytearray(rng.choice(seeds))
        kind = i % 6
        if kind == 0 and base:  # flip bytes
            for _ in range(rng.randint(1, 8)):
                base[rng.randrange(len(base))] = rng.randrange(256)
        elif kind == 1:  # cut short or extend
            base = base[: rng.randrange(len(base) + 1)] + bytes(rng.randrange(4))
        elif kind == 2 and len(base) > 4:  # overwrite a length/count field with a huge one
            at = rng.randrange(len(base) - 4)
            base[at : at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x80", b"\x7f" * 4])
        elif kind == 3:  # splice two messages
            other = rng.choice(seeds)
            base = base[: rng.randrange(len(base) + 1)] + other[rng.randrange(len(other) + 1) :]
        elif kind == 4:
            base = bytearray(rng.randbytes(rng.randrange(1, 300)))
        yield bytes(base)


def _wire_seeds(p) -> list[bytes]:
    schema = p.Schema("npc", ("a", "b", "c"), 60.0, "m", "h", "custom", ((0.0, 1.0),) * 3)
    frame = p.Frame("npc", 7, 0.1, 60.0, (0.1, 0.2, 0.3), schema.schema_id, 1, 1.0)
    start = p.StreamStart("npc", 1, schema.schema_id, 10, 60.0, 1.0, {"emotion": "happy"})
    end = p.StreamEnd("npc", 1, 10, p.EndReason.FINISHED, 2.0)
    deep = p.StreamStart("npc", 1, 1, 1, 60.0, 1.0, {})
    nested = p.encode_start(deep).replace(b"{}", b"{" + b'"a":[' * 200 + b"]" * 200 + b"}")
    nan = p.encode_frame(p.Frame("npc", 8, 0.1, 60.0, (float("nan"), 0.0, 0.0), schema.schema_id))
    return [p.encode(m) for m in (schema, frame, start, end)] + [nested, nan]


def _check_decoder(p) -> None:
    decoder = p.Decoder()
    rng = random.Random(1234)
    seeds = _wire_seeds(p)
    for seed in seeds[:1]:
        decoder.feed(seed)  # a schema, so frames can be accepted
    n = 1
    for data in mutations(seeds, rng, N_CASES):
        decoder.feed(data)  # never raises
        n += 1
    s = decoder.stats
    assert s.n_packets == n
    accepted = s.n_frames + s.n_schemas + s.n_starts + s.n_ends
    dropped = (
        s.n_malformed
        + s.n_duplicates
        + s.n_out_of_order
        + s.n_waiting_for_schema
        + s.n_other_subject
        + s.n_nonfinite
    )
    assert accepted + dropped == n  # every packet is accounted for
    assert s.n_malformed > N_CASES // 3


def test_the_bridge_protocol_decoder():
    _check_decoder(bp)


def test_the_plugin_protocol_decoder(monkeypatch):
    monkeypatch.syspath_prepend(str(UNREAL_PLUGIN_PYTHON))
    from emoface_unreal import protocol as plugin

    _check_decoder(plugin)


def _osc_seeds() -> list[bytes]:
    schema = bp.Schema("npc", ("a", "b"), 60.0)
    frame = bp.Frame("npc", 3, 0.05, 60.0, np.array([0.1, 0.2], np.float32), schema.schema_id)
    start = bp.StreamStart("npc", 1, schema.schema_id, 5, 60.0, 1.0, {"x": [1, 2]})
    end = bp.StreamEnd("npc", 1, 5, bp.EndReason.FINISHED, 2.0)
    deep = bosc.encode_message(
        "/emoface/npc/start",
        [("i", 1), ("i", 2), ("i", 3), ("f", 60.0), ("d", 0.0), ("s", "[" * 2000 + "]" * 2000)],
    )
    return [
        bosc.schema_message(schema),
        bosc.encode_frame_bundle(schema, frame, "named"),
        bosc.encode_frame_bundle(schema, frame, "array"),
        bosc.start_message(start),
        bosc.end_message(end),
        deep,
    ]


@pytest.mark.parametrize("transport", ["osc", "livelink", "zmq"])
def test_the_bridge_receiver_counts_every_bad_packet(transport, caplog):
    from bridge.receiver import MockReceiver

    rng = random.Random(99)
    if transport == "osc":
        seeds = _osc_seeds()
    elif transport == "livelink":
        seeds = [LiveLinkEncoder("npc").encode(i, np.full(61, 0.5, np.float32)) for i in range(3)]
    else:
        seeds = _wire_seeds(bp)
    address = "tcp://127.0.0.1:1" if transport == "zmq" else "127.0.0.1:0"
    rx = MockReceiver(transport, address)  # not opened: packets are handed in
    for data in mutations(seeds, rng, N_CASES):
        rx.process([b"npc", data] if transport == "zmq" else data)
    s = rx.stats
    assert s.n_packets == N_CASES and s.n_malformed > 0
    accepted = s.n_frames + s.n_schemas + s.n_starts + s.n_ends
    assert accepted + s.n_malformed + s.n_duplicates + s.n_out_of_order <= N_CASES + s.n_schemas
    assert not any(r.exc_info for r in caplog.records)  # counted, never a traceback


def test_the_plugin_osc_source_counts_every_bad_datagram(monkeypatch):
    monkeypatch.syspath_prepend(str(UNREAL_PLUGIN_PYTHON))
    from emoface_unreal.transport import MALFORMED, OscSource

    datagrams = list(mutations(_osc_seeds(), random.Random(7), N_CASES))

    class FakeSocket:
        def __init__(self) -> None:
            self.queue = list(datagrams)

        def settimeout(self, _: float) -> None:
            pass

        def recv(self, _: int) -> bytes:
            if not self.queue:
                raise BlockingIOError
            return self.queue.pop(0)

    source = OscSource("127.0.0.1:0")
    source._sock = FakeSocket()  # type: ignore[assignment]
    out = source.recv(0.0)
    n_malformed = out.count(MALFORMED)
    assert n_malformed > N_CASES // 3
    assert len(out) >= len(datagrams) - 10  # each datagram is messages or one MALFORMED


def _request_seeds() -> list[bytes]:
    return [
        json.dumps(r).encode()
        for r in (
            {"op": "ping"},
            {"op": "status"},
            {"op": "status", "id": "npc-1"},
            {"op": "cancel", "subject": "npc"},
            {"op": "speak", "subject": "npc", "audio": "/nope.wav", "emotion": "happy@0,sad@1"},
            {"op": "bake", "audio_b64": "AAAA", "format": "csv", "mapping": "arkit52"},
            {"op": "speak", "subject": "npc", "audio": "x.wav", "info": {"a": [1, {"b": 2}]}},
        )
    ] + [b'{"op": "ping", "x": ' + b"[" * 100 + b"]" * 100 + b"}", b'{"op": "ping", "n": NaN}']


def test_service_requests_never_get_an_internal_error(tmp_path, monkeypatch):
    from bridge.service.server import Service, ServiceConfig
    from emoface_core.engines.base import EngineBase

    class Idle(EngineBase):
        name = "idle"

        def infer(self, audio, timeline):
            return np.zeros((audio.n_frames, 174), np.float32)

    monkeypatch.chdir(tmp_path)
    config = ServiceConfig(bind="tcp://127.0.0.1:*", zmq="tcp://127.0.0.1:*")
    codes: dict[str, int] = {}
    with Service(config, Idle()) as service:
        for data in mutations(_request_seeds(), random.Random(5), N_CASES):
            reply = service.handle_message(data, [b"client"])
            if reply is None:  # a bake: answered later
                continue
            assert isinstance(reply, dict)
            code = "ok" if reply.get("ok") else reply["error"]["code"]
            codes[code] = codes.get(code, 0) + 1
    assert "internal" not in codes, codes
    assert codes.get("bad_request", 0) > N_CASES // 3


def test_control_commands_raise_only_value_errors():
    from bridge.runtime.live import apply_command
    from emoface_core.engines.base import EngineBase
    from emoface_core.errors import EmoFaceError
    from emoface_core.streaming import Streamer

    class Idle(EngineBase):
        name = "idle"

        def infer(self, audio, timeline):
            return np.zeros((audio.n_frames, 174), np.float32)

    stream = Streamer(Idle()).open("neutral")
    seeds = [b"emotion happy", b"sad:0.5", b'{"emotion": "angry@0,sad@1"}', b"quit", b"{" * 500]
    rng = random.Random(11)
    outcomes = {"applied": 0, "refused": 0}
    for data in mutations(seeds, rng, N_CASES):
        text = data.decode("utf-8", "replace")
        try:
            apply_command(stream, text)
            outcomes["applied"] += 1
        except (ValueError, EmoFaceError):
            outcomes["refused"] += 1
    assert outcomes["refused"] > N_CASES // 3 and outcomes["applied"] > 0


def test_the_live_link_decoder_raises_only_protocol_errors():
    from bridge.transports.livelink import decode_packet

    seeds = [LiveLinkEncoder("npc").encode(1, np.zeros(61, np.float32))]
    n_bad = 0
    for data in mutations(seeds, random.Random(3), N_CASES):
        try:
            decode_packet(data)
        except bp.ProtocolError:
            n_bad += 1
    assert n_bad > N_CASES // 3
