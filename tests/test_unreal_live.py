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
from emoface_core.testing.clocks import FakeClock

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


def send_frames(port: int, rows, subject: str = "npc1", seq0: int = 0) -> bp.Schema:
    schema = FACEBOARD.schema(subject, 60.0)
    with OscSender("127.0.0.1", port) as sender:
        sender.send_schema(schema)
        for i, row in enumerate(rows):
            sender.send_frame(
                bp.Frame(
                    subject,
                    seq0 + i,
                    (seq0 + i) / 60,
                    60.0,
                    FACEBOARD.apply_array(row),
                    schema.schema_id,
                )
            )
    return schema


def assert_face_shows(unreal, label: str, expected: dict) -> None:
    """The viewport pose (not just the rig instance) holds the expected control values."""
    pose = unreal.fake_visible_pose(label)
    for control, value in expected.items():
        np.testing.assert_allclose(pose[control], value, atol=2e-6, err_msg=control)


def at_rest(pose: dict) -> bool:
    """Every control at 0 (or never evaluated) and the jaw closed."""
    return all(v in (0.0, (0.0, 0.0)) for v in pose.values())


def all_channels(driver, subject: str = "npc1"):
    return driver.subjects[subject].binding.section.get_all_channels()


def test_frames_over_osc_move_the_visible_face_through_channel_defaults(scene):
    unreal = scene
    driver, port = start_osc(osc_settings())
    assert driver.running and len(unreal.fake_state().tick_callbacks) == 1
    assert unreal.fake_state().open_sequence is driver.sequence
    assert at_rest(unreal.fake_visible_pose("BP_Ada"))  # at rest
    raw = raw_frames(3)
    send_frames(port, raw)
    state = driver.session.state["npc1"]
    assert tick_until(unreal, lambda: state.n_applied >= 1 and state.last_frame.seq == 2)
    unreal.fake_tick()  # the mesh shows the evaluated pose from the next frame on
    expected = expected_controls(FACEBOARD.apply_array(raw[2]))
    assert_face_shows(unreal, "BP_Ada", expected)  # the newest frame, in the viewport
    assert_rig_holds(driver.subjects["npc1"].binding.rig, expected)
    # Channel defaults, never keys, never the interactive keying path, no undo entries.
    assert all(c.get_num_keys() == 0 for c in all_channels(driver))
    assert not unreal.fake_calls("ControlRigSequencerLibrary.set_local_control_rig_float")
    assert unreal.fake_state().n_keyings == unreal.fake_state().n_interrogations == 0
    assert unreal.fake_undo_count() == 0
    # Per tick: one evaluation, and writes only for the values that changed.
    writer = driver.subjects["npc1"].writer
    changed = raw[2].copy()
    changed[CONTROLLER_NAMES.index("CTRL_L_brow_down-translateY")] = 0.25
    calls, evaluations = writer.n_calls, unreal.fake_state().n_evaluations
    send_frames(port, [changed], seq0=3)
    assert tick_until(unreal, lambda: state.last_frame.seq == 3 and writer.n_calls > calls)
    assert writer.n_calls - calls == 1
    assert unreal.fake_state().n_evaluations - evaluations == 1
    unreal.fake_tick()
    assert unreal.fake_visible_pose("BP_Ada")["CTRL_L_brow_down"] == pytest.approx(0.25)
    status = driver.status()
    assert status.state == "receiving" and status.subjects[0].n_controls == 157
    assert status.subjects[0].n_unresolved == 0 and status.subjects[0].mapping.startswith(
        "metahuman_faceboard"
    )
    assert status.tick_hz > 0 and "editor ticks" in status.text()
    sequence = driver.sequence
    from emoface_unreal.editor import live

    live.stop()
    state_ = unreal.fake_state()
    assert not state_.tick_callbacks and not state_.shutdown_callbacks
    assert state_.open_sequence is None and not driver.receiver.running
    assert at_rest(unreal.fake_visible_pose("BP_Ada"))  # faces left at rest
    # The scratch sequence stays (emptied and saved): nothing deleted, nothing left dirty.
    assert not unreal.fake_calls("EditorAssetLibrary.delete_asset")
    assert unreal.EditorAssetLibrary.load_asset(sequence.get_path_name()) is sequence
    assert not sequence.get_bindings() and not state_.dirty


