"""Batch baking: plan lines from files, folders, globs or manifests; bake what is not up to date.

A batch runs in four steps:

1. **Plan** (``collect_lines``): every input becomes ``BakeLine``s. A folder gives its audio files
   (recursively, keeping sub-folders in the output names), a glob its matches, a manifest
   (``.csv`` with a header row, or ``.jsonl``) one line per row with its own audio, emotion spec,
   subject, output name and seed. A row that cannot be used (no audio, a bad seed, an output name
   already taken) becomes a line with a ``problem``: it is reported as failed, the rest go on.
2. **Check** (``plan_batch``): a line is up to date when every output it would write exists and
   was written from the same audio file (size and modification time as they are now, so an edited
   or replaced file counts as new even when clocks disagree) with the same *fingerprint* (engine
   and checkpoint identity, post-processing, mapping, emotion, seed, subject). Those stamps live
   in a journal, ``.emoface-bake.jsonl`` in the output folder, one JSON object per written file.
3. **Bake** (``bridge.bake.runners``): a runner turns each remaining line into rendered
   file contents. ``jobs=1`` runs in this process; ``jobs>1`` starts worker processes that each
   load the engine once and are fed one line at a time (a worker that dies fails only its line
   and is replaced); ``ray_address`` does the same on Ray actors. On CUDA the workers take turns
   on the GPU through one lock, so N workers overlap decoding, post-processing and rendering
   without fighting over the device.
4. **Write**: only this process writes, each file through ``atomic_write`` (temporary sibling, then
   ``os.replace``), then appends the journal. Killing a bake therefore never leaves a partial
   output: an interrupted write removes its temporary file, and a hard kill (SIGKILL) can at worst
   leave a hidden ``.NAME.*.part`` file, which the next bake into that folder removes. A lock file
   keeps two bakes from writing into the same folder at once.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import logging
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emoface_core import __version__
from emoface_core.animation import Animation
from emoface_core.emotion import parse_emotion_spec
from emoface_core.errors import ConfigError, EmoFaceError, EmotionSpecError
from emoface_core.formats import JSON_FORMAT_VERSION, WRITERS, atomic_write
from emoface_core.postprocess import PostprocessConfig

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")
MANIFEST_EXTENSIONS = (".csv", ".jsonl", ".ndjson")
JOURNAL_NAME = ".emoface-bake.jsonl"  # fingerprints of the files written into the output folder
LOCK_NAME = ".emoface-bake.lock"
STATUSES = ("done", "skipped", "failed")

# Manifest column names (case-insensitive) and the aliases studios tend to use for them.
_COLUMN_ALIASES = {
    "audio": ("audio", "file", "path", "wav"),
    "emotion": ("emotion", "emotions", "emotion_spec"),
    "subject": ("subject", "character", "npc", "speaker"),
    "output": ("output", "name", "out"),
    "seed": ("seed",),
}


class BatchError(EmoFaceError, RuntimeError):
    """The batch as a whole cannot run (engine fails to load, output folder busy, bad manifest)."""


class TargetMap(Protocol):
    """What the CSV writer needs from a rig mapping (``bridge.mapping.Mapping`` is one).

    The core does not import the bridge; the CLI passes a loaded mapping in.
    """

    @property
    def name(self) -> str:
        """Short name of the mapping."""
        ...

    @property
    def digest(self) -> str:
        """Hash of the mapping file (part of the fingerprint)."""
        ...

    @property
    def names(self) -> tuple[str, ...]:
        """Target names in column order."""
        ...

    def apply_array(self, values: np.ndarray) -> np.ndarray:
        """Map ``[T, 174]`` channel values to ``[T, len(names)]``."""
        ...


@dataclass(frozen=True)
class BakeLine:
    """One clip to bake and where its outputs go.

    Attributes:
        audio: the audio file.
        output: output name relative to the output folder, ``/``-separated, no extension.
        emotion: emotion spec (``happy``, ``sad:0.5``, ``happy@0,sad@2``).
        subject: the character speaking; kept in the JSON metadata.
        seed: seeds blinks and gaze; None draws fresh randomness.
        origin: where the line came from (``lines.csv:7`` or the input path), for messages.
        problem: why the line cannot be baked as planned; such a line fails without baking.
    """

    audio: Path
    output: str
    emotion: str = "neutral"
    subject: str = ""
    seed: int | None = None
    origin: str = ""
    problem: str = ""

    @property
    def label(self) -> str:
        """How messages name the line."""
        return self.origin or str(self.audio)


@dataclass(frozen=True)
class BatchSettings:
    """Everything that shapes the outputs (and so the fingerprint), plus where they go.

    Attributes:
        output_dir: folder the outputs are written into.
        formats: writer keys among ``txt``, ``json``, ``csv``.
        engine: "auto", "emoface" or "procedural".
        checkpoint: EmoFace weights for the "emoface" engine.
        device: "cpu", "cuda" or None (CUDA when available).
        raw: write the engine output without smoothing, blinks or gaze.
        mapping: rig mapping for the CSV columns; None writes the 174 channels.
        postprocess: smoothing, blink and gaze parameters.
    """

    output_dir: Path
    formats: tuple[str, ...] = ("json",)
    engine: str = "auto"
    checkpoint: str | None = None
    device: str | None = None
    raw: bool = False
    mapping: TargetMap | None = None
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_dir", Path(self.output_dir))
        if not self.formats:
            raise ConfigError("formats must name at least one of " + ", ".join(WRITERS))
        unknown = [f for f in self.formats if f not in WRITERS]
        if unknown:
            raise ConfigError(
                f"unknown output format {unknown[0]!r}; choose from {', '.join(WRITERS)} or all"
            )
        if self.engine not in ("auto", "emoface", "procedural"):
            raise ConfigError(f"engine must be auto, emoface or procedural, got {self.engine!r}")

    def output_files(self, line: BakeLine) -> list[str]:
        """The output paths of a line, relative to ``output_dir`` (one per format)."""
        return [f"{line.output}.{fmt}" for fmt in self.formats]

    def resolved(self) -> BatchSettings:
        """These settings with "auto" replaced by the engine that will run (and its checkpoint).

        Every worker then loads the same engine, and the fingerprint names it.
        """
        if self.engine != "auto":
            return self
        from emoface_core.engines import find_checkpoint

        path = find_checkpoint(self.checkpoint)
        if path is None:
            return replace(self, engine="procedural", checkpoint=None)
        return replace(self, engine="emoface", checkpoint=str(path))


@dataclass(frozen=True)
class LineResult:
    """What happened to one line.

    Attributes:
        line: the line.
        status: "done", "skipped" (up to date) or "failed".
        reason: one line saying why it failed (empty otherwise).
        outputs: files written (done) or found up to date (skipped).
        audio_s: length of the audio baked (done only).
        elapsed_s: wall time spent baking it, in its worker.
    """

    line: BakeLine
    status: str
    reason: str = ""
    outputs: tuple[Path, ...] = ()
    audio_s: float = 0.0
    elapsed_s: float = 0.0


@dataclass
class BatchReport:
    """The outcome of a batch: one result per line, in plan order, plus totals.

    Attributes:
        results: the lines that were done, skipped or failed (interrupted ones are left out).
        wall_s: duration of the run.
        interrupted: whether Ctrl-C/SIGTERM stopped it early.
        n_unfinished: lines left unbaked by the interruption (a rerun bakes them).
        engine: the engine that ran ("emoface" or "procedural").
    """

    results: list[LineResult]
    wall_s: float = 0.0
    interrupted: bool = False
    n_unfinished: int = 0
    engine: str = ""

    def count(self, status: str) -> int:
        """Number of lines with a status ("done", "skipped", "failed")."""
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[LineResult]:
        """The failed lines, in plan order."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when nothing failed and the batch ran to the end."""
        return not self.failed and not self.interrupted

    @property
    def audio_s_done(self) -> float:
        """Seconds of audio baked in this run."""
        return sum(r.audio_s for r in self.results if r.status == "done")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (for ``--report``)."""
        return {
            "engine": self.engine,
            "wall_s": round(self.wall_s, 3),
            "interrupted": self.interrupted,
            "unfinished": self.n_unfinished,
            "counts": {s: self.count(s) for s in STATUSES},
            "audio_s_done": round(self.audio_s_done, 3),
            "lines": [
                {
                    "origin": r.line.label,
                    "audio": str(r.line.audio),
                    "output": r.line.output,
                    "status": r.status,
                    "reason": r.reason,
                    "outputs": [str(p) for p in r.outputs],
                    "audio_s": round(r.audio_s, 3),
                    "elapsed_s": round(r.elapsed_s, 3),
                }
                for r in self.results
            ],
        }


@dataclass(frozen=True)
class Rendered:
    """A baked line as file contents, ready for the writing process.

    Attributes:
        files: format -> file contents.
        n_frames: frames baked.
        audio_s: audio length in seconds.
        elapsed_s: wall time of the bake in its worker.
    """

    files: dict[str, str]
    n_frames: int
    audio_s: float
    elapsed_s: float


def is_manifest(path: str | Path) -> bool:
    """Whether an input is a manifest (by extension: .csv, .jsonl, .ndjson)."""
    return Path(path).suffix.lower() in MANIFEST_EXTENSIONS


def is_glob(text: str) -> bool:
    """Whether an input is a glob pattern (``*``, ``?`` or ``[``) rather than a path."""
    return glob.has_magic(text)


def derive_seed(base_seed: int, output: str) -> int:
    """A per-line seed from a batch seed and the line's output name (stable across runs).

    Lines of one batch then blink and glance differently, yet a rerun reproduces each exactly.
    """
    return zlib.crc32(f"{base_seed}:{output}".encode()) & 0x7FFFFFFF


def collect_lines(
    inputs: Sequence[str | Path],
    *,
    emotion: str = "neutral",
    seed: int | None = None,
) -> list[BakeLine]:
    """Expand files, folders, globs and manifests into lines, in input order.

    Args:
        inputs: audio files, folders (searched recursively for ``AUDIO_EXTENSIONS``), glob
            patterns (``**`` recurses), or manifests (``.csv``/``.jsonl``).
        emotion: emotion spec for lines that do not give one.
        seed: batch seed; lines without their own seed get ``derive_seed(seed, output)``.

    Returns:
        The lines. Unusable rows (and output names used twice) come back with a ``problem``.

    Raises:
        BatchError: a manifest cannot be read at all (missing, not UTF-8, no audio column).
    """
    lines: list[BakeLine] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if is_glob(text) and not path.exists():
            lines.extend(_lines_from_glob(text, emotion))
        elif path.is_dir():
            lines.extend(_lines_from_folder(path, emotion))
        elif is_manifest(path):
            lines.extend(load_manifest(path, emotion=emotion))
        else:
            lines.append(BakeLine(path, _stem_name(path), emotion, origin=text))
    if seed is not None:
        lines = [
            ln if ln.seed is not None else replace(ln, seed=derive_seed(seed, ln.output))
            for ln in lines
        ]
    return flag_duplicate_outputs(lines)


def load_manifest(path: str | Path, *, emotion: str = "neutral") -> list[BakeLine]:
    """Read a manifest: CSV with a header row, or JSON Lines (one object per line).

    Columns (case-insensitive; aliases in parentheses): ``audio`` (file, path, wav) is required;
    ``emotion``, ``subject`` (character, npc, speaker), ``output`` (name, out) and ``seed`` are
    optional; other columns (e.g. the line's text) are ignored. Relative audio paths are relative
    to the manifest's folder. Blank lines and JSONL lines starting with ``#`` are skipped.

    Args:
        path: the manifest.
        emotion: emotion spec for rows with no emotion.

    Returns:
        One line per row; rows with problems carry them in ``problem``.

    Raises:
        BatchError: the file is missing, unreadable, or a CSV has no audio column.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BatchError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BatchError(f"{path}: cannot read manifest ({e})") from e
    rows = _jsonl_rows(path, text) if path.suffix.lower() != ".csv" else _csv_rows(path, text)
    lines = [_line_from_row(path, number, row, emotion) for number, row in rows]
    if not lines:  # reported as a failed line, like a folder without audio
        problem = "the manifest lists no lines (only a header, blank lines or comments)"
        return [BakeLine(path, path.stem, emotion, origin=str(path), problem=problem)]
    return lines


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    for row in reader:
        number = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [_canonical_column(c) for c in row]
            if "audio" not in header:
                raise BatchError(
                    f"{path}:{number}: the header row needs an audio column "
                    f"(audio, file, path or wav); found {', '.join(c for c in row if c) or 'none'}"
                )
            continue
        if len(row) > len(header):
            yield number, f"{len(row)} cells but the header has {len(header)} columns"
            continue
        yield number, {k: v for k, v in zip(header, row) if k}


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError as e:
            yield number, f"not valid JSON ({e.msg} at column {e.colno})"
            continue
        if not isinstance(obj, dict):
            yield number, f"expected a JSON object, got {type(obj).__name__}"
            continue
        yield number, {_canonical_column(str(k)): v for k, v in obj.items()}


def _canonical_column(name: str) -> str:
    key = name.strip().lower()
    for canonical, aliases in _COLUMN_ALIASES.items():
        if key in aliases:
            return canonical
    return ""  # ignored column


def _line_from_row(path: Path, number: int, row: dict[str, Any] | str, emotion: str) -> BakeLine:
    origin = f"{path}:{number}"
    if isinstance(row, str):
        return BakeLine(Path(""), f"{path.stem}-line{number}", emotion, origin=origin, problem=row)
    audio_text = str(row.get("audio") or "").strip()
    if not audio_text:
        return BakeLine(
            Path(""),
            f"{path.stem}-line{number}",
            emotion,
            origin=origin,
            problem="no audio file given",
        )
    audio = Path(audio_text).expanduser()
    if not audio.is_absolute():
        audio = path.parent / audio
    line = BakeLine(
        audio=audio,
        output=_stem_name(audio),
        emotion=str(row.get("emotion") or "").strip() or emotion,
        subject=str(row.get("subject") or "").strip(),
        origin=origin,
    )
    output = str(row.get("output") or "").strip()
    if output:
        clean = _clean_output_name(output)
        if clean is None:
            return replace(
                line,
                problem=f"output name {output!r} must be a relative path inside "
                "the output folder (no '..', no drive or leading '/')",
            )
        line = replace(line, output=clean)
    seed = row.get("seed")
    if seed not in (None, ""):
        try:
            value = int(str(seed).strip())
            if value < 0:
                raise ValueError
        except ValueError:
            return replace(line, problem=f"seed must be a whole number >= 0, got {seed!r}")
        line = replace(line, seed=value)
    return line


def _clean_output_name(text: str) -> str | None:
    """A safe relative output name without extension, or None when it points outside."""
    name = text.replace("\\", "/").strip("/") if not text.startswith(("/", "\\")) else ""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." or ":" in p for p in parts):
        return None
    last = Path(parts[-1])
    if last.suffix.lower() in (*(f".{k}" for k in WRITERS), *AUDIO_EXTENSIONS):
        parts[-1] = last.stem
    return "/".join(parts)


def _stem_name(path: Path) -> str:
    return path.stem or path.name


def _lines_from_folder(folder: Path, emotion: str) -> list[BakeLine]:
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
    )
    if not files:
        return [
            BakeLine(
                folder,
                _stem_name(folder),
                emotion,
                origin=str(folder),
                problem=f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder",
            )
        ]
    return [
        BakeLine(p, p.relative_to(folder).with_suffix("").as_posix(), emotion, origin=str(p))
        for p in files
    ]


def _lines_from_glob(pattern: str, emotion: str) -> list[BakeLine]:
    matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True) if Path(m).is_file())
    if not matches:
        return [
            BakeLine(
                Path(pattern),
                "glob",
                emotion,
                origin=pattern,
                problem="the pattern matches no files",
            )
        ]
    # Keep the part of each match below the pattern's fixed prefix, as for a folder.
    root = Path(pattern.split("*")[0].split("?")[0].split("[")[0])
    root = root if str(pattern).endswith(os.sep) or root.is_dir() else root.parent
    out = []
    for p in matches:
        try:
            name = p.relative_to(root).with_suffix("").as_posix()
        except ValueError:
            name = _stem_name(p)
        out.append(BakeLine(p, name, emotion, origin=str(p)))
    return out


