"""Baking one line: the settings that shape outputs, the engine run and the rendered files.

``render`` is the one place that turns an animation into a file's text, by format, with a rig
mapping's columns for CSV; ``bake`` (single file), ``serve`` bakes and batch workers all use it.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from bridge.bake.lines import BakeLine
from bridge.mapping import Mapping
from emoface_core.animation import Animation
from emoface_core.errors import ConfigError, EmoFaceError
from emoface_core.formats import WRITE_BLOCK_FRAMES, WRITERS, CurveTableWriter, Writer
from emoface_core.postprocess import PostprocessConfig


@dataclass(frozen=True)
class BatchSettings:
    """Everything that shapes the outputs (and so the fingerprint), plus where they go.

    Attributes:
        output_dir: folder the outputs are written into.
        formats: writer keys among ``txt``, ``json``, ``csv``, ``curvetable``.
        engine: "auto", "emoface" or "procedural".
        checkpoint: EmoFace weights for the "emoface" engine.
        device: "cpu", "cuda" or None (CUDA when available).
        precision: the network's "exact" or "fast" arithmetic (``NeuralEngine``).
        head: head motion scale (``emoface_core.head``; 0 = none); ``.txt`` never carries it.
        raw: write the engine output without smoothing, blinks or gaze.
        mapping: rig mapping for the CSV columns; None writes the 174 channels.
        postprocess: smoothing, blink and gaze parameters.
        allow_truncated: bake what a truncated audio file holds (a warning) instead of failing
            its line.
        language: espeak-ng language of lines' texts that name none.
        text_mode: ``require`` (a line with a text fails without espeak-ng), ``prefer``
            (audio-only lips then, with a warning) or ``off`` (texts ignored).
        network_lips: the network engine gets the texts' closures and f/v too (off: it
            ignores texts; the procedural engine always uses them).
        phones: lines without a text get lips from recognised phones (pocketsphinx).
    """

    output_dir: Path
    formats: tuple[str, ...] = ("json",)
    engine: str = "auto"
    checkpoint: str | None = None
    device: str | None = None
    precision: str = "exact"
    head: float = 1.0
    raw: bool = False
    mapping: Mapping | None = None
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    allow_truncated: bool = False
    language: str = "en"
    text_mode: str = "require"
    network_lips: bool = False
    phones: bool = False

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
        if self.precision not in ("exact", "fast"):
            raise ConfigError(f"precision must be exact or fast, got {self.precision!r}")
        if self.text_mode not in ("require", "prefer", "off"):
            raise ConfigError(f"text_mode must be require, prefer or off, got {self.text_mode!r}")

    def output_files(self, line: BakeLine) -> list[str]:
        """The output paths of a line, relative to ``output_dir`` (one per format)."""
        return [f"{line.output}.{WRITERS[fmt].extension}" for fmt in self.formats]

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
class Rendered:
    """A baked line as file contents, ready for the writing process.

    Attributes:
        files: format -> file contents.
        n_frames: frames baked.
        audio_s: audio length in seconds.
        elapsed_s: wall time of the bake in its worker.
        transcript: how the line's text or phones drove its lips (the animation's
            ``metadata["transcript"]``), or None when neither did.
    """

    files: dict[str, str]
    n_frames: int
    audio_s: float
    elapsed_s: float
    transcript: dict[str, Any] | None = None


class MappedCsvWriter(Writer):
    """``time_s`` then one column per target of a rig mapping, one row per frame."""

    extension = "csv"

    def __init__(self, mapping: Mapping) -> None:
        self.mapping = mapping

    def write_to(self, animation: Animation, f: BinaryIO) -> None:
        """Header and rows, mapped and written a block of frames at a time."""
        f.write((",".join(("time_s", *self.mapping.names)) + "\n").encode("utf-8"))
        for start in range(0, animation.n_frames, WRITE_BLOCK_FRAMES):
            stop = min(animation.n_frames, start + WRITE_BLOCK_FRAMES)
            block = animation.values[start:stop]
            targets = np.asarray(self.mapping.apply_array(block), dtype=np.float64)
            t = np.arange(start, stop, dtype=np.float64)[:, None] / animation.fps
            buf = io.BytesIO()
            np.savetxt(buf, np.hstack([t, targets]), fmt="%.6f", delimiter=",")
            f.write(buf.getvalue())


def writer_for(fmt: str, mapping: Mapping | None = None) -> Writer:
    """The one place that picks how an animation becomes a file.

    ``csv`` with a mapping has one column per mapping target (``MappedCsvWriter``), a curve
    table one row per target; every other case is the format's writer
    (``emoface_core.formats.WRITERS``).
    """
    if fmt == "csv" and mapping is not None:
        return MappedCsvWriter(mapping)
    if fmt == "curvetable" and mapping is not None:
        return CurveTableWriter(mapping.names, mapping.apply_array)
    return WRITERS[fmt]()


def render(animation: Animation, fmt: str, mapping: Mapping | None = None) -> str:
    """File contents of an animation in one format (``writer_for``), as one string."""
    return writer_for(fmt, mapping).render(animation)


def write_file(
    path: str | Path, animation: Animation, fmt: str, mapping: Mapping | None = None
) -> None:
    """Write an animation atomically, in blocks (an hour of frames never sits in one string)."""
    writer_for(fmt, mapping).write(animation, path)


def render_files(
    animation: Animation, formats: Sequence[str], mapping: Mapping | None
) -> dict[str, str]:
    """File contents of an animation in each format (CSV columns follow ``mapping`` when given)."""
    return {fmt: render(animation, fmt, mapping) for fmt in formats}


def failure_reason(error: BaseException) -> str:
    """One line for a failed bake: the error's first line (type name when it has no message)."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(error, (EmoFaceError, ValueError, OSError)):
        return first or type(error).__name__
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


