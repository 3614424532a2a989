"""Training/evaluation datasets: finding clips, loading them, cutting them, and checking them.

A clip is an audio file plus a text file of controller values (one line per 60 fps frame, 174
comma-separated floats, columns in ``CONTROLLER_NAMES`` order) and an emotion. Four layouts are
understood, tried in this order:

* a **manifest** (``.csv`` with a header row, or ``.jsonl``): columns ``audio``, ``controls``,
  ``emotion`` (optional: else the audio file name's prefix) and ``split`` (optional: else
  ``all``). Relative paths are relative to the manifest's folder. ``ROOT`` may be the manifest
  itself or a folder holding ``manifest.csv`` / ``manifest.jsonl``.
* the authors' release with **split folders**: ``ROOT/<split>/WAV/*.wav`` and
  ``ROOT/<split>/VALID_CTR/*.txt`` with the same stem (subfolders allowed, mirrored). The split is
  the folder name; ``val``, ``valid`` and ``dev`` mean ``validation``.
* the release's **single split**: ``ROOT/WAV`` and ``ROOT/VALID_CTR``. The split is ``ROOT``'s
  name when it is ``train``/``validation``/``test``, else ``all``.
* a **plain folder** of pairs by stem: ``ROOT/x.wav`` + ``ROOT/x.txt`` (the shared sample).

The emotion comes from the file name as in the release (``ang_...``, first three letters), and
a full-word prefix (``angry_...``) works too. Ground truth is truncated to the audio's frame
count ``int(duration * 60)`` as the release does; a difference of more than a few frames means
the pair does not belong together and is an error.

Longer than most modules (~800 lines): discovery (folders, manifests), the per-file checks that
``emoface dataset check`` reports, and the pieces a training epoch samples share one description
of a clip (``Clip``); splitting them would split that description.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import logging
import math
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoface_core.audio import FPS, SAMPLE_RATE, Audio, frame_count, load_audio, read_audio_file
from emoface_core.controllers import CONTROLLER_NAMES, N_CONTROLLERS, channel_range
from emoface_core.emotion import EMOTIONS, emotion_from_filename, emotion_id
from emoface_core.errors import AudioError, DatasetError, EmotionSpecError

log = logging.getLogger(__name__)

AUDIO_DIR = "WAV"  # the release's folder names
CONTROLS_DIR = "VALID_CTR"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
CONTROLS_EXTENSION = ".txt"
MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}
KNOWN_SPLITS = ("train", "validation", "test")
ALL = "all"  # the split of clips that were given none, and the selector for every clip

DEFAULT_MAX_FRAME_MISMATCH = 3  # frames (50 ms); the shared sample is off by 1
DEFAULT_RANGE_TOLERANCE = 1e-3  # board units beyond channel_range before a value is an error
CONSTANT_EPS = 1e-6  # a channel whose values span less than this never moves
MAX_SEGMENT_S = 60.0  # the release cuts clips into pieces of at most 60 s
MIN_TAIL_S = 1.0  # a last piece shorter than this joins the one before it


@dataclass(frozen=True)
class Clip:
    """One audio file with its ground-truth controls.

    Attributes:
        name: the audio file's path relative to its folder, without extension (for messages).
        audio_path: the audio file.
        controls_path: the controller values (``.txt``).
        emotion: id 0-6, or None when neither a manifest nor the file name says.
        split: "train", "validation", "test", "all" or a manifest's own name.
    """

    name: str
    audio_path: Path
    controls_path: Path
    emotion: int | None
    split: str

    @property
    def emotion_name(self) -> str:
        """The emotion's name, or "unknown"."""
        return EMOTIONS[self.emotion] if self.emotion is not None else "unknown"


