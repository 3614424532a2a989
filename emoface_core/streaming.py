"""Streaming inference: audio in pieces of any size, 60 fps frames out as soon as they are final.

A ``Streamer`` holds what streams of one engine share (the model and constants derived from its
weights); ``Streamer.open`` starts a ``Stream`` that owns all of its state, so any number of
streams run side by side in one process::

    streamer = Streamer(engine, StreamConfig())
    stream = streamer.open(parse_emotion_spec("happy"), seed=0)
    for chunk in chunks:                 # float32 16 kHz mono, any length
        frames = stream.process(chunk)   # [n, 174], n >= 0
    frames = stream.finish()             # the rest, up to the clip's frame count

Whole-clip inference (``emoface_core.engines.neural.inference``) sees the entire clip at once; a
stream sees
only the past and a bounded lookahead. How each whole-clip step is made causal:

* **wav2vec2 transformer.** Frames are made final in blocks of at least ``hop_frames``. A block
  sees ``lookahead_frames`` of future audio and attends to ``context_frames`` of the past. In
  ``"cache"`` context mode (default) every layer keeps the keys and values of past frames from
  when they were computed (Emformer/Transformer-XL style), so each frame passes through the
  12 layers about ``(hop + lookahead) / hop`` times; ``"recompute"`` reruns the whole window each
  block (closer to whole-clip context, ``(context + hop + lookahead) / hop`` times the cost).
  The positional convolution (+-64 frames) sees zeros beyond the lookahead, as it sees zeros
  past the end of a clip.
* **Audio normalisation and GroupNorm statistics.** The release normalises the clip to zero mean
  and unit variance, and wav2vec2-base's first conv layer normalises each channel over the whole
  input (GroupNorm, one group per channel). Both need the whole clip. Both are functions of a few
  sufficient statistics of the raw audio (sample sum and sum of squares; the sum and the
  ``K x K`` outer-product sum of the first layer's ``K``-sample input windows), accumulated
  exactly as samples arrive. ``norm="cumulative"`` uses everything seen so far, so the
  statistics converge to the whole clip's (equal at the end); ``norm="adaptive"`` forgets with a
  time constant and ignores near-silent blocks, for microphones left open for hours. Conv
  features are computed once with the statistics of their time (cache mode).
* **50 -> 60 fps interpolation.** The release stretches the conv frames over the frame grid with
  ``align_corners=True``, which depends on the clip length. A stream uses the length-free limit
  of that grid, frame ``t`` at conv position ``t * 5/6``: equal at the start, about half a conv
  frame off at the end of a clip (up to 1.2 with rounding: 23 ms). When the length is known in
  advance (``expected_samples``), the stream uses exactly the whole-clip grid.
* **Smoothing.** ``SavgolStream`` equals whole-clip Savitzky-Golay smoothing with 7 frames of
  lookahead; the network's provisional lookahead frames stand in for those 7, so smoothing adds
  no latency when ``lookahead_frames >= 7``. Blinks and gaze (``EyeAnimator``) are already
  incremental and equal to whole-clip under the same seed.

Gaps: ``Stream.process_gap`` keeps the frame clock running while a feed delivers nothing; the gap
is silence that stays out of the normalisation statistics, and the face fades to its rest pose
over ``rest_fade_ms`` (blinks and gaze go on), then fades back when audio returns.

``process_many`` steps several streams of one model in one batched network call (weight reads,
not arithmetic, bound a small step on a CPU). ``LiveRunner`` connects an audio source
(``bridge.sources``) to a stream and a frame sink: it fills gaps, applies emotion changes
from control inputs, releases frames at a steady 60 fps (playout) and measures the latency.
See ``docs/realtime.md`` for the figures.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from emoface_core.audio import FPS, NORM_EPS, SAMPLE_RATE, Audio, frame_count
from emoface_core.controllers import N_CONTROLLERS
from emoface_core.emotion import EmotionTimeline, parse_emotion_spec
from emoface_core.errors import ConfigError, EmoFaceError
from emoface_core.postprocess import EyeAnimator, PostprocessConfig, SavgolStream

if TYPE_CHECKING:
    import torch

    from emoface_core.engines.base import Engine
    from emoface_core.engines.neural.model import EmoFaceModel

log = logging.getLogger(__name__)

CONTEXT_MODES = ("cache", "recompute")
NORM_MODES = ("cumulative", "adaptive")
MAX_STEP_FRAMES = 600  # frames made final per network call at most (10 s), bounds memory
_GATE_BLOCK_SAMPLES = 320  # adaptive normalisation decides per 20 ms block


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


class EmotionControl:
    """The emotion of one stream: a timeline that can be changed while the stream runs.

    Args:
        timeline: the initial emotion, times relative to the start of the stream.
        fps: frame rate of the stream.
    """

    def __init__(self, timeline: EmotionTimeline, fps: float = FPS) -> None:
        self._timeline = timeline
        self.fps = float(fps)
        self.n_changes = 0

    @property
    def timeline(self) -> EmotionTimeline:
        """The current timeline (segments that can still matter)."""
        return self._timeline

    def weights(self, start_frame: int, n_frames: int) -> np.ndarray:
        """Emotion weights ``[n_frames, 7]`` of frames ``start_frame ..``."""
        return self._timeline.weights(n_frames, self.fps, start_frame)

    def set(self, emotion: str | int | EmotionTimeline, at_frame: int) -> EmotionTimeline:
        """Switch to ``emotion`` from frame ``at_frame`` on, cross-fading from there.

        The new spec's times count from ``at_frame`` (``happy@0,sad@2`` turns sad two seconds
        later); segments of the old timeline that had not started yet are dropped.

        Raises:
            EmotionSpecError: the spec does not parse.
        """
        fade_s = self._timeline.fade_s
        new = (
            emotion
            if isinstance(emotion, EmotionTimeline)
            else parse_emotion_spec(emotion, fade_s=fade_s)
        )
        now_s = at_frame / self.fps
        start_s = now_s + fade_s / 2  # the fade is centred on a segment's start: begin it now
        kept = [seg for seg in self._timeline.segments if seg.start_s < start_s]
        # A segment fully faded in by now makes everything before it irrelevant from now on.
        first = max(
            (i for i, seg in enumerate(kept) if i and seg.start_s + fade_s / 2 <= now_s), default=0
        )
        added = [replace(seg, start_s=start_s + seg.start_s) for seg in new.segments]
        self._timeline = EmotionTimeline(tuple(kept[first:] + added), fade_s=fade_s)
        self.n_changes += 1
        return self._timeline


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


class RawStream(Protocol):
    """Incremental raw inference of one engine for one stream (no post-processing)."""

    lookahead_frames: int  # future frames of audio a frame waits for
    hop_frames: int  # frames made final together (1: each as soon as possible)

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


def _empty_frames() -> np.ndarray:
    return np.zeros((0, N_CONTROLLERS), dtype=np.float32)


class _NormStats:
    """Running sufficient statistics of the raw audio for normalisation and the first GroupNorm.

    Audio: count, sum and sum of squares of the samples. First conv layer (kernel ``K``,
    stride ``s``): count, sum ``[K]`` and outer-product sum ``[K, K]`` of its input windows
    ``x[s*j : s*j + K]``. The layer is linear, so the per-channel mean and variance of its output
    over every window seen follow exactly from these (``_conv_stats``), in float64.
    """

    def __init__(self, kernel: int, adaptive: bool, window_s: float, gate_db: float) -> None:
        self.adaptive = adaptive
        self.window_samples = window_s * SAMPLE_RATE
        self.gate = 10.0 ** (gate_db / 10.0)  # power ratio
        self.level = 0.0  # adaptive: followed block power (variance)
        self.n = 0.0
        self.sum = 0.0
        self.sum_sq = 0.0
        self.n_windows = 0.0
        self.window_sum = np.zeros(kernel)
        self.window_outer = np.zeros((kernel, kernel))

    def add(self, samples: np.ndarray, windows: np.ndarray) -> None:
        """Add valid samples ``[n]`` and complete first-layer windows ``[m, K]`` (float64)."""
        if not self.adaptive:
            self._add(samples, windows)
            return
        # Adaptive, per 20 ms block: a level follower (instant attack, release over the window)
        # gates out near-silence; statistics that describe near-silence relative to the level
        # (e.g. a microphone that idled before anyone spoke) start over; the rest is forgotten
        # with the window's time constant, counted in accepted audio so pauses keep the voice.
        n_blocks = max(1, math.ceil(samples.size / _GATE_BLOCK_SAMPLES))
        w_edges = np.linspace(0, len(windows), n_blocks + 1).round().astype(int)
        for i in range(n_blocks):
            block = samples[i * _GATE_BLOCK_SAMPLES : (i + 1) * _GATE_BLOCK_SAMPLES]
            wins = windows[w_edges[i] : w_edges[i + 1]]
            if not block.size:
                continue
            power = float(block.var())
            decay = math.exp(-block.size / self.window_samples)
            self.level = max(power, self.level * decay)
            if power < self.gate * self.level:
                continue
            if self.n and self.audio_var() < self.gate * self.level:
                self._reset()
            for name in ("n", "sum", "sum_sq", "n_windows"):
                setattr(self, name, getattr(self, name) * decay)
            self.window_sum *= decay
            self.window_outer *= decay
            self._add(block, wins)

    def _reset(self) -> None:
        self.n = self.sum = self.sum_sq = self.n_windows = 0.0
        self.window_sum[:] = 0.0
        self.window_outer[:] = 0.0

    def _add(self, samples: np.ndarray, windows: np.ndarray) -> None:
        self.n += samples.size
        self.sum += float(samples.sum())
        self.sum_sq += float(np.dot(samples, samples))
        if len(windows):
            self.n_windows += len(windows)
            self.window_sum += windows.sum(axis=0)
            self.window_outer += windows.T @ windows

    def audio_mean(self) -> float:
        """Mean of the samples so far (0 before any)."""
        return self.sum / self.n if self.n else 0.0

    def audio_var(self) -> float:
        """Variance of the samples so far (1 before any)."""
        if not self.n:
            return 1.0
        mean = self.sum / self.n
        return max(self.sum_sq / self.n - mean * mean, 0.0)

    def conv_stats(self, weight: np.ndarray, bias: np.ndarray, mean: float, scale: float) -> tuple:
        """Per-channel mean and variance ``[C]`` of the first conv layer on normalised audio.

        Args:
            weight: the layer's kernels ``[C, K]``.
            bias: its bias ``[C]`` (zeros when it has none).
            mean: the audio mean subtracted before the layer.
            scale: the audio standard deviation divided out.
        """
        if not self.n_windows:
            return bias.copy(), np.ones_like(bias)
        mu = self.window_sum / self.n_windows
        cov = self.window_outer / self.n_windows - np.outer(mu, mu)
        mu_norm = (mu - mean) / scale
        cov_norm = cov / (scale * scale)
        ch_mean = weight @ mu_norm + bias
        ch_var = np.einsum("ck,kl,cl->c", weight, cov_norm, weight)
        return ch_mean, np.maximum(ch_var, 0.0)


class StreamingNetwork:
    """What every stream of one ``EmoFaceModel`` shares: the model and constants of its weights.

    Args:
        model: the network (eval mode is set here); may be a fast-mode (quantised) copy.
    """

    def __init__(self, model: EmoFaceModel) -> None:
        import torch
        from torch import nn

        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.stride = model.conv_stride()  # samples per conv frame (320: 50 fps)
        self.receptive_field = model.conv_receptive_field()  # samples per conv frame (400)
        w2v = model.audio_encoder
        self.stable_layer_norm = bool(getattr(w2v.config, "do_stable_layer_norm", False))
        encoder = w2v.encoder
        if any(getattr(layer, "adapter_layer", None) is not None for layer in encoder.layers):
            raise ConfigError("streaming does not support wav2vec2 attention adapters")
        pos = encoder.pos_conv_embed
        with torch.no_grad():
            self.pos_weight = pos.conv.weight.detach().clone()  # weight norm applied once
        self.pos_bias = pos.conv.bias.detach()
        self.pos_groups = pos.conv.groups
        self.pos_kernel = pos.conv.kernel_size[0]
        self.pos_pad = pos.conv.padding[0]
        self.pos_activation = pos.activation
        conv0 = w2v.feature_extractor.conv_layers[0]
        self.group_norm = isinstance(getattr(conv0, "layer_norm", None), nn.GroupNorm)
        self.conv0_kernel = conv0.conv.kernel_size[0]
        self.conv0_stride = conv0.conv.stride[0]
        self.conv0_weight = conv0.conv.weight.detach()[:, 0, :].double().cpu().numpy()  # [C, K]
        bias = conv0.conv.bias
        self.conv0_bias = (
            bias.detach().double().cpu().numpy()
            if bias is not None
            else np.zeros(len(self.conv0_weight))
        )

    def conv_frames(self, n_samples: int) -> int:
        """Conv frames computable from the first ``n_samples`` samples (0 below 25 ms)."""
        if n_samples < self.receptive_field:
            return 0
        return (n_samples - self.receptive_field) // self.stride + 1

    @property
    def grid_scale(self) -> float:
        """Conv frames per 60 fps frame on a stream's grid (5/6 for wav2vec2-base)."""
        return SAMPLE_RATE / (FPS * self.stride)

    def clip_grid_scale(self, n_samples: int) -> float:
        """The whole-clip grid of a clip of ``n_samples``: its last frame on its last conv frame."""
        n_frames = frame_count(n_samples, SAMPLE_RATE)
        n_conv = self.conv_frames(max(n_samples, self.receptive_field))
        return (n_conv - 1) / (n_frames - 1) if n_frames > 1 else self.grid_scale

    def open(
        self,
        emotion: EmotionControl,
        config: StreamConfig,
        *,
        provisional: bool = True,
        expected_samples: int | None = None,
    ) -> NeuralRawStream:
        """Start one stream's raw inference (see ``NeuralRawStream``)."""
        return NeuralRawStream(
            self, emotion, config, provisional=provisional, expected_samples=expected_samples
        )


