import json
import shutil

import numpy as np
import pytest
from conftest import write_wav

from bridge.cli import main
from emoface_core.controllers import CONTROLLER_INDEX, CONTROLLER_NAMES
from emoface_core.training.dataset import (
    ALL,
    DatasetError,
    align_controls,
    check_dataset,
    discover_dataset,
    emotion_of_name,
    format_report,
    load_clip,
    load_controls,
    split_segments,
)

# Defects planted in a copy of the synthetic dataset: (file stem, what was done).
JAW = CONTROLLER_INDEX["CTRL_C_jaw-translateY"]
BROW = CONTROLLER_INDEX["CTRL_L_brow_down-translateY"]
GAZE = CONTROLLER_INDEX["CTRL_C_eye-translateX"]
CONSTANT = CONTROLLER_INDEX["CTRL_R_mouth_purseU-translateY"]


def _controls(root, split, stem):
    return root / split / "VALID_CTR" / f"{stem}.txt"


def _wav(root, split, stem):
    return root / split / "WAV" / f"{stem}.wav"


def _rewrite(path, fn):
    values = np.loadtxt(path, delimiter=",", dtype=np.float64)
    np.savetxt(path, fn(values), fmt="%.6f", delimiter=",")


@pytest.fixture
def corrupted(tmp_path, synthetic_dataset):
    """A copy of the synthetic dataset with one planted defect per clip (and dataset-wide ones)."""
    root = tmp_path / "corrupted"
    shutil.copytree(synthetic_dataset, root)

    def nan(v):
        v[10, JAW] = np.nan
        return v

    def out_of_range(v):
        v[5:8, BROW] = 1.7  # a [0, 1] slider
        v[20, GAZE] = -1.4  # a [-1, 1] 2D control
        return v

    _rewrite(_controls(root, "train", "ang_train_000"), nan)
    _rewrite(_controls(root, "train", "hap_train_001"), out_of_range)
    _rewrite(_controls(root, "train", "sad_train_002"), lambda v: v[:-12])  # 11 frames short
    for path in (root / "train" / "VALID_CTR").glob("*.txt"):  # frozen in every train clip
        _rewrite(
            path,
            lambda v: np.concatenate(
                [v[:, :CONSTANT], np.full((len(v), 1), 0.5), v[:, CONSTANT + 1 :]], axis=1
            ),
        )
    _wav(root, "train", "ang_train_003").write_bytes(b"RIFF....WAVEfmt garbage")  # unreadable
    bad_cols = _controls(root, "train", "hap_train_004")
    bad_cols.write_text("\n".join(",".join(["0.1"] * 170) for _ in range(90)) + "\n")
    for suffix, folder in ((".wav", "WAV"), (".txt", "VALID_CTR")):  # emotion not in the name
        src = root / "train" / folder / f"sad_train_005{suffix}"
        src.rename(src.with_name(f"xyz_train_005{suffix}"))
    write_wav(_wav(root, "validation", "ang_validation_000"), np.zeros(24_000, np.float32))
    shutil.copy(
        _controls(root, "validation", "hap_validation_001"),
        root / "validation" / "VALID_CTR" / "orphan.txt",
    )
    return root


def _issues(report):
    return {(i.code, i.path) for i in report.all_issues}


def test_emotion_from_names():
    assert emotion_of_name("angry_gd04_001_021.wav") == 0  # the shared sample's full word
    assert emotion_of_name("ang_001.wav") == 0
    assert emotion_of_name("surprise-take3.wav") == 6
    assert emotion_of_name("neu001.wav") == 4  # the release's rule: the first three letters
    assert emotion_of_name("Happy_x.flac") == 3
    assert emotion_of_name("david_001.wav") is None
    assert emotion_of_name("3_foo.wav") is None  # ids are not taken from file names


def test_discovers_release_layout_with_splits(synthetic_dataset):
    index = discover_dataset(synthetic_dataset)
    assert index.layout == "release-splits"
    assert index.splits == ["train", "validation"]
    assert len(index.select("train")) == 6 and len(index.select("val")) == 3
    assert len(index.select(ALL)) == 9
    clip = {c.name: c for c in index.clips}["hap_train_001"]
    assert clip.emotion == 3 and clip.split == "train"
    assert clip.controls_path == synthetic_dataset / "train" / "VALID_CTR" / "hap_train_001.txt"
    with pytest.raises(DatasetError, match="no clips in split 'test'.*train, validation"):
        index.select("test")


def test_discovers_single_split_and_plain_folder(synthetic_dataset, tmp_path):
    index = discover_dataset(synthetic_dataset / "validation")
    assert index.layout == "release" and index.splits == ["validation"]
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in (synthetic_dataset / "train").glob("*/*"):
        shutil.copy(p, flat / p.name)
    (flat / "notes.txt").write_text("not a clip")  # a .txt without audio is ignored
    index = discover_dataset(flat)
    assert index.layout == "folder" and len(index.clips) == 6 and index.splits == [ALL]


