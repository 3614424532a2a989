"""``emoface live`` as a library: a live audio source -> a stream -> a subject's transports.

``LiveRunner`` is the clocked loop: it reads the source, fills gaps in a real-time feed with
silence so the frame clock keeps running, applies control commands (``emotion SPEC``, ``quit``)
between chunks, and hands frames to a sink. With a playout delay a playout thread releases frame
``i`` at ``capture time of audio sample 0 + delay + i / 60`` (a jitter buffer, paced by
``runtime.clock.FrameClock``), so receivers see a steady 60 fps at a constant latency while the
next block computes. ``run_live(config, engine, outputs)`` wires a source, an engine's stream,
a ``SubjectStream`` and the controls together the way the command does, so it can be driven
from Python or a test with a fake clock and a recording sender.
"""

from __future__ import annotations

import logging
import math
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bridge.protocol import EndReason, loads_json
from bridge.runtime.clock import FrameClock
from bridge.runtime.subject import Output, SubjectStream, check_subject
from emoface_core.audio import FPS, SAMPLE_RATE
from emoface_core.emotion import parse_emotion_spec
from emoface_core.engines.base import Engine, StreamConfig
from emoface_core.errors import ConfigError, EmoFaceError
from emoface_core.streaming import Stream, Streamer

log = logging.getLogger(__name__)

LATENCY_WINDOW = 36_000  # frames of latency kept for percentiles (10 minutes at 60 fps)

LATE_TOLERANCE_S = 0.004  # a frame released this much after its playout time counts as late
DEFAULT_MAX_BACKLOG_S = 1.0  # frames waiting for playout beyond this: the oldest are dropped
MAX_COMMAND_BYTES = 4096  # a control message longer than this is refused unread
MAX_COMMAND_DEPTH = 4  # JSON nesting a control message may have ({"emotion": "sad"}: 1)
_ARRIVALS_KEPT = 2048  # chunk arrival times kept for latency (40 s of 20 ms chunks)


@dataclass
class LiveStats:
    """What a ``LiveRunner`` saw.

    Attributes:
        n_chunks: audio chunks received.
        n_samples: audio samples received (16 kHz).
        n_gap_samples: silence samples added for gaps in the feed.
        n_gaps: gaps filled.
        n_frames: frames handed to the sink.
        n_emotion_changes: emotion changes applied.
        n_bad_commands: control messages that were refused (malformed ones included).
        n_late: frames released after their playout time (a few ms of tolerance).
        n_dropped_frames: frames dropped unplayed because the playout backlog passed its bound
            (a feed faster than real time); their audio is lost to the face.
        latency_s: per frame, sink time minus when its audio was there: the capture time of
            the frame's first sample, or the arrival of the chunk holding it when that came
            earlier (a feed running ahead queues instead); real-time sources only, the last
            ``LATENCY_WINDOW`` frames.
        compute_s: per stream call, seconds spent computing (the last ``LATENCY_WINDOW`` calls).
        duration_s: wall time of the run.
        end_reason: "source ended", "stopped" or "quit".
    """

    n_chunks: int = 0
    n_samples: int = 0
    n_gap_samples: int = 0
    n_gaps: int = 0
    n_frames: int = 0
    n_emotion_changes: int = 0
    n_bad_commands: int = 0
    n_late: int = 0
    n_dropped_frames: int = 0
    latency_s: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    compute_s: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    duration_s: float = 0.0
    end_reason: str = ""

    def latency_percentile(self, q: float) -> float:
        """The ``q``-th percentile of ``latency_s`` in seconds (NaN when empty)."""
        return float(np.percentile(self.latency_s, q)) if self.latency_s else float("nan")


class AudioFeed(Protocol):
    """What ``LiveRunner`` needs from a source (see ``bridge.sources``)."""

    realtime: bool  # delivers audio at the pace it is captured (gaps are then real gaps)

    def read(self, timeout_s: float) -> np.ndarray | None:
        """Next 16 kHz mono chunk; empty if none arrived within ``timeout_s``; None at the end."""
        ...


