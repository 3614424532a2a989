"""Stages 2-3 of the procedural engine: speech features -> raw tracks -> coarticulated tracks.

``SpeechTracker`` (causal) follows the speaker's level, the noise floor and the pitch baseline
and turns each frame's features into raw articulation values in 0..1; ``shape_tracks`` smooths
them with short Hann kernels (with anticipating ones at onsets: ``_with_onsets``), and finds lip
closures in dark dips of loudness and in nasal murmurs between louder sounds (bright bursts are
the tongue's: no closure). ``coarticulation`` fits the kernels into a lookahead budget for live
use. See ``engines.procedural.engine`` for the stages
around these, and ``docs/procedural.md`` for every cue.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from emoface_core.audio import FPS, SAMPLE_RATE
from emoface_core.engines.procedural.data import N_TRACKS, TRACKS
from emoface_core.engines.procedural.speech import HALF_WINDOW, FrameFeatures

# Per-frame values before context: activity, the five raw tracks, and loudness re the speaker.
_RAW = (
    "activity",
    "open",
    "round",
    "spread",
    "fricative",
    "emphasis",
    "relative_db",
    "labiodental",
    "hf_ratio",
    "relative_mid_db",
    "voiced",
)
_A, _O, _RO, _SP, _FR, _EM, _REL, _LAB, _HF, _MID, _VO = range(len(_RAW))

LOOKAHEAD_FRAMES = 6  # 100 ms: the future a frame may look at (the stream's latency, plus 16 ms)
LOW_LATENCY_LOOKAHEAD_FRAMES = 0  # live use: no future frames, only the analysis window's 16 ms
ANTICIPATION_FRAMES = 2  # 33 ms: onsets of the jaw start this far ahead of their sound
LIP_ANTICIPATION_FRAMES = 3  # 50 ms: rounding and spreading start earlier still
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
ONE_SIDED_PRESS_EXTRA_PAST = 3
ONE_SIDED_PRESS_GAIN = 0.8
DIP_MIN_DB, DIP_FULL_DB = 4.0, 10.0  # a dip this deep starts / fully is a closure
# A dip with a burst brighter than this (share of power above 3.5 kHz, in the dip or within
# BURST_AHEAD_FRAMES after it) is a tongue stop or a sibilant: t/d release ~0.8, p/b ~0.05.
ALVEOLAR_HF_LO, ALVEOLAR_HF_HI = 0.2, 0.45
BURST_AHEAD_FRAMES = 3
LABIODENTAL_NOT_PRESS_LO, LABIODENTAL_NOT_PRESS_HI = 0.2, 0.5  # raw labiodental cue in a dip
MURMUR_MIN_DB, MURMUR_FULL_DB = 6.0, 12.0  # drop of the 1-4 kHz band into a nasal murmur
MURMUR_MIN_DIP_DB, MURMUR_FULL_DIP_DB = 2.5, 6.0  # ... with at least this much less loudness
MURMUR_DARK_MIN_DB, MURMUR_DARK_FULL_DB = 16.0, 22.0  # the 1-4 kHz band this far below the whole
PRESS_GAIN = 1.6  # a closure of 2-3 frames still presses fully after the easing kernel
CUT_PAST_SHARE = 3  # a kernel whose future is cut by c frames gains ceil(c / 3) frames of past
HISTORY_FRAMES = CLOSE_HOLD_FRAMES + 4  # 24: the past a frame may look at

# Kernel support (first offset, last offset) in frames, relative to the output frame.
_KERNELS: dict[str, tuple[int, int]] = {
    "activity": (-1, 3),  # fast: closures must stay crisp
    "level": (-1, 1),
    "press": (-2, 2),  # eases the closure in and out (a dip can start or end within one frame)
    # Each shape follows its sound with a centred kernel and, at onsets only, with one centred
    # ahead of it (the larger of the two wins: the mouth moves early into a sound, but does not
    # leave it early).
    "open": (-3, 3),
    "open_onset": (ANTICIPATION_FRAMES - 3, ANTICIPATION_FRAMES + 3),  # -1..5
    "lips": (-4, 4),  # rounding/spreading spread further over neighbouring sounds
    "lips_onset": (LIP_ANTICIPATION_FRAMES - 3, LIP_ANTICIPATION_FRAMES + 3),  # 0..6
    "fricative": (-2, 4),
    "labiodental": (-2, 3),
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


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below ``lo``, 1 above ``hi``, an S-curve between (no jump in slope at either end)."""
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _hann_kernel(first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.arange(first, last + 1)
    weights = np.hanning(offsets.size + 2)[1:-1]
    return offsets, weights / weights.sum()


@dataclass(frozen=True)
class Coarticulation:
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


def coarticulation(lookahead_frames: int) -> Coarticulation:
    """Kernels that fit ``lookahead_frames`` (0..``LOOKAHEAD_FRAMES``; the maximum: the default).

    Below the default each kernel is cut to the budget in the future (``_cut_kernel``: a Hann
    window that lags a little instead of anticipating); the activity kernel comes before the
    onset anticipation, the level smoothing before the press easing, and dips are one-sided
    (``ONE_SIDED_PEAK_FADE_DB``): telling a closure from a pause needs the full budget.
    """
    n = lookahead_frames
    if n >= LOOKAHEAD_FRAMES:
        return Coarticulation(n, dict(_KERNELS), _ACTIVITY_AHEAD, PEAK_AHEAD_FRAMES, PEAK_FADE_DB)
    kernels = {name: _cut_kernel(span, n) for name, span in _KERNELS.items()}
    # Cut to the budget an onset kernel would anticipate nothing, only smooth less: use the
    # centred one's.
    kernels["open_onset"], kernels["lips_onset"] = kernels["open"], kernels["lips"]
    first, last = _cut_kernel(_KERNELS["press"], n - kernels["level"][1])
    # Two more frames of past: a press judged from one side eases in slower (no pop of the lips
    # at the end of a phrase, where "close" follows anyway).
    kernels["press"] = (first - ONE_SIDED_PRESS_EXTRA_PAST, last)
    activity_ahead = min(_ACTIVITY_AHEAD, n - kernels["activity"][1])
    return Coarticulation(n, kernels, activity_ahead, 0, ONE_SIDED_PEAK_FADE_DB)


def latency_ms_of(lookahead_frames: int) -> float:
    """How long after a frame's centre the audio it needs has all arrived."""
    return 1000.0 * lookahead_frames / FPS + 1000.0 * HALF_WINDOW / SAMPLE_RATE


def frames_past_end(latency_ms: float) -> int:
    """Whole frames of audio past a frame's end that it waits for (rounded up)."""
    return math.ceil((latency_ms - 500.0 / FPS) * FPS / 1000.0)


def _level_bin(e_db: float) -> int:
    return min(max(int(round(e_db - _LEVEL_BINS_DB[0])), 0), _LEVEL_BINS_DB.size - 1)


class SpeechTracker:
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
        snr_gate = smoothstep(e - noise, 10.0, 20.0)
        activity = snr_gate * smoothstep(rel, -42.0, -28.0)
        voiced = smoothstep(f.voicing, 0.45, 0.8)
        loud = smoothstep(rel, -32.0, 0.0)
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
        # Labiodental frication (f, v): weak (15-45 dB below the vowels: the lip-teeth slit is a
        # poor noise source) and only moderately bright. s and sh are louder and brighter.
        raw[:, _LAB] = (
            snr_gate
            * smoothstep(rel, -48.0, -34.0)
            * (1.0 - smoothstep(rel, -16.0, -8.0))
            * smoothstep(f.hf_ratio, 0.12, 0.25)
            * (1.0 - smoothstep(f.hf_ratio, 0.6, 0.78))
        )
        # Sibilant frication: unvoiced energy concentrated above 3.5 kHz (s, sh), quieter than
        # vowels; what reads as labiodental does not count twice.
        raw[:, _FR] = (
            snr_gate
            * smoothstep(rel, -45.0, -25.0)
            * (1.0 - voiced)
            * smoothstep(f.hf_ratio, 0.35, 0.7)
            * (1.0 - raw[:, _LAB])
        )
        raw[:, _HF] = f.hf_ratio * snr_gate
        raw[:, _MID] = np.clip(f.mid_db - level, -60.0, 10.0) * snr_gate + (1.0 - snr_gate) * -60.0
        raw[:, _VO] = voiced * snr_gate
        # Emphasis: pitch 1-5 semitones above the speaker's running baseline on a loud syllable.
        rise = np.clip((semitones - base - 1.0) / 4.0, 0.0, 1.0)
        raw[:, _EM] = activity * loud * smoothstep(f.voicing, 0.7, 0.9) * rise
        raw[:, _REL] = np.clip(rel, -60.0, 10.0) * snr_gate + (1.0 - snr_gate) * -60.0
        return raw


SILENT_RAW = np.zeros(len(_RAW))
# What the tracker gives for silence: the context before a stream.
SILENT_RAW[_REL] = SILENT_RAW[_MID] = -60.0


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
    raw: np.ndarray, start: int, n: int, co: Coarticulation
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


def _lip_press(raw: np.ndarray, start: int, n: int, co: Coarticulation) -> np.ndarray:
    """How far each frame's loudness dips below louder sounds on *both* sides of it, eased.

    That is a stop's closure, a nasal's murmur or a short pause inside speech. The neighbours'
    loudness counts ``co.peak_fade_db`` less per frame of distance. Without lookahead for the
    sound after the dip (``co.peak_ahead == 0``) only the sound before it counts. A dip whose
    frames or release carry a bright burst (``hf_ratio`` near it above ~0.3: t, d, s, and the
    alveolar flaps) is the tongue's, not the lips': it does not press. Bilabial releases (p, b)
    and nasal murmurs are dark.
    """
    first, last = co.kernels["press"]
    m = n + last - first  # the dip is needed over the press kernel's span: start + first ..
    back, ahead, fade_db = PEAK_BACK_FRAMES, co.peak_ahead, co.peak_fade_db
    level = _fir(raw[:, _REL], start + first - back, m + back + ahead, co.taps["level"])
    before = _fading_max(level, back, m, range(-1, -back - 1, -1), lambda j, x: x + fade_db * j)
    walls = before
    if ahead:
        after = _fading_max(level, back, m, range(1, ahead + 1), lambda j, x: x - fade_db * j)
        walls = np.minimum(walls, after)
    depth_db = walls - level[back : back + m]
    dip = smoothstep(depth_db, DIP_MIN_DB, DIP_FULL_DB) * smoothstep(walls, -24.0, -10.0)
    # A murmur: voiced, only a little quieter overall than the sound before it, but dark where
    # that sound had its formants (the 1-4 kHz band drops by 6-12 dB and more): m, and the voiced
    # part of b. Judged against the sound before only: a nasal may end a phrase.
    mid = _fir(raw[:, _MID], start + first - back, m + back + ahead, co.taps["level"])
    mid_walls = _fading_max(mid, back, m, range(-1, -back - 1, -1), lambda j, x: x + fade_db * j)
    voiced = raw[start + first : start + first + m, _VO]
    murmur = (
        voiced
        * smoothstep(mid_walls - mid[back : back + m], MURMUR_MIN_DB, MURMUR_FULL_DB)
        * smoothstep(before - level[back : back + m], MURMUR_MIN_DIP_DB, MURMUR_FULL_DIP_DB)
        * smoothstep(mid_walls, -30.0, -16.0)
    )
    if ahead:
        # A phrase may start with a nasal (my, no): then the murmur shows against the brighter
        # vowel after it, and by its own darkness (the 1-4 kHz band 16-22 dB and more below the
        # whole: a vowel's is 5-12 dB below, 15-23 in its first frame or two).
        mid_after = _fading_max(mid, back, m, range(1, ahead + 1), lambda j, x: x - fade_db * j)
        here = mid[back : back + m]
        darkness = level[back : back + m] - here
        onset_murmur = (
            voiced
            * smoothstep(darkness, MURMUR_DARK_MIN_DB, MURMUR_DARK_FULL_DB)
            * smoothstep(mid_after - here, MURMUR_MIN_DB, MURMUR_FULL_DB)
        )
        murmur = np.maximum(murmur, onset_murmur)
    dip = np.maximum(dip, murmur)
    burst_ahead = min(BURST_AHEAD_FRAMES, co.lookahead_frames - last)
    hf = raw[:, _HF]
    o = start + first  # row of dip[0]
    bright = _fading_max(hf, o, m, range(0, burst_ahead + 1), lambda j, x: x)  # dip and release
    dip *= 1.0 - smoothstep(bright, ALVEOLAR_HF_LO, ALVEOLAR_HF_HI)
    # Weak frication in the dip is an f or v (lip to teeth), not a closure: no press there.
    frication = raw[o : o + m, _LAB]
    dip *= 1.0 - smoothstep(frication, LABIODENTAL_NOT_PRESS_LO, LABIODENTAL_NOT_PRESS_HI)
    # Two-sided dips are closures: full strength. One-sided ones (live) may be a phrase's end,
    # where "close" takes over: they press less.
    gain = PRESS_GAIN if ahead else ONE_SIDED_PRESS_GAIN
    return np.minimum(1.0, gain * _fir(dip, -first, n, co.taps["press"]))


def _with_onsets(
    x: np.ndarray,
    start: int,
    n: int,
    centred: tuple[np.ndarray, np.ndarray],
    ahead: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """The larger of a centred and an anticipating smoothing: early onsets, on-time offsets."""
    return np.maximum(_fir(x, start, n, centred), _fir(x, start, n, ahead))


def shape_tracks(raw: np.ndarray, start: int, n: int, co: Coarticulation) -> np.ndarray:
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
    labiodental = _fir(raw[:, _LAB], start, n, taps["labiodental"])
    opening = _with_onsets(raw[:, _O], start, n, taps["open"], taps["open_onset"])
    # Lips that meet or touch the teeth take the jaw (almost) with them.
    tracks[:, TRACKS.index("open")] = opening * (1.0 - press) * (1.0 - 0.6 * labiodental)
    tracks[:, TRACKS.index("round")] = _with_onsets(
        raw[:, _RO], start, n, taps["lips"], taps["lips_onset"]
    )
    tracks[:, TRACKS.index("spread")] = _with_onsets(
        raw[:, _SP], start, n, taps["lips"], taps["lips_onset"]
    ) * (1.0 - press)
    tracks[:, TRACKS.index("fricative")] = _fir(raw[:, _FR], start, n, taps["fricative"])
    tracks[:, TRACKS.index("labiodental")] = labiodental * (1.0 - press)
    tracks[:, TRACKS.index("emphasis")] = _fir(raw[:, _EM], start, n, taps["emphasis"])
    # Speech nearby, held over the gaps between words, so the pose's speech_yields do not pump.
    tracks[:, TRACKS.index("speaking")] = near
    return np.clip(tracks, 0.0, 1.0)
