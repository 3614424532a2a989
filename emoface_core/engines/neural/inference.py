"""Whole-clip inference with the EmoFace network, in overlapping windows for long audio.

The release trained on clips of at most 60 s, and wav2vec2's attention grows with the square of
the length, so audio longer than ``chunk_s`` runs in windows of ``chunk_s`` that overlap by
``overlap_s``. Memory is then bounded by one window whatever the file's length.

Seams are kept invisible three ways:

* every window sees exactly the conv features the whole clip would give it: windows start on
  sample offsets that are whole numbers of both frames and conv strides, the 50 -> 60 fps
  interpolation uses the whole clip's sample positions, and wav2vec2's per-clip GroupNorm uses
  statistics over the whole clip (``EmoFaceModel.conv_norm_stats``);
* the outer quarter of each overlap is context only (weight 0), so no window's ragged edge is
  used;
* the middle half of each overlap is cross-faded linearly (encodec's overlap-add).

A clip no longer than ``chunk_s`` takes the plain path: one forward pass, exactly the release's.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch

from emoface_core.audio import FPS, NORM_EPS, SAMPLE_RATE, Audio, normalize
from emoface_core.emotion import EmotionTimeline
from emoface_core.engines.neural.model import EmoFaceModel
from emoface_core.errors import ConfigError

DEFAULT_CHUNK_S = 60.0  # the release's longest training clip
DEFAULT_OVERLAP_S = 4.0  # 1 s context + 2 s cross-fade + 1 s context
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_SAMPLES_PER_3_FRAMES = 3 * SAMPLE_RATE // FPS  # 800: the smallest whole-sample frame block


def window_plan(
    n_frames: int, chunk_frames: int, overlap_frames: int, block: int
) -> list[tuple[int, int]]:
    """Frame ranges ``[(start, end), ...]`` covering ``n_frames`` with the given overlap.

    Starts are multiples of ``block`` frames; the last window ends at ``n_frames`` and is as long
    as the others, so no window is a short scrap.
    """
    if n_frames <= chunk_frames:
        return [(0, n_frames)]
    step = max(block, (chunk_frames - overlap_frames) // block * block)
    last = (n_frames - chunk_frames) // block * block
    starts = list(range(0, last, step)) + [last]
    return [(s, n_frames if s == last else s + chunk_frames) for s in starts]


def blend_weights(plan: list[tuple[int, int]]) -> list[np.ndarray]:
    """Per-window weights: 0 over the outer quarter of each overlap, a linear ramp in its middle."""

    def ramp(n: int) -> np.ndarray:
        i = np.arange(n) + 0.5
        return np.clip((i - n / 4) / (n / 2), 0.0, 1.0)

    weights = []
    for k, (start, end) in enumerate(plan):
        w = np.ones(end - start, dtype=np.float64)
        if k > 0 and (n := plan[k - 1][1] - start) > 0:
            w[:n] = ramp(n)
        if k + 1 < len(plan) and (n := end - plan[k + 1][0]) > 0:
            w[-n:] = np.minimum(w[-n:], 1.0 - ramp(n))
        weights.append(w)
    return weights


def autocast_context(device: torch.device, precision: str) -> AbstractContextManager:
    """Autocast for half precision; "auto" = fp16 on CUDA, plain fp32 on the CPU."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return nullcontext()
    if device.type != "cuda" and precision == "fp16":
        raise ConfigError("fp16 inference needs a CUDA device; use fp32 or bf16 on the CPU")
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def features_at(conv: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of conv frames ``[B, C, L]`` at ``positions [T]``; ``[B, T, C]`` out."""
    last = conv.shape[-1] - 1
    positions = positions.clamp(0, last)
    lo = positions.floor().long()
    hi = (lo + 1).clamp_max(last)
    frac = (positions - lo).to(conv.dtype)
    out = conv[..., lo] * (1 - frac) + conv[..., hi] * frac
    return out.transpose(1, 2)


def animate(
    model: EmoFaceModel,
    audio: Audio,
    timeline: EmotionTimeline,
    *,
    chunk_s: float = DEFAULT_CHUNK_S,
    overlap_s: float = DEFAULT_OVERLAP_S,
    precision: str = "fp32",
) -> np.ndarray:
    """Raw network output for a whole clip.

    Args:
        model: an ``EmoFaceModel`` (eval mode).
        audio: 16 kHz mono audio; it is normalised here over the whole clip, as the release does.
        timeline: emotion over time.
        chunk_s: longest window the network sees at once.
        overlap_s: overlap of consecutive windows.
        precision: "fp32", "fp16"/"bf16" (autocast) or "auto" (fp16 on CUDA, fp32 on CPU).

    Returns:
        float32 ``[audio.n_frames, 174]``.
    """
    if chunk_s <= 0 or not 0 <= overlap_s < chunk_s / 2:
        raise ConfigError(
            f"need chunk_s > 0 and 0 <= overlap_s < chunk_s / 2, got chunk_s={chunk_s}, "
            f"overlap_s={overlap_s}"
        )
    n_frames = audio.n_frames
    if n_frames == 0:
        return np.zeros((0, model.config.n_controllers), dtype=np.float32)
    device = next(model.parameters()).device
    emotion = torch.from_numpy(timeline.weights(n_frames)).to(device)[None]
    with torch.inference_mode(), autocast_context(device, precision):
        if n_frames <= int(chunk_s * FPS):
            samples = torch.from_numpy(normalize(audio.samples)).to(device)[None]
            return model(samples, emotion, n_frames)[0].float().cpu().numpy()
        return _animate_windows(model, audio.samples, emotion, n_frames, chunk_s, overlap_s)


def _animate_windows(
    model: EmoFaceModel,
    raw_samples: np.ndarray,
    emotion: torch.Tensor,
    n_frames: int,
    chunk_s: float,
    overlap_s: float,
) -> np.ndarray:
    """Windows of a long clip, blended; memory is one window, not the clip.

    The clip is normalised window by window with the whole clip's mean and deviation (the same
    values, sample for sample, as normalising it all at once), and each frame's blend is
    finished as soon as the last window that covers it has run.
    """
    device = emotion.device
    stride = model.conv_stride()
    block_samples = math.lcm(_SAMPLES_PER_3_FRAMES, stride)  # 1600 for wav2vec2-base
    block = block_samples * FPS // SAMPLE_RATE  # frames per block: 6
    chunk = max(2 * block, int(chunk_s * FPS) // block * block)
    overlap = int(overlap_s * FPS) // block * block
    plan = window_plan(n_frames, chunk, overlap, block)

    x = raw_samples.astype(np.float32, copy=False)
    mean, std = x.mean(), np.sqrt(x.var() + NORM_EPS)  # as normalize() computes them

    def normalised(lo: int, hi: int) -> torch.Tensor:
        return torch.from_numpy((x[lo:hi] - mean) / std).to(device)[None]

    n_samples = x.shape[-1]
    n_conv = model.conv_output_length(n_samples)
    scale = (n_conv - 1) / (n_frames - 1) if n_frames > 1 else 0.0
    stats = model.conv_norm_stats_of(normalised, n_samples)
    out = np.empty((n_frames, model.config.n_controllers), dtype=np.float32)
    # Running float64 sums of the frames not final yet, from frame `base` on.
    base = 0
    acc = np.zeros((0, model.config.n_controllers), dtype=np.float64)
    acc_weight = np.zeros((0, 1), dtype=np.float64)
    windows = list(zip(plan, blend_weights(plan)))
    for k, ((start, end), weight) in enumerate(windows):
        s0 = start // block * block_samples
        # Enough samples for the conv frames the window's positions need, plus one spare frame.
        s1 = min(
            n_samples,
            s0 + int(math.ceil((end - start) * scale + 2)) * stride + model.conv_receptive_field(),
        )
        conv = model.conv_features(normalised(s0, s1), norm_stats=stats)
        positions = torch.arange(start, end, dtype=torch.float64, device=device) * scale
        feats = features_at(conv, (positions - s0 / stride).to(conv.dtype))
        y = model.decode(model.encode_features(feats), emotion[:, start:end])
        if end - base > len(acc):  # grow the running sums to this window's end
            grow = end - base - len(acc)
            acc = np.concatenate([acc, np.zeros((grow, acc.shape[1]))])
            acc_weight = np.concatenate([acc_weight, np.zeros((grow, 1))])
        acc[start - base : end - base] += weight[:, None] * y[0].float().cpu().numpy()
        acc_weight[start - base : end - base, 0] += weight
        done = windows[k + 1][0][0] if k + 1 < len(windows) else n_frames  # no later window
        if done > base:
            n_done = done - base
            out[base:done] = acc[:n_done] / np.maximum(acc_weight[:n_done], 1e-12)
            acc, acc_weight = acc[n_done:], acc_weight[n_done:]
            base = done
    return out
