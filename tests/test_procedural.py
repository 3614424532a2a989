import json

import numpy as np
import pytest
from conftest import write_wav
from scipy.signal import butter, lfilter

from emoface_core.animate import animate_audio
from emoface_core.audio import SAMPLE_RATE, Audio, load_audio
from emoface_core.controllers import (
    CONTROLLER_INDEX,
    CONTROLLER_NAMES,
    JAW_OPEN,
    MOUTH_CHANNELS,
    N_CONTROLLERS,
    channel_range,
)
from emoface_core.emotion import EMOTIONS, EmotionTimeline, parse_emotion_spec
from emoface_core.engines.base import Engine, EngineBase
from emoface_core.engines.procedural.articulation import (
    LOOKAHEAD_FRAMES,
    LOW_LATENCY_LOOKAHEAD_FRAMES,
)
from emoface_core.engines.procedural.data import load_procedural_data
from emoface_core.engines.procedural.engine import ProceduralEngine
from emoface_core.engines.procedural.speech import HALF_WINDOW, FeatureStream, frame_center_sample
from emoface_core.errors import ConfigError

FPS = 60
VOWELS = {"a": (750, 1200, 2600), "i": (300, 2300, 3000), "u": (320, 800, 2300)}


def _ch(name: str) -> int:
    return CONTROLLER_INDEX[name]


LIP_DEPRESS = _ch("CTRL_L_mouth_lowerLipDepress-translateY")
PURSE = _ch("CTRL_L_mouth_purseU-translateY")
STRETCH = _ch("CTRL_L_mouth_stretch-translateY")
TOGETHER = _ch("CTRL_L_mouth_lipsTogetherU-translateY")


def _resonator(x: np.ndarray, freq_hz: float, bandwidth_hz: float) -> np.ndarray:
    r = np.exp(-np.pi * bandwidth_hz / SAMPLE_RATE)
    b, c = 2 * r * np.cos(2 * np.pi * freq_hz / SAMPLE_RATE), -r * r
    return lfilter([1 - b - c], [1, -b, -c], x)


def make_vowel(kind: str, duration_s: float, f0_hz: float = 120.0, level: float = 0.3):
    """A formant-synthesised vowel ('a', 'i', 'u'): see ``_vowel_of``."""
    return _vowel_of(VOWELS[kind], duration_s, f0_hz, level)


def _vowel_of(formants_hz, duration_s: float, f0_hz: float = 120.0, level: float = 0.3):
    """A glottal pulse train through three resonators at ``formants_hz`` (F1, F2, F3)."""
    n = int(duration_s * SAMPLE_RATE)
    phase = np.cumsum(np.full(n, f0_hz / SAMPLE_RATE))
    y = lfilter([1.0], [1.0, -0.97], np.diff(np.floor(phase), prepend=0.0))
    for freq, bw in zip(formants_hz, (80, 100, 150)):
        y = _resonator(y, freq, bw)
    y = y / np.abs(y).max() * level
    ramp = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / 160)
    return y * ramp


def make_hiss(duration_s: float, level: float = 0.05) -> np.ndarray:
    b, a = butter(4, 4000 / (SAMPLE_RATE / 2), "high")
    noise = np.random.default_rng(3).standard_normal(int(duration_s * SAMPLE_RATE))
    return level * lfilter(b, a, noise)


def utterance(*parts: tuple[str, float]) -> np.ndarray:
    """Vowels ('a', 'i', 'u'), silences ('_') and hiss ('s') in a row, over a faint noise floor."""
    pieces = []
    for kind, duration_s in parts:
        if kind == "_":
            pieces.append(np.zeros(int(duration_s * SAMPLE_RATE)))
        elif kind == "s":
            pieces.append(make_hiss(duration_s))
        else:
            pieces.append(make_vowel(kind, duration_s))
    x = np.concatenate(pieces)
    return (x + 1e-4 * np.random.default_rng(0).standard_normal(x.size)).astype(np.float32)


