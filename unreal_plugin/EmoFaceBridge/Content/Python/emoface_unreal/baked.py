"""Read baked EmoFace animation files with the standard library: our JSON and the authors' .txt.

JSON (``emoface_core.formats``, ``format_version`` 1)::

    {"format": "emoface-animation", "format_version": 1, "fps": 60, "n_frames": T,
     "metadata": {...}, "channels": {"CTRL_C_eye-translateX": [T floats], ...}}

TXT (the authors' release): one line per frame, 174 comma-separated floats in dataset channel
order (``data/channels.json``), no header, 60 fps.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoface_unreal.data import load_channel_names

JSON_FORMAT = "emoface-animation"
JSON_FORMAT_VERSION = 1
TXT_FPS = 60.0  # the authors' files carry no rate; EmoFace animates at 60 fps
EXTENSIONS = (".json", ".txt")
# The head's rotations a JSON bake may carry (degrees; emoface_core.head's convention).
HEAD_CHANNELS = ("head_yaw", "head_pitch", "head_roll")


class BakedFileError(ValueError):
    """A baked file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class BakedClip:
    """One baked clip, column-wise (what keying wants).

    Attributes:
        path: the file it came from.
        fps: frames per second.
        columns: channel name -> ``[T]`` values, for every channel in ``channel_names``.
        channel_names: the 174 channels, in dataset order.
        metadata: the JSON file's metadata (engine, emotion, source audio...); empty for .txt.
        head: ``head_yaw``, ``head_pitch``, ``head_roll`` -> ``[T]`` degrees when the JSON file
            carries the head's rotations (``HEAD_CHANNELS``), else empty (and always for .txt).
    """

    path: str
    fps: float
    columns: dict[str, list[float]]
    channel_names: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    head: dict[str, list[float]] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return len(self.columns[self.channel_names[0]]) if self.channel_names else 0

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.n_frames / self.fps

    def frame(self, i: int) -> list[float]:
        """Frame ``i`` as 174 values in channel order."""
        return [self.columns[name][i] for name in self.channel_names]


def load_clip(path: str | Path, *, txt_fps: float = TXT_FPS) -> BakedClip:
    """Read a ``.json`` or ``.txt`` baked file.

    Args:
        path: the file.
        txt_fps: frame rate to assume for ``.txt`` files (they carry none).

    Raises:
        BakedFileError: missing, unreadable, wrong extension or malformed.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        raise BakedFileError(f"{path}: unsupported extension {ext or '(none)'}; use .json or .txt")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BakedFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BakedFileError(f"{path}: cannot read ({e})") from e
    names = load_channel_names()
    if ext == ".txt":
        return _parse_txt(text, str(path), names, txt_fps)
    return _parse_json(text, str(path), names)


def _finite(values: list[Any], where: str) -> list[float]:
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise BakedFileError(f"{where}: value {i} is {v!r}, not a finite number")
        out.append(float(v))
    return out


def _parse_json(text: str, path: str, names: tuple[str, ...]) -> BakedClip:
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise BakedFileError(f"{path}: not JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != JSON_FORMAT:
        raise BakedFileError(
            f"{path}: not an EmoFace animation file (format must be {JSON_FORMAT!r})"
        )
    if doc.get("format_version") != JSON_FORMAT_VERSION:
        raise BakedFileError(
            f"{path}: format_version {doc.get('format_version')!r} is not supported "
            f"(this plugin reads {JSON_FORMAT_VERSION})"
        )
    fps = doc.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 1000:
        raise BakedFileError(f"{path}: fps must be a number in (0, 1000], got {fps!r}")
    channels = doc.get("channels")
    if not isinstance(channels, dict):
        raise BakedFileError(f"{path}: 'channels' must be an object of channel name -> values")
    missing = [n for n in names if n not in channels]
    if missing:
        raise BakedFileError(f"{path}: {len(missing)} channel(s) missing, e.g. {missing[0]}")
    columns: dict[str, list[float]] = {}
    n_frames = None
    for name in names:
        values = channels[name]
        if not isinstance(values, list):
            raise BakedFileError(f"{path}: channel {name} must be a list of numbers")
        if n_frames is None:
            n_frames = len(values)
        elif len(values) != n_frames:
            raise BakedFileError(
                f"{path}: channel {name} has {len(values)} frames, {names[0]} has {n_frames}"
            )
        columns[name] = _finite(values, f"{path}: channel {name}")
    if not n_frames:
        raise BakedFileError(f"{path}: no frames")
    declared = doc.get("n_frames", n_frames)
    if declared != n_frames:
        raise BakedFileError(f"{path}: n_frames says {declared!r} but the channels hold {n_frames}")
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    head: dict[str, list[float]] = {}
    if all(name in channels for name in HEAD_CHANNELS):
        for name in HEAD_CHANNELS:
            values = channels[name]
            if not isinstance(values, list) or len(values) != n_frames:
                raise BakedFileError(
                    f"{path}: channel {name} must be a list of {n_frames} numbers (the frames)"
                )
            head[name] = _finite(values, f"{path}: channel {name}")
    return BakedClip(path, float(fps), columns, names, dict(metadata), head)


def _parse_txt(text: str, path: str, names: tuple[str, ...], fps: float) -> BakedClip:
    if not 0 < fps <= 1000:
        raise BakedFileError(f"{path}: frame rate must be in (0, 1000], got {fps!r}")
    rows: list[list[float]] = []
    for line_no, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(",")
        if len(parts) != len(names):
            raise BakedFileError(
                f"{path}:{line_no}: expected {len(names)} comma-separated values, "
                f"found {len(parts)}"
            )
        try:
            row = [float(p) for p in parts]
        except ValueError as e:
            raise BakedFileError(f"{path}:{line_no}: {e}") from None
        if not all(math.isfinite(v) for v in row):
            raise BakedFileError(f"{path}:{line_no}: values must be finite numbers")
        rows.append(row)
    if not rows:
        raise BakedFileError(f"{path}: no frames")
    columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    return BakedClip(path, float(fps), columns, names, {})
