"""The procedural engine: lip sync and emotion from the audio signal alone, no weights needed.

Four stages, each either causal (state carried forward frame by frame) or a function of a bounded
window of frames, so that a stream cut into chunks of any size gives exactly the frames of a whole
clip (``infer`` *is* one stream fed in one chunk):

1. **Features** (``speech_features``): loudness, voicing, pitch, formants F1/F2, spectral
   centroid and high-frequency share of a 32 ms window centred on each 60 fps frame.
2. **Speech tracks per frame** (``SpeechTracker``, causal): the level of the speaker's vowels and
   of the background noise are tracked as the audio goes (no look at the whole clip), and turn the
   features into raw articulation values in 0..1: activity, opening (loudness times vowel height
   from F1), rounding (low F1 and F2), spreading (high F2), sibilant and labiodental frication
   (bright versus weak, moderately bright hiss) and pitch emphasis.
3. **Coarticulation** (``shape_tracks``): each track is smoothed with a short Hann kernel, and
   at onsets with one centred *ahead* of the frame (the larger wins), so the mouth moves early
   into the sound it is about to make (``ANTICIPATION_FRAMES``) without leaving it early; lips
   close near speech (before a phrase, shortly after it) and close fully in dark dips of
   loudness and nasal murmurs between louder sounds (p, b, m, short pauses; t/d bursts are
   bright and do not). Context: ``HISTORY_FRAMES`` back, ``LOOKAHEAD_FRAMES`` ahead.
4. **Face** (``_render``): the emotion pose (per-frame blend of the seven poses with the emotion
   timeline's weights), plus every track times its shape (per-emotion gains), plus seeded idle
   micro-motion, clipped to each channel's board range.

Poses, shapes, per-emotion articulation gains and idle motion are data
(``emoface_core/data/emotion_poses.yaml`` and ``articulation.yaml``). Blinks and gaze are not made
here: the shared ``EyeAnimator`` adds them after ``infer`` (``animate_audio``), as for the network.

Latency of a stream: the lookahead (default ``LOOKAHEAD_FRAMES``, 6 frames = 100 ms) plus half an
analysis window (16 ms), 116 ms. ``ProceduralEngine(lookahead_frames=N)`` fits the coarticulation
into ``N`` frames (0..6) for live use (``coarticulation``): each kernel loses its future beyond
``N`` and gains a little past instead, onsets are no longer anticipated, and a lip press in a dip
of loudness is judged from the louder sound *before* it alone. With ``N = 0`` a frame is final
16 ms after its centre.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoface_core.audio import FPS, SAMPLE_RATE, Audio, frame_count
from emoface_core.controllers import CONTROLLER_NAMES, N_CONTROLLERS, channel_range
from emoface_core.emotion import N_EMOTIONS, EmotionControl, EmotionTimeline
from emoface_core.engines.base import BatchGroup, RawBlock, StreamConfig, empty_frames
from emoface_core.engines.procedural.articulation import (
    HISTORY_FRAMES,
    LOOKAHEAD_FRAMES,
    SILENT_RAW,
    SpeechTracker,
    coarticulation,
    frames_past_end,
    latency_ms_of,
    shape_tracks,
)
from emoface_core.engines.procedural.data import N_TRACKS, TRACKS, load_procedural_data
from emoface_core.engines.procedural.speech import FeatureStream, FrameFeatures
from emoface_core.errors import ConfigError

INFER_BLOCK_SAMPLES = 10 * SAMPLE_RATE  # whole clips are fed to the stream 10 s at a time
PROCEDURAL_VERSION = "3"  # bump when the same audio gives other frames (batch re-bakes)
POSES_ENV = "EMOFACE_POSES"  # path of an edited emotion_poses.yaml (used when none is passed)
ARTICULATION_ENV = "EMOFACE_ARTICULATION"  # path of an edited articulation.yaml


def data_fingerprint() -> dict[str, str]:
    """The engine's version and digests of the pose and articulation files it would read now.

    A batch bake hashes these into its up-to-date checks, so editing a pose file named by
    ``$EMOFACE_POSES`` (or the packaged one, in a source checkout) or a new engine version
    re-bakes the lines it affects.
    """
    import hashlib
    from importlib import resources

    from emoface_core.engines.procedural.data import ARTICULATION_FILE, POSES_FILE

    digests = {"engine_version": PROCEDURAL_VERSION}
    for env, name in ((POSES_ENV, POSES_FILE), (ARTICULATION_ENV, ARTICULATION_FILE)):
        override = os.environ.get(env)
        try:
            if override:
                data = Path(override).read_bytes()
            else:
                data = resources.files("emoface_core").joinpath("data").joinpath(name).read_bytes()
            digests[name] = hashlib.sha256(data).hexdigest()[:16]
        except OSError:
            digests[name] = f"unreadable:{override}"  # the engine reports it when it loads
    return digests


# Idle motion of one channel group: channels, amplitude, angular rates and phases of 3 sines.
_Oscillators = tuple[np.ndarray, float, np.ndarray, np.ndarray]


@dataclass
class ProceduralState:
    """Everything a procedural stream carries between chunks (pass it back to ``process``).

    Attributes:
        timeline: the emotion over time; replace it to change emotion live (frame times are
            absolute, counted from the start of the stream).
        features: the incremental feature extractor.
        tracker: causal level/noise/pitch state.
        raw: raw per-frame values still needed as context, ``[k, 7]``; row 0 is frame ``raw_start``.
        raw_start: frame index of ``raw[0]`` (negative rows are the silence before the stream).
        next_frame: the next output frame.
        finished: ``flush`` ran; the stream takes no more audio.
        idle: the idle oscillators of the stream's seed (None: the engine's own seed).
    """

    timeline: EmotionTimeline
    features: FeatureStream = field(default_factory=FeatureStream)
    tracker: SpeechTracker = field(default_factory=SpeechTracker)
    raw: np.ndarray = field(default_factory=lambda: np.tile(SILENT_RAW, (HISTORY_FRAMES, 1)))
    raw_start: int = -HISTORY_FRAMES
    next_frame: int = 0
    finished: bool = False
    idle: list[_Oscillators] | None = None


def _take_rows(emotion_weights: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` rows of ``[m, 7]`` weights, the last row repeated when ``m < n``."""
    w = np.asarray(emotion_weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != N_EMOTIONS or w.shape[0] == 0:
        raise ValueError(f"emotion weights must be [frames, {N_EMOTIONS}], got shape {w.shape}")
    if w.shape[0] < n:
        w = np.concatenate([w, np.repeat(w[-1:], n - w.shape[0], axis=0)])
    return w[:n]


class ProceduralEngine:
    """Animates speech without weights: signal-feature lip sync, emotion poses, idle motion.

    Implements the ``Engine`` protocol (``infer``/``describe``/``open_raw_stream``) on top of
    an explicit-state streaming interface (``start_stream``/``process``/``flush``) whose frames
    equal ``infer``'s exactly.
    """

    name = "procedural"
    # Smoothing is part of the articulation model (coarticulation kernels); a Savitzky-Golay pass
    # on top would blur closures and add nothing.
    wants_smoothing = False
    # ``infer`` and ``start_stream`` take ``seed=`` for the idle motion (``animate_audio`` and
    # ``Streamer.open`` pass theirs, so one seed drives idle motion, blinks and gaze).
    takes_seed = True
    # Defaults of the class; an instance holds those of its own ``lookahead_frames``.
    lookahead_frames = LOOKAHEAD_FRAMES
    # A frame is final once the audio this long past its centre has arrived.
    latency_ms = latency_ms_of(LOOKAHEAD_FRAMES)  # 116.0
    # Whole frames of audio past a frame's end that it waits for: (116 - 8.3) ms -> 7 frames.
    stream_lookahead_frames = frames_past_end(latency_ms)  # 7

    def __init__(
        self,
        *,
        seed: int = 0,
        poses_path: str | Path | None = None,
        articulation_path: str | Path | None = None,
        speech_gain: float = 1.0,
        idle_gain: float = 1.0,
        lookahead_frames: int = LOOKAHEAD_FRAMES,
    ) -> None:
        """Build the engine.

        Args:
            seed: seeds the idle micro-motion when ``infer``/``start_stream`` get no seed
                (blinks and gaze are seeded by the pipeline).
            poses_path: an edited ``emotion_poses.yaml``; None reads ``$EMOFACE_POSES`` if set,
                else the packaged poses.
            articulation_path: an edited ``articulation.yaml``; None reads
                ``$EMOFACE_ARTICULATION`` if set, else the packaged shapes.
            speech_gain: scales every speech shape (0 = no lip sync, 1 = as the data says).
            idle_gain: scales the idle micro-motion (0 turns it off).
            lookahead_frames: future frames the coarticulation may use, 0..6 (default 6:
                100 ms, anticipation and two-sided closures; 0: lowest latency, a frame is
                final 16 ms after its centre; see ``coarticulation``).

        Raises:
            ConfigError: a data file is bad, a gain is outside 0..3 or the lookahead outside
                0..6.
        """
        for label, value in (("speech_gain", speech_gain), ("idle_gain", idle_gain)):
            if not 0.0 <= float(value) <= 3.0:
                raise ConfigError(f"`{label}` must be within 0..3, but {value} is provided")
        self._set_lookahead(lookahead_frames)
        self.seed = int(seed)
        self.speech_gain = float(speech_gain)
        self.idle_gain = float(idle_gain)
        self.data = load_procedural_data(
            poses_path or os.environ.get(POSES_ENV) or None,
            articulation_path or os.environ.get(ARTICULATION_ENV) or None,
        )
        lo, hi = zip(*(channel_range(n) for n in CONTROLLER_NAMES))
        self._lo = np.asarray(lo)
        self._hi = np.asarray(hi)
        self._idle = self._idle_oscillators(self.seed)

    def with_lookahead(self, lookahead_frames: int) -> ProceduralEngine:
        """A copy of this engine (same data, seed and gains) with another lookahead.

        Raises:
            ConfigError: the lookahead is outside 0..6.
        """
        other = copy.copy(self)
        other._set_lookahead(lookahead_frames)
        return other

    def _set_lookahead(self, lookahead_frames: int) -> None:
        if isinstance(lookahead_frames, bool) or lookahead_frames not in range(
            LOOKAHEAD_FRAMES + 1
        ):
            raise ConfigError(
                f"`lookahead_frames` must be a whole number within 0..{LOOKAHEAD_FRAMES}, but "
                f"{lookahead_frames!r} is provided"
            )
        self.lookahead_frames = int(lookahead_frames)
        self.latency_ms = latency_ms_of(self.lookahead_frames)
        self.stream_lookahead_frames = frames_past_end(self.latency_ms)
        self._coarticulation = coarticulation(self.lookahead_frames)

    def infer(
        self, audio: Audio, timeline: EmotionTimeline, *, seed: int | None = None
    ) -> np.ndarray:
        """Controller values ``[audio.n_frames, 174]`` float32 (before blinks and gaze).

        This is one stream fed the whole clip, so it equals streaming the clip in any chunks.

        Args:
            audio: the clip.
            timeline: the emotion over time.
            seed: seeds the idle micro-motion; None uses the engine's ``seed``.
        """
        state = self.start_stream(timeline, seed=seed)
        out = np.empty((audio.n_frames, N_CONTROLLERS), dtype=np.float32)
        n = 0
        # In blocks: the features of a whole hour at once would take gigabytes; a stream gives
        # exactly the same frames whatever the chunking.
        for start in range(0, audio.samples.size, INFER_BLOCK_SAMPLES):
            block, state = self.process(state, audio.samples[start : start + INFER_BLOCK_SAMPLES])
            take = min(len(block), audio.n_frames - n)
            out[n : n + take] = block[:take]
            n += take
        tail, state = self.flush(state, n_frames=audio.n_frames)
        take = min(len(tail), audio.n_frames - n)
        out[n : n + take] = tail[:take]
        n += take
        return out[:n]  # the release's frame count

    def start_stream(
        self, timeline: EmotionTimeline | None = None, *, seed: int | None = None
    ) -> ProceduralState:
        """A fresh stream state; frame 0 starts at the first sample passed to ``process``.

        Args:
            timeline: the emotion over time (neutral when None); ``process`` and ``flush`` may
                instead be given per-frame emotion weights, for emotions that change live.
            seed: seeds the idle micro-motion; None uses the engine's ``seed``.
        """
        return ProceduralState(
            timeline=timeline or EmotionTimeline.constant("neutral"),
            idle=None if seed is None else self._idle_oscillators(int(seed)),
        )

    def process(
        self,
        state: ProceduralState,
        samples: np.ndarray,
        emotion_weights: np.ndarray | None = None,
    ) -> tuple[np.ndarray, ProceduralState]:
        """Feed 16 kHz mono samples (any chunk size) and get the frames they complete.

        Args:
            state: from ``start_stream`` (updated in place and returned).
            samples: float samples in -1..1, ``[S]``, at ``SAMPLE_RATE`` (not normalised).
            emotion_weights: optional ``[m, 7]`` weights of the frames from ``state.next_frame``
                on, overriding the state's timeline (rows past the last one repeat it).

        Returns:
            ``[n, 174]`` float32 frames (n may be 0) and the state. A frame is final once the
            audio ``latency_ms`` past its centre has arrived.

        Raises:
            ValueError: the stream was already flushed, the samples are not finite, or the
                weights are not ``[m, 7]``.
        """
        if state.finished:
            raise ValueError("this procedural stream was flushed; start a new one")
        samples = np.asarray(samples, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(samples)):
            raise ValueError("audio chunk holds NaN or infinite samples")
        self._advance(state, state.features.push(samples))
        return self._emit(state, None, emotion_weights), state

    def flush(
        self,
        state: ProceduralState,
        emotion_weights: np.ndarray | None = None,
        *,
        n_frames: int | None = None,
    ) -> tuple[np.ndarray, ProceduralState]:
        """End the stream: pad with silence and return the remaining frames.

        Args:
            state: the stream state.
            emotion_weights: as for ``process``.
            n_frames: total frames of the stream; default ``int(samples * 60 / 16000)``.

        Returns:
            The last ``[n, 174]`` float32 frames, so that the stream holds ``n_frames`` in all,
            and the (finished) state.
        """
        if n_frames is None:
            n_frames = frame_count(state.features.n_samples, SAMPLE_RATE)
        state.finished = True
        needed = n_frames + self.lookahead_frames
        if state.features.next_frame < needed:
            self._advance(state, state.features.finish(needed))
        return self._emit(state, n_frames, emotion_weights), state

    def open_raw_stream(
        self,
        emotion: EmotionControl,
        config: StreamConfig,
        *,
        seed: int | None = None,
        provisional: bool = True,
        expected_samples: int | None = None,
    ) -> ProceduralRawStream:
        """A raw stream over ``start_stream``/``process``/``flush`` (``config`` does not apply)."""
        return ProceduralRawStream(self, emotion, seed=seed)

    def describe(self) -> dict[str, Any]:
        """Engine facts for metadata."""
        return {
            "name": self.name,
            "version": PROCEDURAL_VERSION,
            "seed": self.seed,
            "poses": self.data.sources["poses"],
            "articulation": self.data.sources["articulation"],
            "speech_gain": self.speech_gain,
            "idle_gain": self.idle_gain,
            "lookahead_frames": self.lookahead_frames,
            "latency_ms": round(self.latency_ms, 1),
        }

    def _advance(self, state: ProceduralState, features: FrameFeatures) -> None:
        if len(features):
            state.raw = np.concatenate([state.raw, state.tracker.step(features)])

    def _emit(
        self, state: ProceduralState, stop: int | None, emotion_weights: np.ndarray | None
    ) -> np.ndarray:
        available = state.raw_start + state.raw.shape[0] - self.lookahead_frames
        end = available if stop is None else min(stop, available)
        n = max(0, end - state.next_frame)
        if n == 0:
            return np.zeros((0, N_CONTROLLERS), dtype=np.float32)
        if emotion_weights is None:
            weights = state.timeline.weights(n, FPS, state.next_frame).astype(np.float64)
        else:
            weights = _take_rows(emotion_weights, n)
        start = state.next_frame - state.raw_start
        tracks = shape_tracks(state.raw, start, n, self._coarticulation)
        frames = self._render(tracks, weights, state.next_frame, state.idle or self._idle)
        state.next_frame += n
        drop = state.next_frame - HISTORY_FRAMES - state.raw_start
        if drop > 0:
            state.raw = state.raw[drop:]
            state.raw_start += drop
        return frames

    def _render(
        self, tracks: np.ndarray, weights: np.ndarray, first: int, idle: list[_Oscillators]
    ) -> np.ndarray:
        """Pose + speech shapes + idle motion for frames ``first ..``, clipped to board ranges."""
        n = tracks.shape[0]
        data = self.data
        # Term by term (no BLAS), so a frame's value never depends on the chunk it came in.
        out = np.zeros((n, N_CONTROLLERS))
        gains = np.zeros((n, N_TRACKS))
        for e in range(N_EMOTIONS):
            w = weights[:, e : e + 1]
            out += w * data.poses[e]
            gains += w * data.gains[e]
        speaking = tracks[:, TRACKS.index("speaking") : TRACKS.index("speaking") + 1]
        out *= 1.0 - self.speech_gain * speaking * data.yields
        driven = tracks * gains * self.speech_gain
        for t in range(N_TRACKS):
            out += driven[:, t : t + 1] * data.shapes[t]
        if self.idle_gain:
            out += self.idle_gain * _idle_motion(idle, first, n)
        return np.clip(out, self._lo, self._hi).astype(np.float32)

    def _idle_oscillators(self, seed: int) -> list[_Oscillators]:
        rng = np.random.default_rng(seed)
        oscillators = []
        for group in self.data.idle:
            periods = rng.uniform(group.period_s[0], group.period_s[1], size=3)
            phases = rng.uniform(0.0, 2.0 * np.pi, size=3)
            oscillators.append(
                (np.asarray(group.channels), group.amplitude, 2.0 * np.pi / (periods * FPS), phases)
            )
        return oscillators


class ProceduralRawStream:
    """One procedural stream as a ``RawStream``: frames as soon as their audio has arrived.

    The emotion is read per call (weights of the frames the call may produce), so a live
    change applies from the next frame on. Gap filler is treated as the silence it is.
    """

    hop_frames = 1
    batch_group: BatchGroup | None = None  # cheap enough per stream; nothing to share

    def __init__(
        self, engine: ProceduralEngine, emotion: EmotionControl, *, seed: int | None = None
    ) -> None:
        self.engine = engine
        self.emotion = emotion
        self.lookahead_frames = engine.stream_lookahead_frames
        # From a frame's first sample until the audio ``latency_ms`` past its centre arrived.
        self.wait_s = 0.5 / FPS + engine.latency_ms / 1000.0
        self._state = engine.start_stream(seed=seed)
        self._n_samples = 0

    @property
    def next_frame(self) -> int:
        """Index of the first frame not produced yet."""
        return self._state.next_frame

    def push(self, samples: np.ndarray, *, gap: bool = False) -> RawBlock:
        """Add samples; return the frames they complete."""
        x = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1))
        self._n_samples += x.size
        frames, self._state = self.engine.process(self._state, x, self._weights())
        return RawBlock(frames, empty_frames())

    def flush(self) -> RawBlock:
        """Return every remaining frame."""
        frames, self._state = self.engine.flush(self._state, self._weights())
        return RawBlock(frames, empty_frames())

    def _weights(self) -> np.ndarray:
        n = frame_count(self._n_samples, SAMPLE_RATE) - self.next_frame + 1
        return self.emotion.weights(self.next_frame, max(n, 1))


def _idle_motion(idle: list[_Oscillators], first: int, n: int) -> np.ndarray:
    """Idle offsets ``[n, 174]``: a pure function of the absolute frame index and the seed."""
    frames = np.arange(first, first + n, dtype=np.float64)[:, None]
    out = np.zeros((n, N_CONTROLLERS))
    for channels, amplitude, omega, phase in idle:
        wave = np.sin(frames * omega[None, :] + phase[None, :]).mean(axis=1)
        out[:, channels] += (amplitude * 0.5 * (1.0 + wave))[:, None]
    return out