def test_rig_setters_go_through_sequencers_keying_path_and_leave_the_face_still(scene):
    """What set_local_control_rig_*(set_key=False) does in the editor (why it is not the
    default): one transaction and one section interrogation per call, no channel written with
    Auto Key and Auto Set Track Defaults off, and the next evaluation puts the channels back."""
    unreal = scene
    driver, port = start_osc(osc_settings(apply_mode="rig_setters"))
    raw = raw_frames(1)
    send_frames(port, raw)
    assert tick_until(unreal, lambda: driver.session.n_frames_applied == 1)
    unreal.fake_tick(n=2)
    floats = unreal.fake_calls("ControlRigSequencerLibrary.set_local_control_rig_float")
    vectors = unreal.fake_calls("ControlRigSequencerLibrary.set_local_control_rig_vector2d")
    assert floats and all(k == {"set_key": False} for _, k in floats + vectors)
    assert len(vectors) == 14  # 2D controls as one Vector2D call each
    n_calls = len(floats) + len(vectors)
    assert unreal.fake_undo_count() == n_calls == unreal.fake_state().n_interrogations
    rig = driver.subjects["npc1"].binding.rig
    assert_rig_holds(rig, expected_controls(FACEBOARD.apply_array(raw[0])))  # the instance...
    assert at_rest(unreal.fake_visible_pose("BP_Ada"))  # ...but not the viewport
    assert all(c.get_default() == 0 and c.get_num_keys() == 0 for c in all_channels(driver))
    from emoface_unreal.editor import compat

    compat.set_playhead(0)  # a scrub: the channels' values go back into the rig
    assert rig.get_hierarchy().fake_value("CTRL_C_jaw") == (0.0, 0.0)
    # With Auto Key on, every write keys frame 0.
    unreal.fake_set_sequencer(auto_key=True)
    send_frames(port, raw_frames(1, seed=5), seq0=1)
    assert tick_until(unreal, lambda: driver.session.n_frames_applied == 2)
    jaw_y = driver.subjects["npc1"].binding.section.get_channel("CTRL_C_jaw.Y")
    assert jaw_y.fake_frames() == [0]


def test_hierarchy_mode_writes_the_rig_but_an_evaluation_overwrites_it(scene):
    unreal = scene
    driver, port = start_osc(osc_settings(apply_mode="hierarchy"))
    raw = raw_frames(1)
    send_frames(port, raw)
    assert tick_until(unreal, lambda: driver.session.n_frames_applied == 1)
    rig = driver.subjects["npc1"].binding.rig
    assert_rig_holds(rig, expected_controls(FACEBOARD.apply_array(raw[0])))
    assert not unreal.fake_calls("ControlRigSequencerLibrary.set_local_control_rig_float")
    assert len(unreal.fake_calls("RigHierarchy.set_control_value")) == 157
    from emoface_unreal.editor import compat

    compat.force_evaluation(0)
    assert rig.get_hierarchy().fake_value("CTRL_C_jaw") == (0.0, 0.0)


@pytest.mark.parametrize(
    "jaw_sign, evaluates, result",
    [(1.0, True, "positive"), (-1.0, True, "negative"), (1.0, False, "not moved")],
)
def test_jaw_self_test_proves_the_jaw_joint_moves(fake_unreal, jaw_sign, evaluates, result):
    from emoface_unreal import selftest

    unreal = fake_unreal
    unreal.fake_add_face_rig(CONTROLLER_NAMES, jaw_sign=jaw_sign, evaluates=evaluates)
    unreal.fake_add_metahuman("BP_Ada")
    driver, port = start_osc(osc_settings(jaw_self_test=True))
    test = driver.subjects["npc1"].selftest
    raw = np.zeros((1, len(CONTROLLER_NAMES)), np.float32)
    raw[0, CONTROLLER_NAMES.index("CTRL_C_jaw-translateY")] = 0.6
    send_frames(port, raw)  # arrives while the test runs: held, then applied
    assert tick_until(unreal, lambda: test.done and driver.session.n_frames_applied == 1)
    assert test.n_ticks <= selftest.MAX_TICKS  # frames wait a few ticks at most
    jaw = driver.status().subjects[0].jaw
    if result == "not moved":
        assert (
            test.result == selftest.NOT_MOVED and not test.moved and jaw.startswith("did not move")
        )
        assert "0.00 deg for +Y" in test.message and "Diagnose" in test.message
        return
    assert test.moved and test.degrees > 5
    assert jaw.startswith("moved") and "deg" in jaw
    unreal.fake_tick()
    pose = unreal.fake_visible_pose("BP_Ada")
    assert pose["CTRL_C_jaw"] == pytest.approx((0.0, 0.6 * jaw_sign))
    assert pose["jaw_open"] == pytest.approx(0.6)
    if result == "negative":
        assert test.result == selftest.NEGATIVE
        assert any("flipping the jaw's Y" in m for _, m in unreal.fake_state().log)


