import numpy as np
import pytest
from conftest import make_synthetic_dataset, synth_clip, tiny_model, tiny_model_config, write_wav

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from emoface_core.audio import load_audio, normalize  # noqa: E402
from emoface_core.training.feature_cache import FeatureCache, encoder_fingerprint  # noqa: E402
from emoface_core.training.train import TrainConfig, Trainer  # noqa: E402


def test_fingerprint_follows_the_frozen_conv_stack_only():
    model = tiny_model(seed=0)
    fp = encoder_fingerprint(model)
    assert fp == encoder_fingerprint(tiny_model(seed=0))
    assert fp != encoder_fingerprint(tiny_model(seed=1))
    with torch.no_grad():
        model.audio_encoder.encoder.layers[0].attention.k_proj.weight.add_(1.0)  # trained part
    assert encoder_fingerprint(model) == fp
    with torch.no_grad():
        model.audio_encoder.feature_extractor.conv_layers[1].conv.weight.mul_(1.001)
    assert encoder_fingerprint(model) != fp


def test_keys_depend_on_every_input():
    cache = FeatureCache(None, "enc")
    key = cache.key("a" * 64, 0, 16_000, 60)
    assert key == cache.key("a" * 64, 0, 16_000, 60)
    others = {
        cache.key("b" * 64, 0, 16_000, 60),
        cache.key("a" * 64, 1, 16_000, 60),
        cache.key("a" * 64, 0, 16_001, 60),
        cache.key("a" * 64, 0, 16_000, 61),
        FeatureCache(None, "other").key("a" * 64, 0, 16_000, 60),
    }
    assert key not in others and len(others) == 5


def test_disk_round_trip_and_damaged_entries(tmp_path):
    values = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    cache = FeatureCache(tmp_path, "e" * 64)
    calls = []

    def compute():
        calls.append(1)
        return values

    np.testing.assert_array_equal(cache.get_or_compute("k", compute), values)
    fresh = FeatureCache(tmp_path, "e" * 64)  # a new run reads the file
    assert "k" in fresh
    np.testing.assert_array_equal(fresh.get_or_compute("k", compute), values)
    assert len(calls) == 1 and fresh.hits == 1
    (path,) = tmp_path.rglob("k.npy")
    path.write_bytes(b"not numpy")
    damaged = FeatureCache(tmp_path, "e" * 64)
    np.testing.assert_array_equal(damaged.get_or_compute("k", compute), values)
    assert len(calls) == 2 and damaged.misses == 1
    assert not FeatureCache(tmp_path, "f" * 64).get("k")  # another encoder: another folder


def _trainer(dataset, out, cache):
    config = TrainConfig(
        dataset=str(dataset),
        output_dir=str(out),
        epochs=1,
        lr=1e-3,
        progress=False,
        tensorboard=False,
        device="cpu",
        cache_dir=str(cache),
        save_every=0,
    )
    return Trainer(config, tiny_model_config("temporal"))


def test_cached_features_are_the_models_own(tmp_path):
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=2, n_val=1, duration_s=1.0)
    trainer = _trainer(dataset, tmp_path / "out", tmp_path / "cache")
    trainer.prepare()
    piece = trainer.train_pieces[0]
    samples = torch.from_numpy(normalize(load_audio(piece.audio_path).samples))[None]
    with torch.no_grad():
        expected = trainer.model.extract_features(samples, piece.n_frames)[0].numpy()
    np.testing.assert_array_equal(trainer.cache.get(piece.cache_key), expected)


def test_changed_audio_misses_the_cache(tmp_path):
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=2, n_val=1, duration_s=1.0)
    cache_dir = tmp_path / "cache"
    first = _trainer(dataset, tmp_path / "a", cache_dir)
    first.prepare()
    assert len(list(cache_dir.rglob("*.npy"))) == 3
    second = _trainer(dataset, tmp_path / "b", cache_dir)
    second.prepare()
    assert second.cache.misses == 0 and second.cache.hits == 3
    samples, _ = synth_clip(seed=99, duration_s=1.0)
    write_wav(dataset / "train" / "WAV" / "ang_train_000.wav", samples)  # same length, new audio
    third = _trainer(dataset, tmp_path / "c", cache_dir)
    third.prepare()
    assert len(list(cache_dir.rglob("*.npy"))) == 4  # one new entry, for the changed clip
    changed = next(p for p in third.train_pieces if p.name == "ang_train_000")
    old = next(p for p in first.train_pieces if p.name == "ang_train_000")
    assert changed.cache_key != old.cache_key
    assert not np.array_equal(third.cache.get(changed.cache_key), first.cache.get(old.cache_key))
