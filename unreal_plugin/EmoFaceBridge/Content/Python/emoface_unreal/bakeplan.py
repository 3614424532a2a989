"""What a bake will create, computed without Unreal: files to read, asset names, keys per control.

``editor.bake`` turns these plans into assets; keeping the planning here lets tests check the
exact controls, values and names for a known file outside the editor.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from emoface_unreal.baked import EXTENSIONS, BakedClip
from emoface_unreal.controls import plan_controls
from emoface_unreal.rigmap import RigMapping

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
LEVEL_SEQUENCE_PREFIX = "LS_"
ANIM_SEQUENCE_PREFIX = "AS_"
SOUND_PREFIX = "SW_"
MAX_ASSET_NAME = 64  # long names make long package paths; Windows has a 260-char path limit


def find_baked_files(path: str | Path) -> list[Path]:
    """Baked files in a folder (sorted; hidden and partial files skipped), or the one file given.

    Raises:
        FileNotFoundError: the path does not exist.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")
    )


def asset_name(stem: str, prefix: str) -> str:
    """A valid Unreal asset name: ``prefix`` + the stem, anything but ``[A-Za-z0-9_]`` as ``_``."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", stem).strip("_") or "clip"
    return (prefix + clean)[:MAX_ASSET_NAME]


def unique_asset_names(paths: list[Path], prefix: str) -> dict[Path, str]:
    """Asset names for a batch, suffixed ``_2``, ``_3``... where two files would collide
    (``a-b.json`` and ``a_b.txt`` both become ``LS_a_b``)."""
    names: dict[Path, str] = {}
    used: set[str] = set()
    for path in paths:
        base = asset_name(path.stem, prefix)
        name, n = base, 1
        while name.lower() in used:  # asset names are case-insensitive
            n += 1
            name = f"{base[: MAX_ASSET_NAME - len(str(n)) - 1]}_{n}"
        used.add(name.lower())
        names[path] = name
    return names


def find_audio(
    source: Path, audio_folder: str = "", metadata: Mapping | None = None
) -> Path | None:
    """The audio of a baked file: same stem in ``audio_folder``, then beside the file, then the
    JSON's ``source_audio``/``audio`` metadata. None when there is none."""
    folders = [Path(audio_folder)] if audio_folder else []
    folders.append(source.parent)
    for folder in folders:
        for ext in AUDIO_EXTENSIONS:
            candidate = folder / (source.stem + ext)
            if candidate.is_file():
                return candidate
    for key in ("source_audio", "audio"):
        value = (metadata or {}).get(key)
        if isinstance(value, str) and value:
            candidate = Path(value)
            if not candidate.is_absolute():
                candidate = source.parent / candidate
            if candidate.is_file():
                return candidate
    return None


@dataclass
class ControlKeys:
    """Keys for the face control rig, one list of values per control (frame i at frame i).

    Attributes:
        fps: frame rate of the keys.
        n_frames: number of keys per control.
        floats: float control -> ``[T]`` values.
        vectors: 2D control -> ``([T] x, [T] y)``.
        unresolved: mapping targets the rig has no control for.
        notes: renames and type adaptations made while resolving.
    """

    fps: float
    n_frames: int
    floats: dict[str, list[float]] = field(default_factory=dict)
    vectors: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    unresolved: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def n_controls(self) -> int:
        """Controls keyed."""
        return len(self.floats) + len(self.vectors)


def control_keys(
    clip: BakedClip,
    mapping: RigMapping,
    rig_controls: Mapping[str, str] | None = None,
    signs: Mapping[tuple[str, str], float] | None = None,
) -> ControlKeys:
    """Map a clip through the face-board mapping and group the values by rig control.

    Args:
        clip: the baked clip.
        mapping: a ``control_rig`` mapping (``faceboard``).
        rig_controls: the rig's controls and types, to resolve names (None trusts the names).
        signs: axis sign flips, e.g. ``{("CTRL_C_jaw", "Y"): -1.0}``.
    """
    targets = mapping.apply_clip(clip)
    names = mapping.names
    plan = plan_controls(names, rig_controls, signs=signs)
    columns = [targets[n] for n in names]
    zeros = [0.0] * clip.n_frames
    keys = ControlKeys(clip.fps, clip.n_frames, unresolved=plan.unresolved, notes=plan.notes)
    for w in plan.floats:
        keys.floats[w.control] = [w.sign * v for v in columns[w.index]]
    for w in plan.vectors:
        xs = [w.x_sign * v for v in columns[w.x_index]] if w.x_index is not None else zeros
        ys = [w.y_sign * v for v in columns[w.y_index]] if w.y_index is not None else zeros
        keys.vectors[w.control] = (list(xs), list(ys))
    return keys


