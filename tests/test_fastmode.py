"""``precision="fast"``: the CPU's native low-precision path stays within the accuracy bound of
the exact network, picks its path from the CPU's flags, leaves the original model alone, streams,
and is reachable from the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_model

from emoface_core.audio import SAMPLE_RATE, Audio
from emoface_core.emotion import EmotionTimeline
from emoface_core.errors import ConfigError
from emoface_core.testing.signals import speech_like

pytest.importorskip("transformers")


def engine(model, precision: str = "exact"):
    from emoface_core.engines.neural.engine import NeuralEngine

    return NeuralEngine(model, precision=precision)


@pytest.fixture
def bf16_cpu():
    from emoface_core.engines.neural.fastmode import native_bf16

    if not native_bf16():
        pytest.skip("this CPU has no native bf16 (AMX or AVX512-BF16): the bf16 path is not used")


@pytest.mark.parametrize("decoder_mode", ["per_frame", "temporal"])
def test_bf16_fast_mode_stays_within_the_bound_of_exact(bf16_cpu, decoder_mode):
    from emoface_core.engines.neural.fastmode import MAX_BOUND, MEAN_BOUND, fast_model, fast_path

    model = tiny_model(decoder_mode)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = fast_model(model, "bf16")
    assert fast_path(fast) == "bf16" and fast_path(model) == "off"
    for key, value in model.state_dict().items():  # the exact model is untouched
        assert value.dtype == before[key].dtype and bool((value == before[key]).all()), key
    timeline = EmotionTimeline.constant("happy")
    for duration, seed in ((0.7, 0), (3.0, 1), (12.0, 2)):  # one window; several windows
        audio = Audio(speech_like(duration, seed))
        exact = engine(model).infer(audio, timeline)
        low = engine(fast).infer(audio, timeline)
        diff = np.abs(low - exact)
        assert np.isfinite(low).all() and low.dtype == np.float32
        assert 0 < diff.mean() <= MEAN_BOUND and diff.max() <= MAX_BOUND, (
            duration,
            diff.mean(),
            diff.max(),
        )


def test_bf16_fast_mode_streams_within_the_bound_of_exact_streaming(bf16_cpu):
    from emoface_core.engines.neural.fastmode import MAX_BOUND, MEAN_BOUND
    from emoface_core.streaming import Streamer, stream_clip

    model = tiny_model()
    fast_engine = engine(tiny_model(), "fast")
    assert fast_engine.describe()["precision_path"].startswith("bf16 weights on")
    audio = Audio(speech_like(2.0))
    timeline = EmotionTimeline.constant("sad")
    streamed = {}
    for name, e in (("exact", engine(model)), ("fast", fast_engine)):
        stream = Streamer(e).open(timeline, raw=True)
        streamed[name] = stream_clip(stream, audio.samples, SAMPLE_RATE // 50)
    diff = np.abs(streamed["fast"] - streamed["exact"])
    assert streamed["fast"].shape == (audio.n_frames, 174)
    assert 0 < diff.mean() <= MEAN_BOUND and diff.max() <= MAX_BOUND


def test_the_fast_path_follows_the_cpus_flags(monkeypatch):
    from emoface_core.engines.neural import fastmode

    monkeypatch.setattr(fastmode, "native_bf16", lambda: True)
    monkeypatch.setattr(fastmode, "cpu_flags", lambda: frozenset({"amx_bf16", "avx512_bf16"}))
    assert fastmode.choose_fast_mode() == ("bf16", "bf16 weights on AMX")
    monkeypatch.setattr(fastmode, "native_bf16", lambda: False)
    monkeypatch.setattr(fastmode, "cpu_flags", lambda: frozenset({"avx2", "avx512_vnni"}))
    mode, why = fastmode.choose_fast_mode()
    assert mode == "off" and "int8 (VNNI) misses the accuracy bound" in why
    monkeypatch.setattr(fastmode, "cpu_flags", lambda: frozenset({"avx2"}))
    assert fastmode.choose_fast_mode()[0] == "off"
    # Emulated bf16 would be slower than float32: refused, not silently used.
    with pytest.raises(ConfigError, match="needs a CPU with AMX or AVX512-BF16"):
        fastmode.fast_model(tiny_model(), "bf16")
    model = tiny_model()
    fast_engine = engine(model, "fast")  # no fast path here: float32, said so
    assert fast_engine.model is model and "float32" in fast_engine.precision_note


def test_int8_and_unknown_modes(monkeypatch):
    from emoface_core.engines.neural.fastmode import count_quantized, fast_model, fast_path

    model = tiny_model()
    fast = fast_model(model, "int8")
    assert count_quantized(fast) > 0 and count_quantized(model) == 0 and fast_path(fast) == "int8"
    assert fast_model(model, "off") is model
    with pytest.raises(ConfigError, match="fast mode must be one of"):
        fast_model(model, "fp4")
    with pytest.raises(ConfigError, match="precision must be one of exact, fast"):
        engine(model, "quick")


def test_the_cli_says_which_precision_runs(tiny_release_checkpoint, sine_wav, tmp_path, capsys):
    from bridge.cli import main

    out = tmp_path / "a.json"
    code = main(
        [
            "bake",
            str(sine_wav),
            "-o",
            str(out),
            "--engine",
            "emoface",
            "--checkpoint",
            str(tiny_release_checkpoint),
            "--precision",
            "fast",
        ]
    )
    assert code == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "engine emoface, precision fast (" in err
    assert main(["bake", str(sine_wav), "-o", str(tmp_path / "b.json"), "--precision", "fast"]) == 0
    assert "--precision applies to the network only" in capsys.readouterr().err


def test_streaming_runs_under_the_engines_autocast():
    """The path CUDA's fast precision takes (fp16 autocast in every streaming step), run here
    with the CPU's bf16 autocast: same code, and close to the float32 stream."""
    from emoface_core.streaming import Streamer, stream_clip

    model = tiny_model()
    audio = Audio(speech_like(1.5))
    timeline = EmotionTimeline.constant("happy")
    out = {}
    for precision in ("exact", "bf16"):
        e = engine(model, precision)
        stream = Streamer(e).open(timeline, raw=True)
        out[precision] = stream_clip(stream, audio.samples, SAMPLE_RATE // 50)
        if precision == "bf16":
            assert e._streaming is not None and e._streaming.precision == "bf16"
    diff = np.abs(out["bf16"] - out["exact"])
    assert np.isfinite(out["bf16"]).all() and 0 < diff.mean() < 0.02
    with pytest.raises(ConfigError, match="fp16 inference needs a CUDA device"):
        from emoface_core.engines.neural.streaming import StreamingNetwork

        StreamingNetwork(model, "fp16")