class CommandInput(Protocol):
    """A control input (UDP control port, keyboard): text commands such as ``emotion sad``."""

    def poll(self) -> list[str]:
        """Commands received since the last call (never blocks)."""
        ...


class LiveRunner:
    """Runs one stream from a live source to a frame sink until the source ends.

    Frames become final in blocks (a network call makes ``hop_frames`` at once). With a
    ``playout_delay_s`` a playout thread releases them one by one at ``capture time + delay``
    (a jitter buffer), so receivers see a steady 60 fps at a constant latency while the next
    block computes; frames computed later than that go out at once and count as late. Without
    one, each block goes out as soon as it is computed (lowest latency, in bursts).

    Args:
        source: the audio feed.
        stream: the stream to drive.
        sink: called with each block of new frames ``[n, 174]`` and the index of its first frame.
        controls: command inputs polled between chunks (``emotion SPEC``, ``quit``).
        gap_timeout_s: a real-time source silent this long has a gap; silence fills it up to the
            wall clock so frames keep flowing and the face relaxes.
        playout_delay_s: release frame ``i`` at its capture time plus this (real-time sources);
            None sends frames as soon as they are computed.
        poll_s: longest wait for audio before checking controls, gaps and due frames again.
        clock: monotonic seconds (injectable for tests).
        sleep: sleeps for the given seconds (injectable for tests).
        stop: returns True to stop early (e.g. ``threading.Event.is_set``).
        max_backlog_s: frames waiting for playout may cover at most this much time; beyond
            it the oldest are dropped (counted) and the clock moves on, so a feed faster than
            real time cannot build an unbounded queue or delay.
        on_event: called on the main thread with ``(kind, text)`` for what a person watching
            wants to hear about at once: ``("emotion", spec)``, ``("refused", reason)``,
            ``("gap", "")``, ``("dropped", n_frames)``.
    """

    def __init__(
        self,
        source: AudioFeed,
        stream: Stream,
        sink: Callable[[np.ndarray, int], None],
        *,
        controls: Sequence[CommandInput] = (),
        gap_timeout_s: float = 0.2,
        playout_delay_s: float | None = None,
        poll_s: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        stop: Callable[[], bool] | None = None,
        max_backlog_s: float = DEFAULT_MAX_BACKLOG_S,
        on_event: Callable[[str, str], None] | None = None,
    ) -> None:
        if max_backlog_s <= 0:
            raise ConfigError(f"max_backlog_s must be > 0, but {max_backlog_s} is given")
        if gap_timeout_s <= 0:
            raise ConfigError(f"gap_timeout_s must be > 0, but {gap_timeout_s} is given")
        if poll_s <= 0:
            raise ConfigError(f"poll_s must be > 0, but {poll_s} is given")
        if playout_delay_s is not None and playout_delay_s < 0:
            raise ConfigError(f"playout_delay_s must be >= 0, but {playout_delay_s} is given")
        self.source = source
        self.stream = stream
        self.sink = sink
        self.controls = list(controls)
        self.gap_timeout_s = gap_timeout_s
        self.playout_delay_s = playout_delay_s if source.realtime else None
        self.poll_s = poll_s
        self.clock = clock
        self.sleep = sleep
        self.stop = stop or (lambda: False)
        self.max_backlog_s = max_backlog_s
        self.on_event = on_event or (lambda kind, text: None)
        self.stats = LiveStats()
        self._lock = threading.Lock()  # the playout thread reads what the main thread writes
        self._arrival_ends: deque[int] = deque(maxlen=_ARRIVALS_KEPT)  # sample index after chunk
        self._arrival_times: deque[float] = deque(maxlen=_ARRIVALS_KEPT)
        self._n_played = 0  # frames the playout thread has released or dropped
        self._drop_below = 0  # frames with a lower index are dropped unplayed
        self._anchor: float | None = None  # clock time at which audio sample 0 was captured
        self._anchor_wall: float | None = None  # the same on the wall clock (Unix seconds)
        self._in_gap = False
        self._n_queued = 0  # frames computed
        self._playout: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue()
        self._playout_thread: threading.Thread | None = None
        self._abort = threading.Event()
        self._playout_error: BaseException | None = None
        # The one pacing rule (R5): frame i is due at anchor + delay + i / fps; late frames
        # are counted, never skipped (a live face must not stutter to catch up).
        self._frame_clock = FrameClock(
            FPS,
            clock=clock,
            sleep=sleep,
            late_tolerance_s=LATE_TOLERANCE_S,
            skip_after_s=math.inf,
        )

    @property
    def anchor_wall_s(self) -> float | None:
        """Wall-clock time (Unix seconds) at which the first audio sample was captured."""
        return self._anchor_wall

    def run(self) -> LiveStats:
        """Stream until the source ends, ``stop`` says so, or a ``quit`` command arrives."""
        started = self.clock()
        stats = self.stats
        last_audio = started
        if self.playout_delay_s is not None:
            self._playout_thread = threading.Thread(
                target=self._playout_loop, name="emoface-playout", daemon=True
            )
            self._playout_thread.start()
        finished = False
        try:
            while True:
                if self._playout_error is not None:
                    raise self._playout_error
                if self.stop():
                    stats.end_reason = "stopped"
                    break
                if self._handle_commands():
                    stats.end_reason = "quit"
                    break
                chunk = self.source.read(self.poll_s)
                now = self.clock()
                if chunk is None:
                    stats.end_reason = "source ended"
                    self._queue(self._timed(self.stream.finish))
                    finished = True
                    break
                if chunk.size:
                    if self._anchor is None:
                        self._anchor = now - chunk.size / SAMPLE_RATE
                        self._anchor_wall = time.time() - chunk.size / SAMPLE_RATE
                        if self.playout_delay_s is not None:
                            self._frame_clock.start(self._anchor, offset_s=self.playout_delay_s)
                    stats.n_chunks += 1
                    stats.n_samples += chunk.size
                    with self._lock:
                        self._arrival_ends.append(self.stream.n_samples_in + chunk.size)
                        self._arrival_times.append(now)
                    last_audio = now
                    self._in_gap = False
                    self._queue(self._timed(self.stream.process, chunk))
                elif (
                    self._anchor is not None
                    and self.source.realtime
                    and now - last_audio > self.gap_timeout_s
                ):
                    self._fill_gap(now)
        finally:
            self._stop_playout(drain=finished)
            stats.duration_s = self.clock() - started
        if self._playout_error is not None:
            raise self._playout_error
        return stats

    def _fill_gap(self, now: float) -> None:
        """Add silence up to the wall clock (minus the timeout, the feed's jitter allowance)."""
        assert self._anchor is not None
        behind = (
            int((now - self.gap_timeout_s - self._anchor) * SAMPLE_RATE) - self.stream.n_samples_in
        )
        if behind <= 0:
            return
        if not self._in_gap:
            self.stats.n_gaps += 1
            log.info("audio feed gap: filling with silence")
            self.on_event("gap", "")
        self._in_gap = True
        self.stats.n_gap_samples += behind
        self._queue(self._timed(self.stream.process_gap, behind))

    def _timed(self, fn: Callable[..., np.ndarray], *args: Any) -> np.ndarray:
        t0 = time.perf_counter()
        frames = fn(*args)
        self.stats.compute_s.append(time.perf_counter() - t0)
        return frames

    def _queue(self, frames: np.ndarray) -> None:
        if not len(frames):
            return
        first = self._n_queued
        self._n_queued += len(frames)
        if self._playout_thread is None or self._anchor is None:
            self._emit(frames, first)
            return
        self._bound_backlog(first)
        self._playout.put((first, frames))

    def _bound_backlog(self, first: int) -> None:
        """Drop the oldest unplayed frames when they cover more than ``max_backlog_s``.

        The frame clock moves on by what is dropped, so the frames kept go out on time instead
        of ever later; a feed faster than real time then costs dropped frames, not delay.
        """
        keep = max(1, int(self.max_backlog_s * FPS))
        with self._lock:
            waiting = self._n_queued - max(self._n_played, self._drop_below)
            if waiting <= keep:
                return
            new_floor = self._n_queued - keep
            n_drop = new_floor - max(self._n_played, self._drop_below)
            self._drop_below = new_floor
            self.stats.n_dropped_frames += n_drop
            self._frame_clock.offset_s -= n_drop / FPS
        log.info("playout backlog over %.2f s: dropped %d frames", self.max_backlog_s, n_drop)
        self.on_event("dropped", str(n_drop))

    def _playout_loop(self) -> None:
        """Playout thread: hand each frame to the sink at its due time."""
        try:
            while not self._abort.is_set():
                item = self._playout.get()
                if item is None:
                    return
                first, frames = item
                for i in range(len(frames)):
                    with self._lock:
                        dropped = first + i < self._drop_below
                        self._n_played = first + i + 1
                    if dropped:
                        continue
                    self._frame_clock.wait(first + i)
                    if self._abort.is_set():
                        return
                    self._emit(frames[i : i + 1], first + i)
                    self.stats.n_late = self._frame_clock.stats.n_late
        except BaseException as e:  # noqa: BLE001 - surfaced by run() on the main thread
            self._playout_error = e

    def _stop_playout(self, *, drain: bool) -> None:
        """End the playout thread: after the queued frames (drain), or now."""
        if self._playout_thread is None:
            return
        if not drain:
            self._abort.set()
        self._playout.put(None)
        self._playout_thread.join()
        self._playout_thread = None

    def _emit(self, frames: np.ndarray, first: int) -> None:
        self.sink(frames, first)
        self.stats.n_frames += len(frames)
        if self._anchor is not None and self.source.realtime:
            now = self.clock()
            index = np.arange(first, first + len(frames))
            there = np.minimum(self._anchor + index / FPS, self._arrival_of(index))
            self.stats.latency_s.extend((now - there).tolist())

    def _arrival_of(self, frames: np.ndarray) -> np.ndarray:
        """When the chunk holding each frame's first sample arrived (inf when not known)."""
        with self._lock:
            ends = np.fromiter(self._arrival_ends, dtype=np.int64)
            times = np.fromiter(self._arrival_times, dtype=np.float64)
        samples = frames * SAMPLE_RATE // FPS
        k = np.searchsorted(ends, samples, side="right")
        known = k < len(times)
        out = np.full(len(frames), np.inf)
        out[known] = times[k[known]]
        return out

    def _handle_commands(self) -> bool:
        """Apply pending commands; True when one asks to quit."""
        for control in self.controls:
            try:
                texts = control.poll()
            except Exception as e:  # noqa: BLE001 - a broken input must not end the session
                self.stats.n_bad_commands += 1
                log.warning("control input failed: %s", e)
                continue
            for text in texts:
                try:  # every message is handled alone: a bad one is counted, the run goes on
                    if apply_command(self.stream, text):
                        return True
                    self.stats.n_emotion_changes += 1
                    self.on_event("emotion", self.stream.emotion.timeline.to_spec())
                except Exception as e:  # noqa: BLE001 - counted as a bad command
                    self.stats.n_bad_commands += 1
                    reason = str(e) if isinstance(e, (ValueError, EmoFaceError)) else repr(e)
                    log.warning("ignored control message %r: %s", text[:80], reason[:200])
                    self.on_event("refused", f"{text[:40]!r}: {reason[:120]}")
        return False