def frames_of(start_s: float, end_s: float) -> slice:
    """The frames well inside a segment (its middle half)."""
    a, b = start_s * FPS, end_s * FPS
    return slice(int(a + (b - a) / 4), int(b - (b - a) / 4))


@pytest.fixture(scope="module")
def engine() -> ProceduralEngine:
    return ProceduralEngine()


@pytest.fixture(scope="module")
def still() -> ProceduralEngine:
    return ProceduralEngine(idle_gain=0.0)


def _run(engine, samples, emotion="neutral"):
    timeline = emotion if isinstance(emotion, EmotionTimeline) else parse_emotion_spec(emotion)
    return engine.infer(Audio(np.asarray(samples, dtype=np.float32)), timeline)


def test_implements_engine_protocol(engine):
    assert isinstance(engine, Engine)
    assert engine.name == "procedural" and engine.wants_smoothing is False
    facts = engine.describe()
    assert facts["name"] == "procedural" and facts["lookahead_frames"] == LOOKAHEAD_FRAMES
    json.dumps(facts)


@pytest.mark.parametrize("noise_db", [None, -60.0])
def test_silence_gives_a_closed_still_mouth(engine, noise_db):
    n = 2 * SAMPLE_RATE
    x = np.zeros(n)
    if noise_db is not None:
        x = 10 ** (noise_db / 20) * np.random.default_rng(1).standard_normal(n)
    out = _run(engine, x)
    mouth = out[:, list(MOUTH_CHANNELS)]
    assert out.shape == (120, N_CONTROLLERS) and out.dtype == np.float32
    assert np.abs(mouth).max() < 1e-3
    assert np.ptp(mouth, axis=0).max() < 1e-3


def test_loud_vowel_opens_the_jaw_and_silence_closes_it(still):
    out = _run(still, utterance(("_", 0.5), ("a", 0.6), ("_", 0.6)))
    vowel, after = out[frames_of(0.5, 1.1)], out[frames_of(1.4, 1.7)]
    assert vowel[:, JAW_OPEN].min() > 0.3
    assert vowel[:, LIP_DEPRESS].min() > 0.2
    assert after[:, JAW_OPEN].max() < 0.01


def test_vowel_quality_shapes_the_lips(still):
    out = _run(
        still,
        utterance(
            ("_", 0.3), ("a", 0.4), ("_", 0.3), ("i", 0.4), ("_", 0.3), ("u", 0.4), ("_", 0.3)
        ),
    )
    a, i, u = (out[frames_of(t, t + 0.4)].mean(axis=0) for t in (0.3, 1.0, 1.7))
    assert a[JAW_OPEN] > 1.5 * max(i[JAW_OPEN], u[JAW_OPEN])
    assert u[PURSE] > 0.2 and u[PURSE] > 3 * a[PURSE] and u[PURSE] > 3 * i[PURSE]
    assert i[STRETCH] > 0.15 and i[STRETCH] > 3 * u[STRETCH]


