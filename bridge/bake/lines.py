"""Batch inputs -> ``BakeLine``s: files, folders (recursive), globs and manifests (CSV, JSONL).

A row that cannot be used (no audio, a bad seed, an output name already taken) becomes a line
with a ``problem``: it is reported as failed and the rest of the batch goes on.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bridge.errors import BatchError
from bridge.transcript.prepare import check_text, is_language_code
from emoface_core.bounded import BoundsError, load_json
from emoface_core.formats import WRITERS

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")

MANIFEST_EXTENSIONS = (".csv", ".jsonl", ".ndjson")
MAX_MANIFEST_BYTES = 256 * 1024 * 1024  # a million lines of 250 characters
MAX_ROW_DEPTH = 8  # a JSONL row is a flat object; a little nesting in ignored columns is fine

# Manifest column names (case-insensitive) and the aliases studios tend to use for them.
_COLUMN_ALIASES = {
    "audio": ("audio", "file", "path", "wav"),
    "emotion": ("emotion", "emotions", "emotion_spec"),
    "subject": ("subject", "character", "npc", "speaker"),
    "output": ("output", "name", "out"),
    "seed": ("seed",),
    "text": ("text", "transcript", "dialogue", "line_text"),
    "language": ("language", "lang"),
}


@dataclass(frozen=True)
class BakeLine:
    """One clip to bake and where its outputs go.

    Attributes:
        audio: the audio file.
        output: output name relative to the output folder, ``/``-separated, no extension.
        emotion: emotion spec (``happy``, ``sad:0.5``, ``happy@0,sad@2``).
        subject: the character speaking; kept in the JSON metadata.
        seed: seeds blinks and gaze; None draws fresh randomness.
        text: what the line says ("" when not known): its phonemes drive the lips.
        language: the text's espeak-ng language code ("" for the batch's default).
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
    text: str = ""
    language: str = ""

    @property
    def label(self) -> str:
        """How messages name the line."""
        return self.origin or str(self.audio)


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
    # surrogateescape: a file name that is not UTF-8 (bytes kept as surrogates) seeds too.
    return zlib.crc32(f"{base_seed}:{output}".encode("utf-8", "surrogateescape")) & 0x7FFFFFFF


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

    A manifest that cannot be read at all (missing, not UTF-8, no audio column) becomes one
    failed line, so the other inputs still bake.
    """
    lines: list[BakeLine] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        try:  # one unusable input (a broken manifest, an unreadable folder) fails alone
            if is_glob(text) and not path.exists():
                lines.extend(_lines_from_glob(text, emotion))
            elif path.is_dir():
                lines.extend(_lines_from_folder(path, emotion))
            elif is_manifest(path):
                lines.extend(load_manifest(path, emotion=emotion))
            else:
                lines.append(BakeLine(path, _stem_name(path), emotion, origin=text))
        except (BatchError, OSError, ValueError, RuntimeError) as e:
            problem = str(e).removeprefix(f"{path}: ") or type(e).__name__
            lines.append(BakeLine(path, _stem_name(path), emotion, origin=text, problem=problem))
    if seed is not None:
        lines = [
            ln if ln.seed is not None else replace(ln, seed=derive_seed(seed, ln.output))
            for ln in lines
        ]
    return flag_duplicate_outputs(lines)


def load_manifest(path: str | Path, *, emotion: str = "neutral") -> list[BakeLine]:
    """Read a manifest: CSV with a header row, or JSON Lines (one object per line).

    Columns (case-insensitive; aliases in parentheses): ``audio`` (file, path, wav) is required;
    ``emotion``, ``subject`` (character, npc, speaker), ``output`` (name, out), ``seed``,
    ``text`` (transcript, dialogue, line_text: what the line says, for its lips) and ``language``
    (lang: the text's espeak-ng code) are optional; other columns are ignored. Relative audio
    paths are relative to the manifest's folder. Blank lines and JSONL lines starting with ``#``
    are skipped.

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
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise BatchError(f"{path}: larger than a manifest may be ({MAX_MANIFEST_BYTES} bytes)")
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
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # e.g. a field over the csv module's 128 KB limit: that row fails
            yield reader.line_num, f"not a readable CSV row ({e})"
            continue
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
            obj = load_json(stripped, f"line {number}", max_depth=MAX_ROW_DEPTH)
        except BoundsError as e:
            yield number, str(e).removeprefix(f"line {number}: ")
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
        language=str(row.get("language") or "").strip(),
    )
    try:
        line = replace(line, text=check_text(str(row.get("text") or ""), origin))
    except ValueError as e:
        return replace(line, problem=str(e).split(": ", 1)[-1])
    if line.language and not is_language_code(line.language):
        return replace(line, problem=f"language {line.language!r} is not an espeak-ng code")
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
