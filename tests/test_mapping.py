"""Rig mappings: the shipped files, the vectorised apply, validation of broken files, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bridge.arkit import LIVELINK_FACE_NAMES, N_BLENDSHAPES
from bridge.cli import main
from bridge.errors import MappingError
from bridge.mapping import (
    MAPPINGS_DIR,
    SHIPPED_MAPPINGS,
    check_mapping,
    find_mapping,
    json_schema,
    load_mapping,
    new_mapping,
    parse_mapping,
)
from emoface_core.controllers import CONTROLLER_INDEX, CONTROLLER_NAMES, TWO_D_CONTROLS
from emoface_core.head import HEAD_CHANNELS

BROKEN = Path(__file__).parent / "data" / "mappings"


def _frame(**channels: float) -> np.ndarray:
    frame = np.zeros(len(CONTROLLER_NAMES), dtype=np.float32)
    for name, value in channels.items():
        frame[CONTROLLER_INDEX[name.replace("__", "-")]] = value
    return frame


def _reference_apply(mapping, frame: np.ndarray) -> np.ndarray:
    """The mapping rule written as a plain loop, to check the vectorised form against."""
    out = []
    for t in mapping.targets:
        x = sum(
            float(frame[CONTROLLER_INDEX[s]]) if s in CONTROLLER_INDEX else 0.0 for s in t.sources
        )
        out.append(min(max(t.scale * x + t.offset, t.lo), t.hi))
    return np.array(out, dtype=np.float32)


@pytest.mark.parametrize("name", SHIPPED_MAPPINGS)
def test_shipped_mappings_validate_and_account_for_every_channel(name):
    mapping = load_mapping(name)
    assert mapping.name == name and mapping.version == 1
    assert check_mapping(MAPPINGS_DIR / f"{name}.yaml") == []
    used = {s for t in mapping.targets for s in t.sources} - set(HEAD_CHANNELS)  # optional
    assert used | set(mapping.dropped) == set(CONTROLLER_NAMES)
    assert not used & set(mapping.dropped)
    assert all(reason and "unlisted" not in reason for reason in mapping.dropped.values())


@pytest.mark.parametrize("name", SHIPPED_MAPPINGS)
def test_vectorised_apply_equals_the_rule_applied_entry_by_entry(name):
    mapping = load_mapping(name)
    frames = np.random.default_rng(3).uniform(-1.3, 1.3, (50, len(CONTROLLER_NAMES)))
    frames = frames.astype(np.float32)
    batch = mapping.apply_array(frames)
    assert batch.shape == (50, mapping.n_targets) and batch.dtype == np.float32
    for frame, row in zip(frames, batch):
        np.testing.assert_allclose(row, _reference_apply(mapping, frame), atol=1e-6)
    single = mapping.apply(frames[7])
    assert list(single) == list(mapping.names)
    np.testing.assert_array_equal(np.array(list(single.values()), dtype=np.float32), batch[7])


def test_faceboard_uses_control_names_axes_and_ranges():
    mapping = load_mapping("metahuman_faceboard")
    assert mapping.target_kind == "control_rig"
    two_d = [n for n in mapping.names if n.endswith((".X", ".Y"))]
    assert sorted(two_d) == sorted(f"{c}.{a}" for c in TWO_D_CONTROLS for a in "XY")
    assert len(TWO_D_CONTROLS) == 14 and mapping.n_targets == 171
    assert set(mapping.dropped) == {f"CTRL_neckCorrectivesMultiplyer{k}-translateY" for k in "DMU"}
    frame = _frame(
        CTRL_C_jaw__translateY=-0.2,
        CTRL_C_jaw__translateX=-0.7,
        CTRL_L_brow_down__translateY=1.4,
        CTRL_L_eye_blink__translateY=-0.5,
    )
    out = mapping.apply(frame)
    assert out["CTRL_C_jaw.Y"] == 0.0  # the jaw only opens: [0, 1]
    assert out["CTRL_C_jaw.X"] == pytest.approx(-0.7)
    assert out["CTRL_L_brow_down"] == 1.0  # [0, 1] slider clamped
    assert out["CTRL_L_eye_blink"] == pytest.approx(-0.5)  # signed slider keeps its sign


def test_curves_follow_the_sign_rule_eye_sum_and_phases():
    mapping = load_mapping("metahuman_curves")
    e = "CTRL_expressions_"
    out = mapping.apply(
        _frame(
            CTRL_C_jaw__translateX=-0.3,
            CTRL_C_jaw__translateY=0.6,
            CTRL_L_eye_blink__translateY=-0.4,
            CTRL_R_eye_blink__translateY=0.9,
            CTRL_C_eye__translateY=0.3,
            CTRL_L_eye__translateY=0.2,
            CTRL_R_eye__translateY=-0.5,
            CTRL_C_eye__translateX=0.8,
            CTRL_L_eye__translateX=0.6,
            CTRL_L_mouth_lipSticky__translateY=0.5,
            CTRL_L_brow_raiseOut__translateY=0.25,
            CTRL_L_mouth_corner__translateY=0.7,
        )
    )
    assert out[e + "jawLeft"] == pytest.approx(0.3) and out[e + "jawRight"] == 0.0
    assert out[e + "jawOpen"] == pytest.approx(0.6)
    assert out[e + "eyeWidenL"] == pytest.approx(0.4) and out[e + "eyeBlinkL"] == 0.0
    assert out[e + "eyeBlinkR"] == pytest.approx(0.9)
    assert out[e + "eyeLookUpL"] == pytest.approx(0.5)  # C_eye + L_eye, summed first
    assert out[e + "eyeLookDownR"] == pytest.approx(0.2)  # 0.3 - 0.5 -> down 0.2
    assert out[e + "eyeLookUpR"] == 0.0
    assert out[e + "eyeLookLeftL"] == 1.0  # 1.4 clamped
    assert [out[f"{e}mouthLipsStickyLPh{k}"] for k in (1, 2, 3)] == pytest.approx([1.0, 0.5, 0.0])
    assert out[e + "browRaiseOuterL"] == pytest.approx(0.25)
    assert out[e + "mouthCornerUpL"] == pytest.approx(0.7)
    assert all(name.startswith(e) for name in mapping.names)
    assert set(mapping.dropped) == {
        "CTRL_lookAtSwitch-translateY",
        *(f"CTRL_neckCorrectivesMultiplyer{k}-translateY" for k in "DMU"),
    }


def test_arkit52_targets_are_exactly_the_52_live_link_blendshapes():
    mapping = load_mapping("arkit52")
    head = ("HeadYaw", "HeadPitch", "HeadRoll")  # from the head motion layer, degrees / 180
    assert sorted(mapping.names) == sorted((*LIVELINK_FACE_NAMES[:N_BLENDSHAPES], *head))
    rotated = np.zeros(177, np.float32)
    rotated[174:] = (18.0, -9.0, 36.0)  # head_yaw, head_pitch, head_roll in degrees
    turned = mapping.apply(rotated)
    assert [turned[n] for n in head] == pytest.approx([0.1, -0.05, 0.2], abs=1e-4)
    out = mapping.apply(
        _frame(
            CTRL_C_jaw__translateY=0.8,
            CTRL_L_mouth_cornerPull__translateY=0.6,
            CTRL_L_eye_blink__translateY=1.0,
            CTRL_C_eye__translateX=0.5,
            CTRL_C_tongue_inOut__translateY=-0.4,
            CTRL_L_brow_raiseIn__translateY=0.6,
            CTRL_R_brow_raiseIn__translateY=0.2,
        )
    )
    assert out["JawOpen"] == pytest.approx(0.8)
    assert out["MouthSmileLeft"] == pytest.approx(0.6) and out["MouthSmileRight"] == 0.0
    assert out["EyeBlinkLeft"] == 1.0 and out["EyeWideLeft"] == 0.0
    # Looking to the character's left: the left eye turns out, the right eye in.
    assert out["EyeLookOutLeft"] == pytest.approx(0.5) and out["EyeLookInRight"] == pytest.approx(
        0.5
    )
    assert out["EyeLookInLeft"] == 0.0
    assert out["TongueOut"] == pytest.approx(0.4)
    assert out["BrowInnerUp"] == pytest.approx(0.4)  # the average of both sides


def test_three_sources_on_one_target_add_up():
    text = """
