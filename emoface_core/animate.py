"""The offline pipeline: engine -> post-processing -> ``Animation``, one clip at a time.

Whatever the engine, a bake goes through here: the engine's raw frames, then the shared
post-processing (Savitzky-Golay smoothing when the engine asks for it, blinks, gaze), then the
lip layer of a transcript or recognised phones when there is one (``emoface_core.transcript``),
head motion, and the metadata that says how the animation was made. ``emoface_core.streaming``
is the same pipeline for audio that arrives in pieces.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import cast

import numpy as np

from emoface_core.animation import Animation
from emoface_core.audio import FPS, Audio
from emoface_core.emotion import EmotionTimeline
from emoface_core.engines.base import Engine, SeededEngine
from emoface_core.errors import EngineError
from emoface_core.postprocess import PostprocessConfig, postprocess
from emoface_core.transcript.align import Alignment
from emoface_core.transcript.phonemes import Template

log = logging.getLogger(__name__)
ANIMATION_VERSION = "emoface-0.1"


def animate_audio(
    engine: Engine,
    audio: Audio,
    timeline: EmotionTimeline,
    *,
    raw: bool = False,
    seed: int | None = None,
    postprocess_config: PostprocessConfig | None = None,
    head: float = 1.0,
    transcript: Template | Alignment | None = None,
    lip_layer: str = "full",
) -> Animation:
    """Run an engine on one clip and post-process it.

    Args:
        engine: the animator.
        audio: decoded audio.
        timeline: emotion over time.
        raw: skip smoothing, blinks and gaze (the network output as is).
        seed: seeds blinks and gaze, and the engine's own randomness when it ``takes_seed``
            (procedural idle motion); ``None`` draws fresh blinks and gaze and leaves the
            engine at its default.
        postprocess_config: smoothing/blink/gaze parameters.
        head: head motion scale (``emoface_core.head``; 0 = none, 1 = as its parameters
            say); raw output has none.
        transcript: the line's text spoken by a synthesiser (``emoface_core.transcript``):
            aligned to the audio, its phonemes drive the jaw and lips (``lip_layer``); where
            it does not match the audio, or cannot be aligned, the engine's frames stay. An
            ``Alignment`` (phones already on the audio's timeline, e.g. recognised) is used as
            it is.
        lip_layer: ``full`` (jaw and every lip action: the procedural engine) or ``lips``
            (closures and f/v only: the network keeps the rest).

    Returns:
        The animation with metadata.
    """
    config = postprocess_config or PostprocessConfig()
    seeded = seed is not None and engine.takes_seed
    if seeded:
        values = cast(SeededEngine, engine).infer(audio, timeline, seed=seed)
    else:
        values = engine.infer(audio, timeline)
    assert values.shape == (audio.n_frames, 174), values.shape
    check_finite_output(values, engine)
    if not raw:
        if not engine.wants_smoothing:
            config = _without_smoothing(config)
        values = postprocess(values, config, seed=seed)
    transcript_facts: dict[str, object] | None = None
    if transcript is not None and not raw:
        values, transcript_facts = _apply_transcript(values, audio, transcript, lip_layer)
        check_finite_output(values, engine)  # the lip layer's frames leave here too
    head_rotations = None
    if not raw and head > 0.0:
        from emoface_core.head import HEAD_CONVENTION, HEAD_UNITS, head_motion

        head_rotations = head_motion(
            audio.samples, audio.n_frames, timeline.weights(audio.n_frames), seed=seed, scale=head
        )
    metadata = {
        "generator": ANIMATION_VERSION,
        "engine": {**engine.describe(), "seed": seed} if seeded else engine.describe(),
        "emotion": timeline.to_spec(),
        "emotion_timeline": timeline.to_json(),
        "seed": seed,
        "raw": raw,
        "source_audio": audio.path,
        "duration_s": round(audio.duration_s, 6),
    }
    if transcript_facts is not None:
        metadata["transcript"] = transcript_facts
    if head_rotations is not None:
        metadata["head"] = {"scale": head, "units": HEAD_UNITS, "convention": HEAD_CONVENTION}
    return Animation(
        values.astype(np.float32, copy=False), fps=FPS, metadata=metadata, head=head_rotations
    )


def _apply_transcript(
    values: np.ndarray, audio: Audio, transcript: Template | Alignment, lip_layer: str
) -> tuple[np.ndarray, dict[str, object]]:
    """Align the transcript and apply its lip layer; say what happened for the metadata."""
    from emoface_core.transcript.align import align
    from emoface_core.transcript.lips import apply_lip_layer

    if isinstance(transcript, Alignment):
        source = "text" if transcript.text else "phones"
        facts = {**transcript.summary(), "used": True, "source": source, "lip_layer": lip_layer}
        return apply_lip_layer(values, transcript, audio.samples, lip_layer), facts
    try:
        alignment = align(audio.samples, transcript)
    except ValueError as error:
        log.warning("%s: transcript not used: %s", audio.path or "audio", error)
        return values, {
            "text": transcript.text,
            "language": transcript.language,
            "used": False,
            "reason": str(error),
        }
    facts = {**alignment.summary(), "used": True, "source": "text", "lip_layer": lip_layer}
    if facts["fallback_s"]:
        log.info(
            "%s: the audio does not match its text in %d stretch(es); audio-only lips there",
            audio.path or "audio",
            len(facts["fallback_s"]),  # type: ignore[arg-type]
        )
    return apply_lip_layer(values, alignment, audio.samples, lip_layer), facts


def check_finite_output(values: np.ndarray, engine: Engine) -> None:
    """Refuse engine output holding NaN or infinity, naming the engine (and its weights).

    Checked once per call where frames leave the engine, so nothing downstream (files, the
    wire, the Unreal plugin) ever sees a non-finite value.

    Raises:
        EngineError: some value is not finite.
    """
    if np.isfinite(values).all():
        return
    facts = engine.describe()
    source = facts.get("checkpoint") or facts.get("poses") or ""
    where = f" with {source}" if source else ""
    n_bad = int((~np.isfinite(values)).sum())
    raise EngineError(
        f"the {engine.name} engine{where} produced {n_bad} NaN or infinite value(s); "
        "its weights or data are broken"
    )


def _without_smoothing(config: PostprocessConfig) -> PostprocessConfig:
    return replace(config, smooth=False)