def flag_duplicate_outputs(lines: Sequence[BakeLine]) -> list[BakeLine]:
    """Give every line whose output name an earlier line already uses a ``problem``."""
    seen: dict[str, BakeLine] = {}
    out = []
    for line in lines:
        key = line.output.lower()  # case-insensitive file systems (Windows, macOS) collide too
        if line.problem:
            out.append(line)
            continue
        if key in seen:
            first = seen[key]
            out.append(
                replace(
                    line,
                    problem=(
                        f"output name {line.output!r} is already used by {first.label}; "
                        "give this line its own output name"
                    ),
                )
            )
            continue
        seen[key] = line
        out.append(line)
    return out


def settings_fingerprint(settings: BatchSettings) -> dict[str, Any]:
    """Facts about resolved settings that change the outputs (hashed into line fingerprints)."""
    checkpoint: dict[str, Any] | None = None
    if settings.engine == "emoface" and settings.checkpoint:
        path = Path(settings.checkpoint)
        try:
            st = path.stat()
            checkpoint = {
                "path": str(path.resolve()),
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
            }
        except OSError:
            checkpoint = {"path": str(path), "missing": True}
    mapping = None
    if settings.mapping is not None:
        mapping = {
            "name": settings.mapping.name,
            "digest": settings.mapping.digest,
            "n_targets": len(settings.mapping.names),
        }
    procedural_data = None
    if settings.engine == "procedural":
        from emoface_core.engines.procedural.engine import data_fingerprint

        procedural_data = data_fingerprint()
    return {
        "emoface": __version__,
        "json_format_version": JSON_FORMAT_VERSION,
        "engine": settings.engine,
        "checkpoint": checkpoint,
        "procedural_data": procedural_data,
        "raw": settings.raw,
        "postprocess": asdict(settings.postprocess),
        "mapping": mapping,
    }


