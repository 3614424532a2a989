import json
import shutil

import numpy as np
import pytest
from conftest import make_synthetic_dataset

from bridge.cli import main
from emoface_core.controllers import EYE_CHANNELS, JAW_OPEN, MOUTH_CHANNELS
from emoface_core.training.dataset import discover_dataset, load_clip, load_controls
from emoface_core.training.evaluate import (
    PAPER_EMOFACE,
    aggregate,
    closure_f1,
    evaluate_predictions,
    format_table,
    jaw_correlation,
    score_clip,
)


def _truth(n=120, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 0.5, (n, 174)).astype(np.float32)
    values[:, JAW_OPEN] = 0.2 + 0.2 * np.sin(np.arange(n) / 6.0)  # opens and closes
    return values


def test_group_maes_use_the_channel_groups():
    true = _truth()
    pred = true.copy()
    pred[:, list(MOUTH_CHANNELS)] += 0.1
    score = score_clip(pred, true, name="x")
    assert score.mae_mouth == pytest.approx(0.1, abs=1e-6)
    assert score.mae_eye == pytest.approx(0.0, abs=1e-7)
    assert score.mae_all == pytest.approx(0.1 * len(MOUTH_CHANNELS) / 174, abs=1e-6)
    assert score.mse_all == pytest.approx(0.01 * len(MOUTH_CHANNELS) / 174, abs=1e-6)
    pred = true.copy()
    pred[:, list(EYE_CHANNELS)] -= 0.2
    score = score_clip(pred, true)
    assert score.mae_eye == pytest.approx(0.2, abs=1e-6) and score.mae_mouth == pytest.approx(0)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"\[frames, 174\]"):
        score_clip(np.zeros((10, 174)), np.zeros((11, 174)))


def test_jaw_correlation():
    true = _truth()[:, JAW_OPEN]
    assert jaw_correlation(true * 0.5 + 0.1, true) == pytest.approx(1.0)
    assert jaw_correlation(-true, true) == pytest.approx(-1.0)
    assert jaw_correlation(true, np.full_like(true, 0.3)) is None  # truth does not move
    assert jaw_correlation(np.zeros_like(true), true) is None  # a flat prediction


def test_closure_f1():
    true = _truth()[:, JAW_OPEN]
    assert closure_f1(true, true) == 1.0
    assert closure_f1(np.full_like(true, 0.5), true) == 0.0  # never closes
    # Closed on exactly the true closed frames plus as many wrong ones: precision 1/2, recall 1.
    closed = true <= true.min() + 0.1 * np.ptp(true)
    pred = true.copy()
    extra = np.flatnonzero(~closed)[: closed.sum()]
    pred[extra] = true.min()
    assert closure_f1(pred, true) == pytest.approx(2 / 3)
    assert closure_f1(true, np.full_like(true, 0.2)) is None


def test_aggregate_pools_frames():
    true_a, true_b = _truth(100, 1), _truth(300, 2)
    a = score_clip(true_a + 0.1, true_a)
    b = score_clip(true_b + 0.2, true_b)
    g = aggregate([a, b])
    assert g.n_clips == 2 and g.n_frames == 400
    assert g.mae_all == pytest.approx((100 * 0.1 + 300 * 0.2) / 400, abs=1e-6)
    assert g.jaw_corr == pytest.approx(1.0)


def _bake_truth(dataset, out, shift=0.0, clips=None):
    """Write ground truth (+ shift) as predictions, cut to the audio's frames like bake does."""
    out.mkdir(parents=True, exist_ok=True)
    for clip in clips or discover_dataset(dataset).clips:
        loaded = load_clip(clip)
        np.savetxt(out / f"{clip.name}.txt", loaded.controls + shift, fmt="%.6f", delimiter=",")
    return out


def test_evaluate_predictions(tmp_path, synthetic_dataset):
    index = discover_dataset(synthetic_dataset)
    clips = index.select("validation")
    preds = _bake_truth(synthetic_dataset, tmp_path / "preds", shift=0.05, clips=clips)
    report = evaluate_predictions(preds, clips)
    assert report.failures == []
    overall = report.overall()
    assert overall.n_clips == 3 and overall.n_frames == 270
    assert overall.mae_all == pytest.approx(0.05, abs=1e-5)
    assert set(report.by_emotion()) == {"angry", "happy", "sad"}
    # A missing and a too-short prediction are listed; the rest is still scored.
    (preds / "hap_validation_001.txt").unlink()
    short = load_controls(preds / "sad_validation_002.txt")[:80]
    np.savetxt(preds / "sad_validation_002.txt", short, fmt="%.6f", delimiter=",")
    report = evaluate_predictions(preds, clips)
    assert [s.name for s in report.scores] == ["ang_validation_000"]
    failures = dict(report.failures)
    assert "no prediction for hap_validation_001" in failures["hap_validation_001"]
    assert "80 frames, the ground truth has 90" in failures["sad_validation_002"]


def test_predictions_may_be_json_and_per_split(tmp_path, synthetic_dataset):
    from emoface_core.animation import Animation
    from emoface_core.formats import JsonWriter

    clip = discover_dataset(synthetic_dataset).select("train")[0]
    values = load_clip(clip).controls - 0.02
    JsonWriter().write(Animation(values), tmp_path / "p" / "train" / f"{clip.name}.json")
    report = evaluate_predictions(tmp_path / "p", [clip])
    assert report.overall().mae_all == pytest.approx(0.02, abs=1e-5)


