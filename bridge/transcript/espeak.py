"""espeak-ng speech with exact phoneme times, through its shared library (never vendored).

Lives at the bridge's edge, not in the core: it loads a system library and serialises calls with
a lock (the core does neither). ``template`` gives the core's transcript alignment its input.

espeak-ng (GPL-3) is loaded at run time with ``ctypes`` from the system (``libespeak-ng.so.1``;
Debian/Ubuntu: ``apt-get install espeak-ng``; macOS: ``brew install espeak-ng``; Windows: the
espeak-ng installer, then its folder on PATH or ``EMOFACE_ESPEAK_LIBRARY``). Nothing of it is
copied into this project. With ``espeakINITIALIZE_PHONEME_EVENTS`` the library reports each
phoneme (IPA) with the audio position where it starts, so the synthesised audio comes with its
phoneme times: the ground truth of ``benchmarks/bench_lipsync.py``.

The library keeps global state and is not thread-safe: every call holds one lock.
"""

from __future__ import annotations

import _ctypes
import contextlib
import ctypes
import ctypes.util
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from emoface_core.audio import SAMPLE_RATE
from emoface_core.errors import EmoFaceError
from emoface_core.transcript.phonemes import Phoneme, Template

LIBRARY_ENV = "EMOFACE_ESPEAK_LIBRARY"
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH = 1, 3
DEFAULT_RATE_WPM, DEFAULT_PITCH = 175, 50
_LIBRARY_NAMES = ("libespeak-ng.so.1", "libespeak-ng.dylib", "libespeak-ng.dll")
INSTALL_HINT = (
    "install espeak-ng (Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install "
    f"espeak-ng; Windows: the espeak-ng installer), or point {LIBRARY_ENV} at libespeak-ng"
)


class EspeakError(EmoFaceError, RuntimeError):
    """espeak-ng is missing, or refused the voice or the text (the message says which)."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Speech:
    """Synthesised speech: 16 kHz mono samples, its phonemes, and the words' start times."""

    samples: np.ndarray
    phonemes: tuple[Phoneme, ...]
    word_starts_s: tuple[float, ...]


def _find_library() -> str:
    """Path (or soname) of a loadable libespeak-ng; EspeakError with what to install."""
    path = os.environ.get(LIBRARY_ENV) or ctypes.util.find_library("espeak-ng")
    candidates = [path] if path else []
    candidates += list(_LIBRARY_NAMES)
    for candidate in candidates:
        try:
            handle = ctypes.CDLL(candidate)
        except OSError:
            continue
        return _loaded_path(handle, candidate)
    raise EspeakError(f"the espeak-ng library was not found; {INSTALL_HINT}")


def _loaded_path(handle: ctypes.CDLL, fallback: str) -> str:
    """The file a loaded library came from (so it can be copied), else what was asked for."""
    if os.path.isfile(fallback):
        return os.path.abspath(fallback)
    try:  # Linux: the dynamic loader's map of the handle
        link = ctypes.c_void_p()
        libdl = ctypes.CDLL(None)
        if libdl.dlinfo(ctypes.c_void_p(handle._handle), 2, ctypes.byref(link)) == 0:

            class _LinkMap(ctypes.Structure):
                _fields_ = [("addr", ctypes.c_void_p), ("name", ctypes.c_char_p)]

            name = ctypes.cast(link, ctypes.POINTER(_LinkMap)).contents.name
            if name and os.path.isfile(name.decode()):
                return name.decode()
    except (AttributeError, OSError, ValueError):
        pass
    return fallback


