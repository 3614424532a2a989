"""The service's request protocol: ops, their fields, validation and error replies.

Everything here is about one message: what a request may hold, how each field is checked
(with the message an ``error`` reply carries) and what the client raises for an error reply.
The service (``server.py``) and the client (``client.py``) both build on it; neither imports
the other. Line states (``FINAL_STATES``) belong to the player that moves lines through them
(``bridge.runtime.lines``) and are re-exported here for clients.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bridge.protocol import loads_json
from bridge.runtime.lines import FINAL_STATES as FINAL_STATES  # re-exported for clients
from emoface_core.audio import Audio, frame_count, load_audio, probe_audio
from emoface_core.emotion import EmotionTimeline, parse_emotion_spec
from emoface_core.errors import AudioError, EmoFaceError

DEFAULT_SERVICE_ENDPOINT = "tcp://127.0.0.1:5556"


class ServiceError(EmoFaceError, RuntimeError):
    """The service answered with an error; ``code`` is its error code (e.g. ``bad_audio``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


OPS = ("speak", "bake", "cancel", "status", "ping")

BAKE_FORMATS = ("json", "txt", "csv")

MAX_REQUEST_DEPTH = 32  # JSON nesting a request may have (real ones: 3)
MAX_INFO_BYTES = 16 * 1024  # a speak's info travels in every START message
MIN_SAMPLE_RATE = 8_000  # Hz: below telephone quality there is no speech to animate
MAX_SAMPLE_RATE = 384_000

# Fields each op accepts (besides "op" and "req_id"); anything else is refused by name, so a
# typo ("emotoin") is an error rather than a silently ignored setting.
FIELDS: dict[str, frozenset[str]] = {
    "ping": frozenset(),
    "status": frozenset({"id"}),
    "cancel": frozenset({"id", "subject", "all"}),
    "speak": frozenset(
        {
            "subject",
            "audio",
            "audio_b64",
            "emotion",
            "seed",
            "raw",
            "transports",
            "start_at",
            "blend_ms",
            "info",
            *("text", "language", "network_lips"),
        }
    ),
    "bake": frozenset(
        {"audio", "audio_b64", "emotion", "seed", "raw", "format", "output", "mapping"}
        | {"text", "language", "network_lips"}
    ),
}


class RequestError(EmoFaceError, ValueError):
    """A request cannot be served; ``code`` is what the error reply says.

    Codes: ``bad_request`` (malformed or invalid fields), ``bad_audio`` (the audio cannot be
    used), ``bad_output`` (a bake's output file cannot be written), ``not_found`` (unknown line id),
    ``busy`` (the inference queue is full), ``unavailable`` (a tool the request needs is missing
    here: espeak-ng for a ``text``).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class AudioRef:
    """A request's audio, checked from its header but not decoded yet (that is the worker's job).

    Attributes:
        path: the file to decode (a temporary copy for ``audio_b64``).
        label: how replies and metadata name it (the request's path, or ``<bytes>``).
        sample_rate: the file's rate.
        n_samples: samples per channel its header declares.
        temporary: ``path`` is the service's own copy, deleted by ``discard``.
    """

    path: Path
    label: str
    sample_rate: int
    n_samples: int
    temporary: bool = False

    @property
    def duration_s(self) -> float:
        """Declared length in seconds."""
        return self.n_samples / self.sample_rate

    @property
    def n_frames(self) -> int:
        """Frames at 60 fps, as the animation will have them."""
        return frame_count(self.n_samples, self.sample_rate)

    def load(self) -> Audio:
        """Decode (off the request thread); errors name the request's audio, not the copy.

        Raises:
            RequestError: the audio does not decode (``bad_audio``).
        """
        try:
            audio = load_audio(self.path)
        except (EmoFaceError, ValueError, OSError) as e:
            raise RequestError("bad_audio", str(e).replace(str(self.path), self.label)) from None
        return replace(audio, path="" if self.temporary else self.label)

    def discard(self) -> None:
        """Delete the temporary copy, if this is one."""
        if self.temporary:
            self.path.unlink(missing_ok=True)


def check_audio(ref: AudioRef, max_audio_s: float) -> AudioRef:
    """Refuse audio that is too long, too sparse or empty, from its header alone.

    A 180 KB FLAC can declare two hours of audio: that is refused here, before a gigabyte of
    samples is decoded.

    Raises:
        RequestError: ``bad_audio``, naming what is wrong.
    """
    if not MIN_SAMPLE_RATE <= ref.sample_rate <= MAX_SAMPLE_RATE:
        raise RequestError(
            "bad_audio",
            f"{ref.label}: sample rate {ref.sample_rate} Hz; this service takes "
            f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz",
        )
    if ref.n_samples <= 0:
        raise RequestError("bad_audio", f"{ref.label}: the header does not say how long it is")
    if ref.duration_s > max_audio_s:
        raise RequestError(
            "bad_audio",
            f"{ref.label}: audio is {ref.duration_s:.1f} s long; this service takes at most "
            f"{max_audio_s:g} s",
        )
    if ref.n_frames == 0:
        raise RequestError("bad_audio", f"{ref.label}: shorter than one frame (1/60 s)")
    return ref


def audio_in_roots(text: str, roots: Sequence[Path]) -> AudioRef:
    """The request's ``audio`` path, if it is a readable audio file under one of ``roots``.

    Symlinks are resolved first, so a link cannot lead out. A missing file, an unreadable one and
    one outside the roots get the same answer, so requests cannot probe what exists elsewhere.

    Raises:
        RequestError: ``bad_audio``.
    """
    refused = RequestError(
        "bad_audio",
        f"audio {text!r}: no readable audio file there under the service's audio roots "
        "(--audio-root)",
    )
    real = Path(os.path.realpath(os.path.abspath(text)))
    if not any(real.is_relative_to(root) for root in roots) or not os.access(real, os.R_OK):
        raise refused
    try:
        info = probe_audio(real)
    except AudioError:
        raise refused from None
    return AudioRef(real, text, info.sample_rate, info.n_samples)


def audio_from_b64(text: str) -> AudioRef:
    """Base64 audio (any format soundfile reads) saved to a temporary file and probed.

    Raises:
        RequestError: not base64 (``bad_request``) or not audio (``bad_audio``).
    """
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("bad_request", "audio_b64 is not valid base64") from None
    fd, tmp = tempfile.mkstemp(prefix="emoface-serve-", suffix=".audio")
    path = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        info = probe_audio(path)
    except (EmoFaceError, ValueError, OSError) as e:
        path.unlink(missing_ok=True)
        raise RequestError("bad_audio", str(e).replace(tmp, "audio_b64")) from None
    return AudioRef(path, "<bytes>", info.sample_rate, info.n_samples, temporary=True)


def output_in_root(text: str, root: Path) -> Path:
    """A bake's ``output`` path, resolved inside the service's output root.

    A relative path is taken relative to the root; an absolute one must already point inside
    it. ``..`` and symlinks are resolved before the check, so neither leads out.

    Raises:
        RequestError: ``bad_output``.
    """
    candidate = Path(text) if os.path.isabs(text) else root / text
    real = Path(os.path.realpath(candidate))
    if not real.is_relative_to(root) or real == root:
        raise RequestError(
            "bad_output",
            f"output {text!r} must name a file inside the service's output root ({root})",
        )
    return real


def text_field(request: dict[str, Any], key: str) -> str:
    """A required non-empty string field.

    Raises:
        RequestError: missing or not a non-empty string.
    """
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise RequestError("bad_request", f"{key} must be a non-empty string")
    return value


def parse_transcript(request: dict[str, Any]) -> tuple[str, str, bool]:
    """The request's ``text``, ``language`` and ``network_lips`` (empty text: none given).

    Raises:
        RequestError: a field of the wrong type, a text over ``MAX_TEXT_CHARS`` or a language
            code that is not one (letters, digits and ``-``, at most 16).
    """
    from bridge.transcript.prepare import DEFAULT_LANGUAGE, check_text, is_language_code

    text = request.get("text", "")
    language = request.get("language", DEFAULT_LANGUAGE)
    if not isinstance(text, str):
        raise RequestError("bad_request", "text must be a string")
    if not isinstance(language, str) or not is_language_code(language):
        raise RequestError("bad_request", "language must be an espeak-ng code such as en, es, cmn")
    try:
        text = check_text(text, "text")
    except ValueError as e:
        raise RequestError("bad_request", str(e)) from None
    return text, language, optional_bool(request, "network_lips")


def optional_int(request: dict[str, Any], key: str) -> int | None:
    """An optional whole number >= 0 (None when absent).

    Raises:
        RequestError: present but not a whole number >= 0.
    """
    value = request.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RequestError("bad_request", f"{key} must be a whole number >= 0 or null")
    return value


def optional_bool(request: dict[str, Any], key: str) -> bool:
    """An optional boolean (False when absent).

    Raises:
        RequestError: present but not true or false.
    """
    value = request.get(key, False)
    if not isinstance(value, bool):
        raise RequestError("bad_request", f"{key} must be true or false")
    return value


def error_reply(code: str, message: str) -> dict[str, Any]:
    """The reply for a failed request."""
    return {"ok": False, "error": {"code": code, "message": message}}


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for numpy values and paths in replies."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def parse_request(payload: bytes, max_bytes: int) -> dict[str, Any]:
    """Decode one request message into a JSON object, bounded before it is parsed.

    Raises:
        RequestError: too large, too deep, not strict JSON (NaN, Infinity) or not an object
            (``bad_request``).
    """
    if len(payload) > max_bytes:
        raise RequestError(
            "bad_request",
            f"request is {len(payload)} bytes; the limit is {max_bytes} "
            "(send a path instead of audio_b64)",
        )
    try:
        request = loads_json(
            payload.decode("utf-8"), max_bytes=max_bytes, max_depth=MAX_REQUEST_DEPTH
        )
    except UnicodeDecodeError:
        raise RequestError("bad_request", "request is not UTF-8 JSON") from None
    except ValueError as e:
        raise RequestError("bad_request", f"request is not valid JSON ({e})") from None
    if not isinstance(request, dict):
        raise RequestError(
            "bad_request", f"request must be a JSON object, got {type(request).__name__}"
        )
    return request


def request_op(request: dict[str, Any]) -> str:
    """The request's op, once its fields are known to belong to it.

    Raises:
        RequestError: unknown op or a field the op does not take (``bad_request``).
    """
    op = request.get("op")
    if op not in OPS:
        raise RequestError(
            "bad_request", f"op must be one of {', '.join(OPS)}, but {op!r} is provided"
        )
    unknown = sorted(set(request) - FIELDS[op] - {"op", "req_id"})
    if unknown:
        raise RequestError(
            "bad_request",
            f"unknown field {unknown[0]!r} for {op}; allowed: "
            f"{', '.join(sorted(FIELDS[op])) or 'none'}",
        )
    return str(op)


def parse_timeline(request: dict[str, Any], default: str) -> EmotionTimeline:
    """The request's emotion spec (``default`` when it gives none) as a timeline.

    Raises:
        RequestError: not a spec, or one that does not parse (``bad_request``).
    """
    spec = request.get("emotion", default)
    if not isinstance(spec, (str, int)) or isinstance(spec, bool):
        raise RequestError("bad_request", "emotion must be a spec string such as 'happy@0,sad@2'")
    try:
        return parse_emotion_spec(spec)
    except ValueError as e:
        raise RequestError("bad_request", str(e)) from None


def parse_start_at(request: dict[str, Any], now_s: float, max_ahead_s: float) -> float | None:
    """``start_at`` (Unix seconds) when given.

    Raises:
        RequestError: not a finite time, or more than ``max_ahead_s`` ahead.
    """
    start_at = request.get("start_at")
    if start_at is None:
        return None
    if not isinstance(start_at, (int, float)) or isinstance(start_at, bool):
        raise RequestError("bad_request", "start_at must be a Unix time in seconds")
    if not math.isfinite(start_at) or start_at > now_s + max_ahead_s:
        raise RequestError("bad_request", f"start_at is more than {max_ahead_s:g} s ahead")
    return float(start_at)


def parse_blend_ms(request: dict[str, Any], default: float) -> float:
    """``blend_ms`` (0-2000), or ``default``.

    Raises:
        RequestError: not a number in range.
    """
    blend_ms = request.get("blend_ms", default)
    if (
        isinstance(blend_ms, bool)
        or not isinstance(blend_ms, (int, float))
        or not (0 <= blend_ms <= 2000)
    ):
        raise RequestError("bad_request", "blend_ms must be a number between 0 and 2000")
    return float(blend_ms)


def parse_info(request: dict[str, Any]) -> dict[str, Any]:
    """``info``: JSON facts passed on to receivers in START.

    Raises:
        RequestError: not a JSON object.
    """
    info = request.get("info", {})
    if not isinstance(info, dict):
        raise RequestError("bad_request", "info must be a JSON object")
    size = len(json.dumps(info, allow_nan=False))  # strict already: parse_request refused NaN
    if size > MAX_INFO_BYTES:
        raise RequestError(
            "bad_request", f"info is {size} bytes of JSON; at most {MAX_INFO_BYTES} are sent"
        )
    return info


def parse_output(request: dict[str, Any], fmt: str) -> str | None:
    """A bake's ``output`` path, when given; it must end in the format's extension.

    Raises:
        RequestError: not a path, or the wrong extension.
    """
    output = request.get("output")
    if output is None:
        return None
    if not isinstance(output, str) or not output:
        raise RequestError("bad_request", "output must be a file path")
    from emoface_core.formats import WRITERS

    extension = WRITERS[fmt].extension if fmt in WRITERS else fmt
    if not output.lower().endswith(f".{extension}"):
        raise RequestError("bad_request", f"output {output!r} must end in .{extension}")
    return output
