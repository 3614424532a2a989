"""Post-processing shared by every engine: Savitzky-Golay smoothing, procedural blinks and gaze.

Paper sections 3.2 and 3.3. The blink and gaze controllers are stateful generators
(``next(n_frames)``): a whole clip is one call, a stream is many calls, and both give the same
frames for the same seed. Blinks multiply into the blink channels as ``1 - (1 - v) * k`` so the
network's own lid motion survives; gaze replaces the gaze channels, as the release does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emoface_core.controllers import BLINK_L, BLINK_R, GAZE_X, GAZE_Y
from emoface_core.errors import ConfigError

# Eyelid multiplier k over one blink: closing in 4 frames, shut at frame 5, reopening slowly.
# Taken from the authors' release (13 frames at 60 fps = 217 ms).
BLINK_CURVE: tuple[float, ...] = (
    0.95,
    0.75,
    0.55,
    0.3,
    0.0,
    0.05,
    0.15,
    0.25,
    0.35,
    0.45,
    0.6,
    0.75,
    0.9,
)


@dataclass(frozen=True)
class PostprocessConfig:
    """Every knob of the post-processing, with the paper's values as defaults."""

    smooth: bool = True
    savgol_window: int = 15  # frames; odd
    savgol_order: int = 3
    blink: bool = True
    blink_log_mean: float = 3.518  # mean of log(blinks per minute), fitted in the paper
    blink_log_sd: float = 0.532  # sd of log(blinks per minute)
    blink_min_per_min: float = 15.0
    blink_max_per_min: float = 100.0
    blink_curve: tuple[float, ...] = BLINK_CURVE
    gaze: bool = True
    gaze_hold_frames: tuple[int, int] = (15, 45)  # a new target every 15-45 frames (paper)
    gaze_radius: tuple[float, float] = (0.1, 0.2)  # board units around the centre
    gaze_return_prob: float = 0.4  # chance the next target is the centre
    gaze_move_frames: int = 5  # linear move to the next target (release)
    fps: float = 60.0

    def __post_init__(self) -> None:
        if self.savgol_window < 3 or self.savgol_window % 2 == 0:
            raise ConfigError(f"savgol_window must be an odd number >= 3, got {self.savgol_window}")
        if not 0 <= self.savgol_order < self.savgol_window:
            raise ConfigError(
                f"savgol_order must be within 0..{self.savgol_window - 1}, got {self.savgol_order}"
            )
        if not 0 < self.blink_min_per_min <= self.blink_max_per_min:
            raise ConfigError(
                "blink rate bounds must satisfy 0 < min <= max, got "
                f"{self.blink_min_per_min}..{self.blink_max_per_min}"
            )
        lo, hi = self.gaze_hold_frames
        if not 1 <= lo <= hi:
            raise ConfigError(f"gaze_hold_frames must satisfy 1 <= lo <= hi, got {lo}..{hi}")
        if not 0.0 <= self.gaze_return_prob <= 1.0:
            raise ConfigError(f"gaze_return_prob must be within 0..1, got {self.gaze_return_prob}")
        if self.gaze_move_frames < 1:
            raise ConfigError(f"gaze_move_frames must be >= 1, got {self.gaze_move_frames}")


SMOOTH_BLOCK_CHANNELS = 16


def smooth(values: np.ndarray, window: int = 15, order: int = 3) -> np.ndarray:
    """Savitzky-Golay smoothing along time of ``[T, C]`` values, edges padded with 'nearest'.

    Clips shorter than the window use the longest odd window that fits; clips too short for a
    polynomial fit pass through unchanged.
    """
    from scipy.signal import savgol_filter

    n = values.shape[0]
    window = min(window, n if n % 2 == 1 else n - 1)
    if window <= order:
        return values.copy()
    out = np.empty_like(values)
    # A few channels at a time (each is filtered on its own): scipy works in float64, and a
    # whole hour of 174 channels would take a gigabyte of temporaries.
    for c in range(0, values.shape[1], SMOOTH_BLOCK_CHANNELS):
        block = values[:, c : c + SMOOTH_BLOCK_CHANNELS]
        out[:, c : c + SMOOTH_BLOCK_CHANNELS] = savgol_filter(
            block, window, order, axis=0, mode="nearest"
        ).astype(values.dtype)
    return out


