"""Bake EmoFace animation files into Unreal assets, one file at a time, failures reported not fatal.

For each ``.json``/``.txt`` file:

* Level Sequence ``LS_<name>``: the MetaHuman bound, the face board control rig track keyed at
  the clip's frame rate, and the line's audio on an audio track when a sound file is found (the
  imported SoundWave is saved, or the track is empty after a restart).
  With ``key_strategy`` "channels" (default) every key goes straight into the section's
  scripting channel (``CTRL_x`` for floats, ``CTRL_x.X``/``.Y`` for 2D controls): one
  ``add_key`` per key, no Sequencer involvement (5.6 has no batch call for scripting channels).
  "rig" uses ``set_local_control_rig_floats`` / ``_vector2_ds``, which loop in C++ through
  Sequencer's interactive keying path once per frame (a transaction and a section
  interrogation per key: ~94,000 keyings for a 10 s clip); "auto" does that, reads the keys back
  and re-keys any channel that does not hold them (one public report has the Vector2D setter
  keying (0, 0)).
* AnimSequence ``AS_<name>`` on the face skeleton with ``CTRL_expressions_*`` curves (what
  RigLogic in the face's post-process Anim Blueprint reads), via the curves mapping, inside one
  controller bracket; plus the head's ``HeadYaw``/``HeadPitch``/``HeadRoll`` (degrees) and
  ``HeadControlSwitch`` curves when the clip carries head motion and the skeleton has those
  curves, as MetaHuman Animator exports head movement (``bakeplan.head_curve_keys``).

In the editor a file is one undo transaction (``ScopedEditorTransaction``; inner transactions
join it); an unattended bake (``undoable=False``) opens none, except the AnimSequence's bracket
(one per asset instead of one per curve key). Existing assets are kept unless
``replace_existing``, which empties and refills them: deleting an asset would close every asset
editor and may clear the undo history. Runs from the EmoFace menu or headless:
``UnrealEditor-Cmd Project.uproject -run=pythonscript -script="emoface_bake.py --input ..."``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from emoface_unreal.baked import BakedClip, BakedFileError, load_clip
from emoface_unreal.bakeplan import (
    ANIM_SEQUENCE_PREFIX,
    LEVEL_SEQUENCE_PREFIX,
    BakeReport,
    ControlKeys,
    FileResult,
    control_keys,
    curve_keys,
    find_audio,
    find_baked_files,
    head_curve_keys,
    unique_asset_names,
)
from emoface_unreal.controls import JAW
from emoface_unreal.data import DataFileError
from emoface_unreal.editor import audio, compat, rig, scene
from emoface_unreal.editor.logs import install_log_handler
from emoface_unreal.rigmap import RigMapping, load_rig_mapping
from emoface_unreal.settings import BakeSettings

log = logging.getLogger(__name__)

VERIFY_TOLERANCE = 1e-3  # keys read back within this count as held
N_VERIFY_SAMPLES = 5  # keys read back per channel (spread over the clip)


class BakeError(RuntimeError):
    """A bake cannot start (no actor, no face rig, no skeleton); the message says what to fix."""


@dataclass
class _Context:
    settings: BakeSettings
    faceboard: RigMapping | None = None
    curves: RigMapping | None = None
    actor: Any = None
    rig_class: Any = None
    skeleton: Any = None
    undoable: bool = True


def frame_rate(fps: float) -> Any:
    """``unreal.FrameRate`` for a frame rate (29.97 -> 30000/1001)."""
    import unreal

    ratio = Fraction(fps).limit_denominator(1001)
    return unreal.FrameRate(ratio.numerator, ratio.denominator)


def _prepare(settings: BakeSettings, undoable: bool) -> _Context:
    ctx = _Context(settings, undoable=undoable)
    try:
        if not undoable:  # unattended: the commandlet may start before the registry scan ends
            scene.wait_for_asset_registry()
        if settings.level_sequence:
            ctx.faceboard = load_rig_mapping("faceboard")
            ctx.actor = scene.find_actor(settings.actor)
            ctx.rig_class = scene.load_face_rig_class(
                settings.face_rig_asset, scene.face_component(ctx.actor)
            )
        if settings.anim_sequence:
            ctx.curves = load_rig_mapping("curves")
            if settings.face_skeleton:
                ctx.skeleton = scene.load_skeleton(settings.face_skeleton)
            else:
                ctx.skeleton = scene.face_skeleton(ctx.actor or scene.find_actor(settings.actor))
    except (scene.SceneError, DataFileError) as e:
        raise BakeError(str(e)) from e
    return ctx


def bake_folder(settings: BakeSettings, *, undoable: bool = True) -> BakeReport:
    """Bake every file of ``settings.input_folder`` (or the one file it names).

    Args:
        undoable: one undo transaction per file (the editor); False for unattended bakes.

    Returns:
        The report; a file that fails is listed with its error and the rest still bake. A
        problem that stops every file (no actor, no face rig) is one failed entry.
    """
    import unreal

    install_log_handler()
    report = BakeReport()
    try:
        files = find_baked_files(settings.input_folder)
        if not files:
            raise BakeError(f"{settings.input_folder}: no .json or .txt files")
        ctx = _prepare(settings, undoable)
    except (BakeError, OSError) as e:
        report.results.append(FileResult(settings.input_folder, error=str(e)))
        log.error("EmoFace bake: %s", e)
        return report
    unreal.EditorAssetLibrary.make_directory(settings.output_path)
    ls_names = unique_asset_names(files, LEVEL_SEQUENCE_PREFIX)
    as_names = unique_asset_names(files, ANIM_SEQUENCE_PREFIX)
    with unreal.ScopedSlowTask(len(files), "EmoFace: baking animation") as task:
        task.make_dialog(True)
        for path in files:
            if task.should_cancel():
                report.results.append(FileResult(str(path), error="cancelled"))
                continue
            task.enter_progress_frame(1, f"EmoFace: {path.name}")
            report.results.append(bake_file(path, ctx, ls_names[path], as_names[path]))
    if settings.level_sequence:
        unreal.LevelSequenceEditorBlueprintLibrary.close_level_sequence()
    for line in report.summary().splitlines():
        (log.error if line.startswith("FAILED") else log.info)("%s", line)
    return report


def bake_file(path: Path, ctx: _Context, ls_name: str, as_name: str) -> FileResult:
    """Bake one file; any failure is recorded in the result, never raised."""
    import unreal

    result = FileResult(str(path))
    settings = ctx.settings
    try:
        clip = load_clip(path, txt_fps=settings.txt_fps)
        transaction = (
            unreal.ScopedEditorTransaction(f"EmoFace bake {path.name}")
            if ctx.undoable
            else contextlib.nullcontext()
        )
        with transaction:
            if settings.level_sequence:
                bake_level_sequence(clip, ls_name, ctx, result)
            if settings.anim_sequence:
                bake_anim_sequence(clip, as_name, ctx, result)
    except (BakedFileError, DataFileError, scene.SceneError, BakeError) as e:
        result.error = str(e)
    except Exception as e:
        log.debug("EmoFace bake: %s", path, exc_info=True)
        result.error = f"{type(e).__name__}: {e}"
    for warning in result.warnings:
        log.warning("EmoFace bake: %s: %s", path.name, warning)
    return result


_KEEP = object()  # _existing(): the asset exists and is kept


def _existing(asset_path: str, asset_class: Any, replace: bool, result: FileResult) -> Any:
    """The asset to refill (``replace``), None when the path is free, or ``_KEEP``.

    Loaded by path, not looked up with ``does_asset_exist``: that asks the asset registry,
    which a commandlet may not have filled yet.
    """
    import unreal

    asset = unreal.EditorAssetLibrary.load_asset(asset_path)
    if asset is None:
        return None
    if not replace:
        result.skipped.append(asset_path)
        return _KEEP
    if not isinstance(asset, asset_class):
        raise BakeError(
            f"{asset_path} exists and is a {type(asset).__name__}, not a {asset_class.__name__}; "
            "rename it or bake to another folder"
        )
    return asset


def bake_level_sequence(clip: BakedClip, name: str, ctx: _Context, result: FileResult) -> Any:
    """Level Sequence with the MetaHuman bound and its face board keyed; None when kept."""
    import unreal

    settings = ctx.settings
    asset_path = f"{settings.output_path}/{name}"
    sequence = _existing(asset_path, unreal.LevelSequence, settings.replace_existing, result)
    if sequence is _KEEP:
        return None
    if sequence is None:
        sequence = rig.create_sequence(name, settings.output_path)
    else:
        rig.clear_sequence(sequence)  # replace: refill the same asset
    sequence.set_display_rate(frame_rate(clip.fps))
    sequence.set_playback_start(0)
    sequence.set_playback_end(clip.n_frames)
    rig.open_in_sequencer(sequence)
    binding = rig.bind_face(sequence, ctx.actor, ctx.rig_class)
    assert ctx.faceboard is not None
    signs = {(JAW, "Y"): -1.0} if settings.flip_jaw_y else None
    keys = control_keys(clip, ctx.faceboard, rig.rig_controls(binding.rig), signs=signs)
    if keys.unresolved:
        result.warnings.append(
            f"{len(keys.unresolved)} target(s) have no control on the face rig: "
            + ", ".join(keys.unresolved)
        )
    key_controls(binding, keys, settings.key_strategy, result)
    if clip.head:
        result.warnings.append(
            "the head motion is baked into the AnimSequence only (HeadYaw/HeadPitch/HeadRoll "
            "curves, as MetaHuman Animator exports it); this Level Sequence keys the face board, "
            "not the body's head"
        )
    sound_path = find_audio(Path(clip.path), settings.audio_folder, clip.metadata)
    if sound_path is not None:
        sound = audio.import_sound(
            str(sound_path), folder=f"{settings.output_path}/Audio", save=True
        )
        section = compat.add_audio_track(sequence).add_section()
        section.set_sound(sound)
        section.set_range(0, clip.n_frames)
    elif settings.audio_folder:  # asked for audio and found none; without a folder it is optional
        result.warnings.append(
            f"no audio named {Path(clip.path).stem}.wav (or .flac/.ogg...) in "
            f"{settings.audio_folder} or beside the file"
        )
    unreal.EditorAssetLibrary.save_loaded_asset(sequence, only_if_is_dirty=False)
    result.created.append(asset_path)
    return sequence


def expected_channels(keys: ControlKeys) -> dict[str, list[float]]:
    """Sequencer channel name -> keyed values: ``CTRL_x`` for floats, ``CTRL_x.X``/``.Y`` for 2D."""
    out = dict(keys.floats)
    for control, (xs, ys) in keys.vectors.items():
        out[f"{control}.X"] = xs
        out[f"{control}.Y"] = ys
    return out


def key_controls(
    binding: rig.FaceBinding, keys: ControlKeys, strategy: str, result: FileResult
) -> None:
    """Key every control: batch rig calls, channels, or both (see the module docstring)."""
    import unreal

    unit = compat.display_rate_unit()
    frames = [unreal.FrameNumber(i) for i in range(keys.n_frames)]
    expected = expected_channels(keys)
    if strategy in ("auto", "rig"):
        lib = unreal.ControlRigSequencerLibrary
        for control, values in keys.floats.items():
            lib.set_local_control_rig_floats(
                binding.sequence, binding.rig, control, frames, values, time_unit=unit
            )
        for control, (xs, ys) in keys.vectors.items():
            points = [unreal.Vector2D(x, y) for x, y in zip(xs, ys)]
            lib.set_local_control_rig_vector2_ds(
                binding.sequence, binding.rig, control, frames, points, time_unit=unit
            )
    if strategy == "rig":
        return
    wrong = (
        expected
        if strategy == "channels"
        else {
            name: values
            for name, values in expected.items()
            if not channel_holds(rig.find_channel(binding.section, name), values, unit)
        }
    )
    missing = []
    for name, values in wrong.items():
        channel = rig.find_channel(binding.section, name)
        if channel is None:
            missing.append(name)
            continue
        key_channel(channel, values, unit)
    if strategy == "auto" and wrong:
        result.warnings.append(
            f"{len(wrong) - len(missing)} channel(s) re-keyed directly because the "
            f"rig's batch keys did not hold: {', '.join(sorted(wrong)[:8])}"
            + (" ..." if len(wrong) > 8 else "")
        )
    if missing:
        result.warnings.append(
            f"{len(missing)} channel(s) not found on the face rig section: " + ", ".join(missing)
        )


def channel_holds(channel: Any, values: list[float], unit: Any) -> bool:
    """Whether a channel has one key per frame with the expected values (sampled)."""
    if channel is None or channel.get_num_keys() != len(values):
        return False
    n = len(values)
    indices = sorted(
        {round(i * (n - 1) / max(N_VERIFY_SAMPLES - 1, 1)) for i in range(N_VERIFY_SAMPLES)}
    )
    for index, key in zip(indices, channel.get_keys_by_index(indices)):
        frame = key.get_time(time_unit=unit).frame_number.value
        if frame != index or abs(key.get_value() - values[index]) > VERIFY_TOLERANCE:
            return False
    return True


def key_channel(channel: Any, values: list[float], unit: Any) -> None:
    """Replace a channel's keys with one key per frame: one ``add_key`` call per key."""
    import unreal

    for key in list(channel.get_keys()):
        channel.remove_key(key)
    frame = unreal.FrameNumber
    for i, value in enumerate(values):
        channel.add_key(frame(i), value, time_unit=unit)