def test_a_throttled_editor_shows_its_tick_rate_and_how_to_fix_it(scene):
    from emoface_unreal.editor import live

    unreal = scene
    clock = FakeClock(1000.0)
    driver = live.LiveDriver(osc_settings(watchdog_timeout_ms=60_000), clock=clock)
    driver.start()
    try:
        port = driver.receiver.source.bound_port

        def frames_for(seconds: float, seq0: int) -> None:
            for i in range(int(seconds * 60)):
                if i % 15 == 0:
                    send_frames(port, raw_frames(1, seed=i), seq0=seq0 + i)
                    deadline = time.monotonic() + TIMEOUT_S
                    while driver.receiver.queue.empty() and time.monotonic() < deadline:
                        time.sleep(0.002)
                clock.advance(1 / 60)
                unreal.fake_tick()

        frames_for(2.5, 0)
        status = driver.status()
        assert status.tick_hz == pytest.approx(60, rel=0.05) and status.hint == ""
        unreal.fake_background(throttle_every=15)
        frames_for(3.0, 1000)
        status = driver.status()
        assert status.tick_hz == pytest.approx(4, rel=0.05)
        assert "Use Less CPU when in Background" in status.hint and "hint:" in status.text()
    finally:
        driver.stop()


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
    original = unreal.MovieSceneScriptingFloatChannel.set_default

    def broken(self, default_value):
        if "." not in self.get_name():  # float controls fail; 2D channels still work
            raise RuntimeError("Sequencer went away")
        original(self, default_value)

    monkeypatch.setattr(unreal.MovieSceneScriptingFloatChannel, "set_default", broken)
    send_frames(port, raw_frames(1))
    assert tick_until(unreal, lambda: "Sequencer went away" in driver.status().last_error)
    assert driver.running
    unreal.fake_tick()
    assert unreal.fake_visible_pose("BP_Ada")["CTRL_C_jaw"] != (0.0, 0.0)  # 2D writes happen
    warnings = [
        m
        for level, m in unreal.fake_state().log
        if level == "warning" and "Sequencer went away" in m
    ]
    assert 1 <= len(warnings) <= 143  # once per control at most, not once per frame
    send_frames(port, raw_frames(1, seed=9), seq0=1)
    unreal.fake_tick(n=5)
    assert len([m for level, m in unreal.fake_state().log if "Sequencer went away" in m]) == len(
        warnings
    )


def live_with_clock(settings):
    from emoface_unreal.editor import live

    clock = FakeClock(1000.0)
    driver = live.LiveDriver(settings, clock=clock)
    driver.start()
    return driver, clock


