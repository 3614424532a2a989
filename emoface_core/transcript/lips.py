"""The transcript's lip layer: aligned phonemes -> jaw and lip actions on top of any engine.

JALI's split of the face: the **jaw** follows the vowels' openness, scaled by the recording's
loudness (a shouted "a" opens wider than a whispered one); the **lips** follow the viseme of each
phoneme: bilabials (p, b, m) close them fully, labiodentals (f, v) bring the lower lip to the
upper teeth with the jaw nearly closed, rounded vowels (u, o, and the front rounded y, ø, œ that
audio alone reads as spread) round them, spread vowels spread them. Each action is a trapezoid
over its phoneme: it starts ahead of the sound (``LEAD_FRAMES``: the jaw and closures 1-2
frames, rounding 4) and relaxes after it (``RELAX_FRAMES``), so neighbours coarticulate.

Every action is weighted by the alignment's confidence in its phoneme: where the recording does
not match the text, the engine's own frames stay as they were (the audio-only fallback).

Two modes: ``full`` (the procedural engine: jaw, closures, labiodentals, rounding, spreading,
and the audio's false closures on other phonemes opened) and ``lips`` (the network: only
closures and labiodentals are enforced; the network keeps the rest).
"""

from __future__ import annotations

import numpy as np

from emoface_core.audio import FPS, SAMPLE_RATE
from emoface_core.controllers import CONTROLLER_INDEX
from emoface_core.transcript.align import FALLBACK_CONFIDENCE, Alignment
from emoface_core.transcript.phonemes import Lips, base, lips_of, openness

LIP_LAYER_VERSION = "1"  # bump when the same alignment gives other frames (batch re-bakes)
LAYER_MODES = ("full", "lips")
# Frames an action starts before its phoneme and relaxes after it.
LEAD_FRAMES = {"jaw": 3, "closed": 1, "labiodental": 2, "rounded": 4, "spread": 3}
RELAX_FRAMES = {"jaw": 2, "closed": 2, "labiodental": 2, "rounded": 3, "spread": 3}
JAW_FULL = 0.55  # jaw-translateY of a loud, open "a"
TRUST_FROM, TRUST_FULL = FALLBACK_CONFIDENCE, 0.7
MIN_CONTACT_S = 0.075
JAW_WEIGHT = 0.75  # share of the jaw the transcript takes over from the audio (full mode)


def _both(name: str) -> list[int]:
    return [CONTROLLER_INDEX[name.replace("_LR_", f"_{side}_")] for side in "LR"]


_JAW = [CONTROLLER_INDEX["CTRL_C_jaw-translateY"]]
_TOGETHER = _both("CTRL_LR_mouth_lipsTogetherU-translateY") + _both(
    "CTRL_LR_mouth_lipsTogetherD-translateY"
)
_PRESS = _both("CTRL_LR_mouth_pressU-translateY") + _both("CTRL_LR_mouth_pressD-translateY")
_DEPRESS = _both("CTRL_LR_mouth_lowerLipDepress-translateY")
_RAISE = _both("CTRL_LR_mouth_upperLipRaise-translateY")
_TEETH = _both("CTRL_LR_mouth_lipsTowardsTeethD-translateY")
_BITE = _both("CTRL_LR_mouth_lipBiteD-translateY")
_PURSE = _both("CTRL_LR_mouth_purseU-translateY") + _both("CTRL_LR_mouth_purseD-translateY")
_FUNNEL = _both("CTRL_LR_mouth_funnelU-translateY") + _both("CTRL_LR_mouth_funnelD-translateY")
_TOWARDS = _both("CTRL_LR_mouth_towardsU-translateY") + _both("CTRL_LR_mouth_towardsD-translateY")
_STRETCH = _both("CTRL_LR_mouth_stretch-translateY")
_PULL = _both("CTRL_LR_mouth_cornerPull-translateY")


def _trapezoid(n: int, start_s: float, end_s: float, lead: int, relax: int) -> np.ndarray:
    """1 over the phoneme's frames, ramping up ``lead`` frames before and down ``relax`` after."""
    frames = np.arange(n)
    a = start_s * FPS - 0.5  # frame i's centre is (i + 0.5) / FPS
    b = max(end_s * FPS - 0.5, a + 1.0)  # at least one frame fully on
    up = np.clip((frames - (a - lead)) / max(lead, 1), 0.0, 1.0)
    down = np.clip(((b + relax) - frames) / max(relax, 1), 0.0, 1.0)
    return np.minimum(up, down)


def _loudness(samples: np.ndarray, n: int) -> np.ndarray:
    """Per-frame loudness 0..1: 0 at 30 dB below the line's loud frames, 1 at them."""
    hop = SAMPLE_RATE / FPS
    index = (np.arange(n)[:, None] * hop + np.arange(int(hop))[None, :]).astype(int)
    x = np.concatenate([np.asarray(samples, dtype=np.float64), np.zeros(int(hop) + 1)])
    db = 10.0 * np.log10(np.mean(x[np.minimum(index, x.size - 1)] ** 2, axis=1) + 1e-12)
    top = np.percentile(db, 90) if n else 0.0
    t = np.clip((db - (top - 30.0)) / 30.0, 0.0, 1.0)
    return np.convolve(t, np.hanning(7) / np.hanning(7).sum(), mode="same")