Outcome = Rendered | str  # rendered files, or the reason the line failed


def bake_line(
    line: BakeLine, settings: BatchSettings, engine: Any, *, audio_file: Path | None = None
) -> Rendered:
    """Bake one line with a loaded engine and render every requested format.

    Args:
        line: the line.
        settings: formats, post-processing and mapping.
        engine: the loaded engine.
        audio_file: where to read the audio when not at ``line.audio`` (a copy shipped to a
            Ray worker); the metadata still names ``line.audio``.

    Raises:
        EmoFaceError, ValueError, OSError: the line's audio or emotion spec cannot be used.
    """
    from emoface_core.animate import animate_audio
    from emoface_core.audio import load_audio
    from emoface_core.emotion import parse_emotion_spec

    start = time.perf_counter()
    from bridge.transcript.prepare import lip_layer_for, lip_source

    timeline = parse_emotion_spec(line.emotion)
    audio = load_audio(audio_file or line.audio, allow_truncated=settings.allow_truncated)
    layer = lip_layer_for(engine.name, settings.network_lips)
    source = None
    if layer:
        language = line.language or settings.language
        source = lip_source(
            line.text, language, settings.text_mode, phones=settings.phones, samples=audio.samples
        )
    animation = animate_audio(
        engine,
        audio,
        timeline,
        raw=settings.raw,
        seed=line.seed,
        head=settings.head,
        postprocess_config=settings.postprocess,
        transcript=source,
        lip_layer=layer or "full",
    )
    # Absolute: the Unreal plugin and `emoface stream` open it from other working directories.
    animation.metadata["source_audio"] = str(Path(line.audio).resolve())
    animation.metadata["subject"] = line.subject
    animation.metadata["output"] = line.output
    files = render_files(animation, settings.formats, settings.mapping)
    elapsed = time.perf_counter() - start
    facts = animation.metadata.get("transcript")
    return Rendered(files, animation.n_frames, audio.duration_s, elapsed, facts)


def load_batch_engine(settings: BatchSettings) -> Any:
    """Load the engine named by resolved settings (what each worker does once)."""
    from emoface_core.engines import load_engine

    engine = load_engine(settings.engine, checkpoint=settings.checkpoint, device=settings.device)
    if settings.precision != "exact" and hasattr(engine, "with_precision"):
        engine = engine.with_precision(settings.precision)
    return engine
