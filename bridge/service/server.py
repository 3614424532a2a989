"""The NPC dialogue service behind ``emoface serve``: JSON requests in, live frames out.

A game (or a dialogue tool) keeps one service running next to the editor with the engine warm,
and asks it over ZeroMQ to make NPCs speak. The request/reply protocol is in ``docs/service.md``;
frames go out through the bridge's transports (``bridge.runtime.subject.SubjectStream``), so any
receiver of ``docs/protocol.md`` (the Unreal plugin, ``emoface receive``) shows them.

Three threads, each owning its resources, so no socket is ever shared between threads:

* **requests** (``serve_forever``): a ROUTER socket (REQ and DEALER clients both work; many
  clients at once). Every request is validated and answered; ``ping``, ``status`` and
  ``cancel`` at once, ``speak`` as soon as its audio is decoded (with the line id), ``bake``
  when the animation is ready. Any error, bug included, becomes an error reply: one bad request
  never takes the service down.
* **inference**: one worker runs the engine, one line at a time, in arrival order (the engine
  is shared and the CPU is better spent finishing one line than interleaving several).
* **player** (``bridge.runtime.lines.LinePlayer``): the only thread that sends frames; it plays each
  subject's current line on that line's own clock and skips late frames rather than sending
  them stale, so the face stays in sync with the audio.

Several subjects play at once. A new line for a subject replaces its current one when the new
line is ready, cross-fading from the pose last sent (no pop); a line still waiting for the
engine is superseded outright. ``cancel`` fades the subject to its rest pose, then ends the line.

Request validation lives in ``requests.py`` and the inference jobs in ``jobs.py``; what remains
here (~620 lines) is the one object that owns the sockets, the queue and the line records.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.runtime.lines import LinePlayer, LineRecord
from bridge.runtime.subject import Output, SubjectStream, check_subject, outputs_for
from bridge.service.jobs import BakeJob, LineJob, run_bake, run_line
from bridge.service.requests import (
    BAKE_FORMATS,
    DEFAULT_SERVICE_ENDPOINT,
    AudioRef,
    RequestError,
    audio_from_b64,
    audio_in_roots,
    check_audio,
    error_reply,
    json_default,
    optional_bool,
    optional_int,
    output_in_root,
    parse_blend_ms,
    parse_info,
    parse_output,
    parse_request,
    parse_start_at,
    parse_timeline,
    parse_transcript,
    request_op,
    text_field,
)
from bridge.transports.zmq import CurveKeys
from emoface_core import __version__
from emoface_core.audio import FPS

log = logging.getLogger(__name__)

LINE_HISTORY = 1000  # finished lines kept for ``status`` queries
POLL_TIMEOUT_MS = 500  # how soon the request loop notices stop() without a wake-up


@dataclass(frozen=True)
class ServiceConfig:
    """How the service listens and where frames go.

    Attributes:
        bind: ZeroMQ endpoint of the request socket (``tcp://127.0.0.1:*`` picks a free port).
        mapping: mapping (shipped name or file) for ZeroMQ and OSC frames.
        zmq: PUB endpoint for frames, or None for no ZeroMQ output.
        osc: ``host:port`` for OSC frames, or None.
        livelink: ``host:port`` for Live Link Face packets, or None.
        blend_ms: cross-fade when a line interrupts another, and fade-out on cancel.
        max_audio_s: longest clip accepted.
        max_queue: lines and bakes waiting for the engine before requests get ``busy``.
        max_request_bytes: largest request message (base64 audio included).
        fps: frame rate of the engine's output.
        schema_interval_s: how often schemas are repeated while a subject plays.
        default_emotion: emotion spec for requests that give none.
        audio_roots: folders whose audio files requests may name (default: the working
            directory); anything else is refused, whatever it is.
        output_root: the folder bakes with an ``output`` are written under (default:
            ``emoface-serve-output`` in the working directory, created on first use).
        mappings_dir: a folder of extra mapping files requests may name (by file stem);
            otherwise only the shipped mappings.
        max_subjects: subjects (NPCs) the service keeps streams for.
        max_scheduled: lines computed and waiting for a future ``start_at``.
        max_start_ahead_s: how far ahead ``start_at`` may be.
        curve: authentication for the request socket and the frame PUB; required when either
            is bound beyond the loopback.
    """

    bind: str = DEFAULT_SERVICE_ENDPOINT
    mapping: str = "metahuman_faceboard"
    zmq: str | None = "tcp://127.0.0.1:5555"
    osc: str | None = None
    livelink: str | None = None
    blend_ms: float = 100.0
    max_audio_s: float = 600.0
    max_queue: int = 64
    max_request_bytes: int = 64 * 1024 * 1024
    fps: float = FPS
    schema_interval_s: float = 0.5
    default_emotion: str = "neutral"
    audio_roots: tuple[str, ...] = ()
    output_root: str | None = None
    mappings_dir: str | None = None
    max_subjects: int = 64
    max_scheduled: int = 64
    max_start_ahead_s: float = 600.0
    curve: CurveKeys | None = None

    def __post_init__(self) -> None:
        from bridge.transports.zmq import check_endpoint

        check_endpoint(self.bind)
        roots = self.audio_roots or (os.getcwd(),)
        object.__setattr__(self, "audio_roots", tuple(os.path.realpath(r) for r in roots))
        output_root = self.output_root or os.path.join(os.getcwd(), "emoface-serve-output")
        object.__setattr__(self, "output_root", os.path.realpath(output_root))
        for name in ("max_subjects", "max_scheduled"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"{name} must be at least 1, but {getattr(self, name)} is provided"
                )
        if not 0 < self.max_start_ahead_s <= 86_400:
            raise ValueError(
                f"max_start_ahead_s must be in (0, 86400], but {self.max_start_ahead_s} is provided"
            )
        if self.zmq is not None:
            check_endpoint(self.zmq)
        if not 0 <= self.blend_ms <= 2000:
            raise ValueError(
                f"blend_ms must be between 0 and 2000, but {self.blend_ms} is provided"
            )
        if not self.max_audio_s > 0:
            raise ValueError(f"max_audio_s must be positive, but {self.max_audio_s} is provided")
        if self.max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, but {self.max_queue} is provided")
        if self.max_request_bytes < 1024:
            raise ValueError(
                f"max_request_bytes must be at least 1024, but {self.max_request_bytes} is provided"
            )
        if self.zmq is None and self.osc is None and self.livelink is None:
            raise ValueError("the service needs at least one frame transport (zmq, osc, livelink)")


class Service:
    """The ``emoface serve`` daemon; use as a context manager, then ``serve_forever()``.

    Args:
        config: endpoints, transports and limits.
        engine: a loaded engine (``emoface_core.engines.load_engine``); it stays warm.
        context: ``zmq.Context`` (default: the process-wide one).
        outputs: senders paired with their mappings (``bridge.commands.options.build_outputs``
            builds them from the CLI's transport flags); default: built from ``config``'s
            ``zmq``/``osc``/``livelink`` and ``mapping``. The service opens and closes them.
    """

    def __init__(
        self,
        config: ServiceConfig,
        engine: Any,
        *,
        context: Any = None,
        outputs: Sequence[Output] | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self._context = context
        self._given_outputs = list(outputs) if outputs is not None else None
        self._senders: list[Any] | None = None
        self._outputs: list[Output] = []
        self._by_kind: dict[str, list[Output]] = {}
        self._router: Any = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._outbox: deque[tuple[list[bytes], dict[str, Any]]] = deque()
        self._lines: OrderedDict[str, LineRecord] = OrderedDict()
        self._lines_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._serving = threading.Event()
        self._stopped = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._player: LinePlayer | None = None
        self._n_waiting = 0
        self._started_s = time.time()
        self._mappings: dict[str, Any] = {}
        self.counters = {"requests": 0, "errors": 0, "lines": 0, "bakes": 0}
        self.endpoint = config.bind

    def open(self) -> Service:
        """Open the frame senders, bind the request socket and start the worker threads.

        Raises:
            TransportError: a socket cannot be bound or a host does not resolve.
        """
        import zmq

        from bridge.errors import TransportError
        from bridge.mapping import load_mapping

        if self._given_outputs is not None:
            outputs = self._given_outputs
            senders = list({id(o.sender): o.sender for o in outputs}.values())
        else:
            senders = self._build_senders()
            outputs = outputs_for(senders, load_mapping(self.config.mapping))
        self._senders = senders
        try:
            for sender in senders:
                sender.open()
            self._outputs = outputs
            for output in self._outputs:
                self._by_kind.setdefault(output.sender.kind, []).append(output)
            from bridge.transports.zmq import check_exposure, secure_server_socket

            check_exposure(self.config.bind, self.config.curve)
            context = self._context or zmq.Context.instance()
            router = context.socket(zmq.ROUTER)
            if self.config.curve is not None:
                secure_server_socket(router, context, self.config.curve)
            router.setsockopt(zmq.LINGER, 0)
            # Oversized requests get an error reply (handle_message); twice the limit drops the
            # connection before the message is even buffered.
            router.setsockopt(zmq.MAXMSGSIZE, 2 * self.config.max_request_bytes)
            # A reply to a client that went away is dropped, not an error.
            router.setsockopt(zmq.ROUTER_MANDATORY, 0)
            try:
                router.bind(self.config.bind)
            except zmq.ZMQError as e:
                router.close(0)
                raise TransportError(f"cannot bind the service to {self.config.bind}: {e}") from e
            self._router = router
            self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT) or self.config.bind
        except BaseException:
            for sender in senders:
                sender.close()
            raise
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emoface-serve-engine")
        self._player = LinePlayer(self._make_stream, self.config.fps)
        self._player.start()
        self._started_s = time.time()
        return self

    def _build_senders(self) -> list[Any]:
        from bridge.transports.base import parse_host_port
        from bridge.transports.livelink import LIVELINK_PORT, LiveLinkSender
        from bridge.transports.osc import DEFAULT_OSC_PORT, OscSender
        from bridge.transports.zmq import ZmqSender

        senders: list[Any] = []
        if self.config.zmq is not None:
            senders.append(
                ZmqSender(self.config.zmq, context=self._context, curve=self.config.curve)
            )
        if self.config.osc is not None:
            senders.append(OscSender(*parse_host_port(self.config.osc, DEFAULT_OSC_PORT)))
        if self.config.livelink is not None:
            senders.append(LiveLinkSender(*parse_host_port(self.config.livelink, LIVELINK_PORT)))
        return senders

    @property
    def senders(self) -> list[Any]:
        """The frame senders (with their real addresses once open)."""
        return list(self._senders or [])

    def _make_stream(self, subject: str) -> SubjectStream:
        return SubjectStream(
            subject,
            self._outputs,
            fps=self.config.fps,
            schema_interval_s=self.config.schema_interval_s,
        )

    def __enter__(self) -> Service:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop(self) -> None:
        """Ask ``serve_forever`` to return (thread-safe; also from a signal handler)."""
        self._stop.set()
        self._wake()

    def close(self) -> None:
        """Stop everything: end active lines (END, shutdown), close sockets. Safe to call twice."""
        self.stop()
        if self._serving.is_set():  # the request loop owns the socket: let it finish first
            self._stopped.wait(timeout=5.0)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._player is not None:
            self._player.stop()
            self._player = None
        for sender in self._senders or []:
            sender.close()
        if self._router is not None:
            self._router.close(0)
            self._router = None
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._wake_r = self._wake_w = None

    def serve_in_thread(self) -> threading.Thread:
        """Run ``serve_forever`` on a daemon thread (for embedding and tests)."""
        thread = threading.Thread(target=self.serve_forever, name="emoface-serve", daemon=True)
        thread.start()
        self._serving.wait(timeout=5.0)
        return thread

    def serve_forever(self) -> None:
        """Answer requests until ``stop()``; the socket is used only by this thread."""
        import zmq

        if self._router is None:
            raise RuntimeError("Service.open() must be called before serve_forever()")
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        wake = self._wake_r
        assert wake is not None
        poller.register(wake, zmq.POLLIN)
        self._stopped.clear()
        self._serving.set()
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(POLL_TIMEOUT_MS))
                if wake in events or wake.fileno() in events:
                    with contextlib.suppress(BlockingIOError, OSError):
                        while wake.recv(4096):
                            pass
                if self._router in events:
                    self._drain_requests(zmq)
                self._flush_outbox()
        finally:
            self._serving.clear()
            self._stopped.set()

    def _drain_requests(self, zmq: Any) -> None:
        for _ in range(100):  # bounded, so deferred replies are not starved by a flood
            try:
                parts = self._router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(parts) < 2:
                continue  # no payload: nothing to answer
            envelope, payload = parts[:-1], parts[-1]
            reply = self.handle_message(payload, envelope)
            if reply is not None:
                self._send(envelope, reply)

    def _send(self, envelope: list[bytes], reply: dict[str, Any]) -> None:
        import zmq

        try:
            data = json.dumps(reply, allow_nan=False, default=json_default).encode()
        except (TypeError, ValueError) as e:  # a reply must always go out
            data = json.dumps(error_reply("internal", f"reply not serialisable: {e}")).encode()
        try:
            self._router.send_multipart([*envelope, data], zmq.NOBLOCK)
        except zmq.ZMQError as e:
            log.warning("emoface serve: reply dropped (%s)", e)

    def _flush_outbox(self) -> None:
        while self._outbox:
            envelope, reply = self._outbox.popleft()
            self._send(envelope, reply)

    def _defer(self, envelope: list[bytes], reply: dict[str, Any]) -> None:
        self._outbox.append((envelope, reply))
        self._wake()

    def _wake(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                self._wake_w.send(b"x")

    def handle_message(self, payload: bytes, envelope: list[bytes] | None = None) -> dict | None:
        """Answer one raw request; None when the reply comes later (``bake``).

        Never raises: a bad request gets an error reply, a bug an ``internal`` one.
        """
        self.counters["requests"] += 1
        req_id = None
        try:
            request = parse_request(payload, self.config.max_request_bytes)
            req_id = request.get("req_id")
            if req_id is not None and not isinstance(req_id, (str, int)):
                req_id = None
                raise RequestError("bad_request", "req_id must be a string or an integer")
            reply = self._dispatch(request, envelope or [])
        except RequestError as e:
            reply = error_reply(e.code, str(e))
        except Exception as e:
            log.exception("emoface serve: internal error")
            reply = error_reply("internal", f"{type(e).__name__}: {e}")
        if reply is None:
            return None
        if not reply.get("ok", False):
            self.counters["errors"] += 1
        if req_id is not None:
            reply["req_id"] = req_id
        return reply

    def _dispatch(self, request: dict[str, Any], envelope: list[bytes]) -> dict | None:
        op = request_op(request)
        if op == "ping":
            return {"ok": True, "op": "ping", "version": __version__, "time": time.time()}
        if op == "status":
            return self._status(request)
        if op == "cancel":
            return self._cancel(request)
        if op == "speak":
            return self._speak(request)
        self._bake(request, envelope)
        return None  # the reply goes out when the bake is done

    def _status(self, request: dict[str, Any]) -> dict[str, Any]:
        if "id" in request:
            record = self._lines.get(text_field(request, "id"))
            if record is None:
                raise RequestError("not_found", f"no line with id {request['id']!r}")
            return {"ok": True, "op": "status", "line": record.to_json()}
        with self._lines_lock:
            active = [r.to_json() for r in self._lines.values() if not r.final]
        player = self._player
        return {
            "ok": True,
            "op": "status",
            "version": __version__,
            "uptime_s": round(time.time() - self._started_s, 3),
            "engine": self.engine.describe(),
            "endpoint": self.endpoint,
            "transports": [
                {"kind": o.sender.kind, "address": o.sender.address, "mapping": o.mapping.name}
                for o in self._outputs
            ],
            "queue": self._n_waiting,
            "lines": active,
            "subjects": player.subjects() if player else {},
            "frames_sent": player.n_frames if player else 0,
            "player": {
                "alive": bool(player and player.alive),
                "failure": player.failure if player else "not started",
                "line_failures": player.n_line_failures if player else 0,
            },
            "limits": {
                "audio_roots": list(self.config.audio_roots),
                "output_root": self.config.output_root,
                "max_audio_s": self.config.max_audio_s,
                "max_subjects": self.config.max_subjects,
            },
            "counters": dict(self.counters),
        }

    def _cancel(self, request: dict[str, Any]) -> dict[str, Any]:
        keys = [k for k in ("id", "subject", "all") if k in request]
        if len(keys) != 1:
            raise RequestError("bad_request", "cancel needs exactly one of id, subject or all")
        with self._lines_lock:
            if "id" in request:
                line_id = text_field(request, "id")
                record = self._lines.get(line_id)
                if record is None:
                    raise RequestError("not_found", f"no line with id {line_id!r}")
                targets = [record]
            elif "subject" in request:
                subject = text_field(request, "subject")
                targets = [r for r in self._lines.values() if r.subject == subject]
            else:
                if request["all"] is not True:
                    raise RequestError("bad_request", "all must be true")
                targets = list(self._lines.values())
            cancelled = [r for r in targets if not r.final and not r.cancel_requested]
            for record in cancelled:
                record.cancel_requested = True
                if record.state in ("queued", "computing"):
                    record.end("cancelled", "cancelled before it started")
        if self._player is not None:
            self._player.wake()
        return {"ok": True, "op": "cancel", "cancelled": [r.id for r in cancelled]}

    def _speak(self, request: dict[str, Any]) -> dict[str, Any]:
        subject = text_field(request, "subject")
        try:
            check_subject(subject)
        except ValueError as e:
            raise RequestError("bad_request", str(e)) from None
        timeline = parse_timeline(request, self.config.default_emotion)
        seed = optional_int(request, "seed")
        raw = optional_bool(request, "raw")
        outputs = self._select_outputs(request.get("transports"))
        start_at = parse_start_at(request, time.time(), self.config.max_start_ahead_s)
        blend_ms = parse_blend_ms(request, self.config.blend_ms)
        info = parse_info(request)
        transcript = parse_transcript(request)
        self._check_player()
        self._check_capacity(subject, start_at)
        audio = self._audio(request)
        record = LineRecord(
            id=f"{subject}-{next(self._ids)}",
            subject=subject,
            emotion=timeline.to_spec(),
            n_frames=audio.n_frames,
            duration_s=audio.duration_s,
        )
        with self._lines_lock:
            try:
                ahead = self._reserve_queue_slot()
            except RequestError:
                audio.discard()
                raise
            # A line still waiting for the engine is replaced, not played late.
            for other in self._lines.values():
                if other.subject == subject and other.state in ("queued", "computing"):
                    other.cancel_requested = True
                    other.end("interrupted", f"superseded by {record.id}")
            self._remember(record)
        self.counters["lines"] += 1
        line_info = {
            **info,
            "line": record.id,
            "emotion": record.emotion,
            "engine": self.engine.name,
            # The receiver (the editor) opens this to play the line: an absolute path it can
            # use as is; a temporary copy (audio_b64) is gone by then, so only its label.
            "audio": audio.label if audio.temporary else str(audio.path.resolve()),
        }
        job = LineJob(
            record,
            audio,
            timeline,
            seed,
            raw,
            outputs,
            start_at,
            int(round(blend_ms / 1000.0 * self.config.fps)),
            line_info,
            *transcript,
        )
        assert self._pool is not None
        self._pool.submit(self._run_line, job)
        return {
            "ok": True,
            "op": "speak",
            "id": record.id,
            "subject": subject,
            "n_frames": record.n_frames,
            "duration_s": round(record.duration_s, 4),
            "queued": ahead,
        }

    def _bake(self, request: dict[str, Any], envelope: list[bytes]) -> None:
        timeline = parse_timeline(request, self.config.default_emotion)
        seed = optional_int(request, "seed")
        raw = optional_bool(request, "raw")
        fmt = request.get("format", "json")
        if fmt not in BAKE_FORMATS:
            raise RequestError(
                "bad_request", f"format must be one of {', '.join(BAKE_FORMATS)}, got {fmt!r}"
            )
        transcript = parse_transcript(request)
        output = parse_output(request, fmt)
        if output is not None:
            output = str(output_in_root(output, Path(str(self.config.output_root))))
        mapping = None
        if "mapping" in request:
            if fmt != "csv":
                raise RequestError("bad_request", "mapping applies to format csv")
            mapping = self._mapping(text_field(request, "mapping"))
        audio = self._audio(request)
        with self._lines_lock:
            self._reserve_queue_slot()
        self.counters["bakes"] += 1
        assert self._pool is not None
        job = BakeJob(audio, timeline, seed, raw, fmt, output, mapping, *transcript)
        self._pool.submit(self._run_bake, envelope, job, request.get("req_id"))

    def _reserve_queue_slot(self) -> int:
        """Count a request waiting for the engine; returns how many were waiting before it."""
        if self._n_waiting >= self.config.max_queue:
            raise RequestError(
                "busy", f"{self._n_waiting} requests are waiting for the engine; try again later"
            )
        self._n_waiting += 1
        return self._n_waiting - 1

    def _release_queue_slot(self) -> None:
        with self._lines_lock:
            self._n_waiting -= 1

    def _remember(self, record: LineRecord) -> None:
        self._lines[record.id] = record
        while len(self._lines) > LINE_HISTORY:
            oldest_id, oldest = next(iter(self._lines.items()))
            if not oldest.final:
                break  # never forget a live line
            del self._lines[oldest_id]

    def _run_line(self, job: LineJob) -> None:
        """Inference thread: animate one line and hand it to the player."""
        try:
            assert self._player is not None
            run_line(job, self.engine, self._player.submit, self._outputs)
        finally:
            self._release_queue_slot()

    def _run_bake(self, envelope: list[bytes], job: BakeJob, req_id: Any) -> None:
        """Inference thread: bake and queue the reply for the request thread."""
        try:
            reply = run_bake(job, self.engine)
        finally:
            self._release_queue_slot()
        if not reply.get("ok"):
            self.counters["errors"] += 1
        if req_id is not None:
            reply["req_id"] = req_id
        self._defer(envelope, reply)

    def _select_outputs(self, transports: Any) -> list[Output] | None:
        if transports is None:
            return None
        if (
            not isinstance(transports, list)
            or not transports
            or not all(isinstance(t, str) for t in transports)
        ):
            raise RequestError("bad_request", "transports must be a non-empty list of names")
        unknown = [t for t in transports if t not in self._by_kind]
        if unknown:
            raise RequestError(
                "bad_request",
                f"transport {unknown[0]!r} is not enabled on this service; enabled: "
                f"{', '.join(self._by_kind)}",
            )
        return [o for t in dict.fromkeys(transports) for o in self._by_kind[t]]

    def _mapping(self, name: str) -> Any:
        """A mapping by name: a shipped one, or a file stem in ``mappings_dir``; never a path."""
        from bridge.mapping import SHIPPED_MAPPINGS, load_mapping

        if not name.replace("_", "").replace("-", "").replace(".", "").isalnum() or ".." in name:
            raise RequestError("bad_request", f"mapping {name!r}: give a mapping name, not a path")
        if name not in self._mappings:
            source: str | None = name if name in SHIPPED_MAPPINGS else None
            folder = self.config.mappings_dir
            if source is None and folder is not None:
                candidate = Path(folder) / f"{name}.yaml"
                source = str(candidate) if candidate.is_file() else None
            if source is None:
                extra = " or the service's mappings folder" if folder else ""
                raise RequestError(
                    "bad_request",
                    f"mapping {name!r}: not a shipped mapping ({', '.join(SHIPPED_MAPPINGS)})"
                    f"{extra}",
                )
            try:
                self._mappings[name] = load_mapping(source)
            except ValueError as e:
                raise RequestError("bad_request", f"mapping {name!r}: {e}") from None
        return self._mappings[name]

    def _audio(self, request: dict[str, Any]) -> AudioRef:
        """The request's audio, checked from its header; decoding is the worker's job."""
        has_path, has_bytes = "audio" in request, "audio_b64" in request
        if has_path == has_bytes:
            raise RequestError("bad_request", "give exactly one of audio (a path) or audio_b64")
        if has_path:
            roots = [Path(r) for r in self.config.audio_roots]
            ref = audio_in_roots(text_field(request, "audio"), roots)
        else:
            ref = audio_from_b64(text_field(request, "audio_b64"))
        try:
            return check_audio(ref, self.config.max_audio_s)
        except RequestError:
            ref.discard()
            raise

    def _check_player(self) -> None:
        """Refuse new lines when the player thread is gone (they would never play)."""
        player = self._player
        if player is None or not player.alive:
            reason = player.failure if player is not None else "not started"
            raise RequestError(
                "internal", f"the frame player has stopped ({reason}); restart the service"
            )

    def _check_capacity(self, subject: str, start_at: float | None) -> None:
        """Bound the subjects kept and the lines waiting for a future start time."""
        with self._lines_lock:
            live = [r for r in self._lines.values() if not r.final]
        subjects = {r.subject for r in live}
        if self._player is not None:
            subjects |= set(self._player.subjects())
        if subject not in subjects and len(subjects) >= self.config.max_subjects:
            raise RequestError(
                "busy",
                f"{len(subjects)} subjects are in use; this service takes at most "
                f"{self.config.max_subjects} (--max-subjects)",
            )
        if start_at is not None and start_at > time.time():
            waiting = sum(r.state in ("queued", "computing", "scheduled") for r in live)
            if waiting >= self.config.max_scheduled:
                raise RequestError(
                    "busy",
                    f"{waiting} lines are waiting to start; at most "
                    f"{self.config.max_scheduled} may (--max-scheduled)",
                )
