"""One NPC on the wire: map 174-channel frames per subject and fan them out to every transport.

``SubjectStream`` takes frames one at a time from anything (a baked clip, ``runtime.clips``; a
live stream, ``runtime.live``; the service's lines, ``runtime.lines``) between ``start_line`` and
``end_line``. It maps each frame once per distinct mapping, numbers it (``seq``) and re-sends
the schema every ``schema_interval_s`` and when the mapping changes. Pacing is the caller's
(``runtime.clock``); cross-fades between lines are the service player's (``runtime.lines``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.mapping import N_SOURCES, Mapping, load_mapping
from bridge.protocol import EndReason, Frame, Schema, StreamEnd, StreamStart
from bridge.transports.base import Sender
from emoface_core.audio import FPS
from emoface_core.controllers import N_CONTROLLERS

log = logging.getLogger(__name__)

DEFAULT_SCHEMA_INTERVAL_S = 0.5  # a late joiner names frames within half a second
SUBJECT_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # safe in OSC addresses and ZMQ topics


def check_subject(subject: str) -> str:
    """Return ``subject`` if it is a valid subject name.

    Raises:
        ValueError: not 1-64 characters of letters, digits, ``_``, ``.`` or ``-``.
    """
    if not SUBJECT_PATTERN.match(subject):
        raise ValueError(
            f"subject must be 1-64 characters of letters, digits, '_', '.' or '-', "
            f"but {subject!r} is provided"
        )
    return subject


@dataclass(frozen=True)
class Output:
    """A sender and the mapping whose targets it carries."""

    sender: Sender
    mapping: Mapping


def outputs_for(senders: Sequence[Sender], mapping: Mapping) -> list[Output]:
    """Pair each sender with ``mapping``, or with the mapping its protocol requires.

    Live Link Face carries ARKit names only, so a ``LiveLinkSender`` gets ``arkit52`` whatever
    the stream's mapping is.
    """
    loaded: dict[str, Mapping] = {}
    outputs = []
    for sender in senders:
        required = sender.required_mapping
        if required is None or required == mapping.name:
            outputs.append(Output(sender, mapping))
            continue
        if required not in loaded:
            loaded[required] = load_mapping(required)
        outputs.append(Output(sender, loaded[required]))
    return outputs


@dataclass
class _Group:
    """Outputs sharing one mapping: the frame is mapped once for all of them."""

    mapping: Mapping
    schema: Schema
    buffer: np.ndarray
    senders: list[Sender] = field(default_factory=list)


@dataclass
class SubjectStats:
    """Counters of one subject.

    Attributes:
        n_frames: frames pushed (each sent to every output).
        n_lines: lines started.
        n_schemas: schema rounds sent.
        n_refused: (frame, output) pairs a sender dropped or failed.
    """

    n_frames: int = 0
    n_lines: int = 0
    n_schemas: int = 0
    n_refused: int = 0


def frames_with_head(values: np.ndarray, head: np.ndarray | None) -> np.ndarray:
    """``[T, 177]`` frames as ``push`` takes them: the 174 channels, then the head's rotations.

    Yaw, pitch and roll in degrees; zeros (the rest pose) when the animation has no head motion.
    """
    out = np.zeros((len(values), N_SOURCES), dtype=np.float32)
    out[:, :N_CONTROLLERS] = values
    if head is not None:
        out[:, N_CONTROLLERS:] = head
    return out


class SubjectStream:
    """One subject's stream to any number of outputs, fed one frame at a time.

    Args:
        subject: the NPC name (letters, digits, ``_.-``).
        outputs: where frames go, each with its mapping.
        fps: frame rate announced in schemas and frames.
        schema_interval_s: how often the schema is repeated while frames flow.
        clock: monotonic seconds, for the schema timer.
        wall_clock: Unix seconds, for ``t_capture`` (latency stats on the receiving side).
    """

    def __init__(
        self,
        subject: str,
        outputs: Sequence[Output],
        *,
        fps: float = FPS,
        schema_interval_s: float = DEFAULT_SCHEMA_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if schema_interval_s <= 0:
            raise ValueError(
                f"schema_interval_s must be positive, but {schema_interval_s} is provided"
            )
        self.subject = check_subject(subject)
        self.fps = float(fps)
        self.schema_interval_s = schema_interval_s
        self.clock = clock
        self.wall_clock = wall_clock
        self.stats = SubjectStats()
        self.seq = 0  # next frame's sequence number
        self.line_id = 0  # current (or last) line
        self.frames_in_line = 0
        self.line_active = False
        self._groups: list[_Group] = []
        self._last_schema_s = -np.inf
        self._raw = np.zeros(N_SOURCES, dtype=np.float32)  # the frame being sent (+ head)
        self.set_outputs(outputs)

    @property
    def outputs(self) -> list[Output]:
        """The current outputs."""
        return [Output(s, g.mapping) for g in self._groups for s in g.senders]

    def set_outputs(self, outputs: Sequence[Output]) -> None:
        """Replace the outputs (e.g. a new mapping); schemas go out again right away."""
        groups: dict[int, _Group] = {}
        for output in outputs:
            key = id(output.mapping)
            if key not in groups:
                mapping = output.mapping
                groups[key] = _Group(
                    mapping,
                    mapping.schema(self.subject, self.fps),
                    np.zeros(mapping.n_targets, dtype=np.float32),
                )
            groups[key].senders.append(output.sender)
        self._groups = list(groups.values())
        self._last_schema_s = -np.inf

    def set_mapping(self, mapping: Mapping) -> None:
        """Use ``mapping`` for every output that does not require its own (see ``outputs_for``)."""
        self.set_outputs(outputs_for([o.sender for o in self.outputs], mapping))

    def send_schema(self) -> None:
        """Send every output's schema now (also done at line start and periodically)."""
        for group in self._groups:
            for sender in group.senders:
                sender.send_schema(group.schema)
        self.stats.n_schemas += 1
        self._last_schema_s = self.clock()

    def start_line(
        self,
        *,
        n_frames: int = 0,
        info: dict[str, Any] | None = None,
        t_audio_start: float | None = None,
    ) -> int:
        """Begin a line (an utterance); an active line is ended as interrupted first.

        Args:
            n_frames: frames planned, 0 when unknown (live input).
            info: JSON-ready facts for receivers (emotion, audio file, engine).
            t_audio_start: wall-clock time when the line's audio time 0 plays (default now).

        Returns:
            The new line id.
        """
        if self.line_active:
            self.end_line(EndReason.INTERRUPTED)
        self.line_id = (self.line_id + 1) & 0xFFFFFFFF or 1
        self.frames_in_line = 0
        self.line_active = True
        self.stats.n_lines += 1
        self.send_schema()
        t0 = self.wall_clock() if t_audio_start is None else t_audio_start
        for group in self._groups:
            start = StreamStart(
                self.subject,
                self.line_id,
                group.schema.schema_id,
                n_frames,
                self.fps,
                t0,
                dict(info or {}),
            )
            for sender in group.senders:
                sender.send_start(start)
        return self.line_id

    def push(self, values: np.ndarray, t_s: float | None = None) -> int:
        """Map one frame ``[174]`` and send it to every output (starting a line if none is active).

        Args:
            values: the 174 channel values of the frame, optionally followed by the head's
                yaw, pitch and roll in degrees (``[177]``, ``mapping.SOURCE_NAMES``).
            t_s: its time relative to the line's audio start (default ``frames_in_line / fps``).

        Returns:
            How many outputs accepted the frame.
        """
        if not self.line_active:
            self.start_line()
        elif self.clock() - self._last_schema_s >= self.schema_interval_s:
            self.send_schema()
        n = np.shape(values)
        if n not in ((N_CONTROLLERS,), (N_SOURCES,)):
            raise ValueError(
                f"a frame must be [{N_CONTROLLERS}] values (or [{N_SOURCES}] with the head "
                f"rotations), got shape {n}"
            )
        raw = self._raw
        raw[: n[0]] = values  # a copy, so the caller may reuse its array
        if n[0] == N_CONTROLLERS:
            raw[N_CONTROLLERS:] = 0.0  # no head motion: at rest
        if t_s is None:
            t_s = self.frames_in_line / self.fps
        t_capture = self.wall_clock()
        accepted = 0
        for group in self._groups:
            group.mapping.compiled.apply_into(raw, group.buffer)
            frame = Frame(
                self.subject,
                self.seq,
                t_s,
                self.fps,
                group.buffer,  # type: ignore[arg-type]  # senders take float32 arrays as is
                group.schema.schema_id,
                self.line_id,
                t_capture,
            )
            for sender in group.senders:
                if sender.send_frame(frame):
                    accepted += 1
                else:
                    self.stats.n_refused += 1
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self.frames_in_line += 1
        self.stats.n_frames += 1
        return accepted

    def end_line(self, reason: EndReason = EndReason.FINISHED) -> None:
        """Announce the end of the active line (no-op when none is active)."""
        if not self.line_active:
            return
        self.line_active = False
        end = StreamEnd(self.subject, self.line_id, self.frames_in_line, reason, self.wall_clock())
        for group in self._groups:
            for sender in group.senders:
                sender.send_end(end)

    def close(self) -> None:
        """End an active line as a shutdown (senders are closed by their owner)."""
        self.end_line(EndReason.SHUTDOWN)
