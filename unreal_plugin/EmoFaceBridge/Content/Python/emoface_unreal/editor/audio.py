"""Line audio in the editor: find the file, import it once, play it from an offset, stop it."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable
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


def resolve_audio(path: str, audio_folder: str = "") -> tuple[str, list[str]]:
    """``(the file to play or "", the paths tried)``.

    The sender's path first (senders put absolute paths in START); then, for a path that does
    not exist here (another machine, or an old sender's relative name, which the editor would
    resolve against its own working directory), the file of that name in ``audio_folder``.
    """
    tried = [path]
    if os.path.isabs(path) and os.path.isfile(path):
        return path, tried
    if audio_folder:
        name = path.replace("\\", "/").rsplit("/", 1)[-1]
        candidate = os.path.join(audio_folder, name)
        tried.append(candidate)
        if os.path.isfile(candidate):
            return os.path.abspath(candidate), tried
    if not os.path.isabs(path) and os.path.isfile(path):  # relative to the editor's directory
        return os.path.abspath(path), tried
    return "", tried


def import_sound(path: str, folder: str = LIVE_SOUND_FOLDER, *, save: bool = False) -> Any:
    """The SoundWave for an audio file, importing it on first use.

    Args:
        save: save the imported asset (baked sequences reference it: an unsaved SoundWave is
            gone after an editor restart and leaves their audio track empty).

    Raises:
        SceneError: the file is missing or the import produced nothing.
    """
    import unreal

    if not os.path.isfile(path):
        raise scene.SceneError(f"{path}: audio file not found on this machine")
    name = sound_asset_name(path)
    asset_path = f"{folder}/{name}"
    library = unreal.EditorAssetLibrary
    existing = library.load_asset(asset_path)  # by path: no asset registry scan needed
    if existing is not None:
        if save:
            library.save_loaded_asset(existing)
        return existing
    task = unreal.AssetImportTask()
    task.set_editor_property("filename", os.path.abspath(path))
    task.set_editor_property("destination_path", folder)
    task.set_editor_property("destination_name", name)
    task.set_editor_property("automated", True)  # no dialogs
    task.set_editor_property("replace_existing", True)
    task.set_editor_property("save", save)
    unreal.AssetToolsHelpers.get_asset_tools().import_asset_tasks([task])
    imported = list(task.get_editor_property("imported_object_paths"))
    sound = library.load_asset(imported[0]) if imported else None
    if sound is None:
        raise scene.SceneError(f"{path}: Unreal could not import it as a sound (wav, flac, ogg...)")
    return sound


class AudioPlayer:
    """Plays one sound per subject in the editor world.

    Args:
        audio_folder: where to look for files the sender's path does not find.
        clock: wall clock (the seek is computed from it when the sound starts).
    """

    def __init__(self, audio_folder: str = "", clock: Callable[[], float] = time.time) -> None:
        self.audio_folder = audio_folder
        self.clock = clock
        self._playing: dict[str, Any] = {}
        # (subject, the sender's path) -> (SoundWave, the file it was imported from)
        self._prepared: dict[tuple[str, str], tuple[Any, str]] = {}
        self.status: dict[str, str] = {}  # subject -> what happened to its line audio

    def prepare(self, subject: str, path: str) -> None:
        """Find and import a line's audio now (at START), so playing it later is instant.

        Raises:
            SceneError: not found (the message lists the paths tried) or not importable.
        """
        self._prepared = {k: v for k, v in self._prepared.items() if k[0] != subject}
        found, tried = resolve_audio(path, self.audio_folder)
        if not found:
            self.status[subject] = f"not found (tried {', '.join(tried)})"
            hint = "" if self.audio_folder else "; set the audio folder in the EmoFace settings"
            raise scene.SceneError(f"line audio not found: tried {', '.join(tried)}{hint}")
        # Saved: an unsaved import would be a dirty package for the user's "Save All"; the
        # folder is a cache (one asset per file and modification time), safe to delete.
        self._prepared[(subject, path)] = (import_sound(found, save=True), found)
        self.status[subject] = f"ready {found}"

    def play(self, subject: str, path: str, play_at: float) -> None:
        """Start the subject's line audio so that audio time 0 is at wall time ``play_at``,
        replacing its current sound. The seek is taken after any import, at the start itself.

        Raises:
            SceneError: the file cannot be found or imported, or the editor has no audio
                device (a headless editor or ``-nosound``: ``spawn_sound2d`` returns None).
        """
        import unreal

        self.stop(subject)
        if (subject, path) not in self._prepared:
            self.prepare(subject, path)
        sound, found = self._prepared.pop((subject, path))
        start_s = max(0.0, self.clock() - play_at)
        component = unreal.GameplayStatics.spawn_sound2d(
            scene.editor_world(), sound, start_time=start_s
        )
        if component is None:
            self.status[subject] = "silent: the editor has no audio device"
            raise scene.SceneError(
                "the editor has no audio device (headless, -nosound or no output device), so "
                "line audio cannot play"
            )
        self._playing[subject] = component
        self.status[subject] = f"playing {found} from {start_s:.2f} s"
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
