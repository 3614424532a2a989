"""The procedural engine: lip sync and emotion from the audio signal alone, no weights needed.

Four stages, each either causal (state carried forward frame by frame) or a function of a bounded
window of frames, so that a stream cut into chunks of any size gives exactly the frames of a whole
clip (``infer`` *is* one stream fed in one chunk):

1. **Features** (``speech_features``): loudness, voicing, pitch, formants F1/F2, spectral
   centroid and high-frequency share of a 32 ms window centred on each 60 fps frame.
2. **Speech tracks per frame** (``_SpeechTracker``, causal): the level of the speaker's vowels and
   of the background noise are tracked as the audio goes (no look at the whole clip), and turn the
   features into raw articulation values in 0..1: activity, opening (loudness times vowel height
   from F1), rounding (low F1 and F2), spreading (high F2), frication (unvoiced hiss) and pitch
   emphasis.
3. **Coarticulation** (``_shape_tracks``): each track is smoothed with a short Hann kernel centred
   slightly *ahead* of the frame, so the mouth anticipates the sound it is about to make (by
   ``ANTICIPATION_FRAMES``) and eases between shapes; lips close near speech (before a phrase,
   shortly after it) and press in dips of loudness between louder sounds (stop closures, nasal
   murmurs, short pauses). Context: ``HISTORY_FRAMES`` back, ``LOOKAHEAD_FRAMES`` ahead.
4. **Face** (``_render``): the emotion pose (per-frame blend of the seven poses with the emotion
   timeline's weights), plus every track times its shape (per-emotion gains), plus seeded idle
   micro-motion, clipped to each channel's board range.

Poses, shapes, per-emotion articulation gains and idle motion are data
(``emoface_core/data/emotion_poses.yaml`` and ``articulation.yaml``). Blinks and gaze are not made
here: the shared ``EyeAnimator`` adds them after ``infer`` (``animate_audio``), as for the network.

Latency of a stream: the lookahead (default ``LOOKAHEAD_FRAMES``, 6 frames = 100 ms) plus half an
analysis window (16 ms), 116 ms. ``ProceduralEngine(lookahead_frames=N)`` fits the coarticulation
into ``N`` frames (0..6) for live use (``_coarticulation``): each kernel loses its future beyond
``N`` and gains a little past instead, onsets are no longer anticipated, and a lip press in a dip
of loudness is judged from the louder sound *before* it alone. With ``N = 0`` a frame is final
16 ms after its centre.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoface_core.audio import FPS, SAMPLE_RATE, Audio, frame_count
from emoface_core.controllers import CONTROLLER_NAMES, N_CONTROLLERS, channel_range
from emoface_core.emotion import N_EMOTIONS, EmotionTimeline
from emoface_core.engines.procedural.data import N_TRACKS, TRACKS, load_procedural_data
from emoface_core.engines.procedural.speech import HALF_WINDOW, FeatureStream, FrameFeatures
from emoface_core.errors import ConfigError

PROCEDURAL_VERSION = "2"  # bump when the same audio gives other frames (batch re-bakes)
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
                data = resources.files("emoface_core").joinpath("data", name).read_bytes()
            digests[name] = hashlib.sha256(data).hexdigest()[:16]
        except OSError:
            digests[name] = f"unreadable:{override}"  # the engine reports it when it loads
    return digests


# Per-frame values before context: activity, the five raw tracks, and loudness re the speaker.
_RAW = ("activity", "open", "round", "spread", "fricative", "emphasis", "relative_db")
_A, _O, _RO, _SP, _FR, _EM, _REL = range(len(_RAW))

LOOKAHEAD_FRAMES = 6  # 100 ms: the future a frame may look at (the stream's latency, plus 16 ms)
LOW_LATENCY_LOOKAHEAD_FRAMES = 0  # live use: no future frames, only the analysis window's 16 ms
ANTICIPATION_FRAMES = 2  # 33 ms: the jaw kernel is centred this far ahead of the frame
CLOSE_HOLD_FRAMES = 20  # 333 ms: how long lips stay "near speech" after it stops
# A closure is a dip of loudness between louder sounds on both sides (a stop's silence, a nasal's
# murmur, a short pause). The neighbours' loudness is remembered with these fades, so that the
# dip measure changes smoothly from frame to frame instead of jumping when a peak leaves a window.
PEAK_FADE_DB = 1.0  # per frame of distance (a peak 10 frames away counts 10 dB less)
PEAK_BACK_FRAMES = 16
PEAK_AHEAD_FRAMES = 3
# Without PEAK_AHEAD_FRAMES of lookahead a dip is measured against the louder sound before it
# only. The faster fade ends the press within ~12 frames of that sound, so lips press through a
# stop's closure but not through the pause after a phrase (where "close" takes over).
ONE_SIDED_PEAK_FADE_DB = 2.0
CUT_PAST_SHARE = 3  # a kernel whose future is cut by c frames gains ceil(c / 3) frames of past
HISTORY_FRAMES = CLOSE_HOLD_FRAMES + 4  # 24: the past a frame may look at

# Kernel support (first offset, last offset) in frames, relative to the output frame.
_KERNELS: dict[str, tuple[int, int]] = {
    "activity": (-1, 3),  # fast: closures must stay crisp
    "level": (-1, 1),
    "press": (-3, 2),  # eases the closure in and out (a dip can start or end within one frame)
    "open": (ANTICIPATION_FRAMES - 4, ANTICIPATION_FRAMES + 4),  # -2..6, centred 33 ms ahead
    "lips": (-4, 6),  # rounding/spreading spread further over neighbouring sounds
    "fricative": (-2, 4),
    "emphasis": (-10, 6),  # brows move slower than lips
}
_ACTIVITY_AHEAD = 3  # frames of smoothed activity used to anticipate the next sound's onset

# Level tracking (dB re full scale, loudness of a 32 ms window).
INITIAL_LEVEL_DB = -20.0  # level assumed before the first voiced frame (peak-normalised speech)
# The first voiced frame is usually a syllable's quiet onset: the level starts this far above it,
# as a prior that fades within the first syllable (the data outweighs it after a few frames).
LEVEL_PRIOR_OFFSET_DB = 6.0
LEVEL_PRIOR_FRAMES = 8.0  # weight of that prior, in voiced frames
LEVEL_PRIOR_DECAY = 0.7  # per voiced frame: the prior is gone within the first syllable
LEVEL_DECAY = 0.996  # per voiced frame: the level forgets over ~250 voiced frames (4-5 s of speech)
LEVEL_TOP_SHARE = 0.2  # the level is the loudness exceeded by the loudest 20 % of voiced frames
VOICED_SNR_DB = 15.0  # frames this far above the noise floor (and voiced) update the level
_LEVEL_BINS_DB = np.arange(-100.0, 21.0)  # 1 dB histogram bins, -100..20 dB
# The noise floor falls quickly into quieter frames, follows frames near it slowly, and creeps
# up through speech, so a long stretch of louder background is learned eventually.
NOISE_CEILING_DB = -50.0  # the floor starts at min(first frame, this)
NOISE_FALL_RATE = 0.3
NOISE_FOLLOW_RATE = 0.03
NOISE_BAND_DB = 6.0
NOISE_CREEP_DB = 0.02  # per frame: 1.2 dB/s
PITCH_BASE_RATE = 0.02  # per voiced frame, for the running pitch baseline


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _hann_kernel(first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.arange(first, last + 1)
    weights = np.hanning(offsets.size + 2)[1:-1]
    return offsets, weights / weights.sum()


@dataclass(frozen=True)
class _Coarticulation:
    """The kernels and look-aheads of one lookahead budget (frames a frame may look ahead)."""

    lookahead_frames: int
    kernels: dict[str, tuple[int, int]]  # support (first, last offset) per kernel
    activity_ahead: int  # frames of smoothed activity that anticipate a phrase's onset
    peak_ahead: int  # frames the louder sound after a dip is looked for; 0: one-sided dips
    peak_fade_db: float  # per frame of distance to that louder sound
    taps: dict[str, tuple[np.ndarray, np.ndarray]] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        k = self.kernels
        assert max(last for _, last in k.values()) <= self.lookahead_frames
        assert k["activity"][1] + self.activity_ahead <= self.lookahead_frames
        assert k["press"][1] + self.peak_ahead + k["level"][1] <= self.lookahead_frames
        assert CLOSE_HOLD_FRAMES - k["activity"][0] <= HISTORY_FRAMES
        assert PEAK_BACK_FRAMES - k["press"][0] - k["level"][0] <= HISTORY_FRAMES
        assert -k["emphasis"][0] <= HISTORY_FRAMES
        taps = {name: _hann_kernel(*span) for name, span in k.items()}
        object.__setattr__(self, "taps", taps)


def _cut_kernel(span: tuple[int, int], last_allowed: int) -> tuple[int, int]:
    """A kernel's support with its future cut to ``last_allowed``.

    It gains ``ceil(cut / CUT_PAST_SHARE)`` frames of past: some smoothing survives (a kernel of a
    frame or two lets formant noise through as frame-to-frame flicker) for a little lag.
    """
    first, last = span
    new_last = min(last, last_allowed)
    return first - math.ceil((last - new_last) / CUT_PAST_SHARE), new_last


def _coarticulation(lookahead_frames: int) -> _Coarticulation:
    """Kernels that fit ``lookahead_frames`` (0..``LOOKAHEAD_FRAMES``; the maximum: the default).

    Below the default each kernel is cut to the budget in the future (``_cut_kernel``: a Hann
    window that lags a little instead of anticipating); the activity kernel comes before the
    onset anticipation, the level smoothing before the press easing, and dips are one-sided
    (``ONE_SIDED_PEAK_FADE_DB``): telling a closure from a pause needs the full budget.
    """
    n = lookahead_frames
    if n >= LOOKAHEAD_FRAMES:
        return _Coarticulation(n, dict(_KERNELS), _ACTIVITY_AHEAD, PEAK_AHEAD_FRAMES, PEAK_FADE_DB)
    kernels = {name: _cut_kernel(span, n) for name, span in _KERNELS.items()}
    kernels["press"] = _cut_kernel(_KERNELS["press"], n - kernels["level"][1])
    activity_ahead = min(_ACTIVITY_AHEAD, n - kernels["activity"][1])
    return _Coarticulation(n, kernels, activity_ahead, 0, ONE_SIDED_PEAK_FADE_DB)


def _latency_ms(lookahead_frames: int) -> float:
    """How long after a frame's centre the audio it needs has all arrived."""
    return 1000.0 * lookahead_frames / FPS + 1000.0 * HALF_WINDOW / SAMPLE_RATE