def test_rounded_vowel_with_merged_first_formants_rounds_the_lips(still):
    # In u and o, F1 and F2 can sit so close that the envelope shows one peak, with only a faint
    # F3 above: that faint peak is not F2 (taking it for F2 spread the lips of every such "u").
    quarter = np.zeros(SAMPLE_RATE // 4)
    x = np.concatenate([quarter, _vowel_of((350, 550, 2400), 0.5), quarter])
    u = _run(still, x + 1e-4 * np.random.default_rng(0).standard_normal(x.size))
    u = u[frames_of(0.25, 0.75)].mean(axis=0)
    assert u[PURSE] > 0.2 and u[STRETCH] < 0.05


def test_lips_close_in_a_short_gap_between_syllables(still):
    out = _run(still, utterance(("_", 0.4), ("a", 0.3), ("_", 0.08), ("a", 0.3), ("_", 0.4)))
    gap = slice(int(0.7 * FPS) + 1, int(0.78 * FPS) + 1)
    vowels = np.r_[frames_of(0.4, 0.7), frames_of(0.78, 1.08)]
    assert out[gap, TOGETHER].max() > 0.2 > out[vowels, TOGETHER].max()
    assert out[gap, JAW_OPEN].min() < 0.5 * out[vowels, JAW_OPEN].mean()


def test_hiss_gives_teeth_together_lips_apart(still):
    out = _run(still, utterance(("_", 0.4), ("s", 0.4), ("_", 0.4), ("a", 0.4), ("_", 0.4)))
    hiss, vowel = out[frames_of(0.4, 0.8)].mean(axis=0), out[frames_of(1.2, 1.6)].mean(axis=0)
    assert hiss[LIP_DEPRESS] > 0.15
    assert hiss[JAW_OPEN] < 0.5 * vowel[JAW_OPEN]


def test_mouth_anticipates_the_sound_and_moves_smoothly(still):
    onset_s = 0.5
    out = _run(still, utterance(("_", onset_s), ("a", 0.5), ("i", 0.4), ("u", 0.4), ("_", 0.5)))
    onset = int(onset_s * FPS)
    assert out[onset - 2, JAW_OPEN] > 0.02  # opening starts before the sound
    assert out[onset - 12, JAW_OPEN] == 0.0  # ...but not long before
    mouth = out[:, list(MOUTH_CHANNELS)].astype(np.float64)
    assert np.abs(np.diff(mouth, 2, axis=0)).max() < 0.12  # no frame-to-frame jitter
    spectrum = np.abs(np.fft.rfft(out[:, JAW_OPEN] - out[:, JAW_OPEN].mean())) ** 2
    freqs = np.fft.rfftfreq(out.shape[0], 1 / FPS)
    assert spectrum[freqs > 12].sum() < 0.01 * spectrum.sum()


def test_loudness_is_relative_to_the_speaker(still):
    x = utterance(
        ("_", 0.3), ("a", 0.3), ("_", 0.1), ("i", 0.3), ("_", 0.1), ("u", 0.3), ("_", 0.3)
    )
    loud, quiet = _run(still, x), _run(still, x * 10 ** (-20 / 20))
    assert np.corrcoef(loud[:, JAW_OPEN], quiet[:, JAW_OPEN])[0, 1] > 0.95
    assert abs(quiet[:, JAW_OPEN].max() - loud[:, JAW_OPEN].max()) < 0.1


# Controls each pose must move (both sides unless the name says C_), and which way.
POSE_EXPECTATIONS = {
    "happy": [("mouth_cornerPull", +1), ("eye_cheekRaise", +1)],
    "sad": [("brow_raiseIn", +1), ("mouth_cornerDepress", +1)],
    "angry": [("brow_down", +1), ("brow_lateral", +1)],
    "surprise": [("brow_raiseIn", +1), ("brow_raiseOut", +1), ("eye_blink", -1), ("C_jaw", +1)],
    "fear": [("brow_raiseIn", +1), ("eye_blink", -1), ("mouth_stretch", +1)],
    "disgust": [("mouth_upperLipRaise", +1), ("nose", +1)],
}


def _sides(control: str) -> list[str]:
    if control.startswith("C_"):
        return [f"CTRL_{control}-translateY"]
    return [f"CTRL_{side}_{control}-translateY" for side in "LR"]


@pytest.mark.parametrize("emotion", sorted(POSE_EXPECTATIONS))
def test_each_emotion_pose_moves_the_controls_its_name_implies(engine, emotion):
    silence = np.zeros(SAMPLE_RATE)
    face, neutral = _run(engine, silence, emotion), _run(engine, silence)
    change = (face - neutral).mean(axis=0)
    for control, sign in POSE_EXPECTATIONS[emotion]:
        for name in _sides(control):
            assert sign * change[_ch(name)] > 0.1, (emotion, name, change[_ch(name)])
    assert np.abs(neutral).max() < 0.1  # neutral is the rest face plus idle motion


def test_intensity_and_timeline_blend_poses(engine):
    silence = np.zeros(3 * SAMPLE_RATE)
    neutral, happy = _run(engine, silence), _run(engine, silence, "happy")
    half = _run(engine, silence, "happy:0.5")
    np.testing.assert_allclose(half - neutral, 0.5 * (happy - neutral), atol=1e-6)
    switch = _run(engine, silence, "happy@0,sad@1.5")
    pull, inner = _ch("CTRL_L_mouth_cornerPull-translateY"), _ch("CTRL_L_brow_raiseIn-translateY")
    assert switch[30, pull] > 0.3 and switch[30, inner] < 0.1
    assert switch[150, pull] < 0.05 and switch[150, inner] > 0.3


def test_emotion_modulates_articulation(still):
    x = utterance(("_", 0.3), ("a", 0.4), ("_", 0.1), ("a", 0.4), ("_", 0.3))
    jaw = {e: _run(still, x, e)[:, JAW_OPEN].max() for e in ("angry", "neutral", "sad")}
    assert jaw["angry"] > jaw["neutral"] + 0.03 > jaw["sad"] + 0.06


def test_pose_yielding_to_speech_does_not_pump_back_in_a_short_gap(still):
    # Angry lips tighten in silence and give way while talking; a 0.1 s gap between words is
    # still speech, so the tightening must not flick back there (it returns after the phrase).
    tighten = _ch("CTRL_L_mouth_tightenU-translateY")
    out = _run(
        still, utterance(("_", 0.5), ("a", 0.4), ("_", 0.1), ("a", 0.4), ("_", 1.0)), "angry"
    )
    gap, vowel, after = out[55:60, tighten], out[frames_of(0.5, 0.9), tighten], out[-20:, tighten]
    assert vowel.max() < 0.3 * after.mean()
    assert gap.max() < 0.6 * after.mean()


def test_outputs_stay_in_range(still):
    rng = np.random.default_rng(5)
    x = np.concatenate(
        [
            utterance(("a", 0.3), ("s", 0.2), ("i", 0.3)),
            rng.uniform(-1, 1, 8000),
            np.full(4000, 0.99),
            utterance(("u", 0.3)),
        ]
    )
    lo, hi = np.array([channel_range(n) for n in CONTROLLER_NAMES]).T
    for emotion in EMOTIONS:
        out = ProceduralEngine(speech_gain=3.0, idle_gain=3.0).infer(
            Audio(x.astype(np.float32)), EmotionTimeline.constant(emotion)
        )
        assert np.isfinite(out).all()
        assert (out >= lo).all() and (out <= hi).all(), emotion


def test_deterministic_under_a_seed(tmp_path):
    audio = Audio(utterance(("_", 0.3), ("a", 0.5), ("_", 0.5)))
    timeline = EmotionTimeline.constant("happy")
    a = animate_audio(ProceduralEngine(seed=3), audio, timeline, seed=7).values
    b = animate_audio(ProceduralEngine(seed=3), audio, timeline, seed=7).values
    c = ProceduralEngine(seed=4).infer(audio, timeline)
    np.testing.assert_array_equal(a, b)
    brow = _ch("CTRL_L_brow_raiseIn-translateY")
    assert not np.array_equal(ProceduralEngine(seed=3).infer(audio, timeline)[:, brow], c[:, brow])
    assert np.ptp(c[:, brow]) > 0.001  # idle motion: a silent face is not frozen


def test_streaming_in_any_chunks_equals_infer(engine):
    x = utterance(
        ("_", 0.2), ("a", 0.3), ("s", 0.15), ("i", 0.3), ("_", 0.1), ("u", 0.3), ("_", 0.2)
    )
    audio, timeline = Audio(x), parse_emotion_spec("happy@0,sad:0.5@0.8")
    whole = engine.infer(audio, timeline)
    rng = np.random.default_rng(0)
    state, parts, i = engine.start_stream(timeline), [], 0
    while i < x.size:
        n = int(rng.integers(1, 1500))
        frames, state = engine.process(state, x[i : i + n])
        parts.append(frames)
        i += n
    parts.append(engine.flush(state)[0])
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    with pytest.raises(ValueError, match="flushed"):
        engine.process(state, x[:10])


def test_stream_takes_live_emotion_weights(engine):
    x = utterance(("_", 0.2), ("a", 0.4), ("_", 0.4))
    audio = Audio(x)
    whole = engine.infer(audio, parse_emotion_spec("surprise@0,angry@0.5"))
    weights = parse_emotion_spec("surprise@0,angry@0.5").weights(audio.n_frames, FPS)
    state, parts = engine.start_stream(), []
    for i in range(0, x.size, 800):
        frames, state = engine.process(state, x[i : i + 800], weights[state.next_frame :])
        parts.append(frames)
    parts.append(engine.flush(state, weights[state.next_frame :])[0])
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)
    with pytest.raises(ValueError, match=r"\[frames, 7\]"):
        engine.process(engine.start_stream(), x, np.ones((5, 3)))


