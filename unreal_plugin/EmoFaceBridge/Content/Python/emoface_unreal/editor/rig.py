"""Bind a MetaHuman's face control rig in a Level Sequence and read what controls it has."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emoface_unreal.controls import FLOAT, OTHER, VECTOR2D
from emoface_unreal.editor import compat, scene


@dataclass
class FaceBinding:
    """A MetaHuman's face rig inside a Level Sequence.

    Attributes:
        actor: the MetaHuman actor.
        face: its face skeletal mesh component.
        sequence: the Level Sequence.
        face_binding: the face component's binding proxy.
        track: the control rig track on the face.
        rig: the control rig instance Sequencer evaluates.
        section: the track's section that takes keys.
    """

    actor: Any
    face: Any
    sequence: Any
    face_binding: Any
    track: Any
    rig: Any
    section: Any


def create_sequence(name: str, folder: str) -> Any:
    """A new Level Sequence asset (the caller has made sure the name is free)."""
    import unreal

    unreal.EditorAssetLibrary.make_directory(folder)
    tools = unreal.AssetToolsHelpers.get_asset_tools()
    sequence = tools.create_asset(
        name, folder, unreal.LevelSequence, unreal.LevelSequenceFactoryNew()
    )
    if sequence is None:
        raise scene.SceneError(f"could not create Level Sequence {folder}/{name}")
    return sequence


def open_in_sequencer(sequence: Any) -> None:
    """Open ``sequence`` in Sequencer and make sure it is the current one.

    Adding a control rig track while no sequence is current dereferences null inside the
    engine (ControlRigSequencerEditorLibrary.cpp, AddControlRig -> GetSequencerFromAsset logs
    the current sequence's path): an editor crash. So this is checked before any track is made.

    Raises:
        SceneError: Sequencer did not open it.
    """
    import unreal

    lib = unreal.LevelSequenceEditorBlueprintLibrary
    if not lib.open_level_sequence(sequence) or lib.get_current_level_sequence() != sequence:
        raise scene.SceneError(
            f"Sequencer did not open {sequence.get_name()}; close other sequence editors "
            "and try again"
        )


def clear_sequence(sequence: Any) -> None:
    """Remove every binding and track, so an existing sequence can be filled again (reused or
    replaced) instead of deleted: deleting an asset closes every asset editor and may clear the
    undo history (EditorAssetLibrary.delete_asset)."""
    for binding in list(sequence.get_bindings()):
        binding.remove()
    for track in list(sequence.get_tracks()):
        sequence.remove_track(track)


def bind_face(sequence: Any, actor: Any, rig_class: Any) -> FaceBinding:
    """Possess the actor and its face in ``sequence`` and add the face board track.

    The sequence must be the current one in Sequencer (``open_in_sequencer``): the rig instance
    exists only there, and adding the track otherwise crashes the editor.

    Raises:
        SceneError: no face component, the sequence is not current, or Sequencer did not
            create the rig.
    """
    import unreal

    if unreal.LevelSequenceEditorBlueprintLibrary.get_current_level_sequence() != sequence:
        raise scene.SceneError(
            f"{sequence.get_name()} is not the sequence open in Sequencer; not adding a control "
            "rig track (it would crash the editor)"
        )
    face = scene.face_component(actor)
    actor_binding = sequence.add_possessable(actor)
    face_binding = sequence.add_possessable(face)
    face_binding.set_parent(actor_binding)
    track = compat.find_or_create_control_rig_track(
        scene.editor_world(), sequence, rig_class, face_binding
    )
    if track is None:
        raise scene.SceneError(
            f"{actor.get_actor_label()}: Sequencer did not add a control rig track"
        )
    rig = None
    for proxy in unreal.ControlRigSequencerLibrary.get_control_rigs(sequence):
        if proxy.track == track:
            rig = proxy.control_rig
    if rig is None:
        raise scene.SceneError(
            f"{actor.get_actor_label()}: no control rig instance for the face track "
            "(is the Level Sequence open in Sequencer?)"
        )
    section = track.get_section_to_key()
    if section is None:
        sections = list(track.get_sections())
        section = sections[0] if sections else track.add_section()
    return FaceBinding(actor, face, sequence, face_binding, track, rig, section)


def find_channel(section: Any, name: str) -> Any:
    """A section's scripting channel by name (``CTRL_C_jaw.Y``), or None."""
    channel = section.get_channel(name)
    if channel is not None:
        return channel
    for candidate in section.get_all_channels():
        if str(candidate.get_editor_property("channel_name")) == name:
            return candidate
    return None


def rig_controls(rig: Any) -> dict[str, str]:
    """The rig's controls: name -> ``FLOAT`` | ``VECTOR2D`` | ``OTHER``."""
    import unreal

    kinds = {unreal.RigControlType.FLOAT: FLOAT, unreal.RigControlType.VECTOR2D: VECTOR2D}
    hierarchy = rig.get_hierarchy()
    out = {}
    for key in hierarchy.get_controls():
        element = hierarchy.find_control(key)
        control_type = element.get_editor_property("settings").get_editor_property("control_type")
        out[str(key.get_editor_property("name"))] = kinds.get(control_type, OTHER)
    return out


def read_rig_curve(rig: Any, name: str) -> float | None:
    """A curve value the rig computed (the face board writes ``CTRL_expressions_*``), or None."""
    import unreal

    hierarchy = rig.get_hierarchy()
    key = unreal.RigElementKey(type=unreal.RigElementType.CURVE, name=name)
    try:
        return float(hierarchy.get_curve_value(key))
    except Exception:  # noqa: BLE001 - an absent curve is "unreadable", not an error
        return None
