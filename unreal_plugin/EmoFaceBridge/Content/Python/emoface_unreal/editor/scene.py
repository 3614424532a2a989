"""Find things in the level and the project: MetaHuman actors, their face, the face board rig."""

from __future__ import annotations

from typing import Any

from emoface_unreal.editor import compat

FACE_COMPONENT = "Face"  # the face mesh component of every MetaHuman blueprint
JAW_JOINT = "FACIAL_C_Jaw"  # the MetaHuman face skeleton's jaw joint
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


def _rig_class_of(asset: Any) -> Any:
    if asset is not None and hasattr(asset, "get_control_rig_class"):
        return asset.get_control_rig_class()
    return None


def load_face_rig_class(asset_path: str = "", face: Any = None) -> Any:
    """The face board control rig class.

    In this order: ``asset_path`` (the settings), the face mesh's Default Animating Rig (set on
    MetaHuman faces, including MetaHuman Creator characters in 5.6), then the standard
    MetaHuman locations. Assets are loaded by path, so this works before the asset registry
    has finished scanning (a headless editor).

    Raises:
        SceneError: none of them is a control rig blueprint.
    """
    import unreal

    tried = []
    if asset_path:
        tried.append(asset_path)
        found = _rig_class_of(unreal.EditorAssetLibrary.load_asset(asset_path))
        if found is not None:
            return found
    if face is not None:
        mesh = compat.skeletal_mesh_of(face)
        if mesh is not None:
            rig = compat.default_animating_rig(mesh)
            tried.append(f"{mesh.get_name()}'s Default Animating Rig")
            found = _rig_class_of(rig)
            if found is not None:
                return found
    for path in FACE_RIG_PATHS:
        tried.append(path)
        found = _rig_class_of(unreal.EditorAssetLibrary.load_asset(path))
        if found is not None:
            return found
    raise SceneError(
        f"face control rig not found (tried {', '.join(tried)}); add a MetaHuman to the "
        "project or set the face rig asset in the EmoFace settings"
    )


def jaw_transform(face: Any) -> Any:
    """The face mesh's jaw joint in component space: what the viewer sees of the jaw."""
    import unreal

    return face.get_bone_transform(JAW_JOINT, unreal.RelativeTransformSpace.RTS_COMPONENT)


def transform_delta(a: Any, b: Any) -> tuple[float, float]:
    """``(degrees, cm)`` between two transforms: rotation angle and translation distance."""
    import math

    degrees = math.degrees(a.rotation.angular_distance(b.rotation))
    ta, tb = a.translation, b.translation
    cm = math.sqrt((ta.x - tb.x) ** 2 + (ta.y - tb.y) ** 2 + (ta.z - tb.z) ** 2)
    return degrees, cm


def wait_for_asset_registry() -> None:
    """Block until the asset registry has discovered the project's assets (a commandlet starts
    before its scan ends, and ``does_asset_exist`` is False for what it has not seen yet)."""
    import unreal

    unreal.AssetRegistryHelpers.get_asset_registry().wait_for_completion()


def face_skeleton(actor: Any) -> Any:
    """The skeleton of a MetaHuman's face mesh (AnimSequences are made for it).

    Raises:
        SceneError: the face has no mesh.
    """
    mesh = compat.skeletal_mesh_of(face_component(actor))
    if mesh is None:
        raise SceneError(f"{actor.get_actor_label()}: the face component has no skeletal mesh")
    return mesh.get_editor_property("skeleton")


def skeleton_curve_names(skeleton: Any) -> set[str]:
    """Names of the curves with metadata on a skeleton (what its AnimBP knows of)."""
    import unreal

    subsystem = unreal.SkeletalMeshEditorSubsystem
    everything = unreal.SkelSubSysQueryCurvesMetatdataNamesFilter.ALL
    return {
        str(name) for name in subsystem.get_skeleton_curve_meta_data_names(skeleton, everything)
    }


def load_skeleton(asset_path: str) -> Any:
    """A skeleton asset by path.

    Raises:
        SceneError: missing or not a skeleton.
    """
    import unreal

    asset = unreal.EditorAssetLibrary.load_asset(asset_path)  # by path: no registry needed
    if asset is None or not isinstance(asset, unreal.Skeleton):
        raise SceneError(f"{asset_path}: not a skeleton asset")
    return asset
