"""The editor-tick side of live drive, without Unreal: drain packets, newest frame per subject.

``LiveSession.tick()`` runs once per editor tick on the game thread. It drains everything the
reader thread queued, feeds the protocol ``Decoder`` (which drops malformed, duplicate and stale
packets and counts them), and returns what the editor should do this tick:

* ``frames``: the newest accepted frame per subject; older frames that arrived in the same tick
  are counted as superseded, never applied (a late pose is worse than a skipped one);
* ``schemas``: subjects whose target names changed (rebind the rig plan);
* ``prepare_audio``: a line's audio as soon as its START arrives, so the editor imports the
  file before it is due (an import takes a while; done at play time it would start late);
* ``play_audio`` / ``stop_audio``: a line's audio, due when audio time 0 plays at the START
  message's wall time plus the user's offset; the event carries that wall time, so the editor
  computes the seek after any import, when it actually starts the sound;
* ``idle``: subjects whose frames stopped for longer than the watchdog timeout (face to rest).

It never raises on input: anything wrong is counted and kept as ``last_error``.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from emoface_unreal import protocol

AUDIO_INFO_KEYS = ("audio", "audio_path", "source_audio", "source")  # START info keys, in order
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")


@dataclass
class SubjectState:
    """What the session knows about one subject."""

    subject: str
    schema: protocol.Schema | None = None
    line: protocol.StreamStart | None = None
    last_frame: protocol.Frame | None = None
    last_frame_wall: float = 0.0
    n_applied: int = 0
    n_superseded: int = 0
    lag_ms: float | None = None
    latency_ms: float | None = None
    idle: bool = True
    audio_due: tuple[str, float] | None = None  # (path, wall time at which audio time 0 plays)


@dataclass
class TickEvents:
    """What one tick asks the editor to do (see the module docstring)."""

    frames: dict[str, protocol.Frame] = field(default_factory=dict)
    schemas: list[protocol.Schema] = field(default_factory=list)
    starts: list[protocol.StreamStart] = field(default_factory=list)
    ends: list[protocol.StreamEnd] = field(default_factory=list)
    prepare_audio: list[tuple[str, str]] = field(default_factory=list)  # subject, path
    play_audio: list[tuple[str, str, float]] = field(default_factory=list)  # subject, path, play_at
    stop_audio: list[str] = field(default_factory=list)
    idle: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(
            (
                self.frames,
                self.schemas,
                self.starts,
                self.ends,
                self.prepare_audio,
                self.play_audio,
                self.stop_audio,
                self.idle,
            )
        )


def audio_of(start: protocol.StreamStart) -> str:
    """The audio file a START message names, or ""."""
    for key in AUDIO_INFO_KEYS:  # `emoface stream line.wav` sends {"source": "line.wav", ...}
        value = start.info.get(key)
        if isinstance(value, str) and value.lower().endswith(AUDIO_EXTENSIONS):
            return value
    return ""


class LiveSession:
    """Decodes queued packets into per-tick events for the subjects being driven.

    Args:
        subjects: the subjects to follow (others are counted and ignored).
        packets: the reader thread's queue of ``(wall time, packet)``.
        watchdog_timeout_s: rest the face after this long without frames.
        audio_offset_s: audio starts this much after the line's audio time 0 (negative: earlier).
        play_audio: schedule the line's audio at all.
        clock: wall clock in seconds (inject a fake in tests).
    """

    def __init__(
        self,
        subjects: Iterable[str],
        packets: queue.Queue,
        *,
        watchdog_timeout_s: float = 0.5,
        audio_offset_s: float = 0.0,
        play_audio: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.subjects = tuple(subjects)
        self.packets = packets
        self.watchdog_timeout_s = watchdog_timeout_s
        self.audio_offset_s = audio_offset_s
        self.play_audio = play_audio
        self.clock = clock
        self.decoder = protocol.Decoder(self.subjects)
        self.state = {s: SubjectState(s) for s in self.subjects}
        self.n_ticks = 0
        self.last_error = ""
        self.last_error_wall = 0.0
        self._n_malformed_seen = 0

    def tick(self, max_packets: int | None = None) -> TickEvents:
        """Drain the queue and return this tick's events (never raises on packet content)."""
        self.n_ticks += 1
        events = TickEvents()
        limit = max_packets if max_packets is not None else max(self.packets.maxsize, 64) * 2
        for _ in range(limit):  # bounded, so a flood cannot stall the editor in one tick
            try:
                recv_wall, packet = self.packets.get_nowait()
            except queue.Empty:
                break
            self._feed(recv_wall, packet, events)
        now = self.clock()
        self._schedule_audio(now, events)
        self._watchdog(now, events)
        return events

    def _feed(self, recv_wall: float, packet: bytes, events: TickEvents) -> None:
        message = self.decoder.feed(packet)
        if self.decoder.stats.n_malformed != self._n_malformed_seen:
            self._n_malformed_seen = self.decoder.stats.n_malformed
            if packet:  # an empty packet stands for one the transport could not read; it said why
                self._error(self._why_malformed(packet))
        if message is None:
            return
        state = self.state[message.subject]
        if isinstance(message, protocol.Frame):
            pending = events.frames.get(message.subject)
            if pending is not None:
                state.n_superseded += 1
            events.frames[message.subject] = message
            state.last_frame = message
            state.last_frame_wall = recv_wall
            state.idle = False
            state.latency_ms = (recv_wall - message.t_capture) * 1000 if message.t_capture else None
            line = state.line
            if line is not None and line.line_id == message.line_id:
                state.lag_ms = (recv_wall - (line.t_capture + message.t_s)) * 1000
            else:
                state.lag_ms = None
        elif isinstance(message, protocol.Schema):
            if state.schema is None or state.schema.schema_id != message.schema_id:
                events.schemas.append(message)
            state.schema = message
        elif isinstance(message, protocol.StreamStart):
            if state.line is not None:  # a new line cuts the previous line's audio
                events.stop_audio.append(message.subject)
            state.line = message
            path = audio_of(message)
            state.audio_due = (
                (path, message.t_capture + self.audio_offset_s)
                if path and self.play_audio
                else None
            )
            if state.audio_due is not None:
                events.prepare_audio.append((message.subject, path))
            events.starts.append(message)
        elif isinstance(message, protocol.StreamEnd):
            if message.reason != protocol.EndReason.FINISHED:
                events.stop_audio.append(message.subject)
                state.audio_due = None
            events.ends.append(message)

    def _why_malformed(self, packet: bytes) -> str:
        try:
            protocol.decode(packet)
        except protocol.ProtocolError as e:
            return f"malformed packet ({len(packet)} bytes): {e}"
        return f"malformed packet ({len(packet)} bytes)"

    def _schedule_audio(self, now: float, events: TickEvents) -> None:
        for state in self.state.values():
            if state.audio_due is None:
                continue
            path, play_at = state.audio_due
            if now >= play_at:
                events.play_audio.append((state.subject, path, play_at))
                state.audio_due = None

    def _watchdog(self, now: float, events: TickEvents) -> None:
        for state in self.state.values():
            if (
                not state.idle
                and state.subject not in events.frames
                and now - state.last_frame_wall > self.watchdog_timeout_s
            ):
                state.idle = True
                events.idle.append(state.subject)

    def _error(self, message: str) -> None:
        self.last_error = message
        self.last_error_wall = self.clock()

    def note_error(self, message: str) -> None:
        """Record an error found while applying (shown in the status)."""
        self._error(message)

    def count_applied(self, subject: str) -> None:
        """Count a frame that reached the rig."""
        self.state[subject].n_applied += 1

    @property
    def n_frames_applied(self) -> int:
        """Frames that reached a rig, all subjects."""
        return sum(s.n_applied for s in self.state.values())

    @property
    def n_superseded(self) -> int:
        """Frames replaced by a newer one before they could be applied."""
        return sum(s.n_superseded for s in self.state.values())

    @property
    def n_dropped(self) -> int:
        """Frames that never reached a rig: superseded, stale, duplicate, unnamed, lost."""
        st = self.decoder.stats
        return (
            self.n_superseded
            + st.n_duplicates
            + st.n_out_of_order
            + st.n_waiting_for_schema
            + st.n_missing
        )
