"""Head motion from speech (``emoface_core.head``): still in silence, nods on pitch accents,
bounded and smooth, seeded, styled by emotion, and carried by every output that takes it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import write_wav

from bridge.cli import main
from bridge.receiver import MockReceiver
from emoface_core.audio import FPS, SAMPLE_RATE
from emoface_core.emotion import EmotionTimeline
from emoface_core.errors import ConfigError
from emoface_core.head import HEAD_CHANNELS, HeadParams, head_motion, load_head_params

ACCENTS_S = (1.0, 2.0, 3.0)


def accented_line(duration_s: float = 4.0) -> np.ndarray:
    """Voiced syllables every 0.25 s at 130 Hz; at each accent time a louder syllable whose pitch
    rises to 200 Hz (what a stressed syllable sounds like)."""
    t = np.arange(int(duration_s * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = np.full(t.size, 130.0)
    gain = np.full(t.size, 0.25)
    for a in ACCENTS_S:
        bump = np.exp(-0.5 * ((t - a) / 0.06) ** 2)
        f0 += 70.0 * bump
        gain += 0.35 * bump
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t - np.pi / 2), 0, None) ** 0.5
    syllables = np.maximum(
        syllables, np.clip(1.0 - np.abs(t[:, None] - ACCENTS_S).min(1) / 0.1, 0, 1)
    )
    voice = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    return (gain * syllables * voice * (t > 0.3) * (t < duration_s - 0.3)).astype(np.float32)


def weights(n: int, emotion: str = "neutral") -> np.ndarray:
    return EmotionTimeline.constant(emotion).weights(n)


def test_silence_keeps_the_head_nearly_still():
    n = 4 * FPS
    head = head_motion(np.zeros(4 * SAMPLE_RATE, np.float32), n, weights(n), seed=1)
    assert head.shape == (n, 3) and head.dtype == np.float32
    assert np.abs(head).max() < 2.0 and head.std(axis=0).max() < 0.6  # a little idle sway


def test_pitch_accents_give_nods_on_the_accents():
    x = accented_line()
    n = int(4.0 * FPS)
    pitch = head_motion(x, n, weights(n), seed=3)[:, 1]
    for accent in ACCENTS_S:
        f = int(accent * FPS)
        window = pitch[f - 15 : f + 16]  # +-250 ms
        dip = f - 15 + int(np.argmin(window))
        assert abs(dip - f) <= 0.1 * FPS, (accent, (dip - f) / FPS)  # within 100 ms
        assert pitch[dip] < np.median(pitch) - 1.0  # a nod, not noise


def test_motion_is_bounded_smooth_and_seeded():
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(20 * SAMPLE_RATE)).astype(np.float32) * accented_line(20.0)
    n = 20 * FPS
    params = load_head_params()
    loud = head_motion(x, n, weights(n, "angry"), seed=5, scale=2.0)
    assert (np.abs(loud) <= np.array(params.limits_deg) + 1e-4).all()
    speed = np.abs(np.diff(loud, axis=0))
    assert speed.max() < 1.5  # degrees per frame: no jerks
    assert np.abs(np.diff(loud, 2, axis=0)).max() < 0.3  # no jitter
    same = head_motion(x, n, weights(n, "angry"), seed=5, scale=2.0)
    other = head_motion(x, n, weights(n, "angry"), seed=6, scale=2.0)
    np.testing.assert_array_equal(loud, same)
    assert np.abs(loud - other).max() > 0.5
    assert not head_motion(x, n, weights(n), seed=5, scale=0.0).any()
    with pytest.raises(ConfigError, match="head scale must be within 0..2"):
        head_motion(x, n, weights(n), scale=3.0)


def test_emotion_styles_the_motion():
    x = accented_line()
    n = int(4.0 * FPS)
    sad = head_motion(x, n, weights(n, "sad"), seed=2)
    happy = head_motion(x, n, weights(n, "happy"), seed=2)
    assert sad[:, 1].mean() < happy[:, 1].mean() - 2.0  # sad looks down
    assert np.abs(np.diff(happy, axis=0)).sum() > 1.3 * np.abs(np.diff(sad, axis=0)).sum()


def test_bad_parameters_are_named():
    doc = {"version": 1, "limits_deg": {"yaw": 15, "pitch": 10, "roll": "x"}}
    with pytest.raises(ConfigError, match="limits_deg.roll must be a number"):
        HeadParams.from_dict(doc, "my_head.yaml")
    with pytest.raises(ConfigError, match="not a version 1 head motion file"):
        HeadParams.from_dict({"version": 2}, "my_head.yaml")


def test_bakes_carry_the_head_except_in_the_authors_txt(tmp_path):
    wav = write_wav(tmp_path / "line.wav", accented_line(2.0))
    for name in ("a.json", "a.txt", "a.csv"):
        assert main(["bake", str(wav), "-o", str(tmp_path / name), "--seed", "1"]) == 0
    doc = json.loads((tmp_path / "a.json").read_text())
    assert all(len(doc["channels"][c]) == 120 for c in HEAD_CHANNELS)
    assert doc["metadata"]["head"]["units"] == "degrees"
    from emoface_core.formats import load_animation

    animation = load_animation(tmp_path / "a.json")
    assert animation.head is not None and animation.head.shape == (120, 3)
    assert np.loadtxt(tmp_path / "a.txt", delimiter=",").shape == (120, 174)  # unchanged
    header = (tmp_path / "a.csv").read_text().splitlines()[0].split(",")
    assert header[-3:] == list(HEAD_CHANNELS)
    assert main(["bake", str(wav), "-o", str(tmp_path / "b.json"), "--head", "0"]) == 0
    assert "head_yaw" not in json.loads((tmp_path / "b.json").read_text())["channels"]


def test_live_link_face_packets_carry_the_head_in_its_units(tmp_path):
    from emoface_core.formats import JsonWriter, load_animation

    wav = write_wav(tmp_path / "line.wav", accented_line(2.0))
    assert main(["bake", str(wav), "-o", str(tmp_path / "a.json"), "--seed", "4"]) == 0
    animation = load_animation(tmp_path / "a.json")
    JsonWriter().write(animation, tmp_path / "a.json")
    with MockReceiver("livelink", "127.0.0.1:0") as rx:
        code = main(["stream", str(tmp_path / "a.json"), "--livelink", f"127.0.0.1:{rx.port}",
                     "--no-realtime", "--start-delay-s", "0.2"])  # fmt: skip
        assert code == 0
        assert rx.wait_for(60, 5.0), rx.stats
    for frame in rx.frames[:60]:
        k = frame.seq
        named = frame.named()
        expected = np.clip(animation.head[k] / 180.0, -1, 1)  # degrees -> Live Link's -1..1
        got = [named["HeadYaw"], named["HeadPitch"], named["HeadRoll"]]
        np.testing.assert_allclose(got, expected, atol=2e-5)
    from bridge.arkit import LIVELINK_INDEX

    assert [LIVELINK_INDEX[n] for n in ("HeadYaw", "HeadPitch", "HeadRoll")] == [52, 53, 54]


def test_the_preview_turns_and_tilts_the_head():
    from emoface_core.viz.preview import FaceRenderer

    renderer = FaceRenderer(192)
    face = np.zeros(174, np.float32)
    still = np.asarray(renderer.render(face).convert("L"), np.float32)
    turned = np.asarray(renderer.render(face, head=np.array([12.0, 0, 0])).convert("L"), np.float32)
    nodded = np.asarray(renderer.render(face, head=np.array([0, -8.0, 0])).convert("L"), np.float32)

    def centre(img: np.ndarray) -> tuple[float, float]:
        skin = img > 100  # the face is brighter than the background
        ys, xs = np.nonzero(skin)
        return float(xs.mean()), float(ys.mean())

    assert centre(turned)[0] > centre(still)[0] + 3  # yaw +: towards the viewer's right
    assert centre(nodded)[1] > centre(still)[1] + 3  # pitch -: the face goes down
