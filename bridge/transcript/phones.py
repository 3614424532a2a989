"""Optional audio-only phone recognition: pocketsphinx's English phone loop (``--phones``).

pocketsphinx (BSD-2; ``pip install 'emoface[phones]'``: its wheel carries the US English
acoustic model and phone language model) decodes the recording into ARPAbet phones with times
(``allphone`` search: phones without words, so any text, even other languages, gets the
English phones nearest to its sounds). They go through the same lip layer as a transcript's
phonemes, with full confidence: recognised phones carry no text to disagree with.

Measured in ``benchmarks/bench_lipsync.py`` (docs/procedural.md): bilabial closure recall
rises in every language (English 0.73 -> 0.83, Spanish 0.09 -> 0.52, German 0.53 -> 0.69,
French 0.65 -> 0.73, Mandarin 0.31 -> 0.61; festival's English 0.59 -> 0.94), so it is offered
for any language; it stays opt-in (an extra, 38 MB).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from emoface_core.audio import SAMPLE_RATE
from emoface_core.errors import EmoFaceError
from emoface_core.transcript.align import Alignment
from emoface_core.transcript.phonemes import Phoneme

FRAME_S = 0.01  # pocketsphinx's 100 frames per second
# ARPAbet (CMU) phones in the IPA the lip layer reads; consonants not listed are the same.
ARPABET_IPA = {
    "aa": "ɑː", "ae": "æ", "ah": "ʌ", "ao": "ɔː", "aw": "aʊ", "ay": "aɪ", "eh": "ɛ", "er": "ɜː",
    "ey": "eɪ", "ih": "ɪ", "iy": "iː", "ow": "oʊ", "oy": "ɔɪ", "uh": "ʊ", "uw": "uː", "r": "ɹ",
    "sh": "ʃ", "y": "j", "hh": "h", "dh": "ð", "th": "θ", "ng": "ŋ", "ch": "tʃ", "jh": "dʒ",
    "zh": "ʒ",
}  # fmt: skip
_NOT_PHONES = {"sil", "+nsn+", "+spn+", "+bre+", "+cough+", "+laugh+", "+um+", "+uh+"}
INSTALL_HINT = "pip install 'emoface[phones]' (pocketsphinx, with its English model)"


class PhonesError(EmoFaceError, RuntimeError):
    """pocketsphinx is missing or could not start (the message says what to install)."""


_DECODER: Any = None
_LOCK = threading.Lock()  # one decoder, one utterance at a time


def _decoder() -> Any:
    global _DECODER
    if _DECODER is None:
        try:
            from pocketsphinx import Decoder, get_model_path
        except ImportError:
            raise PhonesError(f"--phones needs pocketsphinx: {INSTALL_HINT}") from None
        model = get_model_path()
        try:
            _DECODER = Decoder(
                hmm=os.path.join(model, "en-us", "en-us"),
                allphone=os.path.join(model, "en-us", "en-us-phone.lm.bin"),
                lm=None,
                lw=2.0,
                beam=1e-20,
                pbeam=1e-20,
                loglevel="FATAL",
            )
        except (RuntimeError, OSError) as error:
            raise PhonesError(f"pocketsphinx did not start ({error}); {INSTALL_HINT}") from None
    return _DECODER


def recognise(samples: np.ndarray) -> Alignment:
    """The phones pocketsphinx hears in 16 kHz audio, as an alignment on its own timeline."""
    pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767).astype(np.int16)
    with _LOCK:
        decoder = _decoder()
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)
        decoder.end_utt()
        segments = [(s.word, s.start_frame, s.end_frame) for s in decoder.seg()]
    phonemes = []
    for word, start, end in segments:
        name = str(word).lower()
        if name in _NOT_PHONES or name.startswith("+"):
            continue
        phonemes.append(Phoneme(ARPABET_IPA.get(name, name), start * FRAME_S, (end + 1) * FRAME_S))
    duration = len(samples) / SAMPLE_RATE
    kept = tuple(p for p in phonemes if p.start_s < duration)
    return Alignment(kept, tuple(1.0 for _ in kept), 0.0, "", "phones:en-us")
