"""Head motion from speech: yaw, pitch and roll (degrees) per frame, for either engine.

EmoFace animates the face only, and a talking head that never moves reads as dead. This layer
adds what listeners expect from prosody alone (the parameters are data: ``data/head_motion.yaml``):

* **nods on stressed syllables**: peaks of pitch (semitones above the speaker's median) and
  loudness, at least ``accent.min_gap_s`` apart, each a short dip of the pitch axis (with a
  little turn and tilt to a random side) that starts just before the accent and lands on it;
* **settling at phrase ends**: speech falling into a pause gives a smaller nod;
* **drift and small turns across phrases**: slowly varying noise (seeded), larger while
  speaking, with a little idle sway in silence;
* **emotion**: per emotion an amplitude, a sharpness (quicker nods), a drift scale and a held
  pitch offset (sad looks down, surprise up), blended frame by frame by the emotion timeline.

Then a low-pass (``smoothing_hz``) and soft limits (``limits_deg``, approached smoothly, never
clipped). Yaw turns the face to the character's left, pitch tilts it up, roll tilts the top of
the head to the character's left; all relative to the neck's rest. Whole clips; the live path
uses the causal version in ``emoface_core.head_stream``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from emoface_core.audio import FPS, SAMPLE_RATE
from emoface_core.emotion import EMOTIONS
from emoface_core.errors import ConfigError

HEAD_CHANNELS = ("head_yaw", "head_pitch", "head_roll")
HEAD_UNITS = "degrees"
HEAD_CONVENTION = (
    "head relative to the neck's rest; yaw + turns the face to the character's left, pitch + "
    "tilts it up, roll + tilts the top of the head to the character's left"
)
DEFAULT_PARAMS = Path(__file__).resolve().parent / "data" / "head_motion.yaml"
WINDOW = 640  # 40 ms analysis window
BLOCK_FRAMES = 6000  # frames analysed at a time (bounded memory for hour-long clips)
MIN_LAG, MAX_LAG = SAMPLE_RATE // 400, SAMPLE_RATE // 70  # pitch 70-400 Hz


@dataclass(frozen=True)
class HeadParams:
    """``head_motion.yaml``, checked (see the file for what each value does)."""

    limits_deg: tuple[float, float, float]
    smoothing_hz: float
    accent: dict[str, float]
    phrase_end: dict[str, float]
    drift_tau_s: float
    speech_deg: tuple[float, float, float]
    idle_deg: tuple[float, float, float]
    emotions: np.ndarray  # [7, 4]: amplitude, sharpness, drift, pitch offset

    @classmethod
    def from_dict(cls, doc: Any, source: str) -> HeadParams:
        """Parse and bound the YAML document.

        Raises:
            ConfigError: a missing, non-finite or out-of-range value (named).
        """

        def num(where: str, value: Any, lo: float, hi: float) -> float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{source}: {where} must be a number, got {value!r}")
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ConfigError(f"{source}: {where} must be within {lo}..{hi}, got {value}")
            return float(value)

        def axes(where: str, value: Any, hi: float) -> tuple[float, float, float]:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {where} must map yaw, pitch and roll to numbers")
            return tuple(  # type: ignore[return-value]
                num(f"{where}.{axis}", value.get(axis), 0.0, hi)
                for axis in ("yaw", "pitch", "roll")
            )

        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise ConfigError(f"{source}: not a version 1 head motion file")
        accent = doc.get("accent") or {}
        phrase = doc.get("phrase_end") or {}
        drift = doc.get("drift") or {}
        fields: dict[str, Any] = dict(
            limits_deg=axes("limits_deg", doc.get("limits_deg"), 90.0),
            smoothing_hz=num("smoothing_hz", doc.get("smoothing_hz"), 0.5, 20.0),
            accent={
                "min_gap_s": num("accent.min_gap_s", accent.get("min_gap_s"), 0.05, 5.0),
                "threshold": num("accent.threshold", accent.get("threshold"), 0.0, 10.0),
                "nod_deg": num("accent.nod_deg", accent.get("nod_deg"), 0.0, 30.0),
                "tau_s": num("accent.tau_s", accent.get("tau_s"), 0.02, 2.0),
                "lead_s": num("accent.lead_s", accent.get("lead_s"), 0.0, 1.0),
                "yaw_share": num("accent.yaw_share", accent.get("yaw_share"), 0.0, 2.0),
                "roll_share": num("accent.roll_share", accent.get("roll_share"), 0.0, 2.0),
            },
            phrase_end={
                "pause_s": num("phrase_end.pause_s", phrase.get("pause_s"), 0.05, 5.0),
                "nod_deg": num("phrase_end.nod_deg", phrase.get("nod_deg"), 0.0, 30.0),
            },
            drift_tau_s=num("drift.tau_s", drift.get("tau_s"), 0.1, 30.0),
            speech_deg=axes("drift.speech_deg", drift.get("speech_deg"), 30.0),
            idle_deg=axes("drift.idle_deg", drift.get("idle_deg"), 30.0),
        )
        table = doc.get("emotions") or {}
        rows = []
        for emotion in EMOTIONS:
            row = table.get(emotion)
            if not isinstance(row, dict):
                raise ConfigError(f"{source}: emotions.{emotion} is missing")
            rows.append(
                [
                    num(f"emotions.{emotion}.amplitude", row.get("amplitude"), 0.0, 5.0),
                    num(f"emotions.{emotion}.sharpness", row.get("sharpness"), 0.1, 5.0),
                    num(f"emotions.{emotion}.drift", row.get("drift"), 0.0, 5.0),
                    num(
                        f"emotions.{emotion}.pitch_offset_deg", row.get("pitch_offset_deg"), -20, 20
                    ),
                ]
            )
        return cls(**fields, emotions=np.array(rows))


@lru_cache(maxsize=8)
def load_head_params(path: str | Path | None = None) -> HeadParams:
    """The head motion parameters (the packaged file when ``path`` is None)."""
    from emoface_core.bounded import load_yaml

    source = Path(path) if path is not None else DEFAULT_PARAMS
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{source}: cannot read head motion parameters ({e.strerror})") from e
    return HeadParams.from_dict(load_yaml(text, str(source)), str(source))


def params_fingerprint(path: str | Path | None = None) -> str:
    """SHA-256 of the parameter file's bytes: bakes record it, so an edit makes them stale."""
    import hashlib

    source = Path(path) if path is not None else DEFAULT_PARAMS
    return hashlib.sha256(source.read_bytes()).hexdigest()


