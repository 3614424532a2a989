"""Per-frame speech features at 60 fps from 16 kHz audio: loudness, voicing, pitch, formants.

Every feature of frame ``i`` comes from one 32 ms window centred on the middle of the frame
(sample ``frame_center_sample(i)``), and from nothing else. That makes the features a pure function
of the audio around each frame, so a stream cut into chunks of any size yields exactly the frames a
whole clip does (``FeatureStream``). Windows reaching past either end of the audio see zeros.

The features are language-independent acoustics, the cues a listener's eye expects the mouth to
follow: loudness (jaw), the first formant (jaw height of vowels), the second formant and spectral
brightness (lip rounding versus spreading), voicing and high-frequency frication (sibilants),
pitch (eyebrow emphasis). Formants come from the peaks of a 16-pole LPC envelope; everything is
vectorised over frames, so one second of audio costs well under a millisecond per feature.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import overload

import numpy as np

from emoface_core.audio import FPS, SAMPLE_RATE

WINDOW_SAMPLES = 512  # 32 ms analysis window
HALF_WINDOW = WINDOW_SAMPLES // 2  # 256 samples = 16 ms: the lookahead a window needs
N_FFT = 1024  # zero-padded twice the window so autocorrelations do not wrap around
LPC_ORDER = 16  # 2 poles per kHz of the 8 kHz band, the usual rule for formant tracking
PRE_EMPHASIS = 0.97  # tilts the spectrum up 6 dB/octave so LPC fits the upper formants too
PITCH_MIN_HZ = 70.0
PITCH_MAX_HZ = 400.0
FLOOR_DB = -100.0  # loudness of digital silence (dB re full scale)
F2_MIN_GAP_HZ = 250.0  # F2 is the next envelope peak at least this far above F1
F2_MAX_HZ = 3000.0  # F2 of adult speech stays below this (front vowels of high voices reach ~2.8k)
# A vowel's F2 is at most ~15-20 dB weaker than its F1 (in the pre-emphasised envelope); a peak
# this much weaker is a faint F3 above merged F1 and F2 (u, o).
F2_MAX_DROP_DB = 25.0

_FREQS_HZ = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)  # 513 bins, 15.6 Hz apart
_LAG_MIN = int(SAMPLE_RATE / PITCH_MAX_HZ)  # 40 samples
_LAG_MAX = int(SAMPLE_RATE / PITCH_MIN_HZ)  # 228 samples


def _window_autocorrelation() -> np.ndarray:
    w = np.hanning(WINDOW_SAMPLES + 2)[1:-1]
    r = np.fft.irfft(np.abs(np.fft.rfft(w, N_FFT)) ** 2, N_FFT)[:WINDOW_SAMPLES]
    return r / r[0]


_HANN = np.hanning(WINDOW_SAMPLES + 2)[1:-1]  # no zero end points: every sample counts
_HANN_AUTOCORR = _window_autocorrelation()  # divides out the window's own taper (Boersma 1993)
_PRE_EMPHASIS_GAIN = np.abs(1.0 - PRE_EMPHASIS * np.exp(-2j * np.pi * _FREQS_HZ / SAMPLE_RATE)) ** 2


@overload
def frame_center_sample(frame: int) -> int: ...
@overload
def frame_center_sample(frame: np.ndarray) -> np.ndarray: ...
def frame_center_sample(frame: int | np.ndarray) -> int | np.ndarray:
    """Sample index (16 kHz) of the middle of 60 fps frame ``i``: ``floor((i + 0.5) * 800 / 3)``."""
    return (2 * frame + 1) * SAMPLE_RATE // (2 * FPS)


@dataclass(frozen=True)
class FrameFeatures:
    """Features of consecutive frames; every field is a float64 array ``[n]``.

    Attributes:
        energy_db: RMS level of the window in dB re full scale (``FLOOR_DB`` for silence).
        voicing: peak of the normalised autocorrelation in the pitch range, 0 (noise) .. 1.
        pitch_hz: fundamental frequency at that peak (meaningful only where voiced).
        f1_hz: first formant: the lowest LPC envelope peak above 150 Hz.
        f2_hz: second formant: the next envelope peak at least 250 Hz above F1 (just above F1
            where the two merge, see ``_formants``).
        centroid_hz: centre of gravity of the envelope power between 150 and 4000 Hz.
        hf_ratio: share of the power above 3.5 kHz (frication: s, sh, f, breath).
        mid_db: level of the 1-4 kHz band in dB re full scale, where vowels carry F2 and F3 and
            a nasal murmur or a voiced closure (lips shut, sound through the nose or the
            cheeks) has almost nothing.
    """

    energy_db: np.ndarray
    voicing: np.ndarray
    pitch_hz: np.ndarray
    f1_hz: np.ndarray
    f2_hz: np.ndarray
    centroid_hz: np.ndarray
    hf_ratio: np.ndarray
    mid_db: np.ndarray

    def __len__(self) -> int:
        return int(self.energy_db.shape[0])

    @classmethod
    def concatenate(cls, parts: list[FrameFeatures]) -> FrameFeatures:
        """Join features of successive frame blocks."""
        return cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )


def analyze_windows(windows: np.ndarray) -> FrameFeatures:
    """Features of a batch of analysis windows.

    Args:
        windows: ``[n, WINDOW_SAMPLES]`` samples at 16 kHz, one window per frame.

    Returns:
        The features of each window.
    """
    assert windows.ndim == 2 and windows.shape[1] == WINDOW_SAMPLES, windows.shape
    if windows.shape[0] == 0:
        return FrameFeatures(*(np.zeros(0) for _ in fields(FrameFeatures)))
    x = windows.astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    power = np.mean(x * x, axis=1)
    energy_db = np.maximum(10.0 * np.log10(power + 1e-12), FLOOR_DB)

    spectrum = np.abs(np.fft.rfft(x * _HANN, N_FFT)) ** 2  # [n, 513]
    voicing, pitch_hz = _voicing(spectrum)
    envelope_db = _lpc_envelope_db(spectrum * _PRE_EMPHASIS_GAIN)
    f1_hz, f2_hz = _formants(envelope_db)
    centroid_hz = _centroid(envelope_db)

    total = spectrum[:, _FREQS_HZ >= 100.0].sum(axis=1) + 1e-12
    hf_ratio = spectrum[:, _FREQS_HZ >= 3500.0].sum(axis=1) / total
    mid = spectrum[:, (_FREQS_HZ >= 1000.0) & (_FREQS_HZ < 4000.0)].sum(axis=1) / total
    mid_db = np.maximum(energy_db + 10.0 * np.log10(mid + 1e-12), FLOOR_DB)
    return FrameFeatures(energy_db, voicing, pitch_hz, f1_hz, f2_hz, centroid_hz, hf_ratio, mid_db)


def _voicing(spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised autocorrelation peak over the pitch lags, and the pitch it implies."""
    r = np.fft.irfft(spectrum, N_FFT)[:, : _LAG_MAX + 2]
    r = r / (r[:, :1] + 1e-12) / _HANN_AUTOCORR[None, : _LAG_MAX + 2]
    lags = r[:, _LAG_MIN : _LAG_MAX + 1]
    best = np.argmax(lags, axis=1)
    peak = lags[np.arange(lags.shape[0]), best]
    # Parabolic interpolation around the peak lag for a smoother pitch track.
    k = best + _LAG_MIN
    left, right = r[np.arange(r.shape[0]), k - 1], r[np.arange(r.shape[0]), k + 1]
    denom = left - 2.0 * peak + right
    shift = np.where(np.abs(denom) > 1e-9, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0)
    lag = k + np.clip(shift, -0.5, 0.5)
    return np.clip(peak, 0.0, 1.0), SAMPLE_RATE / lag


