"""Baking files into assets inside a fake editor: the Level Sequence (binding, face rig track,
keys per channel, audio), the AnimSequence (curves), key repair, replace policy, batches and the
headless script."""

from __future__ import annotations

import runpy

import numpy as np
import pytest

from bridge.mapping import load_mapping
from emoface_core.animation import Animation
from emoface_core.controllers import CONTROLLER_NAMES
from emoface_core.formats import JsonWriter, TxtWriter, load_animation

N_FRAMES = 12
OUT = "/Game/EmoFace/Baked"


def values_of(seed: int = 0, n: int = N_FRAMES) -> np.ndarray:
    return (
        np.random.default_rng(seed)
        .uniform(-1.1, 1.1, size=(n, len(CONTROLLER_NAMES)))
        .astype(np.float32)
    )


@pytest.fixture
def scene(fake_unreal):
    fake_unreal.fake_add_face_rig(CONTROLLER_NAMES)
    fake_unreal.fake_add_metahuman("BP_Ada")
    return fake_unreal


def bake(**kwargs):
    from emoface_unreal.editor.bake import bake_folder
    from emoface_unreal.settings import BakeSettings

    values = dict(actor="BP_Ada", output_path=OUT)
    values.update(kwargs)
    return bake_folder(BakeSettings(**values))


def channel_values(section, name):
    return section.get_channel(name).fake_values()


def expected_channels(values: np.ndarray, jaw_sign: float = 1.0) -> dict[str, np.ndarray]:
    mapping = load_mapping("metahuman_faceboard")
    mapped = mapping.apply_array(values)
    out = {name: mapped[:, i] for i, name in enumerate(mapping.names)}
    out["CTRL_C_jaw.Y"] = out["CTRL_C_jaw.Y"] * jaw_sign
    return out


def test_level_sequence_has_the_metahuman_bound_and_every_channel_keyed(scene, tmp_path):
    from conftest import make_sine, write_wav

    unreal = scene
    values = values_of()
    JsonWriter().write(Animation(values), tmp_path / "line 01.json")
    write_wav(tmp_path / "line 01.wav", make_sine(0.2))
    report = bake(input_folder=str(tmp_path), anim_sequence=True)
    assert report.n_failed == 0, report.summary()
    assert report.results[0].created == [f"{OUT}/LS_line_01", f"{OUT}/AS_line_01"]
    assert report.results[0].warnings == []
    state = unreal.fake_state()
    assert {f"{OUT}/LS_line_01", f"{OUT}/AS_line_01"} <= set(state.saved)

    sequence = unreal.EditorAssetLibrary.load_asset(f"{OUT}/LS_line_01")
    rate = sequence.get_display_rate()
    assert (rate.numerator, rate.denominator) == (60, 1)
    assert (sequence.get_playback_start(), sequence.get_playback_end()) == (0, N_FRAMES)
    actor_binding, face_binding = sequence.get_bindings()
    assert actor_binding._bound.get_actor_label() == "BP_Ada"
    assert face_binding._bound.get_fname() == "Face" and face_binding._parent is actor_binding
    (track,) = face_binding.get_tracks()
    section = track.get_section_to_key()
    for name, expected in expected_channels(values).items():
        assert section.get_channel(name).fake_frames() == list(range(N_FRAMES)), name
        np.testing.assert_allclose(channel_values(section, name), expected, atol=1e-6, err_msg=name)
    # Direct channel keys: one add_key per key, never Sequencer's interactive keying path.
    n_keys = len(expected_channels(values)) * N_FRAMES
    assert state.n_channel_keys == n_keys and state.n_keyings == state.n_interrogations == 0
    assert not unreal.fake_calls("ControlRigSequencerLibrary.set_local_control_rig_floats")
    # One undo transaction for the whole file (Level Sequence and AnimSequence).
    assert unreal.fake_undo_count() == 1
    assert state.undo == ["EmoFace bake line 01.json"]
    (audio_track,) = sequence.get_tracks()
    (audio_section,) = audio_track.get_sections()
    sound = audio_section.get_sound()
    assert sound._source_file.endswith("line 01.wav") and audio_section._range == (0, N_FRAMES)
    # The SoundWave was saved with the sequence: the audio survives an editor restart.
    assert sound._package in state.saved and not state.dirty
    unreal.fake_restart_editor()
    reopened = unreal.EditorAssetLibrary.load_asset(f"{OUT}/LS_line_01")
    assert reopened.get_tracks()[0].get_sections()[0].get_sound() is sound