def test_stream_latency_is_the_documented_lookahead(engine):
    state = engine.start_stream(EmotionTimeline.constant("neutral"))
    n_samples = SAMPLE_RATE  # one second
    frames, state = engine.process(state, np.zeros(n_samples))
    # A frame is out once its analysis window and LOOKAHEAD_FRAMES more frames are complete.
    expected = sum(
        1
        for t in range(FPS)
        if frame_center_sample(t + LOOKAHEAD_FRAMES) + HALF_WINDOW <= n_samples
    )
    assert len(frames) == expected == FPS - LOOKAHEAD_FRAMES - 1
    assert engine.stream_lookahead_frames == 7 and engine.latency_ms == pytest.approx(116.0)
    assert len(engine.flush(state)[0]) == FPS - expected


def test_feature_stream_matches_whole_clip():
    x = utterance(("a", 0.2), ("s", 0.1), ("u", 0.2))
    whole = FeatureStream()
    ref = whole.push(x)
    stream, got = FeatureStream(), []
    for i in range(0, x.size, 333):
        got.append(stream.push(x[i : i + 333]).energy_db)
    np.testing.assert_array_equal(np.concatenate(got), ref.energy_db)


def test_bad_data_file_lists_every_problem(tmp_path):
    bad = tmp_path / "poses.yaml"
    bad.write_text(
        "version: 1\n"
        "emotions:\n"
        "  neutral: {pose: {}}\n  angry: {pose: {CTRL_L_brow_dwn-translateY: 0.5}}\n"
        "  disgust: {pose: {CTRL_LR_nose-translateY: 1.5}}\n  fear: {pose: {}}\n"
        "  happy: {pose: {}, articulation: {jaw: 2}}\n  sad: {pose: {}}\n  surprise: {pose: {}}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_procedural_data(poses_path=bad)
    message = str(err.value)
    assert "3 problem(s)" in message and str(bad) in message
    assert "emotions.angry.pose.CTRL_L_brow_dwn-translateY: unknown controller" in message
    assert "emotions.disgust.pose.CTRL_LR_nose-translateY: 1.5 is outside -1..1" in message
    assert "emotions.happy.articulation.jaw: unknown track" in message
    with pytest.raises(ConfigError, match="no such procedural data file"):
        ProceduralEngine(poses_path=tmp_path / "missing.yaml")
    (tmp_path / "v2.yaml").write_text("version: 2\n")
    with pytest.raises(ConfigError, match="unsupported version 2"):
        ProceduralEngine(articulation_path=tmp_path / "v2.yaml")
    with pytest.raises(ConfigError, match="speech_gain"):
        ProceduralEngine(speech_gain=-1)


def test_batch_fingerprint_follows_the_engine_version(monkeypatch):
    # A new engine version gives other frames for the same audio: batch bakes must redo them.
    import emoface_core.engines.procedural.engine as procedural

    before = procedural.data_fingerprint()
    monkeypatch.setattr(procedural, "PROCEDURAL_VERSION", procedural.PROCEDURAL_VERSION + ".next")
    assert procedural.data_fingerprint() != before


def test_edited_pose_file_changes_the_face(tmp_path, monkeypatch):
    from importlib import resources

    data_dir = resources.files("emoface_core").joinpath("data")
    text = data_dir.joinpath("emotion_poses.yaml").read_text()
    edited = tmp_path / "poses.yaml"
    edited.write_text(
        text.replace("CTRL_LR_brow_down-translateY: 0.65", "CTRL_LR_brow_down-translateY: 0.95")
    )
    silence = np.zeros(SAMPLE_RATE)
    brow = _ch("CTRL_R_brow_down-translateY")
    default = _run(ProceduralEngine(idle_gain=0), silence, "angry")[:, brow]
    custom = _run(ProceduralEngine(idle_gain=0, poses_path=edited), silence, "angry")[:, brow]
    assert default.mean() == pytest.approx(0.65) and custom.mean() == pytest.approx(0.95)
    monkeypatch.setenv("EMOFACE_POSES", str(edited))
    from_env = ProceduralEngine(idle_gain=0)
    assert _run(from_env, silence, "angry")[:, brow].mean() == pytest.approx(0.95)
    assert from_env.describe()["poses"] == str(edited)


def test_auto_engine_without_weights_is_procedural(monkeypatch, tmp_path):
    from emoface_core import engines

    monkeypatch.delenv(engines.CHECKPOINT_ENV, raising=False)
    monkeypatch.setattr(engines, "DEFAULT_CHECKPOINT", tmp_path / "absent.pth")
    assert isinstance(engines.load_engine("auto"), ProceduralEngine)
    assert engines.load_engine("procedural", seed=5).describe()["seed"] == 5


def test_a_gpu_request_for_the_procedural_engine_is_not_silently_dropped(caplog):
    from emoface_core import engines

    with caplog.at_level("WARNING"):
        assert isinstance(engines.load_engine("procedural", device="cpu"), ProceduralEngine)
        assert not caplog.records
        assert isinstance(engines.load_engine("procedural", device="cuda"), ProceduralEngine)
    assert "--device cuda is ignored" in caplog.text


def test_bake_cli_with_the_procedural_engine(tmp_path, capsys):
    from bridge.cli import main

    wav = write_wav(tmp_path / "line.wav", utterance(("_", 0.2), ("a", 0.4), ("_", 0.3)))
    out = tmp_path / "line.json"
    code = main(
        [
            "bake",
            str(wav),
            "--engine",
            "procedural",
            "--emotion",
            "happy",
            "--seed",
            "2",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    assert capsys.readouterr().err.count("engine procedural") == 1
    meta = json.loads(out.read_text())["metadata"]
    assert meta["engine"]["name"] == "procedural" and meta["seed"] == 2


# Low-latency settings: the coarticulation fitted into fewer future frames.
LOW = (0, 1, 3)


@pytest.fixture(scope="module")
def low() -> ProceduralEngine:
    return ProceduralEngine(idle_gain=0.0, lookahead_frames=LOW_LATENCY_LOOKAHEAD_FRAMES)


def test_low_latency_silence_gives_a_closed_still_mouth(low):
    x = 10 ** (-60 / 20) * np.random.default_rng(1).standard_normal(2 * SAMPLE_RATE)
    mouth = _run(low, x)[:, list(MOUTH_CHANNELS)]
    assert np.abs(mouth).max() < 1e-3 and np.ptp(mouth, axis=0).max() < 1e-3


def test_low_latency_vowel_opens_the_jaw_and_gaps_close_the_lips(low):
    out = _run(low, utterance(("_", 0.5), ("a", 0.6), ("_", 0.6)))
    assert out[frames_of(0.5, 1.1), JAW_OPEN].min() > 0.3
    assert out[frames_of(1.4, 1.7), JAW_OPEN].max() < 0.01
    out = _run(low, utterance(("_", 0.4), ("a", 0.3), ("_", 0.08), ("a", 0.3), ("_", 0.4)))
    # The closure shows a frame or two later than with lookahead (the kernels lag instead).
    gap = slice(int(0.7 * FPS) + 1, int(0.78 * FPS) + 3)
    vowels = np.r_[frames_of(0.4, 0.7), frames_of(0.78, 1.08)]
    assert out[gap, TOGETHER].max() > 0.2 > out[vowels, TOGETHER].max()
    assert out[gap, JAW_OPEN].min() < 0.5 * out[vowels, JAW_OPEN].mean()


def test_low_latency_keeps_vowel_shapes_and_moves_without_jitter(low):
    onset_s = 0.5
    out = _run(low, utterance(("_", onset_s), ("a", 0.5), ("i", 0.4), ("u", 0.4), ("_", 0.5)))
    a, i, u = (out[frames_of(t, t + 0.4)].mean(axis=0) for t in (0.5, 1.0, 1.4))
    assert a[JAW_OPEN] > 1.5 * max(i[JAW_OPEN], u[JAW_OPEN])
    assert u[PURSE] > 0.2 and i[STRETCH] > 0.15
    onset = int(onset_s * FPS)
    assert out[onset - 1, JAW_OPEN] == 0.0  # no anticipation without lookahead...
    assert out[onset + 3, JAW_OPEN] > 0.1  # ...but it follows within a few frames
    # The same jitter bounds as with the full lookahead.
    mouth = out[:, list(MOUTH_CHANNELS)].astype(np.float64)
    assert np.abs(np.diff(mouth, 2, axis=0)).max() < 0.12
    spectrum = np.abs(np.fft.rfft(out[:, JAW_OPEN] - out[:, JAW_OPEN].mean())) ** 2
    freqs = np.fft.rfftfreq(out.shape[0], 1 / FPS)
    assert spectrum[freqs > 12].sum() < 0.01 * spectrum.sum()


@pytest.mark.parametrize("lookahead", LOW)
def test_low_latency_outputs_stay_in_range(lookahead):
    rng = np.random.default_rng(5)
    x = np.concatenate(
        [
            utterance(("a", 0.3), ("s", 0.2), ("i", 0.3)),
            rng.uniform(-1, 1, 8000),
            np.full(4000, 0.99),
            utterance(("u", 0.3)),
        ]
    ).astype(np.float32)
    lo, hi = np.array([channel_range(n) for n in CONTROLLER_NAMES]).T
    engine = ProceduralEngine(speech_gain=3.0, idle_gain=3.0, lookahead_frames=lookahead)
    for emotion in ("angry", "surprise", "sad"):
        out = engine.infer(Audio(x), EmotionTimeline.constant(emotion))
        assert np.isfinite(out).all() and (out >= lo).all() and (out <= hi).all(), emotion


@pytest.mark.parametrize("lookahead", LOW)
def test_low_latency_streaming_in_any_chunks_equals_infer(lookahead):
    engine = ProceduralEngine(lookahead_frames=lookahead)
    x = utterance(("_", 0.2), ("a", 0.3), ("s", 0.15), ("i", 0.3), ("_", 0.1), ("u", 0.3))
    audio, timeline = Audio(x), parse_emotion_spec("happy@0,sad:0.5@0.8")
    whole = engine.infer(audio, timeline, seed=4)
    rng = np.random.default_rng(lookahead)
    state, parts, i = engine.start_stream(timeline, seed=4), [], 0
    while i < x.size:
        n = int(rng.integers(1, 1500))
        frames, state = engine.process(state, x[i : i + n])
        parts.append(frames)
        i += n
    parts.append(engine.flush(state)[0])
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert whole.shape == (audio.n_frames, N_CONTROLLERS)


@pytest.mark.parametrize("lookahead", (0, 1, LOOKAHEAD_FRAMES))
def test_documented_latency_is_the_measured_algorithmic_delay(lookahead):
    engine = ProceduralEngine(lookahead_frames=lookahead)
    latency_samples = engine.latency_ms * SAMPLE_RATE / 1000
    assert engine.latency_ms == pytest.approx(1000 * lookahead / FPS + 16.0)
    assert engine.describe()["lookahead_frames"] == lookahead
    # An onset 100 samples after frame 20's window ends, so rounding cannot move the answer.
    onset = frame_center_sample(20) + HALF_WINDOW + 100
    silent = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    burst = silent.copy()
    burst[onset:] = make_vowel("a", (burst.size - onset) / SAMPLE_RATE)
    timeline = EmotionTimeline.constant("neutral")
    changed = np.any(
        engine.infer(Audio(burst), timeline) != engine.infer(Audio(silent), timeline), axis=1
    )
    first = int(np.argmax(changed))
    # The first frame that reacts is the earliest whose centre + latency reaches the onset.
    assert first == 21 - lookahead
    assert frame_center_sample(first) + latency_samples > onset
    assert frame_center_sample(first - 1) + latency_samples <= onset
    # ...and a stream lets frame f out as soon as the audio up to centre + latency is in.
    state, released = engine.start_stream(timeline), []
    for i in range(0, burst.size, 16):
        frames, state = engine.process(state, burst[i : i + 16])
        released += [i + 16] * len(frames)
    waits = np.array(released) - frame_center_sample(np.arange(len(released)))
    assert np.all(waits >= latency_samples - 1) and np.all(waits < latency_samples + 17)


def test_lookahead_outside_the_range_is_refused():
    for bad in (-1, 7, 1.5, True):
        with pytest.raises(ConfigError, match=r"`lookahead_frames` must be .* 0\.\.6"):
            ProceduralEngine(lookahead_frames=bad)
    engine = ProceduralEngine(seed=3, idle_gain=0.5)
    copy = engine.with_lookahead(0)
    assert (copy.lookahead_frames, copy.seed, copy.idle_gain) == (0, 3, 0.5)
    assert engine.lookahead_frames == LOOKAHEAD_FRAMES and copy.stream_lookahead_frames == 1


def test_seed_reaches_the_idle_motion_in_infer_bake_and_stream(tmp_path):
    from bridge.cli import main
    from emoface_core.formats import load_animation

    wav = write_wav(tmp_path / "line.wav", utterance(("_", 0.8), ("a", 0.3), ("_", 0.8)))
    brow = _ch("CTRL_L_brow_raiseIn-translateY")
    outs = {}
    for name, seed in (("a", 1), ("b", 2), ("c", 1)):
        outs[name] = tmp_path / f"{name}.json"
        assert (
            main(
                [
                    "bake",
                    str(wav),
                    "--engine",
                    "procedural",
                    "--seed",
                    str(seed),
                    "-o",
                    str(outs[name]),
                ]
            )
            == 0
        )
    a, b, c = (load_animation(outs[k]) for k in "abc")
    np.testing.assert_array_equal(a.values, c.values)
    assert np.abs(a.values[:, brow] - b.values[:, brow]).max() > 1e-3
    assert a.metadata["engine"]["seed"] == 1 and b.metadata["engine"]["seed"] == 2
    # The brows are idle motion only (blinks and gaze leave them alone): seed 1's, not seed 0's.
    audio, timeline = load_audio(wav), EmotionTimeline.constant("neutral")
    engine = ProceduralEngine()
    np.testing.assert_allclose(
        a.values[:, brow], engine.infer(audio, timeline, seed=1)[:, brow], atol=1e-4
    )
    assert np.abs(a.values[:, brow] - engine.infer(audio, timeline)[:, brow]).max() > 1e-3
    # A stream opened with the same seed sends the bake's frames.
    from emoface_core.streaming import Streamer, stream_clip

    streamed = stream_clip(Streamer(engine).open(timeline, seed=1), audio.samples, 320)
    baked = animate_audio(engine, audio, timeline, seed=1).values
    np.testing.assert_array_equal(streamed, baked)


def test_engines_without_a_seed_of_their_own_get_none():
    class Fixed(EngineBase):
        name, wants_smoothing = "fixed", False

        def infer(self, audio, timeline):  # no seed keyword: passing one would raise
            return np.zeros((audio.n_frames, N_CONTROLLERS), np.float32)

        def describe(self):
            return {"name": "fixed"}

    animation = animate_audio(
        Fixed(),
        Audio(np.zeros(SAMPLE_RATE, np.float32)),
        EmotionTimeline.constant("neutral"),
        seed=3,
    )
    assert animation.metadata["engine"] == {"name": "fixed"} and animation.metadata["seed"] == 3