def _lpc(r: np.ndarray, order: int) -> np.ndarray:
    """LPC polynomials ``[n, order + 1]`` from autocorrelations ``[n, >= order + 1]``.

    Solves each frame's Toeplitz normal equations in one batched call (a frame's result does not
    depend on how many frames share the call).
    """
    lags = np.abs(np.arange(order)[:, None] - np.arange(order)[None, :])
    toeplitz = r[:, lags]  # [n, order, order]
    coefficients = np.linalg.solve(toeplitz, -r[:, 1 : order + 1, None])[:, :, 0]
    return np.concatenate([np.ones((r.shape[0], 1)), coefficients], axis=1)


def _lpc_envelope_db(spectrum: np.ndarray) -> np.ndarray:
    """The all-pole envelope in dB, ``[n, 513]``, of power spectra ``[n, 513]``."""
    r = np.fft.irfft(spectrum, N_FFT)[:, : LPC_ORDER + 1]
    r[:, 0] = r[:, 0] * 1.0001 + 1e-12  # white-noise floor keeps silent frames well conditioned
    lag = np.arange(LPC_ORDER + 1)
    r = r * np.exp(-0.5 * (2 * np.pi * 40.0 * lag / SAMPLE_RATE) ** 2)  # 40 Hz bandwidth expansion
    a = _lpc(r, LPC_ORDER)
    return -20.0 * np.log10(np.abs(np.fft.rfft(a, N_FFT)) + 1e-12)


