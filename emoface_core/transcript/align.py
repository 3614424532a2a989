"""Map a transcript's phoneme times onto a recording: MFCCs of both, aligned by DTW.

aeneas's principle at phoneme level: the text is spoken by a synthesiser whose phoneme times are
known (the ``Template``), both signals become MFCC frames (10 ms hop, cepstral mean and variance
normalised per signal, so that the voices' colours cancel), dynamic time warping finds the
cheapest monotonic match, and each template phoneme's start and end move along that path onto
the recording.

How well the match fits says whether the recording says the text at all: along the path each
recording frame has a local distance, judged against the distance of the best alignment to the
template played *backwards* (the same voice and sounds, in no order: a text the recording does
not say). Speech matching its text scores 0.2 (the same voice) to 0.78-0.91 (festival against
espeak-ng, clean and with noise); another text scores 0.93-1.05. Stretches
that score high fall back to the audio-only lips (``confidence``); silence and steady noise are
not aligned at all.

The DTW runs over anti-diagonals (every cell of one diagonal at once, numpy), inside a band
around the two signals' proportional diagonal; long lines use a coarser hop so the matrix stays
under ``MAX_CELLS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from emoface_core.audio import SAMPLE_RATE
from emoface_core.transcript.phonemes import Phoneme, Template

HOP_SAMPLES = 160  # 10 ms
WINDOW_SAMPLES = 400  # 25 ms
N_FFT = 512
N_MELS = 26
N_CEPSTRA = 13  # c1..c12 are kept (c0, the level, is loudness, not identity)
# The path follows c1..c8 only: the higher cepstra carry the voice's fine spectral detail, which
# differs between synthesiser and actor (c1-c8 aligned festival's speech to espeak-ng's better:
# closures 0.98 vs 0.96, f/v 0.88 vs 0.84). The confidence uses all twelve, which tell another
# text from this one better (mismatches 0.99+ against 0.93).
PATH_CEPSTRA = 8
MAX_CELLS = 12_000_000  # cost-matrix cells (x 9 bytes); coarser hops beyond this
DIAGONAL_WEIGHT = 1.0  # "symmetric1" (2.0, "symmetric2", aligned festival worse here)
MAX_HOP_FACTOR = 4  # up to 40 ms; longer lines than that allows are not aligned
BAND_SHARE = 0.2  # the DTW band: 20 % of the longer signal around the diagonal (and >= 0.5 s)
SPEECH_FLOOR_DB = 45.0  # frames within this of the loudest frame count as speech (trimming)
NOISE_MARGIN_DB = 12.0  # ... and this far above the background
# Kept around that (weak onsets and tails; 0.05 s cut a final "m" or "z": closures 0.95 on
# espeak-ng English, 0.2 s kept them: 1.00, and festival's 0.96 -> 0.99).
SPEECH_PAD_S = 0.2
MIN_SPEECH_RANGE_DB = 10.0  # a recording whose loudest frame is not this far above its quiet
# tenth holds no speech (silence, steady noise): nothing to align
# The confidence of a frame: ratio of its path distance to the backwards alignment's mean.
MATCH_RATIO, MISMATCH_RATIO = 0.92, 1.04  # full confidence below, none above
CONFIDENCE_WINDOW_S = 0.4  # the ratio is averaged over this much recording
FALLBACK_CONFIDENCE = 0.3  # below this a phoneme does not act: the audio-only lips stay
# A whole line this far off its text is not trusted anywhere (another text, another language).
LINE_MATCH_RATIO, LINE_MISMATCH_RATIO = 0.90, 0.94


@dataclass(frozen=True)
class Alignment:
    """A template's phonemes on the recording's timeline, with how much to trust each.

    Attributes:
        phonemes: the template's phonemes with recording times.
        confidence: per phoneme, 0 (the recording does not say this) .. 1.
        ratio: the whole line's path distance over the band's mean distance (lower: better).
        text: the transcript; language: its language code.
    """

    phonemes: tuple[Phoneme, ...]
    confidence: tuple[float, ...]
    ratio: float
    text: str
    language: str

    def fallback_spans_s(self, threshold: float = FALLBACK_CONFIDENCE) -> list[tuple[float, float]]:
        """Time spans where confidence is below ``threshold`` (merged, in seconds)."""
        spans: list[tuple[float, float]] = []
        for p, c in zip(self.phonemes, self.confidence):
            if c >= threshold:
                continue
            if spans and p.start_s - spans[-1][1] < 0.05:
                spans[-1] = (spans[-1][0], max(spans[-1][1], p.end_s))
            else:
                spans.append((p.start_s, p.end_s))
        return spans

    def summary(self) -> dict[str, object]:
        """What a bake records of the alignment (metadata and summaries)."""
        spans = self.fallback_spans_s()
        aligned = sum(c >= FALLBACK_CONFIDENCE for c in self.confidence)
        return {
            "text": self.text,
            "language": self.language,
            "phonemes": len(self.phonemes),
            "aligned_share": round(aligned / max(1, len(self.phonemes)), 3),
            "match_ratio": round(self.ratio, 3),
            "fallback_s": [[round(a, 3), round(b, 3)] for a, b in spans],
        }


def _mel_filters() -> np.ndarray:
    def mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(np.array(80.0)), mel(np.array(7600.0)), N_MELS + 2))
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / (mid - lo)
    down = (hi - freqs[None, :]) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down))  # [N_MELS, 257]


_MEL = _mel_filters()
_DCT = np.cos(
    np.pi / N_MELS * (np.arange(N_MELS)[None, :] + 0.5) * np.arange(1, N_CEPSTRA)[:, None]
)  # [12, N_MELS]: c1..c12


def mfcc(samples: np.ndarray, hop: int = HOP_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """MFCCs ``[n, 12]`` (c1..c12) and frame levels in dB ``[n]`` of 16 kHz audio.

    The levels are of the plain signal (pre-emphasis would lift a noise floor towards speech).
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size < WINDOW_SAMPLES:
        x = np.pad(x, (0, WINDOW_SAMPLES - x.size))
    n = 1 + (x.size - WINDOW_SAMPLES) // hop
    index = np.arange(WINDOW_SAMPLES)[None, :] + hop * np.arange(n)[:, None]
    plain = x[index]
    level_db = 10.0 * np.log10(np.mean(plain**2, axis=1) + 1e-12)
    emphasised = np.append(x[0], x[1:] - 0.97 * x[:-1])[index]
    power = np.abs(np.fft.rfft(emphasised * np.hamming(WINDOW_SAMPLES), N_FFT)) ** 2
    log_mel = np.log(power @ _MEL.T + 1e-10)
    return log_mel @ _DCT.T, level_db


