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
    """Run the registered Slate post-tick callbacks ``n`` times, as the editor does every frame."""
    for _ in range(n):
        for callback in list(_STATE.tick_callbacks.values()):
            callback(delta_s)


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
    pass


class SkeletalMesh(Object):
    _props = {"skeleton": None}


class ActorComponent(Object):
    pass


class SkeletalMeshComponent(ActorComponent):
    _mesh: SkeletalMesh | None = None

    def get_skeletal_mesh_asset(self) -> SkeletalMesh | None:
        return self._mesh


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
    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self._values["channel_name"] = name
        self._keys: dict[int, float] = {}

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
        self._keys[time.value] = float(new_value)
        return MovieSceneScriptingFloatKey(self, time.value)

    def remove_key(self, key: MovieSceneScriptingKey) -> None:
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
                        f"{name}.{axis}"
                    )
            elif kind is RigControlType.FLOAT:
                self._channels[name] = MovieSceneScriptingFloatChannel(name)

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

    def get_sections(self) -> list[Any]:
        return list(self._sections)

    def get_section_to_key(self) -> Any:
        return self._sections[0] if self._sections else None

    def add_section(self) -> Any:
        section = self._section_type()
        self._sections.append(section)
        return section


class MovieSceneAudioTrack(MovieSceneTrack):
    _section_type = MovieSceneAudioSection


class MovieSceneControlRigParameterTrack(MovieSceneTrack):
    def __init__(self, rig: ControlRig) -> None:
        super().__init__()
        self._rig = rig
        self._sections.append(MovieSceneControlRigParameterSection(rig.get_hierarchy()._types))


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
        binding = MovieSceneBindingProxy(self, object_to_possess)
        self._bindings.append(binding)
        return binding

    def get_bindings(self) -> list[MovieSceneBindingProxy]:
        return list(self._bindings)

    def add_track(self, track_type: type) -> Any:
        track = track_type()
        self._tracks.append(track)
        return track

    def get_tracks(self) -> list[Any]:
        return list(self._tracks)


class LevelSequence(MovieSceneSequence):
    pass


class Factory(Object):
    pass


class LevelSequenceFactoryNew(Factory):
    pass


class _RigLibrary:
    """Shared checks of the ControlRigSequencerLibrary setters."""

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
        track = MovieSceneControlRigParameterTrack(control_rig_class._instantiate())
        binding._tracks.append(track)
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
        if set_key:
            section._channels[control_name]._keys[frame.value] = float(value)

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
        if set_key:
            section._channels[f"{control_name}.X"]._keys[frame.value] = value.x
            section._channels[f"{control_name}.Y"]._keys[frame.value] = value.y

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
        for frame, value in zip(frames, values):
            section._channels[control_name]._keys[frame.value] = float(value)

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
            section._channels[f"{control_name}.X"]._keys[frame.value] = x
            section._channels[f"{control_name}.Y"]._keys[frame.value] = y


class LevelSequenceEditorBlueprintLibrary(Object):
    @classmethod
    def open_level_sequence(cls, level_sequence: LevelSequence) -> bool:
        _record("LevelSequenceEditorBlueprintLibrary.open_level_sequence", level_sequence)
        _STATE.open_sequence = level_sequence
        return True

    @classmethod
    def close_level_sequence(cls) -> None:
        _record("LevelSequenceEditorBlueprintLibrary.close_level_sequence")
        _STATE.open_sequence = None

    @classmethod
    def get_current_level_sequence(cls) -> Any:
        return _STATE.open_sequence

    @classmethod
    def set_global_position(
        cls,
        playback_params: MovieSceneSequencePlaybackParams,
        time_unit: Any = MovieSceneTimeUnit.DISPLAY_RATE,
    ) -> None:
        _check_unit(time_unit)
        _record(
            "LevelSequenceEditorBlueprintLibrary.set_global_position",
            playback_params.get_editor_property("frame").frame_number.value,
        )


# Animation assets


class AnimationDataController(Object):
    def __init__(self) -> None:
        super().__init__(name="AnimationDataController")
        self._frame_rate: FrameRate | None = None
        self._n_frames = 0
        self._bracket = 0

    def open_bracket(self, title: str, should_transact: bool = True) -> None:
        self._bracket += 1

    def close_bracket(self, should_transact: bool = True) -> None:
        if self._bracket <= 0:
            raise RuntimeError("close_bracket without open_bracket")
        self._bracket -= 1

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
        curve = animation_sequence_base._curves[curve_name]
        curve["times"].extend(float(t) for t in times)
        curve["values"].extend(float(v) for v in values)


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


def _add_asset(path: str, asset: Any) -> Any:
    asset._path = f"{path}.{path.rsplit('/', 1)[1]}"
    asset._name = path.rsplit("/", 1)[1]
    _STATE.assets[_normal(path)] = asset
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
            task.set_editor_property("imported_object_paths", [sound.get_path_name()])


class AssetToolsHelpers(Object):
    _tools = AssetTools(name="AssetTools")

    @classmethod
    def get_asset_tools(cls) -> AssetTools:
        return cls._tools


class EditorAssetLibrary(Object):
    @classmethod
    def does_asset_exist(cls, asset_path: str) -> bool:
        return _normal(asset_path) in _STATE.assets

    @classmethod
    def load_asset(cls, asset_path: str) -> Any:
        return _STATE.assets.get(_normal(asset_path))

    @classmethod
    def delete_asset(cls, asset_path_to_delete: str) -> bool:
        _record("EditorAssetLibrary.delete_asset", asset_path_to_delete)
        asset = _STATE.assets.pop(_normal(asset_path_to_delete), None)
        if asset is not None and _STATE.open_sequence is asset:
            _STATE.open_sequence = None
        return asset is not None

    @classmethod
    def save_loaded_asset(cls, asset_to_save: Any, only_if_is_dirty: bool = True) -> bool:
        _STATE.saved.append(_normal(asset_to_save.get_path_name()))
        return True

    @classmethod
    def make_directory(cls, directory_path: str) -> bool:
        return True


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
    return _add_asset(path, ControlRigBlueprint(rig_class))


def fake_add_metahuman(label: str, *, selected: bool = False) -> Actor:
    """Put a MetaHuman in the level: an actor with Body and Face skeletal mesh components."""
    actor = Actor(name=label)
    skeleton = _STATE.assets.get("/Game/MetaHumans/Common/Face/Face_Archetype_Skeleton")
    if skeleton is None:
        skeleton = _add_asset("/Game/MetaHumans/Common/Face/Face_Archetype_Skeleton", Skeleton())
    face_mesh = SkeletalMesh(name="SKM_Face")
    face_mesh.set_editor_property("skeleton", skeleton)
    body, face = SkeletalMeshComponent(name="Body"), SkeletalMeshComponent(name="Face")
    body._mesh, face._mesh = SkeletalMesh(name="SKM_Body"), face_mesh
    actor._components = [body, face]
    _STATE.actors.append(actor)
    if selected:
        _STATE.selected.append(actor)
    return actor


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
