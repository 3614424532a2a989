"""Phonemes with times, and what each one asks of the jaw and the lips (visemes).

The symbols are IPA as espeak-ng writes them (``ˈa``, ``aɪ``, ``tʃ``, ``yː``). A phoneme's class
decides the lip action (JALI's split: the lips from the viseme, the jaw from the vowel's
openness): bilabials close the lips, labiodentals bring the lower lip to the upper teeth, rounded
vowels and w round them (front rounded y/ø/œ too: that is the point of knowing the text), spread
vowels spread them. Everything else leaves the lips to the audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

_MARKS = "ˈˌ'ˑːʰʲʷ̃-_ "  # stress, length, aspiration, palatalisation, nasal vowel marks


@dataclass(frozen=True)
class Phoneme:
    """One phoneme: its IPA symbol and time span in seconds."""

    symbol: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Template:
    """Synthesised speech of a known text: 16 kHz mono samples and its phonemes' times.

    Attributes:
        samples: float32 ``[S]`` at 16 kHz.
        phonemes: the phonemes in order, times on ``samples``' timeline.
        text: what was spoken.
        language: the synthesiser's voice or language code.
    """

    samples: np.ndarray
    phonemes: tuple[Phoneme, ...]
    text: str
    language: str


class Lips(Enum):
    """What a phoneme asks of the lips."""

    CLOSED = "closed"  # p, b, m
    LABIODENTAL = "labiodental"  # f, v
    ROUNDED = "rounded"  # u, o, y, ø, w
    SPREAD = "spread"  # i, e
    FREE = "free"  # the audio decides


BILABIALS = frozenset("pbmɓʙ")
LABIODENTALS = frozenset("fvɱʋ")
ROUNDED_VOWELS = frozenset("uʊoɔyʏøœɒɵʉɞw")
SPREAD_VOWELS = frozenset("iɪeɛɨæ")
OPEN_VOWELS = frozenset("aɑɐæɒ")
MID_VOWELS = frozenset("eɛəɜoɔøœʌɘɵɤɞ")
CLOSE_VOWELS = frozenset("iɪuʊyʏɨʉɯ")
VOWELS = OPEN_VOWELS | MID_VOWELS | CLOSE_VOWELS
SIBILANTS = frozenset("szʃʒɕʑʂʐ")
TONGUE_CONSONANT_OPENNESS = 0.25


def base(symbol: str) -> str:
    """The symbol without stress, length or secondary marks (``ˈaː`` -> ``a``)."""
    return "".join(c for c in symbol if c not in _MARKS)


def lips_of(symbol: str) -> Lips:
    """The lip action of a phoneme (its first segment for diphthongs and affricates)."""
    b = base(symbol)
    if not b:
        return Lips.FREE
    first = b[0]
    if first in BILABIALS:
        return Lips.CLOSED
    if first in LABIODENTALS:
        return Lips.LABIODENTAL
    if first in ROUNDED_VOWELS or b in ("oʊ", "əʊ"):
        return Lips.ROUNDED
    if first in SPREAD_VOWELS and b not in ("aɪ", "eə"):
        return Lips.SPREAD
    return Lips.FREE


def openness(symbol: str) -> float:
    """Jaw opening a phoneme asks for, 0..1: open vowels 1, mid 0.6, close 0.3; consonants less.

    A diphthong counts by its first vowel (the jaw opens for ``a`` of ``aɪ``, then closes).
    Tongue consonants (t, d, n, l, r, k, g...) leave the jaw a little open (0.25: the tongue,
    not the jaw, makes them); sibilants want the teeth close (0.1); lip consonants 0.15 (the
    lip actions close the rest).
    """
    b = base(symbol)
    if not b:
        return 0.0
    first = b[0]
    if first in OPEN_VOWELS:
        return 1.0
    if first in MID_VOWELS:
        return 0.6
    if first in CLOSE_VOWELS:
        return 0.3
    if first in SIBILANTS:
        return 0.1
    if first in BILABIALS or first in LABIODENTALS:
        return 0.15
    return TONGUE_CONSONANT_OPENNESS


def is_vowel(symbol: str) -> bool:
    """Whether the phoneme is a vowel (or starts with one)."""
    b = base(symbol)
    return bool(b) and b[0] in VOWELS
