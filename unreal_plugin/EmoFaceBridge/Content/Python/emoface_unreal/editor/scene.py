"""Find things in the level and the project: MetaHuman actors, their face, the face board rig."""

from __future__ import annotations

from typing import Any

from emoface_unreal.editor import compat

FACE_COMPONENT = "Face"  # the face mesh component of every MetaHuman blueprint
# The face board control rig: Quixel/Bridge MetaHumans, then MetaHuman Creator in-engine (5.6+).
FACE_RIG_PATHS = (
    "/Game/MetaHumans/Common/Face/Face_ControlBoard_CtrlRig",
    "/MetaHumanCharacter/Face/Face_ControlBoard_CtrlRig",
)


class SceneError(RuntimeError):
    """Something the user must fix in the level or project (the message says what)."""


def editor_world() -> Any:
    """The editor's world (not a play-in-editor one)."""
    import unreal

    return unreal.get_editor_subsystem(unreal.UnrealEditorSubsystem).get_editor_world()


def find_actor(label: str) -> Any:
    """The level actor with this label, or the one selected actor when ``label`` is empty.

    Raises:
        SceneError: no such actor, or not exactly one actor selected.
    """
    import unreal

    actors_sub = unreal.get_editor_subsystem(unreal.EditorActorSubsystem)
    if not label:
        selected = list(actors_sub.get_selected_level_actors())
        if len(selected) != 1:
            raise SceneError(
                f"select exactly one MetaHuman in the level (selected: {len(selected)}), "
                "or type its label in the EmoFace settings"
            )
        return selected[0]
    actors = list(actors_sub.get_all_level_actors())
    matches = [a for a in actors if a.get_actor_label() == label]
    if not matches:
        close = sorted(
            a.get_actor_label() for a in actors if label.lower() in a.get_actor_label().lower()
        )
        hint = f"; similar: {', '.join(close[:5])}" if close else ""
        raise SceneError(f"no actor labelled {label!r} in the open level{hint}")
    return matches[0]


def face_component(actor: Any) -> Any:
    """The MetaHuman's face skeletal mesh component (named "Face").

    Raises:
        SceneError: the actor has no such component (not a MetaHuman?).
    """
    import unreal

    components = list(actor.get_components_by_class(unreal.SkeletalMeshComponent))
    for component in components:
        if str(component.get_fname()) == FACE_COMPONENT:
            return component
    for component in components:  # a renamed component whose mesh is a face mesh
        mesh = compat.skeletal_mesh_of(component)
        if mesh is not None and "face" in mesh.get_name().lower():
            return component
    names = ", ".join(str(c.get_fname()) for c in components) or "none"
    raise SceneError(
        f"{actor.get_actor_label()}: no face mesh component named {FACE_COMPONENT!r} "
        f"(skeletal mesh components: {names}); is it a MetaHuman?"
    )


def load_face_rig_class(asset_path: str = "") -> Any:
    """The face board control rig class, from ``asset_path`` or the standard MetaHuman locations.

    Raises:
        SceneError: none of the paths holds a control rig blueprint.
    """
    import unreal

    paths = (asset_path,) if asset_path else FACE_RIG_PATHS
    for path in paths:
        if not unreal.EditorAssetLibrary.does_asset_exist(path):
            continue
        asset = unreal.EditorAssetLibrary.load_asset(path)
        if asset is not None and hasattr(asset, "get_control_rig_class"):
            return asset.get_control_rig_class()
    raise SceneError(
        f"face control rig not found at {', '.join(paths)}; add a MetaHuman to the project "
        "or set the face rig asset in the EmoFace settings"
    )


def face_skeleton(actor: Any) -> Any:
    """The skeleton of a MetaHuman's face mesh (AnimSequences are made for it).

    Raises:
        SceneError: the face has no mesh.
    """
    mesh = compat.skeletal_mesh_of(face_component(actor))
    if mesh is None:
        raise SceneError(f"{actor.get_actor_label()}: the face component has no skeletal mesh")
    return mesh.get_editor_property("skeleton")


def load_skeleton(asset_path: str) -> Any:
    """A skeleton asset by path.

    Raises:
        SceneError: missing or not a skeleton.
    """
    import unreal

    asset = (
        unreal.EditorAssetLibrary.load_asset(asset_path)
        if unreal.EditorAssetLibrary.does_asset_exist(asset_path)
        else None
    )
    if asset is None or not isinstance(asset, unreal.Skeleton):
        raise SceneError(f"{asset_path}: not a skeleton asset")
    return asset
