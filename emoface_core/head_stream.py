"""Head motion for audio that arrives in chunks (``emoface live``): the causal ``head_motion``.

The same parameters (``data/head_motion.yaml``) and the same parts as the whole-clip layer in
``emoface_core.head``, rebuilt so a frame needs only ``LOOKAHEAD_FRAMES`` of future audio and
every frame depends on nothing but the audio up to there (any chunking gives the same frames):

* prosody per frame from the same 40 ms window (20 ms ahead), pitch median over 5 frames;
* the speaker's pitch median and spread are running values over the voiced frames so far;
* an accent is a local maximum of the same score, confirmed ``CONFIRM_FRAMES`` after it: the nod
  starts then and peaks ``tau`` later, so live nods land ~0.1-0.2 s after the stressed syllable
  (the clip layer anticipates it);
* a phrase-end nod starts once the pause has lasted ``phrase_end.pause_s``;
* drift is the same Ornstein-Uhlenbeck noise, drawn frame by frame; the low-pass is a causal
  2nd-order Butterworth (a few frames of lag) instead of the clip layer's zero-phase one.

Seeded like the clip layer, but the two do not produce the same frames.
"""

from __future__ import annotations

import math

import numpy as np

from emoface_core.audio import FPS, SAMPLE_RATE
from emoface_core.errors import ConfigError
from emoface_core.head import WINDOW, HeadParams, load_head_params, window_prosody

