"""Line audio in the editor: import a sound file once, play it from an offset, stop it."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from typing import Any

from emoface_unreal.bakeplan import SOUND_PREFIX, asset_name
from emoface_unreal.editor import scene

log = logging.getLogger(__name__)

LIVE_SOUND_FOLDER = "/Game/EmoFace/Audio"


def sound_asset_name(path: str) -> str:
    """``SW_<stem>_<hash>``: stable per file path and modification time, so an edited file
    re-imports and two ``line.wav`` in different folders do not collide."""
    try:
        stamp = f"{os.path.abspath(path)}|{os.path.getmtime(path):.0f}"
    except OSError:
        stamp = os.path.abspath(path)
    digest = hashlib.sha1(stamp.encode("utf-8")).hexdigest()[:8]
    return f"{asset_name(os.path.splitext(os.path.basename(path))[0], SOUND_PREFIX)[:48]}_{digest}"


def import_sound(path: str, folder: str = LIVE_SOUND_FOLDER) -> Any:
    """The SoundWave for an audio file, importing it on first use.

    Raises:
        SceneError: the file is missing or the import produced nothing.
    """
    import unreal

    if not os.path.isfile(path):
        raise scene.SceneError(f"{path}: audio file not found on this machine")
    name = sound_asset_name(path)
    asset_path = f"{folder}/{name}"
    library = unreal.EditorAssetLibrary
    if library.does_asset_exist(asset_path):
        return library.load_asset(asset_path)
    task = unreal.AssetImportTask()
    task.set_editor_property("filename", os.path.abspath(path))
    task.set_editor_property("destination_path", folder)
    task.set_editor_property("destination_name", name)
    task.set_editor_property("automated", True)  # no dialogs
    task.set_editor_property("replace_existing", True)
    task.set_editor_property("save", False)
    unreal.AssetToolsHelpers.get_asset_tools().import_asset_tasks([task])
    imported = list(task.get_editor_property("imported_object_paths"))
    sound = library.load_asset(imported[0]) if imported else None
    if sound is None:
        raise scene.SceneError(f"{path}: Unreal could not import it as a sound (wav, flac, ogg...)")
    return sound


class AudioPlayer:
    """Plays one sound per subject in the editor world."""

    def __init__(self) -> None:
        self._playing: dict[str, Any] = {}

    def play(self, subject: str, path: str, start_s: float) -> None:
        """Play ``path`` from ``start_s`` seconds in, replacing the subject's current sound.

        Raises:
            SceneError: the file cannot be imported.
        """
        import unreal

        self.stop(subject)
        sound = import_sound(path)
        component = unreal.GameplayStatics.spawn_sound2d(
            scene.editor_world(), sound, start_time=max(0.0, start_s)
        )
        if component is not None:
            self._playing[subject] = component
        log.info("EmoFace: %s: playing %s from %.2f s", subject, os.path.basename(path), start_s)

    def stop(self, subject: str) -> None:
        """Stop the subject's sound, if any."""
        component = self._playing.pop(subject, None)
        if component is not None:
            with contextlib.suppress(Exception):  # the component may already be gone
                component.stop()

    def stop_all(self) -> None:
        """Stop every sound."""
        for subject in list(self._playing):
            self.stop(subject)
