"""A behavioural fake of Unreal Editor's ``unreal`` module, to run the plugin outside the editor.

It defines only the names the plugin uses, with the parameter names of the UE 5.6 Python API:
``tests/test_unreal_api.py`` checks every public class, method, property and enum member here
against the index extracted from the ``unreal-stub`` 5.6 package, so a call the plugin makes
through this fake is a call that exists in Unreal. Unlike the stub (``pass`` bodies) it behaves:

* a level with MetaHuman actors (``fake_add_metahuman``), assets by path, a content browser;
* Level Sequences with possessables, a face control rig track whose section has one channel per
  control (``CTRL_x`` floats, ``CTRL_x.X``/``.Y`` for 2D), keyed by the ControlRigSequencerLibrary
  setters only while the sequence is open in Sequencer, as in the editor;
* a face board rig: a hierarchy of float and Vector2D controls (pre-MH4 or MH4 names) whose
  ``CTRL_expressions_jawOpen`` curve follows the jaw (with a configurable sign);
* AnimSequences with float curves, sound import and playback, ToolMenus, dialogs, Slate tick
  and shutdown callbacks, and the Output Log.

What each call does is modelled on the engine's own code (UE 5.6 source, cited beside each
behaviour), not on what would be convenient: a fake kinder than the editor would hide bugs.

* **Sequencer keying path.** ``ControlRigSequencerLibrary.set_local_control_rig_*`` set the rig
  instance's value, then go through Sequencer's interactive keying: one undo transaction per
  call, an interrogation of the section, keys only with Auto Key on (or ``set_key=True``),
  channel defaults only with Auto Set Track Defaults on, and when nothing was keyed Sequencer
  suppresses its re-evaluation. The batch setters loop the same path once per frame.
* **Evaluation.** Only a Sequencer evaluation writes channel values (keys at the playhead, else
  channel defaults) into the rig; the face mesh shows the rig's pose from the next editor tick on
  (``fake_tick``), through its jaw joint (``get_bone_transform("FACIAL_C_Jaw")``). Evaluations
  happen on ``set_global_position`` (the same frame: ``ForceEvaluate``), ``force_update``, and on
  a tick after keys changed.
* **Undo and dirty packages.** Transactions nest (an inner one joins the outer), ``delete_asset``
  closes every asset editor and clears the undo history, every ``Modify`` (channel defaults,
  keys) dirties the asset's package until it is saved; ``fake_restart_editor`` drops what was
  never saved.
* **Headless and devices.** ``spawn_sound2d`` returns None without an audio device,
  ``open_level_sequence`` can fail, the asset registry can still be scanning, ticks can be
  throttled (an editor in the background).

Everything the plugin does is appended to ``fake_state().calls``. Test helpers start with
``fake_``; names starting with ``_`` are internal. Install it with ``fake_install(monkeypatch)``.
"""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PLUGIN_PYTHON = (
    Path(__file__).resolve().parent.parent
    / "unreal_plugin"
    / "EmoFaceBridge"
    / "Content"
    / "Python"
)


def fake_plugin_on_path() -> None:
    """Make the plugin's package (``emoface_unreal``) importable, as the editor does."""
    if str(PLUGIN_PYTHON) not in sys.path:
        sys.path.insert(0, str(PLUGIN_PYTHON))


# Face board layout (the EmoFace channel list is the pre-MH4 board; see the shared reference 2.5)

_BOARD_2D = (
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
)
_ABSENT_IN_UE = (
    "CTRL_neckCorrectivesMultiplyerU",
    "CTRL_neckCorrectivesMultiplyerM",
    "CTRL_neckCorrectivesMultiplyerD",
)
_MH4_RENAMES = {
    "CTRL_C_tongue": "CTRL_C_tongue_move",
    "CTRL_C_tongue_tip": "CTRL_C_tongue_tipMove",
    "CTRL_C_tongue_roll": "CTRL_C_tongue_bendTwist",
    "CTRL_C_tongue_narrowWide": "CTRL_C_tongue_wideNarrow",
}
_TRANSFORM_CONTROLS = (
    "CTRL_faceGUI",
    "CTRL_C_headGUI",
    "CTRL_eyesAimFollowHead",
    "LOC_C_eyeDriver",
    "LOC_L_eyeDriver",
    "LOC_R_eyeDriver",
)


def fake_board_controls(
    channel_names: list[str] | tuple[str, ...], mh4: bool = False
) -> dict[str, str]:
    """The face board's controls for a channel list: name -> "FLOAT" | "VECTOR2D" | "OTHER"."""
    out: dict[str, str] = {}
    for channel in channel_names:
        control = channel.rsplit("-", 1)[0]
        if control in _ABSENT_IN_UE:
            continue
        out[control] = "VECTOR2D" if control in _BOARD_2D else "FLOAT"
    if mh4:
        for old, new in _MH4_RENAMES.items():
            out[new] = out.pop(old)
        out["CTRL_C_tongue_roll"] = "FLOAT"  # MH4's new 1-D control of the same name
        out["CTRL_C_tongue_thickThin"] = "FLOAT"
        out["CTRL_L_mouth_thicknessInwardU"] = "FLOAT"
    for name in _TRANSFORM_CONTROLS:
        out[name] = "OTHER"
    return out


# Shared state


@dataclass
class _State:
    calls: list[tuple[str, tuple, dict]] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    tick_callbacks: dict[int, Any] = field(default_factory=dict)
    shutdown_callbacks: dict[int, Any] = field(default_factory=dict)
    assets: dict[str, Any] = field(default_factory=dict)
    saved: list[str] = field(default_factory=list)
    actors: list[Any] = field(default_factory=list)
    selected: list[Any] = field(default_factory=list)
    levels: set[str] = field(default_factory=set)
    menus: dict[str, Any] = field(default_factory=dict)
    messages: list[tuple[str, str]] = field(default_factory=list)
    dialog_handler: Any = None  # fn(title, obj) -> bool; default: OK without edits
    open_sequence: Any = None
    sounds: list[Any] = field(default_factory=list)
    saved_dir: str = ""
    vector2_ds_keys_zero: bool = False  # simulate the reported Vector2D batch-keying bug
    cancel_after: int | None = None  # ScopedSlowTask.should_cancel() after this many frames
    progress: list[str] = field(default_factory=list)
    quit_requested: bool = False
    # The one Sequencer of the open Level Sequence (None when none is open).
    sequencer: Any = None
    pending_poses: dict[int, Any] = field(default_factory=dict)
    undo: list[str] = field(default_factory=list)  # committed undo transactions, oldest first
    transaction_depth: int = 0
    transaction_title: str = ""
    transaction_cancelled: bool = False
    dirty: set[str] = field(default_factory=set)  # packages modified since they were saved
    ever_saved: set[str] = field(default_factory=set)
    n_evaluations: int = 0
    n_interrogations: int = 0  # section interrogations by the interactive keying path
    n_keyings: int = 0  # keys set through the interactive keying path
    n_channel_keys: int = 0  # MovieSceneScriptingFloatChannel.add_key calls
    n_ticks: int = 0
    throttle_every: int = 1  # fake_background(): Slate ticks the editor only every n-th frame
    audio_device: bool = True  # False: -nosound / a headless editor (spawn_sound2d -> None)
    open_fails: bool = False  # open_level_sequence fails (returns False)
    registry_scanning: bool = False  # does_asset_exist is False until the scan completes
    crashes: list[str] = field(default_factory=list)
    on_disk: set[str] = field(default_factory=set)  # project assets found by a registry scan


_STATE = _State()
_HANDLES = itertools.count(1)


def fake_state() -> _State:
    """The fake editor's state (calls, assets, actors, log...)."""
    return _STATE


def fake_reset(saved_dir: str = "") -> _State:
    """Start from an empty editor (the standard menus exist)."""
    global _STATE
    _STATE = _State(saved_dir=saved_dir)
    ToolMenus._instance = None
    _STATE.menus["LevelEditor.MainMenu"] = ToolMenu("LevelEditor.MainMenu")
    return _STATE


def _record(name: str, *args: Any, **kwargs: Any) -> None:
    _STATE.calls.append((name, args, kwargs))


def fake_calls(name: str) -> list[tuple[tuple, dict]]:
    """Recorded calls of one API, e.g. ``"AnimationLibrary.add_float_curve_keys"``."""
    return [(a, k) for n, a, k in _STATE.calls if n == name]


