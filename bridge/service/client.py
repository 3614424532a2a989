"""A small Python client for ``emoface serve`` (protocol in ``docs/service.md``).

::

    from bridge.service.client import ServiceClient

    with ServiceClient("tcp://127.0.0.1:5556") as npc:
        line = npc.speak("guard", "vo/halt.wav", emotion="angry")
        npc.wait(line["id"])              # until the line has played (or ended otherwise)
        npc.cancel(subject="guard")

Each call sends one JSON request and waits for its reply, up to ``timeout_s``. A call that times
out raises ``TimeoutError`` and the socket is rebuilt (ZeroMQ's "lazy pirate" pattern), so the
next call works once the service is back. An error reply raises ``ServiceError`` with its code.
"""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bridge.service.requests import DEFAULT_SERVICE_ENDPOINT, FINAL_STATES, ServiceError

AudioInput = str | Path | bytes | np.ndarray


class ServiceClient:
    """Talks to one ``emoface serve`` endpoint over a REQ socket.

    Args:
        endpoint: the service's request endpoint.
        timeout_s: how long to wait for each reply.
        context: ``zmq.Context`` (default: the process-wide one).
        server_key: the service's public certificate (``NAME.key``), for a service that
            requires CURVE authentication (one bound beyond the loopback).
        client_key: this client's certificate with its secret key (``NAME.key_secret``);
            its public half must be in the service's authorized keys folder.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_SERVICE_ENDPOINT,
        *,
        timeout_s: float = 10.0,
        context: Any = None,
        server_key: str | None = None,
        client_key: str | None = None,
    ) -> None:
        import zmq

        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, but {timeout_s} is provided")
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._zmq = zmq
        self._context = context or zmq.Context.instance()
        if (server_key is None) != (client_key is None):
            raise ValueError("CURVE needs both server_key and client_key (or neither)")
        self.server_key = server_key
        self.client_key = client_key
        self._socket: Any = None

    def _connect(self) -> Any:
        if self._socket is None:
            sock = self._context.socket(self._zmq.REQ)
            sock.setsockopt(self._zmq.LINGER, 0)
            if self.server_key is not None and self.client_key is not None:
                from bridge.transports.zmq import secure_client_socket

                secure_client_socket(sock, self.server_key, self.client_key)
            sock.connect(self.endpoint)
            self._socket = sock
        return self._socket

    def close(self) -> None:
        """Close the socket; safe to call twice."""
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send ``{"op": op, **fields}`` and return the reply.

        Raises:
            ServiceError: the reply is an error.
            TimeoutError: no reply within ``timeout_s``.
        """
        try:  # strict JSON: the service refuses NaN and Infinity, so never send them
            payload = json.dumps({"op": op, **fields}, allow_nan=False).encode()
        except ValueError as e:
            raise ValueError(f"{op} request holds a value JSON cannot carry ({e})") from None
        sock = self._connect()
        sock.send(payload)
        if not sock.poll(int(self.timeout_s * 1000)):
            self.close()  # a REQ socket that missed its reply cannot send again
            raise TimeoutError(
                f"no reply from {self.endpoint} within {self.timeout_s:g} s "
                "(is emoface serve running there?)"
            )
        reply = json.loads(sock.recv())
        if not reply.get("ok"):
            error = reply.get("error") or {}
            raise ServiceError(str(error.get("code", "unknown")), str(error.get("message", "")))
        return reply

    def ping(self) -> dict[str, Any]:
        """Check the service is alive (returns its version and time)."""
        return self.request("ping")

    def status(self, line_id: str | None = None) -> dict[str, Any]:
        """The service's status, or one line's (``reply["line"]``)."""
        return self.request("status", id=line_id) if line_id else self.request("status")

    def speak(
        self,
        subject: str,
        audio: AudioInput,
        *,
        emotion: str | None = None,
        seed: int | None = None,
        raw: bool = False,
        transports: list[str] | None = None,
        start_at: float | None = None,
        blend_ms: float | None = None,
        sample_rate: int = 16_000,
        info: dict[str, Any] | None = None,
        text: str | None = None,
        language: str | None = None,
    ) -> dict[str, Any]:
        """Make ``subject`` say a line; returns at once with the line ``id`` and frame count.

        Args:
            subject: the NPC (letters, digits, ``_.-``).
            audio: a file path (read by the service), file bytes (wav/flac/ogg), or samples.
            emotion: emotion spec, e.g. ``happy`` or ``happy@0,sad@2`` (default: the service's).
            seed: seeds blinks and gaze.
            raw: skip smoothing, blinks and gaze.
            transports: which of the service's transports to use (default: all).
            start_at: Unix time at which the audio starts playing (default: as soon as ready).
            blend_ms: cross-fade when interrupting this subject's current line.
            sample_rate: rate of ``audio`` when it is an array of samples.
            info: extra JSON fields passed to receivers in the START message.
            text: what the line says: its phonemes drive the lips (the service needs
                espeak-ng).
            language: the text's espeak-ng code (default en).
        """
        fields: dict[str, Any] = {"subject": subject, "raw": raw}
        fields.update(_audio_fields(audio, sample_rate))
        optional = {
            "emotion": emotion,
            "seed": seed,
            "transports": transports,
            "start_at": start_at,
            "blend_ms": blend_ms,
            "info": info,
            "text": text,
            "language": language,
        }
        fields.update({k: v for k, v in optional.items() if v is not None})
        return self.request("speak", **fields)

    def bake(
        self,
        audio: AudioInput,
        *,
        emotion: str | None = None,
        seed: int | None = None,
        raw: bool = False,
        format: str = "json",
        output: str | Path | None = None,
        mapping: str | None = None,
        sample_rate: int = 16_000,
        text: str | None = None,
        language: str | None = None,
    ) -> dict[str, Any]:
        """Bake with the service's warm engine: the document in the reply, or a file written.

        With ``output`` the service writes the file (atomically) and replies with its path.
        With ``text`` the line's phonemes drive the lips and the reply says how they aligned
        (``transcript``).
        """
        fields: dict[str, Any] = {"raw": raw, "format": format}
        if emotion is not None:
            fields["emotion"] = emotion
        fields.update(_audio_fields(audio, sample_rate))
        if seed is not None:
            fields["seed"] = seed
        if output is not None:
            fields["output"] = str(Path(output).resolve())
        if mapping is not None:
            fields["mapping"] = mapping
        if text is not None:
            fields["text"] = text
        if language is not None:
            fields["language"] = language
        return self.request("bake", **fields)

    def bake_animation(self, audio: AudioInput, **kwargs: Any) -> Any:
        """``bake`` as JSON and return an ``emoface_core.animation.Animation``."""
        from emoface_core.animation import Animation
        from emoface_core.controllers import CONTROLLER_NAMES

        doc = self.bake(audio, format="json", **kwargs)["animation"]
        values = np.array([doc["channels"][n] for n in CONTROLLER_NAMES], dtype=np.float32).T
        return Animation(values, fps=float(doc["fps"]), metadata=doc.get("metadata", {}))

    def cancel(
        self,
        line_id: str | None = None,
        *,
        subject: str | None = None,
        all: bool = False,
    ) -> list[str]:
        """Stop a line (fading to rest), every line of a subject, or everything.

        Returns:
            The ids of the lines that were stopped.
        """
        given = [x for x in (line_id, subject, all or None) if x]
        if len(given) != 1:
            raise ValueError("cancel needs exactly one of line_id, subject or all=True")
        if line_id:
            return self.request("cancel", id=line_id)["cancelled"]
        if subject:
            return self.request("cancel", subject=subject)["cancelled"]
        return self.request("cancel", all=True)["cancelled"]

    def wait(self, line_id: str, timeout_s: float = 60.0, poll_s: float = 0.05) -> dict[str, Any]:
        """Poll until a line has ended; returns its final status.

        Raises:
            TimeoutError: still going after ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            line = self.status(line_id)["line"]
            if line["state"] in FINAL_STATES:
                return line
            if time.monotonic() > deadline:
                raise TimeoutError(f"line {line_id} still {line['state']} after {timeout_s:g} s")
            time.sleep(poll_s)


def _audio_fields(audio: AudioInput, sample_rate: int) -> dict[str, str]:
    if isinstance(audio, (str, Path)):
        return {"audio": str(Path(audio).resolve())}
    if isinstance(audio, (bytes, bytearray, memoryview)):
        return {"audio_b64": base64.b64encode(bytes(audio)).decode("ascii")}
    if isinstance(audio, np.ndarray):
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(
            buf, np.asarray(audio, dtype=np.float32), sample_rate, format="WAV", subtype="FLOAT"
        )
        return {"audio_b64": base64.b64encode(buf.getvalue()).decode("ascii")}
    raise TypeError(f"audio must be a path, bytes or a numpy array, not {type(audio).__name__}")