def test_anim_sequence_holds_the_expression_curves(scene, tmp_path):
    unreal = scene
    values = values_of(1)
    TxtWriter().write(Animation(values), tmp_path / "take.txt")
    report = bake(
        input_folder=str(tmp_path / "take.txt"),
        level_sequence=False,
        anim_sequence=True,
        actor="",
        face_skeleton="/Game/MetaHumans/Common/Face/Face_Archetype_Skeleton",
        txt_fps=30,
    )
    assert report.n_failed == 0 and report.results[0].created == [f"{OUT}/AS_take"]
    anim = unreal.EditorAssetLibrary.load_asset(f"{OUT}/AS_take")
    assert anim._skeleton.get_name() == "Face_Archetype_Skeleton"
    controller = anim.get_editor_property("controller")
    assert (controller._frame_rate.numerator, controller._n_frames, controller._bracket) == (
        30,
        N_FRAMES - 1,
        0,
    )
    curves = load_mapping("metahuman_curves")
    expected = curves.apply_array(
        load_animation(tmp_path / "take.txt").values
    )  # .txt keeps 6 decimals
    assert list(anim._curves) == list(curves.names)
    for i, name in enumerate(curves.names):
        np.testing.assert_allclose(
            anim._curves[name]["values"], expected[:, i], atol=2e-6, err_msg=name
        )
        np.testing.assert_allclose(anim._curves[name]["times"], np.arange(N_FRAMES) / 30)
    assert len(unreal.fake_calls("AnimationLibrary.add_float_curve_keys")) == len(
        curves.names
    )  # batched
    assert unreal.fake_undo_count() == 1  # the controller bracket: one transaction, not per key


def test_vector2d_batch_keys_that_do_not_hold_are_repaired_through_the_channels(scene, tmp_path):
    unreal = scene
    unreal.fake_state().vector2_ds_keys_zero = True  # the reported (0, 0) keying bug
    values = values_of(2)
    JsonWriter().write(Animation(values), tmp_path / "a.json")
    report = bake(input_folder=str(tmp_path), replace_existing=True, key_strategy="auto")
    warnings = " ".join(report.results[0].warnings)
    assert "28 channel(s) re-keyed directly" in warnings and "CTRL_C_jaw.Y" in warnings
    section = (
        unreal.EditorAssetLibrary.load_asset(f"{OUT}/LS_a")
        .get_bindings()[1]
        .get_tracks()[0]
        .get_section_to_key()
    )
    for name, expected in expected_channels(values).items():
        np.testing.assert_allclose(channel_values(section, name), expected, atol=1e-6, err_msg=name)
    # The rig's batch setters key through the interactive keying path once per frame and
    # control; the file's transaction still holds them all.
    n_controls = 143 + 14
    assert unreal.fake_state().n_keyings == n_controls * N_FRAMES
    assert unreal.fake_undo_count() == 1
    # With "rig" only the broken keys stay (as the option promises); "channels" skips the rig.
    report = bake(input_folder=str(tmp_path), replace_existing=True, key_strategy="rig")
    section = (
        unreal.EditorAssetLibrary.load_asset(f"{OUT}/LS_a")
        .get_bindings()[1]
        .get_tracks()[0]
        .get_section_to_key()
    )
    assert set(channel_values(section, "CTRL_C_jaw.Y")) == {0.0}
    n_batch = len(unreal.fake_calls("ControlRigSequencerLibrary.set_local_control_rig_floats"))
    bake(input_folder=str(tmp_path), replace_existing=True, key_strategy="channels")
    assert (
        len(unreal.fake_calls("ControlRigSequencerLibrary.set_local_control_rig_floats")) == n_batch
    )
    section = (
        unreal.EditorAssetLibrary.load_asset(f"{OUT}/LS_a")
        .get_bindings()[1]
        .get_tracks()[0]
        .get_section_to_key()
    )
    np.testing.assert_allclose(
        channel_values(section, "CTRL_C_jaw.Y"),
        expected_channels(values)["CTRL_C_jaw.Y"],
        atol=1e-6,
    )