class NeuralRawStream:
    """Incremental EmoFace network inference for one stream; every piece of state lives here.

    Args:
        network: the shared model constants.
        emotion: the stream's emotion (read when frames are decoded).
        config: windows and normalisation.
        provisional: also decode the lookahead frames (for the smoother); costs decoder time.
        expected_samples: the clip's length when known in advance (a file, a finished TTS line):
            frames then sit on exactly the whole-clip interpolation grid.
    """

    def __init__(
        self,
        network: StreamingNetwork,
        emotion: EmotionControl,
        config: StreamConfig,
        *,
        provisional: bool = True,
        expected_samples: int | None = None,
    ) -> None:
        self.net = network
        self.emotion = emotion
        self.config = config
        self.lookahead_frames = config.lookahead_frames
        self.hop_frames = config.hop_frames
        self.provisional = provisional
        self._scale = (
            network.grid_scale
            if not expected_samples
            else network.clip_grid_scale(expected_samples)
        )
        self._stats = _NormStats(
            network.conv0_kernel,
            config.norm == "adaptive",
            config.norm_window_s,
            config.norm_gate_db,
        )
        self._audio = np.zeros(0, dtype=np.float32)  # raw samples from _audio_base on
        self._valid = np.zeros(0, dtype=bool)  # False for gap filler
        self._audio_base = 0
        self._n_samples = 0  # samples received
        self._n_windows = 0  # first-layer windows added to the statistics
        self._next = 0  # first frame not final
        self._n_conv = 0  # conv frames computed (cache mode)
        self._conv: torch.Tensor | None = None  # [C, n] conv frames from _conv_base
        self._conv_base = 0
        self._n_feat = 0  # frames whose projected features exist
        self._proj: torch.Tensor | None = None  # [n, hidden] projected features from _proj_base
        self._proj_base = 0
        self._kv: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(
            network.model.audio_encoder.encoder.layers
        )
        self._decoder_context: torch.Tensor | None = None  # temporal mode: [n, hidden] before _next
        self._finished = False

    @property
    def next_frame(self) -> int:
        """Index of the first frame that is not final yet."""
        return self._next

    @property
    def n_samples(self) -> int:
        """Samples received so far."""
        return self._n_samples

    def push(self, samples: np.ndarray, *, gap: bool = False) -> RawBlock:
        """Add samples (16 kHz mono); return the frames that became final, plus provisional ones.

        Args:
            samples: float32 ``[S]``; any length, including 0.
            gap: the samples are filler for a gap in the feed: they go through the network like
                silence but stay out of the normalisation statistics.

        Raises:
            StreamError: the stream was flushed already.
        """
        self._append(samples, gap=gap)
        return self._advance(flush=False)

    def _append(self, samples: np.ndarray, *, gap: bool = False) -> None:
        """Buffer samples and update the running statistics (no network work)."""
        if self._finished:
            raise StreamError("this stream has finished; open a new one")
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(x)):
            log.warning("non-finite audio samples replaced by 0")
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        if x.size:
            self._audio = np.concatenate([self._audio, x])
            self._valid = np.concatenate([self._valid, np.full(x.size, not gap)])
            self._n_samples += x.size
            self._update_stats(self._n_samples - x.size)

    def flush(self) -> RawBlock:
        """Return every remaining frame (the clip has ``frame_count(samples)`` frames)."""
        if self._finished:
            return RawBlock(_empty_frames(), _empty_frames())
        n_frames = frame_count(self._n_samples, SAMPLE_RATE)
        short = self.net.receptive_field - self._n_samples
        if short > 0 and n_frames > 0:
            # Whole-clip inference pads clips under 25 ms the same way.
            self._audio = np.concatenate([self._audio, np.zeros(short, dtype=np.float32)])
            self._valid = np.concatenate([self._valid, np.ones(short, dtype=bool)])
            self._n_samples += short
            self._update_stats(self._n_samples - short)
        block = self._advance(flush=True, n_frames=n_frames)
        self._finished = True
        return block

    def _update_stats(self, first_new: int) -> None:
        net = self.net
        k, s = net.conv0_kernel, net.conv0_stride
        n_windows = (self._n_samples - k) // s + 1 if self._n_samples >= k else 0
        new = slice(first_new - self._audio_base, None)
        samples = self._audio[new][self._valid[new]].astype(np.float64)
        windows = np.zeros((0, k))
        if n_windows > self._n_windows:
            lo = self._n_windows * s - self._audio_base
            hi = (n_windows - 1) * s + k - self._audio_base
            view = np.lib.stride_tricks.sliding_window_view(self._audio[lo:hi], k)[::s]
            ok = np.lib.stride_tricks.sliding_window_view(self._valid[lo:hi], k)[::s].all(axis=1)
            windows = view[ok].astype(np.float64)
            self._n_windows = n_windows
        self._stats.add(samples, windows)

    def _n_features_available(self) -> int:
        """Frames whose interpolated features can be computed from the samples so far."""
        n_conv = self.net.conv_frames(self._n_samples)
        if n_conv == 0:
            return 0
        last = math.floor((n_conv - 1) / self._scale + 1e-9)  # ceil(position) <= n_conv - 1
        return min(frame_count(self._n_samples, SAMPLE_RATE), last + 1)

    def _position(self, frame: np.ndarray | int) -> np.ndarray:
        """Conv-frame position of 60 fps frames on this stream's interpolation grid."""
        return np.asarray(frame, dtype=np.float64) * self._scale

    def _advance(self, *, flush: bool, n_frames: int = 0) -> RawBlock:
        end = n_frames if flush else self._n_features_available()
        finals: list[np.ndarray] = []
        provisional = _empty_frames()
        while (plan := self._plan(end, flush=flush)) is not None:
            ((final, provisional),) = run_network_steps(self.net, [(self, *plan)])
            finals.append(final)
        final = np.concatenate(finals) if finals else _empty_frames()
        return RawBlock(final, provisional)

    def _plan(self, end: int, *, flush: bool) -> tuple[int, int, int] | None:
        """The next step ``(a, n, e)``: make frames ``[a, a + n)`` final seeing up to ``e``."""
        a = self._next
        n = (end if flush else end - self.config.lookahead_frames) - a
        if n <= 0 or (not flush and n < self.config.hop_frames):
            return None
        n = min(n, MAX_STEP_FRAMES)
        return a, n, min(end, a + n + self.config.lookahead_frames)

    def _decoder_window(self, hidden: torch.Tensor, a: int, n: int) -> tuple[torch.Tensor, int]:
        """Cache mode: the hidden states the decoder sees, and the frame index they start at.

        Per-frame decoding needs only the block; temporal decoding also attends to the last
        ``context_frames`` final frames, kept here.
        """
        import torch

        if self.net.model.per_frame:
            return hidden, a
        context = self._decoder_context
        window, start = hidden, a
        if context is not None and len(context):
            window, start = torch.cat([context, hidden]), a - len(context)
        keep = self.config.context_frames
        joined = hidden[:n] if context is None else torch.cat([context, hidden[:n]])
        self._decoder_context = joined[max(0, len(joined) - keep) :] if keep else None
        return window, start

    def _normalised(self, lo: int, hi: int) -> torch.Tensor:
        """Samples ``[lo, hi)`` (global indices) normalised with the running statistics."""
        import torch

        mean = self._stats.audio_mean()
        scale = math.sqrt(self._stats.audio_var() + NORM_EPS)
        x = (self._audio[lo - self._audio_base : hi - self._audio_base] - mean) / scale
        return torch.from_numpy(x.astype(np.float32)).to(self.net.device)[None]

    def _compute_conv(self, k0: int, k1: int) -> torch.Tensor:
        """Conv frames ``[k0, k1)`` ``[C, k1 - k0]`` under the current statistics."""
        import torch

        net = self.net
        lo, hi = k0 * net.stride, (k1 - 1) * net.stride + net.receptive_field
        samples = self._normalised(lo, hi)
        stats: tuple[torch.Tensor, torch.Tensor] | None = None
        if net.group_norm:
            mean = self._stats.audio_mean()
            scale = math.sqrt(self._stats.audio_var() + NORM_EPS)
            ch_mean, ch_var = self._stats.conv_stats(net.conv0_weight, net.conv0_bias, mean, scale)
            mean_t, var_t = (
                torch.from_numpy(v.astype(np.float32)).to(net.device)[None, :, None]
                for v in (ch_mean, ch_var)
            )
            stats = (mean_t, var_t)
        # conv_features pads inputs under 25 ms at the end; those extra frames are dropped.
        conv = net.model.conv_features(samples, norm_stats=stats)[0]
        assert conv.shape[-1] >= k1 - k0, (conv.shape, k0, k1)
        return conv[:, : k1 - k0]

    def _features(self, conv: torch.Tensor, conv_base: int, u0: int, u1: int) -> torch.Tensor:
        """Interpolated conv features of frames ``[u0, u1)`` ``[u1 - u0, C]``."""
        import torch

        from emoface_core.engines.neural.inference import features_at

        positions = self._position(np.arange(u0, u1)) - conv_base
        pos = torch.from_numpy(positions).to(device=conv.device, dtype=conv.dtype)
        return features_at(conv[None], pos)[0]

    def _ensure_features(self, e: int) -> None:
        """Cache mode: compute new conv frames and projected features up to frame ``e``."""
        import torch

        if self._n_feat >= e:
            return
        n_conv = self.net.conv_frames(self._n_samples)
        if n_conv > self._n_conv:
            new = self._compute_conv(self._n_conv, n_conv)
            self._conv = new if self._conv is None else torch.cat([self._conv, new], dim=1)
            self._n_conv = n_conv
        assert self._conv is not None
        feats = self._features(self._conv, self._conv_base, self._n_feat, e)
        proj, _ = self.net.model.audio_encoder.feature_projection(feats[None])
        self._proj = proj[0] if self._proj is None else torch.cat([self._proj, proj[0]])
        self._n_feat = e

    def _encoder_input(self, a: int, e: int) -> torch.Tensor:
        """Cache mode: wav2vec2's transformer input for frames ``[a, e)`` ``[e - a, hidden]``.

        Projected features plus the positional convolution, which sees zeros outside the frames
        known so far (before the stream, and past the lookahead, as past the end of a clip).
        """
        import torch
        import torch.nn.functional as F  # noqa: N812

        net = self.net
        self._ensure_features(e)
        proj = self._proj
        assert proj is not None
        length = e - a
        # out[t] = sum_k w[k] in[t + k - pad]
        lo = a - net.pos_pad
        seg = torch.zeros(length + net.pos_kernel - 1, proj.shape[1], device=net.device)
        src_lo, src_hi = max(lo, 0), min(lo + len(seg), self._n_feat)
        seg[src_lo - lo : src_hi - lo] = proj[src_lo - self._proj_base : src_hi - self._proj_base]
        pos = F.conv1d(seg.T[None], net.pos_weight, net.pos_bias, groups=net.pos_groups)
        x = proj[a - self._proj_base : e - self._proj_base] + net.pos_activation(pos)[0].T
        if not net.stable_layer_norm:
            x = net.model.audio_encoder.encoder.layer_norm(x)
        return x

    def _encode_window(self, w0: int, e: int) -> torch.Tensor:
        """Recompute mode: conv features and the whole wav2vec2 over frames ``[w0, e)``."""
        net = self.net
        n_conv = net.conv_frames(self._n_samples)
        k_lo = int(math.floor(self._position(w0)))
        k_hi = min(n_conv - 1, int(math.ceil(self._position(e - 1))))
        conv = self._compute_conv(k_lo, k_hi + 1)
        feats = self._features(conv, k_lo, w0, e)
        return net.model.encode_features(feats[None])[0]

    def _decoder_rows(
        self, window: torch.Tensor, window_start: int, a: int, n: int, e: int
    ) -> tuple[torch.Tensor, np.ndarray, int, slice]:
        """What Audio2Rig decodes for this step.

        Returns:
            The rows, their emotion weights, the position of the first row, and which output
            rows are frames ``[a, a + n)`` (then the provisional ones).
        """
        stop = e if self.provisional else a + n
        if self.net.model.per_frame:
            rows = window[a - window_start : stop - window_start]
            return rows, self.emotion.weights(a, stop - a), 0, slice(0, stop - a)
        rows = window[: e - window_start]
        weights = self.emotion.weights(window_start, e - window_start)
        # Absolute positions, as whole-clip inference of a clip up to 60 s; past the positional
        # table (83 s) they count from the window start, as windowed inference does.
        start = window_start if e <= self.net.model.config.max_positions else 0
        return rows, weights, start, slice(a - window_start, stop - window_start)

    def _trim(self) -> None:
        """Drop audio, conv frames and features no future step can need."""
        net, cfg = self.net, self.config
        if cfg.context == "cache":
            keep_feat = max(0, self._next - net.pos_pad)
            if self._proj is not None and keep_feat > self._proj_base:
                self._proj = self._proj[keep_feat - self._proj_base :]
                self._proj_base = keep_feat
            keep_conv = int(math.floor(self._position(self._n_feat)))
            if self._conv is not None and keep_conv > self._conv_base:
                keep_conv = min(keep_conv, self._n_conv)
                self._conv = self._conv[:, keep_conv - self._conv_base :]
                self._conv_base = keep_conv
            keep_sample = self._n_conv * net.stride
        else:
            w0 = max(0, self._next - cfg.context_frames)
            keep_sample = int(math.floor(self._position(w0))) * net.stride
        keep_sample = min(keep_sample, self._n_windows * net.conv0_stride)
        if keep_sample > self._audio_base:
            self._audio = self._audio[keep_sample - self._audio_base :]
            self._valid = self._valid[keep_sample - self._audio_base :]
            self._audio_base = keep_sample


