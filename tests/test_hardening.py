"""Regression tests of the attack campaign (issue 16): each failure it found, reproduced.

Items are numbered as in the issue; each test failed before its fix. Item 6 (train --resume)
is in ``test_train.py::test_cli_train_resume_and_cache``, item 13 (a test that failed under
load) in ``test_stream_cli.py``, the decoder fuzzing in ``test_fuzz.py``.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import UNREAL_PLUGIN_PYTHON, make_sine, recording_sender, write_wav

from bridge.cli import main
from bridge.protocol import Decoder, Frame, Schema, encode_frame, encode_schema
from emoface_core.audio import load_audio
from emoface_core.controllers import N_CONTROLLERS
from emoface_core.engines.base import EngineBase
from emoface_core.errors import AudioError, ConfigError, EngineError

BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{k}: &{k} [{', '.join(f'*{p}' for _ in range(9))}]"
            for p, k in zip("abcdefgh", "bcdefghi")
        ),
    ]
)  # 9**9 = 387 million strings from 600 bytes
NESTED_JSON = "[" * 3000 + "]" * 3000
TIMEOUT_S = 10.0


class _Fake(EngineBase):
    name = "fake"
    wants_smoothing = False

    def __init__(self, value: float = 0.1) -> None:
        self.value = value

    def infer(self, audio, timeline):
        return np.full((audio.n_frames, N_CONTROLLERS), self.value, np.float32)


# 1. One speak whose info holds NaN killed the player thread. -----------------------------


@pytest.fixture
def service(tmp_path, monkeypatch):
    from bridge.service.client import ServiceClient
    from bridge.service.server import Service, ServiceConfig

    monkeypatch.chdir(tmp_path)
    config = ServiceConfig(
        bind="tcp://127.0.0.1:*", zmq="tcp://127.0.0.1:*", max_subjects=3, max_scheduled=2
    )
    with Service(config, _Fake()) as svc:
        svc.serve_in_thread()
        with ServiceClient(svc.endpoint, timeout_s=TIMEOUT_S) as client:
            yield svc, client


def _raw_request(endpoint: str, payload: bytes) -> dict:
    import zmq

    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send(payload)
        assert sock.poll(int(TIMEOUT_S * 1000))
        return json.loads(sock.recv())
    finally:
        sock.close(0)


def test_nan_in_a_request_is_refused_and_the_service_keeps_playing(service, tmp_path):
    svc, client = service
    wav = write_wav(tmp_path / "line.wav", make_sine(0.3))
    request = {"op": "speak", "subject": "npc", "audio": str(wav), "info": {"x": float("nan")}}
    reply = _raw_request(svc.endpoint, json.dumps(request).encode())  # json.dumps allows NaN
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request"
    assert "NaN" in reply["error"]["message"]
    with pytest.raises(ValueError, match="JSON cannot carry"):  # the client never sends it
        client.speak("npc", wav, info={"x": float("inf")})
    line = client.wait(client.speak("npc", wav)["id"], TIMEOUT_S)
    assert line["state"] == "finished" and line["frames_sent"] == 18
    assert client.status()["player"]["alive"] is True


def test_a_line_that_fails_while_playing_fails_alone(service, tmp_path, monkeypatch):
    svc, client = service
    wav = write_wav(tmp_path / "line.wav", make_sine(0.3))
    sender = svc.senders[0]
    real = sender.send_start

    def broken_once(start):
        monkeypatch.setattr(sender, "send_start", real)
        raise RuntimeError("a sender bug")

    monkeypatch.setattr(sender, "send_start", broken_once)
    first = client.wait(client.speak("npc", wav)["id"], TIMEOUT_S)
    assert first["state"] == "failed" and "a sender bug" in first["reason"]
    second = client.wait(client.speak("npc", wav)["id"], TIMEOUT_S)
    assert second["state"] == "finished"
    status = client.status()["player"]
    assert status["alive"] and status["line_failures"] == 1


def test_a_dead_player_is_visible_and_new_lines_are_refused(service, tmp_path, monkeypatch):
    from bridge.runtime.lines import LinePlayer
    from bridge.service.requests import ServiceError

    svc, client = service
    wav = write_wav(tmp_path / "line.wav", make_sine(0.3))

    def bug(self, playback):
        raise KeyError("player bug outside any line")

    monkeypatch.setattr(LinePlayer, "_accept", bug)
    client.speak("npc", wav)  # accepted: the player dies taking it
    deadline = time.monotonic() + TIMEOUT_S
    while client.status()["player"]["alive"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "player bug" in client.status()["player"]["failure"]
    with pytest.raises(ServiceError, match="internal: the frame player has stopped"):
        client.speak("npc", wav)


# 2. A YAML alias bomb exhausted memory. ---------------------------------------------------


def test_a_yaml_bomb_mapping_is_refused_at_once_naming_the_file(tmp_path, capsys):
    from bridge.mapping import load_mapping
    from emoface_core.errors import EmoFaceError

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    t0 = time.perf_counter()
    with pytest.raises(EmoFaceError, match="expands to more than"):
        load_mapping(bomb)
    assert main(["mapping", "validate", str(bomb)]) == 1
    assert main(["mapping", "new", "--from", str(bomb), str(tmp_path / "copy.yaml")]) == 1
    wav = write_wav(tmp_path / "a.wav", make_sine(0.3))
    args = ["bake", str(wav), "--engine", "procedural", "--mapping", str(bomb)]
    assert main([*args, "-o", str(tmp_path / "a.csv")]) == 1
    err = capsys.readouterr().err
    assert err.count("bomb.yaml") >= 3 and "Traceback" not in err
    assert time.perf_counter() - t0 < 5.0
    assert not (tmp_path / "copy.yaml").exists()


def test_a_recursive_alias_and_deep_nesting_name_the_file(tmp_path):
    from bridge.mapping import load_mapping
    from emoface_core.bounded import load_yaml

    rec = tmp_path / "rec.yaml"
    rec.write_text("version: 1\nentries: &e [*e]\n")
    with pytest.raises(ValueError, match="rec.yaml"):
        load_mapping(rec)
    with pytest.raises(ValueError, match="deep.yaml: nested (deeper|too deep)"):
        load_yaml("a: " + "[" * 500 + "]" * 500, "deep.yaml")


def test_a_yaml_bomb_pose_file_is_refused(tmp_path):
    from emoface_core.engines.procedural.engine import ProceduralEngine

    bomb = tmp_path / "poses.yaml"
    bomb.write_text(BOMB)
    with pytest.raises(ConfigError, match="poses.yaml: expands to more than"):
        ProceduralEngine(poses_path=bomb)


def test_the_service_names_mappings_only_by_name(service, tmp_path):
    from bridge.service.requests import ServiceError

    svc, client = service
    (tmp_path / "bomb.yaml").write_text(BOMB)
    wav = write_wav(tmp_path / "a.wav", make_sine(0.3))
    for name in (str(tmp_path / "bomb.yaml"), "../bomb", "nonexistent"):
        with pytest.raises(ServiceError, match="bad_request: mapping"):
            client.bake(wav, format="csv", mapping=name)
    assert client.bake(wav, format="csv", mapping="metahuman_curves")["ok"]


# 3. NaN and inf flowed everywhere. ---------------------------------------------------------


def test_nan_weights_are_refused_when_the_checkpoint_loads(tmp_path, tiny_release_checkpoint):
    import torch

    from emoface_core.engines.neural.checkpoint import load_model
    from emoface_core.errors import CheckpointError

    state = torch.load(tiny_release_checkpoint, weights_only=True)
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[key].view(-1)[0] = float("nan")
    bad = tmp_path / "nan.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match=f"nan.pth: weight '{key}' holds 1 NaN"):
        load_model(bad, device="cpu")


def test_an_engine_that_outputs_nan_fails_loudly(tmp_path):
    from emoface_core.animate import animate_audio
    from emoface_core.emotion import parse_emotion_spec
    from emoface_core.streaming import Streamer

    audio = load_audio(write_wav(tmp_path / "a.wav", make_sine(0.3)))
    with pytest.raises(EngineError, match="fake engine produced 3132 NaN"):  # 18 frames
        animate_audio(_Fake(float("nan")), audio, parse_emotion_spec("happy"))
    stream = Streamer(_Fake(float("inf"))).open("happy")
    with pytest.raises(EngineError, match="NaN or infinite"):
        for i in range(0, audio.samples.size, 320):
            stream.process(audio.samples[i : i + 320])


def test_non_finite_frames_are_never_sent_nor_accepted():
    sender = recording_sender()
    values = np.zeros(4, np.float32)
    assert sender.send_frame(Frame("npc", 0, 0.0, 60.0, values, 1, 1, 0.0))
    values[2] = np.nan
    assert not sender.send_frame(Frame("npc", 1, 0.0, 60.0, values, 1, 1, 0.0))
    assert sender.stats.n_nonfinite == 1 and sender.stats.n_frames == 1
    schema = Schema("npc", ("a", "b"), 60.0)
    decoder = Decoder()
    decoder.feed(encode_schema(schema))
    for seq, pair in enumerate([(0.5, 0.5), (np.inf, 0.1), (0.2, np.nan), (0.3, 0.3)]):
        decoder.feed(encode_frame(Frame("npc", seq, seq / 60, 60.0, pair, schema.schema_id)))
    assert decoder.stats.n_frames == 2 and decoder.stats.n_nonfinite == 2


def test_the_plugin_decoder_drops_non_finite_frames_too(monkeypatch):
    monkeypatch.syspath_prepend(str(UNREAL_PLUGIN_PYTHON))
    from emoface_unreal import protocol as plugin

    schema = plugin.Schema("npc", ("a",), 60.0)
    decoder = plugin.Decoder()
    decoder.feed(plugin.encode_schema(schema))
    frame = plugin.Frame("npc", 0, 0.0, 60.0, (float("nan"),), schema.schema_id)
    assert decoder.feed(plugin.encode_frame(frame)) is None
    assert decoder.stats.n_nonfinite == 1


# 4. A truncated WAV baked silently into a shorter animation. ----------------------------


def _truncated_wav(tmp_path: Path) -> Path:
    full = write_wav(tmp_path / "full.wav", make_sine(201 / 60))
    data = full.read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: 44 + 124 * 267 * 2])  # the header still says 201 frames
    return path


def test_a_truncated_wav_is_refused_naming_both_lengths(tmp_path, capsys, caplog):
    cut = _truncated_wav(tmp_path)
    with pytest.raises(AudioError, match=r"cut.wav: truncated: the header declares 53600 samples"):
        load_audio(cut)
    out = tmp_path / "cut.json"
    assert main(["bake", str(cut), "--engine", "procedural", "-o", str(out)]) == 1
    assert "but the file holds 33108 (2.069 s)" in capsys.readouterr().err
    assert not out.exists()
    assert main(["bake", str(cut), "-o", str(tmp_path / "batch"), "--engine", "procedural"]) == 1
    assert "truncated" in capsys.readouterr().err
    with caplog.at_level(logging.WARNING):
        rc = main(["bake", str(cut), "--engine", "procedural", "--allow-truncated", "-o", str(out)])
    assert rc == 0 and json.loads(out.read_text())["n_frames"] == 124
    assert "animating what is there" in caplog.text


# 5. One bad input aborted a whole batch. ------------------------------------------------


def test_symlink_loops_and_non_utf8_names_fail_alone_or_bake(tmp_path, capsys, monkeypatch):
    import os

    vo = tmp_path / "vo"
    vo.mkdir()
    write_wav(vo / "good.wav", make_sine(0.3))
    odd = os.fsdecode(b"odd\xff.wav")  # a file name that is not UTF-8
    os.rename(write_wav(tmp_path / "odd.wav", make_sine(0.3)), vo / odd)
    (tmp_path / "loop_a.wav").symlink_to(tmp_path / "loop_b.wav")
    (tmp_path / "loop_b.wav").symlink_to(tmp_path / "loop_a.wav")
    manifest = tmp_path / "lines.csv"
    manifest.write_text("audio\nloop_a.wav\nvo/good.wav\n")
    out = tmp_path / "out"
    rc = main(["bake", str(manifest), str(vo), "-o", str(out), "--seed", "3", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "loop_a.wav" in err  # the loop fails its line...
    names = sorted(os.fsencode(p.name) for p in out.glob("*.json"))
    assert names == [b"good.json", b"odd\xff.json"]  # ...and everything else bakes
    alone = tmp_path / os.fsdecode(b"alone\xfe.json")
    # A real stderr escapes such names (errors="backslashreplace"); pytest's capture would not.
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(io.BytesIO(), errors="backslashreplace"))
    assert main(["bake", str(vo / odd), "--engine", "procedural", "-o", str(alone)]) == 0
    assert json.loads(alone.read_text())["n_frames"] == 18


# 7. A deeply nested control datagram ended `emoface live`. ------------------------------


def test_a_nested_control_message_is_counted_and_the_session_goes_on():
    from bridge.runtime.live import LiveRunner, apply_command
    from emoface_core.streaming import Streamer
    from emoface_core.testing.clocks import FakeClock

    stream = Streamer(_Fake()).open("neutral")
    with pytest.raises(ValueError, match="nested deeper"):
        apply_command(stream, '{"emotion": ' + NESTED_JSON[:3000] + "}")

    class Source:
        realtime = False

        def __init__(self) -> None:
            self.chunks = [np.zeros(1600, np.float32)] * 5

        def read(self, timeout_s):
            return self.chunks.pop() if self.chunks else None

    class Commands:
        def __init__(self) -> None:
            self.script = [["{" * 3000], ["emotion happy"], [], [], []]

        def poll(self):
            return self.script.pop(0) if self.script else []

    events = []
    stats = LiveRunner(
        Source(),
        Streamer(_Fake()).open("neutral"),
        lambda frames, first: None,
        controls=[Commands()],
        clock=FakeClock(),
        on_event=lambda kind, text: events.append(kind),
    ).run()
    assert stats.end_reason == "source ended" and stats.n_bad_commands == 1
    assert stats.n_emotion_changes == 1 and events[:2] == ["refused", "emotion"]


# 8. A nested START made the plugin's OSC receiver rebind; receive --osc printed a traceback.


def test_osc_decoders_survive_a_nested_start(monkeypatch, caplog):
    from bridge.receiver import MockReceiver
    from bridge.transports.osc import encode_message

    datagram = encode_message(
        "/emoface/npc/start",
        [("i", 1), ("i", 2), ("i", 3), ("f", 60.0), ("d", 0.0), ("s", NESTED_JSON)],
    )
    with caplog.at_level(logging.DEBUG), MockReceiver("osc", "127.0.0.1:0") as rx:
        for _ in range(4):
            rx.process(datagram)
        assert rx.stats.n_malformed == 4
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)

    monkeypatch.syspath_prepend(str(UNREAL_PLUGIN_PYTHON))
    from emoface_unreal.transport import MALFORMED, OscSource

    source = OscSource("127.0.0.1:0")
    source.open()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for _ in range(3):
                tx.sendto(datagram, ("127.0.0.1", source.bound_port))
            got: list[bytes] = []
            deadline = time.monotonic() + TIMEOUT_S
            while len(got) < 3 and time.monotonic() < deadline:
                got += source.recv(0.2)
        assert got == [MALFORMED] * 3 and "nested" in source.last_error
        assert source._sock is not None  # the same socket: nothing was rebound
    finally:
        source.close()


# 9. The service decoded hostile audio fully before its limits, on the request thread. ----


def test_audio_is_judged_by_its_header_before_it_is_decoded(service, tmp_path):
    import soundfile as sf

    from bridge.service.requests import ServiceError

    svc, client = service
    long_flac = tmp_path / "two_hours.flac"
    with sf.SoundFile(str(long_flac), "w", 8000, 1, format="FLAC") as f:
        block = np.zeros(8000 * 60, np.float32)
        for _ in range(120):
            f.write(block)
    assert long_flac.stat().st_size < 2_000_000
    t0 = time.perf_counter()
    with pytest.raises(ServiceError, match="7200.0 s long; this service takes at most 600"):
        client.speak("npc", long_flac)
    assert time.perf_counter() - t0 < 2.0  # refused from the header: nothing decoded
    slow = tmp_path / "one_hz.wav"
    sf.write(str(slow), np.zeros(50, np.float32), 1)
    with pytest.raises(ServiceError, match="sample rate 1 Hz"):
        client.speak("npc", slow)


def test_subjects_and_scheduled_lines_are_bounded(service, tmp_path):
    from bridge.service.requests import ServiceError

    svc, client = service
    wav = write_wav(tmp_path / "a.wav", make_sine(0.3))
    later = time.time() + 60
    client.speak("a", wav, start_at=later)
    client.speak("b", wav, start_at=later)
    with pytest.raises(ServiceError, match="busy: 2 lines are waiting to start"):
        client.speak("c", wav, start_at=later)
    client.speak("c", wav)
    with pytest.raises(ServiceError, match="busy: 3 subjects are in use"):
        client.speak("d", wav)


# 10. Whoever could reach the service could read and write anywhere. ---------------------


def test_the_service_reads_and_writes_only_under_its_roots(service, tmp_path):
    from bridge.service.requests import ServiceError

    svc, client = service
    inside = write_wav(tmp_path / "a.wav", make_sine(0.3))
    elsewhere = Path("/tmp") / f"emoface-outside-{time.time_ns()}.wav"
    write_wav(elsewhere, make_sine(0.3))
    try:
        messages = set()
        for path in (elsewhere, tmp_path / "missing.wav", tmp_path / ".." / elsewhere.name):
            with pytest.raises(ServiceError, match="bad_audio") as e:
                client.speak("npc", path)
            messages.add(str(e.value).split("': ")[1])
        assert len(messages) == 1  # missing and forbidden read the same: nothing to probe
    finally:
        elsewhere.unlink()
    root = Path(svc.config.output_root)
    for output in ("/tmp/evil.json", str(root / ".." / "evil.json"), str(tmp_path / "x.json")):
        with pytest.raises(ServiceError, match="bad_output: output .* inside the service's"):
            client.bake(inside, output=output)
    reply = client.bake(inside, output=root / "deep" / "ok.json")
    assert Path(reply["path"]).is_file() and Path(reply["path"]).is_relative_to(root)


def test_binding_beyond_loopback_needs_curve_keys_and_they_work(tmp_path):
    from bridge.commands.keys import run as make_keys
    from bridge.errors import TransportError
    from bridge.service.client import ServiceClient
    from bridge.service.server import Service, ServiceConfig
    from bridge.transports.zmq import CurveKeys, ZmqSender

    with pytest.raises(TransportError, match="needs authentication"):
        ZmqSender("tcp://0.0.0.0:*").open()
    with pytest.raises(TransportError, match="needs authentication"):
        Service(ServiceConfig(bind="tcp://*:*", zmq="tcp://127.0.0.1:*"), _Fake()).open()

    class Args:
        folder, name = str(tmp_path / "keys"), "server"

    make_keys(Args())
    Args.name = "game"
    make_keys(Args())
    Args.name = "stranger"
    make_keys(Args())
    allowed = tmp_path / "clients"
    allowed.mkdir()
    (allowed / "game.key").write_bytes((tmp_path / "keys" / "game.key").read_bytes())
    keys = tmp_path / "keys"
    curve = CurveKeys(str(keys / "server.key_secret"), str(allowed))
    config = ServiceConfig(bind="tcp://0.0.0.0:*", zmq="tcp://127.0.0.1:*", curve=curve)
    with Service(config, _Fake()) as svc:
        svc.serve_in_thread()
        port = svc.endpoint.rsplit(":", 1)[1]
        endpoint = f"tcp://127.0.0.1:{port}"
        server_key = str(keys / "server.key")
        with ServiceClient(
            endpoint,
            timeout_s=TIMEOUT_S,
            server_key=server_key,
            client_key=str(keys / "game.key_secret"),
        ) as game:
            assert game.request("ping")["ok"]
        with (
            ServiceClient(
                endpoint,
                timeout_s=1.0,
                server_key=server_key,
                client_key=str(keys / "stranger.key_secret"),
            ) as stranger,
            pytest.raises(TimeoutError),
        ):
            stranger.request("ping")
        with ServiceClient(endpoint, timeout_s=1.0) as plain, pytest.raises(TimeoutError):
            plain.request("ping")


# 12. Smaller ones. ------------------------------------------------------------------------


def test_a_huge_csv_field_fails_its_row_only(tmp_path, capsys):
    write_wav(tmp_path / "a.wav", make_sine(0.3))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"audio,text\na.wav,hello\nb.wav,{'x' * 200_000}\na.wav,again\n")
    rc = main(["bake", str(manifest), "-o", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "field larger than field limit" in err and "Traceback" not in err


def test_a_bake_never_overwrites_its_own_input(tmp_path, capsys):
    audio = tmp_path / "X.json"  # audio with an output's extension
    write_wav(tmp_path / "X.wav", make_sine(0.3)).rename(audio)
    before = audio.read_bytes()
    assert main(["bake", str(audio), "--engine", "procedural", "-o", str(audio)]) == 1
    assert "refusing to overwrite it" in capsys.readouterr().err
    assert audio.read_bytes() == before


def test_deeply_nested_requests_are_bad_requests(service):
    svc, _ = service
    reply = _raw_request(svc.endpoint, ('{"op": "status", "x": ' + NESTED_JSON + "}").encode())
    assert reply["error"]["code"] == "bad_request" and "nested deeper" in reply["error"]["message"]


def test_udp_senders_bind_the_loopback_for_a_local_receiver():
    from bridge.transports.livelink import LiveLinkSender
    from bridge.transports.osc import OscSender

    for sender in (OscSender("127.0.0.1", 9), LiveLinkSender("127.0.0.1", 9)):
        with sender:
            assert sender._sock.getsockname()[0] == "127.0.0.1"


def test_a_feed_faster_than_real_time_drops_frames_instead_of_queueing_forever():
    import threading

    from bridge.runtime.live import LiveRunner
    from emoface_core.streaming import Streamer
    from emoface_core.testing.clocks import FakeClock

    clock = FakeClock(100.0)
    fed = threading.Event()

    def sleep(duration_s: float) -> None:
        # The playout thread waits for the feed's time to pass (the feed moves the clock);
        # once the feed has ended, time runs on by itself.
        target = clock() + duration_s
        while clock() < target:
            if fed.is_set():
                clock.now_s = max(clock.now_s, target)
                return
            time.sleep(0.0002)

    class FastFeed:  # 10 s of audio delivered in 2 s: five times real time
        realtime = True

        def __init__(self) -> None:
            self.n = 0

        def read(self, timeout_s):
            if self.n >= 500:
                fed.set()
                return None
            self.n += 1
            clock.advance(0.004)
            time.sleep(0.0005)  # let the playout thread see the clock move
            return np.zeros(320, np.float32)

    sent = []
    runner = LiveRunner(
        FastFeed(),
        Streamer(_Fake()).open("neutral", raw=True),
        lambda frames, first: sent.append(first),
        playout_delay_s=0.05,
        max_backlog_s=0.5,
        clock=clock,
        sleep=sleep,
    )
    stats = runner.run()
    assert stats.n_dropped_frames > 300  # most of the 600 frames could never play in time
    assert stats.n_frames + stats.n_dropped_frames == 600
    # Bounded by the backlog (0.5 s + the 0.05 s delay), not growing with the feed (which would
    # reach 8 s). The feed moves this fake clock from another thread, so a starved playout
    # thread (a loaded machine) sees it jump: allow that jitter, far below unbounded growth.
    assert max(stats.latency_s) < 2.0


def test_absurd_dimensions_in_a_small_checkpoint_are_refused_quickly(tmp_path):
    import torch

    from emoface_core.engines.neural.checkpoint import (
        CHECKPOINT_FORMAT,
        CHECKPOINT_FORMAT_VERSION,
        load_model,
    )
    from emoface_core.errors import CheckpointError

    bad = tmp_path / "huge.pt"
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "config": {"d_model": 131072, "n_heads": 8, "ff_dim": 1 << 20},
            "state_dict": {},
        },
        bad,
    )
    t0 = time.perf_counter()
    with pytest.raises((CheckpointError, ConfigError), match="d_model must be at most 4096"):
        load_model(bad, device="cpu")
    assert time.perf_counter() - t0 < 2.0