class BlinkController:
    """Blink timing from the paper's log-normal blink-rate fit; ``next(n)``: lid multipliers."""

    def __init__(self, config: PostprocessConfig, rng: np.random.Generator) -> None:
        self._config = config
        self._rng = rng
        self._curve = np.asarray(config.blink_curve, dtype=np.float32)
        self._wait = self._sample_interval()
        self._phase = 0  # frames into the current blink; 0 when the eyes are open

    def _sample_interval(self) -> int:
        c = self._config
        per_min = float(
            np.clip(
                self._rng.lognormal(c.blink_log_mean, c.blink_log_sd),
                c.blink_min_per_min,
                c.blink_max_per_min,
            )
        )
        return int(c.fps * 60.0 / per_min)

    def next(self, n_frames: int) -> np.ndarray:
        """Multipliers ``k`` for the next ``n_frames`` frames (1 = open, 0 = shut), ``[n]``."""
        k = np.ones(n_frames, dtype=np.float32)
        i = 0
        while i < n_frames:
            if self._phase == 0 and self._wait > 0:
                step = min(self._wait, n_frames - i)
                self._wait -= step
                i += step
                continue
            k[i] = self._curve[self._phase]
            self._phase += 1
            if self._phase == len(self._curve):
                self._phase = 0
                self._wait = self._sample_interval()
            i += 1
        return k


class GazeController:
    """Random saccades: hold a target, then move linearly to a new one or back to the centre."""

    def __init__(self, config: PostprocessConfig, rng: np.random.Generator) -> None:
        self._config = config
        self._rng = rng
        self._current = np.zeros(2, dtype=np.float64)
        self._target = np.zeros(2, dtype=np.float64)
        self._hold = self._sample_hold()
        self._move = 0  # frames into the current move; 0 while holding

    def _sample_hold(self) -> int:
        lo, hi = self._config.gaze_hold_frames
        return int(self._rng.integers(lo, hi + 1))

    def _sample_target(self) -> np.ndarray:
        c = self._config
        if self._rng.random() < c.gaze_return_prob:
            return np.zeros(2)
        radius = self._rng.uniform(*c.gaze_radius)
        angle = self._rng.uniform(0.0, 2.0 * np.pi)
        return np.array([radius * np.cos(angle), radius * np.sin(angle)])

    def next(self, n_frames: int) -> np.ndarray:
        """Gaze ``[n_frames, 2]`` (board X, Y of ``CTRL_C_eye``) for the next frames."""
        out = np.empty((n_frames, 2), dtype=np.float32)
        moves = self._config.gaze_move_frames
        for i in range(n_frames):
            if self._move == 0 and self._hold > 0:
                self._hold -= 1
                out[i] = self._current
                continue
            if self._move == 0:
                self._start = self._current.copy()
                self._target = self._sample_target()
            self._move += 1
            point = self._start + (self._target - self._start) * (self._move / moves)
            out[i] = point
            if self._move == moves:
                self._current = self._target.copy()
                self._move = 0
                self._hold = self._sample_hold()
        return out


@dataclass
class EyeAnimator:
    """Blinks and gaze together, applied to successive frame blocks of one clip or stream."""

    config: PostprocessConfig = field(default_factory=PostprocessConfig)
    seed: int | None = None

    def __post_init__(self) -> None:
        root = np.random.default_rng(self.seed)
        blink_rng, gaze_rng = root.spawn(2)
        self._blink = BlinkController(self.config, blink_rng)
        self._gaze = GazeController(self.config, gaze_rng)

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Apply blinks and gaze in place to the next ``[n, 174]`` frames and return them."""
        n = values.shape[0]
        if self.config.blink:
            k = self._blink.next(n)
            for ch in (BLINK_L, BLINK_R):
                values[:, ch] = 1.0 - (1.0 - values[:, ch]) * k
        if self.config.gaze:
            gaze = self._gaze.next(n)
            values[:, GAZE_X] = gaze[:, 0]
            values[:, GAZE_Y] = gaze[:, 1]
        return values


def postprocess(
    raw: np.ndarray, config: PostprocessConfig | None = None, *, seed: int | None = None
) -> np.ndarray:
    """Smooth a whole clip's ``[T, 174]`` output, then add blinks and gaze. Returns a new array."""
    config = config or PostprocessConfig()
    values = smooth(raw, config.savgol_window, config.savgol_order) if config.smooth else raw.copy()
    return EyeAnimator(config, seed).apply(values)