def test_line_audio_is_imported_at_start_and_seeks_after_the_import(scene, tmp_path, monkeypatch):
    from conftest import make_sine, write_wav

    unreal = scene
    wav = write_wav(tmp_path / "line 01.wav", make_sine(0.5))
    driver, clock = live_with_clock(osc_settings(play_audio=True, audio_offset_ms=0))
    original = unreal.AssetTools.import_asset_tasks

    def slow_import(self, import_tasks):  # an import takes a while in the editor
        clock.advance(0.3)
        original(self, import_tasks)

    monkeypatch.setattr(unreal.AssetTools, "import_asset_tasks", slow_import)
    port = driver.receiver.source.bound_port
    try:
        schema = FACEBOARD.schema("npc1", 60.0)
        with OscSender("127.0.0.1", port) as sender:
            sender.send_schema(schema)
            t0 = clock()
            sender.send_start(
                bp.StreamStart("npc1", 1, schema.schema_id, 30, 60.0, t0, {"source": str(wav)})
            )
            assert tick_until(unreal, lambda: unreal.fake_state().sounds)
            (component,) = unreal.fake_state().sounds
            # The sound starts 0.3 s after audio time 0 (the import), so it seeks 0.3 s in.
            assert component._start_time == pytest.approx(0.3, abs=1e-6)
            assert component._sound._source_file == str(wav)
            assert str(wav) in driver.status().subjects[0].audio
            # Imported once, saved: not a dirty package for the user's Save All.
            assert not unreal.fake_state().dirty - {driver.sequence._package}
            sender.send_end(bp.StreamEnd("npc1", 1, 3, bp.EndReason.INTERRUPTED, clock()))
            assert tick_until(unreal, lambda: not component.is_playing())
            # A later line: imported when START comes, played when it is due.
            sender.send_start(
                bp.StreamStart(
                    "npc1", 2, schema.schema_id, 30, 60.0, clock() + 1.0, {"source": str(wav)}
                )
            )
            assert tick_until(unreal, lambda: "ready" in driver.status().subjects[0].audio)
            assert len(unreal.fake_state().sounds) == 1
            clock.advance(1.0)
            unreal.fake_tick()
            assert len(unreal.fake_state().sounds) == 2
            assert unreal.fake_state().sounds[-1]._start_time == pytest.approx(0.0, abs=1e-6)
    finally:
        driver.stop()


def test_line_audio_is_found_in_the_audio_folder_and_says_what_it_tried(scene, tmp_path):
    from conftest import make_sine, write_wav

    unreal = scene
    folder = tmp_path / "lines"
    folder.mkdir()
    wav = write_wav(folder / "hello.wav", make_sine(0.5))
    driver, port = start_osc(osc_settings(play_audio=True, audio_folder=str(folder)))
    schema = FACEBOARD.schema("npc1", 60.0)
    with OscSender("127.0.0.1", port) as sender:
        sender.send_schema(schema)
        # A relative name (an old sender) and a path from another machine: found by name.
        sender.send_start(
            bp.StreamStart(
                "npc1", 1, schema.schema_id, 30, 60.0, time.time(), {"source": "hello.wav"}
            )
        )
        assert tick_until(unreal, lambda: unreal.fake_state().sounds)
        assert unreal.fake_state().sounds[0]._sound._source_file == str(wav)
        missing = "D:/other machine/nope.wav"
        sender.send_start(
            bp.StreamStart("npc1", 2, schema.schema_id, 30, 60.0, time.time(), {"source": missing})
        )
        assert tick_until(unreal, lambda: "line audio not found" in driver.status().last_error)
    audio = driver.status().subjects[0].audio
    assert "not found" in audio and missing in audio and str(folder / "nope.wav") in audio


def test_without_an_audio_device_line_audio_fails_clearly(scene, tmp_path):
    from conftest import make_sine, write_wav

    unreal = scene
    unreal.fake_state().audio_device = False
    wav = write_wav(tmp_path / "a.wav", make_sine(0.2))
    driver, port = start_osc(osc_settings(play_audio=True))
    schema = FACEBOARD.schema("npc1", 60.0)
    with OscSender("127.0.0.1", port) as sender:
        sender.send_schema(schema)
        sender.send_start(
            bp.StreamStart("npc1", 1, schema.schema_id, 30, 60.0, time.time(), {"source": str(wav)})
        )
        assert tick_until(unreal, lambda: "no audio device" in driver.status().last_error)
    assert driver.running and "silent" in driver.status().subjects[0].audio