def test_existing_assets_are_kept_unless_replace_is_asked(scene, tmp_path):
    unreal = scene
    JsonWriter().write(Animation(values_of(3)), tmp_path / "a.json")
    first = bake(input_folder=str(tmp_path))
    sequence = unreal.EditorAssetLibrary.load_asset(f"{OUT}/LS_a")
    again = bake(input_folder=str(tmp_path))
    assert again.results[0].skipped == [f"{OUT}/LS_a"] and again.results[0].created == []
    assert unreal.EditorAssetLibrary.load_asset(f"{OUT}/LS_a") is sequence
    assert "1 kept (already exist)" in again.summary()
    undo_before = unreal.fake_undo_count()
    values = values_of(4)
    JsonWriter().write(Animation(values), tmp_path / "a.json")
    replaced = bake(input_folder=str(tmp_path), replace_existing=True, anim_sequence=True)
    assert replaced.results[0].created == [f"{OUT}/LS_a", f"{OUT}/AS_a"]
    # The same asset, emptied and refilled: nothing deleted, undo history kept.
    assert unreal.EditorAssetLibrary.load_asset(f"{OUT}/LS_a") is sequence
    assert not unreal.fake_calls("EditorAssetLibrary.delete_asset")
    assert unreal.fake_undo_count() == undo_before + 1
    actor_binding, face_binding = sequence.get_bindings()  # not twice
    section = face_binding.get_tracks()[0].get_section_to_key()
    np.testing.assert_allclose(
        channel_values(section, "CTRL_C_jaw.Y"),
        expected_channels(values)["CTRL_C_jaw.Y"],
        atol=1e-6,
    )
    anim = unreal.EditorAssetLibrary.load_asset(f"{OUT}/AS_a")
    again = bake(input_folder=str(tmp_path), replace_existing=True, anim_sequence=True)
    assert again.n_failed == 0 and unreal.EditorAssetLibrary.load_asset(f"{OUT}/AS_a") is anim
    assert len(anim._curves["CTRL_expressions_jawOpen"]["values"]) == N_FRAMES  # not doubled
    assert first.n_created == 1


def test_a_batch_reports_bad_files_and_bakes_the_rest(scene, tmp_path):
    unreal = scene
    JsonWriter().write(Animation(values_of(4)), tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"format": "emoface-animation", "format_version": 1}')
    TxtWriter().write(Animation(values_of(5)), tmp_path / "c.txt")
    (tmp_path / "d.txt").write_text("1,2,3\n")
    report = bake(input_folder=str(tmp_path))
    assert [bool(r.error) for r in report.results] == [False, True, False, True]
    assert "b.json: fps must be a number" in report.results[1].error
    assert "d.txt:1: expected 174 comma-separated values, found 3" in report.results[3].error
    assert report.n_created == 2 and report.summary().count("FAILED") == 2
    assert unreal.fake_state().progress == [
        "EmoFace: a.json",
        "EmoFace: b.json",
        "EmoFace: c.txt",
        "EmoFace: d.txt",
    ]
    assert unreal.fake_state().open_sequence is None  # Sequencer closed after the batch
    asked = bake(
        input_folder=str(tmp_path / "a.json"), replace_existing=True, audio_folder=str(tmp_path)
    )
    assert asked.results[0].warnings == [
        f"no audio named a.wav (or .flac/.ogg...) in {tmp_path} or beside the file"
    ]
    unreal.fake_state().cancel_after = 1
    cancelled = bake(input_folder=str(tmp_path), replace_existing=True)
    assert [r.error for r in cancelled.results][1:] == ["cancelled"] * 3


