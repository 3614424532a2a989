"""`emoface live` end to end on loopback: sources in, mapped frames out to a mock receiver."""

from __future__ import annotations

import io
import re
import socket
import sys
import threading
import time

import numpy as np
import pytest
from conftest import make_sine, write_wav

from bridge.cli import main
from bridge.mapping import load_mapping
from bridge.protocol import EndReason
from bridge.receiver import MockReceiver
from emoface_core.audio import SAMPLE_RATE, load_audio

TIMEOUT_S = 10.0


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pcm(x: np.ndarray) -> bytes:
    return np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def _speech(duration_s: float) -> np.ndarray:
    x = make_sine(duration_s, freq_hz=160.0)
    t = np.arange(x.size) / SAMPLE_RATE
    return (x * np.clip(np.sin(2 * np.pi * 2.0 * t) + 0.4, 0, 1)).astype(np.float32)


def test_live_file_source_with_the_procedural_engine_sends_the_bake(tmp_path, capsys, monkeypatch):
    wav = write_wav(tmp_path / "line.wav", _speech(0.6))
    monkeypatch.chdir(tmp_path)
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    with MockReceiver("zmq", endpoint) as rx:
        rc = main([
            "live", "--source", "file:line.wav", "--engine", "procedural", "--emotion", "happy",
            "--seed", "2", "--subject", "npc7", "--zmq", endpoint, "--no-keys",
        ])  # fmt: skip
        assert rc == 0
        n = load_audio(wav).n_frames
        assert rx.wait_for(n, TIMEOUT_S), rx.stats
        assert rx.wait_until(lambda: len(rx.ends) == 1, TIMEOUT_S)
    from emoface_core.animate import animate_audio
    from emoface_core.emotion import parse_emotion_spec
    from emoface_core.engines.procedural.engine import ProceduralEngine

    baked = animate_audio(ProceduralEngine(), load_audio(wav), parse_emotion_spec("happy"), seed=2)
    mapping = load_mapping("metahuman_faceboard")
    got = np.array([f.values for f in rx.frames], np.float32)
    np.testing.assert_allclose(got, mapping.apply_array(baked.values), atol=1e-6)
    assert [f.seq for f in rx.frames] == list(range(n))
    assert rx.starts[0].info["live"] is True and rx.starts[0].info["engine"] == "procedural"
    assert rx.starts[0].info["audio"] == str(wav.resolve())  # absolute, for the editor
    assert rx.ends[0].reason == EndReason.FINISHED and rx.ends[0].n_frames_sent == n
    err = capsys.readouterr().err
    assert "emoface live: source ended: 36 frames from 0.60 s of audio" in err
    latency = re.search(r"latency audio->sent: p50 (\d+) ms, p99 (\d+) ms", err)
    assert latency and 100 <= int(latency.group(1)) <= 600  # 117 ms lookahead + chunking


def test_live_procedural_low_latency_sends_its_own_bake(tmp_path, capsys):
    wav = write_wav(tmp_path / "line.wav", _speech(0.6))
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    with MockReceiver("zmq", endpoint) as rx:
        rc = main([
            "live", "--source", f"file:{wav}", "--engine", "procedural", "--seed", "3",
            "--procedural-lookahead-frames", "0", "--chunk-ms", "10", "--zmq", endpoint,
            "--no-keys", "--start-delay-s", "0.2",
        ])  # fmt: skip
        assert rc == 0
        n = load_audio(wav).n_frames
        assert rx.wait_for(n, TIMEOUT_S), rx.stats
    from emoface_core.animate import animate_audio
    from emoface_core.emotion import EmotionTimeline
    from emoface_core.engines.procedural.engine import ProceduralEngine

    engine = ProceduralEngine(lookahead_frames=0)
    baked = animate_audio(engine, load_audio(wav), EmotionTimeline.constant("neutral"), seed=3)
    default = animate_audio(
        ProceduralEngine(), load_audio(wav), EmotionTimeline.constant("neutral"), seed=3
    )
    mapping = load_mapping("metahuman_faceboard")
    got = np.array([f.values for f in rx.frames], np.float32)
    np.testing.assert_allclose(got, mapping.apply_array(baked.values), atol=1e-6)
    assert np.abs(got - mapping.apply_array(default.values)).max() > 0.01  # not the default
    # Half a frame + the engine's 16 ms + one 10 ms chunk.
    assert "algorithmic latency 34 ms" in capsys.readouterr().err


def test_live_procedural_lookahead_out_of_range_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["live", "--source", "stdin", "--procedural-lookahead-frames", "7"])
    assert "must be between 0 and 6, got 7" in capsys.readouterr().err