class _Session:
    """One synthesis on a private copy of the library, unloaded afterwards.

    espeak-ng keeps state between utterances in static variables (the voice source's phase and
    noise, pauses from the last clause): the same text comes out differently after other texts,
    and its alignment with it. A fresh copy of the library (a new file name is a new image for
    the dynamic loader) starts from the same state every time, so a line's template, and its
    lips, are the same however many lines came before. It costs ~6 ms per line, and espeak-ng
    leaves ~4 KB per session behind that unloading does not return. Where the library's file
    cannot be found (no ``dlinfo``: macOS, Windows, unless ``EMOFACE_ESPEAK_LIBRARY`` names
    the file) the shared library is used as is: the same, less reproducibly.
    """

    def __init__(self, library: str, folder: str) -> None:
        self.copy = ""
        if os.path.isfile(library):
            fd, self.copy = tempfile.mkstemp(
                prefix="espeak-", suffix=os.path.splitext(library)[1] or ".so", dir=folder
            )
            os.close(fd)
            shutil.copyfile(library, self.copy)
        try:
            self.lib = ctypes.CDLL(self.copy or library)
        except OSError as error:
            self._remove_copy()
            raise EspeakError(f"espeak-ng could not be loaded ({error}); {INSTALL_HINT}") from None
        lib = self.lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, options)
        if rate <= 0:
            self.close()
            raise EspeakError(f"espeak-ng did not start (its data may be missing); {INSTALL_HINT}")
        self.rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, str]] = []
        self._callback = _CALLBACK(self._on_audio)  # kept alive as long as the library holds it
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: Any, n: int, events: Any) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                symbol = bytes(event.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                self._events.append((_EVENT_PHONEME, event.sample, symbol))
            elif event.type == _EVENT_WORD:
                self._events.append((_EVENT_WORD, event.sample, ""))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str, rate_wpm: int | None, pitch: int | None) -> Speech:
        lib = self.lib
        if lib.espeak_SetVoiceByName(voice.encode("utf-8")) != 0:
            raise EspeakError(f"espeak-ng has no voice {voice!r} (espeak-ng --voices lists them)")
        lib.espeak_SetParameter(_RATE, int(rate_wpm or DEFAULT_RATE_WPM), 0)
        lib.espeak_SetParameter(_PITCH, int(DEFAULT_PITCH if pitch is None else pitch), 0)
        data = text.encode("utf-8") + b"\0"
        buffer = ctypes.create_string_buffer(data)
        status = lib.espeak_Synth(buffer, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        if status != 0:
            raise EspeakError(f"espeak-ng could not speak the text (status {status})")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return _to_speech(audio, list(self._events), self.rate)

    def close(self) -> None:
        """Terminate the library and unload the private copy."""
        with contextlib.suppress(AttributeError):
            self.lib.espeak_Terminate()
        handle = getattr(self.lib, "_handle", None)
        dlclose = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
        if self.copy and handle and dlclose is not None:
            with contextlib.suppress(OSError):
                dlclose(handle)
        self._remove_copy()

    def _remove_copy(self) -> None:
        if self.copy:
            with contextlib.suppress(OSError):
                os.unlink(self.copy)
            self.copy = ""


def _to_speech(audio: np.ndarray, events: list[tuple[int, int, str]], rate: int) -> Speech:
    from scipy.signal import resample_poly

    x = audio.astype(np.float32) / 32768.0
    samples = resample_poly(x, SAMPLE_RATE, rate).astype(np.float32) if rate != SAMPLE_RATE else x
    duration = len(x) / rate
    marks = [(sample / rate, symbol) for kind, sample, symbol in events if kind == _EVENT_PHONEME]
    phonemes = []
    for k, (start, symbol) in enumerate(marks):
        end = marks[k + 1][0] if k + 1 < len(marks) else duration
        if symbol.strip() and end > start:
            phonemes.append(Phoneme(symbol.strip(), start, end))
    words = tuple(sample / rate for kind, sample, _ in events if kind == _EVENT_WORD)
    return Speech(samples, tuple(phonemes), words)


_LIBRARY: str | None = None  # found once per process
_LOCK = threading.Lock()  # the library's global state: one synthesis at a time


def synthesize(
    text: str, voice: str = "en", *, rate_wpm: int | None = None, pitch: int | None = None
) -> Speech:
    """Speak ``text`` with an espeak-ng voice (a language code: en, es, de, fr, cmn...).

    The same arguments give the same samples every time (``_Session``).

    Args:
        text: what to say (UTF-8; espeak-ng reads digits and punctuation as a reader would).
        voice: an espeak-ng voice or language code (``espeak-ng --voices`` lists them).
        rate_wpm: words per minute (espeak-ng's default is 175).
        pitch: 0-100 (default 50).

    Raises:
        EspeakError: espeak-ng is missing (with what to install), or the voice is unknown.
    """
    global _LIBRARY
    with _LOCK:
        if _LIBRARY is None:
            _LIBRARY = _find_library()
        with tempfile.TemporaryDirectory(prefix="emoface-espeak-") as folder:
            session = _Session(_LIBRARY, folder)
            try:
                return session.synthesize(text, voice, rate_wpm, pitch)
            finally:
                session.close()


def available() -> bool:
    """Whether espeak-ng can be loaded here (and speaks)."""
    try:
        synthesize("a")
    except EspeakError:
        return False
    return True


# Mandarin reads best through espeak-ng's pinyin voice: on 1.51 (Debian 12) the plain ``cmn``
# voice turns Hanzi into numbered pinyin and then reads that through its English rules ("ni3"
# -> "knee three"; fixed upstream, espeak-ng issue #1370). ``cmn-latn-pinyin`` gives the same
# Mandarin phonemes for Hanzi, numbered pinyin (ni3 hao3) and tone-marked pinyin (nǐ hǎo).
TEMPLATE_VOICES = {"cmn": "cmn-latn-pinyin", "zh": "cmn-latn-pinyin", "zh-cmn": "cmn-latn-pinyin"}


def template(text: str, language: str = "en") -> Template:
    """The text spoken by espeak-ng at its default rate, as an alignment template.

    Raises:
        EspeakError: espeak-ng is missing or has no such language.
    """
    voice = TEMPLATE_VOICES.get(language.lower(), language)
    try:
        speech = synthesize(text, voice)
    except EspeakError:
        if voice == language:
            raise
        speech = synthesize(text, language)  # an espeak-ng without the pinyin voice
    return Template(speech.samples, speech.phonemes, text, language)
