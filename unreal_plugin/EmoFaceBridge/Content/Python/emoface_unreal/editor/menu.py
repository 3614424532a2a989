"""The "EmoFace" menu in the Level Editor's main menu bar, and what its entries do.

Entries run Python string commands that call the ``on_*`` functions below; each catches every
error and shows it in a dialog (and the Output Log), so a menu click never leaves a traceback.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from emoface_unreal.editor import dialogs
from emoface_unreal.editor.logs import install_log_handler

log = logging.getLogger(__name__)

MENU_OWNER = "EmoFaceBridge"
PARENT_MENU = "LevelEditor.MainMenu"
SUBMENU = "EmoFace"
SECTION_LIVE = "EmoFaceLive"
SECTION_BAKE = "EmoFaceBake"
SECTION_HELP = "EmoFaceHelp"
_CALL = "import emoface_unreal.editor.menu as emoface_menu; emoface_menu.{}()"
ENTRIES = (  # (section, name, label, tooltip, function)
    (
        SECTION_LIVE,
        "EmoFaceStartLive",
        "Start live drive...",
        "Receive an `emoface stream` and drive the MetaHumans bound to its subjects",
        "on_start_live",
    ),
    (
        SECTION_LIVE,
        "EmoFaceStopLive",
        "Stop live drive",
        "Stop receiving and return the faces to rest",
        "on_stop_live",
    ),
    (
        SECTION_LIVE,
        "EmoFaceStatus",
        "Show live status",
        "Frames received, applied and dropped; the last error",
        "on_show_status",
    ),
    (
        SECTION_BAKE,
        "EmoFaceBake",
        "Bake files into assets...",
        "Turn a folder of EmoFace .json/.txt files into Level Sequences and/or AnimSequences",
        "on_bake",
    ),
    (
        SECTION_HELP,
        "EmoFaceDiagnose",
        "Diagnose",
        "Try every way of moving the selected MetaHuman's face and write a report to attach "
        "to a bug report (Saved/EmoFace/diagnose-*.txt)",
        "on_diagnose",
    ),
)


def register_menus() -> bool:
    """Add the EmoFace menu (idempotent). Returns False when the editor has no main menu
    (e.g. a commandlet)."""
    import unreal

    install_log_handler()
    menus = unreal.ToolMenus.get()
    main = menus.find_menu(PARENT_MENU)
    if main is None:
        return False
    menus.unregister_owner_by_name(MENU_OWNER)
    sub = main.add_sub_menu(
        MENU_OWNER,
        "",
        SUBMENU,
        "EmoFace",
        "EmoFace: drive MetaHuman faces from speech, live or baked",
    )
    sub.add_section(SECTION_LIVE, "Live drive")
    sub.add_section(SECTION_BAKE, "Bake")
    sub.add_section(SECTION_HELP, "Help")
    for section, name, label, tooltip, function in ENTRIES:
        entry = unreal.ToolMenuEntry(name=name, type=unreal.MultiBlockType.MENU_ENTRY)
        entry.set_label(label)
        entry.set_tool_tip(tooltip)
        entry.set_string_command(
            unreal.ToolMenuStringCommandType.PYTHON, "", _CALL.format(function)
        )
        sub.add_menu_entry(section, entry)
    menus.refresh_all_widgets()
    return True


def unregister_menus() -> None:
    """Remove the EmoFace menu."""
    import unreal

    unreal.ToolMenus.get().unregister_owner_by_name(MENU_OWNER)
    unreal.ToolMenus.get().refresh_all_widgets()


def _safe(fn: Callable[[], Any]) -> Callable[[], None]:
    @functools.wraps(fn)
    def wrapper() -> None:
        try:
            fn()
        except Exception as e:
            log.error("EmoFace: %s failed: %s", fn.__name__, e, exc_info=True)
            dialogs.message("EmoFace", f"{type(e).__name__}: {e}")

    return wrapper


def _settings() -> tuple[Any, Any]:
    from emoface_unreal.editor import live
    from emoface_unreal.settings import BakeSettings, LiveSettings

    try:
        return live.load_saved_settings()
    except ValueError as e:  # a hand-edited settings file: start from defaults, say why
        log.warning("EmoFace: %s; using default settings", e)
        return LiveSettings(), BakeSettings()


def _save(live_settings: Any, bake_settings: Any) -> None:
    from emoface_unreal.editor import live
    from emoface_unreal.settings import save_settings

    save_settings(live.settings_path(), live_settings, bake_settings)


@_safe
def on_start_live() -> None:
    """Menu: edit the live settings, save them, start."""
    from emoface_unreal.editor import live

    live_settings, bake_settings = _settings()
    edited = dialogs.edit_live(live_settings)
    if edited is None:
        return
    _save(edited, bake_settings)
    try:
        live.start(edited)
    except live.LiveError as e:
        dialogs.message("EmoFace: cannot start live drive", str(e))
        return
    dialogs.message(
        "EmoFace",
        live.status_text() + "\n\nStart a stream, e.g.\n  emoface stream line.wav "
        f"--subject {edited.subject}"
        + (" --osc " + edited.endpoint if edited.transport == "osc" else ""),
    )


@_safe
def on_stop_live() -> None:
    """Menu: stop live drive."""
    from emoface_unreal.editor import live

    text = live.status_text()
    live.stop()
    dialogs.message("EmoFace", "Live drive stopped.\n\n" + text)


@_safe
def on_show_status() -> None:
    """Menu: show the live status."""
    from emoface_unreal.editor import live

    dialogs.message("EmoFace status", live.status_text())


@_safe
def on_bake() -> None:
    """Menu: edit the bake settings, save them, bake."""
    from emoface_unreal.editor import bake

    live_settings, bake_settings = _settings()
    edited = dialogs.edit_bake(bake_settings)
    if edited is None:
        return
    _save(live_settings, edited)
    report = bake.bake_folder(edited)
    dialogs.message("EmoFace bake", report.summary())


@_safe
def on_diagnose() -> None:
    """Menu: diagnose the selected MetaHuman; the report's path is shown when it is done."""
    from emoface_unreal.editor import diagnose, live

    if live.is_running():
        dialogs.message("EmoFace Diagnose", "Stop live drive first (it uses Sequencer too).")
        return

    def done(path: Any) -> None:
        if path is None:
            dialogs.message("EmoFace Diagnose", "The report could not be written (see the log).")
            return
        text = path.with_suffix(".txt").read_text(encoding="utf-8")
        dialogs.message(
            "EmoFace Diagnose",
            f"{text}\n\nReport: {path}\n(attach the .json and .txt to your bug report)",
        )

    diagnose.start(on_done=done)