def _trust(confidence: float) -> float:
    """How strongly a phoneme acts: fully from a middling confidence up, none below TRUST_FROM.

    A closure half made is no closure, so trust is a step (smoothed), not a proportion.
    """
    t = min(max((confidence - TRUST_FROM) / (TRUST_FULL - TRUST_FROM), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def action_tracks(alignment: Alignment, n: int, samples: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame actions ``[n]`` (0..1, confidence-weighted) and the jaw target of a line.

    Keys: closed, labiodental, rounded, spread (lip actions), jaw (target opening 0..1),
    trust (how much the transcript speaks for each frame: confidence where a phoneme is).
    """
    tracks = {k: np.zeros(n) for k in ("closed", "labiodental", "rounded", "spread", "trust")}
    open_target = np.zeros(n)
    open_weight = np.zeros(n)
    for p, confidence in zip(alignment.phonemes, alignment.confidence):
        c = _trust(confidence)
        if not base(p.symbol) or c <= 0.0:
            continue  # pauses say nothing about the lips
        lips = lips_of(p.symbol)
        if lips is not Lips.FREE:
            key = lips.value
            start_s, end_s = p.start_s, p.end_s
            if lips in (Lips.CLOSED, Lips.LABIODENTAL):
                # Lips hold a contact at least MIN_CONTACT_S (real closures last 60-120 ms), which
                # also absorbs the alignment's error of a frame or two either way.
                grow = max(0.0, MIN_CONTACT_S - (end_s - start_s)) / 2.0
                start_s, end_s = start_s - grow, end_s + grow
            shape = _trapezoid(n, start_s, end_s, LEAD_FRAMES[key], RELAX_FRAMES[key])
            np.maximum(tracks[key], c * shape, out=tracks[key])
        jaw = _trapezoid(n, p.start_s, p.end_s, LEAD_FRAMES["jaw"], RELAX_FRAMES["jaw"])
        open_target += jaw * openness(p.symbol) * c
        open_weight += jaw * c
        np.maximum(
            tracks["trust"], c * _trapezoid(n, p.start_s, p.end_s, 0, 0), out=tracks["trust"]
        )
    opening = open_target / np.maximum(open_weight, 1e-6)
    tracks["jaw"] = opening * (0.35 + 0.65 * _loudness(samples, n))
    return tracks


def _raise_to(out: np.ndarray, channels: list[int], target: np.ndarray) -> None:
    """Channels at least ``target`` where an action asks for it; untouched elsewhere."""
    acting = target > 0.0
    out[:, channels] = np.where(acting, np.maximum(out[:, channels], target), out[:, channels])


def apply_lip_layer(
    values: np.ndarray, alignment: Alignment, samples: np.ndarray, mode: str = "full"
) -> np.ndarray:
    """The engine's frames ``[n, 174]`` with the transcript's jaw and lip actions applied.

    Args:
        values: the engine's (post-processed) frames.
        alignment: the transcript on the recording's timeline.
        samples: the recording, 16 kHz (its loudness scales the jaw).
        mode: ``full`` (jaw and all lip actions) or ``lips`` (closures and labiodentals only).
    """
    if mode not in LAYER_MODES:
        raise ValueError(f"unknown lip layer mode {mode!r}; use {', '.join(LAYER_MODES)}")
    n = values.shape[0]
    if n == 0:
        return values
    t = action_tracks(alignment, n, samples)
    out = values.astype(np.float64, copy=True)
    closed, lab = t["closed"][:, None], t["labiodental"][:, None]
    if mode == "full":
        w = (JAW_WEIGHT * t["trust"])[:, None]
        out[:, _JAW] = (1.0 - w) * out[:, _JAW] + w * JAW_FULL * t["jaw"][:, None]
        # Lips the audio closed on a phoneme that keeps them apart (t, d, n, l, vowels) open.
        apart = (t["trust"] * (1.0 - t["closed"]) * (1.0 - t["labiodental"]))[:, None]
        out[:, _TOGETHER] *= 1.0 - apart
        out[:, _PRESS] *= 1.0 - apart
        r, s = t["rounded"][:, None], t["spread"][:, None]
        _raise_to(out, _PURSE, 0.45 * r)
        _raise_to(out, _FUNNEL, 0.35 * r)
        _raise_to(out, _TOWARDS, 0.3 * r)
        out[:, _STRETCH] = (1.0 - 0.7 * r) * out[:, _STRETCH]
        out[:, _PULL] = (1.0 - 0.7 * r) * out[:, _PULL]
        _raise_to(out, _STRETCH, 0.3 * s * (1.0 - r))
    # Closures: lips together, the jaw and the lip raisers give way.
    for group in (_JAW, _DEPRESS, _RAISE):
        out[:, group] *= 1.0 - closed
    _raise_to(out, _TOGETHER, 0.9 * closed)
    _raise_to(out, _PRESS, 0.25 * closed)
    # Labiodentals: lower lip up to the upper teeth, jaw nearly closed.
    out[:, _JAW] = (1.0 - lab) * out[:, _JAW] + lab * np.minimum(out[:, _JAW], 0.05)
    out[:, _DEPRESS] *= 1.0 - lab
    _raise_to(out, _TEETH, 0.6 * lab)
    _raise_to(out, _BITE, 0.15 * lab)
    _raise_to(out, _RAISE, 0.15 * lab)
    return out.astype(values.dtype)
