import json

import numpy as np
import pytest

from emoface_core.animation import Animation
from emoface_core.controllers import CONTROLLER_NAMES
from emoface_core.formats import (
    BakedFileError,
    CsvWriter,
    JsonWriter,
    TxtWriter,
    atomic_write,
    format_of,
    get_writers,
    load_animation,
)


def _animation(n=12):
    values = np.random.default_rng(0).uniform(-1, 1, (n, 174)).astype(np.float32)
    return Animation(values, metadata={"engine": {"name": "test"}, "seed": 1})


def test_txt_is_authors_format(tmp_path):
    anim = _animation()
    path = TxtWriter().write(anim, tmp_path / "a.txt")
    lines = path.read_text().splitlines()
    assert len(lines) == 12 and all(len(line.split(",")) == 174 for line in lines)
    back = load_animation(path)
    np.testing.assert_allclose(back.values, anim.values, atol=1e-6)


def test_json_named_channels_round_trip(tmp_path):
    anim = _animation()
    path = JsonWriter().write(anim, tmp_path / "a.json")
    doc = json.loads(path.read_text())
    assert list(doc["channels"]) == list(CONTROLLER_NAMES)
    assert doc["fps"] == 60 and doc["n_frames"] == 12 and doc["metadata"]["seed"] == 1
    back = load_animation(path)
    np.testing.assert_allclose(back.values, anim.values, atol=1e-6)
    assert back.metadata["engine"] == {"name": "test"}


def test_csv_has_time_and_header(tmp_path):
    path = CsvWriter().write(_animation(3), tmp_path / "a.csv")
    header, *rows = path.read_text().splitlines()
    assert header.split(",")[:2] == ["time_s", CONTROLLER_NAMES[0]]
    assert [float(r.split(",")[0]) for r in rows] == pytest.approx([0, 1 / 60, 2 / 60], abs=1e-6)


def test_writer_selection():
    assert [w.extension for w in get_writers("all")] == ["txt", "json", "csv"]
    assert format_of("x/y.JSON") == "json"
    with pytest.raises(ValueError, match="unknown output extension .wav"):
        format_of("y.wav")


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    atomic_write(target, "old")
    import os

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="out.txt: cannot write"):
        atomic_write(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_write_errors_name_the_output_not_the_temp_file(tmp_path, monkeypatch):
    import tempfile

    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OSError, match=r"x\.json: cannot create its folder"):
        atomic_write(tmp_path / "a_file" / "x.json", "{}")

    def no_temp(*a, dir=None, **k):  # what a missing or unwritable folder (e.g. /proc) gives
        raise FileNotFoundError(2, "No such file or directory", f"{dir}/.y.json.abc.part")

    monkeypatch.setattr(tempfile, "mkstemp", no_temp)
    with pytest.raises(OSError) as err:
        atomic_write(tmp_path / "y.json", "{}")
    assert str(err.value).startswith(f"{tmp_path / 'y.json'}: cannot write")
    assert ".part" not in str(err.value)


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("a.txt", "1,2,3\n", "expected 174"),
        ("b.json", "{}", "not an EmoFace animation"),
        ("c.json", "{nope", "malformed"),
        ("d.bin", "x", "unsupported extension"),
        ("empty.txt", "", "the file is empty"),
        (
            "no_frames.json",
            json.dumps(
                {
                    "format": "emoface-animation",
                    "format_version": 1,
                    "fps": 60,
                    "channels": {n: [] for n in CONTROLLER_NAMES},
                }
            ),
            "holds no frames",
        ),
        (
            "e.json",
            json.dumps({"format": "emoface-animation", "format_version": 7}),
            "format_version 7",
        ),
    ],
)
def test_bad_baked_files(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(BakedFileError, match=fragment) as err:
        load_animation(path)
    assert name in str(err.value)


def test_atomic_write_uses_umask_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "shared.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o644