def fake_tick(delta_s: float = 1 / 60, n: int = 1) -> None:
    """``n`` editor frames: components pick up the last evaluated pose (the world tick), the
    Sequencer re-evaluates when keys changed, then the Slate post-tick callbacks run.

    A throttled editor (``fake_background``) runs the callbacks only every n-th frame.
    """
    for _ in range(n):
        _STATE.n_ticks += 1
        _apply_pending_poses()
        seq = _STATE.sequencer
        if seq is not None:
            # FSequencer::Tick evaluates when the data changed, unless the last change was
            # only channel defaults set by keying (SuppressAutoEvaluation).
            if seq.needs_evaluation and not seq.suppressed:
                _evaluate("sequencer tick")
            seq.needs_evaluation = seq.suppressed = False
        if _STATE.n_ticks % max(1, _STATE.throttle_every):
            continue
        for callback in list(_STATE.tick_callbacks.values()):
            callback(delta_s * max(1, _STATE.throttle_every))


def fake_background(throttle_every: int = 15) -> None:
    """The editor loses focus with "Use Less CPU when in Background" on: callbacks run only
    every ``throttle_every`` frames (EditorPerformanceSettings.bThrottleCPUWhenNotForeground)."""
    _STATE.throttle_every = throttle_every


def fake_set_sequencer(*, auto_key: bool = False, auto_set_track_defaults: bool = False) -> None:
    """Sequencer's Auto Key / Auto Set Track Defaults (both off by default, as in the editor)."""
    assert _STATE.sequencer is not None, "no Level Sequence is open"
    _STATE.sequencer.auto_key = auto_key
    _STATE.sequencer.auto_set_defaults = auto_set_track_defaults


def fake_restart_editor() -> None:
    """Close and reopen the editor: assets that were created but never saved are gone."""
    for path in [p for p in _STATE.assets if p not in _STATE.ever_saved]:
        del _STATE.assets[path]
    for asset in _STATE.assets.values():
        for track in getattr(asset, "_tracks", []):
            for section in getattr(track, "_sections", []):
                sound = getattr(section, "_sound", None)
                if sound is not None and _normal(sound.get_path_name()) not in _STATE.assets:
                    section._sound = None
    _STATE.dirty.clear()
    _STATE.undo.clear()
    _STATE.open_sequence = _STATE.sequencer = None


# Transactions and packages (Editor/UnrealEd: FScopedTransaction, UTransBuffer)


def _begin_transaction(title: str) -> None:
    if _STATE.transaction_depth == 0:
        _STATE.transaction_title, _STATE.transaction_cancelled = title, False
    _STATE.transaction_depth += 1  # a nested transaction joins the outer one


def _end_transaction() -> None:
    _STATE.transaction_depth -= 1
    if _STATE.transaction_depth == 0 and not _STATE.transaction_cancelled:
        _STATE.undo.append(_STATE.transaction_title)


class _Transaction:
    def __init__(self, title: str) -> None:
        self.title = title

    def __enter__(self) -> _Transaction:
        _begin_transaction(self.title)
        return self

    def __exit__(self, *exc: Any) -> bool:
        _end_transaction()
        return False


def _modify(obj: Any) -> None:
    """``UObject::Modify``: the object's package is dirty until saved (recorded for undo)."""
    path = getattr(obj, "_package", None)
    if path:
        _STATE.dirty.add(path)


def fake_undo_count() -> int:
    """Undo transactions in the editor's history."""
    return len(_STATE.undo)


class ScopedEditorTransaction:
    """``with unreal.ScopedEditorTransaction("desc"):`` one undo entry for everything inside."""

    def __init__(self, desc: str) -> None:
        self._desc = str(desc)

    def __enter__(self) -> ScopedEditorTransaction:
        _record("ScopedEditorTransaction", self._desc)
        _begin_transaction(self._desc)
        return self

    def __exit__(self, type: Any, value: Any, traceback: Any) -> bool:
        _end_transaction()
        return False

    def cancel(self) -> None:
        _STATE.transaction_cancelled = True


def fake_shutdown() -> None:
    """Run the Python shutdown callbacks (the editor closing)."""
    for callback in list(_STATE.shutdown_callbacks.values()):
        callback()


def fake_run_menu_entry(label: str) -> None:
    """Click a menu entry by label: run its Python string command."""
    for menu in _STATE.menus.values():
        for _, entry in menu._entries:
            if entry._label == label:
                exec(entry._command, {})
                return
    raise KeyError(f"no menu entry labelled {label!r}")


# Logging, ticks, shutdown


def log(arg: Any) -> None:
    _STATE.log.append(("info", str(arg)))


def log_warning(arg: Any) -> None:
    _STATE.log.append(("warning", str(arg)))


def log_error(arg: Any) -> None:
    _STATE.log.append(("error", str(arg)))


def register_slate_post_tick_callback(callable: Any) -> object:
    handle = next(_HANDLES)
    _STATE.tick_callbacks[handle] = callable
    _record("register_slate_post_tick_callback", callable)
    return handle


def unregister_slate_post_tick_callback(handle: object) -> None:
    _record("unregister_slate_post_tick_callback", handle)
    if _STATE.tick_callbacks.pop(handle, None) is None:  # type: ignore[call-overload]
        raise ValueError("unknown slate tick handle")


def register_python_shutdown_callback(callable: Any) -> object:
    handle = next(_HANDLES)
    _STATE.shutdown_callbacks[handle] = callable
    return handle


def unregister_python_shutdown_callback(handle: object) -> None:
    _STATE.shutdown_callbacks.pop(handle, None)  # type: ignore[call-overload]


# Base types


class _WrapperBase:
    _props: dict[str, Any] = {}  # editor properties: name -> default

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    @classmethod
    def _all_props(cls) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            out.update(klass.__dict__.get("_props", {}))
        return out


def _get_editor_property(self: Any, name: str) -> Any:
    props = type(self)._all_props()
    if name not in props:
        raise Exception(f"{type(self).__name__}: Failed to find property '{name}'")  # as UE does
    return self._values.get(name, props[name])


def _set_editor_property(self: Any, name: str, value: Any) -> None:
    if name not in type(self)._all_props():
        raise Exception(f"{type(self).__name__}: Failed to find property '{name}'")
    self._values[name] = value


class EnumBase:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self.name}>"


def _enum(cls: type, *names: str) -> None:
    for name in names:
        setattr(cls, name, cls(name))


class StructBase(_WrapperBase):
    get_editor_property = _get_editor_property
    set_editor_property = _set_editor_property


class Object(_WrapperBase):
    get_editor_property = _get_editor_property
    set_editor_property = _set_editor_property

    def __init__(self, outer: Any = None, name: str = "None") -> None:
        super().__init__()
        self._name = name if name != "None" else type(self).__name__
        self._path = ""

    def get_name(self) -> str:
        return self._name

    def get_fname(self) -> str:
        return self._name

    def get_path_name(self) -> str:
        return self._path or f"/Temp/{self._name}.{self._name}"


class Class(Object):
    pass


class Name(str):
    pass


class Text(str):
    pass


# Enums


class RigControlType(EnumBase):
    pass


_enum(
    RigControlType,
    "BOOL",
    "FLOAT",
    "INTEGER",
    "VECTOR2D",
    "POSITION",
    "SCALE",
    "ROTATOR",
    "EULER_TRANSFORM",
    "SCALE_FLOAT",
)


class RigControlValueType(EnumBase):
    pass


_enum(RigControlValueType, "INITIAL", "CURRENT", "MINIMUM", "MAXIMUM")


class RigElementType(EnumBase):
    pass


_enum(RigElementType, "NONE", "BONE", "NULL", "CONTROL", "CURVE")


class MovieSceneTimeUnit(EnumBase):
    pass


_enum(MovieSceneTimeUnit, "DISPLAY_RATE", "TICK_RESOLUTION")


class UpdatePositionMethod(EnumBase):
    pass


_enum(UpdatePositionMethod, "PLAY", "JUMP", "SCRUB")


class MovieScenePositionType(EnumBase):
    pass


_enum(MovieScenePositionType, "FRAME", "TIME")


class RawCurveTrackTypes(EnumBase):
    pass


_enum(RawCurveTrackTypes, "RCT_FLOAT", "RCT_TRANSFORM")


class SkelSubSysQueryCurvesMetatdataNamesFilter(EnumBase):
    pass


_enum(SkelSubSysQueryCurvesMetatdataNamesFilter, "ALL", "MORPH_TARGET_ONLY", "MATERIAL_ONLY")


class MultiBlockType(EnumBase):
    pass


_enum(MultiBlockType, "NONE", "MENU_ENTRY", "TOOL_BAR_BUTTON")


class ToolMenuStringCommandType(EnumBase):
    pass


_enum(ToolMenuStringCommandType, "COMMAND", "PYTHON", "CUSTOM")


class AppMsgType(EnumBase):
    pass


_enum(AppMsgType, "OK", "YES_NO", "OK_CANCEL")


class AppReturnType(EnumBase):
    pass


_enum(AppReturnType, "NO", "YES", "OK", "CANCEL")


class AppMsgCategory(EnumBase):
    pass


_enum(AppMsgCategory, "WARNING", "ERROR", "SUCCESS", "INFO")