@dataclass(frozen=True)
class DatasetIndex:
    """The clips of a dataset and how they were found.

    Attributes:
        root: what the user pointed at.
        layout: "manifest", "release-splits", "release" or "folder".
        clips: every clip, sorted by split then name.
        orphans: ``(path, reason)`` for files that lack their partner.
    """

    root: Path
    layout: str
    clips: tuple[Clip, ...]
    orphans: tuple[tuple[Path, str], ...] = ()

    @property
    def splits(self) -> list[str]:
        """Split names present, known ones first."""
        present = {c.split for c in self.clips}
        order = [s for s in (*KNOWN_SPLITS, ALL) if s in present]
        return order + sorted(present - set(order))

    def select(self, split: str = ALL) -> list[Clip]:
        """Clips of one split (``"all"`` for every clip).

        Raises:
            DatasetError: the split does not exist.
        """
        if split == ALL:
            return list(self.clips)
        split = normalize_split(split)
        chosen = [c for c in self.clips if c.split == split]
        if not chosen:
            raise DatasetError(
                f"{self.root}: no clips in split {split!r}; splits present: "
                f"{', '.join(self.splits) or 'none'}"
            )
        return chosen


def normalize_split(name: str) -> str:
    """Lower-case a split name and map ``val``/``valid``/``dev`` to ``validation``."""
    name = name.strip().lower()
    return SPLIT_ALIASES.get(name, name)


def emotion_of_name(name: str) -> int | None:
    """Emotion id from a file name: ``angry_x``, ``ang_x`` or the release's first three letters."""
    stem = Path(name).name
    token = re.split(r"[_\-. ]", stem, maxsplit=1)[0]
    if token and not token.isdigit():
        try:
            return emotion_id(token)
        except EmotionSpecError:
            pass
    return emotion_from_filename(stem)


def discover_dataset(root: str | Path, *, manifest: str | Path | None = None) -> DatasetIndex:
    """Find every clip under ``root`` (see the module docstring for the layouts).

    Args:
        root: a dataset folder or a manifest file.
        manifest: a manifest file that overrides the folder layouts.

    Returns:
        The index of clips.

    Raises:
        DatasetError: nothing usable was found, or a manifest is malformed.
    """
    root = Path(root)
    if manifest is not None:
        return _from_manifest(Path(manifest), root)
    if root.is_file():
        if root.suffix.lower() in (".csv", ".jsonl"):
            return _from_manifest(root, root)
        raise DatasetError(f"{root}: not a dataset folder or a .csv/.jsonl manifest")
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    for name in MANIFEST_NAMES:
        if (root / name).is_file():
            log.info("%s: using %s", root, name)
            return _from_manifest(root / name, root)
    split_dirs = sorted(d for d in root.iterdir() if d.is_dir() and (d / AUDIO_DIR).is_dir())
    if split_dirs:
        clips, orphans = [], []
        for d in split_dirs:
            c, o = _from_release_folder(d, normalize_split(d.name))
            clips += c
            orphans += o
        return _index(root, "release-splits", clips, orphans)
    if (root / AUDIO_DIR).is_dir():
        split = normalize_split(root.name)
        clips, orphans = _from_release_folder(root, split if split in KNOWN_SPLITS else ALL)
        return _index(root, "release", clips, orphans)
    clips, orphans = _from_plain_folder(root)
    if not clips:
        raise DatasetError(
            f"{root}: no clips found; expected {AUDIO_DIR}/ and {CONTROLS_DIR}/ folders "
            "(optionally inside train/ and validation/), audio + .txt pairs with the same name, "
            "or a manifest"
        )
    return _index(root, "folder", clips, orphans)


def _index(root: Path, layout: str, clips: list[Clip], orphans: list) -> DatasetIndex:
    if not clips:
        raise DatasetError(f"{root}: no audio file has a matching controls file")
    clips.sort(key=lambda c: (c.split, c.name))
    return DatasetIndex(root, layout, tuple(clips), tuple(orphans))


def _audio_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
    )


def _from_release_folder(folder: Path, split: str) -> tuple[list[Clip], list]:
    audio_root, controls_root = folder / AUDIO_DIR, folder / CONTROLS_DIR
    clips, orphans, used = [], [], set()
    for audio in _audio_files(audio_root):
        rel = audio.relative_to(audio_root).with_suffix("")
        controls = controls_root / rel.with_suffix(CONTROLS_EXTENSION)
        if not controls.is_file():
            orphans.append((audio, f"no controls file {controls}"))
            continue
        used.add(controls.resolve())
        clips.append(Clip(rel.as_posix(), audio, controls, emotion_of_name(audio.name), split))
    if controls_root.is_dir():
        for controls in sorted(controls_root.rglob("*" + CONTROLS_EXTENSION)):
            if controls.resolve() not in used:
                orphans.append((controls, f"no audio file for it in {audio_root}"))
    return clips, orphans


