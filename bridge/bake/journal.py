"""Which lines are up to date: fingerprints, the bake journal and the output folder's lock.

A line is up to date when every output it would write exists and was written from the same
audio file (size and modification time as they are now, so an edited or replaced file counts as
new even when clocks disagree) with the same *fingerprint* (engine and checkpoint identity,
post-processing, mapping, emotion, seed, subject). Those stamps live in a journal,
``.emoface-bake.jsonl`` in the output folder, one JSON object per written file. A lock file keeps
two bakes from writing into the same folder at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bridge.bake.lines import BakeLine, flag_duplicate_outputs
from bridge.bake.render import BatchSettings
from bridge.errors import BatchError
from emoface_core import __version__
from emoface_core.emotion import parse_emotion_spec
from emoface_core.errors import EmotionSpecError
from emoface_core.formats import JSON_FORMAT_VERSION, atomic_write
from emoface_core.transcript.lips import LIP_LAYER_VERSION

log = logging.getLogger(__name__)

JOURNAL_NAME = ".emoface-bake.jsonl"  # fingerprints of the files written into the output folder

LOCK_NAME = ".emoface-bake.lock"


def _head_fingerprint() -> str:
    from emoface_core.head import params_fingerprint

    return params_fingerprint()


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
    # Only named when it changes the outputs, so earlier exact bakes stay up to date.
    precision = settings.precision if settings.engine == "emoface" else "exact"
    return {
        **({"precision": precision} if precision != "exact" else {}),
        "emoface": __version__,
        "json_format_version": JSON_FORMAT_VERSION,
        "engine": settings.engine,
        "checkpoint": checkpoint,
        "procedural_data": procedural_data,
        "raw": settings.raw,
        "head": settings.head,
        "head_data": _head_fingerprint() if settings.head > 0 and not settings.raw else None,
        "allow_truncated": settings.allow_truncated,
        "postprocess": asdict(settings.postprocess),
        "mapping": mapping,
        "transcript": {
            "version": LIP_LAYER_VERSION,
            "language": settings.language,
            "text_mode": settings.text_mode,
            "network_lips": settings.network_lips,
            **({"phones": True} if settings.phones else {}),
        },
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
        # realpath, not Path.resolve(): a symlink loop must fail its own line, not the plan.
        "audio": os.path.realpath(line.audio),
        "emotion": emotion or line.emotion,
        "subject": line.subject,
        "seed": line.seed,
    }
    if line.text:  # only then: lines without a text keep their fingerprints
        doc["text"] = f"{line.language}:{line.text}"
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
        try:  # every step of a line's planning fails that line alone
            verdict = _plan_line(line, settings, facts, force, journal, plan.fingerprints)
        except Exception as e:  # noqa: BLE001 - e.g. an unreadable or looping path
            verdict = f"cannot plan this line ({type(e).__name__}: {e})"
        if isinstance(verdict, str):
            lines[i] = replace(line, problem=line.problem or verdict)
            plan.invalid.append(i)
        elif verdict:
            plan.up_to_date.append(i)
        else:
            plan.to_bake.append(i)
    return plan


def _plan_line(
    line: BakeLine,
    settings: BatchSettings,
    facts: dict[str, Any],
    force: bool,
    journal: dict[str, str],
    fingerprints: dict[str, str],
) -> bool | str:
    """True when up to date, False to bake, or the reason the line cannot be baked."""
    if line.problem:
        return line.problem
    try:  # a bad spec fails its line now, before any engine loads
        emotion = parse_emotion_spec(line.emotion).to_spec()
    except EmotionSpecError as e:
        return str(e)
    files = settings.output_files(line)
    audio = os.path.realpath(line.audio)
    if any(os.path.realpath(settings.output_dir / f) == audio for f in files):
        return "the output would overwrite the line's own audio file; choose another -o folder"
    stamp = _audio_stamp(line_fingerprint(facts, line, emotion), line.audio)
    for f in files:
        fingerprints[f] = stamp
    return not force and _is_up_to_date(settings.output_dir, files, stamp, journal)


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


class Journal:
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
        """Append one written file's stamp (flushed at once, so a kill loses at most a line)."""
        self._file.write(_journal_line(file, fingerprint))
        self._file.flush()

    def close(self) -> None:
        """Close the journal file."""
        self._file.close()


def _journal_line(file: str, fingerprint: str) -> str:
    return json.dumps({"file": file, "fingerprint": fingerprint, "t": round(time.time(), 3)}) + "\n"


class FolderLock:
    """An exclusive lock on the output folder for the length of a bake (advisory, per OS)."""

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / LOCK_NAME
        self._file: Any = None

    def __enter__(self) -> FolderLock:
        self._file = open(self.path, "a+b")
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