def _frames_past_end(latency_ms: float) -> int:
    """Whole frames of audio past a frame's end that it waits for (rounded up)."""
    return math.ceil((latency_ms - 500.0 / FPS) * FPS / 1000.0)


def _level_bin(e_db: float) -> int:
    return min(max(int(round(e_db - _LEVEL_BINS_DB[0])), 0), _LEVEL_BINS_DB.size - 1)


class _SpeechTracker:
    """Causal per-frame state: noise floor, speech level, pitch baseline -> raw tracks ``[n, 7]``.

    The speech level is a running percentile of the loudness of voiced frames, kept as a histogram
    whose counts fade with every new voiced frame (``LEVEL_DECAY``), plus a prior a little above
    the first voiced frame that fades within the first syllable, so that the quiet onset of the
    first syllable is not taken for the speaker's level. Only differences of loudness matter, so
    the animation does not depend on the recording's gain.
    """

    def __init__(self) -> None:
        self.noise_db: float | None = None
        self.histogram = np.zeros(_LEVEL_BINS_DB.size)
        self.prior_bin: int | None = None
        self.prior_weight = LEVEL_PRIOR_FRAMES
        self.level_db = INITIAL_LEVEL_DB
        self.pitch_base_st: float | None = None

    def _update_noise(self, e: float) -> float:
        if self.noise_db is None:
            self.noise_db = min(e, NOISE_CEILING_DB)
        gap = e - self.noise_db
        if gap < 0.0:
            self.noise_db += NOISE_FALL_RATE * gap
        elif gap < NOISE_BAND_DB:
            self.noise_db += NOISE_FOLLOW_RATE * gap
        else:
            self.noise_db += NOISE_CREEP_DB
        return self.noise_db

    def _update_level(self, e: float) -> float:
        h = self.histogram
        h *= LEVEL_DECAY
        h[_level_bin(e)] += 1.0
        if self.prior_bin is None:
            self.prior_bin = _level_bin(e + LEVEL_PRIOR_OFFSET_DB)
        self.prior_weight *= LEVEL_PRIOR_DECAY
        with_prior = h.copy()
        with_prior[self.prior_bin] += self.prior_weight
        # The loudness exceeded by LEVEL_TOP_SHARE of the (faded) voiced frames, interpolated.
        from_top = np.cumsum(with_prior[::-1])
        target = LEVEL_TOP_SHARE * from_top[-1]
        k = int(np.searchsorted(from_top, target))
        below = from_top[k - 1] if k else 0.0
        frac = (target - below) / max(from_top[k] - below, 1e-12)
        self.level_db = float(_LEVEL_BINS_DB[-1 - k] + 0.5 - frac)
        return self.level_db

    def step(self, f: FrameFeatures) -> np.ndarray:
        """Raw articulation values of the next ``len(f)`` frames."""
        n = len(f)
        semitones = 12.0 * np.log2(np.maximum(f.pitch_hz, 1.0) / 100.0)
        noise = np.empty(n)
        level = np.empty(n)
        base = np.empty(n)
        for i, (e, v, st) in enumerate(
            zip(f.energy_db.tolist(), f.voicing.tolist(), semitones.tolist())
        ):
            noise[i] = self._update_noise(e)
            if v >= 0.6 and e - noise[i] >= VOICED_SNR_DB:
                self._update_level(e)
                if self.pitch_base_st is None:
                    self.pitch_base_st = st
                self.pitch_base_st += PITCH_BASE_RATE * (st - self.pitch_base_st)
            level[i] = self.level_db
            base[i] = self.pitch_base_st if self.pitch_base_st is not None else st

        e = f.energy_db
        rel = e - level  # dB re the speaker's level: 0 for a stressed vowel
        # Speech activity: clearly above the noise floor and within ~40 dB of the speaker's level.
        snr_gate = _smoothstep(e - noise, 10.0, 20.0)
        activity = snr_gate * _smoothstep(rel, -42.0, -28.0)
        voiced = _smoothstep(f.voicing, 0.45, 0.8)
        loud = _smoothstep(rel, -32.0, 0.0)
        # Vowel height from F1 (about 250 Hz for i/u, 800 Hz and more for a), jaw height's cue.
        height = 0.3 + 0.7 * np.clip((f.f1_hz - 250.0) / 550.0, 0.0, 1.0)
        raw = np.empty((n, len(_RAW)))
        raw[:, _A] = activity
        raw[:, _O] = activity * loud * (voiced * height + (1.0 - voiced) * 0.25)
        # Rounding lowers F2 (back vowels, u/o/w, below ~1400 Hz) with a close-mid F1; spreading
        # raises F2 (i/e, above ~1650 Hz). Only voiced frames carry formants worth trusting.
        back = np.clip((1400.0 - f.f2_hz) / 500.0, 0.0, 1.0)
        close = np.clip((720.0 - f.f1_hz) / 250.0, 0.0, 1.0)
        raw[:, _RO] = activity * voiced * back * close
        raw[:, _SP] = activity * voiced * np.clip((f.f2_hz - 1650.0) / 550.0, 0.0, 1.0)
        # Frication: unvoiced energy concentrated above 3.5 kHz (s, sh, f), quieter than vowels.
        raw[:, _FR] = (
            snr_gate
            * _smoothstep(rel, -45.0, -25.0)
            * (1.0 - voiced)
            * _smoothstep(f.hf_ratio, 0.25, 0.6)
        )
        # Emphasis: pitch 1-5 semitones above the speaker's running baseline on a loud syllable.
        rise = np.clip((semitones - base - 1.0) / 4.0, 0.0, 1.0)
        raw[:, _EM] = activity * loud * _smoothstep(f.voicing, 0.7, 0.9) * rise
        raw[:, _REL] = np.clip(rel, -60.0, 10.0) * snr_gate + (1.0 - snr_gate) * -60.0
        return raw