def _from_plain_folder(folder: Path) -> tuple[list[Clip], list]:
    split = normalize_split(folder.name)
    split = split if split in KNOWN_SPLITS else ALL
    clips, orphans = [], []
    for audio in sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
    ):
        controls = audio.with_suffix(CONTROLS_EXTENSION)
        if controls.is_file():
            clips.append(Clip(audio.stem, audio, controls, emotion_of_name(audio.name), split))
        else:
            orphans.append((audio, f"no controls file {controls.name} beside it"))
    return clips, orphans


def _from_manifest(manifest: Path, root: Path) -> DatasetIndex:
    if not manifest.is_file():
        raise DatasetError(f"{manifest}: no such manifest file")
    rows = list(_manifest_rows(manifest))
    base = manifest.parent
    clips = []
    for line, row in rows:
        where = f"{manifest}:{line}"
        audio_text, controls_text = row.get("audio"), row.get("controls")
        if not audio_text or not controls_text:
            raise DatasetError(f"{where}: every row needs 'audio' and 'controls' paths")
        audio, controls = base / str(audio_text), base / str(controls_text)
        emotion_text = row.get("emotion")
        if emotion_text not in (None, ""):
            try:
                emotion: int | None = emotion_id(str(emotion_text))
            except EmotionSpecError as e:
                raise DatasetError(f"{where}: {e}") from None
        else:
            emotion = emotion_of_name(audio.name)
        split = normalize_split(str(row.get("split") or ALL))
        name = Path(str(audio_text)).with_suffix("").as_posix()
        clips.append(Clip(name, audio, controls, emotion, split))
    if not clips:
        raise DatasetError(f"{manifest}: the manifest lists no clips")
    # Listed files that are missing stay in the index: check_dataset reports them as errors.
    return _index(root, "manifest", clips, [])