@dataclass
class CurveKeys:
    """Keys for ``CTRL_expressions_*`` curves on an AnimSequence.

    Attributes:
        fps: frame rate.
        times_s: key times in seconds, ``i / fps``.
        curves: curve name -> ``[T]`` values.
    """

    fps: float
    times_s: list[float]
    curves: dict[str, list[float]]


def curve_keys(clip: BakedClip, mapping: RigMapping) -> CurveKeys:
    """Map a clip through the curves mapping (``anim_curves``)."""
    times = [i / clip.fps for i in range(clip.n_frames)]
    return CurveKeys(clip.fps, times, mapping.apply_clip(clip))


# The curves MetaHuman Animator writes for head movement on a face AnimSequence
# (MetaHumanPerformanceExportUtils.cpp, 5.6: HeadYaw/HeadPitch/HeadRoll are the head pose's
# FRotator in degrees, HeadControlSwitch 1 turns head movement on), each written only when the
# target skeleton has the curve's metadata, as it does there.
HEAD_CURVES = {"HeadYaw": "head_yaw", "HeadPitch": "head_pitch", "HeadRoll": "head_roll"}
HEAD_SWITCH_CURVE = "HeadControlSwitch"


def head_curve_keys(
    clip: BakedClip, skeleton_curves: set[str]
) -> tuple[dict[str, list[float]], str]:
    """The head's curves for an AnimSequence, and why none when there are none ("" if some).

    Args:
        clip: the baked clip (its ``head`` channels, degrees).
        skeleton_curves: curve names with metadata on the target skeleton.
    """
    if not clip.head:
        return {}, ""
    missing = [name for name in HEAD_CURVES if name not in skeleton_curves]
    if missing:
        return {}, (
            "the clip's head motion is left out: the face skeleton has no "
            + "/".join(missing)
            + " curve (MetaHuman 5.6 face skeletons have them; add them to the skeleton to bake "
            "the head)"
        )
    curves = {curve: list(clip.head[channel]) for curve, channel in HEAD_CURVES.items()}
    if HEAD_SWITCH_CURVE in skeleton_curves:
        curves[HEAD_SWITCH_CURVE] = [1.0] * clip.n_frames
    return curves, ""


@dataclass
class FileResult:
    """What happened to one baked file.

    Attributes:
        source: the file.
        created: asset paths written.
        skipped: asset paths that existed and were kept (``replace_existing`` off).
        warnings: non-fatal problems (unresolved controls, missing audio...).
        error: why the file failed, or "" when it did not.
    """

    source: str
    created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class BakeReport:
    """The outcome of a batch; a failed file never stops the others."""

    results: list[FileResult] = field(default_factory=list)

    @property
    def n_failed(self) -> int:
        """Files that failed."""
        return sum(1 for r in self.results if r.error)

    @property
    def n_created(self) -> int:
        """Assets written."""
        return sum(len(r.created) for r in self.results)

    @property
    def n_skipped(self) -> int:
        """Assets kept because they existed."""
        return sum(len(r.skipped) for r in self.results)

    def summary(self) -> str:
        """One line per failure, then a total line."""
        lines = [f"FAILED {r.source}: {r.error}" for r in self.results if r.error]
        lines.append(
            f"EmoFace bake: {len(self.results)} file(s), {self.n_created} asset(s) created, "
            f"{self.n_skipped} kept (already exist), {self.n_failed} failed"
        )
        return "\n".join(lines)
