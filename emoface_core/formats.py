"""Baked-file writers and readers: the authors' ``.txt``, our ``.json`` and a ``.csv`` for Unreal.

Every writer goes through ``atomic_write`` (a temporary file in the same folder, then
``os.replace``), so a crash or Ctrl-C never leaves a half-written output behind.

JSON layout (``format_version`` 1)::

    {"format": "emoface-animation", "format_version": 1, "fps": 60, "n_frames": T,
     "metadata": {...engine, emotion, seed, source_audio, head: {units, convention}...},
     "channels": {"CTRL_C_eye-translateX": [T floats], ...,   # dataset order, then
                  "head_yaw": [...], "head_pitch": [...], "head_roll": [...]}}  # degrees

The head channels are there when the animation has head motion (``emoface_core.head``); readers
that know only the 174 channels ignore them. ``.txt`` stays the authors' 174 columns.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, ClassVar

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


def atomic_write(path: str | Path, data: str | bytes | Callable[[BinaryIO], None]) -> None:
    """Write ``data`` to ``path`` via a temporary sibling and ``os.replace``.

    ``data`` may be a function that writes into the (binary) temporary file, so a large output
    is produced in pieces instead of as one string in memory. The result gets the user's usual
    permissions (umask), so colleagues on a shared drive can read baked files, as they could any
    other file the user creates.
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
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OSError(f"{path}: cannot write ({e.strerror or e})") from e
        raise


WRITE_BLOCK_FRAMES = 4096  # rows (or one channel's values) formatted at a time: ~6 MB of text


class Writer:
    """One output format: ``extension``, ``write_to(animation, file)`` and ``render``.

    ``write_to`` produces the file in blocks of frames, so memory stays bounded by the block,
    not by the clip (an hour-long bake is a few hundred MB of text).
    """

    extension: ClassVar[str] = ""

    def write_to(self, animation: Animation, f: BinaryIO) -> None:
        """Write the file's contents (UTF-8) into the binary file ``f``."""
        raise NotImplementedError

    def render(self, animation: Animation) -> str:
        """Return the file contents (for small outputs: replies, tests)."""
        buf = io.BytesIO()
        self.write_to(animation, buf)
        return buf.getvalue().decode("utf-8")

    def write(self, animation: Animation, path: str | Path) -> Path:
        """Write atomically, in blocks; returns the path written."""
        path = Path(path)
        atomic_write(path, lambda f: self.write_to(animation, f))
        return path


def _write_rows(f: BinaryIO, table: np.ndarray, header: str | None = None) -> None:
    """``np.savetxt`` of ``table`` (``%.6f``, comma-separated), a block of rows at a time."""
    if header is not None:
        f.write((header + "\n").encode("utf-8"))
    for start in range(0, len(table), WRITE_BLOCK_FRAMES):
        buf = io.BytesIO()
        np.savetxt(buf, table[start : start + WRITE_BLOCK_FRAMES], fmt="%.6f", delimiter=",")
        f.write(buf.getvalue())


class TxtWriter(Writer):
    """The authors' format: one line per frame, 174 comma-separated floats, no header."""

    extension = "txt"

    def write_to(self, animation: Animation, f: BinaryIO) -> None:
        """One line of 174 values per frame."""
        _write_rows(f, animation.values)


class JsonWriter(Writer):
    """Named channels plus metadata; what the Unreal plugin and ``emoface plot`` read.

    The text is exactly ``json.dumps(doc, indent=1)`` of the document in the module docstring
    (values rounded to 6 decimals), written one channel and one block of values at a time.
    """

    extension = "json"

    def write_to(self, animation: Animation, f: BinaryIO) -> None:
        """The JSON document described in the module docstring."""
        head = {
            "format": JSON_FORMAT,
            "format_version": JSON_FORMAT_VERSION,
            "fps": animation.fps,
            "n_frames": animation.n_frames,
            "metadata": animation.metadata,
            "channels": None,
        }
        text = json.dumps(head, indent=1)
        cut = text.rindex('"channels": null')
        f.write(text[:cut].encode("utf-8") + b'"channels": {')
        columns = _named_columns(animation)
        names = [name for name, _ in columns]
        for i, (name, column) in enumerate(columns):
            f.write(b"\n  " + json.dumps(name).encode("utf-8") + b": [")
            for start in range(0, len(column), WRITE_BLOCK_FRAMES):
                block = np.round(column[start : start + WRITE_BLOCK_FRAMES].astype(np.float64), 6)
                items = ",\n   ".join(map(float.__repr__, block.tolist()))
                f.write((",\n   " if start else "\n   ").encode() + items.encode())
            f.write(b"\n  ]" if len(column) else b"]")
            if i < len(names) - 1:
                f.write(b",")
        f.write(b"\n }\n}\n" if names else b"}\n}\n")


