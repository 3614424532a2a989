"""The Unreal plugin's pure modules (no ``unreal`` needed): baked files, mappings, rig name
resolution, settings, the jaw self-test, bake planning and the status text."""

from __future__ import annotations

import json
import math

import fake_unreal
import numpy as np
import pytest

from emoface_core.animation import Animation
from emoface_core.controllers import CONTROLLER_NAMES
from emoface_core.formats import JsonWriter, TxtWriter

fake_unreal.fake_plugin_on_path()

from emoface_unreal import baked, bakeplan, controls, rigmap, selftest, settings, status  # noqa: E402
from emoface_unreal.data import DataFileError, load_channel_names  # noqa: E402


def make_animation(n_frames: int = 12, seed: int = 0) -> Animation:
    """Values over each channel's full board range (signed channels go negative) plus overshoot."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(-1.2, 1.2, size=(n_frames, len(CONTROLLER_NAMES))).astype(np.float32)
    return Animation(values, fps=60.0, metadata={"engine": "test", "source_audio": "line.wav"})


@pytest.fixture
def clip_json(tmp_path):
    animation = make_animation()
    return JsonWriter().write(animation, tmp_path / "line_01.json"), animation


def test_channel_list_is_the_single_source_of_truth():
    assert load_channel_names() == CONTROLLER_NAMES


def test_json_and_txt_read_back_the_written_values(tmp_path, clip_json):
    path, animation = clip_json
    clip = baked.load_clip(path)
    assert (clip.fps, clip.n_frames, clip.metadata["engine"]) == (60.0, 12, "test")
    got = np.array([clip.frame(i) for i in range(clip.n_frames)])
    np.testing.assert_allclose(got, animation.values, atol=1e-6)
    txt = TxtWriter().write(animation, tmp_path / "line_01.txt")
    clip_txt = baked.load_clip(txt, txt_fps=30)
    assert clip_txt.fps == 30 and clip_txt.n_frames == 12
    np.testing.assert_allclose(
        np.array([clip_txt.frame(i) for i in range(12)]), animation.values, atol=1e-6
    )


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d.update(format="other"), "not an EmoFace animation file"),
        (lambda d: d.update(format_version=2), "format_version 2 is not supported"),
        (lambda d: d.update(fps=0), "fps must be a number"),
        (
            lambda d: d["channels"].pop("CTRL_C_jaw-translateY"),
            "missing, e.g. CTRL_C_jaw-translateY",
        ),
        (
            lambda d: d["channels"]["CTRL_L_eye-translateX"].pop(),
            "CTRL_L_eye-translateX has 11 frames",
        ),
        (lambda d: d["channels"]["CTRL_C_jaw-translateX"].__setitem__(3, "x"), "value 3 is 'x'"),
        (lambda d: d.update(n_frames=99), "n_frames says 99"),
    ],
)
def test_bad_json_files_name_the_file_and_the_problem(tmp_path, clip_json, mutate, expected):
    path, _ = clip_json
    doc = json.loads(path.read_text())
    mutate(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(baked.BakedFileError, match="bad.json") as err:
        baked.load_clip(bad)
    assert expected in str(err.value)


def test_bad_txt_and_other_files_are_reported(tmp_path):
    bad = tmp_path / "short.txt"
    bad.write_text("0.1,0.2\n")
    with pytest.raises(
        baked.BakedFileError, match=r"short.txt:1: expected 174 comma-separated values, found 2"
    ):
        baked.load_clip(bad)
    nan = tmp_path / "nan.txt"
    nan.write_text(",".join(["nan"] * 174) + "\n")
    with pytest.raises(baked.BakedFileError, match="nan.txt:1: values must be finite"):
        baked.load_clip(nan)
    with pytest.raises(baked.BakedFileError, match="unsupported extension .csv"):
        baked.load_clip(tmp_path / "x.csv")
    with pytest.raises(baked.BakedFileError, match="no such file"):
        baked.load_clip(tmp_path / "missing.json")
    (tmp_path / "garbage.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(baked.BakedFileError, match="garbage.json"):
        baked.load_clip(tmp_path / "garbage.json")


@pytest.mark.parametrize(
    "role, shipped", [("faceboard", "metahuman_faceboard"), ("curves", "metahuman_curves")]
)
def test_plugin_mapping_equals_the_bridge_mapping(clip_json, role, shipped):
    from bridge.mapping import load_mapping

    path, animation = clip_json
    plugin = rigmap.load_rig_mapping(role)
    bridge = load_mapping(shipped)
    assert plugin.names == bridge.names and plugin.digest == bridge.digest
    got = plugin.apply_clip(baked.load_clip(path))
    expected = bridge.apply_array(animation.values)
    np.testing.assert_allclose(np.array([got[n] for n in plugin.names]).T, expected, atol=1e-5)
    frame = dict(zip(CONTROLLER_NAMES, animation.values[3].tolist()))
    np.testing.assert_allclose(list(plugin.apply_frame(frame).values()), expected[3], atol=1e-5)


def test_a_damaged_mapping_file_is_reported(tmp_path):
    doc = json.loads(rigmap.mapping_path("faceboard").read_text())
    doc["targets"][0][1] = ["CTRL_nope-translateY"]
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(DataFileError, match=r"m.json: targets\[0\].*unknown source channel"):
        rigmap.load_rig_mapping(bad)


BOARD = fake_unreal.fake_board_controls(CONTROLLER_NAMES)
RIG = {
    name: {"FLOAT": controls.FLOAT, "VECTOR2D": controls.VECTOR2D}.get(kind, controls.OTHER)
    for name, kind in BOARD.items()
}
RIG_MH4 = {
    name: {"FLOAT": controls.FLOAT, "VECTOR2D": controls.VECTOR2D}.get(kind, controls.OTHER)
    for name, kind in fake_unreal.fake_board_controls(CONTROLLER_NAMES, mh4=True).items()
}


def test_faceboard_targets_resolve_to_every_board_control_with_2d_grouped():
    names = rigmap.load_rig_mapping("faceboard").names
    plan = controls.plan_controls(names, RIG)
    assert plan.unresolved == () and plan.notes == ()
    assert len(plan.vectors) == 14 and len(plan.floats) == len(names) - 28
    values = list(range(len(names)))
    vectors = {c: (x, y) for c, x, y in plan.vector_values(values)}
    assert vectors["CTRL_C_jaw"] == (names.index("CTRL_C_jaw.X"), names.index("CTRL_C_jaw.Y"))
    floats = dict(plan.float_values(values))
    assert floats["CTRL_L_brow_down"] == names.index("CTRL_L_brow_down")
    flipped = plan.with_sign("CTRL_C_jaw", "Y", -1.0)
    assert dict((c, (x, y)) for c, x, y in flipped.vector_values(values))["CTRL_C_jaw"] == (
        names.index("CTRL_C_jaw.X"),
        -names.index("CTRL_C_jaw.Y"),
    )


def test_mh4_rig_gets_the_renamed_tongue_controls():
    names = rigmap.load_rig_mapping("faceboard").names
    plan = controls.plan_controls(names, RIG_MH4)
    assert plan.unresolved == ()
    driven = set(plan.controls)
    assert {
        "CTRL_C_tongue_move",
        "CTRL_C_tongue_tipMove",
        "CTRL_C_tongue_bendTwist",
        "CTRL_C_tongue_wideNarrow",
    } <= driven
    # MH4 reuses CTRL_C_tongue_roll for a new 1-D slider: the old 2D roll must not land on it.
    assert "CTRL_C_tongue_roll" not in driven
    assert any("MetaHuman 4" in n and "CTRL_C_tongue_bendTwist" in n for n in plan.notes)


def test_names_the_rig_lacks_or_cannot_take_are_reported_not_guessed():
    rig = {
        "CTRL_C_jaw": controls.VECTOR2D,
        "CTRL_L_brow_down": controls.FLOAT,
        "CTRL_faceGUI": controls.OTHER,
    }
    plan = controls.plan_controls(
        [
            "CTRL_C_jaw.Y",
            "CTRL_L_brow_down.X",
            "CTRL_L_brow_down-translateY",
            "CTRL_faceGUI",
            "CTRL_gone",
            "CTRL_C_jaw",
        ],
        rig,
    )
    assert plan.unresolved == ("CTRL_L_brow_down.X", "CTRL_faceGUI", "CTRL_gone")
    assert [(w.control, w.index) for w in plan.floats] == [("CTRL_L_brow_down", 2)]
    assert [(w.control, w.x_index, w.y_index) for w in plan.vectors] == [("CTRL_C_jaw", None, 0)]
    text = "\n".join(plan.notes)
    assert "no X axis" in text and "neither a float nor a 2D control" in text
    assert "already driven" in text  # the plain CTRL_C_jaw target would write the same Y axis


def test_delta_filter_writes_only_changes_and_refreshes():
    f = controls.DeltaFilter(tolerance=1e-3, refresh_every=3)
    floats, vectors = [("a", 0.0), ("b", 0.5)], [("j", 0.0, 0.2)]
    assert f.select(floats, vectors) == (floats, vectors)
    assert f.select(floats, vectors) == ([], [])
    assert f.select([("a", 0.0), ("b", 0.6)], [("j", 0.0, 0.2001)]) == ([("b", 0.6)], [])
    assert f.select([("a", 0.0), ("b", 0.6)], vectors) == (
        [("a", 0.0), ("b", 0.6)],
        vectors,
    )  # refresh
    f.reset()
    assert f.select(floats, vectors) == (floats, vectors)


def test_live_settings_validate_with_field_names():
    s = settings.LiveSettings()
    assert (s.transport, s.endpoint, s.bindings()) == (
        "zmq",
        "tcp://127.0.0.1:5555",
        [("emoface", "")],
    )
    assert settings.LiveSettings(transport="osc").endpoint == "127.0.0.1:9000"
    assert settings.LiveSettings(
        subject="npc1", more_bindings="npc2=BP_Bob; npc3 = BP_Cy"
    ).bindings()[1:] == [("npc2", "BP_Bob"), ("npc3", "BP_Cy")]
    for kwargs, message in [
        ({"transport": "udp"}, "`transport` must be one of zmq, osc, but 'udp' is provided"),
        ({"endpoint": "tcp://127.0.0.1:70000"}, "port in 1..65535"),
        ({"endpoint": "127.0.0.1:5555"}, "`endpoint` for zmq must look like tcp://"),
        ({"subject": "npc 1"}, "`subject` must be 1-255 letters"),
        ({"more_bindings": "npc2"}, "subject=ActorLabel"),
        ({"more_bindings": "emoface=BP_X"}, "repeats a subject"),
        ({"audio_offset_ms": 9000}, "`audio_offset_ms` must be between -5000 and 5000"),
        ({"apply_mode": "magic"}, "`apply_mode`"),
        ({"face_rig_asset": "Face_CtrlRig"}, "`face_rig_asset` must be an asset path"),
    ]:
        with pytest.raises(ValueError) as err:
            settings.LiveSettings(**kwargs)
        assert message in str(err.value)
    with pytest.raises(ValueError, match="nothing to make"):
        settings.BakeSettings(level_sequence=False, anim_sequence=False)
    with pytest.raises(ValueError, match="`output_path` must be a content folder"):
        settings.BakeSettings(output_path="Game/x")


def test_settings_save_and_load(tmp_path):
    path = tmp_path / "Saved" / "EmoFace" / "settings.json"
    assert settings.load_settings(path) == (settings.LiveSettings(), settings.BakeSettings())
    live = settings.LiveSettings(
        transport="osc", subject="npc7", actor="BP_Ada", audio_offset_ms=-40
    )
    bake = settings.BakeSettings(
        input_folder="/data/lines", anim_sequence=True, replace_existing=True
    )
    settings.save_settings(path, live, bake)
    assert settings.load_settings(path) == (live, bake)
    doc = json.loads(path.read_text())
    doc["live"]["future_option"] = 1
    doc["bake"]["replace_existing"] = "yes"
    path.write_text(json.dumps(doc))
    with pytest.raises(
        ValueError, match=r"settings.json: `replace_existing` must be true or false"
    ):
        settings.load_settings(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="settings.json"):
        settings.load_settings(path)


class FakeJaw:
    """A jaw joint that turns 25 degrees per unit of jaw opening, one tick after the write
    (as the mesh shows an evaluated pose from the next frame); ``evaluates=False`` never
    turns (a rig that is not evaluated, or a mesh that does not show it)."""

    def __init__(self, sign: float = 1.0, evaluates: bool = True) -> None:
        self.sign, self.evaluates = sign, evaluates
        self.y = self.shown = 0.0
        self.writes: list[float] = []

    def write(self, y: float) -> None:
        self.writes.append(y)
        self.y = y

    def read_joint(self) -> float:
        value = self.shown
        if self.evaluates:
            self.shown = 25.0 * min(max(self.sign * self.y, 0.0), 1.0)
        return value

    def read_curve(self) -> float:
        return self.shown / 25.0

    @staticmethod
    def delta(a: float, b: float) -> tuple[float, float]:
        return abs(b - a), 0.0


@pytest.mark.parametrize(
    "sign, evaluates, result, final_sign",
    [
        (1.0, True, selftest.POSITIVE, 1.0),
        (-1.0, True, selftest.NEGATIVE, -1.0),
        (1.0, False, selftest.NOT_MOVED, 1.0),
    ],
)
def test_jaw_self_test_proves_the_joint_moved_within_a_few_ticks(
    sign, evaluates, result, final_sign
):
    jaw = FakeJaw(sign, evaluates)
    test = selftest.JawSelfTest(jaw.write, jaw.read_joint, jaw.delta, jaw.read_curve)
    n_steps = 0
    while not test.step():
        n_steps += 1
        assert n_steps < 50
    assert test.result == result and test.sign == final_sign
    assert test.n_ticks <= selftest.MAX_TICKS
    assert jaw.writes[-1] == 0.0  # the jaw is left at rest
    if evaluates:
        assert test.moved and test.degrees == pytest.approx(12.5)
        assert "12.5 deg" in test.message
    else:
        assert not test.moved and "did not move" in test.message
        assert "not being evaluated" in test.message


def test_jaw_self_test_survives_a_failing_read():
    def boom() -> float:
        raise RuntimeError("no bone")

    test = selftest.JawSelfTest(lambda y: None, boom, FakeJaw.delta)
    while not test.step():
        pass
    assert test.result == selftest.INCONCLUSIVE and "no bone" in test.message


def test_bake_plan_names_files_and_finds_audio(tmp_path):
    for name in ("b line.json", "a-b.txt", "a_b.json", ".hidden.json", "notes.md", ".x.json.part"):
        (tmp_path / name).write_text("x")
    files = bakeplan.find_baked_files(tmp_path)
    assert [p.name for p in files] == ["a-b.txt", "a_b.json", "b line.json"]
    names = bakeplan.unique_asset_names(files, "LS_")
    assert list(names.values()) == ["LS_a_b", "LS_a_b_2", "LS_b_line"]
    assert bakeplan.asset_name("ü?", "AS_") == "AS_clip"
    (tmp_path / "a_b.wav").write_text("x")
    assert bakeplan.find_audio(tmp_path / "a_b.json") == tmp_path / "a_b.wav"
    other = tmp_path / "audio"
    other.mkdir()
    (other / "a_b.flac").write_text("x")
    assert bakeplan.find_audio(tmp_path / "a_b.json", str(other)) == other / "a_b.flac"
    (tmp_path / "src.wav").write_text("x")
    assert (
        bakeplan.find_audio(tmp_path / "b line.json", metadata={"source_audio": "src.wav"})
        == tmp_path / "src.wav"
    )
    assert bakeplan.find_audio(tmp_path / "b line.json") is None
    with pytest.raises(FileNotFoundError):
        bakeplan.find_baked_files(tmp_path / "nope")


def test_control_and_curve_keys_for_a_known_clip(clip_json):
    from bridge.mapping import load_mapping

    path, animation = clip_json
    clip = baked.load_clip(path)
    keys = bakeplan.control_keys(
        clip, rigmap.load_rig_mapping("faceboard"), RIG, signs={("CTRL_C_jaw", "Y"): -1.0}
    )
    assert keys.n_frames == 12 and keys.n_controls == 157 and keys.unresolved == ()
    jaw = CONTROLLER_NAMES.index("CTRL_C_jaw-translateY")
    expected_y = -np.clip(animation.values[:, jaw], 0, 1)
    np.testing.assert_allclose(keys.vectors["CTRL_C_jaw"][1], expected_y, atol=1e-6)
    brow = CONTROLLER_NAMES.index("CTRL_L_brow_down-translateY")
    np.testing.assert_allclose(
        keys.floats["CTRL_L_brow_down"], np.clip(animation.values[:, brow], 0, 1), atol=1e-6
    )
    curves = bakeplan.curve_keys(clip, rigmap.load_rig_mapping("curves"))
    assert curves.times_s[:3] == [0.0, 1 / 60, 2 / 60]
    bridge = load_mapping("metahuman_curves")
    j = bridge.names.index("CTRL_expressions_jawLeft")
    np.testing.assert_allclose(
        curves.curves["CTRL_expressions_jawLeft"],
        bridge.apply_array(animation.values)[:, j],
        atol=1e-6,
    )


def test_status_text_shows_counts_subjects_and_the_last_error():
    s = status.LiveStatus(
        state="receiving",
        source="zmq tcp://127.0.0.1:5555 (built-in subscriber)",
        n_packets=130,
        n_frames=120,
        n_applied=100,
        dropped={"superseded": 15, "stale": 0, "before schema": 5},
        n_malformed=3,
        last_error="malformed packet (3 bytes): bad magic",
        last_error_age_s=2.4,
    )
    s.subjects.append(
        status.SubjectStatus(
            "npc1",
            "BP_Ada",
            100,
            157,
            0,
            2,
            119,
            3.7,
            "positive",
            "metahuman_faceboard (control_rig)",
        )
    )
    text = s.text()
    assert "receiving (zmq tcp://127.0.0.1:5555" in text
    assert "applied 100, dropped 20 (superseded 15, before schema 5), malformed 3" in text
    assert (
        "npc1 -> BP_Ada: 100 frames applied" in text
        and "lag 4 ms" in text
        and "jaw test positive" in text
    )
    assert "last error (2 s ago): malformed packet" in text
    assert status.LiveStatus().text() == "EmoFace live: stopped"
    assert math.isclose(s.n_dropped, 20)
