"""Baked-file writers and readers: the authors' ``.txt``, our ``.json`` and a ``.csv`` for Unreal.

Every writer goes through ``atomic_write`` (a temporary file in the same folder, then
``os.replace``), so a crash or Ctrl-C never leaves a half-written output behind.

JSON layout (``format_version`` 1)::

    {"format": "emoface-animation", "format_version": 1, "fps": 60, "n_frames": T,
     "metadata": {...engine, emotion, seed, source_audio...},
     "channels": {"CTRL_C_eye-translateX": [T floats], ...}}   # dataset order
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import ClassVar

import numpy as np

from emoface_core.animation import Animation
from emoface_core.controllers import CONTROLLER_NAMES, N_CONTROLLERS
from emoface_core.errors import EmoFaceError

JSON_FORMAT = "emoface-animation"
JSON_FORMAT_VERSION = 1


class BakedFileError(EmoFaceError, ValueError):
    """A baked animation file cannot be read."""


def default_file_mode() -> int:
    """The mode a plainly created file gets (0o666 less the umask); mkstemp's is owner-only."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling and ``os.replace``.

    The result gets the user's usual permissions (umask), so colleagues on a shared drive can
    read baked files, as they could any other file the user creates.
    """
    path = Path(path)
    # OS errors are re-raised naming the output, not the hidden temporary file.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"{path}: cannot create its folder ({e.strerror or e}: {e.filename})") from e
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as e:
        raise OSError(f"{path}: cannot write ({e.strerror or e})") from e
    try:
        os.chmod(tmp, default_file_mode())  # os.fchmod exists on Windows only from Python 3.13
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OSError(f"{path}: cannot write ({e.strerror or e})") from e
        raise


class Writer:
    """One output format: ``extension`` and ``render(animation) -> str``."""

    extension: ClassVar[str] = ""

    def render(self, animation: Animation) -> str:
        """Return the file contents."""
        raise NotImplementedError

    def write(self, animation: Animation, path: str | Path) -> Path:
        """Render and write atomically; returns the path written."""
        path = Path(path)
        atomic_write(path, self.render(animation))
        return path


class TxtWriter(Writer):
    """The authors' format: one line per frame, 174 comma-separated floats, no header."""

    extension = "txt"

    def render(self, animation: Animation) -> str:
        """Return one line of 174 values per frame."""
        buf = io.StringIO()
        np.savetxt(buf, animation.values, fmt="%.6f", delimiter=",")
        return buf.getvalue()


class JsonWriter(Writer):
    """Named channels plus metadata; what the Unreal plugin and ``emoface plot`` read."""

    extension = "json"

    def render(self, animation: Animation) -> str:
        """Return the JSON document described in the module docstring."""
        doc = {
            "format": JSON_FORMAT,
            "format_version": JSON_FORMAT_VERSION,
            "fps": animation.fps,
            "n_frames": animation.n_frames,
            "metadata": animation.metadata,
            "channels": {
                name: np.round(animation.values[:, i].astype(np.float64), 6).tolist()
                for i, name in enumerate(animation.controller_names)
            },
        }
        return json.dumps(doc, indent=1) + "\n"


class CsvWriter(Writer):
    """``time_s`` then one column per channel, with a header row (imports as a DataTable)."""

    extension = "csv"

    def render(self, animation: Animation) -> str:
        """Return a CSV with a header row and one row per frame."""
        t = np.arange(animation.n_frames, dtype=np.float64)[:, None] / animation.fps
        table = np.hstack([t, animation.values.astype(np.float64)])
        buf = io.StringIO()
        header = ",".join(("time_s", *animation.controller_names))
        np.savetxt(buf, table, fmt="%.6f", delimiter=",", header=header, comments="")
        return buf.getvalue()


WRITERS: dict[str, type[Writer]] = {"txt": TxtWriter, "json": JsonWriter, "csv": CsvWriter}
FORMAT_CHOICES = (*WRITERS, "all")


def get_writers(fmt: str) -> list[Writer]:
    """Writers for ``txt``, ``json``, ``csv`` or ``all``."""
    if fmt == "all":
        return [cls() for cls in WRITERS.values()]
    if fmt not in WRITERS:
        raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(FORMAT_CHOICES)}")
    return [WRITERS[fmt]()]


def format_of(path: str | Path) -> str:
    """The writer key for an output path, from its extension."""
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in WRITERS:
        raise ValueError(
            f"{path}: unknown output extension {('.' + ext) if ext else '(none)'}; "
            f"use {', '.join('.' + k for k in WRITERS)}"
        )
    return ext


def load_animation(path: str | Path) -> Animation:
    """Read a baked ``.txt`` (authors' format) or ``.json`` file.

    Raises:
        BakedFileError: the file is missing or malformed; the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise BakedFileError(f"{path}: no such file")
    ext = path.suffix.lower()
    try:
        if ext == ".txt":
            if not path.read_text(encoding="utf-8").strip():
                raise BakedFileError(f"{path}: the file is empty (no frames)")
            values = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
            if values.shape[1] != N_CONTROLLERS:
                raise BakedFileError(
                    f"{path}: expected {N_CONTROLLERS} comma-separated values per line, "
                    f"found {values.shape[1]}"
                )
            return Animation(values, metadata={"source": str(path)})
        if ext == ".json":
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != JSON_FORMAT:
                raise BakedFileError(f"{path}: not an EmoFace animation file (format field)")
            if doc.get("format_version") != JSON_FORMAT_VERSION:
                raise BakedFileError(
                    f"{path}: format_version {doc.get('format_version')!r} is not supported "
                    f"(this version reads {JSON_FORMAT_VERSION})"
                )
            channels = doc["channels"]
            missing = [n for n in CONTROLLER_NAMES if n not in channels]
            if missing:
                raise BakedFileError(f"{path}: missing channels, e.g. {missing[0]}")
            values = np.array([channels[n] for n in CONTROLLER_NAMES], dtype=np.float32).T
            if values.shape[0] == 0:
                raise BakedFileError(f"{path}: the file holds no frames")
            return Animation(values, fps=float(doc["fps"]), metadata=dict(doc.get("metadata", {})))
    except BakedFileError:
        raise
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise BakedFileError(f"{path}: malformed baked file ({e})") from e
    raise BakedFileError(f"{path}: unsupported extension {ext or '(none)'}; use .txt or .json")
