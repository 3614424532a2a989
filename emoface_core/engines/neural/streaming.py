"""Causal streaming of the EmoFace network: key/value caches, running statistics, batched steps.

Whole-clip inference (``engines.neural.inference``) sees the entire clip at once; a stream sees
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

``StreamingNetwork`` holds what every stream of one model shares and is the streams' batch
group: ``push_many`` steps several streams in one batched network call (weight reads, not
arithmetic, bound a small step on a CPU). Post-processing (smoothing, blinks, gaze, gaps) is not
here: ``emoface_core.streaming`` puts it on top of any engine's raw stream.

Longer than most modules (~680 lines): one algorithm. Planning a step, the running statistics,
the cached layers and the batched decoder all read and advance the private state of
``NeuralRawStream``; split across files that state would need a public interface of its own.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from emoface_core.audio import FPS, NORM_EPS, SAMPLE_RATE, frame_count
from emoface_core.emotion import EmotionControl
from emoface_core.engines.base import BatchGroup, RawBlock, StreamConfig, StreamError, empty_frames
from emoface_core.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from emoface_core.engines.neural.model import EmoFaceModel

log = logging.getLogger(__name__)

FRONTEND_S = 0.03  # audio past a frame's block that the conv front end's receptive field needs

MAX_STEP_FRAMES = 600  # frames made final per network call at most (10 s), bounds memory

_GATE_BLOCK_SAMPLES = 320  # adaptive normalisation decides per 20 ms block


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
        model: the network (eval mode is set here); may be a fast-mode (bf16, int8) copy.
        precision: autocast for every step: "fp32" (none), "fp16" (CUDA: what the engine's
            "fast" precision runs there) or "bf16"; caches then hold half-precision keys and
            values, the statistics and outputs stay float32.
    """

    def __init__(self, model: EmoFaceModel, precision: str = "fp32") -> None:
        import torch
        from torch import nn

        from emoface_core.engines.neural.inference import autocast_context

        self.model = model.eval()
        self.device = next(model.parameters()).device
        autocast_context(self.device, precision)  # refuses fp16 off CUDA, now rather than later
        self.precision = precision
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
        self.pos_bias = pos.conv.bias.detach().float()
        groups, per_group = pos.conv.groups, self.pos_weight.shape[1]
        # [G, C_in/G * K, C_out/G]: each group's kernels as one matrix (positional_conv)
        self.pos_weight_mm = (
            self.pos_weight.float()
            .reshape(groups, per_group, per_group * pos.conv.kernel_size[0])
            .transpose(1, 2)
            .contiguous()
        )
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

    def positional_conv(self, seg: torch.Tensor) -> torch.Tensor:
        """wav2vec2's positional convolution over ``seg [1, C, n]``, unpadded, float32.

        As one batched GEMM of the segment's windows with each group's kernels: a step needs
        only a few output frames, where a grouped convolution call costs 3.5 ms on a CPU and
        this 0.5 ms (the same products and sums, in another order).
        """
        import torch

        channels, length = seg.shape[1], seg.shape[2]
        groups, kernel = self.pos_groups, self.pos_kernel
        n_out = length - kernel + 1
        per_group = channels // groups
        windows = seg[0].float().unfold(1, kernel, 1)  # [C, n_out, K]
        windows = windows.reshape(groups, per_group, n_out, kernel).permute(0, 2, 1, 3)
        out = torch.bmm(windows.reshape(groups, n_out, per_group * kernel), self.pos_weight_mm)
        out = out.permute(0, 2, 1).reshape(channels, n_out)
        return (out + self.pos_bias[:, None])[None]

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

    def push_many(self, items: Sequence[tuple[NeuralRawStream, np.ndarray]]) -> list[RawBlock]:
        """Push one chunk into each of several streams of this network, stepping them together.

        Equal to ``[stream.push(chunk) for stream, chunk in items]``, but every round of steps
        runs as one batched network call (``run_network_steps``).
        """
        streams = [stream for stream, _ in items]
        for stream, chunk in items:
            stream._append(chunk)
        finals: list[list[np.ndarray]] = [[] for _ in streams]
        provisional = [empty_frames() for _ in streams]
        ends = [stream._n_features_available() for stream in streams]
        while True:
            jobs = [
                (i, plan)
                for i, stream in enumerate(streams)
                if (plan := stream._plan(ends[i], flush=False))
            ]
            if not jobs:
                break
            results = run_network_steps(self, [(streams[i], *plan) for i, plan in jobs])
            for (i, _), (final, prov) in zip(jobs, results):
                finals[i].append(final)
                provisional[i] = prov
        return [
            RawBlock(np.concatenate(f) if f else empty_frames(), p)
            for f, p in zip(finals, provisional)
        ]


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
        self.wait_s = (config.lookahead_frames + config.hop_frames) / FPS + FRONTEND_S
        self.batch_group: BatchGroup | None = network
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
            return RawBlock(empty_frames(), empty_frames())
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
        provisional = empty_frames()
        while (plan := self._plan(end, flush=flush)) is not None:
            ((final, provisional),) = run_network_steps(self.net, [(self, *plan)])
            finals.append(final)
        final = np.concatenate(finals) if finals else empty_frames()
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
        pos = net.positional_conv(seg.T[None])
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

    from emoface_core.engines.neural.inference import autocast_context

    with torch.inference_mode(), autocast_context(net.device, net.precision):
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
    import torch.nn.functional as F

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
