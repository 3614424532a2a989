import numpy as np
import pytest
from conftest import TINY_WAV2VEC2, make_sine, tiny_model, write_wav

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from emoface_core.audio import Audio, normalize  # noqa: E402
from emoface_core.emotion import EMOTIONS, EmotionTimeline, parse_emotion_spec  # noqa: E402
from emoface_core.engines.neural.inference import animate, blend_weights, window_plan  # noqa: E402


def test_output_shape_and_finite():
    model = tiny_model()
    audio = Audio(make_sine(1.25))
    y = animate(model, audio, EmotionTimeline.constant("happy"))
    assert y.shape == (75, 174) and y.dtype == np.float32 and np.all(np.isfinite(y))


@pytest.mark.parametrize("mode", ["per_frame", "temporal"])
def test_silence_and_tiny_inputs(mode):
    model = tiny_model(mode)
    for n in (0, 100, 300, 16_000):
        audio = Audio(np.zeros(n, np.float32))
        y = animate(model, audio, EmotionTimeline.constant(4))
        assert y.shape == (audio.n_frames, 174) and np.all(np.isfinite(y))


def test_fast_per_frame_path_equals_transformer_encoder():
    model = tiny_model("per_frame")
    x = torch.randn(1, 50, 64)
    w = torch.from_numpy(parse_emotion_spec("sad").weights(50))[None]
    with torch.no_grad():  # grad mode off but not inference: generic nn.TransformerEncoder path
        torch.set_grad_enabled(True)
        slow = model.decode(x, w).detach()
        torch.set_grad_enabled(False)
        fast = model.decode(x, w)
    torch.set_grad_enabled(True)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


def test_per_frame_decoder_is_frame_local_and_temporal_is_not():
    hidden = torch.randn(1, 40, 64)
    w = torch.from_numpy(parse_emotion_spec("fear").weights(40))[None]
    changed = hidden.clone()
    changed[:, 30:] += 1.0
    for mode, local in (("per_frame", True), ("temporal", False)):
        model = tiny_model(mode)
        with torch.no_grad():
            a, b = model.decode(hidden, w), model.decode(changed, w)
        assert torch.allclose(a[:, :30], b[:, :30], atol=1e-6) == local


def test_emotion_timeline_switches_output():
    model = tiny_model("per_frame")
    audio = Audio(make_sine(4.0))
    happy = animate(model, audio, EmotionTimeline.constant("happy"))
    sad = animate(model, audio, EmotionTimeline.constant("sad"))
    both = animate(model, audio, parse_emotion_spec("happy@0,sad@2", fade_s=0.2))
    assert np.abs(happy - sad).mean() > 1e-3  # emotion matters
    np.testing.assert_allclose(both[:110], happy[:110], atol=1e-5)
    np.testing.assert_allclose(both[130:], sad[130:], atol=1e-5)
    # inside the fade the code is a blend: the output is neither pure happy nor pure sad
    assert (
        np.abs(both[120] - happy[120]).mean() > 1e-4 and np.abs(both[120] - sad[120]).mean() > 1e-4
    )


def test_intensity_interpolates_codes_from_neutral():
    model = tiny_model("per_frame")
    audio = Audio(make_sine(1.0))
    neutral = animate(model, audio, EmotionTimeline.constant("neutral"))
    angry = animate(model, audio, EmotionTimeline.constant("angry"))
    half = animate(model, audio, EmotionTimeline.constant("angry", 0.5))
    assert np.abs(half - neutral).mean() < np.abs(angry - neutral).mean()
    assert np.abs(half - angry).mean() < np.abs(angry - neutral).mean()


def test_window_plan_covers_and_blends_to_one():
    plan = window_plan(1000, 240, 48, 6)
    assert plan[0][0] == 0 and plan[-1][1] == 1000
    assert all(s % 6 == 0 for s, _ in plan)
    assert all(e - s >= 240 for s, e in plan)
    total = np.zeros(1000)
    for (s, e), w in zip(plan, blend_weights(plan)):
        total[s:e] += w
    assert np.all(total > 0.99)


def test_chunked_matches_whole_clip():
    model = tiny_model("per_frame")
    audio = Audio(make_sine(8.0, freq_hz=180))
    timeline = EmotionTimeline.constant("surprise")
    whole = animate(model, audio, timeline)
    chunked = animate(model, audio, timeline, chunk_s=3.0, overlap_s=1.0)
    assert chunked.shape == whole.shape
    diff = np.abs(chunked - whole)
    assert diff.mean() < 2e-3 and diff.max() < 2e-2, (diff.mean(), diff.max())
    # and there is no jump at the window seams larger than the clip's own frame-to-frame motion
    assert (
        np.abs(np.diff(chunked, axis=0)).max() <= np.abs(np.diff(whole, axis=0)).max() * 1.05 + 1e-3
    )