def run_network_steps(
    net: StreamingNetwork, jobs: Sequence[tuple[NeuralRawStream, int, int, int]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One network step for each of several streams of ``net``, sharing the weight reads.

    On a CPU a step of a few frames is bound by reading the weights from memory, not by
    arithmetic, so the rows of all streams go through every projection, feed-forward and
    per-frame decoder layer together; attention, positional convolution and caches stay per
    stream. Each job is ``(stream, a, n, e)`` from ``NeuralRawStream._plan``.

    Returns:
        Per job, the final frames ``[n, 174]`` and the provisional ones after them.
    """
    import torch

    with torch.inference_mode():
        cached = [job for job in jobs if job[0].config.context == "cache"]
        hidden: dict[int, torch.Tensor] = {}
        if cached:
            inputs = [stream._encoder_input(a, e) for stream, a, _, e in cached]
            outputs = _cached_layers(net, [(job[0], x, job[2]) for job, x in zip(cached, inputs)])
            hidden = {id(job[0]): h for job, h in zip(cached, outputs)}
        decode = []
        for stream, a, n, e in jobs:
            if id(stream) in hidden:
                window, start = stream._decoder_window(hidden[id(stream)], a, n)
            else:
                start = max(0, a - stream.config.context_frames)
                window = stream._encode_window(start, e)
            decode.append(stream._decoder_rows(window, start, a, n, e))
        ys = _decode_rows(net.model, decode)
    results = []
    for (stream, a, n, _), y in zip(jobs, ys):
        stream._next = a + n
        stream._trim()
        results.append((y[:n], y[n:]))
    return results


def _cached_layers(
    net: StreamingNetwork, items: list[tuple[NeuralRawStream, torch.Tensor, int]]
) -> list[torch.Tensor]:
    """wav2vec2's layers over several streams' blocks ``(stream, x [T, D], n_final)``.

    Every stream attends to its own cached keys/values of past final frames plus its block;
    only the block's final frames enter the cache (lookahead frames are recomputed next time).
    """
    import torch
    import torch.nn.functional as F  # noqa: N812

    encoder = net.model.audio_encoder.encoder
    lengths = [len(x) for _, x, _ in items]
    x = torch.cat([x for _, x, _ in items]) if len(items) > 1 else items[0][1]
    for i, layer in enumerate(encoder.layers):
        attn = layer.attention
        heads, dim = attn.num_heads, attn.head_dim
        h = layer.layer_norm(x) if net.stable_layer_norm else x
        q, k, v = attn.q_proj(h), attn.k_proj(h), attn.v_proj(h)
        outs, offset = [], 0
        for (stream, _, n), length in zip(items, lengths):
            part = slice(offset, offset + length)
            offset += length
            qs, ks, vs = (t[part].view(length, heads, dim).transpose(0, 1) for t in (q, k, v))
            cached = stream._kv[i]
            keys = ks if cached is None else torch.cat([cached[0], ks], dim=1)
            values = vs if cached is None else torch.cat([cached[1], vs], dim=1)
            o = F.scaled_dot_product_attention(qs, keys, values, scale=attn.scaling)
            outs.append(o.transpose(0, 1).reshape(length, heads * dim))
            keep = stream.config.context_frames
            if keep:
                drop = length - n
                stream._kv[i] = (
                    keys[:, : keys.shape[1] - drop][:, -keep:],
                    values[:, : values.shape[1] - drop][:, -keep:],
                )
        o = attn.out_proj(torch.cat(outs) if len(outs) > 1 else outs[0])
        if net.stable_layer_norm:
            x = x + o
            x = x + layer.feed_forward(layer.final_layer_norm(x))
        else:
            x = layer.layer_norm(x + o)
            x = layer.final_layer_norm(x + layer.feed_forward(x))
    if net.stable_layer_norm:
        x = encoder.layer_norm(x)
    return list(torch.split(x, lengths))


def _decode_rows(
    model: EmoFaceModel, items: list[tuple[torch.Tensor, np.ndarray, int, slice]]
) -> list[np.ndarray]:
    """Audio2Rig for several steps: per-frame decoding in one call, temporal one by one."""
    import torch

    device = next(model.parameters()).device
    if model.per_frame:
        all_rows = torch.cat([r for r, _, _, _ in items])
        all_weights = torch.from_numpy(np.concatenate([w for _, w, _, _ in items])).to(device)
        y = model.decode(all_rows[None], all_weights[None])[0].float().cpu().numpy()
        bounds = np.cumsum([0] + [len(r) for r, _, _, _ in items])
        return [y[lo:hi][keep] for (_, _, _, keep), lo, hi in zip(items, bounds, bounds[1:])]
    out = []
    for rows, weights, start, keep in items:
        w = torch.from_numpy(weights).to(device)
        decoded = model.decode(rows[None], w[None], start_frame=start)[0]
        out.append(decoded[keep].float().cpu().numpy())
    return out


class WindowedRawStream:
    """Any ``Engine`` streamed by re-running ``infer`` on a sliding window of audio.

    Used for engines without a stream API of their own. Each call sees ``window_context_s`` of
    past audio and ``lookahead_frames`` of future audio; only the frames in between are kept.
    """

    def __init__(self, engine: Engine, emotion: EmotionControl, config: StreamConfig) -> None:
        self.engine = engine
        self.emotion = emotion
        self.config = config
        self.lookahead_frames = config.lookahead_frames
        self.hop_frames = config.hop_frames
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
            return RawBlock(_empty_frames(), _empty_frames())
        self._finished = True
        return self._advance(frame_count(self._n_samples, SAMPLE_RATE), True)

    def _advance(self, stop: int, flush: bool) -> RawBlock:
        a = self._next
        if stop - a <= 0 or (not flush and stop - a < self.config.hop_frames):
            return RawBlock(_empty_frames(), _empty_frames())
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


class EngineRawStream:
    """An engine's own incremental API (``start_stream`` / ``process`` / ``flush``) as a RawStream.

    The engine keeps its state in an explicit object: ``state = engine.start_stream(...)``,
    ``frames, state = engine.process(state, samples, emotion_weights)``,
    ``frames, state = engine.flush(state, emotion_weights)``. Emotion weights are passed for
    the frames the call may produce (from ``next_frame`` on). An engine that ``takes_seed``
    gets the stream's seed (``start_stream(seed=...)``), as ``animate_audio`` passes it to
    ``infer``. The engine's ``latency_ms`` (audio needed past a frame's centre), when it states
    one, gives the exact wait; else ``stream_lookahead_frames`` whole frames past its end.
    """

    def __init__(
        self,
        engine: Any,
        emotion: EmotionControl,
        config: StreamConfig,
        seed: int | None = None,
    ) -> None:
        self.engine = engine
        self.emotion = emotion
        self.lookahead_frames = int(getattr(engine, "stream_lookahead_frames", 0))
        self.hop_frames = 1
        latency_ms = getattr(engine, "latency_ms", None)
        # From a frame's first sample until the audio it needs has arrived.
        self.wait_s = (
            0.5 / FPS + float(latency_ms) / 1000.0
            if latency_ms is not None
            else (1 + self.lookahead_frames) / FPS
        )
        if seed is not None and getattr(engine, "takes_seed", False) is True:
            self._state = engine.start_stream(seed=seed)
        else:
            self._state = engine.start_stream()
        self._n_samples = 0
        self._next = 0

    @property
    def next_frame(self) -> int:
        """Index of the first frame not produced yet."""
        return self._next

    def push(self, samples: np.ndarray, *, gap: bool = False) -> RawBlock:
        """Add samples; return the frames the engine produced."""
        x = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1))
        self._n_samples += x.size
        frames, self._state = self.engine.process(self._state, x, self._weights())
        return self._block(frames)

    def flush(self) -> RawBlock:
        """Return every remaining frame."""
        frames, self._state = self.engine.flush(self._state, self._weights())
        return self._block(frames)

    def _weights(self) -> np.ndarray:
        n = frame_count(self._n_samples, SAMPLE_RATE) - self._next + 1
        return self.emotion.weights(self._next, max(n, 1))

    def _block(self, frames: np.ndarray) -> RawBlock:
        frames = np.asarray(frames, dtype=np.float32).reshape(-1, N_CONTROLLERS)
        self._next += len(frames)
        return RawBlock(frames, _empty_frames())


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

        The frame itself, its lookahead, the rest of its block, about 30 ms of conv receptive
        field for the network, and the arrival of the chunk holding the last sample needed.
        An engine with its own stream API and no smoothing on top waits exactly its
        ``latency_ms`` past the frame's centre.
        """
        if isinstance(self.raw, EngineRawStream) and self._smoother is None:
            return self.raw.wait_s + chunk_s
        frontend_s = 0.03 if isinstance(self.raw, NeuralRawStream) else 0.0
        frames = 1 + self.lookahead_frames + self.hop_frames - 1
        return frames / FPS + frontend_s + chunk_s

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
    """Opens streams of one engine; what the streams share is built once here.

    Args:
        engine: the neural engine (anything with an ``EmoFaceModel`` as ``.model``), an engine
            with its own stream API (``start_stream``/``process``/``flush``), or any ``Engine``
            (streamed by windowed re-inference).
        config: windows and normalisation.
        postprocess_config: smoothing, blink and gaze parameters.
    """

    def __init__(
        self,
        engine: Engine | Any,
        config: StreamConfig | None = None,
        postprocess_config: PostprocessConfig | None = None,
    ) -> None:
        self.engine = engine
        self.config = config or StreamConfig()
        self.postprocess_config = postprocess_config or PostprocessConfig()
        self.smoothing = bool(getattr(engine, "wants_smoothing", True))
        model: Any = getattr(engine, "model", None)
        self.network = StreamingNetwork(model) if hasattr(model, "conv_features") else None
        self.kind = (
            "network"
            if self.network is not None
            else "engine"
            if hasattr(engine, "start_stream")
            else "windowed"
        )

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
        raw_stream: RawStream
        if self.network is not None:
            raw_stream = self.network.open(
                emotion,
                self.config,
                provisional=wants_provisional,
                expected_samples=expected_samples,
            )
        elif self.kind == "engine":
            raw_stream = EngineRawStream(self.engine, emotion, self.config, seed=seed)
        else:
            raw_stream = WindowedRawStream(self.engine, emotion, self.config)
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

    Equivalent to ``[stream.process(chunk) for stream, chunk in items]``, but the network steps
    of streams that share a ``Streamer`` run as one batched call (``run_network_steps``), so
    several NPCs cost far less than one call each on a CPU.

    Raises:
        ValueError: a stream appears twice.
        StreamError: a stream has finished.
    """
    streams = [stream for stream, _ in items]
    if len({id(s) for s in streams}) != len(streams):
        raise ValueError("process_many needs distinct streams (each at most once per call)")
    blocks: list[RawBlock | None] = []
    neural: dict[int, NeuralRawStream] = {}
    for i, (stream, chunk) in enumerate(items):
        stream._check_open()
        x = np.asarray(chunk, dtype=np.float32).reshape(-1)
        stream._n_samples += x.size
        raw = stream.raw
        if isinstance(raw, NeuralRawStream):
            raw._append(x)
            neural[i] = raw
            blocks.append(None)
        else:
            blocks.append(raw.push(x))
    finals: dict[int, list[np.ndarray]] = {i: [] for i in neural}
    provisional = {i: _empty_frames() for i in neural}
    ends = {i: raw._n_features_available() for i, raw in neural.items()}
    while True:
        jobs = [(i, plan) for i, raw in neural.items() if (plan := raw._plan(ends[i], flush=False))]
        if not jobs:
            break
        groups: dict[int, list[tuple[int, tuple[int, int, int]]]] = {}
        for i, plan in jobs:
            groups.setdefault(id(neural[i].net), []).append((i, plan))
        for group in groups.values():
            net = neural[group[0][0]].net
            results = run_network_steps(net, [(neural[i], *plan) for i, plan in group])
            for (i, _), (final, prov) in zip(group, results):
                finals[i].append(final)
                provisional[i] = prov
    for i in neural:
        final = np.concatenate(finals[i]) if finals[i] else _empty_frames()
        blocks[i] = RawBlock(final, provisional[i])
    return [stream._post(block) for stream, block in zip(streams, blocks) if block is not None]


def stream_clip(stream: Stream, samples: np.ndarray, chunk_samples: int) -> np.ndarray:
    """Feed ``samples`` to ``stream`` in pieces of ``chunk_samples``, then finish; ``[T, 174]``."""
    parts = [
        stream.process(samples[i : i + chunk_samples])
        for i in range(0, len(samples), chunk_samples)
    ]
    parts.append(stream.finish())
    return np.concatenate(parts)


LATENCY_WINDOW = 36_000  # frames of latency kept for percentiles (10 minutes at 60 fps)
LATE_TOLERANCE_S = 0.004  # a frame released this much after its playout time counts as late


@dataclass
class LiveStats:
    """What a ``LiveRunner`` saw.

    Attributes:
        n_chunks: audio chunks received.
        n_samples: audio samples received (16 kHz).
        n_gap_samples: silence samples added for gaps in the feed.
        n_gaps: gaps filled.
        n_frames: frames handed to the sink.
        n_emotion_changes: emotion changes applied.
        n_bad_commands: control messages that were refused.
        n_late: frames released after their playout time (a few ms of tolerance).
        latency_s: per frame, sink time minus the capture time of the frame's first sample
            (real-time sources only; the last ``LATENCY_WINDOW`` frames).
        compute_s: per stream call, seconds spent computing (the last ``LATENCY_WINDOW`` calls).
        duration_s: wall time of the run.
        end_reason: "source ended", "stopped" or "quit".
    """

    n_chunks: int = 0
    n_samples: int = 0
    n_gap_samples: int = 0
    n_gaps: int = 0
    n_frames: int = 0
    n_emotion_changes: int = 0
    n_bad_commands: int = 0
    n_late: int = 0
    latency_s: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    compute_s: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    duration_s: float = 0.0
    end_reason: str = ""

    def latency_percentile(self, q: float) -> float:
        """The ``q``-th percentile of ``latency_s`` in seconds (NaN when empty)."""
        return float(np.percentile(self.latency_s, q)) if self.latency_s else float("nan")


class AudioFeed(Protocol):
    """What ``LiveRunner`` needs from a source (see ``bridge.sources``)."""

    realtime: bool  # delivers audio at the pace it is captured (gaps are then real gaps)

    def read(self, timeout_s: float) -> np.ndarray | None:
        """Next 16 kHz mono chunk; empty if none arrived within ``timeout_s``; None at the end."""
        ...


class CommandInput(Protocol):
    """A control input (UDP control port, keyboard): text commands such as ``emotion sad``."""

    def poll(self) -> list[str]:
        """Commands received since the last call (never blocks)."""
        ...


class LiveRunner:
    """Runs one stream from a live source to a frame sink until the source ends.

    Frames become final in blocks (a network call makes ``hop_frames`` at once). With a
    ``playout_delay_s`` a playout thread releases them one by one at ``capture time + delay``
    (a jitter buffer), so receivers see a steady 60 fps at a constant latency while the next
    block computes; frames computed later than that go out at once and count as late. Without
    one, each block goes out as soon as it is computed (lowest latency, in bursts).

    Args:
        source: the audio feed.
        stream: the stream to drive.
        sink: called with each block of new frames ``[n, 174]`` and the index of its first frame.
        controls: command inputs polled between chunks (``emotion SPEC``, ``quit``).
        gap_timeout_s: a real-time source silent this long has a gap; silence fills it up to the
            wall clock so frames keep flowing and the face relaxes.
        playout_delay_s: release frame ``i`` at its capture time plus this (real-time sources);
            None sends frames as soon as they are computed.
        poll_s: longest wait for audio before checking controls, gaps and due frames again.
        clock: monotonic seconds (injectable for tests).
        sleep: sleeps for the given seconds (injectable for tests).
        stop: returns True to stop early (e.g. ``threading.Event.is_set``).
    """

    def __init__(
        self,
        source: AudioFeed,
        stream: Stream,
        sink: Callable[[np.ndarray, int], None],
        *,
        controls: Sequence[CommandInput] = (),
        gap_timeout_s: float = 0.2,
        playout_delay_s: float | None = None,
        poll_s: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        if gap_timeout_s <= 0:
            raise ConfigError(f"gap_timeout_s must be > 0, but {gap_timeout_s} is given")
        if poll_s <= 0:
            raise ConfigError(f"poll_s must be > 0, but {poll_s} is given")
        if playout_delay_s is not None and playout_delay_s < 0:
            raise ConfigError(f"playout_delay_s must be >= 0, but {playout_delay_s} is given")
        self.source = source
        self.stream = stream
        self.sink = sink
        self.controls = list(controls)
        self.gap_timeout_s = gap_timeout_s
        self.playout_delay_s = playout_delay_s if source.realtime else None
        self.poll_s = poll_s
        self.clock = clock
        self.sleep = sleep
        self.stop = stop or (lambda: False)
        self.stats = LiveStats()
        self._anchor: float | None = None  # clock time at which audio sample 0 was captured
        self._anchor_wall: float | None = None  # the same on the wall clock (Unix seconds)
        self._in_gap = False
        self._n_queued = 0  # frames computed
        self._playout: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue()
        self._playout_thread: threading.Thread | None = None
        self._abort = threading.Event()
        self._playout_error: BaseException | None = None

    @property
    def anchor_wall_s(self) -> float | None:
        """Wall-clock time (Unix seconds) at which the first audio sample was captured."""
        return self._anchor_wall

    def run(self) -> LiveStats:
        """Stream until the source ends, ``stop`` says so, or a ``quit`` command arrives."""
        started = self.clock()
        stats = self.stats
        last_audio = started
        if self.playout_delay_s is not None:
            self._playout_thread = threading.Thread(
                target=self._playout_loop, name="emoface-playout", daemon=True
            )
            self._playout_thread.start()
        finished = False
        try:
            while True:
                if self._playout_error is not None:
                    raise self._playout_error
                if self.stop():
                    stats.end_reason = "stopped"
                    break
                if self._handle_commands():
                    stats.end_reason = "quit"
                    break
                chunk = self.source.read(self.poll_s)
                now = self.clock()
                if chunk is None:
                    stats.end_reason = "source ended"
                    self._queue(self._timed(self.stream.finish))
                    finished = True
                    break
                if chunk.size:
                    if self._anchor is None:
                        self._anchor = now - chunk.size / SAMPLE_RATE
                        self._anchor_wall = time.time() - chunk.size / SAMPLE_RATE
                    stats.n_chunks += 1
                    stats.n_samples += chunk.size
                    last_audio = now
                    self._in_gap = False
                    self._queue(self._timed(self.stream.process, chunk))
                elif (
                    self._anchor is not None
                    and self.source.realtime
                    and now - last_audio > self.gap_timeout_s
                ):
                    self._fill_gap(now)
        finally:
            self._stop_playout(drain=finished)
            stats.duration_s = self.clock() - started
        if self._playout_error is not None:
            raise self._playout_error
        return stats

    def _due(self, frame: int) -> float:
        assert self._anchor is not None and self.playout_delay_s is not None
        return self._anchor + frame / FPS + self.playout_delay_s

    def _fill_gap(self, now: float) -> None:
        """Add silence up to the wall clock (minus the timeout, the feed's jitter allowance)."""
        assert self._anchor is not None
        behind = (
            int((now - self.gap_timeout_s - self._anchor) * SAMPLE_RATE) - self.stream.n_samples_in
        )
        if behind <= 0:
            return
        if not self._in_gap:
            self.stats.n_gaps += 1
            log.info("audio feed gap: filling with silence")
        self._in_gap = True
        self.stats.n_gap_samples += behind
        self._queue(self._timed(self.stream.process_gap, behind))

    def _timed(self, fn: Callable[..., np.ndarray], *args: Any) -> np.ndarray:
        t0 = time.perf_counter()
        frames = fn(*args)
        self.stats.compute_s.append(time.perf_counter() - t0)
        return frames

    def _queue(self, frames: np.ndarray) -> None:
        if not len(frames):
            return
        first = self._n_queued
        self._n_queued += len(frames)
        if self._playout_thread is None or self._anchor is None:
            self._emit(frames, first)
        else:
            self._playout.put((first, frames))

    def _playout_loop(self) -> None:
        """Playout thread: hand each frame to the sink at its due time."""
        try:
            while not self._abort.is_set():
                item = self._playout.get()
                if item is None:
                    return
                first, frames = item
                for i in range(len(frames)):
                    wait = self._due(first + i) - self.clock()
                    if wait > 0:
                        self.sleep(wait)
                    if self._abort.is_set():
                        return
                    self._emit(frames[i : i + 1], first + i)
        except BaseException as e:  # surfaced by run() on the main thread
            self._playout_error = e

    def _stop_playout(self, *, drain: bool) -> None:
        """End the playout thread: after the queued frames (drain), or now."""
        if self._playout_thread is None:
            return
        if not drain:
            self._abort.set()
        self._playout.put(None)
        self._playout_thread.join()
        self._playout_thread = None

    def _emit(self, frames: np.ndarray, first: int) -> None:
        self.sink(frames, first)
        self.stats.n_frames += len(frames)
        if self._anchor is not None and self.source.realtime:
            now = self.clock()
            starts = self._anchor + np.arange(first, first + len(frames)) / FPS
            latency = now - starts
            self.stats.latency_s.extend(latency.tolist())
            if self.playout_delay_s is not None:
                self.stats.n_late += int(np.sum(latency > self.playout_delay_s + LATE_TOLERANCE_S))

    def _handle_commands(self) -> bool:
        """Apply pending commands; True when one asks to quit."""
        for control in self.controls:
            for text in control.poll():
                try:
                    if apply_command(self.stream, text):
                        return True
                    self.stats.n_emotion_changes += 1
                except (ValueError, EmoFaceError) as e:
                    self.stats.n_bad_commands += 1
                    log.warning("ignored control message %r: %s", text[:80], e)
        return False


def apply_command(stream: Stream, text: str) -> bool:
    """Apply one control command to ``stream``; True when it asks to quit.

    Commands (text, case-insensitive verb): ``emotion SPEC`` (e.g. ``emotion sad:0.5``), a bare
    emotion spec, ``{"emotion": "SPEC"}`` as JSON, or ``quit``.

    Raises:
        ValueError: an empty or unknown command, or a spec that does not parse.
    """
    import json

    text = text.strip()
    if not text:
        raise ValueError("empty control message")
    if text.startswith("{"):
        try:
            message = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"control message is not valid JSON ({e.msg})") from None
        if not isinstance(message, dict) or not isinstance(message.get("emotion"), (str, int)):
            raise ValueError('a JSON control message needs {"emotion": "SPEC"}')
        stream.set_emotion(message["emotion"])
        return False
    verb, _, arg = text.partition(" ")
    if verb.lower() in ("quit", "stop", "exit"):
        return True
    spec = arg if verb.lower() == "emotion" else text
    if not spec.strip():
        raise ValueError("'emotion' needs a spec, e.g. 'emotion happy:0.6'")
    stream.set_emotion(spec)
    return False
