"""The engine interface both animators implement, and the one pipeline that bakes a clip with any.

An engine turns audio plus an emotion timeline into raw controller values ``[T, 174]`` at 60 fps
(``T = audio.n_frames``). The pipeline then applies the shared post-processing (smoothing when the
engine asks for it, blinks, gaze) and wraps the result with metadata, so the neural and the
procedural engine produce the same kind of output through the same writers.
"""

from __future__ import annotations

from typing import Any, Protocol, cast, runtime_checkable

import numpy as np

from emoface_core.animation import Animation
from emoface_core.audio import FPS, Audio
from emoface_core.emotion import EmotionTimeline
from emoface_core.postprocess import PostprocessConfig, postprocess

ANIMATION_VERSION = "emoface-0.1"


@runtime_checkable
class Engine(Protocol):
    """What ``bake``, ``stream`` and ``serve`` need from an animator."""

    name: str
    # Whether the shared Savitzky-Golay smoothing should run on this engine's raw output.
    wants_smoothing: bool
    # Optional: an engine with randomness of its own is a ``SeededEngine``.

    def infer(self, audio: Audio, timeline: EmotionTimeline) -> np.ndarray:
        """Raw controller values ``[audio.n_frames, 174]`` (float32), before post-processing."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts for metadata (engine name, checkpoint, device...)."""
        ...


class SeededEngine(Engine, Protocol):
    """An engine with randomness of its own (procedural idle motion), seeded per call.

    It says so with ``takes_seed = True``; ``animate_audio`` then passes it the bake's seed.
    """

    takes_seed: bool

    def infer(
        self, audio: Audio, timeline: EmotionTimeline, *, seed: int | None = None
    ) -> np.ndarray:
        """As ``Engine.infer``; ``seed`` seeds the engine's randomness (None: its default)."""
        ...


def animate_audio(
    engine: Engine,
    audio: Audio,
    timeline: EmotionTimeline,
    *,
    raw: bool = False,
    seed: int | None = None,
    postprocess_config: PostprocessConfig | None = None,
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

    Returns:
        The animation with metadata.
    """
    config = postprocess_config or PostprocessConfig()
    seeded = seed is not None and getattr(engine, "takes_seed", False) is True
    if seeded:
        values = cast(SeededEngine, engine).infer(audio, timeline, seed=seed)
    else:
        values = engine.infer(audio, timeline)
    assert values.shape == (audio.n_frames, 174), values.shape
    if not raw:
        if not engine.wants_smoothing:
            config = _without_smoothing(config)
        values = postprocess(values, config, seed=seed)
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
    return Animation(values.astype(np.float32, copy=False), fps=FPS, metadata=metadata)


def _without_smoothing(config: PostprocessConfig) -> PostprocessConfig:
    from dataclasses import replace

    return replace(config, smooth=False)
