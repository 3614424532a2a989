"""EmoFace > Diagnose against the fake editor: it tells the mechanisms that move the face from
those that do not, times them, checks audio, leaves no undo entries or dirty packages, and
always writes its report (from the menu and unattended)."""

from __future__ import annotations

import json
import runpy

import pytest

from emoface_core.controllers import CONTROLLER_NAMES

MAX_TICKS = 200


@pytest.fixture
def scene(fake_unreal):
    fake_unreal.fake_add_face_rig(CONTROLLER_NAMES)
    fake_unreal.fake_add_metahuman("BP_Ada", selected=True)
    return fake_unreal


def run_to_end(unreal, diagnosis) -> dict:
    for _ in range(MAX_TICKS):
        if diagnosis.done:
            break
        unreal.fake_tick()
    assert diagnosis.done and diagnosis.path is not None
    assert not unreal.fake_state().tick_callbacks  # unregistered when done
    return json.loads(diagnosis.path.read_text())


def test_diagnose_finds_the_mechanism_that_moves_the_face(scene, tmp_path):
    from emoface_unreal.editor import diagnose

    unreal = scene
    undo_before = unreal.fake_undo_count()
    report = run_to_end(unreal, diagnose.start())
    assert report["engine_version"] == "5.6.0-fake" and report["actor"] == "BP_Ada"
    assert "Face_ControlBoard_CtrlRig" in report["rig_class"]
    controls = report["controls"]
    assert controls["resolved"] == 157 and controls["unresolved"] == []
    assert controls["float"] == 143 and controls["vector2d"] == 14
    mechanisms = report["mechanisms"]
    assert set(mechanisms) == {"channels", "rig_setters", "hierarchy"}
    channels = mechanisms["channels"]
    assert channels["moved"] and channels["jaw_plus_deg"] == pytest.approx(12.5, abs=0.01)
    assert channels["jaw_minus_deg"] == pytest.approx(0.0, abs=0.01)  # this rig opens with +Y
    assert channels["us_per_write"] > 0 and channels["ms_per_evaluation"] > 0
    # What the engine does with the other two: the rig instance changes, the mesh does not.
    for mode in ("rig_setters", "hierarchy"):
        assert not mechanisms[mode]["moved"], mode
        assert mechanisms[mode]["jaw_plus_deg"] == pytest.approx(0.0, abs=1e-6)
        assert mechanisms[mode]["us_per_write"] > 0
    assert report["moves_the_face"] == ["channels"]
    assert report["audio"]["import"].startswith("/Game/EmoFace/Diagnose/")
    assert report["audio"]["playback"] == "started"
    assert report["editor_tick_hz"] > 0 and "errors" not in report
    assert "no Python API" in report["undo"]
    # Nothing left behind: no undo entries (the rig setters' were cancelled), no dirty
    # packages, the scratch sequence emptied and closed.
    assert unreal.fake_undo_count() == undo_before, unreal.fake_state().undo
    assert not unreal.fake_state().dirty and unreal.fake_state().open_sequence is None
    text = diagnose_text(report)
    assert "channels: MOVES the face" in text and "use apply mode: channels" in text
    assert (tmp_path / "Saved" / "EmoFace").glob("diagnose-*.txt")
    txt = report_txt(report, tmp_path)
    assert "rig_setters: does not move the face" in txt


def diagnose_text(report: dict) -> str:
    from emoface_unreal.editor import diagnose

    return diagnose.report_text(report)


def report_txt(report: dict, tmp_path) -> str:
    (path,) = (tmp_path / "Saved" / "EmoFace").glob("diagnose-*.txt")
    return path.read_text()


def test_a_rig_that_never_moves_and_no_audio_device_are_reported(fake_unreal):
    from emoface_unreal.editor import diagnose

    unreal = fake_unreal
    unreal.fake_add_face_rig(CONTROLLER_NAMES, evaluates=False)
    unreal.fake_add_metahuman("BP_Ada", selected=True)
    unreal.fake_state().audio_device = False
    report = run_to_end(unreal, diagnose.start())
    assert report["moves_the_face"] == []
    assert "no audio device" in report["audio"]["playback"]
    assert "none moved the face: send this report" in diagnose.report_text(report)


def test_without_a_metahuman_the_report_still_comes_with_the_error(fake_unreal):
    from emoface_unreal.editor import diagnose

    unreal = fake_unreal  # nothing selected, no MetaHuman in the level
    report = run_to_end(unreal, diagnose.start())
    assert any(
        e.startswith("bind: SceneError: select exactly one MetaHuman") for e in report["errors"]
    )
    assert "mechanisms" not in report and report["audio"]["playback"] == "started"
    assert "ERROR bind" in diagnose.report_text(report)


def test_the_menu_runs_diagnose_and_refuses_while_live_drive_runs(scene):
    from emoface_unreal.editor import live, menu
    from emoface_unreal.settings import LiveSettings

    unreal = scene
    menu.register_menus()
    unreal.fake_run_menu_entry("Diagnose")
    for _ in range(MAX_TICKS):
        unreal.fake_tick()
        if unreal.fake_state().messages:
            break
    title, text = unreal.fake_state().messages[-1]
    assert title == "EmoFace Diagnose" and "Report:" in text and "diagnose-" in text
    live.start(
        LiveSettings(transport="osc", endpoint="127.0.0.1:0", jaw_self_test=False, play_audio=False)
    )
    try:
        unreal.fake_run_menu_entry("Diagnose")
        assert "Stop live drive first" in unreal.fake_state().messages[-1][1]
    finally:
        live.stop()


def test_the_unattended_script_writes_the_report_and_quits(scene, capsys):
    from conftest import UNREAL_PLUGIN_PYTHON

    unreal = scene
    script = runpy.run_path(str(UNREAL_PLUGIN_PYTHON / "emoface_diagnose.py"))
    assert script["main"](["--map", "/Game/Maps/Nowhere"]) == 2
    assert "cannot load level" in capsys.readouterr().out
    assert script["main"](["--actor", "BP_Ada", "--quit"]) == 0
    for _ in range(MAX_TICKS):
        if unreal.fake_state().quit_requested:
            break
        unreal.fake_tick()
    assert unreal.fake_state().quit_requested
    assert "emoface_diagnose: report: " in capsys.readouterr().out