def test_live_udp_feed_with_the_network_fills_a_gap_and_takes_commands(
    tiny_release_checkpoint, capsys
):
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    audio_port = _free_port(socket.SOCK_DGRAM)
    control_port = _free_port(socket.SOCK_DGRAM)
    speech = _pcm(_speech(0.4))
    chunk = 640  # 20 ms of s16le
    rx: MockReceiver

    def send_speech(tx: socket.socket) -> None:
        for i in range(0, len(speech), chunk):
            tx.sendto(speech[i : i + chunk], ("127.0.0.1", audio_port))
            time.sleep(0.02)

    def feed() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            deadline = time.monotonic() + TIMEOUT_S
            while not rx.frames and time.monotonic() < deadline:  # until `live` is up
                send_speech(tx)
            tx.sendto(b"emotion surprise", ("127.0.0.1", control_port))
            tx.sendto(b"emotion grumpy", ("127.0.0.1", control_port))
            send_speech(tx)
            time.sleep(0.6)  # the feed stalls: a gap
            send_speech(tx)
            tx.sendto(b"", ("127.0.0.1", audio_port))

    with MockReceiver("zmq", endpoint, subject="npc") as rx:
        sender = threading.Thread(target=feed, daemon=True)
        sender.start()
        rc = main([
            "live", "--source", f"udp:127.0.0.1:{audio_port}", "--engine", "emoface",
            "--checkpoint", str(tiny_release_checkpoint), "--device", "cpu", "--subject", "npc",
            "--zmq", endpoint, "--control-port", str(control_port), "--gap-timeout-ms", "100",
            "--seed", "1", "--no-keys", "--start-delay-s", "0.2", "--zmq-hwm", "1000",
        ])  # fmt: skip
        sender.join(TIMEOUT_S)
        assert rc == 0
        assert rx.wait_until(lambda: len(rx.ends) == 1, TIMEOUT_S), rx.stats
    err = capsys.readouterr().err
    summary = re.search(r"source ended: (\d+) frames from ([\d.]+) s of audio", err)
    assert summary, err
    n_frames, audio_s = int(summary.group(1)), float(summary.group(2))
    # Loopback UDP may drop a datagram or two when the machine is loaded, and a stalled feed
    # thread can open a second short gap; the planted 0.6 s stall must always show up.
    assert audio_s >= 1.0
    n_gaps = int(re.search(r"(\d+) gap\(s\)", err).group(1))
    assert 1 <= n_gaps <= 3 and "1 emotion change(s), 1 bad command(s)" in err
    gap_s = float(re.search(r"\(([\d.]+) s filled\)", err).group(1))
    assert 0.2 < gap_s < 1.5
    assert abs(n_frames - (audio_s + gap_s) * 60) <= 2  # every sample, gap filler included
    assert len(rx.frames) == n_frames == rx.ends[0].n_frames_sent
    assert rx.stats.n_missing == 0 and rx.stats.n_malformed == 0
    values = np.array([f.values for f in rx.frames], np.float32)
    assert np.all(np.isfinite(values))


def test_live_reads_raw_pcm_on_stdin(monkeypatch, tmp_path, capsys):
    x = _speech(0.5)
    fake_stdin = io.TextIOWrapper(io.BytesIO(_pcm(x)))
    monkeypatch.setattr(sys, "stdin", fake_stdin)
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    with MockReceiver("zmq", endpoint) as rx:
        rc = main([
            "live", "--source", "stdin", "--engine", "procedural", "--zmq", endpoint,
            "--start-delay-s", "0.3",
        ])  # fmt: skip
        assert rc == 0
        assert rx.wait_for(30, TIMEOUT_S)
    assert len(rx.frames) == 30
    assert "emoface live: source ended: 30 frames" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--source", "speaker"], "unknown audio source 'speaker'"),
        (["--source", "file:missing.wav"], "missing.wav: no such audio file"),
        (["--source", "stdin", "--emotion", "grumpy"], "unknown emotion 'grumpy'"),
        (["--source", "stdin", "--subject", "npc 1"], "subject must be"),
        (["--source", "udp:127.0.0.1:{busy}"], "cannot bind"),
    ],
)
def test_live_errors_are_one_line(capsys, argv, fragment):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        argv = [a.format(busy=busy.getsockname()[1]) for a in argv]
        rc = main([
            "live", "--engine", "procedural", "--start-delay-s", "0", "--no-keys",
            "--zmq", f"tcp://127.0.0.1:{_free_port()}", *argv,
        ])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("emoface: error: ") and fragment in err[-1]


def test_live_microphone_without_sounddevice_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    rc = main([
        "live", "--source", "mic", "--engine", "procedural", "--start-delay-s", "0",
        "--zmq", f"tcp://127.0.0.1:{_free_port()}",
    ])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "pip install" in err and "sounddevice" in err


def test_the_console_acknowledges_at_once_and_refreshes_a_status_line():
    import io

    from bridge.commands.live import LiveConsole
    from bridge.runtime.live import LiveStats

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    console = LiveConsole(stream=out)
    stats = LiveStats()
    stats.n_samples, stats.n_frames = 32_000, 120
    stats.latency_s.extend([0.1, 0.12])
    console.watch(stats)
    console.event("emotion", "sad")
    console.event("refused", "'blorp': unknown emotion")
    assert "live:    2.0 s of audio, 120 frames, latency 120 ms" in console.status_line()
    console.close()
    text = out.getvalue()
    assert "emoface live: emotion now sad at" in text and "refused 'blorp'" in text
    quiet = io.StringIO()
    silent = LiveConsole(quiet=True, stream=quiet)
    silent.event("emotion", "happy")
    silent.watch(stats)
    silent.close()
    assert quiet.getvalue() == ""


def test_live_json_summary(tmp_path, capsys):
    import json

    wav = write_wav(tmp_path / "line.wav", _speech(0.3))
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    code = main([
        "live", "--source", f"file:{wav}", "--engine", "procedural", "--zmq", endpoint,
        "--no-keys", "--no-realtime", "--json", "-q",
    ])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["end"] == "source ended" and summary["frames"] == 18
    assert summary["senders"][0]["kind"] == "zmq"
    assert "emoface live: source ended" in captured.err  # the human summary stays on stderr
