"""Shared fixtures: generated audio, tiny real models, and the reference sample in ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoface_core.testing.signals import TINY_WAV2VEC2

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_SAMPLE = REPO_ROOT.parent / "shared" / "emoface_sample"


def make_sine(
    duration_s: float = 1.0,
    sample_rate: int = 16_000,
    freq_hz: float = 220.0,
    amplitude: float = 0.5,
    channels: int = 1,
) -> np.ndarray:
    """A sine tone with a slow wobble and a little noise, float32 ``[S]`` or ``[S, C]``."""
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    wobble = 0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t)
    noise = 0.02 * np.random.default_rng(0).standard_normal(t.size)
    x = (amplitude * wobble * np.sin(2 * np.pi * freq_hz * t) + noise).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x


def write_wav(
    path: Path, samples: np.ndarray, sample_rate: int = 16_000, subtype: str = "PCM_16"
) -> Path:
    """Write samples with soundfile and return the path."""
    import soundfile as sf

    sf.write(str(path), samples, sample_rate, subtype=subtype)
    return path


def tiny_model_config(decoder_mode: str = "per_frame", **overrides):
    """A ``ModelConfig`` with a tiny wav2vec2 and a 2-layer, 64-wide Audio2Rig."""
    from emoface_core.engines.neural.config import ModelConfig

    values = dict(
        d_model=64,
        n_heads=4,
        n_layers=2,
        ff_dim=128,
        decoder_mode=decoder_mode,
        wav2vec2=dict(TINY_WAV2VEC2),
    )
    values.update(overrides)
    return ModelConfig(**values)


def tiny_model(decoder_mode: str = "per_frame", seed: int = 0):
    """A tiny ``EmoFaceModel`` with random weights and a non-zero output layer, in eval mode."""
    import torch

    from emoface_core.engines.neural.model import EmoFaceModel

    torch.manual_seed(seed)
    model = EmoFaceModel(tiny_model_config(decoder_mode))
    torch.nn.init.normal_(model.out_fn.weight, std=0.05)
    return model.eval()


@pytest.fixture
def shared_sample() -> Path:
    """The CC BY-NC reference clip folder; skips when ../shared is not beside the repo."""
    if not (SHARED_SAMPLE / "angry_gd04_001_021.wav").is_file():
        pytest.skip(f"reference sample not found at {SHARED_SAMPLE} (../shared is absent)")
    return SHARED_SAMPLE


@pytest.fixture
def sine_wav(tmp_path: Path) -> Path:
    """A 1.5 s 16 kHz sine clip."""
    return write_wav(tmp_path / "sine.wav", make_sine(1.5))


@pytest.fixture
def tiny_release_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint file in the authors' release layout (bare state dict, weight_g/weight_v)."""
    import torch
    from transformers import Wav2Vec2Config

    from emoface_core.testing.release_reference import ReleaseEmoFace, release_state_dict

    torch.manual_seed(7)
    ref = ReleaseEmoFace(
        Wav2Vec2Config(**TINY_WAV2VEC2), d_model=64, nhead=4, num_layers=2, dim_feedforward=128
    ).eval()
    torch.nn.init.normal_(ref.out_fn.weight, std=0.05)
    path = tmp_path / "tiny_release_model.pth"
    torch.save(release_state_dict(ref), path)
    return path


# A synthetic EmoFace-format dataset (training/evaluation tests). Each clip is a tone whose loudness
# follows a slow envelope; its controls are a known function of that envelope plus an offset that
# depends on the emotion, so a model can only fit them by listening and by using the emotion.
SYNTH_EMOTIONS = ("angry", "happy", "sad")


def synth_controls(envelope: np.ndarray, emotion: int) -> np.ndarray:
    """Controls ``[T, 174]`` in 0.1..0.9: base + emotion offset + gain * envelope (all in range)."""
    rng = np.random.default_rng(1234)
    base = rng.uniform(0.1, 0.3, 174)
    gain = rng.uniform(0.05, 0.35, 174)
    offsets = rng.uniform(0.0, 0.25, (7, 174))
    return (base + offsets[emotion] + gain * envelope[:, None]).astype(np.float32)