@pytest.mark.parametrize("n_samples", [16_000, 16_000 + 37, 3 * 16_000 + 219])
def test_conv_stack_in_blocks_equals_one_pass(n_samples):
    # Blocks start on whole output strides and share the whole input's GroupNorm statistics,
    # so the frames are the one-pass frames (up to float rounding), none lost at the seams.
    model = tiny_model("per_frame")
    x = torch.from_numpy(normalize(make_sine(n_samples / 16_000, freq_hz=230)))[None]
    with torch.inference_mode():
        whole = model.conv_features(x, block_frames=0)
        blocked = model.conv_features(x, block_frames=7)
    assert whole.shape[-1] == model.conv_output_length(n_samples) > 7 * 50
    assert blocked.shape == whole.shape
    assert torch.allclose(blocked, whole, rtol=1e-4, atol=1e-5 * float(whole.abs().max()))
    # Two inputs at once keep their own statistics (the single-input path folds them into the
    # first layer's kernels instead): each row equals that input on its own.
    pair = torch.cat([x, 0.3 * x.flip(-1)])
    with torch.inference_mode():
        rows = model.conv_features(pair, block_frames=7)
        second = model.conv_features(pair[1:], block_frames=0)
    assert torch.allclose(rows[:1], whole, rtol=1e-4, atol=1e-5 * float(whole.abs().max()))
    assert torch.allclose(rows[1:], second, rtol=1e-4, atol=1e-5 * float(second.abs().max()))


def test_long_audio_memory_is_bounded_by_window():
    model = tiny_model("per_frame")
    audio = Audio(make_sine(30.0))
    y = animate(model, audio, EmotionTimeline.constant(0), chunk_s=5.0, overlap_s=1.0)
    assert y.shape == (1800, 174) and np.all(np.isfinite(y))


def test_release_network_parity_in_memory():
    from transformers import Wav2Vec2Config

    from emoface_core.engines.neural.checkpoint import (
        _load_state_dict,
        config_from_release_state_dict,
    )
    from emoface_core.engines.neural.model import EmoFaceModel
    from emoface_core.testing.release_reference import ReleaseEmoFace, release_state_dict

    torch.manual_seed(1)
    ref = ReleaseEmoFace(
        Wav2Vec2Config(**TINY_WAV2VEC2), d_model=64, nhead=4, num_layers=2, dim_feedforward=128
    ).eval()
    torch.nn.init.normal_(ref.out_fn.weight, std=0.05)
    state = release_state_dict(ref)
    assert "audio_encoder.encoder.pos_conv_embed.conv.weight_g" in state
    model = EmoFaceModel(config_from_release_state_dict(state))
    _load_state_dict(model, state, "<memory>")
    model.eval()
    x = make_sine(2.0)
    for emotion in range(7):
        with torch.no_grad():
            expected = ref(torch.from_numpy(normalize(x))[None], 120, emotion)[0].numpy()
        got = animate(model, Audio(x), EmotionTimeline.constant(EMOTIONS[emotion]))
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_bake_cli_shapes_for_sample_rates(tmp_path, tiny_release_checkpoint):
    from bridge.cli import main

    for rate in (16_000, 44_100):
        wav = write_wav(tmp_path / f"c{rate}.wav", make_sine(1.1, sample_rate=rate), rate)
        out = tmp_path / f"c{rate}.txt"
        assert (
            main(["bake", str(wav), "--checkpoint", str(tiny_release_checkpoint), "-o", str(out)])
            == 0
        )
        values = np.loadtxt(out, delimiter=",")
        assert values.shape == (66, 174)


def test_long_clips_run_in_row_blocks_with_the_same_result(monkeypatch):
    import copy

    from emoface_core.engines.neural import model as model_module

    model = tiny_model("per_frame")
    assert type(model.audio_encoder.encoder.layers[0].feed_forward).__name__ == (
        "RowBlockedFeedForward"
    )
    audio, timeline = Audio(make_sine(2.0, freq_hz=190)), EmotionTimeline.constant("fear")
    whole = animate(model, audio, timeline)  # 120 frames: one block
    monkeypatch.setattr(model_module, "ROW_BLOCK", 37)  # rows split unevenly, decoder too
    assert np.allclose(animate(model, audio, timeline), whole, atol=1e-5)
    twin = copy.deepcopy(model)  # class swaps survive copies
    assert np.allclose(animate(twin, audio, timeline), whole, atol=1e-5)
