"""Calls whose Python form changed between Unreal 5.4 and 5.6 (or earlier), probed at run time.

Every name used here exists in the 5.6 API (checked against the ``unreal-stub`` 5.6 index by the
tests); the fallbacks name older spellings and are only reached on older editors.
"""

from __future__ import annotations

from typing import Any

# Older spellings reached only through the guards below (absent from the 5.6 API); the tests
# check that no other module uses them.
LEGACY_NAMES = ("SequenceTimeUnit", "add_master_track")


def display_rate_unit() -> Any:
    """``MovieSceneTimeUnit.DISPLAY_RATE`` (5.4+), else the 5.0-5.3 ``SequenceTimeUnit`` one."""
    import unreal

    enum = getattr(unreal, "MovieSceneTimeUnit", None) or unreal.SequenceTimeUnit
    return enum.DISPLAY_RATE


def engine_version() -> str:
    """The running engine's version string, e.g. ``5.6.0-43139311+++UE5+Release-5.6``."""
    import unreal

    try:
        return str(unreal.SystemLibrary.get_engine_version())
    except Exception:  # noqa: BLE001 - only used in messages
        return "unknown"


def skeletal_mesh_of(component: Any) -> Any:
    """A component's skeletal mesh (``get_skeletal_mesh_asset`` since 5.1, the property before)."""
    if hasattr(component, "get_skeletal_mesh_asset"):
        return component.get_skeletal_mesh_asset()
    return component.get_editor_property("skeletal_mesh")


def find_or_create_control_rig_track(
    world: Any, sequence: Any, rig_class: Any, binding: Any
) -> Any:
    """A non-layered control rig track on a binding (5.0-5.3 lack ``is_layered_control_rig``)."""
    import unreal

    lib = unreal.ControlRigSequencerLibrary
    try:
        return lib.find_or_create_control_rig_track(
            world, sequence, rig_class, binding, is_layered_control_rig=False
        )
    except TypeError:
        return lib.find_or_create_control_rig_track(world, sequence, rig_class, binding)


def set_playhead(frame: int) -> None:
    """Move the open Sequencer to a display-rate frame; on the frame it is on already, this is
    how a script forces one evaluation.

    LevelSequenceEditorBlueprintLibrary.cpp (5.4-5.6) ``SetGlobalPosition``: the same frame ->
    ``Sequencer->ForceEvaluate()``, another one -> ``SetGlobalTime`` (which evaluates there).
    ``force_update`` would also evaluate, but through ``NotifyMovieSceneDataChanged(
    RefreshAllImmediately)``, which rebuilds Sequencer's tree as well: too much once per tick.
    """
    import unreal

    lib = unreal.LevelSequenceEditorBlueprintLibrary
    if hasattr(lib, "set_global_position") and hasattr(unreal, "MovieSceneSequencePlaybackParams"):
        params = unreal.MovieSceneSequencePlaybackParams(
            frame=unreal.FrameTime(unreal.FrameNumber(frame)),
            update_method=unreal.UpdatePositionMethod.SCRUB,
        )
        lib.set_global_position(params, time_unit=display_rate_unit())
    else:  # 5.0-5.3
        lib.set_current_time(frame)


def add_audio_track(sequence: Any) -> Any:
    """A new audio track on a sequence (``add_track`` since 5.2, ``add_master_track`` before)."""
    import unreal

    if hasattr(sequence, "add_track"):
        return sequence.add_track(unreal.MovieSceneAudioTrack)
    return sequence.add_master_track(unreal.MovieSceneAudioTrack)


def force_evaluation(frame: int = 0) -> None:
    """One Sequencer evaluation of the open sequence at ``frame`` (see ``set_playhead``)."""
    import unreal

    lib = unreal.LevelSequenceEditorBlueprintLibrary
    if hasattr(lib, "set_global_position") or hasattr(lib, "set_current_time"):
        set_playhead(frame)
    elif hasattr(lib, "force_update"):
        lib.force_update()


def default_animating_rig(mesh: Any) -> Any:
    """A skeletal mesh's Default Animating Rig (the rig Sequencer picks for it), or None."""
    try:
        return mesh.get_editor_property("default_animating_rig")
    except Exception:  # noqa: BLE001 - older meshes/editors without the property
        return getattr(mesh, "default_animating_rig", None)