def line_fingerprint(settings_facts: dict[str, Any], line: BakeLine, emotion: str = "") -> str:
    """Hex digest of the settings facts plus the line's own inputs.

    Args:
        settings_facts: from ``settings_fingerprint``.
        line: the line.
        emotion: the canonical emotion spec (so ``hap`` and ``happy`` agree); default the line's.
    """
    doc = {
        "settings": settings_facts,
        "audio": str(line.audio.resolve()),
        "emotion": emotion or line.emotion,
        "subject": line.subject,
        "seed": line.seed,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass
class BatchPlan:
    """What the batch will do with each line (lists of indices into ``lines``).

    Attributes:
        lines: every line, in input order (duplicate output names flagged as problems).
        to_bake: lines to bake now.
        up_to_date: lines whose outputs are current (skipped unless forced).
        invalid: lines with a ``problem`` (failed without baking).
        fingerprints: output file (relative) -> stamp (fingerprint + audio size and mtime).
    """

    lines: list[BakeLine]
    to_bake: list[int]
    up_to_date: list[int]
    invalid: list[int]
    fingerprints: dict[str, str]


def plan_batch(
    lines: Sequence[BakeLine],
    settings: BatchSettings,
    *,
    force: bool = False,
    journal: dict[str, str] | None = None,
) -> BatchPlan:
    """Sort lines into to-bake, up-to-date and invalid.

    Args:
        lines: from ``collect_lines``.
        settings: resolved settings (``BatchSettings.resolved``).
        force: bake every valid line, up to date or not.
        journal: output file -> fingerprint already written (default: read from the folder).

    Returns:
        The plan.
    """
    if journal is None:
        journal = read_journal(settings.output_dir)
    lines = flag_duplicate_outputs(lines)
    facts = settings_fingerprint(settings)
    plan = BatchPlan(lines, [], [], [], {})
    for i, line in enumerate(lines):
        if not line.problem:
            try:  # a bad spec fails its line now, before any engine loads
                emotion = parse_emotion_spec(line.emotion).to_spec()
            except EmotionSpecError as e:
                line = lines[i] = replace(line, problem=str(e))
        if line.problem:
            plan.invalid.append(i)
            continue
        stamp = _audio_stamp(line_fingerprint(facts, line, emotion), line.audio)
        files = settings.output_files(line)
        for f in files:
            plan.fingerprints[f] = stamp
        if not force and _is_up_to_date(settings.output_dir, files, stamp, journal):
            plan.up_to_date.append(i)
        else:
            plan.to_bake.append(i)
    return plan


def _is_up_to_date(output_dir: Path, files: list[str], stamp: str, journal: dict[str, str]) -> bool:
    return all(journal.get(f) == stamp and (output_dir / f).is_file() for f in files)


def _audio_stamp(fingerprint: str, audio: Path) -> str:
    """The fingerprint plus the audio's size and mtime: any edit, newer or older, shows."""
    try:
        st = audio.stat()
    except OSError:
        return f"{fingerprint}/missing"
    return f"{fingerprint}/{st.st_size}:{st.st_mtime_ns}"


def read_journal(output_dir: Path) -> dict[str, str]:
    """Output file -> fingerprint, from the journal (later entries win; torn lines ignored)."""
    path = Path(output_dir) / JOURNAL_NAME
    entries: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return entries
    for raw in text.splitlines():
        try:
            obj = json.loads(raw)
            entries[str(obj["file"])] = str(obj["fingerprint"])
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by a kill mid-append
    return entries


class _Journal:
    """Append-only fingerprint log; compacted (atomically) when opened."""

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / JOURNAL_NAME
        entries = read_journal(output_dir)
        live = {f: fp for f, fp in entries.items() if (output_dir / f).is_file()}
        # Rewriting also drops a torn last line, so the next append starts on a fresh line.
        if live or self.path.exists():
            atomic_write(self.path, "".join(_journal_line(f, fp) for f, fp in sorted(live.items())))
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def record(self, file: str, fingerprint: str) -> None:
        self._file.write(_journal_line(file, fingerprint))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _journal_line(file: str, fingerprint: str) -> str:
    return json.dumps({"file": file, "fingerprint": fingerprint, "t": round(time.time(), 3)}) + "\n"


class _FolderLock:
    """An exclusive lock on the output folder for the length of a bake (advisory, per OS)."""

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / LOCK_NAME
        self._file: Any = None

    def __enter__(self) -> _FolderLock:
        self._file = open(self.path, "a+b")  # noqa: SIM115 - closed in __exit__
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(self._file.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.close()
            raise BatchError(
                f"{self.path.parent}: another emoface bake is writing into this folder "
                f"(lock {self.path.name} is held); wait for it or choose another -o folder"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()  # closing releases the lock on every OS


def remove_stale_parts(output_dir: Path) -> int:
    """Delete temporary ``.NAME.*.part`` files left by a bake that was killed; returns the count."""
    n = 0
    for part in Path(output_dir).rglob(".*.part"):
        try:
            part.unlink()
            n += 1
        except OSError as e:
            log.warning("%s: cannot remove stale temporary file (%s)", part, e)
    return n


def render_files(
    animation: Animation, formats: Sequence[str], mapping: TargetMap | None
) -> dict[str, str]:
    """File contents of an animation in each format (CSV columns follow ``mapping`` when given)."""
    out = {}
    for fmt in formats:
        if fmt == "csv" and mapping is not None:
            out[fmt] = render_mapped_csv(animation, mapping)
        else:
            out[fmt] = WRITERS[fmt]().render(animation)
    return out


def render_mapped_csv(animation: Animation, mapping: TargetMap) -> str:
    """``time_s`` then one column per mapping target, one row per frame (imports into Unreal)."""
    targets = np.asarray(mapping.apply_array(animation.values), dtype=np.float64)
    t = np.arange(animation.n_frames, dtype=np.float64)[:, None] / animation.fps
    buf = io.StringIO()
    header = ",".join(("time_s", *mapping.names))
    np.savetxt(buf, np.hstack([t, targets]), fmt="%.6f", delimiter=",", header=header, comments="")
    return buf.getvalue()


def failure_reason(error: BaseException) -> str:
    """One line for a failed bake: the error's first line (type name when it has no message)."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(error, (EmoFaceError, ValueError, OSError)):
        return first or type(error).__name__
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


Outcome = Rendered | str  # rendered files, or the reason the line failed


class Runner(Protocol):
    """Turns lines into outcomes; see ``bridge.bake.runners`` for the implementations."""

    def run(self, lines: Sequence[BakeLine]) -> Iterator[tuple[int, Outcome]]:
        """Yield ``(index into lines, outcome)`` as lines finish, in any order."""
        ...

    def close(self) -> None:
        """Release workers; called once, also after an interrupt."""
        ...


def run_batch(
    lines: Sequence[BakeLine],
    settings: BatchSettings,
    *,
    jobs: int = 1,
    force: bool = False,
    ray_address: str | None = None,
    on_plan: Callable[[BatchPlan], None] | None = None,
    on_result: Callable[[LineResult], None] | None = None,
    runner: Runner | None = None,
) -> BatchReport:
    """Bake a batch: skip up-to-date lines, bake the rest, write atomically, report everything.

    Args:
        lines: from ``collect_lines``.
        settings: output folder, formats, engine and post-processing.
        jobs: worker processes (1 = bake in this process).
        force: bake lines even when their outputs are up to date.
        ray_address: run on a Ray cluster instead ("auto", "ray://host:10001", "local").
        on_plan: called once with the plan, before any baking (e.g. to size a progress bar).
        on_result: called with each line's result as it completes (skipped and invalid lines
            first); it must not raise.
        runner: a ready runner (tests); default from ``jobs`` and ``ray_address``.

    Returns:
        The report. A Ctrl-C (``KeyboardInterrupt``) stops the batch cleanly: files already
        written stay, nothing half-written remains, and the report says ``interrupted``.

    Raises:
        BatchError: the engine cannot be loaded, or another bake holds the output folder.
    """
    start = time.perf_counter()
    settings = settings.resolved()
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    report = BatchReport([], engine=settings.engine)
    results: dict[int, LineResult] = {}

    def emit(index: int, result: LineResult) -> None:
        results[index] = result
        if on_result is not None:
            on_result(result)

    with _FolderLock(settings.output_dir):
        removed = remove_stale_parts(settings.output_dir)
        if removed:
            log.info("removed %d temporary file(s) left by an interrupted bake", removed)
        journal = _Journal(settings.output_dir)
        try:
            known = read_journal(settings.output_dir)
            plan = plan_batch(lines, settings, force=force, journal=known)
            if on_plan is not None:
                on_plan(plan)
            for i in plan.invalid:
                emit(i, LineResult(plan.lines[i], "failed", reason=plan.lines[i].problem))
            for i in plan.up_to_date:
                line = plan.lines[i]
                paths = tuple(settings.output_dir / f for f in settings.output_files(line))
                emit(i, LineResult(line, "skipped", outputs=paths))
            if plan.to_bake:
                if runner is None:
                    runner = _make_runner(settings, jobs, ray_address)
                try:
                    batch = [plan.lines[i] for i in plan.to_bake]
                    for k, outcome in runner.run(batch):
                        emit(
                            plan.to_bake[k],
                            _write_outcome(batch[k], outcome, settings, plan, journal),
                        )
                except KeyboardInterrupt:
                    report.interrupted = True
                finally:
                    runner.close()
        finally:
            journal.close()
    report.results = [results[i] for i in sorted(results)]
    report.n_unfinished = len(plan.lines) - len(results)
    report.wall_s = time.perf_counter() - start
    return report


def _make_runner(settings: BatchSettings, jobs: int, ray_address: str | None) -> Runner:
    from bridge.bake.runners import InlineRunner, ProcessRunner, RayRunner

    if ray_address:
        return RayRunner(settings, ray_address, max(1, jobs))
    if jobs <= 1:
        return InlineRunner(settings)
    return ProcessRunner(settings, jobs)


def _write_outcome(
    line: BakeLine, outcome: Outcome, settings: BatchSettings, plan: BatchPlan, journal: _Journal
) -> LineResult:
    if isinstance(outcome, str):
        return LineResult(line, "failed", reason=outcome)
    written = []
    try:
        for fmt, text in outcome.files.items():
            rel = f"{line.output}.{fmt}"
            path = settings.output_dir / rel
            atomic_write(path, text)
            journal.record(rel, plan.fingerprints[rel])
            written.append(path)
    except OSError as e:
        return LineResult(
            line,
            "failed",
            reason=f"cannot write output: {failure_reason(e)}",
            outputs=tuple(written),
        )
    return LineResult(
        line, "done", outputs=tuple(written), audio_s=outcome.audio_s, elapsed_s=outcome.elapsed_s
    )


def iter_summary_rows(report: BatchReport) -> Iterable[tuple[str, int, str]]:
    """Rows ``(status, n_lines, audio)`` of the summary table, for any front end to print."""
    yield "done", report.count("done"), f"{report.audio_s_done:.1f} s audio"
    yield "skipped", report.count("skipped"), "up to date"
    yield "failed", report.count("failed"), ""
    if report.n_unfinished:
        yield "unfinished", report.n_unfinished, "interrupted before they were baked"
