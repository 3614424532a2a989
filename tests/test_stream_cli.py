"""Streaming: SubjectStream behaviour, and `emoface stream` on loopback into mock receivers."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import numpy as np
import pytest
from conftest import make_sine, recording_sender, write_wav

from bridge.cli import main
from bridge.mapping import load_mapping
from bridge.protocol import EndReason, Frame, Schema, StreamEnd
from bridge.receiver import MockReceiver
from bridge.runtime.subject import Output, SubjectStream, check_subject, outputs_for
from emoface_core.animation import Animation
from emoface_core.formats import JsonWriter, load_animation

TIMEOUT_S = 5.0


class _Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def _clip(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 174)).astype(np.float32)


def test_schema_is_repeated_on_its_interval_and_resent_when_the_mapping_changes():
    sender, clock = recording_sender(), _Clock()
    stream = SubjectStream(
        "npc", [Output(sender, load_mapping("metahuman_faceboard"))],
        schema_interval_s=0.5, clock=clock,
    )  # fmt: skip
    frames = _clip(120)
    for i in range(120):  # two seconds
        clock.now_s = i / 60
        stream.push(frames[i])
    schemas = sender.of_type(Schema)
    assert len(schemas) == 4  # at t = 0, 0.5, 1.0, 1.5 s
    assert {s.mapping_id for s in schemas} == {"metahuman_faceboard"}
    stream.set_mapping(load_mapping("metahuman_curves"))
    stream.push(frames[0])
    assert sender.messages[-2].mapping_id == "metahuman_curves"  # schema right before the frame
    assert sender.messages[-1].schema_id == sender.messages[-2].schema_id


def test_new_line_interrupts_the_old_one_and_numbering_spans_lines():
    sender = recording_sender()
    mapping = load_mapping("metahuman_faceboard")
    stream = SubjectStream("npc", [Output(sender, mapping)])
    old, new = np.full(174, 0.8, np.float32), np.zeros(174, np.float32)
    stream.start_line(n_frames=100)
    stream.push(old)
    stream.start_line()  # cross-fades are the service player's (runtime.lines): a cut here
    for _ in range(5):
        stream.push(new)
    ends = sender.of_type(StreamEnd)
    assert [(e.line_id, e.n_frames_sent, e.reason) for e in ends] == [(1, 1, EndReason.INTERRUPTED)]
    jaw = mapping.names.index("CTRL_C_jaw.X")
    values = [f.values[jaw] for f in sender.of_type(Frame)]
    np.testing.assert_allclose(values, [0.8, 0.0, 0.0, 0.0, 0.0, 0.0], atol=1e-6)
    assert [f.line_id for f in sender.of_type(Frame)] == [1, 2, 2, 2, 2, 2]
    assert [f.seq for f in sender.of_type(Frame)] == list(range(6))  # seq spans lines


def test_one_frame_is_mapped_once_per_mapping_and_sent_to_every_output():
    faceboard = load_mapping("metahuman_faceboard")
    a, b, c = recording_sender(), recording_sender(), recording_sender(refuse_every=2)
    c.required_mapping = "arkit52"  # as LiveLinkSender requires
    stream = SubjectStream("npc", outputs_for([a, b, c], faceboard))
    frame = _clip(2)
    stream.push(frame[0])
    stream.push(frame[1])
    fa, fc = a.of_type(Frame), c.of_type(Frame)
    assert [f.values.tolist() for f in fa] == [f.values.tolist() for f in b.of_type(Frame)]
    np.testing.assert_array_equal(fa[1].values, faceboard.apply_array(frame[1]))
    assert c.of_type(Schema)[0].mapping_id == "arkit52" and len(fc) == 1  # one refused
    np.testing.assert_array_equal(fc[0].values, load_mapping("arkit52").apply_array(frame[0]))
    assert stream.stats.n_refused == 1 and c.stats.n_dropped == 1


def test_bad_frames_and_subjects_are_refused_clearly():
    stream = SubjectStream("npc", [Output(recording_sender(), load_mapping("arkit52"))])
    with pytest.raises(ValueError, match=r"\[174\]"):
        stream.push(np.zeros(173, np.float32))
    for bad in ("", "npc 1", "a/b", "x" * 65):
        with pytest.raises(ValueError, match="subject must be"):
            check_subject(bad)


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _baked(tmp_path, n_frames: int = 30):
    animation = Animation(_clip(n_frames, seed=4), metadata={"emotion": "happy"})
    return JsonWriter().write(animation, tmp_path / "line.json")


def test_stream_a_bake_over_all_transports_at_once_into_mock_receivers(tmp_path, capsys):
    baked = _baked(tmp_path)
    values = load_animation(baked).values
    zmq_endpoint = f"tcp://127.0.0.1:{_free_port()}"
    with (
        MockReceiver("zmq", zmq_endpoint) as rz,
        MockReceiver("osc", "127.0.0.1:0") as ro,
        MockReceiver("livelink", "127.0.0.1:0") as rl,
    ):
        rc = main([
            "stream", str(baked), "--subject", "npc1", "--zmq", zmq_endpoint,
            "--osc", f"127.0.0.1:{ro.port}", "--livelink", f"127.0.0.1:{rl.port}",
            "--start-delay-s", "0.3",
        ])  # fmt: skip
        assert rc == 0
        err = capsys.readouterr().err
        # A loaded machine may skip a frame that is hopelessly late (the player says how many);
        # every frame that was sent must arrive, intact and in order.
        skipped = int(re.search(r"skipped (\d+) too late", err).group(1))
        n_sent = len(values) - skipped
        assert skipped <= 5, err
        for rx in (rz, ro, rl):
            assert rx.wait_for(n_sent, TIMEOUT_S), (rx.transport, rx.stats)
        assert rz.wait_until(lambda: len(rz.ends) == 1, TIMEOUT_S)
    faceboard, arkit = load_mapping("metahuman_faceboard"), load_mapping("arkit52")
    for rx in (rz, ro):
        index = [round(f.t_s * 60) for f in rx.frames]  # which baked frame each one carries
        got = np.array([f.values for f in rx.frames], np.float32)
        np.testing.assert_allclose(got, faceboard.apply_array(values)[index], rtol=0, atol=1e-7)
        assert rx.frames[0].names == faceboard.names
        assert [f.seq for f in rx.frames] == list(range(n_sent))
        assert rx.stats.n_missing == 0 and rx.stats.n_malformed == 0
        assert rx.starts[0].info["emotion"] == "happy" and rx.ends[0].n_frames_sent == n_sent
    expected = arkit.apply_array(values)[index]
    for frame, row in zip(rl.frames, expected):
        named = frame.named()
        assert [named[n] for n in arkit.names] == pytest.approx(row.tolist(), abs=1e-7)
    # Paced: 30 frames at 60 fps arrive over about half a second, not in one burst (load only
    # ever stretches that).
    arrivals = [f.t_received for f in rz.frames]
    assert arrivals[-1] - arrivals[0] > 0.4
    assert f"sent {n_sent} frames x 1 subject(s)" in err and "livelink 127.0.0.1" in err


def test_stream_audio_with_the_procedural_engine_loops_and_drives_two_subjects(
    tmp_path, monkeypatch
):
    wav = write_wav(tmp_path / "line.wav", make_sine(0.5))
    monkeypatch.chdir(tmp_path)  # the README's `emoface stream line.wav`: a relative path
    port = _free_port()
    with MockReceiver("zmq", f"tcp://127.0.0.1:{port}") as rx:
        rc = main([
            "stream", "line.wav", "--engine", "procedural", "--emotion", "happy", "--seed", "3",
            "--subject", "npc1", "--subject", "npc2", "--zmq", f"tcp://127.0.0.1:{port}",
            "--loop", "2", "--mapping", "metahuman_curves", "--start-delay-s", "0.3",
        ])  # fmt: skip
        assert rc == 0
        assert rx.wait_for(2 * 2 * 30, TIMEOUT_S), rx.stats
    from emoface_core.animate import animate_audio
    from emoface_core.audio import load_audio
    from emoface_core.emotion import parse_emotion_spec
    from emoface_core.engines import load_engine

    expected = animate_audio(
        load_engine("procedural"), load_audio(wav), parse_emotion_spec("happy"), seed=3
    ).values
    mapped = load_mapping("metahuman_curves").apply_array(expected)
    for subject in ("npc1", "npc2"):
        frames = [f for f in rx.frames if f.subject == subject]
        assert [f.line_id for f in frames] == [1] * 30 + [2] * 30
        assert [f.seq for f in frames] == list(range(60))
        got = np.array([f.values for f in frames], np.float32)
        np.testing.assert_allclose(got, np.concatenate([mapped, mapped]), atol=1e-6)
    assert len(rx.starts) == 4 and rx.starts[0].info.get("engine") == "procedural"
    # The editor opens the audio from its own working directory: the path must be absolute.
    assert rx.starts[0].info["audio"] == str(wav.resolve())


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--subject", "npc 1"], "subject must be"),
        (["--mapping", "nope"], "nope: no such mapping file"),
        (["--osc", "127.0.0.1:99999"], "between 0 and 65535"),
        (["--zmq", "localhost:5555"], "must start with"),
        (["--livelink-mapping", "tests/data/mappings/bad_version.yaml"], "unknown version 2"),
    ],
)
def test_stream_errors_are_one_line(tmp_path, capsys, argv, fragment):
    baked = _baked(tmp_path, 3)
    if "--livelink-mapping" in argv:
        argv = [*argv, "--livelink"]
    assert main(["stream", str(baked), "--no-realtime", "--start-delay-s", "0", *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("emoface: error: ") and fragment in err[-1]


def test_stream_rejects_a_missing_or_broken_input(tmp_path, capsys):
    assert main(["stream", str(tmp_path / "missing.json"), "--no-realtime"]) == 1
    assert "missing.json: no such file" in capsys.readouterr().err


def test_start_info_names_the_audio_of_a_baked_file_absolutely(tmp_path, monkeypatch):
    from bridge.commands.stream import _line_info

    (tmp_path / "lines").mkdir()
    wav = write_wav(tmp_path / "lines" / "a.wav", make_sine(0.1))
    monkeypatch.chdir(tmp_path)
    baked = Path("lines/a.json")
    # An older bake recorded the audio relative to where it ran; new bakes record it absolute.
    for recorded in ("lines/a.wav", "a.wav", str(wav)):
        info = _line_info(baked, {"source_audio": recorded, "emotion": "sad"})
        assert info["audio"] == info["source_audio"] == str(wav.resolve()), recorded
        assert info["source"] == str((tmp_path / "lines" / "a.json").resolve())
    assert "audio" not in _line_info(baked, {})  # nothing to play