# Structs


class FrameNumber(StructBase):
    _props = {"value": 0}

    def __init__(self, value: int = 0) -> None:
        super().__init__()
        if not isinstance(value, int):
            raise TypeError(f"FrameNumber needs an int, got {value!r}")
        self._values["value"] = value

    @property
    def value(self) -> int:
        return self._values["value"]


class FrameRate(StructBase):
    _props = {"numerator": 0, "denominator": 1}

    def __init__(self, numerator: int = 0, denominator: int = 1) -> None:
        super().__init__()
        if not isinstance(numerator, int) or not isinstance(denominator, int) or denominator <= 0:
            raise TypeError(f"FrameRate needs ints, got {numerator!r}/{denominator!r}")
        self._values.update(numerator=numerator, denominator=denominator)

    @property
    def numerator(self) -> int:
        return self._values["numerator"]

    @property
    def denominator(self) -> int:
        return self._values["denominator"]


class FrameTime(StructBase):
    _props = {"frame_number": None, "sub_frame": 0.0}

    def __init__(self, frame_number: FrameNumber | None = None, sub_frame: float = 0.0) -> None:
        super().__init__()
        self._values.update(frame_number=frame_number or FrameNumber(0), sub_frame=sub_frame)

    @property
    def frame_number(self) -> FrameNumber:
        return self._values["frame_number"]


class Vector2D(StructBase):
    _props = {"x": 0.0, "y": 0.0}

    def __init__(self, x: float = 0.0, y: float = 0.0) -> None:
        super().__init__()
        self._values.update(x=float(x), y=float(y))

    @property
    def x(self) -> float:
        return self._values["x"]

    @property
    def y(self) -> float:
        return self._values["y"]


