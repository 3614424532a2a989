"""From a line's text to the core's alignment template, with the user's choice of strictness.

``--text-mode require`` (the default when a text is given) fails the line when espeak-ng is
missing or refuses the language; ``prefer`` warns once and bakes audio-only lips; ``off``
ignores texts. The network engine uses a transcript only when asked (``network_lips``): its
closures and f/v are then enforced, everything else stays the network's.
"""

from __future__ import annotations

import logging
import re

import numpy as np

from emoface_core.transcript.align import Alignment
from emoface_core.transcript.phonemes import Template

log = logging.getLogger(__name__)

TEXT_MODES = ("require", "prefer", "off")
DEFAULT_LANGUAGE = "en"
_LANGUAGE_CODE = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,15}")
MAX_TEXT_CHARS = 4000  # a dialogue line; longer texts are refused (a paragraph is many lines)
_warned: set[str] = set()


def is_language_code(code: str) -> bool:
    """Whether ``code`` looks like an espeak-ng voice code (en, en-us, cmn, pt-br...)."""
    return _LANGUAGE_CODE.fullmatch(code) is not None


def check_text(text: str, origin: str = "text") -> str:
    """The text stripped, or a ValueError naming ``origin`` when it cannot be a line's text."""
    clean = " ".join(text.split())
    if len(clean) > MAX_TEXT_CHARS:
        raise ValueError(
            f"{origin}: the text has {len(clean)} characters; at most {MAX_TEXT_CHARS} per line"
        )
    return clean


def lip_layer_for(engine_name: str, network_lips: bool) -> str | None:
    """Which lip layer the engine gets from a transcript: full, lips, or None (not used)."""
    if engine_name == "procedural":
        return "full"
    return "lips" if network_lips else None


def lip_source(
    text: str, language: str, mode: str, *, phones: bool, samples: np.ndarray
) -> Template | Alignment | None:
    """What drives a line's lips: its text's template, else recognised phones, else nothing.

    Raises:
        EspeakError: as ``prepare_template``.
        PhonesError: ``phones`` without pocketsphinx installed.
    """
    template = prepare_template(text, language, mode)
    if template is not None:
        return template
    if phones:
        from bridge.transcript.phones import recognise

        return recognise(samples)
    return None


def prepare_template(text: str, language: str, mode: str) -> Template | None:
    """The text spoken by espeak-ng, or None when there is no text or ``mode`` allows none.

    Raises:
        EspeakError: ``mode`` is ``require`` and espeak-ng is missing or has no such language.
    """
    from bridge.transcript.espeak import EspeakError, template

    if mode not in TEXT_MODES:
        raise ValueError(f"unknown text mode {mode!r}; use {', '.join(TEXT_MODES)}")
    if not text.strip() or mode == "off":
        return None
    try:
        return template(text, language or DEFAULT_LANGUAGE)
    except EspeakError as error:
        if mode == "require":
            raise
        if str(error) not in _warned:
            _warned.add(str(error))
            log.warning("%s; baking audio-only lips (--text-mode prefer)", error)
        return None