def test_cli_eval_predictions_table_and_json(tmp_path, synthetic_dataset, capsys):
    preds = _bake_truth(synthetic_dataset, tmp_path / "preds", shift=-0.01)
    out_json = tmp_path / "report.json"
    code = main(["eval", str(synthetic_dataset), "--predictions", str(preds), "-o", str(out_json)])
    assert code == 0
    text = capsys.readouterr().out
    assert "(split validation): 3 of 3 clip(s) scored" in text
    assert "overall" in text and f"{PAPER_EMOFACE['mae_all']:.5f}" in text
    doc = json.loads(out_json.read_text())
    assert doc["overall"]["mae_all"] == pytest.approx(0.01, abs=1e-5)
    assert doc["source"]["split"] == "validation"
    assert (
        main(
            [
                "eval",
                str(synthetic_dataset),
                "--predictions",
                str(preds),
                "--split",
                "all",
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["overall"]["n_clips"] == 9 and len(doc["clips"]) == 9


def test_cli_eval_usage_errors(synthetic_dataset, capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", str(synthetic_dataset)])
    assert e.value.code == 2
    assert "nothing to score" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "a.pth", str(synthetic_dataset), "--predictions", "x"])


def test_ground_truth_is_never_its_own_prediction(synthetic_dataset):
    clips = discover_dataset(synthetic_dataset).select("train")
    report = evaluate_predictions(synthetic_dataset / "train" / "VALID_CTR", clips)
    assert not report.scores and all("ground truth itself" in why for _, why in report.failures)


def test_eval_checkpoint_on_shared_sample(tiny_release_checkpoint, shared_sample, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    assert (
        main(
            ["eval", str(tiny_release_checkpoint), str(shared_sample), "--json", "--device", "cpu"]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["overall"]["n_frames"] == 201 and doc["overall"]["n_clips"] == 1
    assert list(doc["per_emotion"]) == ["angry"]
    assert doc["source"]["name"] == "emoface" and doc["source"]["raw"] is True
    assert 0 < doc["overall"]["mae_all"] < 1


def test_eval_checkpoint_matches_library(tmp_path, tiny_release_checkpoint, capsys):
    """The CLI's numbers are the library's: same engine output, same ground truth."""
    torch = pytest.importorskip("torch")
    from emoface_core.emotion import EmotionTimeline
    from emoface_core.engines.neural.checkpoint import load_model
    from emoface_core.engines.neural.inference import animate

    root = make_synthetic_dataset(tmp_path / "ds", n_train=1, n_val=2)
    assert main(["eval", str(tiny_release_checkpoint), str(root), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    model, _ = load_model(tiny_release_checkpoint, device="cpu")
    for clip_doc, clip in zip(doc["clips"], discover_dataset(root).select("validation")):
        loaded = load_clip(clip)
        with torch.no_grad():
            pred = animate(model, loaded.audio, EmotionTimeline.constant(clip.emotion))
        expected = score_clip(pred[: loaded.n_frames], loaded.controls)
        assert clip_doc["mae_all"] == pytest.approx(expected.mae_all, rel=1e-5)


def test_procedural_engine_on_shared_sample(shared_sample, capsys):
    pytest.importorskip("emoface_core.engines.procedural.engine")
    assert main(["eval", str(shared_sample), "--engine", "procedural", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["source"]["name"] == "procedural" and doc["overall"]["n_frames"] == 201


def test_eval_on_shared_sample_with_predictions(tmp_path, shared_sample, capsys):
    truth = load_clip(discover_dataset(shared_sample).clips[0]).controls
    preds = tmp_path / "preds"
    preds.mkdir()
    np.savetxt(preds / "angry_gd04_001_021.txt", truth + 0.03, fmt="%.6f", delimiter=",")
    assert main(["eval", str(shared_sample), "--predictions", str(preds), "--per-clip"]) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.startswith("angry_gd04_001_021 "))
    assert row.split()[1:7] == ["1", "201", "0.03000", "0.03000", "0.03000", "1.000"]
    assert float(row.split()[7]) < 1.0  # lifted by 0.03, the jaw misses its closed frames


def test_format_table_lists_failures(synthetic_dataset, tmp_path):
    clips = discover_dataset(synthetic_dataset).select("validation")
    preds = _bake_truth(synthetic_dataset, tmp_path / "p", clips=clips[:1])
    text = format_table(evaluate_predictions(preds, clips))
    assert "could not score 2 clip(s)" in text and "hap_validation_001" in text
    shutil.rmtree(preds)


def test_docs_list_the_channel_groups_of_the_code():
    import re
    from pathlib import Path

    from emoface_core.controllers import CONTROLLER_NAMES

    text = (Path(__file__).resolve().parent.parent / "docs" / "channels.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    listed = {
        s.split(" (")[0]: [int(i) for i in re.findall(r"^\| (\d+) \|", s, flags=re.M)]
        for s in sections
    }
    assert listed["Mouth"] == list(MOUTH_CHANNELS)
    assert listed["Eye"] == list(EYE_CHANNELS)
    for section in sections:
        for index, name in re.findall(r"^\| (\d+) \| `([^`]+)` \|", section, flags=re.M):
            assert CONTROLLER_NAMES[int(index)] == name
