"""``--format curvetable``: the layout Unreal's CurveTable CSV import reads, checked with the
rules of ``UCurveTable::CreateTableFromCSVString`` (Engine/Source/Runtime/Engine/Private/
CurveTable.cpp, UE 5.6), and ``--mapping`` refused where it would be ignored."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from bridge.cli import main
from bridge.mapping import load_mapping
from emoface_core.animation import Animation
from emoface_core.controllers import CONTROLLER_NAMES
from emoface_core.formats import CurveTableWriter
from emoface_core.head import HEAD_CHANNELS


def unreal_curve_table(text: str) -> dict[str, list[tuple[float, float]]]:
    """What CreateTableFromCSVString builds: row 0's cells after the first are the X values
    (duplicates are an error), every later row is a name and one Y value per X value."""
    rows = list(csv.reader(text.splitlines()))
    assert len(rows) > 1, "Too few rows."
    xs = [float(c) for c in rows[0][1:]]
    assert len(set(xs)) == len(xs), "Found duplicate columns"
    table = {}
    for row in rows[1:]:
        name = row[0]
        assert name and name not in table, f"missing or duplicate row name {name!r}"
        ys = [float(c) for c in row[1:]]
        assert len(ys) == len(xs), f"Row '{name}' does not have the right number of columns."
        table[name] = list(zip(xs, ys))
    return table


def test_the_curve_table_layout_is_what_unreal_imports():
    values = np.random.default_rng(0).uniform(-1, 1, (130, len(CONTROLLER_NAMES)))
    animation = Animation(values.astype(np.float32), fps=60.0)
    table = unreal_curve_table(CurveTableWriter().render(animation))
    assert list(table) == list(CONTROLLER_NAMES)
    jaw = table["CTRL_C_jaw-translateY"]
    np.testing.assert_allclose([x for x, _ in jaw], np.arange(130) / 60, atol=1e-6)
    np.testing.assert_allclose(
        [y for _, y in jaw], values[:, CONTROLLER_NAMES.index("CTRL_C_jaw-translateY")], atol=1e-6
    )


def test_bake_writes_a_mapped_curve_table_and_refuses_a_mapping_it_would_ignore(
    sine_wav, tmp_path, capsys
):
    out = tmp_path / "line.csv"
    assert main(["bake", str(sine_wav), "-o", str(out), "--format", "curvetable",
                 "--mapping", "metahuman_curves", "--seed", "1"]) == 0  # fmt: skip
    table = unreal_curve_table(out.read_text())
    # The mapping's curves, then the head rotations (degrees) a bake carries by default.
    assert list(table) == [*load_mapping("metahuman_curves").names, *HEAD_CHANNELS]
    assert len(table["CTRL_expressions_jawOpen"]) == 90  # 1.5 s at 60 fps
    capsys.readouterr()
    assert main(["bake", str(sine_wav), "-o", str(tmp_path / "a.json"),
                 "--mapping", "metahuman_curves"]) == 1  # fmt: skip
    assert "--mapping applies to .csv and curve-table outputs" in capsys.readouterr().err
    assert (
        main(["bake", str(sine_wav), "-o", str(tmp_path / "a.txt"), "--format", "curvetable"]) == 1
    )
    assert "its extension is its format" in capsys.readouterr().err


def test_a_batch_names_curve_tables_apart_from_csv(sine_wav, tmp_path):
    folder = tmp_path / "lines"
    folder.mkdir()
    (folder / "a.wav").write_bytes(sine_wav.read_bytes())
    out = tmp_path / "baked"
    for fmt in ("csv", "curvetable"):
        assert main(["bake", str(folder), "-o", str(out), "--format", fmt]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "a.csv",
        "a.curvetable.csv",
    ]
    assert unreal_curve_table((out / "a.curvetable.csv").read_text())


@pytest.mark.parametrize("n_frames", [1, 2])
def test_tiny_clips_still_make_a_valid_table(n_frames):
    animation = Animation(np.zeros((n_frames, len(CONTROLLER_NAMES)), np.float32))
    assert (
        len(next(iter(unreal_curve_table(CurveTableWriter().render(animation)).values())))
        == n_frames
    )
