import csv
import json

import numpy as np
import pytest
from conftest import TINY_WAV2VEC2, make_synthetic_dataset, tiny_model_config

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from bridge.cli import main  # noqa: E402
from emoface_core.emotion import EmotionTimeline  # noqa: E402
from emoface_core.engines.neural.checkpoint import load_checkpoint_dict, load_model  # noqa: E402
from emoface_core.engines.neural.inference import animate  # noqa: E402
from emoface_core.errors import CheckpointError, ConfigError, DatasetError  # noqa: E402
from emoface_core.training.dataset import discover_dataset, load_clip  # noqa: E402
from emoface_core.training.evaluate import aggregate, score_clip  # noqa: E402
from emoface_core.training.train import TrainConfig, Trainer, load_training_state, train  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and far faster than two on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


FAST = dict(lr=1e-3, save_every=0, progress=False, tensorboard=False, device="cpu")


def _config(dataset, out, **overrides):
    return TrainConfig(dataset=str(dataset), output_dir=str(out), **{**FAST, **overrides})


def _emotion_mean_mae(dataset):
    """MAE of the best audio-blind predictor: each emotion's mean training frame."""
    index = discover_dataset(dataset)
    means = {}
    for clip in index.select("train"):
        means.setdefault(clip.emotion, []).append(load_clip(clip).controls)
    means = {e: np.concatenate(v).mean(axis=0) for e, v in means.items()}
    scores = []
    for clip in index.select("validation"):
        truth = load_clip(clip).controls
        scores.append(score_clip(np.broadcast_to(means[clip.emotion], truth.shape), truth))
    return aggregate(scores).mae_all


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny temporal model trained for 40 epochs on the synthetic dataset (about 10 s)."""
    root = tmp_path_factory.mktemp("train")
    dataset = make_synthetic_dataset(root / "dataset")
    trainer = Trainer(
        _config(dataset, root / "out", epochs=40, save_every=20), tiny_model_config("temporal")
    )
    trainer.prepare()
    untrained = trainer.validate()
    result = trainer.fit()
    return dataset, result, untrained


def test_training_learns_what_an_untrained_model_cannot(trained):
    dataset, result, untrained = trained
    audio_blind = _emotion_mean_mae(dataset)
    # The bar: below the best prediction that ignores the audio, and far below an untrained model.
    threshold = min(0.8 * audio_blind, 0.05)
    assert untrained.mae_all > 5 * threshold
    assert result.best_val_mae < threshold
    rows = list(csv.DictReader((result.output_dir / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 41))
    assert float(rows[-1]["train_mse"]) < float(rows[0]["train_mse"]) / 10
    assert min(float(r["val_mae"]) for r in rows) == pytest.approx(result.best_val_mae)


def test_checkpoints_are_self_describing(trained):
    dataset, result, _ = trained
    out = result.output_dir
    assert {p.name for p in out.glob("*.pt")} == {
        "best.pt",
        "last.pt",
        "epoch_0020.pt",
        "epoch_0040.pt",
    }
    doc = load_checkpoint_dict(out / "best.pt")
    assert doc["decoder_mode"] == "temporal" and len(doc["controller_names"]) == 174
    extra = doc["extra"]
    assert extra["epoch"] == result.best_epoch
    assert extra["val"]["mae_all"] == pytest.approx(result.best_val_mae)
    assert extra["training"]["lr"] == 1e-3 and extra["training"]["lr_step_epochs"] == 100
    assert extra["dataset"]["n_train_clips"] == 6 and len(extra["dataset"]["fingerprint"]) == 64
    assert "training_state" not in extra  # only last.pt carries optimizer state
    state = load_training_state(out / "last.pt")
    assert state["epoch"] == 40 and len(state["history"]) == 40
    with pytest.raises(CheckpointError, match="holds no training state"):
        load_training_state(out / "best.pt")


def test_best_checkpoint_reproduces_validation_score(trained):
    """Validation during training scores what inference on the whole clip produces."""
    dataset, result, _ = trained
    model, info = load_model(result.best_checkpoint, device="cpu")
    assert info["kind"] == "project"
    scores = []
    for clip in discover_dataset(dataset).select("validation"):
        loaded = load_clip(clip)
        pred = animate(model, loaded.audio, EmotionTimeline.constant(clip.emotion))
        scores.append(score_clip(pred[: loaded.n_frames], loaded.controls))
    assert aggregate(scores).mae_all == pytest.approx(result.best_val_mae, rel=1e-4)


def test_trained_checkpoint_bakes_and_evaluates(trained, tmp_path, capsys):
    dataset, result, _ = trained
    wav = dataset / "validation" / "WAV" / "hap_validation_001.wav"
    out = tmp_path / "baked.txt"
    assert (
        main(
            [
                "bake",
                str(wav),
                "--checkpoint",
                str(result.best_checkpoint),
                "--raw",
                "--emotion",
                "happy",
                "-o",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    truth = load_clip(discover_dataset(dataset).select("validation")[1]).controls
    baked = np.loadtxt(out, delimiter=",")
    assert baked.shape == truth.shape
    assert np.abs(baked - truth).mean() < 0.05
    capsys.readouterr()
    assert main(["eval", str(result.best_checkpoint), str(dataset), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["overall"]["mae_all"] == pytest.approx(result.best_val_mae, rel=1e-4)
    assert set(doc["per_emotion"]) == {"angry", "happy", "sad"}


def _weights(path):
    return load_checkpoint_dict(path)["state_dict"]


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=4, n_val=2, duration_s=1.0)
    kwargs = dict(epochs=4, grad_accum_steps=3, lr_step_epochs=1, lr_gamma=0.7)
    model_config = tiny_model_config("temporal")
    straight = train(_config(dataset, tmp_path / "straight", **kwargs), model_config)

    # Interrupt in the middle of epoch 3 (4 clips in groups of 3: steps 5 and 6), then resume.
    steps = {"n": 0}
    original = Trainer._optimizer_step

    def flaky_step(self):
        steps["n"] += 1
        if steps["n"] == 5:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(Trainer, "_optimizer_step", flaky_step)
    with pytest.raises(KeyboardInterrupt):
        train(_config(dataset, tmp_path / "resumed", **kwargs), model_config)
    monkeypatch.setattr(Trainer, "_optimizer_step", original)
    assert load_training_state(tmp_path / "resumed" / "last.pt")["epoch"] == 2
    resumed = train(_config(dataset, tmp_path / "resumed", **kwargs), resume=True)

    assert resumed.epochs_done == straight.epochs_done == 4
    a, b = _weights(straight.last_checkpoint), _weights(resumed.last_checkpoint)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    for row_a, row_b in zip(straight.history, resumed.history):
        assert row_a["val_mae"] == pytest.approx(row_b["val_mae"], abs=1e-7)
        assert row_a["lr"] == row_b["lr"]
    rows = list(csv.DictReader((tmp_path / "resumed" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]  # no duplicate rows after resuming
    assert float(rows[3]["lr"]) == pytest.approx(1e-3 * 0.7**3)


def test_resume_can_extend_the_run(tmp_path):
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=3, n_val=1, duration_s=1.0)
    out = tmp_path / "out"
    train(_config(dataset, out, epochs=2), tiny_model_config("temporal"))
    result = train(_config("", out, epochs=3, lr=0.5), resume=True)  # lr is the run's own
    assert result.epochs_done == 3 and len(result.history) == 3
    assert load_checkpoint_dict(out / "last.pt")["extra"]["training"]["lr"] == 1e-3


def test_refuses_to_overwrite_a_previous_run(tmp_path):
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=3, n_val=1, duration_s=1.0)
    train(_config(dataset, tmp_path / "out", epochs=1), tiny_model_config())
    with pytest.raises(ConfigError, match="holds a previous run.*--resume"):
        Trainer(_config(dataset, tmp_path / "out", epochs=1), tiny_model_config())
    (tmp_path / "out" / "epoch_0007.pt").write_bytes(b"old")
    (tmp_path / "out" / "notes.txt").write_text("mine")
    train(_config(dataset, tmp_path / "out", epochs=1), tiny_model_config(), overwrite=True)
    assert not (tmp_path / "out" / "epoch_0007.pt").exists()  # the old run's files are gone
    assert (tmp_path / "out" / "notes.txt").exists()  # other files are left alone
    with pytest.raises(CheckpointError, match="nothing to resume"):
        Trainer(_config(dataset, tmp_path / "elsewhere"), resume=True)


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=5, n_val=1, duration_s=1.0)
    trainer = Trainer(
        _config(dataset, tmp_path / "out", epochs=2, grad_accum_steps=2), tiny_model_config()
    )
    trainer.fit()
    steps = {int(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()}
    assert steps == {2 * 3}  # 5 clips per epoch in groups of 2 -> 3 steps, for 2 epochs


def test_frozen_feature_extractor_does_not_change(tmp_path):
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=3, n_val=1, duration_s=1.0)
    trainer = Trainer(_config(dataset, tmp_path / "out", epochs=2), tiny_model_config())
    before = {k: v.clone() for k, v in trainer.model.audio_encoder.state_dict().items()}
    trainer.fit()
    after = trainer.model.audio_encoder.state_dict()
    conv = [k for k in before if k.startswith("feature_extractor.")]
    assert conv and all(torch.equal(before[k], after[k]) for k in conv)
    assert not torch.equal(
        before["encoder.layers.0.attention.k_proj.weight"],
        after["encoder.layers.0.attention.k_proj.weight"],
    )  # fine-tuned


def test_long_clips_are_cut_into_pieces(tmp_path):
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=2, n_val=1, duration_s=4.5)
    trainer = Trainer(
        _config(dataset, tmp_path / "out", epochs=1, max_segment_s=2.0), tiny_model_config()
    )
    trainer.prepare()
    pieces = [p for p in trainer.train_pieces if p.name.startswith("ang_train_000")]
    assert [p.name for p in pieces] == ["ang_train_000#0", "ang_train_000#1"]
    assert [p.n_frames for p in pieces] == [120, 150]  # 2 s + 2.5 s (the 0.5 s tail joins)
    assert [(p.start_sample, p.end_sample) for p in pieces] == [(0, 32_000), (32_000, 72_000)]
    assert trainer.dataset_info["n_train_pieces"] == 4
    trainer.fit()  # pieces of different lengths train fine
    short_table = tiny_model_config("temporal", max_positions=200)
    with pytest.raises(ConfigError, match="piece of 270 frames exceeds the decoder's 200"):
        Trainer(_config(dataset, tmp_path / "b", epochs=1), short_table).prepare()


def test_validation_holdout_when_the_dataset_has_no_split(tmp_path):
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=8, n_val=0, duration_s=1.0)
    with pytest.raises(DatasetError, match="no 'validation' split.*--val-fraction"):
        Trainer(_config(dataset, tmp_path / "a", epochs=1), tiny_model_config()).prepare()
    trainer = Trainer(
        _config(dataset, tmp_path / "b", epochs=1, val_fraction=0.25), tiny_model_config()
    )
    trainer.prepare()
    held = {p.name for p in trainer.val_pieces}
    assert held and len(held) + len(trainer.train_pieces) == 8
    assert not held & {p.name for p in trainer.train_pieces}
    again = Trainer(
        _config(dataset, tmp_path / "c", epochs=1, val_fraction=0.25, seed=9), tiny_model_config()
    )
    again.prepare()
    assert {p.name for p in again.val_pieces} == held  # stable: chosen by name, not by seed
    no_val = Trainer(
        _config(dataset, tmp_path / "d", epochs=1, val_split="none"), tiny_model_config()
    )
    result = no_val.fit()
    assert result.best_val_mae is None and not (tmp_path / "d" / "best.pt").exists()


def test_bad_clips_stop_training_unless_skipped(tmp_path):
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=4, n_val=1, duration_s=1.0)
    bad = dataset / "train" / "VALID_CTR" / "hap_train_001.txt"
    values = np.loadtxt(bad, delimiter=",")
    values[3, 7] = np.nan
    np.savetxt(bad, values, delimiter=",")
    with pytest.raises(DatasetError, match="1 clip.*hap_train_001.txt: holds NaN.*--skip-bad"):
        Trainer(_config(dataset, tmp_path / "a", epochs=1), tiny_model_config()).prepare()
    trainer = Trainer(
        _config(dataset, tmp_path / "b", epochs=1, skip_bad_clips=True), tiny_model_config()
    )
    trainer.prepare()
    assert trainer.dataset_info["n_skipped_clips"] == 1 and len(trainer.train_pieces) == 3


def test_missing_wav2vec2_is_a_clear_error(tmp_path):
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=1, n_val=1, duration_s=1.0)
    with pytest.raises(CheckpointError, match="no wav2vec2 model here.*wav2vec2-base-960h"):
        Trainer(_config(dataset, tmp_path / "o", wav2vec2_dir=str(tmp_path / "w2v")))
    with pytest.raises(CheckpointError, match="needs a pretrained wav2vec2: pass --wav2vec2"):
        Trainer(_config(dataset, tmp_path / "o"))


def test_pretrained_wav2vec2_folder_initialises_the_encoder(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    torch.manual_seed(3)
    # wav2vec2-base-960h is a CTC model: its encoder weights sit under "wav2vec2.".
    ctc = Wav2Vec2ForCTC(Wav2Vec2Config(**TINY_WAV2VEC2, vocab_size=32, layerdrop=0.1))
    ctc.save_pretrained(tmp_path / "w2v")
    pretrained = ctc.wav2vec2
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=1, n_val=1, duration_s=1.0)
    config = tiny_model_config(wav2vec2={})  # dimensions come from the folder's config.json
    trainer = Trainer(_config(dataset, tmp_path / "o", wav2vec2_dir=str(tmp_path / "w2v")), config)
    assert trainer.model.config.wav2vec2["hidden_size"] == 64
    assert trainer.model.config.wav2vec2["layerdrop"] == 0.1  # training settings come along too
    assert "vocab_size" not in trainer.model.config.wav2vec2
    ours = trainer.model.audio_encoder.state_dict()
    for key, value in pretrained.state_dict().items():
        torch.testing.assert_close(ours[key], value, msg=key)


def test_fine_tune_a_released_checkpoint(tmp_path, tiny_release_checkpoint):
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=3, n_val=1, duration_s=1.0)
    result = train(
        _config(dataset, tmp_path / "o", epochs=2, init_checkpoint=str(tiny_release_checkpoint))
    )
    model, _ = load_model(result.last_checkpoint, device="cpu")
    assert model.config.decoder_mode == "per_frame"  # the release's semantics are kept
    before, _ = load_model(tiny_release_checkpoint, device="cpu")
    assert not torch.equal(model.out_fn.weight, before.out_fn.weight)


def test_cli_train_resume_and_cache(tmp_path, capsys):
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=3, n_val=2, duration_s=1.0)
    model_json = tmp_path / "model.json"
    model_json.write_text(json.dumps(tiny_model_config("temporal").to_dict()))
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    args = [
        "train",
        str(dataset),
        "-o",
        str(out),
        "--model-config",
        str(model_json),
        "--epochs",
        "2",
        "--lr",
        "1e-3",
        "--cache-dir",
        str(cache),
        "--device",
        "cpu",
        "--no-progress",
        "--save-every",
        "1",
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "best validation MAE" in err and "3 training and 2 validation clips" in err
    assert {p.name for p in out.glob("*.pt")} == {
        "best.pt",
        "last.pt",
        "epoch_0001.pt",
        "epoch_0002.pt",
    }
    assert json.loads((out / "train_config.json").read_text())["epochs"] == 2
    entries = sorted(cache.rglob("*.npy"))
    assert len(entries) == 5  # one per clip
    stamps = [p.stat().st_mtime_ns for p in entries]
    assert main(args) == 1  # the output folder holds a run
    assert "pass --resume" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "-o",
                str(out),
                "--resume",
                "--epochs",
                "3",
                "--cache-dir",
                str(cache),
                "--no-progress",
            ]
        )
        == 0
    )
    assert [p.stat().st_mtime_ns for p in sorted(cache.rglob("*.npy"))] == stamps  # reused
    assert load_training_state(out / "last.pt")["epoch"] == 3
    # The resumed run keeps its own settings: only --epochs was typed (issue 16, item 6: the
    # argparse defaults used to reset --save-every to 100 and --patience to 0).
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["epochs"] == 3 and saved["save_every"] == 1 and saved["lr"] == 1e-3
    assert (out / "epoch_0003.pt").is_file()
    with pytest.raises(SystemExit):
        main(["train", "-o", str(out)])  # no ROOT and no --resume


def test_bf16_autocast_and_gradient_clipping_on_cpu(tmp_path):
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=3, n_val=1, duration_s=1.0)
    with pytest.raises(ConfigError, match="fp16 training needs a CUDA device"):
        Trainer(_config(dataset, tmp_path / "a", precision="fp16"), tiny_model_config())
    trainer = Trainer(
        _config(
            dataset, tmp_path / "b", epochs=3, precision="bf16", clip_grad_norm=0.5, progress=True
        ),
        tiny_model_config("temporal"),
    )
    result = trainer.fit()
    maes = [row["val_mae"] for row in result.history]
    assert all(np.isfinite(maes)) and maes[-1] < maes[0]


def test_metrics_go_to_tensorboard_when_installed(tmp_path, monkeypatch):
    import sys
    import types

    logged = []

    class FakeWriter:
        def __init__(self, log_dir, purge_step=None):
            logged.append(("open", log_dir, purge_step))

        def add_scalar(self, tag, value, step):
            logged.append((tag, step))

        def close(self):
            logged.append(("close",))

    monkeypatch.setitem(
        sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter)
    )
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=2, n_val=1, duration_s=1.0)
    train(_config(dataset, tmp_path / "o", epochs=2, tensorboard=True), tiny_model_config())
    assert logged[0] == ("open", str(tmp_path / "o" / "tensorboard"), 1)
    assert ("val_mae", 1) in logged and ("train_mse", 2) in logged and logged[-1] == ("close",)


@pytest.mark.gpu
def test_mixed_precision_training_on_cuda(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    dataset = make_synthetic_dataset(tmp_path / "ds", n_train=3, n_val=1, duration_s=1.0)
    trainer = Trainer(
        _config(dataset, tmp_path / "o", epochs=20, device="cuda"), tiny_model_config("temporal")
    )
    assert trainer.precision == "fp16"
    result = trainer.fit()
    assert np.isfinite(result.best_val_mae) and result.best_val_mae < result.history[0]["val_mae"]
    model, _ = load_model(result.best_checkpoint, device="cpu")
    assert all(torch.isfinite(p).all() for p in model.parameters())
