"""The contracts every engine meets: whole-clip ``infer`` and an incremental raw stream.

An engine turns audio plus an emotion timeline into raw controller values ``[T, 174]`` at 60 fps
(``T = audio.n_frames``); ``emoface_core.animate`` adds the shared post-processing. For live use
an engine opens a ``RawStream`` (``open_raw_stream``) that takes audio in pieces of any size and
returns frames as soon as they are final; ``emoface_core.streaming`` puts the same
post-processing on top. Only the engine knows how to stream itself: the network keeps key/value
caches (``engines.neural.streaming``), the procedural engine is causal by construction, and any
other engine inherits ``EngineBase.open_raw_stream``, which re-runs ``infer`` on a sliding
window (``WindowedRawStream``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from emoface_core.audio import FPS, SAMPLE_RATE, Audio, frame_count
from emoface_core.controllers import N_CONTROLLERS
from emoface_core.emotion import EmotionControl, EmotionTimeline
from emoface_core.errors import ConfigError, EmoFaceError

CONTEXT_MODES = ("cache", "recompute")

NORM_MODES = ("cumulative", "adaptive")


class StreamError(EmoFaceError, RuntimeError):
    """A stream was used out of order (e.g. fed after ``finish``)."""


@dataclass(frozen=True)
class StreamConfig:
    """How a stream trades latency against agreement with whole-clip inference.

    Defaults: 7 frames of lookahead (117 ms, exactly what Savitzky-Golay smoothing needs, so
    smoothing adds nothing), blocks of 6 frames (100 ms), 2 s of attended past: at most about
    0.23 s from a frame's first sample until the frame is final, plus one network call.
    """

    hop_frames: int = 6  # the network runs once this many frames can be made final (100 ms)
    lookahead_frames: int = 7  # future audio, in frames, the encoder sees past a frame (117 ms)
    context_frames: int = 120  # past frames the encoder attends to (2 s)
    context: str = "cache"  # "cache": reuse past keys/values; "recompute": rerun the window
    norm: str = "cumulative"  # "cumulative": all audio so far; "adaptive": forgetting + gate
    norm_window_s: float = 30.0  # adaptive: time constant of the forgetting
    norm_gate_db: float = -35.0  # adaptive: 20 ms blocks this far below the level are ignored
    smooth_lookahead_frames: int | None = None  # Savitzky-Golay lookahead; None = window // 2
    smooth_provisional: bool = True  # let provisional network frames serve as that lookahead
    rest_fade_ms: float = 200.0  # fade to / from the rest pose around a gap in the feed
    window_context_s: float = 1.0  # engines without a stream API: past audio per inference call

    def __post_init__(self) -> None:
        if self.hop_frames < 1:
            raise ConfigError(f"hop_frames must be >= 1, but {self.hop_frames} is given")
        for name in ("lookahead_frames", "context_frames"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, but {getattr(self, name)} is given")
        if self.context not in CONTEXT_MODES:
            raise ConfigError(
                f"context must be one of {CONTEXT_MODES}, but {self.context!r} is given"
            )
        if self.norm not in NORM_MODES:
            raise ConfigError(f"norm must be one of {NORM_MODES}, but {self.norm!r} is given")
        if self.norm_window_s <= 0:
            raise ConfigError(f"norm_window_s must be > 0, but {self.norm_window_s} is given")
        if self.smooth_lookahead_frames is not None and self.smooth_lookahead_frames < 0:
            raise ConfigError(
                f"smooth_lookahead_frames must be >= 0, but {self.smooth_lookahead_frames} is given"
            )
        if self.rest_fade_ms < 0:
            raise ConfigError(f"rest_fade_ms must be >= 0, but {self.rest_fade_ms} is given")
        if self.window_context_s < 0:
            raise ConfigError(
                f"window_context_s must be >= 0, but {self.window_context_s} is given"
            )


@dataclass(frozen=True)
class RawBlock:
    """Raw engine output of one call: final frames, then provisional guesses of the next ones.

    Attributes:
        final: ``[n, 174]`` frames that will not change.
        provisional: ``[m, 174]`` best guesses of the ``m`` frames after them (the network's
            lookahead region); recomputed later, never emitted.
    """

    final: np.ndarray
    provisional: np.ndarray


def empty_frames() -> np.ndarray:
    """``[0, 174]`` float32: a block with no frames."""
    return np.zeros((0, N_CONTROLLERS), dtype=np.float32)


class RawStream(Protocol):
    """Incremental raw inference of one engine for one stream (no post-processing)."""

    lookahead_frames: int  # future frames of audio a frame waits for
    hop_frames: int  # frames made final together (1: each as soon as possible)
    # Seconds from a frame's first sample until the audio that makes it final has arrived
    # (instant compute): its lookahead, the rest of its block and any front-end receptive field.
    wait_s: float
    # Streams with the same group are stepped together by ``group.push_many`` (one batched
    # network call for many NPCs); None steps this stream alone.
    batch_group: BatchGroup | None

    @property
    def next_frame(self) -> int:
        """Index of the first frame that is not final yet (emotion changes start here)."""
        ...

    def push(self, samples: np.ndarray, *, gap: bool = False) -> RawBlock:
        """Add 16 kHz samples (``gap``: filler silence, not real audio); return new frames."""
        ...

    def flush(self) -> RawBlock:
        """The audio has ended: return every remaining frame."""
        ...


class BatchGroup(Protocol):
    """What raw streams that can be stepped together share (e.g. one network's weights)."""

    def push_many(self, items: Sequence[tuple[Any, np.ndarray]]) -> list[RawBlock]:
        """``[stream.push(chunk) for stream, chunk in items]`` in as few engine calls as can be."""
        ...


@runtime_checkable
class Engine(Protocol):
    """What ``bake``, ``stream``, ``live`` and ``serve`` need from an animator."""

    name: str
    # Whether the shared Savitzky-Golay smoothing should run on this engine's raw output.
    wants_smoothing: bool
    # Whether ``infer`` takes ``seed=`` (randomness of its own, e.g. procedural idle motion);
    # the pipeline then passes the bake's seed, so one seed drives everything.
    takes_seed: bool

    def infer(self, audio: Audio, timeline: EmotionTimeline) -> np.ndarray:
        """Raw controller values ``[audio.n_frames, 174]`` (float32), before post-processing."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts for metadata (engine name, checkpoint, device...)."""
        ...

    def open_raw_stream(
        self,
        emotion: EmotionControl,
        config: StreamConfig,
        *,
        seed: int | None = None,
        provisional: bool = True,
        expected_samples: int | None = None,
    ) -> RawStream:
        """Start incremental inference of one stream.

        Args:
            emotion: the stream's emotion, read as frames are made (it may change live).
            config: windows and normalisation (engines use what applies to them).
            seed: the stream's seed, for engines that ``takes_seed``.
            provisional: also return best guesses of the frames after the final ones (the
                smoother's lookahead), where the engine has them.
            expected_samples: the clip's length when known in advance (a file).
        """
        ...


class SeededEngine(Engine, Protocol):
    """An engine whose ``infer`` takes a seed (``takes_seed = True``)."""

    def infer(
        self, audio: Audio, timeline: EmotionTimeline, *, seed: int | None = None
    ) -> np.ndarray:
        """As ``Engine.infer``; ``seed`` seeds the engine's randomness (None: its default)."""
        ...


class EngineBase:
    """Defaults for engines with no stream of their own: windowed re-inference, no seed.

    Subclasses set ``name`` and implement ``infer``; the rest has working defaults.
    """

    name = "engine"
    wants_smoothing = True
    takes_seed = False

    def infer(self, audio: Audio, timeline: EmotionTimeline) -> np.ndarray:
        """Raw controller values ``[audio.n_frames, 174]``."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Engine facts for metadata: its name."""
        return {"name": self.name}

    def open_raw_stream(
        self,
        emotion: EmotionControl,
        config: StreamConfig,
        *,
        seed: int | None = None,
        provisional: bool = True,
        expected_samples: int | None = None,
    ) -> RawStream:
        """Stream by re-running ``infer`` on a sliding window (``WindowedRawStream``)."""
        return WindowedRawStream(self, emotion, config)


class WindowedRawStream:
    """Any ``Engine`` streamed by re-running ``infer`` on a sliding window of audio.

    Used for engines without a stream API of their own. Each call sees ``window_context_s`` of
    past audio and ``lookahead_frames`` of future audio; only the frames in between are kept.
    """

    def __init__(self, engine: Any, emotion: EmotionControl, config: StreamConfig) -> None:
        self.engine = engine
        self.emotion = emotion
        self.config = config
        self.lookahead_frames = config.lookahead_frames
        self.hop_frames = config.hop_frames
        self.wait_s = (config.lookahead_frames + config.hop_frames) / FPS
        self.batch_group: BatchGroup | None = None
        self._context = int(config.window_context_s * FPS) // 3 * 3  # 3 frames = 800 samples
        self._audio = np.zeros(0, dtype=np.float32)
        self._audio_base = 0  # sample index of _audio[0], always a multiple of 800
        self._n_samples = 0
        self._next = 0
        self._finished = False

    @property
    def next_frame(self) -> int:
        """Index of the first frame that is not final yet."""
        return self._next

    def push(self, samples: np.ndarray, *, gap: bool = False) -> RawBlock:
        """Add samples; return the frames that became final (``gap`` is treated as silence)."""
        if self._finished:
            raise StreamError("this stream has finished; open a new one")
        x = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1))
        self._audio = np.concatenate([self._audio, x])
        self._n_samples += x.size
        return self._advance(
            frame_count(self._n_samples, SAMPLE_RATE) - self.lookahead_frames, False
        )

    def flush(self) -> RawBlock:
        """Return every remaining frame."""
        if self._finished:
            return RawBlock(empty_frames(), empty_frames())
        self._finished = True
        return self._advance(frame_count(self._n_samples, SAMPLE_RATE), True)

    def _advance(self, stop: int, flush: bool) -> RawBlock:
        a = self._next
        if stop - a <= 0 or (not flush and stop - a < self.config.hop_frames):
            return RawBlock(empty_frames(), empty_frames())
        w0 = max(0, a - self._context) // 3 * 3
        s0 = w0 * SAMPLE_RATE // FPS
        audio = Audio(self._audio[s0 - self._audio_base :].copy())
        shift_s = w0 / FPS
        timeline = self.emotion.timeline
        shifted = EmotionTimeline(
            tuple(replace(seg, start_s=seg.start_s - shift_s) for seg in timeline.segments),
            fade_s=timeline.fade_s,
        )
        y = self.engine.infer(audio, shifted)
        final = np.asarray(y[a - w0 : stop - w0], dtype=np.float32)
        provisional = np.asarray(y[stop - w0 :], dtype=np.float32)
        self._next = stop
        keep = max(0, self._next - self._context) // 3 * 3 * SAMPLE_RATE // FPS
        if keep > self._audio_base:
            self._audio = self._audio[keep - self._audio_base :]
            self._audio_base = keep
        return RawBlock(final, provisional)