def test_problems_that_stop_every_file_are_one_clear_failure(scene, tmp_path):
    unreal = scene
    JsonWriter().write(Animation(values_of(6)), tmp_path / "a.json")
    report = bake(input_folder=str(tmp_path), actor="BP_Nobody")
    assert report.n_failed == 1 and "no actor labelled 'BP_Nobody'" in report.results[0].error
    report = bake(input_folder=str(tmp_path / "empty"))
    assert "no such file or folder" in report.results[0].error
    report = bake(
        input_folder=str(tmp_path),
        level_sequence=False,
        anim_sequence=True,
        face_skeleton="/Game/Nope",
    )
    assert "/Game/Nope: not a skeleton asset" in report.results[0].error
    assert not [p for p in unreal.fake_state().assets if p.startswith(OUT)]


def test_mh4_rig_and_jaw_flip_are_keyed_on_the_right_channels(fake_unreal, tmp_path):
    unreal = fake_unreal
    unreal.fake_add_face_rig(CONTROLLER_NAMES, mh4=True)
    unreal.fake_add_metahuman("BP_Ada")
    values = values_of(7)
    JsonWriter().write(Animation(values), tmp_path / "a.json")
    report = bake(input_folder=str(tmp_path), flip_jaw_y=True)
    assert report.n_failed == 0 and report.results[0].warnings == []
    section = (
        unreal.EditorAssetLibrary.load_asset(f"{OUT}/LS_a")
        .get_bindings()[1]
        .get_tracks()[0]
        .get_section_to_key()
    )
    expected = expected_channels(values, jaw_sign=-1.0)
    np.testing.assert_allclose(
        channel_values(section, "CTRL_C_jaw.Y"), expected["CTRL_C_jaw.Y"], atol=1e-6
    )
    np.testing.assert_allclose(
        channel_values(section, "CTRL_C_tongue_bendTwist.X"),
        expected["CTRL_C_tongue_roll.X"],
        atol=1e-6,
    )
    assert (
        section.get_channel("CTRL_C_tongue_roll").get_num_keys() == 0
    )  # MH4's new 1-D roll is left alone


def test_headless_script_bakes_and_reports(scene, tmp_path, capsys):
    from conftest import UNREAL_PLUGIN_PYTHON

    unreal = scene
    script = runpy.run_path(str(UNREAL_PLUGIN_PYTHON / "emoface_bake.py"))
    JsonWriter().write(Animation(values_of(8)), tmp_path / "x.json")
    unreal.fake_state().levels.add("/Game/Maps/Dialogue")
    unreal.fake_state().registry_scanning = True  # a commandlet starts before the scan ends
    code = script["main"](
        [
            "--input",
            str(tmp_path),
            "--map",
            "/Game/Maps/Dialogue",
            "--actor",
            "BP_Ada",
            "--anim",
            "--quit",
        ]
    )
    out = capsys.readouterr().out
    assert (
        code == 0 and "1 file(s), 2 asset(s) created" in out and unreal.fake_state().quit_requested
    )
    assert unreal.fake_calls("AssetRegistry.wait_for_completion")
    # Unattended: no per-file undo transaction, only the AnimSequence's bracket.
    assert not unreal.fake_calls("ScopedEditorTransaction") and unreal.fake_undo_count() == 1
    assert script["main"](["--input", str(tmp_path), "--map", "/Game/Maps/Nowhere"]) == 2
    assert "cannot load level /Game/Maps/Nowhere" in capsys.readouterr().out
    assert script["main"](["--input", str(tmp_path), "--txt-fps", "0"]) == 2
    assert "`txt_fps` must be between 1 and 1000" in capsys.readouterr().out
    assert script["main"](["--input", str(tmp_path), "--actor", "BP_Ada"]) == 0  # kept, not failed
    assert "1 kept" in capsys.readouterr().out


