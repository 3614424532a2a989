"""Settings dialogs: the settings dataclasses shown in Unreal's details-view dialog.

Each dataclass becomes a Python-generated UClass (created on first use, so importing this module
needs no editor) whose properties mirror its fields; folders get Unreal's folder picker. After OK
the values are validated by the dataclass, so a bad value comes back as one clear message.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from emoface_unreal.settings import BakeSettings, LiveSettings, from_dict

T = TypeVar("T")

FOLDER_FIELDS = frozenset({"input_folder", "audio_folder"})  # shown with a folder picker
_CLASSES: dict[type, Any] = {}


def _tooltips(cls: type) -> dict[str, str]:
    """Field -> its line(s) from the dataclass docstring's Attributes section."""
    tips: dict[str, str] = {}
    current = None
    for line in (cls.__doc__ or "").splitlines():
        stripped = line.strip()
        name, sep, text = stripped.partition(":")
        if sep and name in {f.name for f in dataclasses.fields(cls)}:
            current = name
            tips[name] = text.strip()
        elif current and stripped:
            tips[current] += " " + stripped
        else:
            current = None
    return tips


def options_class(cls: type) -> Any:
    """The UClass that mirrors settings dataclass ``cls`` (generated once per session)."""
    import unreal

    if cls in _CLASSES:
        return _CLASSES[cls]
    tips = _tooltips(cls)
    attrs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        kind: Any = unreal.DirectoryPath if f.name in FOLDER_FIELDS else type(f.default)
        meta = {"Category": "EmoFace", "ToolTip": tips.get(f.name, "")}
        attrs[f.name] = unreal.uproperty(kind, meta=meta)
    generated = unreal.uclass()(type(f"EmoFace{cls.__name__}Options", (unreal.Object,), attrs))
    _CLASSES[cls] = generated
    return generated


def to_object(settings: Any) -> Any:
    """A new options object holding ``settings``' values."""
    import unreal

    obj = unreal.new_object(options_class(type(settings)))
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name in FOLDER_FIELDS:
            value = unreal.DirectoryPath(path=value)
        obj.set_editor_property(f.name, value)
    return obj


def from_object(cls: type[T], obj: Any) -> T:
    """Settings read back from an options object.

    Raises:
        ValueError: a value is invalid (names the field).
    """
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = obj.get_editor_property(f.name)
        if f.name in FOLDER_FIELDS:
            value = value.get_editor_property("path")
        values[f.name] = value
    return from_dict(cls, values)


def edit(settings: T, title: str) -> T | None:
    """Show ``settings`` in a dialog until they are valid; the edited settings, or None when
    cancelled. An invalid value is explained and the dialog reopens with the user's edits."""
    import unreal

    obj = to_object(settings)
    options = unreal.EditorDialogLibraryObjectDetailsViewOptions(
        show_object_name=False,
        allow_search=False,
        allow_resizing=True,
        min_width=520,
        min_height=420,
        value_column_width_ratio=0.55,
    )
    while True:
        if not unreal.EditorDialog.show_object_details_view(title, obj, options):
            return None
        try:
            return from_object(type(settings), obj)
        except ValueError as e:
            message("EmoFace: invalid setting", str(e))


def edit_live(settings: LiveSettings) -> LiveSettings | None:
    """The live settings dialog."""
    return edit(settings, "EmoFace: live drive")


def edit_bake(settings: BakeSettings) -> BakeSettings | None:
    """The bake settings dialog."""
    return edit(settings, "EmoFace: bake files into assets")


def message(title: str, text: str) -> None:
    """An OK dialog."""
    import unreal

    unreal.EditorDialog.show_message(title, text, unreal.AppMsgType.OK)