def _manifest_rows(manifest: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    text = manifest.read_text(encoding="utf-8-sig")
    if manifest.suffix.lower() == ".jsonl":
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{manifest}:{i}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DatasetError(f"{manifest}:{i}: each line must be a JSON object")
            yield i, row
        return
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    if "audio" not in header or "controls" not in header:
        raise DatasetError(
            f"{manifest}: the header row must name 'audio' and 'controls' columns "
            f"(optional: 'emotion', 'split'); found {header}"
        )
    for i, row in enumerate(reader, start=2):
        yield i, {(k or "").strip(): (v or "").strip() for k, v in row.items()}


def load_controls(path: str | Path) -> np.ndarray:
    """Read a controls file: one line per frame, 174 comma-separated floats.

    NaN and out-of-range values are returned as they are (``check_dataset`` reports them).

    Returns:
        float32 ``[T, 174]``.

    Raises:
        DatasetError: missing file, non-numbers or a wrong number of columns; names the line.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such controls file")
    rows = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.rstrip(",").split(",")
            if len(parts) != N_CONTROLLERS:
                raise DatasetError(
                    f"{path}:{i}: expected {N_CONTROLLERS} comma-separated values, "
                    f"found {len(parts)}"
                )
            try:
                rows.append([float(p) for p in parts])
            except ValueError:
                bad = next(p for p in parts if not _is_float(p))
                raise DatasetError(f"{path}:{i}: {bad.strip()!r} is not a number") from None
    if not rows:
        raise DatasetError(f"{path}: the controls file is empty")
    return np.asarray(rows, dtype=np.float32)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def align_controls(
    controls: np.ndarray,
    n_audio_frames: int,
    *,
    max_mismatch: int = DEFAULT_MAX_FRAME_MISMATCH,
    where: str = "",
) -> np.ndarray:
    """Truncate ground truth to the audio's frame count, as the release does.

    A controls file up to ``max_mismatch`` frames shorter than the audio is accepted, and the
    caller then uses only that many frames of the audio.

    Raises:
        DatasetError: the lengths differ by more than ``max_mismatch`` frames.
    """
    diff = controls.shape[0] - n_audio_frames
    if abs(diff) > max_mismatch:
        raise DatasetError(
            f"{where}: {controls.shape[0]} control frames but the audio has {n_audio_frames} "
            f"({diff:+d}, more than the allowed {max_mismatch}); do these files belong together?"
        )
    return controls[:n_audio_frames]


@dataclass(frozen=True)
class LoadedClip:
    """A clip in memory: decoded audio and ground truth cut to the same number of frames."""

    clip: Clip
    audio: Audio
    controls: np.ndarray  # float32 [T, 174]

    @property
    def n_frames(self) -> int:
        """Frames T used for training and scoring (at most the audio's frame count)."""
        return int(self.controls.shape[0])


def load_clip(clip: Clip, *, max_frame_mismatch: int = DEFAULT_MAX_FRAME_MISMATCH) -> LoadedClip:
    """Decode a clip's audio and read its controls, aligned to each other.

    Raises:
        DatasetError: unreadable files, NaN/inf values or a length mismatch; names the file.
    """
    try:
        audio = load_audio(clip.audio_path)
    except AudioError as e:
        raise DatasetError(str(e)) from e
    controls = load_controls(clip.controls_path)
    if not np.all(np.isfinite(controls)):
        raise DatasetError(f"{clip.controls_path}: holds NaN or infinite values")
    controls = align_controls(
        controls, audio.n_frames, max_mismatch=max_frame_mismatch, where=str(clip.controls_path)
    )
    return LoadedClip(clip, audio, controls)


@dataclass(frozen=True)
class Segment:
    """A piece of a clip that the network sees in one step.

    ``[start_sample, end_sample)`` indexes the clip's 16 kHz samples (after normalising the whole
    clip) and ``[start_frame, end_frame)`` its frames.
    """

    index: int
    start_sample: int
    end_sample: int
    start_frame: int
    end_frame: int

    @property
    def n_frames(self) -> int:
        """Frames in this piece."""
        return self.end_frame - self.start_frame


def split_segments(
    n_samples: int, n_frames: int, *, max_segment_s: float = MAX_SEGMENT_S
) -> list[Segment]:
    """Cut a clip into pieces of at most ``max_segment_s`` as the release does.

    The release splits the 16 kHz samples every 60 s and the frames every 3600 frames; a piece
    shorter than ``MIN_TAIL_S`` at the end joins the one before it (the release would train on a
    scrap of a few frames, or fail on one shorter than wav2vec2's masks).
    """
    if max_segment_s <= 0:
        raise DatasetError(f"max_segment_s must be > 0, got {max_segment_s}")
    seg_samples = int(round(max_segment_s * SAMPLE_RATE))
    seg_frames = int(round(max_segment_s * FPS))
    starts = list(range(0, n_frames, seg_frames)) or [0]
    if len(starts) > 1 and n_frames - starts[-1] < MIN_TAIL_S * FPS:
        starts.pop()
    out = []
    for i, f0 in enumerate(starts):
        last = i == len(starts) - 1
        f1 = n_frames if last else starts[i + 1]
        s0 = i * seg_samples
        s1 = n_samples if last else (i + 1) * seg_samples
        out.append(Segment(i, s0, s1, f0, f1))
    return out


def samples_for_frames(n_frames: int) -> int:
    """The fewest 16 kHz samples whose frame count is ``n_frames``."""
    return math.ceil(n_frames * SAMPLE_RATE / FPS)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (remembered per path, size and modification time)."""
    stat = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=65536)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def dataset_fingerprint(clips: Iterable[Clip]) -> str:
    """A hash of every clip's split, name, emotion and file contents (order independent)."""
    h = hashlib.sha256()
    for c in sorted(clips, key=lambda c: (c.split, c.name)):
        h.update(
            f"{c.split}|{c.name}|{c.emotion}|{file_sha256(c.audio_path)}|"
            f"{file_sha256(c.controls_path)}\n".encode()
        )
    return h.hexdigest()


# Checking


@dataclass(frozen=True)
class Issue:
    """One problem found by ``check_dataset``.

    Attributes:
        severity: "error" (the clip should not be trained on) or "warning".
        code: a stable short name (``nan``, ``out-of-range``, ``frame-mismatch``...).
        path: the file (or split) concerned.
        message: one line saying what is wrong.
    """

    severity: str
    code: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class ClipCheck:
    """What ``check_dataset`` learned about one clip."""

    clip: Clip
    duration_s: float = 0.0
    n_audio_frames: int = 0
    n_control_rows: int = 0
    issues: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the clip has no errors (warnings allowed)."""
        return not any(i.severity == "error" for i in self.issues)

    @property
    def frame_mismatch(self) -> int:
        """Control rows minus audio frames (0 when either could not be read)."""
        if not self.n_audio_frames or not self.n_control_rows:
            return 0
        return self.n_control_rows - self.n_audio_frames


@dataclass
class DatasetReport:
    """The result of ``check_dataset``: per-clip findings plus dataset-wide warnings."""

    index: DatasetIndex
    clips: list[ClipCheck]
    issues: list[Issue]
    max_frame_mismatch: int
    range_tolerance: float

    @property
    def errors(self) -> list[Issue]:
        """Every error, clip by clip."""
        return [i for i in self.all_issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        """Every warning."""
        return [i for i in self.all_issues if i.severity == "warning"]

    @property
    def all_issues(self) -> list[Issue]:
        """Clip issues in clip order, then dataset-wide ones."""
        return [i for c in self.clips for i in c.issues] + self.issues

    @property
    def bad_clips(self) -> list[ClipCheck]:
        """Clips with at least one error."""
        return [c for c in self.clips if not c.ok]

    def summary(self) -> list[dict[str, Any]]:
        """One row per (split, emotion) and a total per split: counts, duration, mismatches."""
        groups: dict[tuple[str, str], list[ClipCheck]] = defaultdict(list)
        for c in self.clips:
            groups[(c.clip.split, c.clip.emotion_name)].append(c)
            groups[(c.clip.split, "total")].append(c)
        order = {name: i for i, name in enumerate((*EMOTIONS, "unknown", "total"))}
        split_order = {s: i for i, s in enumerate(self.index.splits)}
        rows = []
        for (split, emotion), checks in sorted(
            groups.items(), key=lambda kv: (split_order[kv[0][0]], order[kv[0][1]])
        ):
            rows.append(
                {
                    "split": split,
                    "emotion": emotion,
                    "n_clips": len(checks),
                    "duration_s": round(sum(c.duration_s for c in checks), 3),
                    "max_abs_frame_mismatch": max(abs(c.frame_mismatch) for c in checks),
                    "n_bad_clips": sum(not c.ok for c in checks),
                }
            )
        return rows

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of everything found."""
        return {
            "root": str(self.index.root),
            "layout": self.index.layout,
            "n_clips": len(self.clips),
            "max_frame_mismatch": self.max_frame_mismatch,
            "range_tolerance": self.range_tolerance,
            "summary": self.summary(),
            "clips": [
                {
                    "name": c.clip.name,
                    "split": c.clip.split,
                    "emotion": c.clip.emotion_name,
                    "audio": str(c.clip.audio_path),
                    "controls": str(c.clip.controls_path),
                    "duration_s": round(c.duration_s, 4),
                    "n_audio_frames": c.n_audio_frames,
                    "n_control_rows": c.n_control_rows,
                    "ok": c.ok,
                    "issues": [_issue_json(i) for i in c.issues],
                }
                for c in self.clips
            ],
            "issues": [_issue_json(i) for i in self.issues],
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
        }


def _issue_json(issue: Issue) -> dict[str, str]:
    return {
        "severity": issue.severity,
        "code": issue.code,
        "path": issue.path,
        "message": issue.message,
    }


_RANGE_LO = np.array([channel_range(n)[0] for n in CONTROLLER_NAMES], dtype=np.float32)
_RANGE_HI = np.array([channel_range(n)[1] for n in CONTROLLER_NAMES], dtype=np.float32)


def check_dataset(
    dataset: str | Path | DatasetIndex,
    *,
    max_frame_mismatch: int = DEFAULT_MAX_FRAME_MISMATCH,
    range_tolerance: float = DEFAULT_RANGE_TOLERANCE,
    progress: bool = False,
) -> DatasetReport:
    """Read every clip and report what would hurt training or evaluation.

    Errors (per clip): unreadable or empty audio/controls, a wrong column count, an unknown
    emotion, NaN/inf values, values outside ``channel_range`` by more than ``range_tolerance``,
    and a frame mismatch over ``max_frame_mismatch``. Warnings: silent audio, files without a
    partner, channels constant over a whole split, and clip names found in more than one split.

    Args:
        dataset: a dataset root/manifest or an index from ``discover_dataset``.
        max_frame_mismatch: allowed ``|control rows - audio frames|``.
        range_tolerance: allowed excursion beyond a channel's board range.
        progress: show a progress bar on stderr.

    Returns:
        The report; nothing is raised for bad clips.
    """
    if max_frame_mismatch < 0:
        raise DatasetError(f"max_frame_mismatch must be >= 0, got {max_frame_mismatch}")
    if range_tolerance < 0:
        raise DatasetError(f"range_tolerance must be >= 0, got {range_tolerance}")
    index = dataset if isinstance(dataset, DatasetIndex) else discover_dataset(dataset)
    clips = index.clips
    if progress:
        from tqdm import tqdm

        clips = tqdm(clips, desc="checking", unit="clip", leave=False)
    checks: list[ClipCheck] = []
    lo_by_split: dict[str, np.ndarray] = {}
    hi_by_split: dict[str, np.ndarray] = {}
    for clip in clips:
        check, values = _check_clip(clip, max_frame_mismatch, range_tolerance)
        checks.append(check)
        if values is not None and values.shape[0]:
            finite = np.where(np.isfinite(values), values, np.nan)
            with warnings.catch_warnings():  # an all-NaN channel is reported per clip already
                warnings.simplefilter("ignore", RuntimeWarning)
                lo, hi = np.nanmin(finite, axis=0), np.nanmax(finite, axis=0)
            if clip.split in lo_by_split:
                lo = np.fmin(lo_by_split[clip.split], lo)
                hi = np.fmax(hi_by_split[clip.split], hi)
            lo_by_split[clip.split], hi_by_split[clip.split] = lo, hi
    issues = [Issue("warning", "orphan", str(p), reason) for p, reason in index.orphans]
    for split in index.splits:
        if split not in lo_by_split:
            continue
        constant = np.flatnonzero(~(hi_by_split[split] - lo_by_split[split] >= CONSTANT_EPS))
        if constant.size:
            names = ", ".join(CONTROLLER_NAMES[i] for i in constant)
            issues.append(
                Issue(
                    "warning",
                    "constant-channel",
                    f"split {split}",
                    f"{constant.size} channel(s) never move in any clip: {names}",
                )
            )
    splits_of: dict[str, set[str]] = defaultdict(set)
    for c in index.clips:
        splits_of[c.name].add(c.split)
    for name, splits in sorted(splits_of.items()):
        if len(splits) > 1:
            issues.append(
                Issue(
                    "warning",
                    "split-overlap",
                    name,
                    f"the same clip name appears in splits {', '.join(sorted(splits))}",
                )
            )
    return DatasetReport(index, checks, issues, max_frame_mismatch, range_tolerance)


def _check_clip(
    clip: Clip, max_mismatch: int, tolerance: float
) -> tuple[ClipCheck, np.ndarray | None]:
    check = ClipCheck(clip)
    audio_path, controls_path = str(clip.audio_path), str(clip.controls_path)

    def add(severity: str, code: str, path: str, message: str) -> None:
        check.issues.append(Issue(severity, code, path, message))

    if clip.emotion is None:
        add(
            "error",
            "unknown-emotion",
            audio_path,
            "cannot tell the emotion: name the file ang_/dis_/fea_/hap_/neu_/sad_/sur_... or "
            "give an 'emotion' column in a manifest",
        )
    try:
        n_samples, rate, peak = _probe_audio(clip.audio_path)
        check.duration_s = n_samples / rate
        check.n_audio_frames = frame_count(n_samples, rate)
        if check.n_audio_frames == 0:
            add(
                "error",
                "short-audio",
                audio_path,
                f"the audio is {check.duration_s * 1000:.1f} ms long: not one 60 fps frame",
            )
        elif peak == 0.0:
            add("warning", "silent-audio", audio_path, "the audio is digital silence")
    except AudioError as e:
        add("error", "unreadable-audio", audio_path, str(e).removeprefix(audio_path + ": "))
    try:
        values = load_controls(clip.controls_path)
    except DatasetError as e:
        reason = str(e).removeprefix(controls_path + ": ")
        add("error", "unreadable-controls", controls_path, reason)
        return check, None
    check.n_control_rows = values.shape[0]
    if check.n_audio_frames and abs(check.frame_mismatch) > max_mismatch:
        add(
            "error",
            "frame-mismatch",
            controls_path,
            f"{check.n_control_rows} control frames but the audio has {check.n_audio_frames} "
            f"({check.frame_mismatch:+d}; more than {max_mismatch} frames apart)",
        )
    bad = ~np.isfinite(values)
    if bad.any():
        rows, cols = np.nonzero(bad)
        add(
            "error",
            "nan",
            controls_path,
            f"{bad.sum()} NaN/inf value(s) in {np.unique(cols).size} channel(s), first at line "
            f"{rows[0] + 1} ({CONTROLLER_NAMES[cols[0]]})",
        )
    with np.errstate(invalid="ignore"):
        low = values < _RANGE_LO - tolerance
        high = values > _RANGE_HI + tolerance
    out = low | high
    if out.any():
        cols = np.flatnonzero(out.any(axis=0))
        worst = []
        for c in cols[:3]:
            lo, hi = _RANGE_LO[c], _RANGE_HI[c]
            v = values[out[:, c], c]
            extreme = v.min() if v.min() < lo else v.max()
            worst.append(f"{CONTROLLER_NAMES[c]} reaches {extreme:.4g} (range {lo:g}..{hi:g})")
        more = f" and {cols.size - 3} more" if cols.size > 3 else ""
        add(
            "error",
            "out-of-range",
            controls_path,
            f"{out.sum()} value(s) outside the board range in {cols.size} channel(s): "
            f"{'; '.join(worst)}{more}",
        )
    return check, values


def _probe_audio(path: Path) -> tuple[int, int, float]:
    """``(n_samples, sample_rate, peak)`` of an audio file, decoding it fully to catch damage."""
    data, rate = read_audio_file(path)
    return int(data.shape[0]), rate, float(np.abs(data).max())


def format_report(report: DatasetReport, *, max_listed: int = 50) -> str:
    """Render a report as the text ``emoface dataset check`` prints."""
    index = report.index
    lines = [f"dataset {index.root} (layout: {index.layout}): {len(report.clips)} clips", ""]
    header = (
        f"{'split':<12} {'emotion':<9} {'clips':>6} {'duration':>10} "
        f"{'max|dframes|':>13} {'bad':>5}"
    )
    lines += [header, "-" * len(header)]
    for row in report.summary():
        lines.append(
            f"{row['split']:<12} {row['emotion']:<9} {row['n_clips']:>6} "
            f"{_hms(row['duration_s']):>10} {row['max_abs_frame_mismatch']:>13} "
            f"{row['n_bad_clips']:>5}"
        )
    for title, items in (("errors", report.errors), ("warnings", report.warnings)):
        if items:
            lines += ["", f"{title} ({len(items)}):"]
            lines += [f"  {i}" for i in items[:max_listed]]
            if len(items) > max_listed:
                lines.append(f"  ... and {len(items) - max_listed} more (use --json for all)")
    lines += [
        "",
        (
            f"result: {len(report.errors)} error(s) in {len(report.bad_clips)} clip(s), "
            f"{len(report.warnings)} warning(s)"
        ),
    ]
    return "\n".join(lines)


def _hms(seconds: float) -> str:
    m, s = divmod(seconds, 60.0)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:04.1f}" if h else f"{m}:{s:04.1f}"