def bake_anim_sequence(clip: BakedClip, name: str, ctx: _Context, result: FileResult) -> Any:
    """AnimSequence on the face skeleton with one ``CTRL_expressions_*`` curve per target."""
    import unreal

    settings = ctx.settings
    asset_path = f"{settings.output_path}/{name}"
    anim = _existing(asset_path, unreal.AnimSequence, settings.replace_existing, result)
    if anim is _KEEP:
        return None
    assert ctx.curves is not None
    keys = curve_keys(clip, ctx.curves)
    head, why_not = head_curve_keys(clip, scene.skeleton_curve_names(ctx.skeleton))
    if why_not:
        result.warnings.append(why_not)
    curves = {**keys.curves, **head}
    if anim is None:
        factory = unreal.AnimSequenceFactory()
        factory.set_editor_property("target_skeleton", ctx.skeleton)
        anim = unreal.AssetToolsHelpers.get_asset_tools().create_asset(
            name, settings.output_path, unreal.AnimSequence, factory
        )
        if anim is None:
            raise BakeError(f"could not create AnimSequence {asset_path}")
    controller = anim.get_editor_property("controller")
    # AnimDataController OpenBracket(bShouldTransact): one transaction for the whole bracket,
    # which the changes inside join. Opened even unattended: without it, add_float_curve_keys
    # makes one transaction per key (SetCurveKey per key, AnimationBlueprintLibrary.cpp).
    controller.open_bracket("EmoFace bake", should_transact=True)
    try:
        library = unreal.AnimationLibrary
        library.remove_all_curve_data(anim)  # a replaced asset starts empty
        controller.set_frame_rate(frame_rate(clip.fps), should_transact=True)
        controller.set_number_of_frames(
            unreal.FrameNumber(max(clip.n_frames - 1, 1)), should_transact=True
        )
        for curve, values in curves.items():
            library.add_curve(anim, curve, unreal.RawCurveTrackTypes.RCT_FLOAT, False)
            library.add_float_curve_keys(anim, curve, keys.times_s, values)
    finally:
        controller.close_bracket(should_transact=True)
    unreal.EditorAssetLibrary.save_loaded_asset(anim, only_if_is_dirty=False)
    result.created.append(asset_path)
    return anim
