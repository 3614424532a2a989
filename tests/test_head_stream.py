"""Live head motion (``emoface_core.head_stream``): chunk-invariant, nods shortly after pitch
accents, still in silence, bounded, seeded, and bounded in memory over long sessions."""

from __future__ import annotations

import numpy as np
from test_head import ACCENTS_S, accented_line

from emoface_core.audio import FPS, SAMPLE_RATE
from emoface_core.emotion import EmotionTimeline
from emoface_core.head import load_head_params
from emoface_core.head_stream import LOOKAHEAD_FRAMES, HeadStream

NEUTRAL = EmotionTimeline.constant("neutral").weights(1)[0]


def _run(x: np.ndarray, chunk: int, seed: int = 3, emotion=NEUTRAL) -> np.ndarray:
    stream = HeadStream(seed=seed)
    parts = [stream.push(x[i : i + chunk], emotion) for i in range(0, x.size, chunk)]
    return np.concatenate(parts)


def test_any_chunking_gives_the_same_frames():
    x = accented_line()
    a, b, c = _run(x, 160), _run(x, 1237), _run(x, x.size)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    # Every frame is final LOOKAHEAD_FRAMES (and half a window) after its audio.
    expected = int((x.size - 320) / (SAMPLE_RATE / FPS) - 0.5) - LOOKAHEAD_FRAMES
    assert abs(a.shape[0] - expected) <= 1


def test_nods_follow_the_accents_within_a_quarter_second():
    pitch = _run(accented_line(), 800)[:, 1]
    for accent in ACCENTS_S:
        f = int(accent * FPS)
        window = pitch[f : f + 25]  # the 400 ms after the accent
        dip = f + int(np.argmin(window))
        assert 0 <= dip - f <= 0.3 * FPS, (accent, (dip - f) / FPS)
        assert pitch[dip] < np.median(pitch) - 1.0  # a nod, not noise


def test_silence_is_still_and_motion_is_bounded_and_seeded():
    silent = _run(np.zeros(4 * SAMPLE_RATE, np.float32), 512)
    assert np.abs(silent).max() < 2.0 and silent.std(axis=0).max() < 0.6
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(20 * SAMPLE_RATE)).astype(np.float32) * accented_line(20.0)
    angry = EmotionTimeline.constant("angry").weights(1)[0]
    loud = _run(x, 960, seed=5, emotion=angry)
    limits = np.array(load_head_params().limits_deg)
    assert (np.abs(loud) <= limits + 1e-4).all()
    assert np.abs(np.diff(loud, axis=0)).max() < 1.5  # no jerks (degrees per frame)
    np.testing.assert_array_equal(loud, _run(x, 960, seed=5, emotion=angry))
    assert np.abs(loud - _run(x, 960, seed=6, emotion=angry)).max() > 0.5


def test_memory_stays_bounded_over_a_long_session():
    stream = HeadStream(seed=0)
    block = accented_line(4.0)
    for _ in range(40):  # 160 s of speech
        stream.push(block, NEUTRAL)
    assert len(stream._energy.values) < 400 and len(stream._voiced_pitch) <= 2400
    assert stream.frame_index > 150 * FPS


def test_live_sends_the_head_over_live_link(tmp_path, monkeypatch):
    from conftest import write_wav

    from bridge.cli import main
    from bridge.receiver import MockReceiver
    from bridge.runtime.head import _TAIL_SAMPLES

    x = accented_line(2.5)
    write_wav(tmp_path / "line.wav", x)
    monkeypatch.chdir(tmp_path)
    with MockReceiver("livelink", "127.0.0.1:0") as rx:
        args = ["live", "--source", "file:line.wav", "--engine", "procedural", "--seed", "2"]
        rc = main([*args, "--livelink", f"127.0.0.1:{rx.port}", "--no-keys", "--no-realtime"])
        assert rc == 0
        n = int(2.5 * FPS)
        assert rx.wait_for(n, 10.0), rx.stats
    stream = HeadStream(seed=2)
    expected = np.concatenate(
        [stream.push(x, NEUTRAL), stream.push(np.zeros(_TAIL_SAMPLES, np.float32), NEUTRAL)]
    )
    got = np.array(
        [[f.named()[k] for k in ("HeadYaw", "HeadPitch", "HeadRoll")] for f in rx.frames]
    )
    np.testing.assert_allclose(got[:n], np.clip(expected[:n] / 180.0, -1, 1), atol=2e-5)
    assert np.abs(got[:, 1]).max() * 180.0 > 1.0  # the nods are there