def _speech_range(level_db: np.ndarray, pad: int) -> tuple[int, int]:
    """First and last speech frame (exclusive), widened by ``pad`` frames either side.

    Speech: within ``SPEECH_FLOOR_DB`` of the loudest frame and ``NOISE_MARGIN_DB`` above the
    quietest tenth (a noisy line's floor). The padding keeps weak onsets and tails (a final
    nasal or fricative) in the alignment.
    """
    floor = max(level_db.max() - SPEECH_FLOOR_DB, np.percentile(level_db, 10) + NOISE_MARGIN_DB)
    loud = np.flatnonzero(level_db > floor)
    if loud.size == 0:
        return 0, level_db.size
    return max(0, int(loud[0]) - pad), min(level_db.size, int(loud[-1]) + pad + 1)


def _normalise(c: np.ndarray) -> np.ndarray:
    return (c - c.mean(axis=0)) / (c.std(axis=0) + 1e-6)


def dtw_path(cost: np.ndarray, band: int) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest monotonic path through ``cost`` ``[N, M]`` from (0, 0) to (N-1, M-1).

    Steps: diagonal, down, right, each adding the cell's cost; cells more than ``band`` from
    the proportional diagonal are out of bounds. Returns the path's row and column indices.
    """
    n, m = cost.shape
    rows = np.arange(n)
    centre = rows * (m - 1) / max(1, n - 1)
    inside = np.abs(np.arange(m)[None, :] - centre[:, None]) <= band
    c = np.where(inside, cost, np.inf).astype(np.float32)
    total = np.full((n + 1, m + 1), np.inf, dtype=np.float32)
    total[0, 0] = 0.0
    step = np.zeros((n, m), dtype=np.int8)  # 0 diagonal, 1 from above, 2 from the left
    slope = (m - 1) / max(1, n - 1)
    for d in range(2, n + m + 1):  # anti-diagonal i + j = d in the padded matrix
        # Only the band's cells: |(j - 1) - (i - 1) * slope| <= band with j = d - i.
        lo = max(1, d - m, math.floor((d - 2 + slope - band) / (1 + slope)))
        hi = min(n, d - 1, math.ceil((d - 2 + slope + band) / (1 + slope)))
        if hi < lo:
            continue
        i = np.arange(lo, hi + 1)
        j = d - i
        here = c[i - 1, j - 1]
        options = np.stack(
            [
                total[i - 1, j - 1] + DIAGONAL_WEIGHT * here,
                total[i - 1, j] + here,
                total[i, j - 1] + here,
            ]
        )
        best = np.argmin(options, axis=0)
        total[i, j] = options[best, np.arange(i.size)]
        step[i - 1, j - 1] = best
    if not np.isfinite(total[n, m]):
        raise ValueError("no path inside the band")
    path_i, path_j = [n - 1], [m - 1]
    i, j = n - 1, m - 1
    while i > 0 or j > 0:
        s = step[i, j] if i > 0 and j > 0 else (1 if i > 0 else 2)
        if s == 0:
            i, j = i - 1, j - 1
        elif s == 1:
            i -= 1
        else:
            j -= 1
        path_i.append(i)
        path_j.append(j)
    return np.array(path_i[::-1]), np.array(path_j[::-1])


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS difference per dimension between every row of ``a`` and every row of ``b``."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(0.0, squared) / a.shape[1])


def _path_costs(rec: np.ndarray, tpl: np.ndarray, hop: int) -> tuple[np.ndarray, ...]:
    """DTW of normalised MFCCs: the path's rows and columns and each recording frame's cost."""
    a, b = _normalise(rec), _normalise(tpl)
    cost = _distances(a[:, :PATH_CEPSTRA], b[:, :PATH_CEPSTRA])
    band = max(int(0.5 * SAMPLE_RATE / hop), int(BAND_SHARE * max(cost.shape)))
    band = max(band, abs(cost.shape[0] - cost.shape[1]))
    path_i, path_j = dtw_path(cost, band)
    on_path = np.sqrt(((a[path_i] - b[path_j]) ** 2).mean(axis=1))  # all cepstra
    local = np.bincount(path_i, weights=on_path, minlength=cost.shape[0]) / (
        np.maximum(np.bincount(path_i, minlength=cost.shape[0]), 1)
    )
    return path_i, path_j, local


def align(recording: np.ndarray, template: Template) -> Alignment:
    """The template's phonemes on the recording's timeline (16 kHz samples), with confidence.

    Confidence compares the path's cost with the cost of aligning the recording to the
    template played backwards: the same voice and sounds in no order, a "garbage" text. A
    recording that says the text aligns far better forwards; one that does not, no better.

    Raises:
        ValueError: the line is too long to align (``MAX_CELLS`` at the coarsest hop) or has
            no phonemes; callers fall back to the audio-only lips and say why.
    """
    if not template.phonemes:
        raise ValueError("the transcript has no phonemes")
    longest = max(len(recording), len(template.samples)) / HOP_SAMPLES
    factor = 1
    while (longest / factor) ** 2 > MAX_CELLS and factor < MAX_HOP_FACTOR:
        factor *= 2
    if (longest / factor) ** 2 > MAX_CELLS:
        raise ValueError(
            f"the line is too long to align with its text (over "
            f"{np.sqrt(MAX_CELLS) * HOP_SAMPLES * MAX_HOP_FACTOR / SAMPLE_RATE:.0f} s)"
        )
    hop = HOP_SAMPLES * factor
    rec, rec_db = mfcc(recording, hop)
    tpl, tpl_db = mfcc(template.samples, hop)
    pad = int(round(SPEECH_PAD_S * SAMPLE_RATE / hop))
    r0, r1 = _speech_range(rec_db, pad)
    t0, t1 = _speech_range(tpl_db, pad)
    if rec_db.max() - np.percentile(rec_db, 10) < MIN_SPEECH_RANGE_DB or r1 - r0 < 10:
        raise ValueError("the audio has no speech to align the text with (silence or steady noise)")
    path_i, path_j, local = _path_costs(rec[r0:r1], tpl[t0:t1], hop)
    _, _, garbage = _path_costs(rec[r0:r1], tpl[t0:t1][::-1], hop)
    unrelated = max(float(garbage.mean()), 1e-6)
    ratio = float(local.mean()) / unrelated

    # Recording frame of each template frame (mean over the path), then phoneme times.
    n_tpl = t1 - t0
    counts = np.bincount(path_j, minlength=n_tpl)
    rec_of_tpl = np.bincount(path_j, weights=path_i, minlength=n_tpl) / np.maximum(counts, 1)
    frame_s = hop / SAMPLE_RATE
    centre = (WINDOW_SAMPLES / 2) / SAMPLE_RATE

    def to_recording(t: float) -> float:
        j = (t - centre) / frame_s - t0
        i = np.interp(j, np.arange(rec_of_tpl.size), rec_of_tpl)
        return float((i + r0) * frame_s + centre)

    width = max(1, int(CONFIDENCE_WINDOW_S / frame_s))
    smooth = np.convolve(local, np.ones(width) / width, mode="same") / unrelated
    line = float(
        np.clip((LINE_MISMATCH_RATIO - ratio) / (LINE_MISMATCH_RATIO - LINE_MATCH_RATIO), 0, 1)
    )
    phonemes, confidence = [], []
    for p in template.phonemes:
        start, end = to_recording(p.start_s), to_recording(p.end_s)
        phonemes.append(Phoneme(p.symbol, start, max(end, start)))
        lo = int(np.clip(start / frame_s - r0, 0, smooth.size - 1))
        hi = int(np.clip(end / frame_s - r0, lo + 1, smooth.size))
        r = float(smooth[lo:hi].mean())
        local_trust = np.clip((MISMATCH_RATIO - r) / (MISMATCH_RATIO - MATCH_RATIO), 0.0, 1.0)
        confidence.append(float(local_trust) * line)
    return Alignment(tuple(phonemes), tuple(confidence), ratio, template.text, template.language)