def test_bake_menu_uses_the_dialog_folder_and_reports(scene, tmp_path):
    from emoface_unreal.editor import menu

    unreal = scene
    JsonWriter().write(Animation(values_of(9)), tmp_path / "line.json")

    def fill(title, obj):
        obj.set_editor_property("input_folder", unreal.DirectoryPath(path=str(tmp_path)))
        obj.set_editor_property("actor", "BP_Ada")
        obj.set_editor_property("anim_sequence", True)
        return True

    menu.register_menus()
    unreal.fake_state().dialog_handler = fill
    unreal.fake_run_menu_entry("Bake files into assets...")
    title, text = unreal.fake_state().messages[-1]
    assert title == "EmoFace bake" and "1 file(s), 2 asset(s) created" in text
    assert unreal.EditorAssetLibrary.does_asset_exist(f"{OUT}/AS_line")


HEAD_CURVES = ("HeadYaw", "HeadPitch", "HeadRoll", "HeadControlSwitch")


def _head(n: int = N_FRAMES) -> np.ndarray:
    t = np.arange(n) / 60.0
    return np.stack([5 * np.sin(t), -3 * np.sin(2 * t), 2 * np.cos(t)], axis=1).astype(np.float32)


def test_anim_sequence_carries_the_head_as_metahuman_animator_exports_it(fake_unreal, tmp_path):
    fake_unreal.fake_add_face_rig(CONTROLLER_NAMES)
    fake_unreal.fake_add_metahuman("BP_Ada", skeleton_curves=HEAD_CURVES)
    head = _head()
    JsonWriter().write(Animation(values_of(2), head=head), tmp_path / "line.json")
    report = bake(input_folder=str(tmp_path), anim_sequence=True)
    result = report.results[0]
    assert report.n_failed == 0 and f"{OUT}/AS_line" in result.created
    anim = fake_unreal.EditorAssetLibrary.load_asset(f"{OUT}/AS_line")
    for i, name in enumerate(("HeadYaw", "HeadPitch", "HeadRoll")):  # degrees, as written
        np.testing.assert_allclose(anim._curves[name]["values"], head[:, i], atol=1e-5)
    assert anim._curves["HeadControlSwitch"]["values"] == [1.0] * N_FRAMES
    # The Level Sequence keys the face board only, and says so.
    assert any("AnimSequence only" in w for w in result.warnings)


def test_the_head_is_left_out_with_a_reason_when_the_skeleton_lacks_its_curves(
    fake_unreal, tmp_path
):
    fake_unreal.fake_add_face_rig(CONTROLLER_NAMES)
    fake_unreal.fake_add_metahuman("BP_Ada", skeleton_curves=("HeadYaw",))  # an older skeleton
    JsonWriter().write(Animation(values_of(3), head=_head()), tmp_path / "line.json")
    TxtWriter().write(Animation(values_of(4)), tmp_path / "plain.txt")
    report = bake(input_folder=str(tmp_path), anim_sequence=True, level_sequence=False)
    by_name = {r.source.rsplit("/", 1)[-1]: r for r in report.results}
    anim = fake_unreal.EditorAssetLibrary.load_asset(f"{OUT}/AS_line")
    assert not set(HEAD_CURVES) & set(anim._curves)
    assert any("HeadPitch/HeadRoll" in w for w in by_name["line.json"].warnings)
    assert by_name["plain.txt"].warnings == []  # no head, nothing to say