def test_start_errors_are_clear_and_leave_nothing_running(scene):
    from emoface_unreal.editor import live

    unreal = scene
    with pytest.raises(live.LiveError, match="no actor labelled 'BP_Nobody'"):
        live.start(osc_settings(actor="BP_Nobody"))
    with pytest.raises(live.LiveError, match="is bound to two subjects"):
        live.start(osc_settings(actor="BP_Ada", more_bindings="npc2=BP_Ada"))
    unreal.fake_state().open_fails = True
    with pytest.raises(live.LiveError, match="Sequencer did not open"):
        live.start(osc_settings())
    assert not unreal.fake_state().crashes  # no control rig track without an open sequence
    unreal.fake_state().open_fails = False
    unreal.fake_state().assets.pop("/Game/MetaHumans/Common/Face/Face_ControlBoard_CtrlRig")
    with pytest.raises(live.LiveError, match="face control rig not found"):
        live.start(osc_settings())
    assert not unreal.fake_state().tick_callbacks and not live.is_running()
    assert live.status_text() == "EmoFace live: stopped"


def test_the_face_rig_comes_from_the_meshs_default_animating_rig(fake_unreal):
    from emoface_unreal.editor import live

    unreal = fake_unreal
    # A MetaHuman Creator character: its rig is elsewhere, named by the face mesh.
    rig_asset = unreal.fake_add_face_rig(CONTROLLER_NAMES, path="/Game/MHC/Ada/Face_Board")
    unreal.fake_add_metahuman("BP_Ada", animating_rig=rig_asset)
    driver = live.start(osc_settings())
    try:
        assert driver.subjects["npc1"].binding.track._rig is not None
    finally:
        live.stop()


def test_a_leftover_live_sequence_is_reused_not_deleted(scene):
    from emoface_unreal.editor import live, rig

    unreal = scene
    leftover = rig.create_sequence(live.LIVE_SEQUENCE, live.LIVE_FOLDER)  # e.g. after a crash
    leftover.add_possessable(unreal.fake_state().actors[0])
    users = unreal.AssetToolsHelpers.get_asset_tools().create_asset(
        "LS_Cutscene", "/Game", unreal.LevelSequence, unreal.LevelSequenceFactoryNew()
    )
    unreal.LevelSequenceEditorBlueprintLibrary.open_level_sequence(users)
    driver, _ = start_osc(osc_settings())
    assert driver.sequence is leftover and len(leftover.get_bindings()) == 2  # emptied, refilled
    assert not unreal.fake_calls("EditorAssetLibrary.delete_asset")
    assert (
        "LevelSequenceEditorBlueprintLibrary.close_level_sequence",
        (),
        {},
    ) not in unreal.fake_state().calls  # the user's sequence was not ours to close


def test_two_subjects_drive_two_faces_and_the_selected_actor_is_used(scene):
    unreal = scene
    driver, port = start_osc(osc_settings(actor="", more_bindings="npc2=BP_Ada"))
    assert driver.subjects["npc1"].actor_label == "BP_Bob"  # the selected actor
    raws = raw_frames(2)
    send_frames(port, raws[:1], subject="npc1")
    send_frames(port, raws[1:], subject="npc2")
    assert tick_until(unreal, lambda: driver.session.n_frames_applied == 2)
    unreal.fake_tick()
    rigs = {s: d.binding.rig for s, d in driver.subjects.items()}
    assert rigs["npc1"] is not rigs["npc2"]
    for label, row in zip(("BP_Bob", "BP_Ada"), raws):
        assert_face_shows(unreal, label, expected_controls(FACEBOARD.apply_array(row)))


def test_watchdog_rests_the_face_when_frames_stop(scene):
    unreal = scene
    driver, port = start_osc(osc_settings(watchdog_timeout_ms=100))
    send_frames(port, raw_frames(1))
    assert tick_until(unreal, lambda: driver.session.n_frames_applied == 1)
    unreal.fake_tick()
    assert unreal.fake_visible_pose("BP_Ada")["CTRL_C_jaw"] != (0.0, 0.0)
    assert tick_until(
        unreal, lambda: unreal.fake_visible_pose("BP_Ada")["CTRL_C_jaw"] == (0.0, 0.0)
    )


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
        "Diagnose",
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
    assert_face_shows(unreal, "BP_Ada", expected_controls(FACEBOARD.apply_array(values[19])))