def prosody(samples: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 60 fps frame: loudness (dB), voicing (bool) and pitch (Hz, NaN where unvoiced)."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    padded = np.concatenate([np.zeros(WINDOW, np.float32), x, np.zeros(WINDOW, np.float32)])
    window = np.hanning(WINDOW).astype(np.float32)
    energy = np.empty(n_frames)
    peak = np.zeros(n_frames)
    lag = np.zeros(n_frames)
    centres = ((np.arange(n_frames) + 0.5) * SAMPLE_RATE / FPS).astype(np.int64) + WINDOW // 2
    for start in range(0, n_frames, BLOCK_FRAMES):
        idx = centres[start : start + BLOCK_FRAMES]
        frames = padded[idx[:, None] + np.arange(WINDOW)[None, :]]
        block = slice(start, start + len(idx))
        energy[block], peak[block], lag[block] = window_prosody(frames, window)
    loud = energy > max(float(energy.max(initial=-120.0)) - 35.0, -60.0)
    voiced = loud & (peak > 0.45)
    pitch = SAMPLE_RATE / np.maximum(lag, 1)
    if n_frames >= 5:  # a median over 5 frames removes single-frame octave jumps
        from scipy.signal import medfilt

        pitch = medfilt(pitch, 5)
    if voiced.any():  # beyond an octave from the speaker's median: a tracking error, not speech
        median = float(np.median(pitch[voiced]))
        voiced = voiced & (pitch < 1.9 * median) & (pitch > 0.5 * median)
    return energy, voiced, np.where(voiced, pitch, np.nan)


def window_prosody(
    frames: np.ndarray, window: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loudness (dB), autocorrelation peak (0..1) and its lag (samples) of windows ``[n, WINDOW]``.

    Only true peaks count: at a window's edge the autocorrelation falls from lag 0, and its
    largest value in the range is then the range's first lag (a spurious 400 Hz).
    """
    frames = frames - frames.mean(axis=1, keepdims=True)
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    spectrum = np.abs(np.fft.rfft(frames * window, 2 * WINDOW)) ** 2
    r = np.fft.irfft(spectrum, 2 * WINDOW)[:, : MAX_LAG + 1]
    r = r / (r[:, :1] + 1e-12)
    inner = r[:, MIN_LAG:MAX_LAG]
    is_peak = (inner > r[:, MIN_LAG - 1 : MAX_LAG - 1]) & (inner >= r[:, MIN_LAG + 1 : MAX_LAG + 1])
    best = np.argmax(np.where(is_peak, inner, -1.0), axis=1) + MIN_LAG
    peak = np.where(is_peak.any(axis=1), r[np.arange(len(frames)), best], 0.0)
    return energy, peak, best


def _smooth(x: np.ndarray, frames: int) -> np.ndarray:
    """A Hann moving average over ``frames`` (shorter for short inputs); same length out."""
    frames = min(frames, x.size - 2)
    if frames <= 1 or x.size == 0:
        return x
    kernel = np.hanning(frames + 2)[1:-1]
    return np.convolve(x, kernel / kernel.sum(), mode="same")


def accents(
    energy_db: np.ndarray, voiced: np.ndarray, pitch_hz: np.ndarray, params: HeadParams
) -> tuple[np.ndarray, np.ndarray]:
    """``(frames, prominences)`` of the stressed syllables (peaks of pitch and loudness)."""
    from scipy.signal import find_peaks

    if not voiced.any():
        return np.zeros(0, np.int64), np.zeros(0)
    semitones = 12 * np.log2(np.where(voiced, pitch_hz, 1.0) / np.nanmedian(pitch_hz[voiced]))
    semitones = np.where(voiced, semitones, 0.0)
    st = _smooth(semitones, 7) / max(float(np.std(semitones[voiced])), 1.0)
    loud = energy_db[voiced]
    en = _smooth((energy_db - loud.mean()) / max(float(loud.std()), 1.0), 7)
    score = np.where(voiced, st + 0.7 * en, -10.0)
    distance = max(1, int(params.accent["min_gap_s"] * FPS))
    frames, props = find_peaks(score, height=params.accent["threshold"], distance=distance)
    return frames.astype(np.int64), np.asarray(props["peak_heights"], dtype=np.float64)


def _ou_noise(rng: np.random.Generator, n: int, tau_frames: float) -> np.ndarray:
    """Unit-variance Ornstein-Uhlenbeck noise (slowly varying) of ``n`` frames."""
    from scipy.signal import lfilter

    a = math.exp(-1.0 / tau_frames)
    white = rng.standard_normal(n) * math.sqrt(1.0 - a * a)
    out = lfilter([1.0], [1.0, -a], white)
    return np.asarray(out)


def _nod(n: int, at: float, tau: float) -> np.ndarray:
    """``(t / tau) exp(1 - t / tau)`` from frame ``at`` on: rises to 1 at ``tau``, then decays."""
    t = np.arange(n) - at
    out = np.zeros(n)
    on = t >= 0
    out[on] = (t[on] / tau) * np.exp(1.0 - t[on] / tau)
    return out


def head_motion(
    samples: np.ndarray,
    n_frames: int,
    emotion_weights: np.ndarray,
    *,
    seed: int | None = None,
    scale: float = 1.0,
    params: HeadParams | None = None,
) -> np.ndarray:
    """Head rotations ``[n_frames, 3]`` (yaw, pitch, roll in degrees; see the module docstring).

    Args:
        samples: the clip's 16 kHz audio.
        n_frames: frames at 60 fps.
        emotion_weights: ``[n_frames, 7]`` emotion weights per frame (rows sum to 1).
        seed: seeds the drift and the side of each nod; None draws fresh randomness.
        scale: multiplies all motion (0 = still; 1 = as the parameters say).
        params: parameters (the packaged ``head_motion.yaml`` when None).
    """
    if not (math.isfinite(scale) and 0.0 <= scale <= 2.0):
        raise ConfigError(f"head scale must be within 0..2, got {scale}")
    out = np.zeros((n_frames, 3), dtype=np.float32)
    if n_frames == 0 or scale == 0.0:
        return out
    params = params or load_head_params()
    rng = np.random.default_rng(seed)
    energy, voiced, pitch = prosody(samples, n_frames)
    style = np.asarray(emotion_weights, dtype=np.float64) @ params.emotions  # [T, 4]
    amplitude, sharpness, drift, offset = style.T
    yaw, pitch_axis, roll = np.zeros(n_frames), np.zeros(n_frames), np.zeros(n_frames)

    accent = params.accent
    frames, prominence = accents(energy, voiced, pitch, params)
    for f, p in zip(frames, prominence):
        tau = accent["tau_s"] * FPS / sharpness[f]
        nod = _nod(n_frames, f - accent["lead_s"] * FPS - tau, tau)  # its peak lands on f
        amp = accent["nod_deg"] * min(p / 2.0, 1.5) * amplitude[f]
        pitch_axis -= amp * nod
        yaw += rng.choice((-1.0, 1.0)) * accent["yaw_share"] * amp * nod
        roll += rng.choice((-1.0, 1.0)) * accent["roll_share"] * amp * nod

    activity = _smooth(voiced.astype(np.float64), int(0.15 * FPS))
    pause = int(params.phrase_end["pause_s"] * FPS)
    speaking = activity > 0.2
    ends = np.flatnonzero(speaking[:-1] & ~speaking[1:]) + 1
    for f in ends:
        if not speaking[f : f + pause].any() and f + 1 < n_frames:
            tau = 1.5 * accent["tau_s"] * FPS / sharpness[f]
            pitch_axis -= (
                params.phrase_end["nod_deg"] * amplitude[f] * _nod(n_frames, float(f), tau)
            )

    tau_frames = params.drift_tau_s * FPS
    level = np.clip(_smooth(activity, int(0.5 * FPS)), 0.0, 1.0)
    for axis, target in enumerate((yaw, pitch_axis, roll)):
        deg = params.idle_deg[axis] + (params.speech_deg[axis] - params.idle_deg[axis]) * level
        target += _ou_noise(rng, n_frames, tau_frames) * deg * drift * amplitude
    pitch_axis += _smooth(offset, int(0.6 * FPS))

    raw = np.stack([yaw, pitch_axis, roll], axis=1) * scale
    raw = _low_pass(raw, params.smoothing_hz)
    limits = np.array(params.limits_deg)
    out[:] = limits * np.tanh(raw / limits)
    return out


def _low_pass(x: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Zero-phase 2nd-order Butterworth along time (short clips: a moving average)."""
    from scipy.signal import butter, sosfiltfilt

    if x.shape[0] < 16:
        return x
    sos = butter(2, cutoff_hz, fs=FPS, output="sos")
    return np.asarray(sosfiltfilt(sos, x, axis=0, padlen=min(x.shape[0] - 1, 3 * 6)))