def synth_clip(seed: int, duration_s: float = 1.5, sample_rate: int = 16_000):
    """``(samples, envelope per 60 fps frame)`` of one clip; the envelope is 0..1."""
    from emoface_core.audio import frame_count

    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    rate_hz, phase = rng.uniform(1.5, 4.0), rng.uniform(0, 2 * np.pi)

    def env(x: np.ndarray) -> np.ndarray:
        return 0.5 + 0.5 * np.sin(2 * np.pi * rate_hz * x + phase)

    carrier = np.sin(2 * np.pi * rng.uniform(150, 300) * t)
    noise = 0.01 * rng.standard_normal(n)
    samples = (0.6 * env(t) * carrier + noise).astype(np.float32)
    frames = np.arange(frame_count(n, sample_rate)) / 60.0
    return samples, env(frames)


def make_synthetic_dataset(
    root: Path, n_train: int = 6, n_val: int = 3, duration_s: float = 1.5, extra_rows: int = 1
) -> Path:
    """Write ``root/{train,validation}/{WAV,VALID_CTR}`` in the release's layout and return root.

    Clip ``i`` of a split has emotion ``SYNTH_EMOTIONS[i % 3]`` and is named ``ang_train_000``
    etc.; controls have ``extra_rows`` more rows than the audio has frames (as real exports do).
    """
    from emoface_core.emotion import emotion_id

    for split, n, seed0 in (("train", n_train, 0), ("validation", n_val, 1000)):
        (root / split / "WAV").mkdir(parents=True, exist_ok=True)
        (root / split / "VALID_CTR").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            emotion = SYNTH_EMOTIONS[i % len(SYNTH_EMOTIONS)]
            name = f"{emotion[:3]}_{split}_{i:03d}"
            samples, envelope = synth_clip(seed0 + i, duration_s)
            write_wav(root / split / "WAV" / f"{name}.wav", samples)
            envelope = np.concatenate([envelope, np.repeat(envelope[-1:], extra_rows)])
            values = synth_controls(envelope, emotion_id(emotion))
            np.savetxt(
                root / split / "VALID_CTR" / f"{name}.txt", values, fmt="%.6f", delimiter=","
            )
    return root


@pytest.fixture
def synthetic_dataset(tmp_path: Path) -> Path:
    """A small release-layout dataset (6 training, 3 validation clips of 1.5 s)."""
    return make_synthetic_dataset(tmp_path / "dataset")


def recording_sender(refuse_every: int = 0):
    """An open bridge ``Sender`` that keeps every message in memory (frame values copied).

    ``refuse_every=n`` makes it drop every n-th frame, as a full transport would.
    """
    from dataclasses import replace

    from bridge.transports.base import Sender

    class RecordingSender(Sender):
        kind = "recording"

        def __init__(self) -> None:
            super().__init__()
            self.messages: list = []

        @property
        def address(self) -> str:
            return "memory"

        def _open(self) -> None:
            pass

        def _close(self) -> None:
            pass

        def _send_control(self, message):
            self.messages.append(message)
            return 1

        _send_schema = _send_start = _send_end = _send_control

        def _send_frame(self, frame):
            if refuse_every and (frame.seq + 1) % refuse_every == 0:
                return None
            self.messages.append(replace(frame, values=np.array(frame.values, copy=True)))
            return 1

        def of_type(self, kind: type) -> list:
            return [m for m in self.messages if isinstance(m, kind)]

    return RecordingSender().open()


UNREAL_PLUGIN_PYTHON = REPO_ROOT / "unreal_plugin" / "EmoFaceBridge" / "Content" / "Python"


@pytest.fixture
def fake_unreal(monkeypatch, tmp_path):
    """A fresh fake ``unreal`` module (tests/fake_unreal.py) in ``sys.modules``, the Unreal plugin's
    Python on ``sys.path``, and any live drive the test started stopped afterwards."""
    import fake_unreal as fake

    monkeypatch.syspath_prepend(str(UNREAL_PLUGIN_PYTHON))
    module = fake.fake_install(monkeypatch, saved_dir=str(tmp_path / "Saved"))
    yield module
    from emoface_unreal.editor import live

    live.stop()
