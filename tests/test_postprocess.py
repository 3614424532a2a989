import numpy as np
import pytest
from scipy.signal import savgol_filter

from emoface_core.controllers import BLINK_L, BLINK_R, GAZE_X, GAZE_Y, JAW_OPEN
from emoface_core.errors import ConfigError
from emoface_core.postprocess import (
    BLINK_CURVE,
    BlinkController,
    EyeAnimator,
    GazeController,
    PostprocessConfig,
    postprocess,
    smooth,
)

FPS = 60


def _blink_onsets(k: np.ndarray) -> np.ndarray:
    closed = k < 1
    return np.flatnonzero(closed[1:] & ~closed[:-1]) + 1


def test_smoothing_is_savgol_15_3_nearest():
    x = np.random.default_rng(1).standard_normal((200, 174)).astype(np.float32)
    expected = savgol_filter(x, 15, 3, axis=0, mode="nearest")
    np.testing.assert_allclose(smooth(x), expected, atol=1e-5)
    assert np.abs(np.diff(smooth(x), axis=0)).mean() < np.abs(np.diff(x, axis=0)).mean() / 2


def test_smoothing_short_clips():
    x = np.random.default_rng(2).standard_normal((9, 3)).astype(np.float32)
    assert smooth(x).shape == (9, 3)
    np.testing.assert_array_equal(smooth(x[:3]), x[:3])  # too short for a cubic fit


def test_blink_rate_follows_lognormal_within_bounds():
    config = PostprocessConfig()
    k = BlinkController(config, np.random.default_rng(0)).next(60 * FPS * 60)  # one hour
    onsets = _blink_onsets(k)
    intervals_s = np.diff(onsets) / FPS
    rates_per_min = 60.0 / intervals_s
    # every interval comes from a rate clamped to 15..100 per minute (plus the blink itself)
    assert rates_per_min.max() <= 100.0 + 1e-6 and rates_per_min.min() >= 60.0 / (
        4.0 + 13 / FPS + 1 / FPS
    )
    # the median rate is the log-normal median exp(3.518) = 33.7 blinks per minute
    expected_interval_s = 60.0 / np.exp(config.blink_log_mean) + len(BLINK_CURVE) / FPS
    assert abs(np.median(intervals_s) - expected_interval_s) / expected_interval_s < 0.1


def test_blink_shape_and_channels():
    values = np.zeros((2000, 174), dtype=np.float32)
    values[:, BLINK_L] = 0.2
    out = EyeAnimator(PostprocessConfig(gaze=False), seed=3).apply(values.copy())
    k = BlinkController(PostprocessConfig(), np.random.default_rng(0)).next(1)
    assert k.shape == (1,)
    closed = np.flatnonzero(out[:, BLINK_R] == 1.0)
    assert closed.size > 0  # a full closure happens
    first = _blink_onsets(1 - out[:, BLINK_R])[0]
    np.testing.assert_allclose(
        out[first : first + 13, BLINK_R], 1 - np.asarray(BLINK_CURVE), atol=1e-6
    )
    np.testing.assert_allclose(
        out[first : first + 13, BLINK_L], 1 - 0.8 * np.asarray(BLINK_CURVE), atol=1e-6
    )
    assert np.all(out[:, JAW_OPEN] == 0)


def _still_runs(gaze: np.ndarray) -> list[int]:
    still = np.all(np.diff(gaze, axis=0) == 0, axis=1)
    runs, n = [], 0
    for s in still:
        if s:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


def test_gaze_targets_and_timing():
    config = PostprocessConfig(gaze_return_prob=0.0)
    gaze = GazeController(config, np.random.default_rng(5)).next(36_000)
    radius = np.hypot(gaze[:, 0], gaze[:, 1])
    held = np.concatenate([[False], np.all(np.diff(gaze, axis=0) == 0, axis=1)])
    assert radius.max() <= 0.2 + 1e-6
    assert radius[held & (np.arange(radius.size) > 100)].min() >= 0.1 - 1e-6
    runs = _still_runs(gaze)[1:]  # holds between moves: 15..45 frames (diff counts one less)
    assert min(runs) >= 14 and max(runs) <= 45
    moves = np.flatnonzero(np.any(np.diff(gaze, axis=0) != 0, axis=1))
    assert moves.size > 0


def test_gaze_returns_to_centre_with_probability():
    gaze = GazeController(PostprocessConfig(), np.random.default_rng(6)).next(120_000)
    radius = np.hypot(gaze[:, 0], gaze[:, 1])
    at_centre = radius < 1e-9
    # fraction of time at the centre tracks the 0.4 return probability (holds are i.i.d.)
    assert 0.3 < at_centre.mean() < 0.5


def test_streaming_blocks_equal_whole_clip_and_seeded():
    raw = np.random.default_rng(0).uniform(0, 1, (900, 174)).astype(np.float32)
    config = PostprocessConfig(smooth=False)
    whole = EyeAnimator(config, seed=11).apply(raw.copy())
    animator = EyeAnimator(config, seed=11)
    blocks = [animator.apply(raw[i : i + n].copy()) for i, n in zip(range(0, 900, 7), [7] * 129)]
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    again = postprocess(raw, seed=11)
    np.testing.assert_array_equal(again, postprocess(raw, seed=11))
    assert not np.array_equal(again[:, GAZE_X], postprocess(raw, seed=12)[:, GAZE_X])
    assert np.any(again[:, GAZE_Y] != raw[:, GAZE_Y])


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"savgol_window": 14}, "odd"),
        ({"blink_min_per_min": 0}, "blink rate"),
        ({"gaze_hold_frames": (50, 10)}, "gaze_hold_frames"),
        ({"gaze_return_prob": 2}, "gaze_return_prob"),
    ],
)
def test_bad_config(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        PostprocessConfig(**kwargs)
