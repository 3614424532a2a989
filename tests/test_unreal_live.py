"""Live drive inside a fake editor: frames from the bridge over loopback move the right controls,
the jaw self-test, audio, garbage input, the menu, and `emoface stream` end to end."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from bridge import protocol as bp
from bridge.mapping import load_mapping
from bridge.transports.osc import OscSender
from emoface_core.animation import Animation
from emoface_core.controllers import CONTROLLER_NAMES
from emoface_core.formats import JsonWriter

TIMEOUT_S = 5.0
FACEBOARD = load_mapping("metahuman_faceboard")


def raw_frames(n: int, seed: int = 0) -> np.ndarray:
    return (
        np.random.default_rng(seed)
        .uniform(-1, 1, size=(n, len(CONTROLLER_NAMES)))
        .astype(np.float32)
    )


def tick_until(unreal, predicate, timeout_s: float = TIMEOUT_S, each=None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if each is not None:
            each()
        unreal.fake_tick()
        if predicate():
            return True
        time.sleep(0.005)
    return False


def expected_controls(mapped: np.ndarray, jaw_sign: float = 1.0) -> dict:
    """Control -> value (float) or (x, y) that a mapped face-board frame should produce."""
    out: dict = {}
    for name, value in zip(FACEBOARD.names, mapped.tolist()):
        control, _, axis = name.partition(".")
        if axis:
            x, y = out.get(control, (0.0, 0.0))
            out[control] = (
                (value, y)
                if axis == "X"
                else (x, value * (jaw_sign if control == "CTRL_C_jaw" else 1.0))
            )
        else:
            out[control] = value
    return out


def assert_rig_holds(rig, expected: dict) -> None:
    hierarchy = rig.get_hierarchy()
    for control, value in expected.items():
        np.testing.assert_allclose(hierarchy.fake_value(control), value, atol=2e-6, err_msg=control)


@pytest.fixture
def scene(fake_unreal):
    fake_unreal.fake_add_face_rig(CONTROLLER_NAMES)
    fake_unreal.fake_add_metahuman("BP_Ada")
    fake_unreal.fake_add_metahuman("BP_Bob", selected=True)
    return fake_unreal


def osc_settings(**kwargs):
    from emoface_unreal.settings import LiveSettings

    values = dict(
        transport="osc",
        endpoint="127.0.0.1:0",
        subject="npc1",
        actor="BP_Ada",
        jaw_self_test=False,
        play_audio=False,
    )
    values.update(kwargs)
    return LiveSettings(**values)


def start_osc(settings):
    from emoface_unreal.editor import live

    driver = live.start(settings)
    assert tick_until(__import__("unreal"), lambda: driver.receiver.connected)
    return driver, driver.receiver.source.bound_port


def test_frames_over_osc_set_every_control_to_its_mapped_value(scene):
    unreal = scene
    driver, port = start_osc(osc_settings())
    assert driver.running and len(unreal.fake_state().tick_callbacks) == 1
    rig = unreal.fake_open_rig()
    assert rig is not None and unreal.fake_state().open_sequence is driver.sequence
    raw = raw_frames(3)
    schema = FACEBOARD.schema("npc1", 60.0)
    with OscSender("127.0.0.1", port) as sender:
        sender.send_schema(schema)
        for i, row in enumerate(raw):
            sender.send_frame(
                bp.Frame("npc1", i, i / 60, 60.0, FACEBOARD.apply_array(row), schema.schema_id)
            )
        assert tick_until(
            unreal,
            lambda: (
                driver.session.state["npc1"].n_applied >= 1
                and driver.session.state["npc1"].last_frame.seq == 2
            ),
        )
    assert_rig_holds(rig, expected_controls(FACEBOARD.apply_array(raw[2])))
    # The writes went through Sequencer without keys, one call per control (2D as one Vector2D).
    floats = unreal.fake_calls("ControlRigSequencerLibrary.set_local_control_rig_float")
    vectors = unreal.fake_calls("ControlRigSequencerLibrary.set_local_control_rig_vector2d")
    assert floats and all(k == {"set_key": False} for _, k in floats + vectors)
    assert {a[0] for a, _ in vectors} == {
        "CTRL_C_eye",
        "CTRL_L_eye",
        "CTRL_R_eye",
        "CTRL_C_jaw",
        "CTRL_C_mouth",
        "CTRL_L_mouth_corner",
        "CTRL_R_mouth_corner",
        "CTRL_L_nose",
        "CTRL_R_nose",
        "CTRL_C_teethU",
        "CTRL_C_teethD",
        "CTRL_C_tongue",
        "CTRL_C_tongue_roll",
        "CTRL_C_tongue_tip",
    }
    status = driver.status()
    assert status.state == "receiving" and status.subjects[0].n_controls == 157
    assert status.subjects[0].n_unresolved == 0 and status.subjects[0].mapping.startswith(
        "metahuman_faceboard"
    )
    sequence_path = driver.sequence.get_path_name()
    from emoface_unreal.editor import live

    live.stop()
    state = unreal.fake_state()
    assert not state.tick_callbacks and not state.shutdown_callbacks and state.open_sequence is None
    assert not unreal.EditorAssetLibrary.does_asset_exist(sequence_path)
    assert rig.get_hierarchy().fake_value("CTRL_C_jaw") == (0.0, 0.0)  # faces left at rest
    assert rig.get_hierarchy().fake_value("CTRL_L_brow_down") == 0.0
    assert not driver.receiver.running


def test_hierarchy_mode_writes_the_rig_directly(scene):
    unreal = scene
    driver, port = start_osc(osc_settings(apply_mode="hierarchy"))
    schema = FACEBOARD.schema("npc1", 60.0)
    mapped = FACEBOARD.apply_array(raw_frames(1)[0])
    with OscSender("127.0.0.1", port) as sender:
        sender.send_schema(schema)
        sender.send_frame(bp.Frame("npc1", 0, 0.0, 60.0, mapped, schema.schema_id))
        assert tick_until(unreal, lambda: driver.session.n_frames_applied == 1)
    assert_rig_holds(unreal.fake_open_rig(), expected_controls(mapped))
    assert not unreal.fake_calls("ControlRigSequencerLibrary.set_local_control_rig_float")
    assert len(unreal.fake_calls("RigHierarchy.set_control_value")) == 157


@pytest.mark.parametrize("jaw_sign, result", [(1.0, "positive"), (-1.0, "negative")])
def test_jaw_self_test_sets_the_jaw_direction_before_frames_apply(fake_unreal, jaw_sign, result):
    unreal = fake_unreal
    unreal.fake_add_face_rig(CONTROLLER_NAMES, jaw_sign=jaw_sign)
    unreal.fake_add_metahuman("BP_Ada")
    driver, port = start_osc(osc_settings(jaw_self_test=True))
    assert tick_until(unreal, lambda: driver.subjects["npc1"].selftest.done)
    assert driver.status().subjects[0].jaw == result
    schema = FACEBOARD.schema("npc1", 60.0)
    raw = np.zeros(len(CONTROLLER_NAMES), np.float32)
    raw[CONTROLLER_NAMES.index("CTRL_C_jaw-translateY")] = 0.6
    with OscSender("127.0.0.1", port) as sender:
        sender.send_schema(schema)
        sender.send_frame(
            bp.Frame("npc1", 0, 0.0, 60.0, FACEBOARD.apply_array(raw), schema.schema_id)
        )
        assert tick_until(unreal, lambda: driver.session.n_frames_applied == 1)
    rig = unreal.fake_open_rig()
    assert rig.get_hierarchy().fake_value("CTRL_C_jaw") == pytest.approx((0.0, 0.6 * jaw_sign))
    assert rig.get_hierarchy().get_curve_value(
        unreal.RigElementKey(type=unreal.RigElementType.CURVE, name="CTRL_expressions_jawOpen")
    ) == pytest.approx(0.6)
    if result == "negative":
        assert any("flipping the jaw's Y" in m for _, m in unreal.fake_state().log)


def test_garbage_input_shows_in_the_status_and_never_raises(scene):
    unreal = scene
    driver, port = start_osc(osc_settings())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (
            b"\x00",
            b"#bundle\x00garbage",
            b"/emoface/npc1/frame\x00\x00\x00\x00,i",
            b"EMFB\x01\x02",
        ):
            s.sendto(junk, ("127.0.0.1", port))
    assert tick_until(unreal, lambda: driver.status().n_malformed == 4)
    status = driver.status()
    assert "bad OSC packet" in status.last_error or "malformed" in status.last_error
    assert "malformed 4" in status.text()
    # A stream of curves cannot drive the control rig: said once in the status, not raised.
    curves = load_mapping("metahuman_curves")
    schema = curves.schema("npc1", 60.0)
    with OscSender("127.0.0.1", port, mode="array") as sender:
        sender.send_schema(schema)
        sender.send_frame(
            bp.Frame("npc1", 0, 0.0, 60.0, curves.apply_array(raw_frames(1)[0]), schema.schema_id)
        )
        assert tick_until(unreal, lambda: "anim_curves" in driver.status().last_error)
    assert "--mapping metahuman_faceboard" in driver.status().last_error
    assert driver.session.n_frames_applied == 0


def test_an_editor_api_failure_in_the_tick_is_caught_and_reported(scene, monkeypatch):
    unreal = scene
    driver, port = start_osc(osc_settings())

    def broken(*args, **kwargs):
        raise RuntimeError("Sequencer went away")

    monkeypatch.setattr(
        unreal.ControlRigSequencerLibrary, "set_local_control_rig_float", classmethod(broken)
    )
    schema = FACEBOARD.schema("npc1", 60.0)
    with OscSender("127.0.0.1", port) as sender:
        sender.send_schema(schema)
        sender.send_frame(
            bp.Frame(
                "npc1", 0, 0.0, 60.0, FACEBOARD.apply_array(raw_frames(1)[0]), schema.schema_id
            )
        )
        assert tick_until(unreal, lambda: "Sequencer went away" in driver.status().last_error)
    assert driver.running
    assert unreal.fake_open_rig().get_hierarchy().fake_value("CTRL_C_jaw") != (
        0.0,
        0.0,
    )  # 2D writes still happen
    warnings = [
        m
        for level, m in unreal.fake_state().log
        if level == "warning" and "Sequencer went away" in m
    ]
    assert 1 <= len(warnings) <= 143  # once per control at most, not once per frame
    unreal.fake_tick(n=5)
    assert len([m for level, m in unreal.fake_state().log if "Sequencer went away" in m]) == len(
        warnings
    )


def test_line_audio_plays_with_the_offset_and_stops_with_the_line(scene, tmp_path):
    from conftest import make_sine, write_wav

    unreal = scene
    wav = write_wav(tmp_path / "line 01.wav", make_sine(0.5))
    driver, port = start_osc(osc_settings(play_audio=True, audio_offset_ms=-200))
    schema = FACEBOARD.schema("npc1", 60.0)
    with OscSender("127.0.0.1", port) as sender:
        sender.send_schema(schema)
        sender.send_start(
            bp.StreamStart("npc1", 1, schema.schema_id, 30, 60.0, time.time(), {"source": str(wav)})
        )
        assert tick_until(unreal, lambda: unreal.fake_state().sounds)
        (component,) = unreal.fake_state().sounds
        assert component._sound._source_file == str(wav) and component._start_time >= 0.19
        assert unreal.EditorAssetLibrary.does_asset_exist(component._sound.get_path_name())
        sender.send_end(bp.StreamEnd("npc1", 1, 3, bp.EndReason.INTERRUPTED, time.time()))
        assert tick_until(unreal, lambda: not component.is_playing())
        missing = str(tmp_path / "nope.wav")
        sender.send_start(
            bp.StreamStart("npc1", 2, schema.schema_id, 30, 60.0, time.time(), {"source": missing})
        )
        assert tick_until(unreal, lambda: "audio file not found" in driver.status().last_error)


def test_start_errors_are_clear_and_leave_nothing_running(scene):
    from emoface_unreal.editor import live

    unreal = scene
    with pytest.raises(live.LiveError, match="no actor labelled 'BP_Nobody'"):
        live.start(osc_settings(actor="BP_Nobody"))
    with pytest.raises(live.LiveError, match="is bound to two subjects"):
        live.start(osc_settings(actor="BP_Ada", more_bindings="npc2=BP_Ada"))
    unreal.fake_state().assets.pop("/Game/MetaHumans/Common/Face/Face_ControlBoard_CtrlRig")
    with pytest.raises(live.LiveError, match="face control rig not found"):
        live.start(osc_settings())
    assert not unreal.fake_state().tick_callbacks and not live.is_running()
    assert live.status_text() == "EmoFace live: stopped"


def test_a_leftover_live_sequence_is_replaced_without_closing_the_users_sequence(scene):
    from emoface_unreal.editor import live, rig

    unreal = scene
    leftover = rig.create_sequence(live.LIVE_SEQUENCE, live.LIVE_FOLDER)  # e.g. after a crash
    users = unreal.AssetToolsHelpers.get_asset_tools().create_asset(
        "LS_Cutscene", "/Game", unreal.LevelSequence, unreal.LevelSequenceFactoryNew()
    )
    unreal.LevelSequenceEditorBlueprintLibrary.open_level_sequence(users)
    driver, _ = start_osc(osc_settings())
    assert driver.sequence is not leftover
    assert unreal.EditorAssetLibrary.load_asset(driver.sequence.get_path_name()) is driver.sequence
    assert (
        "LevelSequenceEditorBlueprintLibrary.close_level_sequence",
        (),
        {},
    ) not in unreal.fake_state().calls


def test_two_subjects_drive_two_faces_and_the_selected_actor_is_used(scene):
    unreal = scene
    driver, port = start_osc(osc_settings(actor="", more_bindings="npc2=BP_Ada"))
    assert driver.subjects["npc1"].actor_label == "BP_Bob"  # the selected actor
    raws = raw_frames(2)
    with OscSender("127.0.0.1", port) as sender:
        for subject, row in zip(("npc1", "npc2"), raws):
            schema = FACEBOARD.schema(subject, 60.0)
            sender.send_schema(schema)
            sender.send_frame(
                bp.Frame(subject, 0, 0.0, 60.0, FACEBOARD.apply_array(row), schema.schema_id)
            )
        assert tick_until(unreal, lambda: driver.session.n_frames_applied == 2)
    rigs = {s: d.binding.rig for s, d in driver.subjects.items()}
    assert rigs["npc1"] is not rigs["npc2"]
    for subject, row in zip(("npc1", "npc2"), raws):
        assert_rig_holds(rigs[subject], expected_controls(FACEBOARD.apply_array(row)))


def test_watchdog_rests_the_face_when_frames_stop(scene):
    unreal = scene
    driver, port = start_osc(osc_settings(watchdog_timeout_ms=100))
    schema = FACEBOARD.schema("npc1", 60.0)
    with OscSender("127.0.0.1", port) as sender:
        sender.send_schema(schema)
        sender.send_frame(
            bp.Frame(
                "npc1", 0, 0.0, 60.0, FACEBOARD.apply_array(raw_frames(1)[0]), schema.schema_id
            )
        )
        assert tick_until(unreal, lambda: driver.session.n_frames_applied == 1)
    hierarchy = unreal.fake_open_rig().get_hierarchy()
    assert hierarchy.fake_value("CTRL_C_jaw") != (0.0, 0.0)
    assert tick_until(unreal, lambda: hierarchy.fake_value("CTRL_C_jaw") == (0.0, 0.0))


def test_closing_the_live_sequence_in_sequencer_shows_in_the_status(scene):
    unreal = scene
    driver, _ = start_osc(osc_settings())
    unreal.fake_tick(n=2)
    assert driver.status().last_error == ""
    unreal.LevelSequenceEditorBlueprintLibrary.close_level_sequence()
    assert tick_until(
        unreal, lambda: "not open in Sequencer" in driver.status().last_error, timeout_s=3
    )


def test_editor_shutdown_stops_live_drive(scene):
    from emoface_unreal.editor import live

    unreal = scene
    driver, _ = start_osc(osc_settings())
    unreal.fake_shutdown()
    assert not driver.running and not unreal.fake_state().tick_callbacks
    assert not driver.receiver.running
    assert live.status_text()  # still answers after shutdown


def test_menu_starts_stops_shows_status_and_saves_settings(scene, tmp_path):
    import json

    from emoface_unreal.editor import live, menu

    unreal = scene
    assert menu.register_menus() and menu.register_menus()  # idempotent
    sub = unreal.fake_state().menus["LevelEditor.MainMenu.EmoFace"]
    assert [e._label for _, e in sub._entries] == [
        "Start live drive...",
        "Stop live drive",
        "Show live status",
        "Bake files into assets...",
    ]

    def fill(title, obj):
        obj.set_editor_property("transport", "osc")
        obj.set_editor_property("endpoint", "127.0.0.1:0")
        obj.set_editor_property("subject", "npc9")
        obj.set_editor_property("actor", "BP_Ada")
        obj.set_editor_property("jaw_self_test", False)
        return True

    unreal.fake_state().dialog_handler = fill
    unreal.fake_run_menu_entry("Start live drive...")
    assert live.is_running()
    assert "emoface stream line.wav --subject npc9 --osc" in unreal.fake_state().messages[-1][1]
    saved = json.loads((tmp_path / "Saved" / "EmoFace" / "settings.json").read_text())
    assert saved["live"]["subject"] == "npc9" and saved["live"]["transport"] == "osc"
    unreal.fake_run_menu_entry("Show live status")
    assert unreal.fake_state().messages[-1][1].startswith("EmoFace live: listening")
    unreal.fake_run_menu_entry("Stop live drive")
    assert not live.is_running() and "Live drive stopped" in unreal.fake_state().messages[-1][1]

    attempts = []

    def invalid_then_cancel(title, obj):
        attempts.append(obj.get_editor_property("endpoint"))
        obj.set_editor_property("endpoint", "tcp://nowhere")  # invalid for osc
        return len(attempts) == 1

    unreal.fake_state().dialog_handler = invalid_then_cancel
    unreal.fake_run_menu_entry("Start live drive...")
    assert len(attempts) == 2 and not live.is_running()
    assert any("`endpoint` for osc" in text for _, text in unreal.fake_state().messages)
    menu.unregister_menus()
    assert "LevelEditor.MainMenu.EmoFace" not in unreal.fake_state().menus


def test_init_unreal_registers_the_menu_and_never_raises(fake_unreal, monkeypatch):
    import runpy

    from conftest import UNREAL_PLUGIN_PYTHON

    runpy.run_path(str(UNREAL_PLUGIN_PYTHON / "init_unreal.py"))
    assert "LevelEditor.MainMenu.EmoFace" in fake_unreal.fake_state().menus
    monkeypatch.setattr(fake_unreal.ToolMenus, "get", classmethod(lambda cls: 1 / 0))
    runpy.run_path(str(UNREAL_PLUGIN_PYTHON / "init_unreal.py"))  # logs, does not raise


def test_emoface_stream_drives_the_face_end_to_end(scene, tmp_path):
    """`emoface stream line.json --zmq` into the plugin's built-in ZeroMQ subscriber."""
    from emoface_unreal.editor import live
    from emoface_unreal.settings import LiveSettings

    from bridge.cli import main

    unreal = scene
    values = raw_frames(20, seed=3)
    path = JsonWriter().write(Animation(values, fps=60.0), tmp_path / "line.json")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = live.start(
        LiveSettings(
            endpoint=f"tcp://127.0.0.1:{port}",
            subject="npc1",
            actor="BP_Ada",
            zmq_backend="builtin",
            jaw_self_test=False,
            play_audio=False,
            watchdog_timeout_ms=60_000,
        )
    )
    codes = []
    thread = threading.Thread(
        target=lambda: codes.append(
            main(
                [
                    "stream",
                    str(path),
                    "--subject",
                    "npc1",
                    "--zmq",
                    f"tcp://127.0.0.1:{port}",
                    "--start-delay-s",
                    "0.8",
                ]
            )
        )
    )
    thread.start()
    try:
        assert tick_until(unreal, lambda: not thread.is_alive(), timeout_s=15)
        assert tick_until(
            unreal,
            lambda: (
                driver.session.state["npc1"].last_frame is not None
                and driver.session.state["npc1"].last_frame.seq == 19
            ),
        )
    finally:
        thread.join(10)
    assert codes == [0]
    unreal.fake_tick(n=3)
    status = driver.status()
    assert (
        status.n_frames == 20
        and status.subjects[0].n_applied >= 1
        and status.subjects[0].line_id == 1
    )
    assert_rig_holds(unreal.fake_open_rig(), expected_controls(FACEBOARD.apply_array(values[19])))
