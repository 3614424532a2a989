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
from pathlib import Path
from typing import Any

import numpy as np

from bridge.runtime.lines import FINAL_STATES as FINAL_STATES  # re-exported for clients
from emoface_core.emotion import EmotionTimeline, parse_emotion_spec
from emoface_core.errors import EmoFaceError

DEFAULT_SERVICE_ENDPOINT = "tcp://127.0.0.1:5556"


class ServiceError(EmoFaceError, RuntimeError):
    """The service answered with an error; ``code`` is its error code (e.g. ``bad_audio``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


OPS = ("speak", "bake", "cancel", "status", "ping")

BAKE_FORMATS = ("json", "txt", "csv")

MAX_START_AHEAD_S = 3600.0  # a start_at further ahead than this is a client bug

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
        }
    ),
    "bake": frozenset(
        {"audio", "audio_b64", "emotion", "seed", "raw", "format", "output", "mapping"}
    ),
}


class RequestError(EmoFaceError, ValueError):
    """A request cannot be served; ``code`` is what the error reply says.

    Codes: ``bad_request`` (malformed or invalid fields), ``bad_audio`` (the audio cannot be
    used), ``bad_output`` (a bake's output file cannot be written), ``not_found`` (unknown line id),
    ``busy`` (the inference queue is full).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def audio_from_b64(text: str) -> Any:
    """Decode base64 audio (any format soundfile reads) through a temporary file."""
    from emoface_core.audio import load_audio

    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("bad_request", "audio_b64 is not valid base64") from None
    fd, tmp = tempfile.mkstemp(prefix="emoface-serve-", suffix=".audio")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            audio = load_audio(tmp)
        except (EmoFaceError, ValueError) as e:
            raise RequestError("bad_audio", str(e).replace(tmp, "audio_b64")) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    from dataclasses import replace

    return replace(audio, path="")


def text_field(request: dict[str, Any], key: str) -> str:
    """A required non-empty string field.

    Raises:
        RequestError: missing or not a non-empty string.
    """
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise RequestError("bad_request", f"{key} must be a non-empty string")
    return value


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
    """Decode one request message into a JSON object.

    Raises:
        RequestError: too large, not JSON, or not an object (``bad_request``).
    """
    if len(payload) > max_bytes:
        raise RequestError(
            "bad_request",
            f"request is {len(payload)} bytes; the limit is {max_bytes} "
            "(send a path instead of audio_b64)",
        )
    try:
        request = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
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


def parse_start_at(request: dict[str, Any], now_s: float) -> float | None:
    """``start_at`` (Unix seconds) when given.

    Raises:
        RequestError: not a finite time, or more than ``MAX_START_AHEAD_S`` ahead.
    """
    start_at = request.get("start_at")
    if start_at is None:
        return None
    if not isinstance(start_at, (int, float)) or isinstance(start_at, bool):
        raise RequestError("bad_request", "start_at must be a Unix time in seconds")
    if not math.isfinite(start_at) or start_at > now_s + MAX_START_AHEAD_S:
        raise RequestError("bad_request", f"start_at is more than {MAX_START_AHEAD_S:g} s ahead")
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
    if Path(output).suffix.lower() != f".{fmt}":
        raise RequestError("bad_request", f"output {output!r} must end in .{fmt}")
    return output
