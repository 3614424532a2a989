"""Lip-sync metrics on speech with exact phoneme times (espeak-ng's phoneme events).

A corpus of sentences in several languages, voices, rates and pitches, some with noise, is
synthesised by espeak-ng (``emoface_core.espeak``: the phoneme times come with the audio), then
animated. What any lip sync must meet, measured on the frames:

* **bilabial closure recall**: share of p/b/m whose lips close (the drawn lip gap, from
  ``viz.preview.face_shape``, below a quarter of the median gap on open vowels) somewhere in the
  phoneme's span; **false closures**: share of open vowels closed in their middle, and of
  tongue consonants (t, d, n, l, k, g, r: lips apart) in theirs (gap under a tenth of the open
  vowels' median);
* **f/v shape**: share of labiodentals with the lower lip towards the upper teeth
  (``lipsTowardsTeethD`` or ``lipBiteD`` above 0.15) and the jaw nearly closed;
* **jaw separation**: mean jaw opening on open vowels minus close vowels;
* **rounding**: purse + funnel on rounded vowels minus spread vowels; front rounded (y, ø)
  against i/e separately;
* **lag**: frames by which the jaw follows an "expected openness" track (vowel height, 0 for
  consonants) at its best correlation (positive: the jaw is late);
* **silence**: lip gap and motion where nobody speaks; **smoothness**: mean |second difference|
  of the jaw.

Rows: a baseline (jaw = smoothed loudness, nothing else), the audio-only engine, transcript
mode (the sentence's text, aligned), and recognised phones (``--phones``, when pocketsphinx is
installed). Usage:
``python benchmarks/bench_lipsync.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import describe  # noqa: E402

from emoface_core.audio import FPS, SAMPLE_RATE, Audio  # noqa: E402
from emoface_core.controllers import CONTROLLER_INDEX  # noqa: E402

SENTENCES = {
    "en": ["Bob made a very big map of five rooms.", "My mum brought fresh fruit for Philip."],
    "es": ["Pablo bebe mucho vino en Madrid.", "Mi mamá viene a verme a las nueve."],
    "de": ["Über München fährt ein blauer Bus.", "Mein Vater möchte Bier und Brot."],
    "fr": ["Papa va boire du vin au bord du lac.", "Ma mère porte une belle robe verte."],
    "cmn": ["爸爸和妈妈飞回北方。", "我们明天不去买菜。"],
}
VARIANTS = [  # (rate wpm, pitch, noise SNR dB or None)
    (175, 50, None),
    (140, 30, None),
    (210, 70, None),
    (175, 50, 20.0),
]
BILABIAL = ("p", "b", "m", "ɓ")
LABIODENTAL = ("f", "v", "ɱ")
OPEN_VOWELS = ("a", "ɑ", "æ", "ɐ", "ɒ", "aɪ", "aʊ", "ɔ", "aː", "ɑː", "ɔː")
CLOSE_VOWELS = ("i", "iː", "u", "uː", "y", "yː", "ɪ", "ʊ", "ʏ")
ROUNDED = ("u", "uː", "o", "oː", "ʊ", "ɔ", "ɔː", "y", "yː", "ø", "øː", "œ", "ʏ", "oʊ", "əʊ")
SPREAD = ("i", "iː", "e", "eː", "ɪ", "ɛ", "eɪ")
FRONT_ROUNDED = ("y", "yː", "ø", "øː", "œ", "ʏ")
FRONT_SPREAD = ("i", "iː", "e", "eː")
# Lips apart, jaw a little open; sibilants are left out (teeth close: a small lip gap is right).
TONGUE_CONSONANTS = ("t", "d", "n", "l", "k", "g", "ɡ", "r", "ɾ", "ɹ", "ʁ")


def _is(symbol: str, group: tuple[str, ...]) -> bool:
    base = "".join(c for c in symbol if c not in "ˈˌʰ0123456789")  # stress, aspiration, tones
    return base in group or (len(base) > 1 and base[0] in group and base[1] in "ːʲ")


def openness(symbol: str) -> float:
    """Expected jaw opening of a phoneme: vowel height; 0 for consonants."""
    if _is(symbol, OPEN_VOWELS):
        return 1.0
    if _is(symbol, CLOSE_VOWELS):
        return 0.3
    if symbol and symbol[0] in "eɛəɜoøœʌɘɵɤ":
        return 0.6
    return 0.0


@dataclass
class Clip:
    samples: np.ndarray
    phonemes: tuple
    language: str
    text: str
    corpus: str = "espeak"


# Festival's English phone set (radio/mrpa) in the IPA the metrics use.
FESTIVAL_PHONES = {
    "aa": "ɑː", "ae": "æ", "ah": "ʌ", "ao": "ɔː", "aw": "aʊ", "ax": "ə", "ay": "aɪ", "eh": "ɛ",
    "er": "ɜː", "ey": "eɪ", "ih": "ɪ", "iy": "iː", "ow": "oʊ", "oy": "ɔɪ", "uh": "ʊ", "uw": "uː",
    "r": "ɹ", "sh": "ʃ", "y": "j", "hh": "h", "dh": "ð", "th": "θ", "ng": "ŋ", "ch": "tʃ",
    "jh": "dʒ", "zh": "ʒ", "pau": "_",
}  # fmt: skip
FESTIVAL_SENTENCES = SENTENCES["en"] + [
    "Please move the five blue boxes.",
    "We often buy fish from a small van.",
]


def _add_noise(x: np.ndarray, speech: np.ndarray, snr: float | None, rng) -> np.ndarray:
    if snr is None:
        return x
    noise = rng.standard_normal(x.size).astype(np.float32)
    return x + noise * np.sqrt(np.mean(speech**2) / 10 ** (snr / 10))


def festival_corpus(quick: bool) -> list[Clip]:
    """English from festival (a second synthesiser): its segment times are the truth."""
    import shutil
    import subprocess
    import tempfile

    from emoface_core.audio import load_audio
    from emoface_core.transcript.phonemes import Phoneme

    if shutil.which("festival") is None:
        print("festival not found (apt-get install festival): its rows are left out")
        return []
    rng = np.random.default_rng(1)
    clips = []
    stretches = (1.0, 1.3) if quick else (1.0, 1.3, 0.8)
    with tempfile.TemporaryDirectory() as tmp:
        for k, sentence in enumerate(FESTIVAL_SENTENCES[:2] if quick else FESTIVAL_SENTENCES):
            for stretch in stretches:
                for snr in (None,) if quick else (None, 20.0):
                    wav, segs = Path(tmp, f"{k}.wav"), Path(tmp, f"{k}.segs")
                    text = sentence.replace('"', "")
                    script = (
                        f"(begin (Parameter.set 'Duration_Stretch {stretch}) "
                        f'(set! u (utt.synth (Utterance Text "{text}"))) '
                        f'(utt.save.wave u "{wav}" \'riff) (utt.save.segs u "{segs}"))'
                    )
                    subprocess.run(["festival", "-b", script], check=True, timeout=60)
                    speech = load_audio(wav).samples
                    pad = np.zeros(int(0.4 * SAMPLE_RATE), np.float32)
                    x = _add_noise(np.concatenate([pad, speech, pad]), speech, snr, rng)
                    phonemes, start = [], 0.0
                    for line in segs.read_text().splitlines()[1:]:
                        end_s, _, name = line.split()
                        symbol = FESTIVAL_PHONES.get(name, name)
                        if symbol != "_":
                            phonemes.append(Phoneme(symbol, start + 0.4, float(end_s) + 0.4))
                        start = float(end_s)
                    clips.append(
                        Clip(x.astype(np.float32), tuple(phonemes), "en", sentence, "festival")
                    )
    return clips


def corpus(quick: bool) -> list[Clip]:
    from bridge.transcript.espeak import TEMPLATE_VOICES, synthesize

    rng = np.random.default_rng(0)
    clips = []
    for language, sentences in SENTENCES.items():
        for sentence in sentences[:1] if quick else sentences:
            for rate, pitch, snr in VARIANTS[:2] if quick else VARIANTS:
                voice = TEMPLATE_VOICES.get(language, language)
                speech = synthesize(sentence, voice, rate_wpm=rate, pitch=pitch)
                pad = np.zeros(int(0.4 * SAMPLE_RATE), np.float32)
                x = np.concatenate([pad, speech.samples, pad])
                x = _add_noise(x, speech.samples, snr, rng)
                shifted = tuple(
                    type(p)(p.symbol, p.start_s + 0.4, p.end_s + 0.4) for p in speech.phonemes
                )
                clips.append(Clip(x.astype(np.float32), shifted, language, sentence))
    return clips


def channels(values: np.ndarray, *names: str) -> np.ndarray:
    return np.mean([values[:, CONTROLLER_INDEX[n]] for n in names], axis=0)


def lip_gap(values: np.ndarray) -> np.ndarray:
    from emoface_core.viz.preview import face_shape

    return np.array([face_shape(v).mouth.gap for v in values])


def span(p, n: int) -> slice:
    a = int(np.floor(p.start_s * FPS))
    b = max(a + 1, int(np.ceil(p.end_s * FPS)))
    return slice(max(0, a), min(n, b))


def middle(p, n: int) -> int:
    return min(n - 1, int(0.5 * (p.start_s + p.end_s) * FPS))


def measure(values: np.ndarray, clip: Clip) -> dict[str, float]:
    n = len(values)
    gap = lip_gap(values)
    jaw = values[:, CONTROLLER_INDEX["CTRL_C_jaw-translateY"]]
    open_gaps = [gap[middle(p, n)] for p in clip.phonemes if _is(p.symbol, OPEN_VOWELS)]
    threshold = 0.25 * float(np.median(open_gaps)) if open_gaps else 0.01
    bil = [p for p in clip.phonemes if _is(p.symbol, BILABIAL)]
    closed = [gap[span(p, n)].min() < threshold for p in bil]
    opens = [p for p in clip.phonemes if _is(p.symbol, OPEN_VOWELS)]
    false = [gap[middle(p, n)] < threshold for p in opens]
    tongue = [
        gap[middle(p, n)] < threshold for p in clip.phonemes if _is(p.symbol, TONGUE_CONSONANTS)
    ]
    towards = channels(
        values,
        "CTRL_L_mouth_lipsTowardsTeethD-translateY",
        "CTRL_R_mouth_lipsTowardsTeethD-translateY",
        "CTRL_L_mouth_lipBiteD-translateY",
        "CTRL_R_mouth_lipBiteD-translateY",
    )
    lab = [p for p in clip.phonemes if _is(p.symbol, LABIODENTAL)]
    fv = [(towards[span(p, n)].max() > 0.15) and (jaw[span(p, n)].min() < 0.3) for p in lab]
    rounding = channels(
        values,
        "CTRL_L_mouth_purseU-translateY",
        "CTRL_R_mouth_purseU-translateY",
        "CTRL_L_mouth_funnelU-translateY",
        "CTRL_R_mouth_funnelU-translateY",
    )

    def mean_at(track: np.ndarray, group: tuple[str, ...]) -> float:
        picks = [track[middle(p, n)] for p in clip.phonemes if _is(p.symbol, group)]
        return float(np.mean(picks)) if picks else float("nan")

    expected = np.zeros(n)
    for p in clip.phonemes:
        expected[span(p, n)] = openness(p.symbol)
    lags = range(-8, 9)
    corr = [np.corrcoef(np.roll(expected, lag), jaw)[0, 1] for lag in lags]
    best_lag = list(lags)[int(np.nanargmax(corr))]
    speaking = np.zeros(n, bool)
    for p in clip.phonemes:
        s = span(p, n)
        speaking[max(0, s.start - 18) : s.stop + 18] = True
    quiet = ~speaking
    return {
        "closure": float(np.mean(closed)) if closed else float("nan"),
        "false": float(np.mean(false)) if false else float("nan"),
        "false_cons": float(np.mean(tongue)) if tongue else float("nan"),
        "fv": float(np.mean(fv)) if fv else float("nan"),
        "jaw_sep": mean_at(jaw, OPEN_VOWELS) - mean_at(jaw, CLOSE_VOWELS),
        "round_sep": mean_at(rounding, ROUNDED) - mean_at(rounding, SPREAD),
        "front_round": mean_at(rounding, FRONT_ROUNDED) - mean_at(rounding, FRONT_SPREAD),
        "lag": float(best_lag),
        "silence_gap": float(gap[quiet].mean()) if quiet.any() else float("nan"),
        "silence_motion": float(np.abs(np.diff(jaw[quiet])).mean()) if quiet.sum() > 1 else 0.0,
        "jerk": float(np.abs(np.diff(jaw, 2)).mean()),
    }


def baseline(samples: np.ndarray, n: int) -> np.ndarray:
    """Jaw = smoothed loudness; everything else at rest."""
    hop = SAMPLE_RATE / FPS
    rms = np.array(
        [
            np.sqrt(np.mean(samples[int(i * hop) : int((i + 1) * hop)] ** 2) + 1e-12)
            for i in range(n)
        ]
    )
    jaw = np.convolve(rms / (rms.max() + 1e-9), np.hanning(7) / np.hanning(7).sum(), mode="same")
    values = np.zeros((n, 174), np.float32)
    values[:, CONTROLLER_INDEX["CTRL_C_jaw-translateY"]] = 0.8 * jaw
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sentences and voices")
    args = parser.parse_args()
    from bridge.transcript.espeak import template
    from emoface_core.animate import animate_audio
    from emoface_core.emotion import EmotionTimeline
    from emoface_core.engines.procedural.engine import ProceduralEngine

    print(describe())
    try:
        import pocketsphinx  # noqa: F401

        from bridge.transcript.phones import recognise
    except ImportError:
        print("pocketsphinx not installed (emoface[phones]): the phones rows are left out")
        recognise = None  # type: ignore[assignment]
    engine = ProceduralEngine()
    clips = corpus(args.quick) + festival_corpus(args.quick)
    rows: dict[tuple[str, str], list[dict[str, float]]] = {}
    timeline = EmotionTimeline.constant("neutral")
    for clip in clips:
        audio = Audio(clip.samples)
        where = f"{clip.corpus}:{clip.language}"
        rows.setdefault(("baseline", where), []).append(
            measure(baseline(clip.samples, audio.n_frames), clip)
        )
        audio_only = animate_audio(engine, audio, timeline, seed=0, head=0.0)
        rows.setdefault(("audio v3", where), []).append(measure(audio_only.values, clip))
        tpl = template(clip.text, clip.language)
        with_text = animate_audio(engine, audio, timeline, seed=0, head=0.0, transcript=tpl)
        rows.setdefault(("transcript", where), []).append(measure(with_text.values, clip))
        if recognise is not None:
            heard = recognise(clip.samples)
            with_phones = animate_audio(engine, audio, timeline, seed=0, head=0.0, transcript=heard)
            rows.setdefault(("phones", where), []).append(measure(with_phones.values, clip))
    keys = list(next(iter(rows.values()))[0])
    print(f"\n{len(clips)} clips (espeak-ng voices and festival); means per corpus:language")
    print(f"{'engine':<11} {'corpus':<12}" + "".join(f"{k[:11]:>12}" for k in keys))
    for (name, where), results in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        with np.errstate(all="ignore"):
            means = [np.nanmean([r[k] for r in results]) for k in keys]
        print(f"{name:<11} {where:<12}" + "".join(f"{m:12.3f}" for m in means))
    return 0


if __name__ == "__main__":
    sys.exit(main())