def _formants(envelope_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F1 and F2 from the first two envelope peaks above 150 Hz (F2 >= F1 + 250 Hz).

    In back rounded vowels (u, o) F2 sits so close to F1 that the envelope shows one peak, and
    the lips' low-pass leaves nothing above it but a faint F3. A second peak above
    ``F2_MAX_HZ`` or more than ``F2_MAX_DROP_DB`` below F1 is therefore not taken for F2: the
    two formants are merged, and F2 is reported just above F1 (``F2_MIN_GAP_HZ``).
    """
    band = (_FREQS_HZ >= 150.0) & (_FREQS_HZ <= 4000.0)
    env = envelope_db[:, band]
    freqs = _FREQS_HZ[band]
    rows = np.arange(env.shape[0])
    peak = np.zeros(env.shape, dtype=bool)
    peak[:, 1:-1] = (env[:, 1:-1] > env[:, :-2]) & (env[:, 1:-1] >= env[:, 2:])
    has_first = peak.any(axis=1)
    first = np.argmax(peak, axis=1)
    f1 = np.where(has_first, _interpolate_peak(env, freqs, first), 500.0)
    later = peak & (freqs[None, :] >= f1[:, None] + F2_MIN_GAP_HZ)
    has_second = later.any(axis=1)
    second = np.argmax(later, axis=1)
    f2 = np.where(has_second, _interpolate_peak(env, freqs, second), 1500.0)
    merged = (
        has_first
        & has_second
        & ((f2 > F2_MAX_HZ) | (env[rows, first] - env[rows, second] > F2_MAX_DROP_DB))
    )
    merged |= has_first & ~has_second
    f2 = np.where(merged, f1 + F2_MIN_GAP_HZ, f2)
    return f1, f2


def _interpolate_peak(env: np.ndarray, freqs: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Parabolic interpolation of the peak at ``index`` in each row (frequency in Hz)."""
    rows = np.arange(env.shape[0])
    i = np.clip(index, 1, env.shape[1] - 2)
    left, mid, right = env[rows, i - 1], env[rows, i], env[rows, i + 1]
    denom = left - 2.0 * mid + right
    shift = np.where(denom < -1e-9, 0.5 * (left - right) / np.where(denom == 0, -1, denom), 0.0)
    step = freqs[1] - freqs[0]
    return freqs[i] + np.clip(shift, -0.5, 0.5) * step


def _centroid(envelope_db: np.ndarray) -> np.ndarray:
    """Centre of gravity (Hz) of the envelope power within 150..4000 Hz."""
    band = (_FREQS_HZ >= 150.0) & (_FREQS_HZ <= 4000.0)
    env = envelope_db[:, band]
    power = 10.0 ** ((env - env.max(axis=1, keepdims=True)) / 10.0)
    return (power * _FREQS_HZ[band]).sum(axis=1) / power.sum(axis=1)


class FeatureStream:
    """Computes frame features from audio that arrives in chunks of any size.

    ``push(samples)`` returns the features of every frame whose analysis window is now complete;
    ``finish(n_frames)`` pads with silence and returns the rest, up to frame ``n_frames - 1``.
    The concatenated results equal ``analyze_windows`` over the whole clip exactly.
    """

    def __init__(self) -> None:
        # The first window starts HALF_WINDOW - center(0) samples before the audio: zeros there.
        self._lead = HALF_WINDOW - frame_center_sample(0)
        self._buffer = np.zeros(self._lead, dtype=np.float64)
        self._buffer_start = -self._lead  # sample index of _buffer[0]
        self._next_frame = 0
        self.n_samples = 0  # audio samples received so far

    @property
    def next_frame(self) -> int:
        """Index of the next frame this stream will return."""
        return self._next_frame

    def push(self, samples: np.ndarray) -> FrameFeatures:
        """Add 16 kHz samples ``[S]`` and return the features of the frames they complete."""
        samples = np.asarray(samples, dtype=np.float64).reshape(-1)
        self._buffer = np.concatenate([self._buffer, samples])
        self.n_samples += samples.shape[0]
        end = self._buffer_start + self._buffer.shape[0]  # first sample index not yet received
        return self._emit(end)

    def finish(self, n_frames: int) -> FrameFeatures:
        """Pad with silence and return the features of the remaining frames up to ``n_frames``."""
        if n_frames <= self._next_frame:
            return analyze_windows(np.zeros((0, WINDOW_SAMPLES)))
        last_end = frame_center_sample(n_frames - 1) + HALF_WINDOW
        missing = last_end - (self._buffer_start + self._buffer.shape[0])
        if missing > 0:
            self._buffer = np.concatenate([self._buffer, np.zeros(missing)])
        return self._emit(last_end, stop=n_frames)

    def _emit(self, available_end: int, stop: int | None = None) -> FrameFeatures:
        """Features of the frames whose windows end by ``available_end`` (and before ``stop``)."""
        n = 0
        while (stop is None or self._next_frame + n < stop) and (
            frame_center_sample(self._next_frame + n) + HALF_WINDOW <= available_end
        ):
            n += 1
        frames = np.arange(self._next_frame, self._next_frame + n)
        starts = frame_center_sample(frames) - HALF_WINDOW - self._buffer_start
        windows = self._buffer[starts[:, None] + np.arange(WINDOW_SAMPLES)[None, :]]
        self._next_frame += n
        # Keep only what the next window still needs.
        keep_from = frame_center_sample(self._next_frame) - HALF_WINDOW - self._buffer_start
        if keep_from > 0:
            self._buffer = self._buffer[keep_from:]
            self._buffer_start += keep_from
        return analyze_windows(windows)