version: 1
unlisted: drop
entries:
  - {source: [CTRL_C_jaw-translateX, CTRL_C_jaw-translateY, CTRL_C_mouth-translateX], target: s}
  - {source: [CTRL_C_eye-translateX, CTRL_C_eye-translateY], target: t, scale: 2, offset: 1}
"""
    mapping = parse_mapping(text)
    frame = _frame(
        CTRL_C_jaw__translateX=0.1,
        CTRL_C_jaw__translateY=0.2,
        CTRL_C_mouth__translateX=0.3,
        CTRL_C_eye__translateX=0.5,
        CTRL_C_eye__translateY=0.25,
    )
    assert mapping.apply(frame) == pytest.approx({"s": 0.6, "t": 2.5})


def test_apply_rejects_a_frame_of_the_wrong_width():
    with pytest.raises(ValueError, match="174"):
        load_mapping("arkit52").apply(np.zeros(173, dtype=np.float32))


# Every broken fixture: (file, [(line, key, fragment of the message)]) - all reported at once.
BROKEN_CASES = {
    "unknown_channel.yaml": [
        (7, "entries[0].source", "did you mean 'CTRL_C_jaw-translateY'"),
        (8, "entries[1].source", "unknown channel 'CTRL_C_nose-translateY'"),
    ],
    "duplicate_target.yaml": [
        (9, "entries[3]", "duplicate target 'blink' (first at line 7)"),
        (10, "entries[4]", "duplicate target 'jawLeft' (first at line 8)"),
    ],
    "bad_values.yaml": [
        (6, "entries[0].scale", "must be a number"),
        (7, "entries[1].scale", "must not be 0"),
        (8, "entries[2].scale", "out of range"),
        (9, "entries[3].clamp", "lo must be below hi"),
        (10, "entries[4].clamp", "two numbers"),
        (11, "entries[5].offset", "out of range"),
        (12, "entries[6].target", "cannot hold whitespace"),
        (13, "entries[7].target", "non-empty text"),
    ],
    "bad_version.yaml": [
        (2, "version", "unknown version 2"),
        (5, "colour", "unknown key"),
    ],
    "missing_version.yaml": [
        (2, "version", "missing"),
        (3, "target_kind", "'blendshapes' is not one of"),
    ],
    "structure.yaml": [
        (6, "entries[0].target", "either target or positive/negative"),
        (7, "entries[1]", "needs target"),
        (8, "entries[2].scale", "dropped entry"),
        (9, "entries[3].scael", "did you mean 'scale'"),
        (10, "entries[4]", "must be a mapping"),
        (11, "entries[5].source", "missing"),
        (12, "entries[6].drop", "dropped here but mapped at line 13"),
    ],
    "syntax_error.yaml": [(7, "", "starts at line 6")],
    "unlisted.yaml": [(4, "entries", "172 channel(s) neither mapped nor dropped")],
    "arkit_names.yaml": [(7, "entries[0].target", "did you mean 'JawOpen'")],
    "duplicate_key.yaml": [(6, "entries[0].target", "duplicate key")],
}


@pytest.mark.parametrize("file_name", sorted(BROKEN_CASES))
def test_broken_mappings_report_every_problem_with_line_and_key(file_name):
    path = BROKEN / file_name
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    problems = caught.value.problems
    expected = BROKEN_CASES[file_name]
    assert len(problems) == len(expected), [str(p) for p in problems]
    for problem, (line, key, fragment) in zip(problems, expected):
        assert (problem.line, problem.key) == (line, key), str(problem)
        assert fragment in problem.message, str(problem)
        assert str(problem).startswith(f"{path}:{line}: ")


def test_validate_cli_passes_shipped_and_fails_precisely_on_broken(capsys):
    assert main(["mapping", "validate", *SHIPPED_MAPPINGS]) == 0
    out = capsys.readouterr().out
    assert out.count(": ok (") == 3
    broken = BROKEN / "bad_values.yaml"
    assert main(["mapping", "validate", "arkit52", str(broken)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"{broken}:8: entries[2].scale: 1000 is out of range (allowed: -100..100)" in err
    assert err[-1] == f"{broken}: 8 problem(s)"


def test_find_mapping_by_short_name_and_unknown_name(tmp_path):
    assert find_mapping("arkit52") == MAPPINGS_DIR / "arkit52.yaml"
    with pytest.raises(MappingError, match="shipped mappings are metahuman_faceboard"):
        find_mapping("arkit51")
    assert main(["mapping", "show", str(tmp_path / "nope.yaml")]) == 1


def test_mapping_new_keeps_comments_and_key_order_and_renames(tmp_path, capsys):
    out = tmp_path / "my_rig.yaml"
    assert main(["mapping", "new", "--from", "metahuman_curves", str(out)]) == 0
    original = (MAPPINGS_DIR / "metahuman_curves.yaml").read_text(encoding="utf-8").splitlines()
    copy = out.read_text(encoding="utf-8").splitlines()
    changed = [(a, b) for a, b in zip(original, copy) if a != b]
    assert len(copy) == len(original)
    assert changed == [("name: metahuman_curves", "name: my_rig")]
    assert load_mapping(out).names == load_mapping("metahuman_curves").names
    assert main(["mapping", "new", "--from", "arkit52", str(out)]) == 1  # exists: refused
    assert "exists" in capsys.readouterr().err
    new_mapping("arkit52", out, name="arkit_custom")
    assert load_mapping(out).name == "arkit_custom"


def test_mapping_show_prints_the_effective_table(capsys):
    assert main(["mapping", "show", "metahuman_curves"]) == 0
    out = capsys.readouterr().out
    assert "CTRL_expressions_jawLeft" in out and "240 targets; 4 channels dropped" in out
    assert main(["mapping", "show", "--json", "arkit52"]) == 0
    rows = json.loads(capsys.readouterr().out)
    jaw = next(r for r in rows if r["target"] == "JawLeft")
    assert jaw["scale"] == -1.0 and jaw["clamp"] == [0.0, 1.0]
    assert sum(r["target"] is None for r in rows) == len(load_mapping("arkit52").dropped) == 111


def test_json_schema_accepts_shipped_mappings_and_rejects_broken(capsys):
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    assert main(["mapping", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in SHIPPED_MAPPINGS:
        doc = yaml.safe_load((MAPPINGS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
        assert not list(validator.iter_errors(doc)), name
    for name in ("bad_values.yaml", "structure.yaml", "bad_version.yaml"):
        doc = yaml.safe_load((BROKEN / name).read_text(encoding="utf-8"))
        assert list(validator.iter_errors(doc)), name
