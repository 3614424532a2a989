"""Streaming: audio in pieces of any size, 60 fps frames out as soon as they are final.

The live counterpart of ``emoface_core.animate``, for any engine. A ``Streamer`` opens
``Stream``s of one engine; each stream owns all of its state, so any number run side by side::

    streamer = Streamer(engine, StreamConfig())
    stream = streamer.open(parse_emotion_spec("happy"), seed=0)
    for chunk in chunks:                 # float32 16 kHz mono, any length
        frames = stream.process(chunk)   # [n, 174], n >= 0
    frames = stream.finish()             # the rest, up to the clip's frame count

The engine opens the raw stream (``Engine.open_raw_stream``: the network's causal stepping in
``engines.neural.streaming``, the procedural engine's own causal stream, or windowed
re-inference for anything else); a ``Stream`` puts the shared post-processing on top:

* **Smoothing.** ``SavgolStream`` equals whole-clip Savitzky-Golay smoothing with 7 frames of
  lookahead; the network's provisional lookahead frames stand in for those 7, so smoothing adds
  no latency when ``lookahead_frames >= 7``. Blinks and gaze (``EyeAnimator``) are already
  incremental and equal to whole-clip under the same seed.
* **Gaps.** ``Stream.process_gap`` keeps the frame clock running while a feed delivers nothing;
  the gap is silence that stays out of the normalisation statistics, and the face fades to its
  rest pose over ``rest_fade_ms`` (blinks and gaze go on), then fades back when audio returns.

``process_many`` steps several streams at once; streams of one network run as one batched call.
The clocked live loop that feeds a stream from a microphone or socket lives in the bridge
(``bridge.runtime.live``). See ``docs/realtime.md`` for the figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emoface_core.audio import FPS, SAMPLE_RATE
from emoface_core.controllers import N_CONTROLLERS
from emoface_core.emotion import EmotionControl, EmotionTimeline, parse_emotion_spec
from emoface_core.engines.base import (
    BatchGroup,
    Engine,
    RawBlock,
    RawStream,
    StreamConfig,
    StreamError,
)
from emoface_core.errors import EngineError
from emoface_core.postprocess import EyeAnimator, PostprocessConfig, SavgolStream


class Stream:
    """One live stream: raw engine frames -> gap relaxation -> smoothing -> blinks and gaze.

    Create with ``Streamer.open``. Every method returns the frames that became final, as a
    float32 array ``[n, 174]`` (n may be 0); frame ``i`` of the stream covers audio time
    ``i / 60`` s.
    """

    def __init__(
        self,
        raw: RawStream,
        emotion: EmotionControl,
        *,
        config: StreamConfig,
        postprocess_config: PostprocessConfig | None = None,
        seed: int | None = None,
        raw_output: bool = False,
        smoothing: bool = True,
    ) -> None:
        pp = postprocess_config or PostprocessConfig()
        self.raw = raw
        self.emotion = emotion
        self.config = config
        self.rest_pose = np.zeros(N_CONTROLLERS, dtype=np.float32)
        self._smoother = None
        if smoothing and pp.smooth and not raw_output:
            half = pp.savgol_window // 2
            lookahead = config.smooth_lookahead_frames
            lookahead = half if lookahead is None else min(lookahead, half)
            self._smoother = SavgolStream(pp.savgol_window, pp.savgol_order, lookahead)
        self._eyes = None if raw_output else EyeAnimator(pp, seed)
        self._fade_step = 1.0 / max(1.0, config.rest_fade_ms / 1000.0 * FPS)
        self._live = 1.0  # 1: driven by the audio, 0: at rest (gap)
        self._gaps: list[tuple[int, int]] = []  # sample ranges of gap filler
        self._n_samples = 0
        self._n_gap_samples = 0
        self._n_raw = 0
        self._n_out = 0
        self._finished = False

    @property
    def n_samples_in(self) -> int:
        """Samples received (gap filler included)."""
        return self._n_samples

    @property
    def n_gap_samples(self) -> int:
        """Samples of gap filler added by ``process_gap``."""
        return self._n_gap_samples

    @property
    def n_frames_out(self) -> int:
        """Frames returned so far; the next frame returned has this index."""
        return self._n_out

    @property
    def lookahead_frames(self) -> int:
        """Future frames of audio a frame waits for (engine lookahead plus smoothing's share)."""
        ahead = self.raw.lookahead_frames
        if self._smoother is None:
            return ahead
        smooth = self._smoother.lookahead_frames
        return max(ahead, smooth) if self.config.smooth_provisional else ahead + smooth

    @property
    def hop_frames(self) -> int:
        """Frames the engine makes final together."""
        return self.raw.hop_frames

    def algorithmic_latency_s(self, chunk_s: float = 0.0) -> float:
        """Longest wait, with instant compute, from a frame's first sample to its release.

        The engine's own wait (``RawStream.wait_s``: the frame, its lookahead, the rest of its
        block, any front-end receptive field), the smoother's lookahead where it reaches past
        the engine's, and the arrival of the chunk holding the last sample needed.
        """
        extra_frames = 0
        if self._smoother is not None:
            smooth = self._smoother.lookahead_frames
            ahead = self.raw.lookahead_frames
            extra_frames = max(0, smooth - ahead) if self.config.smooth_provisional else smooth
        return self.raw.wait_s + extra_frames / FPS + chunk_s

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Feed 16 kHz mono float32 samples (any length); return frames now final."""
        self._check_open()
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._n_samples += x.size
        return self._post(self.raw.push(x))

    def process_gap(self, n_samples: int) -> np.ndarray:
        """Keep time moving through ``n_samples`` of missing audio: the face relaxes to rest."""
        self._check_open()
        n_samples = int(n_samples)
        if n_samples <= 0:
            return np.zeros((0, N_CONTROLLERS), dtype=np.float32)
        self._gaps.append((self._n_samples, self._n_samples + n_samples))
        self._n_samples += n_samples
        self._n_gap_samples += n_samples
        return self._post(self.raw.push(np.zeros(n_samples, dtype=np.float32), gap=True))

    def finish(self) -> np.ndarray:
        """The audio has ended: return the remaining frames (the clip's frame count in all)."""
        if self._finished:
            return np.zeros((0, N_CONTROLLERS), dtype=np.float32)
        out = self._post(self.raw.flush(), flush=True)
        self._finished = True
        return out

    def set_emotion(self, emotion: str | int | EmotionTimeline) -> EmotionTimeline:
        """Change the emotion from the next frame the engine computes (cross-faded).

        Raises:
            EmotionSpecError: the spec does not parse (the stream keeps its emotion).
        """
        return self.emotion.set(emotion, self.raw.next_frame)

    def _check_open(self) -> None:
        if self._finished:
            raise StreamError("this stream has finished; open a new one")

    def _relax(self, frames: np.ndarray, first: int, n_commit: int) -> np.ndarray:
        """Blend frames toward the rest pose where they fall in (or fade out of) a gap.

        The fade state after the first ``n_commit`` frames (the final ones) is kept; the rest
        are provisional and will come again.
        """
        if not len(frames) or (self._live == 1.0 and not self._gaps):
            return frames
        out = frames.copy()
        live = committed = self._live
        centres = (np.arange(first, first + len(frames)) + 0.5) * SAMPLE_RATE / FPS
        for i, centre in enumerate(centres):
            in_gap = any(lo <= centre < hi for lo, hi in self._gaps)
            live = max(0.0, live - self._fade_step) if in_gap else min(1.0, live + self._fade_step)
            if live < 1.0:
                out[i] = self.rest_pose + live * (frames[i] - self.rest_pose)
            if i == n_commit - 1:
                committed = live
        if n_commit:
            self._live = committed
            done = (first + n_commit) * SAMPLE_RATE / FPS
            self._gaps = [(lo, hi) for lo, hi in self._gaps if hi > done]
        return out

    def _post(self, block: RawBlock, flush: bool = False) -> np.ndarray:
        if not (np.isfinite(block.final).all() and np.isfinite(block.provisional).all()):
            raise EngineError(
                f"the {self.raw.__class__.__name__} stream produced NaN or infinite values; "
                "the engine's weights or data are broken"
            )
        n = len(block.final)
        frames = np.concatenate([block.final, block.provisional]).astype(np.float32, copy=False)
        frames = self._relax(frames, self._n_raw, n_commit=n)
        final, provisional = frames[:n], frames[n:]
        self._n_raw += n
        if self._smoother is not None:
            out = self._smoother.push(
                final, provisional if self.config.smooth_provisional else None
            )
            if flush:
                out = np.concatenate([out, self._smoother.flush()])
        else:
            out = final.copy()
        if self._eyes is not None and len(out):
            out = self._eyes.apply(out)
        self._n_out += len(out)
        return out


class Streamer:
    """Opens post-processed streams of one engine.

    What streams of one engine share (the network's constants) is the engine's business: it
    builds them once, when its first raw stream opens.

    Args:
        engine: any ``Engine``; it opens its own raw streams (``open_raw_stream``).
        config: windows and normalisation.
        postprocess_config: smoothing, blink and gaze parameters.
    """

    def __init__(
        self,
        engine: Engine,
        config: StreamConfig | None = None,
        postprocess_config: PostprocessConfig | None = None,
    ) -> None:
        self.engine = engine
        self.config = config or StreamConfig()
        self.postprocess_config = postprocess_config or PostprocessConfig()
        self.smoothing = engine.wants_smoothing

    def open(
        self,
        timeline: EmotionTimeline | str = "neutral",
        *,
        seed: int | None = None,
        raw: bool = False,
        expected_samples: int | None = None,
    ) -> Stream:
        """Start a stream.

        Args:
            timeline: emotion (spec or timeline), times relative to the stream's start.
            seed: seeds blinks and gaze, and the engine's own randomness when it
                ``takes_seed`` (procedural idle motion): the same seed gives the frames of
                ``animate_audio`` with that seed.
            raw: no smoothing, blinks or gaze (gaps still relax to rest).
            expected_samples: the audio's length (16 kHz samples) when known in advance; the
                network then interpolates on exactly the whole-clip grid.
        """
        if not isinstance(timeline, EmotionTimeline):
            timeline = parse_emotion_spec(timeline)
        emotion = EmotionControl(timeline)
        wants_provisional = (
            self.smoothing
            and not raw
            and self.postprocess_config.smooth
            and self.config.smooth_provisional
        )
        raw_stream = self.engine.open_raw_stream(
            emotion,
            self.config,
            seed=seed if self.engine.takes_seed else None,
            provisional=wants_provisional,
            expected_samples=expected_samples,
        )
        return Stream(
            raw_stream,
            emotion,
            config=self.config,
            postprocess_config=self.postprocess_config,
            seed=seed,
            raw_output=raw,
            smoothing=self.smoothing,
        )


def process_many(items: Sequence[tuple[Stream, np.ndarray]]) -> list[np.ndarray]:
    """Feed one chunk to each of several streams at once; return each stream's new frames.

    Equivalent to ``[stream.process(chunk) for stream, chunk in items]``, but raw streams that
    share a batch group (``RawStream.batch_group``: the streams of one network) are pushed by
    the group together, so several NPCs cost far less than one network call each on a CPU.

    Raises:
        ValueError: a stream appears twice.
        StreamError: a stream has finished.
    """
    streams = [stream for stream, _ in items]
    if len({id(s) for s in streams}) != len(streams):
        raise ValueError("process_many needs distinct streams (each at most once per call)")
    blocks: list[RawBlock | None] = [None] * len(items)
    groups: dict[int, tuple[BatchGroup, list[int]]] = {}
    chunks = []
    for i, (stream, chunk) in enumerate(items):
        stream._check_open()
        x = np.asarray(chunk, dtype=np.float32).reshape(-1)
        stream._n_samples += x.size
        chunks.append(x)
        group = stream.raw.batch_group
        if group is None:
            blocks[i] = stream.raw.push(x)
        else:
            groups.setdefault(id(group), (group, []))[1].append(i)
    for group, members in groups.values():
        pushed = group.push_many([(streams[i].raw, chunks[i]) for i in members])
        for i, block in zip(members, pushed):
            blocks[i] = block
    return [stream._post(block) for stream, block in zip(streams, blocks) if block is not None]


def stream_clip(stream: Stream, samples: np.ndarray, chunk_samples: int) -> np.ndarray:
    """Feed ``samples`` to ``stream`` in pieces of ``chunk_samples``, then finish; ``[T, 174]``."""
    parts = [
        stream.process(samples[i : i + chunk_samples])
        for i in range(0, len(samples), chunk_samples)
    ]
    parts.append(stream.finish())
    return np.concatenate(parts)