def apply_command(stream: Stream, text: str) -> bool:
    """Apply one control command to ``stream``; True when it asks to quit.

    Commands (text, case-insensitive verb): ``emotion SPEC`` (e.g. ``emotion sad:0.5``), a bare
    emotion spec, ``{"emotion": "SPEC"}`` as JSON, or ``quit``.

    Raises:
        ValueError: an empty or unknown command, or a spec that does not parse.
    """
    if len(text) > MAX_COMMAND_BYTES:
        raise ValueError(f"control message of {len(text)} characters; at most {MAX_COMMAND_BYTES}")
    text = text.strip()
    if not text:
        raise ValueError("empty control message")
    if text.startswith("{"):
        try:
            message = loads_json(text, max_bytes=MAX_COMMAND_BYTES, max_depth=MAX_COMMAND_DEPTH)
        except ValueError as e:
            raise ValueError(f"control message is not usable JSON ({e})") from None
        if not isinstance(message, dict) or not isinstance(message.get("emotion"), (str, int)):
            raise ValueError('a JSON control message needs {"emotion": "SPEC"}')
        stream.set_emotion(message["emotion"])
        return False
    verb, _, arg = text.partition(" ")
    if verb.lower() in ("quit", "stop", "exit"):
        return True
    spec = arg if verb.lower() == "emotion" else text
    if not spec.strip():
        raise ValueError("'emotion' needs a spec, e.g. 'emotion happy:0.6'")
    stream.set_emotion(spec)
    return False