class SavgolStream:
    """Savitzky-Golay smoothing of frames that arrive block by block, with bounded lookahead.

    With the default lookahead (half the window) a stream gives exactly what ``smooth`` gives for
    the whole clip, 'nearest' edges included: output frame ``t`` is the centred fit over
    ``t - w//2 .. t + w//2`` and waits for the ``w//2`` frames after it (117 ms at 60 fps for
    the paper's window of 15). A smaller ``lookahead_frames`` fits the same window shifted into
    the past (``scipy.signal.savgol_coeffs(pos=...)``), trading smoothness for latency.

    The first output waits until a whole window of frames (final and provisional) exists, once
    per stream, so clips shorter than the window fall back to ``smooth``'s shorter window
    exactly as whole-clip inference does.

    ``push(frames, provisional)`` also takes provisional frames: best guesses of the frames after
    the final ones (a streaming network's lookahead, recomputed later). They stand in for the
    lookahead, so the smoother adds no latency of its own beyond what its source already has;
    they are used once and never emitted.

    Args:
        window: odd window length in frames.
        order: polynomial order.
        lookahead_frames: future frames each output uses (``0..window//2``); None = ``window//2``.
    """

    def __init__(
        self, window: int = 15, order: int = 3, lookahead_frames: int | None = None
    ) -> None:
        from scipy.signal import savgol_coeffs

        if window < 3 or window % 2 == 0:
            raise ConfigError(f"window must be an odd number >= 3, got {window}")
        if not 0 <= order < window:
            raise ConfigError(f"order must be within 0..{window - 1}, got {order}")
        half = window // 2
        lookahead = half if lookahead_frames is None else lookahead_frames
        if not 0 <= lookahead <= half:
            raise ConfigError(f"lookahead_frames must be within 0..{half}, got {lookahead}")
        self.window = window
        self.order = order
        self.lookahead_frames = lookahead
        self._offsets = np.arange(window) - (window - 1 - lookahead)  # relative to the output frame
        self._coeffs = savgol_coeffs(window, order, pos=window - 1 - lookahead, use="dot")
        self._frames: np.ndarray | None = None  # final frames kept for context, from _base
        self._base = 0
        self._n_in = 0  # final frames pushed
        self._n_out = 0  # frames emitted

    @property
    def n_frames_in(self) -> int:
        """Final frames pushed so far."""
        return self._n_in

    @property
    def n_frames_out(self) -> int:
        """Frames emitted so far."""
        return self._n_out

    def push(self, frames: np.ndarray, provisional: np.ndarray | None = None) -> np.ndarray:
        """Add final frames ``[n, C]``; return the smoothed frames now determined ``[m, C]``.

        Args:
            frames: the next final input frames.
            provisional: optional guesses ``[p, C]`` of the frames right after them.
        """
        frames = np.asarray(frames, dtype=np.float32)
        if frames.ndim != 2:
            raise ValueError(f"frames must be [n, channels], got shape {frames.shape}")
        if self._frames is None:
            self._frames = np.zeros((0, frames.shape[1]), dtype=np.float32)
        self._frames = np.concatenate([self._frames, frames])
        self._n_in += len(frames)
        extra = 0 if provisional is None else len(provisional)
        if self._n_in + extra < self.window:
            return self._empty()  # the clip may still be shorter than one window
        last = min(self._n_in - 1, self._n_in - 1 + extra - self.lookahead_frames)
        out = self._emit(last + 1, provisional, final_end=None)
        return out

    def flush(self) -> np.ndarray:
        """Emit every remaining frame, extending the last frame past the end ('nearest')."""
        if self._frames is None or self._n_out >= self._n_in:
            return self._empty()
        if self._n_in < self.window:
            # Too short for one window: exactly what whole-clip smoothing does with this clip.
            self._n_out = self._n_in
            return smooth(self._frames, self.window, self.order).astype(np.float32)
        return self._emit(self._n_in, None, final_end=self._n_in)

    def _emit(self, stop: int, provisional: np.ndarray | None, final_end: int | None) -> np.ndarray:
        if stop <= self._n_out:
            return self._empty()
        frames = self._frames
        assert frames is not None  # set by the first push
        data = frames
        if provisional is not None and len(provisional):
            data = np.concatenate([data, np.asarray(provisional, dtype=np.float32)])
        t = np.arange(self._n_out, stop)
        idx = np.maximum(t[:, None] + self._offsets[None, :], 0)
        if final_end is not None:
            idx = np.minimum(idx, final_end - 1)
        window = data[idx - self._base].astype(np.float64)  # [m, window, C]
        out = np.tensordot(self._coeffs, window, axes=([0], [1])).astype(np.float32)
        self._n_out = stop
        keep_from = max(0, self._n_out - (self.window - 1 - self.lookahead_frames))
        self._frames = frames[keep_from - self._base :]
        self._base = keep_from
        return out

    def _empty(self) -> np.ndarray:
        n_channels = 0 if self._frames is None else self._frames.shape[1]
        return np.zeros((0, n_channels), dtype=np.float32)