class Vector(StructBase):
    def __init__(self, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> None:
        super().__init__()
        self._xyz = (float(x), float(y), float(z))

    @property
    def x(self) -> float:
        return self._xyz[0]

    @property
    def y(self) -> float:
        return self._xyz[1]

    @property
    def z(self) -> float:
        return self._xyz[2]


class Quat(StructBase):
    def __init__(self, x: float = 0.0, y: float = 0.0, z: float = 0.0, w: float = 1.0) -> None:
        super().__init__()
        self._xyzw = (float(x), float(y), float(z), float(w))

    @property
    def x(self) -> float:
        return self._xyzw[0]

    @property
    def y(self) -> float:
        return self._xyzw[1]

    @property
    def z(self) -> float:
        return self._xyzw[2]

    @property
    def w(self) -> float:
        return self._xyzw[3]

    def angular_distance(self, b: Quat) -> float:
        import math

        dot = abs(sum(p * q for p, q in zip(self._xyzw, b._xyzw)))
        return 2.0 * math.acos(min(1.0, dot))


class Transform(StructBase):
    def __init__(self, location: Any = None, rotation: Any = None, scale: Any = None) -> None:
        super().__init__()
        self._translation = location if isinstance(location, Vector) else Vector()
        self._rotation = Quat()

    @property
    def translation(self) -> Vector:
        return self._translation

    @property
    def rotation(self) -> Quat:
        return self._rotation


class RigElementKey(StructBase):
    _props = {"type": RigElementType.NONE, "name": "None"}

    def __init__(self, type: RigElementType = RigElementType.NONE, name: str = "None") -> None:
        super().__init__()
        self._values.update(type=type, name=name)

    @property
    def name(self) -> str:
        return self._values["name"]

    @property
    def type(self) -> RigElementType:
        return self._values["type"]


class RigControlValue(StructBase):
    def __init__(self) -> None:
        super().__init__()
        self._value: Any = None


class RigControlSettings(StructBase):
    _props = {"control_type": RigControlType.FLOAT}


class RigControlElement(StructBase):
    _props = {"settings": None, "key": None}


class RelativeTransformSpace(EnumBase):
    pass


_enum(RelativeTransformSpace, "RTS_WORLD", "RTS_ACTOR", "RTS_COMPONENT", "RTS_PARENT_BONE_SPACE")


class MovieSceneSequencePlaybackParams(StructBase):
    _props = {"frame": None, "update_method": UpdatePositionMethod.PLAY}

    def __init__(
        self,
        frame: FrameTime | None = None,
        time: float = 0.0,
        marked_frame: str = "",
        timecode: Any = None,
        position_type: Any = MovieScenePositionType.FRAME,
        update_method: Any = UpdatePositionMethod.PLAY,
    ) -> None:
        super().__init__()
        self._values.update(frame=frame or FrameTime(), update_method=update_method)


class DirectoryPath(StructBase):
    _props = {"path": ""}

    def __init__(self, path: str = "") -> None:
        super().__init__()
        self._values["path"] = path


class EditorDialogLibraryObjectDetailsViewOptions(StructBase):
    _props = {
        "show_object_name": False,
        "allow_search": False,
        "allow_resizing": False,
        "min_width": 0,
        "min_height": 0,
        "value_column_width_ratio": 0.0,
    }

    def __init__(
        self,
        show_object_name: bool = False,
        allow_search: bool = False,
        allow_resizing: bool = False,
        min_width: int = 0,
        min_height: int = 0,
        value_column_width_ratio: float = 0.0,
    ) -> None:
        super().__init__()
        self._values.update(
            show_object_name=show_object_name,
            allow_search=allow_search,
            allow_resizing=allow_resizing,
            min_width=min_width,
            min_height=min_height,
            value_column_width_ratio=value_column_width_ratio,
        )


class ToolMenuEntry(StructBase):
    def __init__(
        self, name: str = "None", owner: Any = None, type: Any = MultiBlockType.NONE
    ) -> None:
        super().__init__()
        self._entry_name = name
        self._type = type
        self._label = ""
        self._tool_tip = ""
        self._command = ""

    def set_label(self, label: str) -> None:
        self._label = str(label)

    def set_tool_tip(self, tool_tip: str) -> None:
        self._tool_tip = str(tool_tip)

    def set_string_command(self, type: Any, custom_type: str, string: str) -> None:
        if type is not ToolMenuStringCommandType.PYTHON:
            raise ValueError("the fake runs Python string commands only")
        compile(string, "<menu command>", "exec")  # a syntax error would only show on click
        self._command = string


# Scene: actors, components, meshes, worlds, subsystems


class World(Object):
    pass


class Skeleton(Object):
    def __init__(self, outer: Any = None, name: str = "None") -> None:
        super().__init__(outer, name)
        # Curves with metadata (USkeleton's curve metadata): what ForEachCurveMetaData visits.
        self._curve_meta: dict[str, dict[str, bool]] = {}


class SkeletalMesh(Object):
    _props = {"skeleton": None}

    def __init__(self, outer: Any = None, name: str = "None") -> None:
        super().__init__(outer, name)
        self._animating_rig: Any = None

    @property
    def default_animating_rig(self) -> Any:
        return self._animating_rig


class ActorComponent(Object):
    pass


JAW_JOINT = "FACIAL_C_Jaw"  # the MetaHuman face skeleton's jaw joint
JAW_MAX_DEGREES = 25.0  # the fake jaw opens this far at CTRL_expressions_jawOpen = 1


class SkeletalMeshComponent(ActorComponent):
    _mesh: SkeletalMesh | None = None
    # The pose the component shows, set by the world tick after an evaluation: the jaw opening
    # and the rig's control values it was computed from ({} at rest).
    _jaw_open = 0.0
    _pose: dict[str, Any] = {}

    def get_skeletal_mesh_asset(self) -> SkeletalMesh | None:
        return self._mesh

    def get_bone_transform(self, bone_name: str, transform_space: Any = None) -> Transform:
        """The jaw joint turns with the evaluated jaw opening; other bones (and unknown names,
        as the engine documents: the component's own transform) stay put."""
        import math

        out = Transform()
        if str(bone_name) == JAW_JOINT:
            half = math.radians(JAW_MAX_DEGREES * self._jaw_open) / 2.0
            out._rotation = Quat(0.0, math.sin(half), 0.0, math.cos(half))
        return out


class Actor(Object):
    def __init__(self, outer: Any = None, name: str = "None") -> None:
        super().__init__(outer, name)
        self._label = name
        self._components: list[Any] = []

    def get_actor_label(self, create_if_none: bool = True) -> str:
        return self._label

    def get_components_by_class(self, component_class: Any = None) -> list[Any]:
        return [
            c for c in self._components if component_class is None or isinstance(c, component_class)
        ]


class EditorSubsystem(Object):
    pass


class SkeletalMeshEditorSubsystem(EditorSubsystem):
    @classmethod
    def get_skeleton_curve_meta_data_names(
        cls, target_skeleton: Skeleton | None, filter: SkelSubSysQueryCurvesMetatdataNamesFilter
    ) -> list[str]:
        # SkeletalMeshEditorSubsystem.cpp GetSkeletonCurveMetaDataNames: nothing for a null
        # skeleton; else every curve with metadata, or those flagged morph target / material.
        if target_skeleton is None:
            return []
        out = []
        for name, flags in target_skeleton._curve_meta.items():
            if (
                filter is SkelSubSysQueryCurvesMetatdataNamesFilter.ALL
                or (filter is SkelSubSysQueryCurvesMetatdataNamesFilter.MORPH_TARGET_ONLY
                    and flags.get("morph_target"))
                or (filter is SkelSubSysQueryCurvesMetatdataNamesFilter.MATERIAL_ONLY
                    and flags.get("material"))
            ):  # fmt: skip
                out.append(name)
        return out


class EditorActorSubsystem(EditorSubsystem):
    def get_all_level_actors(self) -> list[Actor]:
        return list(_STATE.actors)

    def get_selected_level_actors(self) -> list[Actor]:
        return list(_STATE.selected)


class UnrealEditorSubsystem(EditorSubsystem):
    _world = World(name="EditorWorld")

    def get_editor_world(self) -> World:
        return self._world


class LevelEditorSubsystem(EditorSubsystem):
    def load_level(self, asset_path: str) -> bool:
        _record("LevelEditorSubsystem.load_level", asset_path)
        return asset_path in _STATE.levels


_SUBSYSTEMS: dict[type, Any] = {}


def get_editor_subsystem(subsystem: type) -> Any:
    if subsystem not in _SUBSYSTEMS:
        _SUBSYSTEMS[subsystem] = subsystem()
    return _SUBSYSTEMS[subsystem]


class Paths(Object):
    @classmethod
    def project_saved_dir(cls) -> str:
        return _STATE.saved_dir


class SystemLibrary(Object):
    @classmethod
    def get_engine_version(cls) -> str:
        return "5.6.0-fake"

    @classmethod
    def quit_editor(cls) -> None:
        _STATE.quit_requested = True


# Control rig


class RigHierarchy(Object):
    def __init__(
        self, controls: dict[str, str], jaw_sign: float = 1.0, evaluates: bool = True
    ) -> None:
        super().__init__(name="RigHierarchy")
        self._types = {
            name: getattr(RigControlType, "EULER_TRANSFORM" if kind == "OTHER" else kind)
            for name, kind in controls.items()
        }
        self._current: dict[str, Any] = {
            n: (0.0, 0.0) if t is RigControlType.VECTOR2D else 0.0 for n, t in self._types.items()
        }
        self._jaw_sign = jaw_sign
        self._evaluates = evaluates

    def get_controls(self, traverse: bool = True) -> list[RigElementKey]:
        return [RigElementKey(type=RigElementType.CONTROL, name=n) for n in self._types]

    def find_control(self, key: RigElementKey) -> RigControlElement:
        settings = RigControlSettings()
        settings.set_editor_property("control_type", self._types[key.name])
        element = RigControlElement()
        element.set_editor_property("settings", settings)
        element.set_editor_property("key", key)
        return element

    @classmethod
    def make_control_value_from_float(cls, value: float) -> RigControlValue:
        out = RigControlValue()
        out._value = float(value)
        return out

    @classmethod
    def make_control_value_from_vector2d(cls, value: Vector2D) -> RigControlValue:
        out = RigControlValue()
        out._value = (value.x, value.y)
        return out

    def set_control_value(
        self,
        key: RigElementKey,
        value: RigControlValue,
        value_type: Any = RigControlValueType.CURRENT,
        setup_undo: bool = False,
    ) -> None:
        _record("RigHierarchy.set_control_value", key.name, value._value)
        self._set(key.name, value._value)

    def get_curve_value(self, key: RigElementKey) -> float:
        if key.type is not RigElementType.CURVE:
            raise ValueError("not a curve key")
        if key.name != "CTRL_expressions_jawOpen":
            raise KeyError(key.name)
        return self._jaw_open()

    def _jaw_open(self) -> float:
        """``CTRL_expressions_jawOpen`` as the face board computes it from the jaw control."""
        if not self._evaluates:
            return 0.0
        y = self._current.get("CTRL_C_jaw", (0.0, 0.0))[1]
        return min(max(self._jaw_sign * y, 0.0), 1.0)

    def _set(self, name: str, value: Any) -> bool:
        kind = self._types.get(name)
        if kind is None:
            return False
        is_2d = isinstance(value, tuple)
        if is_2d != (kind is RigControlType.VECTOR2D) or kind not in (
            RigControlType.FLOAT,
            RigControlType.VECTOR2D,
        ):
            _STATE.log.append(("warning", f"Control Rig Wrong Type: {name}"))
            return False
        self._current[name] = value
        return True

    def fake_value(self, name: str) -> Any:
        """The control's current value (float or (x, y))."""
        return self._current[name]


class ControlRig(Object):
    def __init__(self, hierarchy: RigHierarchy) -> None:
        super().__init__(name="Face_ControlBoard_CtrlRig")
        self._hierarchy = hierarchy

    def get_hierarchy(self) -> RigHierarchy:
        return self._hierarchy


class _RigClass(Class):
    def __init__(self, controls: dict[str, str], jaw_sign: float, evaluates: bool) -> None:
        super().__init__(name="Face_ControlBoard_CtrlRig_C")
        self._controls = controls
        self._jaw_sign = jaw_sign
        self._evaluates = evaluates

    def _instantiate(self) -> ControlRig:
        return ControlRig(RigHierarchy(self._controls, self._jaw_sign, self._evaluates))


class ControlRigBlueprint(Object):
    def __init__(self, rig_class: _RigClass) -> None:
        super().__init__(name="Face_ControlBoard_CtrlRig")
        self._rig_class = rig_class

    def get_control_rig_class(self) -> Class:
        return self._rig_class


# Sequencer


class MovieSceneScriptingKey(Object):
    pass


class MovieSceneScriptingFloatKey(MovieSceneScriptingKey):
    def __init__(self, channel: MovieSceneScriptingFloatChannel, frame: int) -> None:
        super().__init__(name="Key")
        self._channel = channel
        self._frame = frame

    def get_value(self) -> float:
        return self._channel._keys[self._frame]

    def get_time(self, time_unit: Any = MovieSceneTimeUnit.DISPLAY_RATE) -> FrameTime:
        _check_unit(time_unit)
        return FrameTime(FrameNumber(self._frame))


def _check_unit(time_unit: Any) -> None:
    if time_unit is not MovieSceneTimeUnit.DISPLAY_RATE:
        raise ValueError("the fake keys in display-rate frames only")


class MovieSceneScriptingChannel(Object):
    _props = {"channel_name": ""}


class MovieSceneScriptingFloatChannel(MovieSceneScriptingChannel):
    def __init__(self, name: str, section: Any = None) -> None:
        super().__init__(name=name)
        self._values["channel_name"] = name
        self._keys: dict[int, float] = {}
        self._default: float | None = None
        self._section = section

    def _touch(self) -> None:
        # MovieSceneScriptingChannel.h SetDefaultInChannel / AddKeyInChannel: Section->Modify()
        if self._section is not None:
            _modify(self._section)

    def set_default(self, default_value: float) -> None:
        self._touch()
        self._default = float(default_value)

    def get_default(self) -> float:
        return 0.0 if self._default is None else self._default

    def has_default(self) -> bool:
        return self._default is not None

    def remove_default(self) -> None:
        self._touch()
        self._default = None

    def _value_at(self, frame: int) -> float | None:
        """What an evaluation at ``frame`` reads: keys (held between), else the default."""
        if self._keys:
            before = [f for f in self._keys if f <= frame]
            return self._keys[max(before) if before else min(self._keys)]
        return self._default

    def get_num_keys(self) -> int:
        return len(self._keys)

    def get_keys(self) -> list[MovieSceneScriptingFloatKey]:
        return [MovieSceneScriptingFloatKey(self, f) for f in sorted(self._keys)]

    def get_keys_by_index(self, indices: list[int]) -> list[MovieSceneScriptingFloatKey]:
        frames = sorted(self._keys)
        return [MovieSceneScriptingFloatKey(self, frames[i]) for i in indices]

    def add_key(
        self,
        time: FrameNumber,
        new_value: float,
        sub_frame: float = 0.0,
        time_unit: Any = MovieSceneTimeUnit.DISPLAY_RATE,
    ) -> MovieSceneScriptingFloatKey:
        _check_unit(time_unit)
        self._touch()
        _STATE.n_channel_keys += 1
        self._keys[time.value] = float(new_value)
        return MovieSceneScriptingFloatKey(self, time.value)

    def remove_key(self, key: MovieSceneScriptingKey) -> None:
        self._touch()
        del self._keys[key._frame]  # type: ignore[attr-defined]

    def fake_values(self) -> list[float]:
        """Key values in frame order."""
        return [self._keys[f] for f in sorted(self._keys)]

    def fake_frames(self) -> list[int]:
        """Key frames in order."""
        return sorted(self._keys)


class MovieSceneSection(Object):
    def __init__(self) -> None:
        super().__init__(name=type(self).__name__)
        self._range = (0, 0)
        self._package = ""  # the sequence asset's package (set when the track is added)

    def set_range(self, start_frame: int, end_frame: int) -> None:
        self._range = (start_frame, end_frame)

    def get_channel(self, channel_name: str) -> Any:
        return None

    def get_all_channels(self) -> list[Any]:
        return []


class MovieSceneControlRigParameterSection(MovieSceneSection):
    def __init__(self, controls: dict[str, Any]) -> None:
        super().__init__()
        self._channels: dict[str, MovieSceneScriptingFloatChannel] = {}
        for name, kind in controls.items():
            if kind is RigControlType.VECTOR2D:
                for axis in ("X", "Y"):
                    self._channels[f"{name}.{axis}"] = MovieSceneScriptingFloatChannel(
                        f"{name}.{axis}", self
                    )
            elif kind is RigControlType.FLOAT:
                self._channels[name] = MovieSceneScriptingFloatChannel(name, self)

    def get_channel(self, channel_name: str) -> Any:
        return self._channels.get(channel_name)

    def get_all_channels(self) -> list[Any]:
        return list(self._channels.values())


class MovieSceneAudioSection(MovieSceneSection):
    def set_sound(self, sound: Any) -> None:
        self._sound = sound

    def get_sound(self) -> Any:
        return getattr(self, "_sound", None)


class MovieSceneTrack(Object):
    _section_type: type = MovieSceneSection

    def __init__(self) -> None:
        super().__init__(name=type(self).__name__)
        self._sections: list[Any] = []
        self._package = ""

    def get_sections(self) -> list[Any]:
        return list(self._sections)

    def get_section_to_key(self) -> Any:
        return self._sections[0] if self._sections else None

    def add_section(self) -> Any:
        _modify(self)
        section = self._section_type()
        section._package = self._package
        self._sections.append(section)
        return section

    def _adopt(self, package: str) -> None:
        self._package = package
        for section in self._sections:
            section._package = package


class MovieSceneAudioTrack(MovieSceneTrack):
    _section_type = MovieSceneAudioSection


class MovieSceneControlRigParameterTrack(MovieSceneTrack):
    def __init__(self, rig: ControlRig) -> None:
        super().__init__()
        self._rig = rig
        hierarchy = rig.get_hierarchy()
        section = MovieSceneControlRigParameterSection(hierarchy._types)
        # MovieSceneControlRigParameterTrack.cpp CreateControlRigSection: the first (absolute)
        # section is made with RecreateWithThisControlRig(ControlRig, bSetDefault=true), which
        # sets every channel's default to the control's current value (0 on a rig at rest).
        for name, channel in section._channels.items():
            control, _, axis = name.partition(".")
            value = hierarchy._current[control]
            channel._default = float(value["XY".index(axis)] if axis else value)
        self._sections.append(section)


class MovieSceneBindingProxy(StructBase):
    def __init__(self, sequence: Any = None, bound: Any = None) -> None:
        super().__init__()
        self._sequence = sequence
        self._bound = bound
        self._parent: MovieSceneBindingProxy | None = None
        self._tracks: list[Any] = []

    def set_parent(self, parent_binding: MovieSceneBindingProxy) -> None:
        self._parent = parent_binding

    def get_tracks(self) -> list[Any]:
        return list(self._tracks)

    def remove_track(self, track_to_remove: Any) -> None:
        _modify(self._sequence)
        self._tracks = [t for t in self._tracks if t is not track_to_remove]

    def remove(self) -> None:
        _modify(self._sequence)
        self._sequence._bindings = [b for b in self._sequence._bindings if b is not self]


class ControlRigSequencerBindingProxy(StructBase):
    def __init__(self, rig: ControlRig, track: Any, binding: Any) -> None:
        super().__init__()
        self._rig, self._track, self._binding = rig, track, binding

    @property
    def control_rig(self) -> ControlRig:
        return self._rig

    @property
    def track(self) -> Any:
        return self._track

    @property
    def proxy(self) -> Any:
        return self._binding


class MovieSceneSequence(Object):
    def __init__(self, outer: Any = None, name: str = "None") -> None:
        super().__init__(outer, name)
        self._bindings: list[MovieSceneBindingProxy] = []
        self._tracks: list[Any] = []
        self._display_rate = FrameRate(30, 1)
        self._playback = [0, 0]

    def set_display_rate(self, display_rate: FrameRate) -> None:
        self._display_rate = display_rate

    def get_display_rate(self) -> FrameRate:
        return self._display_rate

    def set_playback_start(self, start_frame: int) -> None:
        self._playback[0] = start_frame

    def set_playback_end(self, end_frame: int) -> None:
        self._playback[1] = end_frame

    def get_playback_start(self) -> int:
        return self._playback[0]

    def get_playback_end(self) -> int:
        return self._playback[1]

    def add_possessable(self, object_to_possess: Any) -> MovieSceneBindingProxy:
        if any(b._bound is object_to_possess for b in self._bindings):
            raise ValueError("the fake refuses to possess the same object twice")
        _modify(self)
        binding = MovieSceneBindingProxy(self, object_to_possess)
        self._bindings.append(binding)
        return binding

    def get_bindings(self) -> list[MovieSceneBindingProxy]:
        return list(self._bindings)

    def add_track(self, track_type: type) -> Any:
        _modify(self)
        track = track_type()
        track._adopt(getattr(self, "_package", ""))
        self._tracks.append(track)
        return track

    def get_tracks(self) -> list[Any]:
        return list(self._tracks)

    def remove_track(self, track: Any) -> bool:
        _modify(self)
        before = len(self._tracks)
        self._tracks = [t for t in self._tracks if t is not track]
        return len(self._tracks) < before


class LevelSequence(MovieSceneSequence):
    pass


class Factory(Object):
    pass


class LevelSequenceFactoryNew(Factory):
    pass


class _EditorCrashError(RuntimeError):
    """What would take the real editor down (a null dereference); the fake raises instead."""


@dataclass
class _Sequencer:
    """The editor's Sequencer for the open Level Sequence (FSequencer)."""

    sequence: Any
    frame: int = 0  # the playhead, in display-rate frames
    auto_key: bool = False  # EAutoChangeMode::None by default
    auto_set_defaults: bool = False  # GetAutoSetTrackDefaults(): off by default
    needs_evaluation: bool = True
    suppressed: bool = False


def _face_tracks(sequence: Any) -> list[tuple[Any, Any]]:
    """``(bound object, control rig track)`` of every face track of a sequence."""
    return [
        (binding._bound, track)
        for binding in sequence._bindings
        for track in binding._tracks
        if isinstance(track, MovieSceneControlRigParameterTrack)
    ]


def _evaluate(reason: str) -> None:
    """A Sequencer evaluation at the playhead: channel values (keys there, else channel
    defaults) go into each rig; the bound face mesh shows the rig's pose from the next tick."""
    seq = _STATE.sequencer
    if seq is None:
        return
    _STATE.n_evaluations += 1
    _record("Sequencer.evaluate", reason, seq.frame)
    for bound, track in _face_tracks(seq.sequence):
        hierarchy = track._rig.get_hierarchy()
        section = track._sections[0]
        values: dict[str, list[float | None]] = {}
        for name, channel in section._channels.items():
            control, _, axis = name.partition(".")
            value = channel._value_at(seq.frame)
            if axis:
                pair = values.setdefault(control, [None, None])
                pair["XY".index(axis)] = value
            elif value is not None:
                hierarchy._current[control] = value
        for control, (x, y) in values.items():
            old = hierarchy._current.get(control, (0.0, 0.0))
            hierarchy._current[control] = (old[0] if x is None else x, old[1] if y is None else y)
        if isinstance(bound, SkeletalMeshComponent):
            pose = dict(hierarchy._current)
            _STATE.pending_poses[id(bound)] = (bound, hierarchy._jaw_open(), pose)


def _apply_pending_poses() -> None:
    for component, jaw_open, pose in _STATE.pending_poses.values():
        component._jaw_open, component._pose = jaw_open, pose
    _STATE.pending_poses.clear()


def _close_sequencer() -> None:
    """Sequencer closes: it restores the pre-animated state of what it animated (the faces go
    back to rest), and its rig instances are gone."""
    seq = _STATE.sequencer
    if seq is not None:
        for bound, _ in _face_tracks(seq.sequence):
            if isinstance(bound, SkeletalMeshComponent):
                bound._jaw_open, bound._pose = 0.0, {}
                _STATE.pending_poses.pop(id(bound), None)
    _STATE.open_sequence = _STATE.sequencer = None


class _RigLibrary:
    """The interactive keying path behind the ControlRigSequencerLibrary setters.

    ControlRigSequencerEditorLibrary.cpp SetLocalControlRig*: ``ControlRig->SetControlValue(...,
    bNotify=true, Context)`` with ``SetKey = bSetKey ? Always : DoNotCare`` (the batch setters
    loop that per frame with ``Always``) -> ControlRigParameterTrackEditor.cpp
    HandleControlModified -> AddControlKeys (KeyMode AutoKey, or ManualKeyForced) ->
    MovieSceneTrackEditor.cpp AnimatablePropertyChanged (an FScopedTransaction) ->
    AddKeysToControlRigHandle (ModifyOurGeneratedKeysByCurrentAndWeight interrogates the section)
    -> KeyframeTrackEditor.h AddKeysToSection: defaults only if GetAutoSetTrackDefaults(), keys
    only for AutoChangeMode AutoKey/All or ManualKeyForced; nothing keyed ->
    SuppressAutoEvaluation.
    """

    @staticmethod
    def _section(level_sequence: Any, control_rig: ControlRig) -> Any:
        if _STATE.open_sequence is not level_sequence:
            _STATE.log.append(("warning", "Sequencer is not open for this sequence"))
            return None
        for binding in level_sequence._bindings:
            for track in binding._tracks:
                if getattr(track, "_rig", None) is control_rig:
                    return track._sections[0]
        return None

    @staticmethod
    def key(section: Any, channels: dict[str, float], frame: int, forced: bool) -> None:
        seq = _STATE.sequencer
        assert seq is not None
        with _Transaction("Animatable Property Changed"):
            _STATE.n_interrogations += 1
            if seq.auto_set_defaults:
                for name, value in channels.items():
                    section._channels[name].set_default(value)
            if forced or seq.auto_key:
                for name, value in channels.items():
                    section._channels[name]._touch()
                    section._channels[name]._keys[frame] = float(value)
                _STATE.n_keyings += 1
                seq.needs_evaluation = True
            else:
                seq.suppressed = True


class ControlRigSequencerLibrary(Object):
    @classmethod
    def find_or_create_control_rig_track(
        cls,
        world: World,
        level_sequence: LevelSequence,
        control_rig_class: Class,
        binding: MovieSceneBindingProxy,
        is_layered_control_rig: bool = False,
    ) -> Any:
        _record(
            "ControlRigSequencerLibrary.find_or_create_control_rig_track",
            world,
            level_sequence,
            control_rig_class,
            binding,
            is_layered_control_rig=is_layered_control_rig,
        )
        if not isinstance(control_rig_class, _RigClass) or binding._sequence is not level_sequence:
            return None
        for track in binding._tracks:
            if isinstance(track, MovieSceneControlRigParameterTrack):
                return track
        if _STATE.open_sequence is None:
            # AddControlRig -> GetSequencerFromAsset() logs LevelSequence->GetPathName() of the
            # current sequence, which is null: the editor crashes (5.4-5.6).
            _STATE.crashes.append("find_or_create_control_rig_track with no open sequence")
            raise _EditorCrashError("AddControlRig dereferenced a null current Level Sequence")
        _modify(level_sequence)
        track = MovieSceneControlRigParameterTrack(control_rig_class._instantiate())
        track._adopt(getattr(level_sequence, "_package", ""))
        binding._tracks.append(track)
        if _STATE.sequencer is not None and _STATE.sequencer.sequence is level_sequence:
            _STATE.sequencer.needs_evaluation = True
        return track

    @classmethod
    def get_control_rigs(
        cls, level_sequence: LevelSequence
    ) -> list[ControlRigSequencerBindingProxy]:
        if _STATE.open_sequence is not level_sequence:  # rigs are instanced by an open Sequencer
            return []
        return [
            ControlRigSequencerBindingProxy(t._rig, t, b)
            for b in level_sequence._bindings
            for t in b._tracks
            if isinstance(t, MovieSceneControlRigParameterTrack)
        ]

    @classmethod
    def set_local_control_rig_float(
        cls,
        level_sequence: LevelSequence,
        control_rig: ControlRig,
        control_name: str,
        frame: FrameNumber,
        value: float,
        time_unit: Any = MovieSceneTimeUnit.DISPLAY_RATE,
        set_key: bool = True,
    ) -> None:
        _check_unit(time_unit)
        _record(
            "ControlRigSequencerLibrary.set_local_control_rig_float",
            control_name,
            frame.value,
            value,
            set_key=set_key,
        )
        section = _RigLibrary._section(level_sequence, control_rig)
        if section is None or not control_rig.get_hierarchy()._set(control_name, float(value)):
            return
        _RigLibrary.key(section, {control_name: float(value)}, frame.value, forced=set_key)

    @classmethod
    def set_local_control_rig_vector2d(
        cls,
        level_sequence: LevelSequence,
        control_rig: ControlRig,
        control_name: str,
        frame: FrameNumber,
        value: Vector2D,
        time_unit: Any = MovieSceneTimeUnit.DISPLAY_RATE,
        set_key: bool = True,
    ) -> None:
        _check_unit(time_unit)
        _record(
            "ControlRigSequencerLibrary.set_local_control_rig_vector2d",
            control_name,
            frame.value,
            (value.x, value.y),
            set_key=set_key,
        )
        section = _RigLibrary._section(level_sequence, control_rig)
        if section is None or not control_rig.get_hierarchy()._set(
            control_name, (value.x, value.y)
        ):
            return
        channels = {f"{control_name}.X": value.x, f"{control_name}.Y": value.y}
        _RigLibrary.key(section, channels, frame.value, forced=set_key)

    @classmethod
    def set_local_control_rig_floats(
        cls,
        level_sequence: LevelSequence,
        control_rig: ControlRig,
        control_name: str,
        frames: list[FrameNumber],
        values: list[float],
        time_unit: Any = MovieSceneTimeUnit.DISPLAY_RATE,
    ) -> None:
        _check_unit(time_unit)
        _record(
            "ControlRigSequencerLibrary.set_local_control_rig_floats", control_name, len(frames)
        )
        if len(frames) != len(values):
            raise ValueError("frames and values differ in length")
        section = _RigLibrary._section(level_sequence, control_rig)
        kind = control_rig.get_hierarchy()._types.get(control_name)
        if section is None or kind is not RigControlType.FLOAT:
            return
        for frame, value in zip(frames, values):  # one SetControlValue (keying) per frame
            control_rig.get_hierarchy()._set(control_name, float(value))
            _RigLibrary.key(section, {control_name: float(value)}, frame.value, forced=True)

    @classmethod
    def set_local_control_rig_vector2_ds(
        cls,
        level_sequence: LevelSequence,
        control_rig: ControlRig,
        control_name: str,
        frames: list[FrameNumber],
        values: list[Vector2D],
        time_unit: Any = MovieSceneTimeUnit.DISPLAY_RATE,
    ) -> None:
        _check_unit(time_unit)
        _record(
            "ControlRigSequencerLibrary.set_local_control_rig_vector2_ds", control_name, len(frames)
        )
        if len(frames) != len(values):
            raise ValueError("frames and values differ in length")
        section = _RigLibrary._section(level_sequence, control_rig)
        kind = control_rig.get_hierarchy()._types.get(control_name)
        if section is None or kind is not RigControlType.VECTOR2D:
            return
        for frame, value in zip(frames, values):
            x, y = (0.0, 0.0) if _STATE.vector2_ds_keys_zero else (value.x, value.y)
            control_rig.get_hierarchy()._set(control_name, (x, y))
            channels = {f"{control_name}.X": x, f"{control_name}.Y": y}
            _RigLibrary.key(section, channels, frame.value, forced=True)


class LevelSequenceEditorBlueprintLibrary(Object):
    @classmethod
    def open_level_sequence(cls, level_sequence: LevelSequence) -> bool:
        # UAssetEditorSubsystem::OpenEditorForAsset: one Sequencer, the new sequence replaces
        # the open one; it can fail (returns false).
        _record("LevelSequenceEditorBlueprintLibrary.open_level_sequence", level_sequence)
        if _STATE.open_fails:
            return False
        if _STATE.open_sequence is not level_sequence:
            _close_sequencer()
        _STATE.open_sequence = level_sequence
        _STATE.sequencer = _Sequencer(level_sequence)
        return True

    @classmethod
    def close_level_sequence(cls) -> None:
        _record("LevelSequenceEditorBlueprintLibrary.close_level_sequence")
        _close_sequencer()

    @classmethod
    def get_current_level_sequence(cls) -> Any:
        return _STATE.open_sequence

    @classmethod
    def set_global_position(
        cls,
        playback_params: MovieSceneSequencePlaybackParams,
        time_unit: Any = MovieSceneTimeUnit.DISPLAY_RATE,
    ) -> None:
        # LevelSequenceEditorBlueprintLibrary.cpp SetGlobalPosition: the same frame ->
        # ForceEvaluate(); another frame -> SetGlobalTime (which evaluates there).
        _check_unit(time_unit)
        frame = playback_params.get_editor_property("frame").frame_number.value
        _record("LevelSequenceEditorBlueprintLibrary.set_global_position", frame)
        seq = _STATE.sequencer
        if seq is None:
            return
        seq.frame = frame
        _evaluate("set_global_position")

    @classmethod
    def force_update(cls) -> None:
        # ForceUpdate: NotifyMovieSceneDataChanged(RefreshAllImmediately): the tree is rebuilt
        # and the sequence evaluated.
        _record("LevelSequenceEditorBlueprintLibrary.force_update")
        if _STATE.sequencer is not None:
            _evaluate("force_update")


# Animation assets


class AnimationDataController(Object):
    def __init__(self) -> None:
        super().__init__(name="AnimationDataController")
        self._frame_rate: FrameRate | None = None
        self._n_frames = 0
        self._bracket = 0

    def open_bracket(self, title: str, should_transact: bool = True) -> None:
        # AnimDataController.cpp OpenBracket: with bShouldTransact one transaction for the
        # whole bracket; the changes inside join it.
        self._bracket += 1
        self._transacting = getattr(self, "_transacting", [])
        self._transacting.append(should_transact)
        if should_transact:
            _begin_transaction(str(title))

    def close_bracket(self, should_transact: bool = True) -> None:
        if self._bracket <= 0:
            raise RuntimeError("close_bracket without open_bracket")
        self._bracket -= 1
        if self._transacting.pop():
            _end_transaction()

    def set_frame_rate(self, frame_rate: FrameRate, should_transact: bool = True) -> None:
        self._frame_rate = frame_rate

    def set_number_of_frames(
        self, new_length_in_frames: FrameNumber, should_transact: bool = True
    ) -> None:
        self._n_frames = new_length_in_frames.value


class AnimSequenceBase(Object):
    _props = {"controller": None}


class AnimSequence(AnimSequenceBase):
    def __init__(self, outer: Any = None, name: str = "None") -> None:
        super().__init__(outer, name)
        self._values["controller"] = AnimationDataController()
        self._skeleton: Any = None
        self._curves: dict[str, dict[str, list[float]]] = {}


class AnimSequenceFactory(Factory):
    _props = {"target_skeleton": None, "preview_skeletal_mesh": None}


class AnimationLibrary(Object):
    @classmethod
    def add_curve(
        cls,
        animation_sequence_base: AnimSequenceBase,
        curve_name: str,
        curve_type: Any = RawCurveTrackTypes.RCT_FLOAT,
        meta_data_curve: bool = False,
    ) -> None:
        if curve_name in animation_sequence_base._curves:
            _STATE.log.append(("warning", f"curve {curve_name} already exists"))
            return
        animation_sequence_base._curves[curve_name] = {"times": [], "values": []}

    @classmethod
    def add_float_curve_keys(
        cls,
        animation_sequence_base: AnimSequenceBase,
        curve_name: str,
        times: list[float],
        values: list[float],
    ) -> None:
        _record("AnimationLibrary.add_float_curve_keys", curve_name, len(times))
        if len(times) != len(values):
            raise ValueError("times and values differ in length")
        # AnimationBlueprintLibrary.cpp SetControllerCurveKeys: Controller.SetCurveKey once per
        # key, each with bShouldTransact=true: a transaction per key unless an open bracket
        # holds one (AnimDataController.cpp OpenBracket), which they then join.
        curve = animation_sequence_base._curves[curve_name]
        for t, v in zip(times, values):
            with _Transaction("Setting Curve Key"):
                _modify(animation_sequence_base)
                curve["times"].append(float(t))
                curve["values"].append(float(v))

    @classmethod
    def remove_all_curve_data(cls, animation_sequence_base: AnimSequenceBase) -> None:
        _record("AnimationLibrary.remove_all_curve_data")
        with _Transaction("Removing curves"):
            _modify(animation_sequence_base)
            animation_sequence_base._curves.clear()


# Assets, import, sound


class SoundBase(Object):
    pass


class SoundWave(SoundBase):
    pass


class AssetImportTask(Object):
    _props = {
        "filename": "",
        "destination_path": "",
        "destination_name": "",
        "automated": False,
        "replace_existing": False,
        "save": False,
        "imported_object_paths": [],
    }


def _normal(path: str) -> str:
    head, _, tail = path.rpartition("/")
    return f"{head}/{tail.split('.')[0]}"


def _add_asset(path: str, asset: Any, *, on_disk: bool = False) -> Any:
    """A new asset: its package is dirty until saved (``on_disk``: a project asset)."""
    asset._path = f"{path}.{path.rsplit('/', 1)[1]}"
    asset._name = path.rsplit("/", 1)[1]
    asset._package = _normal(path)
    _STATE.assets[_normal(path)] = asset
    if on_disk:
        _STATE.ever_saved.add(asset._package)
        _STATE.on_disk.add(asset._package)
    else:
        _STATE.dirty.add(asset._package)
    return asset


class AssetTools(Object):
    def create_asset(
        self,
        asset_name: str,
        package_path: str,
        asset_class: type,
        factory: Any,
        calling_context: str = "None",
    ) -> Any:
        path = f"{package_path}/{asset_name}"
        _record("AssetTools.create_asset", path, asset_class.__name__)
        if _normal(path) in _STATE.assets:
            _STATE.log.append(("error", f"asset {path} already exists"))
            return None
        asset = asset_class()
        if isinstance(asset, AnimSequence):
            skeleton = factory.get_editor_property("target_skeleton")
            if skeleton is None:
                return None  # Unreal refuses an AnimSequence without a skeleton
            asset._skeleton = skeleton
        return _add_asset(path, asset)

    def import_asset_tasks(self, import_tasks: list[AssetImportTask]) -> None:
        for task in import_tasks:
            filename = task.get_editor_property("filename")
            _record("AssetTools.import_asset_tasks", filename)
            folder = task.get_editor_property("destination_path")
            path = f"{folder}/{task.get_editor_property('destination_name')}"
            if not os.path.isfile(filename) or not filename.lower().endswith(
                (".wav", ".flac", ".ogg")
            ):
                continue
            sound = _add_asset(path, SoundWave())
            sound._source_file = filename
            if task.get_editor_property("save"):  # AssetImportTask.h bSave: saved after import
                EditorAssetLibrary.save_loaded_asset(sound)
            task.set_editor_property("imported_object_paths", [sound.get_path_name()])


class AssetToolsHelpers(Object):
    _tools = AssetTools(name="AssetTools")

    @classmethod
    def get_asset_tools(cls) -> AssetTools:
        return cls._tools


class EditorAssetLibrary(Object):
    @classmethod
    def does_asset_exist(cls, asset_path: str) -> bool:
        # Asks the asset registry: project assets are unknown until its scan has completed
        # (a commandlet starts before the scan).
        path = _normal(asset_path)
        if _STATE.registry_scanning and path in _STATE.on_disk:
            return False
        return path in _STATE.assets

    @classmethod
    def load_asset(cls, asset_path: str) -> Any:
        return _STATE.assets.get(_normal(asset_path))  # loads from disk: no registry needed

    @classmethod
    def delete_asset(cls, asset_path_to_delete: str) -> bool:
        # EditorAssetLibrary docstring (5.6): "a Force Delete ... It will close all the asset
        # editors and may clear the Transaction buffer (Undo History)."
        _record("EditorAssetLibrary.delete_asset", asset_path_to_delete)
        _close_sequencer()
        _STATE.undo.clear()
        asset = _STATE.assets.pop(_normal(asset_path_to_delete), None)
        if asset is not None:
            _STATE.dirty.discard(asset._package)
        return asset is not None

    @classmethod
    def save_loaded_asset(cls, asset_to_save: Any, only_if_is_dirty: bool = True) -> bool:
        path = _normal(asset_to_save.get_path_name())
        if only_if_is_dirty and path not in _STATE.dirty:
            return True
        _STATE.saved.append(path)
        _STATE.dirty.discard(path)
        _STATE.ever_saved.add(path)
        return True

    @classmethod
    def make_directory(cls, directory_path: str) -> bool:
        return True


class AssetRegistry(Object):
    def wait_for_completion(self) -> None:
        _record("AssetRegistry.wait_for_completion")
        _STATE.registry_scanning = False

    def search_all_assets(self, synchronous_search: bool) -> None:
        if synchronous_search:
            _STATE.registry_scanning = False

    def is_loading_assets(self) -> bool:
        return _STATE.registry_scanning


class AssetRegistryHelpers(Object):
    _registry = AssetRegistry(name="AssetRegistry")

    @classmethod
    def get_asset_registry(cls) -> AssetRegistry:
        return cls._registry


class AudioComponent(Object):
    def __init__(self, sound: Any, start_time: float) -> None:
        super().__init__(name="AudioComponent")
        self._sound = sound
        self._start_time = start_time
        self._playing = True

    def stop(self) -> None:
        self._playing = False

    def is_playing(self) -> bool:
        return self._playing


class GameplayStatics(Object):
    @classmethod
    def spawn_sound2d(
        cls,
        world_context_object: Any,
        sound: Any,
        volume_multiplier: float = 1.0,
        pitch_multiplier: float = 1.0,
        start_time: float = 0.0,
        concurrency_settings: Any = None,
        persist_across_level_transition: bool = False,
        auto_destroy: bool = True,
    ) -> AudioComponent:
        if not isinstance(sound, SoundBase):
            raise TypeError("spawn_sound2d needs a SoundBase")
        if not _STATE.audio_device:
            # GameplayStatics.cpp CreateSound2D: null without GEngine->UseSound() or an audio
            # device (-nosound, headless), so SpawnSound2D returns null.
            return None  # type: ignore[return-value]
        component = AudioComponent(sound, start_time)
        _STATE.sounds.append(component)
        return component


# Menus, dialogs, Python-generated classes, slow tasks


class ToolMenuBase(Object):
    pass


class ToolMenu(ToolMenuBase):
    def __init__(self, menu_name: str = "None", owner: str = "") -> None:
        super().__init__(name=menu_name)
        self._menu_name = menu_name
        self._owner = owner
        self._sections: list[str] = []
        self._entries: list[tuple[str, ToolMenuEntry]] = []

    def add_sub_menu(
        self, owner: str, section_name: str, name: str, label: str, tool_tip: str = ""
    ) -> ToolMenu:
        full = f"{self._menu_name}.{name}"
        sub = ToolMenu(full, owner)
        sub._label = label
        _STATE.menus[full] = sub
        return sub

    def add_section(self, section_name: str, label: str = "", insert_name: str = "None") -> None:
        self._sections.append(section_name)

    def add_menu_entry(self, section_name: str, args: ToolMenuEntry) -> None:
        if section_name not in self._sections:
            raise ValueError(f"no section {section_name!r} (add_section first)")
        self._entries.append((section_name, args))


class ToolMenus(Object):
    _instance: ToolMenus | None = None

    @classmethod
    def get(cls) -> ToolMenus:
        if cls._instance is None:
            cls._instance = ToolMenus(name="ToolMenus")
        return cls._instance

    def find_menu(self, name: str) -> ToolMenu | None:
        return _STATE.menus.get(name)

    def unregister_owner_by_name(self, owner_name: str) -> None:
        for name in [n for n, m in _STATE.menus.items() if m._owner == owner_name]:
            del _STATE.menus[name]

    def refresh_all_widgets(self) -> None:
        _record("ToolMenus.refresh_all_widgets")


class EditorDialog(Object):
    @classmethod
    def show_object_details_view(
        cls,
        title: str,
        out_object: Any,
        options: EditorDialogLibraryObjectDetailsViewOptions | None = None,
    ) -> bool:
        _record("EditorDialog.show_object_details_view", title)
        handler = _STATE.dialog_handler
        return True if handler is None else bool(handler(title, out_object))

    @classmethod
    def show_message(
        cls, title: str, message: str, message_type: Any, default_value: Any = AppReturnType.NO
    ) -> Any:
        _STATE.messages.append((str(title), str(message)))
        return AppReturnType.OK


class _PropertyDef:
    def __init__(self, type_: Any, meta: dict | None) -> None:
        self.type = type_
        self.meta = meta or {}


def uproperty(type: Any, meta: dict | None = None, getter: Any = None, setter: Any = None) -> Any:
    return _PropertyDef(type, meta)


def uclass() -> Any:
    def decorate(cls: type) -> type:
        defs = {k: v for k, v in vars(cls).items() if isinstance(v, _PropertyDef)}
        defaults = {bool: False, int: 0, float: 0.0, str: ""}
        cls._props = {
            k: (defaults[d.type] if d.type in defaults else d.type()) for k, d in defs.items()
        }  # type: ignore[attr-defined]
        cls._types = {k: d.type for k, d in defs.items()}  # type: ignore[attr-defined]
        for name in defs:
            delattr(cls, name)
        original = cls.set_editor_property

        def set_editor_property(self: Any, name: str, value: Any) -> None:
            expected = type(self)._types.get(name)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if expected is not None and not isinstance(value, expected):
                raise TypeError(f"{name}: expected {expected.__name__}, got {type(value).__name__}")
            original(self, name, value)

        cls.set_editor_property = set_editor_property  # type: ignore[method-assign]
        return cls

    return decorate


def new_object(type: type, outer: Any = None, name: str = "", base_type: Any = None) -> Any:
    return type()


class ScopedSlowTask:
    def __init__(self, work: float, desc: str = "", enabled: bool = True) -> None:
        self._work = work
        self._frames = 0

    def __enter__(self) -> ScopedSlowTask:
        return self

    def __exit__(self, *exc: Any) -> bool:
        return False

    def make_dialog(self, can_cancel: bool = False, allow_in_pie: bool = False) -> None:
        pass

    def enter_progress_frame(self, work: float = 1.0, desc: str = "") -> None:
        self._frames += 1
        _STATE.progress.append(str(desc))

    def should_cancel(self) -> bool:
        return _STATE.cancel_after is not None and self._frames >= _STATE.cancel_after


# Building a test scene

FACE_RIG_PATH = "/Game/MetaHumans/Common/Face/Face_ControlBoard_CtrlRig"


def fake_add_face_rig(
    channel_names: list[str] | tuple[str, ...],
    *,
    mh4: bool = False,
    jaw_sign: float = 1.0,
    evaluates: bool = True,
    path: str = FACE_RIG_PATH,
) -> ControlRigBlueprint:
    """Put a face board control rig asset in the project."""
    rig_class = _RigClass(fake_board_controls(channel_names, mh4), jaw_sign, evaluates)
    return _add_asset(path, ControlRigBlueprint(rig_class), on_disk=True)


def fake_add_metahuman(
    label: str,
    *,
    selected: bool = False,
    animating_rig: Any = None,
    skeleton_curves: tuple[str, ...] = (),
) -> Actor:
    """Put a MetaHuman in the level: an actor with Body and Face skeletal mesh components.

    ``animating_rig``: the face mesh's Default Animating Rig (a rig blueprint), as MetaHuman
    Creator characters set it. ``skeleton_curves``: curves with metadata on its face skeleton
    (none by default: a test names what a given MetaHuman version's skeleton has).
    """
    actor = Actor(name=label)
    skeleton = _STATE.assets.get("/Game/MetaHumans/Common/Face/Face_Archetype_Skeleton")
    if skeleton is None:
        skeleton = _add_asset(
            "/Game/MetaHumans/Common/Face/Face_Archetype_Skeleton", Skeleton(), on_disk=True
        )
    for curve in skeleton_curves:
        skeleton._curve_meta.setdefault(curve, {"morph_target": False, "material": False})
    face_mesh = SkeletalMesh(name="SKM_Face")
    face_mesh.set_editor_property("skeleton", skeleton)
    face_mesh._animating_rig = animating_rig
    body, face = SkeletalMeshComponent(name="Body"), SkeletalMeshComponent(name="Face")
    body._mesh, face._mesh = SkeletalMesh(name="SKM_Body"), face_mesh
    actor._components = [body, face]
    _STATE.actors.append(actor)
    if selected:
        _STATE.selected.append(actor)
    return actor


def fake_visible_pose(label: str) -> dict[str, Any]:
    """What the viewport shows of a MetaHuman's face: the control values of the last evaluated
    pose ({} at rest), with ``"jaw_open"`` (0..1) from its jaw joint."""
    actor = next(a for a in _STATE.actors if a.get_actor_label() == label)
    face = next(c for c in actor._components if c.get_name() == "Face")
    return {**face._pose, "jaw_open": face._jaw_open}


def fake_open_rig(sequence: Any = None) -> ControlRig | None:
    """The face rig instance of the (open) sequence's first face track."""
    sequence = sequence or _STATE.open_sequence
    if sequence is None:
        return None
    for binding in sequence._bindings:
        for track in binding._tracks:
            if isinstance(track, MovieSceneControlRigParameterTrack):
                return track._rig
    return None


def fake_install(monkeypatch: Any, saved_dir: str = "") -> Any:
    """Install this module as ``unreal`` (via ``sys.modules``) on a fresh editor state."""
    fake_reset(saved_dir)
    module = sys.modules[__name__]
    monkeypatch.setitem(sys.modules, "unreal", module)
    return module