def test_nested_folders_under_wav_are_mirrored(synthetic_dataset):
    split = synthetic_dataset / "train"
    (split / "WAV" / "take2").mkdir()
    (split / "VALID_CTR" / "take2").mkdir()
    shutil.move(split / "WAV" / "ang_train_000.wav", split / "WAV" / "take2" / "ang_train_000.wav")
    shutil.move(
        split / "VALID_CTR" / "ang_train_000.txt",
        split / "VALID_CTR" / "take2" / "ang_train_000.txt",
    )
    names = [c.name for c in discover_dataset(synthetic_dataset).select("train")]
    assert "take2/ang_train_000" in names and len(names) == 6


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_manifest(synthetic_dataset, kind):
    rows = [
        {
            "audio": "train/WAV/ang_train_000.wav",
            "controls": "train/VALID_CTR/ang_train_000.txt",
            "emotion": "fear",
            "split": "train",
        },
        {
            "audio": "train/WAV/hap_train_001.wav",
            "controls": "train/VALID_CTR/hap_train_001.txt",
            "emotion": "",
            "split": "val",
        },
    ]
    path = synthetic_dataset / f"list.{kind}"
    if kind == "csv":
        lines = ["audio,controls,emotion,split"]
        lines += [",".join(r.values()) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    else:
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    index = discover_dataset(path)
    assert index.layout == "manifest"
    by_name = {c.name: c for c in index.clips}
    assert by_name["train/WAV/ang_train_000"].emotion == 2  # the manifest's emotion wins
    assert by_name["train/WAV/hap_train_001"].emotion == 3  # empty: from the file name
    assert by_name["train/WAV/hap_train_001"].split == "validation"
    # A manifest named manifest.csv/jsonl inside ROOT is picked up automatically.
    shutil.copy(path, synthetic_dataset / f"manifest.{kind}")
    assert discover_dataset(synthetic_dataset).layout == "manifest"


def test_manifest_errors_name_the_line(tmp_path):
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("wav,ctr\na.wav,a.txt\n")
    with pytest.raises(DatasetError, match=r"m\.csv: the header row must name 'audio'"):
        discover_dataset(csv_path)
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text('{"audio": "a.wav", "controls": "a.txt", "emotion": "bored"}\n')
    with pytest.raises(DatasetError, match=r"m\.jsonl:1: unknown emotion 'bored'"):
        discover_dataset(jsonl)
    jsonl.write_text('{"audio": "a.wav", "controls": "a.txt"}\n{oops\n')
    with pytest.raises(DatasetError, match=r"m\.jsonl:2: not valid JSON"):
        discover_dataset(jsonl)


def test_missing_or_empty_roots(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        discover_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no clips found"):
        discover_dataset(tmp_path / "empty")


def test_load_controls_errors(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(",".join(["0.5"] * 174) + "\n" + ",".join(["0.5"] * 173) + "\n")
    with pytest.raises(DatasetError, match=r"c\.txt:2: expected 174 comma-separated values, found"):
        load_controls(path)
    path.write_text(",".join(["0.5"] * 173 + ["abc"]) + "\n")
    with pytest.raises(DatasetError, match=r"c\.txt:1: 'abc' is not a number"):
        load_controls(path)
    path.write_text("\n")
    with pytest.raises(DatasetError, match="empty"):
        load_controls(path)


def test_align_controls_truncates_like_the_release():
    controls = np.zeros((202, 174), np.float32)
    assert align_controls(controls, 201).shape == (201, 174)
    assert align_controls(controls[:199], 201).shape == (199, 174)  # 2 short: allowed
    with pytest.raises(DatasetError, match=r"x\.txt: 190 control frames but the audio has 201"):
        align_controls(controls[:190], 201, where="x.txt")
    with pytest.raises(DatasetError, match="more than the allowed 0"):
        align_controls(controls, 201, max_mismatch=0)


def test_split_segments_as_the_release():
    # 130 s: pieces of 60, 60 and 10 s, cut at the same places in samples and frames.
    segs = split_segments(130 * 16_000, 130 * 60)
    assert [(s.start_sample, s.end_sample) for s in segs] == [
        (0, 960_000),
        (960_000, 1_920_000),
        (1_920_000, 2_080_000),
    ]
    assert [(s.start_frame, s.end_frame) for s in segs] == [(0, 3600), (3600, 7200), (7200, 7800)]
    # A scrap shorter than a second at the end joins the previous piece.
    segs = split_segments(int(120.5 * 16_000), int(120.5 * 60))
    assert [s.n_frames for s in segs] == [3600, 3630]
    assert split_segments(16_000, 60) == split_segments(16_000, 60, max_segment_s=100)
    assert len(split_segments(16_000 * 30, 1800, max_segment_s=10)) == 3


def test_clean_dataset_has_no_issues(synthetic_dataset):
    report = check_dataset(synthetic_dataset)
    assert report.all_issues == []
    rows = {(r["split"], r["emotion"]): r for r in report.summary()}
    assert rows[("train", "total")]["n_clips"] == 6
    assert rows[("train", "happy")]["n_clips"] == 2
    assert rows[("validation", "total")]["duration_s"] == pytest.approx(4.5)
    assert rows[("train", "total")]["max_abs_frame_mismatch"] == 1  # one extra row, like real data


def test_check_finds_every_planted_defect(corrupted):
    report = check_dataset(corrupted)
    found = _issues(report)
    expected = {
        ("nan", str(_controls(corrupted, "train", "ang_train_000"))),
        ("out-of-range", str(_controls(corrupted, "train", "hap_train_001"))),
        ("frame-mismatch", str(_controls(corrupted, "train", "sad_train_002"))),
        ("unreadable-audio", str(_wav(corrupted, "train", "ang_train_003"))),
        ("unreadable-controls", str(_controls(corrupted, "train", "hap_train_004"))),
        ("unknown-emotion", str(_wav(corrupted, "train", "xyz_train_005"))),
        ("silent-audio", str(_wav(corrupted, "validation", "ang_validation_000"))),
        ("orphan", str(corrupted / "validation" / "VALID_CTR" / "orphan.txt")),
        ("constant-channel", "split train"),
    }
    assert expected <= found
    assert len(found) == len(expected)  # nothing else: the clean clips stay clean
    by_code = {i.code: i for i in report.all_issues}
    assert "CTRL_L_brow_down-translateY reaches 1.7" in by_code["out-of-range"].message
    assert "CTRL_C_eye-translateX reaches -1.4" in by_code["out-of-range"].message
    assert "line 11 (CTRL_C_jaw-translateY)" in by_code["nan"].message
    assert "(-11;" in by_code["frame-mismatch"].message
    assert "found 170" in by_code["unreadable-controls"].message
    assert by_code["constant-channel"].message.endswith(CONTROLLER_NAMES[CONSTANT])
    assert by_code["silent-audio"].severity == "warning"
    assert {c.clip.name for c in report.bad_clips} == {
        "ang_train_000",
        "hap_train_001",
        "sad_train_002",
        "ang_train_003",
        "hap_train_004",
        "xyz_train_005",
    }
    text = format_report(report)
    assert "6 error(s) in 6 clip(s), 3 warning(s)" in text


def test_frame_mismatch_threshold_is_an_option(synthetic_dataset):
    _rewrite(
        _controls(synthetic_dataset, "train", "ang_train_000"),
        lambda v: np.concatenate([v, v[-2:]]),
    )  # 3 frames too many now
    assert check_dataset(synthetic_dataset).errors == []
    errors = check_dataset(synthetic_dataset, max_frame_mismatch=2).errors
    assert [(e.code, e.path) for e in errors] == [
        ("frame-mismatch", str(_controls(synthetic_dataset, "train", "ang_train_000")))
    ]


def test_load_clip_aligns_and_rejects_nan(corrupted, synthetic_dataset):
    index = discover_dataset(synthetic_dataset)
    loaded = load_clip(index.select("train")[0])
    assert loaded.n_frames == loaded.audio.n_frames == 90
    bad = discover_dataset(corrupted).select("train")[0]
    with pytest.raises(DatasetError, match="ang_train_000.txt: holds NaN"):
        load_clip(bad)


def test_cli_dataset_check(corrupted, synthetic_dataset, capsys):
    assert main(["dataset", "check", str(synthetic_dataset), "--strict"]) == 0
    capsys.readouterr()
    assert main(["dataset", "check", str(corrupted)]) == 0  # reported, not fatal
    out = capsys.readouterr().out
    assert "ang_train_000.txt: 1 NaN/inf value(s)" in out and "errors (6):" in out
    assert main(["dataset", "check", str(corrupted), "--strict"]) == 1
    capsys.readouterr()
    assert main(["dataset", "check", str(corrupted), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_errors"] == 6 and doc["n_warnings"] == 3 and doc["n_clips"] == 9
    bad = {c["name"] for c in doc["clips"] if not c["ok"]}
    assert "sad_train_002" in bad and "sad_validation_002" not in bad
    assert main(["dataset", "check", str(corrupted / "nothing")]) == 1
    assert "no such dataset folder" in capsys.readouterr().err


def test_shared_sample(shared_sample):
    index = discover_dataset(shared_sample)
    assert index.layout == "folder"
    (clip,) = index.clips  # controller_names.txt has no audio and is not a clip
    assert clip.emotion == 0 and clip.split == ALL
    loaded = load_clip(clip)
    assert loaded.n_frames == 201  # 202 rows, truncated to the audio's frame count
    report = check_dataset(index)
    assert report.errors == []
    assert report.clips[0].frame_mismatch == 1