PLAYOUT_MARGIN_FACTOR = 1.5  # default playout slack: the slowest warm-up step, and half again
PLAYOUT_MIN_MARGIN_S = 0.01
# The playout thread must wake on time while the main thread computes; CPython hands the GIL
# over only every 5 ms by default, which showed as frames up to 5 ms late (bench_realtime).
PLAYOUT_SWITCH_INTERVAL_S = 0.001
NORM_CHOICES = ("auto", "cumulative", "adaptive")


@dataclass(frozen=True)
class LiveConfig:
    """One live session: where audio comes from, how it streams, where frames go.

    Attributes:
        source: ``mic[:DEVICE]``, ``stdin``, ``file:PATH``, ``zmq:ENDPOINT``,
            ``zmq+connect:ENDPOINT`` or ``udp:HOST:PORT`` (``bridge.sources.parse_source``).
        subject: the NPC name frames are sent under.
        emotion: the initial emotion spec.
        seed: seeds blinks, gaze and procedural idle motion.
        raw: engine output only (no smoothing, blinks or gaze).
        sample_rate: raw PCM input rate (stdin, zmq, udp; also the microphone's).
        channels: interleaved channels of raw PCM input.
        sample_format: ``s16le``, ``s32le`` or ``f32le``.
        chunk_ms: read size.
        realtime: a file source is read at the pace of its audio (False: as fast as possible).
        idle_timeout_s: a UDP source ends after this long without a datagram.
        stream: the stream's windows (network) and normalisation.
        norm: ``auto`` picks cumulative statistics for files and adaptive ones for open feeds.
        gap_timeout_s: a real-time source silent this long has a gap (silence fills it).
        playout_s: send each frame this long after its audio was captured; None picks the
            stream's latency plus a measured compute margin; 0 sends frames as computed.
        start_delay_s: wait after opening sockets so subscribers can connect.
        control_port: UDP text commands on 127.0.0.1:PORT (None: off).
        keys: read keys 0-6 and q from the terminal (when stdin is one and not the source).
        schema_interval_s: how often the schema is repeated.
        max_backlog_s: frames waiting for playout beyond this are dropped, oldest first.
        head: head motion scale (``emoface_core.head_stream``; 0 = none); raw has none.
    """

    source: str
    subject: str = "emoface"
    emotion: str = "neutral"
    seed: int | None = None
    raw: bool = False
    sample_rate: int = 16000
    channels: int = 1
    sample_format: str = "s16le"
    chunk_ms: float = 20.0
    realtime: bool = True
    idle_timeout_s: float | None = None
    stream: StreamConfig = field(default_factory=StreamConfig)
    norm: str = "auto"
    gap_timeout_s: float = 0.2
    playout_s: float | None = None
    start_delay_s: float = 0.3
    control_port: int | None = None
    keys: bool = True
    schema_interval_s: float = 0.5
    max_backlog_s: float = DEFAULT_MAX_BACKLOG_S
    head: float = 1.0

    def __post_init__(self) -> None:
        check_subject(self.subject)
        parse_emotion_spec(self.emotion)
        if self.norm not in NORM_CHOICES:
            raise ConfigError(f"norm must be one of {NORM_CHOICES}, but {self.norm!r} is given")
        for name in ("chunk_ms", "gap_timeout_s", "schema_interval_s", "max_backlog_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, but {getattr(self, name)} is given")
        for name in ("playout_s", "start_delay_s"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ConfigError(f"{name} must be >= 0, but {value} is given")


@dataclass
class LiveResult:
    """How a live session ended.

    Attributes:
        stats: what the runner saw.
        senders: the senders frames went through (their stats name drops and errors).
        source_name: the source, for messages.
        interrupted: Ctrl-C ended it.
    """

    stats: LiveStats
    senders: list[Any]
    source_name: str
    interrupted: bool = False


class LineSink:
    """Frames from the runner -> the subject's transports, starting the line on the first one."""

    def __init__(
        self, stream: SubjectStream, emotion: str, engine: str, audio: Path | None = None
    ) -> None:
        self.stream = stream
        self.anchor: Callable[[], float | None] = lambda: None  # wall time of audio sample 0
        self.info: dict[str, Any] = {"emotion": emotion, "engine": engine, "live": True}
        if audio is not None:  # a file source: the editor plays it, from its own directory
            self.info["audio"] = str(Path(audio).resolve())

    def __call__(self, frames: np.ndarray, first: int) -> None:
        """Send ``frames`` (``[n, 174]``, or ``[n, 177]`` with the head; the first is ``first``)."""
        if not self.stream.line_active:
            self.stream.start_line(n_frames=0, info=self.info, t_audio_start=self.anchor())
        for i, frame in enumerate(frames):
            self.stream.push(frame, (first + i) / FPS)


def stream_config_for(config: LiveConfig, source: Any) -> StreamConfig:
    """The session's ``StreamConfig``: ``norm=auto`` becomes cumulative for files, else adaptive."""
    from dataclasses import replace

    from bridge.sources import FileSource

    if config.norm == "auto":
        norm = "cumulative" if isinstance(source, FileSource) else "adaptive"
        return replace(config.stream, norm=norm)
    return replace(config.stream, norm=config.norm)


def warm_up(streamer: Streamer) -> float:
    """Run a throwaway stream so live frames do not pay for lazy set-up.

    Returns:
        The slowest call of its second half, in seconds: what one step costs on this machine.
    """
    stream = streamer.open("neutral", seed=0)
    chunk = np.zeros(320, dtype=np.float32)
    times = []
    for _ in range(100):  # 2 s in 20 ms chunks
        t0 = time.perf_counter()
        stream.process(chunk)
        times.append(time.perf_counter() - t0)
    stream.finish()
    return max(times[50:])


def playout_delay_s(config: LiveConfig, stream: Stream, step_s: float) -> float | None:
    """The playout delay: the configured one, or the stream's latency plus a compute margin.

    The margin is the slowest warm-up step and half again (at least 10 ms).
    """
    if config.playout_s is not None:
        return config.playout_s or None
    margin_s = max(PLAYOUT_MIN_MARGIN_S, PLAYOUT_MARGIN_FACTOR * step_s)
    return stream.algorithmic_latency_s(config.chunk_ms / 1000.0) + margin_s


def run_live(
    config: LiveConfig,
    engine: Engine,
    outputs: Sequence[Output],
    *,
    source: Any = None,
    controls: Sequence[CommandInput] | None = None,
    stop: Callable[[], bool] | None = None,
    report: Callable[[str], None] | None = None,
    on_event: Callable[[str, str], None] | None = None,
    on_stats: Callable[[LiveStats], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> LiveResult:
    """Animate one live source until it ends, sending frames to ``outputs``.

    Args:
        config: the session.
        engine: the animator (options such as a fast mode already applied).
        outputs: senders with their mappings (``runtime.subject.outputs_for``); opened here.
        source: an ``AudioSource``-like feed instead of ``config.source`` (tests).
        controls: command inputs instead of the configured control port and keys.
        stop: returns True to end the session (e.g. on SIGTERM).
        report: gets the one-line announcement once the session is set up.
        on_event: gets what happens while it runs (``LiveRunner``'s ``on_event``).
        on_stats: gets the runner's live statistics object once, before it runs (a status
            display reads it while the session goes on).
        clock: monotonic seconds for the runner and its playout (a fake one in tests).
        sleep: sleeps for the given seconds (a fake one in tests).

    Returns:
        The runner's statistics and how the session ended.

    Raises:
        SourceError: the source cannot be opened.
    """
    from contextlib import ExitStack

    from bridge.controls import KeyboardControl, UdpControl
    from bridge.sources import parse_source

    timeline = parse_emotion_spec(config.emotion)
    if source is None:
        source = parse_source(
            config.source,
            sample_rate=config.sample_rate,
            channels=config.channels,
            sample_format=config.sample_format,
            realtime=config.realtime,
            chunk_ms=config.chunk_ms,
            idle_timeout_s=config.idle_timeout_s,
        )
    senders = list({id(o.sender): o.sender for o in outputs}.values())
    streamer = Streamer(engine, stream_config_for(config, source))
    step_s = warm_up(streamer)
    with ExitStack() as stack:
        for sender in senders:
            stack.enter_context(sender)
        inputs: list[Any] = list(controls) if controls is not None else []
        if controls is None and config.control_port is not None:
            inputs.append(stack.enter_context(UdpControl(port=config.control_port)))
        if (
            controls is None
            and config.keys
            and config.source not in ("stdin", "-")
            and sys.stdin.isatty()
        ):
            inputs.append(stack.enter_context(KeyboardControl()))
        subject = SubjectStream(config.subject, outputs, schema_interval_s=config.schema_interval_s)
        if config.start_delay_s:
            sleep(config.start_delay_s)
        stack.enter_context(source)
        stream = streamer.open(
            timeline,
            seed=config.seed,
            raw=config.raw,
            expected_samples=getattr(source, "expected_samples", None),
        )
        if config.head > 0.0 and not config.raw:
            from bridge.runtime.head import HeadedStream
            from emoface_core.head_stream import HeadStream

            head = HeadStream(seed=config.seed, scale=config.head)
            stream = HeadedStream(stream, head)  # type: ignore[assignment]  # a Stream + head
        delay_s = playout_delay_s(config, stream, step_s) if source.realtime else None
        if delay_s is not None:
            stack.callback(sys.setswitchinterval, sys.getswitchinterval())
            sys.setswitchinterval(PLAYOUT_SWITCH_INTERVAL_S)
        if report is not None:
            report(_announcement(config, source, senders, stream, delay_s, inputs))
        sink = LineSink(
            subject, timeline.to_spec(), engine.name, audio=getattr(source, "path", None)
        )
        runner = LiveRunner(
            source,
            stream,
            sink,
            controls=inputs,
            gap_timeout_s=config.gap_timeout_s,
            playout_delay_s=delay_s,
            clock=clock,
            sleep=sleep,
            stop=stop,
            max_backlog_s=config.max_backlog_s,
            on_event=on_event,
        )
        sink.anchor = lambda: runner.anchor_wall_s
        if on_stats is not None:
            on_stats(runner.stats)
        result = LiveResult(runner.stats, senders, source.name)
        reason = EndReason.SHUTDOWN
        try:
            stats = runner.run()
            reason = (
                EndReason.FINISHED if stats.end_reason == "source ended" else EndReason.INTERRUPTED
            )
        except KeyboardInterrupt:
            result.interrupted = True
            reason = EndReason.INTERRUPTED
        finally:
            subject.end_line(reason)
    return result


def _announcement(
    config: LiveConfig,
    source: Any,
    senders: Sequence[Any],
    stream: Stream,
    delay_s: float | None,
    inputs: Sequence[Any],
) -> str:
    from bridge.controls import KeyboardControl, UdpControl

    latency_ms = 1000 * stream.algorithmic_latency_s(config.chunk_ms / 1000)
    hints = [
        f"algorithmic latency {latency_ms:.0f} ms",
        "frames sent as computed" if delay_s is None else f"playout {1000 * delay_s:.0f} ms",
    ]
    for control in inputs:
        if isinstance(control, UdpControl):
            hints.append(f"commands on udp:{control.host}:{control.port}")
        elif isinstance(control, KeyboardControl):
            hints.append("keys 0-6 set the emotion, q quits")
    where = ", ".join(f"{s.kind} {s.address}" for s in senders)
    return f"emoface live: {source.name} -> {config.subject} via {where} ({'; '.join(hints)})"