_SILENT_RAW = np.zeros(len(_RAW))
_SILENT_RAW[_REL] = -60.0  # what the tracker gives for silence: the context before a stream


def _fir(x: np.ndarray, start: int, n: int, taps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``sum_j w_j * x[start + o_j : start + o_j + n]``, tap by tap (same result for any ``n``)."""
    offsets, weights = taps
    out = np.zeros(n)
    for o, w in zip(offsets.tolist(), weights.tolist()):
        out += w * x[start + o : start + o + n]
    return out


def _fading_max(
    x: np.ndarray,
    center: int,
    n: int,
    steps: range,
    fade: Callable[[int, np.ndarray], np.ndarray],
) -> np.ndarray:
    """``max_j fade(j, x[center + j : center + j + n])`` over ``j`` in ``steps`` (0 included)."""
    out = x[center : center + n].copy()
    for j in steps:
        np.maximum(out, fade(j, x[center + j : center + j + n]), out=out)
    return out


def _near_speech(
    raw: np.ndarray, start: int, n: int, co: _Coarticulation
) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed activity of the frames, and how near speech they are (0..1).

    Nearness looks back ``CLOSE_HOLD_FRAMES`` (fading linearly) and ahead ``co.activity_ahead``
    frames, so lips close shortly before a phrase and stay closed a moment after it.
    """
    back, ahead = CLOSE_HOLD_FRAMES, co.activity_ahead
    act = _fir(raw[:, _A], start - back, n + back + ahead, co.taps["activity"])
    behind = _fading_max(
        act, back, n, range(-1, -back - 1, -1), lambda j, a: a * (1.0 + j / (back + 1))
    )
    before = _fading_max(
        act, back, n, range(1, ahead + 1), lambda j, a: a * (1.0 - j / (ahead + 1))
    )
    return act[back : back + n], np.maximum(behind, before)


def _lip_press(raw: np.ndarray, start: int, n: int, co: _Coarticulation) -> np.ndarray:
    """How far each frame's loudness dips below louder sounds on *both* sides of it, eased.

    That is a stop's closure, a nasal's murmur or a short pause inside speech. The neighbours'
    loudness counts ``co.peak_fade_db`` less per frame of distance. Without lookahead for the
    sound after the dip (``co.peak_ahead == 0``) only the sound before it counts.
    """
    first, last = co.kernels["press"]
    m = n + last - first  # the dip is needed over the press kernel's span: start + first ..
    back, ahead, fade_db = PEAK_BACK_FRAMES, co.peak_ahead, co.peak_fade_db
    level = _fir(raw[:, _REL], start + first - back, m + back + ahead, co.taps["level"])
    walls = _fading_max(level, back, m, range(-1, -back - 1, -1), lambda j, x: x + fade_db * j)
    if ahead:
        after = _fading_max(level, back, m, range(1, ahead + 1), lambda j, x: x - fade_db * j)
        walls = np.minimum(walls, after)
    depth_db = walls - level[back : back + m]
    dip = _smoothstep(depth_db, 5.0, 15.0) * _smoothstep(walls, -24.0, -10.0)
    return _fir(dip, -first, n, co.taps["press"])


def _shape_tracks(raw: np.ndarray, start: int, n: int, co: _Coarticulation) -> np.ndarray:
    """Coarticulated tracks ``[n, N_TRACKS]`` of rows ``start .. start + n - 1`` of ``raw``.

    ``raw`` rows are consecutive frames; ``start`` must have ``HISTORY_FRAMES`` rows before it and
    the last frame ``co.lookahead_frames`` rows after it.
    """
    assert start >= HISTORY_FRAMES and start + n + co.lookahead_frames <= raw.shape[0]
    activity, near = _near_speech(raw, start, n, co)
    press = _lip_press(raw, start, n, co)
    silence = 1.0 - activity
    taps = co.taps
    tracks = np.empty((n, N_TRACKS))
    tracks[:, TRACKS.index("press")] = press
    tracks[:, TRACKS.index("close")] = silence * near
    tracks[:, TRACKS.index("open")] = _fir(raw[:, _O], start, n, taps["open"]) * (1.0 - 0.7 * press)
    tracks[:, TRACKS.index("round")] = _fir(raw[:, _RO], start, n, taps["lips"])
    tracks[:, TRACKS.index("spread")] = _fir(raw[:, _SP], start, n, taps["lips"])
    tracks[:, TRACKS.index("fricative")] = _fir(raw[:, _FR], start, n, taps["fricative"])
    tracks[:, TRACKS.index("emphasis")] = _fir(raw[:, _EM], start, n, taps["emphasis"])
    # Speech nearby, held over the gaps between words, so the pose's speech_yields do not pump.
    tracks[:, TRACKS.index("speaking")] = near
    return np.clip(tracks, 0.0, 1.0)


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
    tracker: _SpeechTracker = field(default_factory=_SpeechTracker)
    raw: np.ndarray = field(default_factory=lambda: np.tile(_SILENT_RAW, (HISTORY_FRAMES, 1)))
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

    Implements the ``Engine`` protocol (``infer``/``describe``) and a streaming interface
    (``start_stream``/``process``/``flush``) whose frames equal ``infer``'s exactly.
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
    latency_ms = _latency_ms(LOOKAHEAD_FRAMES)  # 116.0
    # Whole frames of audio past a frame's end that it waits for: (116 - 8.3) ms -> 7 frames.
    stream_lookahead_frames = _frames_past_end(latency_ms)  # 7

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
                final 16 ms after its centre; see ``_coarticulation``).

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
        self.latency_ms = _latency_ms(self.lookahead_frames)
        self.stream_lookahead_frames = _frames_past_end(self.latency_ms)
        self._coarticulation = _coarticulation(self.lookahead_frames)

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
        head, state = self.process(state, audio.samples)
        tail, state = self.flush(state, n_frames=audio.n_frames)
        return np.concatenate([head, tail])[: audio.n_frames]  # the release's frame count

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
        tracks = _shape_tracks(state.raw, start, n, self._coarticulation)
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


def _idle_motion(idle: list[_Oscillators], first: int, n: int) -> np.ndarray:
    """Idle offsets ``[n, 174]``: a pure function of the absolute frame index and the seed."""
    frames = np.arange(first, first + n, dtype=np.float64)[:, None]
    out = np.zeros((n, N_CONTROLLERS))
    for channels, amplitude, omega, phase in idle:
        wave = np.sin(frames * omega[None, :] + phase[None, :]).mean(axis=1)
        out[:, channels] += (amplitude * 0.5 * (1.0 + wave))[:, None]
    return out