def _named_columns(animation: Animation) -> list[tuple[str, np.ndarray]]:
    """The channels, then the head rotations when the animation has them (``HEAD_CHANNELS``)."""
    from emoface_core.head import HEAD_CHANNELS

    columns = [(name, animation.values[:, i]) for i, name in enumerate(animation.controller_names)]
    if animation.head is not None:
        columns += [(name, animation.head[:, i]) for i, name in enumerate(HEAD_CHANNELS)]
    return columns


class CsvWriter(Writer):
    """``time_s`` then one column per channel, with a header row (imports as a DataTable).

    The head rotations (``head_yaw``, ``head_pitch``, ``head_roll``) follow when there.
    """

    extension = "csv"

    def write_to(self, animation: Animation, f: BinaryIO) -> None:
        """A header row and one row per frame."""
        from emoface_core.head import HEAD_CHANNELS

        head = animation.head
        names = (*animation.controller_names, *(HEAD_CHANNELS if head is not None else ()))
        f.write((",".join(("time_s", *names)) + "\n").encode("utf-8"))
        for start in range(0, animation.n_frames, WRITE_BLOCK_FRAMES):
            stop = min(animation.n_frames, start + WRITE_BLOCK_FRAMES)
            t = np.arange(start, stop, dtype=np.float64)[:, None] / animation.fps
            parts = [t, animation.values[start:stop].astype(np.float64)]
            if head is not None:
                parts.append(head[start:stop].astype(np.float64))
            _write_rows(f, np.hstack(parts))


class CurveTableWriter(Writer):
    """Unreal's CurveTable CSV layout: the first row the key times, then one row per curve.

    ``CurveTable.cpp`` ``UCurveTable::CreateTableFromCSVString`` (UE 5.6): row 0 holds the X
    values from its second cell on (the first cell is skipped, being the row-name column; the
    X values must be unique), every later row is ``name, y0, y1, ...`` with as many values as
    there are X values. So this is the transpose of ``CsvWriter``, which is the layout for
    spreadsheets, DCCs and DataTables.

    Args:
        names: the curve names (default: the 174 channels).
        transform: ``[n, 174] -> [n, len(names)]`` (a rig mapping's ``apply_array``); default:
            the channels as they are.
    """

    extension = "curvetable.csv"

    def __init__(
        self,
        names: Sequence[str] | None = None,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.names = tuple(names) if names is not None else None
        self.transform = transform

    def write_to(self, animation: Animation, f: BinaryIO) -> None:
        """Times, then the curves; each curve's row is formatted in blocks of frames."""
        names = self.names or animation.controller_names
        t = np.arange(animation.n_frames, dtype=np.float64) / animation.fps
        values = animation.values
        table = values if self.transform is None else np.asarray(self.transform(values))
        rows: list[tuple[str, np.ndarray]] = [("Name", t)]
        rows += [(n, table[:, i]) for i, n in enumerate(names)]
        if animation.head is not None:
            from emoface_core.head import HEAD_CHANNELS

            rows += [(n, animation.head[:, i]) for i, n in enumerate(HEAD_CHANNELS)]
        for name, row in rows:
            f.write(name.encode("utf-8"))
            for start in range(0, len(row), WRITE_BLOCK_FRAMES):
                buf = io.BytesIO()
                piece = row[start : start + WRITE_BLOCK_FRAMES].astype(np.float64)[None]
                np.savetxt(buf, piece, fmt="%.6f", delimiter=",", newline="")
                f.write(b"," + buf.getvalue())
            f.write(b"\n")


WRITERS: dict[str, type[Writer]] = {
    "txt": TxtWriter,
    "json": JsonWriter,
    "csv": CsvWriter,
    "curvetable": CurveTableWriter,
}
ALL_FORMATS = ("txt", "json", "csv")  # what "all" writes (the curve table is asked for by name)
FORMAT_CHOICES = (*WRITERS, "all")


def get_writers(fmt: str) -> list[Writer]:
    """Writers for ``txt``, ``json``, ``csv``, ``curvetable`` or ``all``."""
    if fmt == "all":
        return [WRITERS[k]() for k in ALL_FORMATS]
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
            from emoface_core.head import HEAD_CHANNELS

            head = None
            if all(n in channels for n in HEAD_CHANNELS):
                head = np.array([channels[n] for n in HEAD_CHANNELS], dtype=np.float32).T
                if head.shape != (values.shape[0], 3):
                    raise BakedFileError(f"{path}: head channels differ in length from the rest")
            metadata = dict(doc.get("metadata", {}))
            return Animation(values, fps=float(doc["fps"]), metadata=metadata, head=head)
    except BakedFileError:
        raise
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise BakedFileError(f"{path}: malformed baked file ({e})") from e
    raise BakedFileError(f"{path}: unsupported extension {ext or '(none)'}; use .txt or .json")