CONFIRM_FRAMES = 4  # an accent is known this many frames after its peak
MEDIAN_FRAMES = 5  # pitch median (2 frames ahead)
SCORE_SMOOTH = 7  # Hann smoothing of the accent score (3 frames ahead)
LOOKAHEAD_FRAMES = (MEDIAN_FRAMES // 2) + (SCORE_SMOOTH // 2)  # 5 frames of prosody ahead
HISTORY_PITCH = 1200  # voiced frames (20 s) the running pitch median looks back over
KEEP_FRAMES = 64  # past frames a frame's decision may read (confirmation, median, smoothing)
_HOP = SAMPLE_RATE / FPS


class _Track:
    """Per-frame values by absolute frame index, of which only the recent ones are kept."""

    def __init__(self) -> None:
        self.base = 0
        self.values: list = []

    def __len__(self) -> int:
        return self.base + len(self.values)

    def __getitem__(self, index: int | slice):  # type: ignore[no-untyped-def]
        if isinstance(index, slice):
            return self.values[index.start - self.base : index.stop - self.base]
        return self.values[index - self.base]

    def extend(self, values: list) -> None:
        self.values.extend(values)

    def append(self, value: object) -> None:
        self.values.append(value)

    def forget_before(self, frame: int) -> None:
        """Drop the values of frames before ``frame`` (in large steps, rarely)."""
        drop = frame - self.base
        if drop > 4 * KEEP_FRAMES:
            del self.values[:drop]
            self.base = frame


def _hann(frames: int) -> np.ndarray:
    kernel = np.hanning(frames + 2)[1:-1]
    return kernel / kernel.sum()


class HeadStream:
    """Head rotations ``[n, 3]`` (yaw, pitch, roll in degrees) of a live stream, frame by frame.

    ``push(samples, emotion_weights)`` returns the rotations of every frame that became final;
    ``frame_index`` says which frame the next one is. Frames are final ``LOOKAHEAD_FRAMES``
    (plus the 20 ms half window) after their audio.
    """

    def __init__(
        self, *, seed: int | None = None, scale: float = 1.0, params: HeadParams | None = None
    ) -> None:
        if not (math.isfinite(scale) and 0.0 <= scale <= 2.0):
            raise ConfigError(f"head scale must be within 0..2, got {scale}")
        from scipy.signal import butter, sosfilt_zi

        self.params = params or load_head_params()
        self.scale = scale
        self._rng = np.random.default_rng(seed)
        self._audio = np.zeros(WINDOW, np.float32)  # leading zeros: the first window's past
        self._audio_start = -WINDOW  # sample index of _audio[0]
        self._window = np.hanning(WINDOW).astype(np.float32)
        self._next_prosody = 0  # next frame whose window is complete
        self._energy = _Track()
        self._peak = _Track()
        self._lag = _Track()
        self._max_energy = -120.0
        self._voiced_pitch: list[float] = []
        self._loud_energy: list[float] = []
        self._score = _Track()
        self._smooth = _Track()
        self._kernel = _hann(SCORE_SMOOTH)
        self._voiced_flags = _Track()
        self.frame_index = 0  # next frame to emit
        self._nods: list[tuple[float, float, float, float, float]] = []  # start, tau, p, y, r amp
        self._last_accent = -(10**9)
        self._speaking_since = -1
        self._silent_for = 0
        self._was_speaking = False
        self._activity = 0.0
        self._level = 0.0
        self._offset = 0.0
        self._drift = np.zeros(3)
        self._drift_a = math.exp(-1.0 / (self.params.drift_tau_s * FPS))
        self._sos = butter(2, self.params.smoothing_hz, fs=FPS, output="sos")
        self._zi = np.zeros((self._sos.shape[0], 2, 3))
        self._zi_template = sosfilt_zi(self._sos)
        self._primed = False

    def push(self, samples: np.ndarray, emotion_weights: np.ndarray) -> np.ndarray:
        """Add 16 kHz audio; returns the rotations ``[k, 3]`` of the frames now final.

        Args:
            samples: the next audio samples.
            emotion_weights: ``[7]`` weights of the current emotion, or ``[m, 7]`` per frame
                for the frames this call may finish (the last row repeats if short).
        """
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._audio = np.concatenate([self._audio, x])
        self._analyse()
        return self._emit(np.atleast_2d(np.asarray(emotion_weights, dtype=np.float64)))

    def _analyse(self) -> None:
        """Prosody of every frame whose 40 ms window is now complete."""
        end = self._audio_start + self._audio.size
        frames = []
        f = self._next_prosody
        while int((f + 0.5) * _HOP) + WINDOW // 2 <= end:
            frames.append(f)
            f += 1
        if not frames:
            return
        centres = ((np.array(frames) + 0.5) * _HOP).astype(np.int64)
        index = centres[:, None] - WINDOW // 2 + np.arange(WINDOW)[None, :] - self._audio_start
        energy, peak, best = window_prosody(self._audio[index], self._window)
        self._energy.extend(energy.tolist())
        self._peak.extend(peak.tolist())
        self._lag.extend(best.astype(float).tolist())
        self._next_prosody = frames[-1] + 1
        keep_from = int((self._next_prosody + 0.5) * _HOP) - WINDOW // 2 - self._audio_start
        if keep_from > 0:
            self._audio = self._audio[keep_from:]
            self._audio_start += keep_from

    def _voiced_pitch_at(self, f: int) -> float:
        """Pitch (Hz) of frame ``f`` after the 5-frame median, NaN where unvoiced."""
        lo, hi = max(0, f - MEDIAN_FRAMES // 2), f + MEDIAN_FRAMES // 2 + 1
        pitch = float(np.median(SAMPLE_RATE / np.maximum(np.array(self._lag[lo:hi]), 1)))
        self._max_energy = max(self._max_energy, self._energy[f])
        loud = self._energy[f] > max(self._max_energy - 35.0, -60.0)
        if not (loud and self._peak[f] > 0.45):
            return math.nan
        if self._voiced_pitch:
            median = float(np.median(self._voiced_pitch[-HISTORY_PITCH:]))
            if not 0.5 * median < pitch < 1.9 * median:
                return math.nan
        return pitch

    def _score_frames(self, upto: int) -> None:
        """Accent scores of frames up to ``upto`` (exclusive), from the running statistics."""
        while len(self._score) < upto:
            f = len(self._score)
            pitch = self._voiced_pitch_at(f)
            voiced = not math.isnan(pitch)
            self._voiced_flags.append(voiced)
            if voiced:
                self._voiced_pitch.append(pitch)
                self._loud_energy.append(self._energy[f])
                if len(self._voiced_pitch) > 2 * HISTORY_PITCH:
                    del self._voiced_pitch[:HISTORY_PITCH]
                    del self._loud_energy[:HISTORY_PITCH]
            if not voiced or len(self._voiced_pitch) < 3:
                self._score.append(-10.0 if not voiced else 0.0)
                continue
            history = np.array(self._voiced_pitch[-HISTORY_PITCH:])
            st_all = 12 * np.log2(history / np.median(history))
            st = 12 * math.log2(pitch / float(np.median(history)))
            loud = np.array(self._loud_energy[-HISTORY_PITCH:])
            en = (self._energy[f] - loud.mean()) / max(float(loud.std()), 1.0)
            self._score.append(st / max(float(st_all.std()), 1.0) + 0.7 * en)

    def _smoothed(self, k: int) -> float:
        """The accent score of frame ``k`` after the Hann smoothing (cached; -10 at the start)."""
        half = SCORE_SMOOTH // 2
        while len(self._smooth) <= k:
            j = len(self._smooth)
            if j < half:
                self._smooth.append(-10.0)
            else:
                window = self._score[j - half : j + half + 1]
                self._smooth.append(float(np.dot(self._kernel, window)))
        return self._smooth[k]

    def _emit(self, weights: np.ndarray) -> np.ndarray:
        p = self.params
        self._score_frames(max(len(self._score), self._next_prosody - MEDIAN_FRAMES // 2))
        last = len(self._score) - SCORE_SMOOTH // 2  # frame f needs scores up to f + 3
        out: list[np.ndarray] = []
        while self.frame_index < last:
            f = self.frame_index
            row = weights[min(len(out), weights.shape[0] - 1)]
            amplitude, sharpness, drift, offset = row @ p.emotions
            # An accent at c = f - CONFIRM_FRAMES: the largest smoothed score within +-4 frames.
            c = f - CONFIRM_FRAMES
            if c >= CONFIRM_FRAMES and self._voiced_flags[c]:
                here = self._smoothed(c)
                around = max(self._smoothed(k) for k in range(c - CONFIRM_FRAMES, f + 1))
                gap = c - self._last_accent >= p.accent["min_gap_s"] * FPS
                if here >= p.accent["threshold"] and here >= around and gap:
                    self._last_accent = c
                    tau = p.accent["tau_s"] * FPS / sharpness
                    amp = p.accent["nod_deg"] * min(here / 2.0, 1.5) * amplitude
                    sides = self._rng.choice((-1.0, 1.0), size=2)
                    yaw = sides[0] * p.accent["yaw_share"] * amp
                    roll = sides[1] * p.accent["roll_share"] * amp
                    self._nods.append((float(f), tau, amp, yaw, roll))
            # Speech activity, phrase ends, drift level.
            voiced = self._voiced_flags[f]
            self._activity += (float(voiced) - self._activity) * (1.0 / (0.15 * FPS))
            speaking = self._activity > 0.2
            if speaking:
                self._silent_for = 0
                self._was_speaking = True
            else:
                self._silent_for += 1
                if self._was_speaking and self._silent_for == int(p.phrase_end["pause_s"] * FPS):
                    tau = 1.5 * p.accent["tau_s"] * FPS / sharpness
                    self._nods.append((float(f), tau, p.phrase_end["nod_deg"] * amplitude, 0, 0))
                    self._was_speaking = False
            self._level += (self._activity - self._level) * (1.0 / (0.5 * FPS))
            self._offset += (offset - self._offset) * (1.0 / (0.6 * FPS))
            a = self._drift_a
            self._drift = a * self._drift + math.sqrt(1 - a * a) * self._rng.standard_normal(3)
            level = min(max(self._level, 0.0), 1.0)
            deg = np.array(p.idle_deg) + (np.array(p.speech_deg) - np.array(p.idle_deg)) * level
            rot = self._drift * deg * drift * amplitude
            rot[1] += self._offset
            alive = []
            for start, tau, pitch_amp, yaw_amp, roll_amp in self._nods:
                t = f - start
                shape = (t / tau) * math.exp(1.0 - t / tau) if t >= 0 else 0.0
                rot += shape * np.array([yaw_amp, -pitch_amp, roll_amp])
                if t < 12 * tau:
                    alive.append((start, tau, pitch_amp, yaw_amp, roll_amp))
            self._nods = alive
            out.append(rot * self.scale)
            self.frame_index += 1
        for track in (self._energy, self._peak, self._lag, self._score, self._smooth):
            track.forget_before(self.frame_index - KEEP_FRAMES)
        self._voiced_flags.forget_before(self.frame_index - KEEP_FRAMES)
        if not out:
            return np.zeros((0, 3), np.float32)
        return self._finish(np.array(out))

    def _finish(self, raw: np.ndarray) -> np.ndarray:
        from scipy.signal import sosfilt

        if not self._primed:  # start the filter at rest on the first frame (no ring-in)
            self._zi = self._zi_template[:, :, None] * raw[0][None, None, :]
            self._primed = True
        filtered, self._zi = sosfilt(self._sos, raw, axis=0, zi=self._zi)
        limits = np.array(self.params.limits_deg)
        return (limits * np.tanh(filtered / limits)).astype(np.float32)
