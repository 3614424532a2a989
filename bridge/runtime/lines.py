"""Real-time playback of dialogue lines on many subjects at once, with cross-fades.

``LinePlayer`` is the part of ``emoface serve`` that sends frames. It runs one thread, the only
one that touches the senders, and plays each subject's current line on that line's own clock
(a ``runtime.clock.FrameClock`` anchored at the line's start): frame ``k`` is due ``k / fps``
after it. It sleeps until the next frame is due and idles without waking when nothing plays; a
frame found late is skipped (counted), not sent stale, so the face stays in sync with audio that
started on time.

A new line for a subject starts when it is due; the subject's current line then ends (END,
interrupted) and the new one cross-fades from the pose that was last sent into its own frames
over ``blend_frames`` (smoothstep, so neither the pose nor its speed jumps). A cancelled line
fades from the last pose to the rest pose (all controls 0) over the same number of frames, then
ends. The cross-fade lives here rather than in ``SubjectStream`` because the cancel fade needs
the pose actually sent, which the player tracks.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.protocol import EndReason
from bridge.runtime.clock import FrameClock
from bridge.runtime.subject import Output, SubjectStream

log = logging.getLogger(__name__)

FINAL_STATES = frozenset({"finished", "interrupted", "cancelled", "failed"})


@dataclass
class LineRecord:
    """One ``speak`` request from arrival to end; what ``status`` reports.

    States: queued -> computing -> scheduled -> playing -> finished | interrupted | cancelled
    | failed.
    """

    id: str
    subject: str
    emotion: str
    n_frames: int
    duration_s: float
    state: str = "queued"
    reason: str = ""
    created_s: float = field(default_factory=time.time)
    started_s: float | None = None
    ended_s: float | None = None
    n_sent: int = 0
    n_skipped: int = 0
    cancel_requested: bool = False

    @property
    def final(self) -> bool:
        """Whether the line has ended one way or another."""
        return self.state in FINAL_STATES

    def end(self, state: str, reason: str = "") -> None:
        """Move to a final state (first call wins)."""
        if not self.final:
            self.state, self.reason, self.ended_s = state, reason, time.time()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready status."""
        return {
            "id": self.id,
            "subject": self.subject,
            "state": self.state,
            "reason": self.reason,
            "emotion": self.emotion,
            "n_frames": self.n_frames,
            "duration_s": round(self.duration_s, 4),
            "frames_sent": self.n_sent,
            "frames_skipped": self.n_skipped,
            "created": self.created_s,
            "started": self.started_s,
            "ended": self.ended_s,
        }


def smoothstep(x: float) -> float:
    """Ease in and out on 0..1: a fade with no jump in speed at either end."""
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


@dataclass
class Playback:
    """A computed line waiting for or in playback (owned by the player thread).

    Attributes:
        record: the line's status record (updated as it plays).
        values: the frames ``[T, 177]``: the 174 channels and the head rotations
            (``subject.frames_with_head``).
        t0: when the line's audio time 0 plays, on the player's monotonic clock.
        info: JSON facts for the START message.
        outputs: senders and mappings for this line.
        blend_frames: cross-fade length in frames (also the cancel fade).
    """

    record: LineRecord
    values: np.ndarray  # [T, 177]
    t0: float  # monotonic time at which the line's audio time 0 plays
    info: dict[str, Any]
    outputs: list[Output]
    blend_frames: int
    next_k: int = 0  # next frame index of the line to send
    blend_from: np.ndarray | None = None  # the pose sent before this line started
    n_pushed: int = 0
    fade_from: np.ndarray | None = None  # set when cancelled: fading to rest
    fade_done: int = 0
    pacing: FrameClock | None = None  # the line's frames: due from t0 on (set when it starts)
    fade_pacing: FrameClock | None = None  # the cancel fade's frames: due from the cancel on


@dataclass
class _Slot:
    stream: SubjectStream
    current: Playback | None = None
    pending: Playback | None = None  # computed, waiting for its start time
    last_out: np.ndarray | None = None  # the pose last sent, for cross-fades
    outputs_key: tuple[int, ...] = ()


class LinePlayer:
    """Plays lines on every subject in real time; the only code that touches the senders.

    Args:
        make_stream: builds the ``SubjectStream`` of a subject on its first line.
        fps: frame rate of the lines.
        clock: monotonic seconds (line start times ``Playback.t0`` are on this clock).
        wall_clock: Unix seconds, for the START message's audio start time.
    """

    def __init__(
        self,
        make_stream: Callable[[str], SubjectStream],
        fps: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.fps = fps
        self.clock = clock
        self.wall_clock = wall_clock
        self._make_stream = make_stream
        self._slots: dict[str, _Slot] = {}
        self._inbox: deque[Playback] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.n_frames = 0
        self.n_line_failures = 0  # lines ended as failed by an error while playing
        self.failure = ""  # why the thread stopped, when it did on its own

    def start(self) -> None:
        """Start the playback thread."""
        self._thread = threading.Thread(target=self._run, name="emoface-serve-player", daemon=True)
        self._thread.start()

    def submit(self, playback: Playback) -> None:
        """Schedule a computed line; it replaces the subject's pending one, if any."""
        with self._cond:
            self._inbox.append(playback)
            self._cond.notify()

    def wake(self) -> None:
        """Look at cancel flags now."""
        with self._cond:
            self._cond.notify()

    def stop(self) -> None:
        """End every line (END, shutdown) and stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def subjects(self) -> dict[str, dict[str, Any]]:
        """Per-subject status (read from other threads: plain attribute reads)."""
        out = {}
        for name, slot in list(self._slots.items()):
            current = slot.current
            out[name] = {
                "line": current.record.id if current else None,
                "state": current.record.state if current else "idle",
                "seq": slot.stream.seq,
                "lines": slot.stream.stats.n_lines,
            }
        return out

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._inbox:
                        self._accept(self._inbox.popleft())
                    if self._stopping:
                        break
                    wait_s = self._step()
                    if wait_s is None:
                        self._cond.wait()
                    elif wait_s > 0:
                        self._cond.wait(wait_s)
        except Exception as e:  # a bug outside any one line: make it visible, end lines cleanly
            log.exception("emoface serve: the player thread failed; lines are ended")
            self.failure = f"{type(e).__name__}: {e}"
        finally:
            self._shutdown()

    @property
    def alive(self) -> bool:
        """Whether the player thread runs (the service refuses lines when it does not)."""
        return self._thread is not None and self._thread.is_alive() and not self.failure

    def _accept(self, playback: Playback) -> None:
        subject = playback.record.subject
        slot = self._slots.get(subject)
        if slot is None:
            stream = self._make_stream(subject)
            key = tuple(id(o.sender) for o in stream.outputs)
            slot = self._slots[subject] = _Slot(stream, outputs_key=key)
        if slot.pending is not None:
            slot.pending.record.end("interrupted", f"superseded by {playback.record.id}")
        slot.pending = playback
        playback.record.state = "scheduled"

    def _step(self) -> float | None:
        """Start due lines, send due frames; return seconds until the next due event."""
        now = self.clock()
        next_due = math.inf
        for slot in self._slots.values():
            try:  # one line's failure (a bad START info, a broken sender) fails that line only
                due = self._step_slot(slot, now)
            except Exception as e:  # noqa: BLE001 - counted and reported in the line's record
                self._fail_slot(slot, e)
                continue
            if due is not None:
                next_due = min(next_due, due)
        if next_due == math.inf:
            return None
        return max(0.0, next_due - self.clock())

    def _fail_slot(self, slot: _Slot, error: Exception) -> None:
        log.warning("emoface serve: a line of %s failed: %s", slot.stream.subject, error)
        self.n_line_failures += 1
        for pb in (slot.pending, slot.current):
            if pb is not None:
                pb.record.end("failed", f"playback failed: {type(error).__name__}: {error}")
        slot.pending = slot.current = None
        with contextlib.suppress(Exception):
            slot.stream.end_line(EndReason.INTERRUPTED)

    def _step_slot(self, slot: _Slot, now: float) -> float | None:
        """Start or advance one subject's lines; when its next event is due (None: idle)."""
        next_due = math.inf
        pending = slot.pending
        if pending is not None and pending.record.cancel_requested:
            pending.record.end("cancelled", "cancelled before it started")
            slot.pending = pending = None
        if pending is not None and now >= pending.t0 - 0.25 / self.fps:
            self._start(slot, pending, now)
        current = slot.current
        if current is not None:
            if current.record.cancel_requested and current.fade_from is None:
                current.fade_from = (
                    slot.last_out if slot.last_out is not None else current.values[0]
                )
                current.fade_pacing = self._pacing(now)
            due = self._advance(slot, current, now)
            if due is not None:
                next_due = min(next_due, due)
        if slot.pending is not None:
            next_due = min(next_due, slot.pending.t0)
        return None if next_due == math.inf else next_due

    def _start(self, slot: _Slot, playback: Playback, now: float) -> None:
        slot.pending = None
        # The line is the slot's from here on, so that a failure below fails it (and only it).
        previous, slot.current = slot.current, playback
        if previous is not None and previous is not playback:
            previous.record.end("interrupted", f"interrupted by {playback.record.id}")
        key = tuple(id(o.sender) for o in playback.outputs)
        if key != slot.outputs_key:  # this line uses other transports than the last one
            slot.stream.set_outputs(playback.outputs)
            slot.outputs_key = key
        record = playback.record
        # The stream ends the active line (END interrupted) itself; the cross-fade is done here,
        # from the pose actually sent, so a cancel can fade from it too.
        slot.stream.start_line(
            n_frames=record.n_frames,
            info=playback.info,
            t_audio_start=self.wall_clock() + (playback.t0 - now),
        )
        playback.blend_from = None if slot.last_out is None else slot.last_out.copy()
        playback.pacing = self._pacing(playback.t0)
        record.state = "playing"
        record.started_s = self.wall_clock() + (playback.t0 - now)

    def _pacing(self, anchor_s: float) -> FrameClock:
        """A clock for frames due from ``anchor_s`` on.

        A frame whose successor is due is late enough to skip: the player sends the newest due
        frame on each wake-up.
        """
        period = 1.0 / self.fps
        clock = FrameClock(self.fps, clock=self.clock, skip_after_s=period * (1.0 - 1e-6))
        clock.start(anchor_s)
        return clock

    def _advance(self, slot: _Slot, pb: Playback, now: float) -> float | None:
        """Send what is due for one subject; return when its next frame is due (or None)."""
        period = 1.0 / self.fps
        if pb.fade_from is not None:
            assert pb.fade_pacing is not None
            n_fade = max(1, pb.blend_frames)
            k = min(n_fade, pb.fade_pacing.frame_at(now) + 1)
            if k > pb.fade_done:
                weight = smoothstep(k / n_fade)
                frame = pb.fade_from * (1.0 - weight)  # the rest pose is all zeros
                self._push(slot, pb, frame, (pb.next_k + k - 1) * period)
                pb.fade_pacing.record(k - 1, now)
                pb.fade_done = k
            if pb.fade_done >= n_fade:
                slot.stream.end_line(EndReason.INTERRUPTED)
                pb.record.end("cancelled", "cancelled")
                slot.current = None
                return None
            return pb.fade_pacing.due_s(pb.fade_done)
        assert pb.pacing is not None
        n = len(pb.values)
        pick = pb.pacing.pick(pb.next_k, n - 1, now)
        if pick is not None:
            k = pick
            pb.record.n_skipped += k - pb.next_k
            frame = pb.values[k]
            if pb.n_pushed < pb.blend_frames and pb.blend_from is not None:
                weight = smoothstep((pb.n_pushed + 1) / (pb.blend_frames + 1))
                frame = pb.blend_from * (1.0 - weight) + frame * weight
            self._push(slot, pb, frame, k * period)
            pb.pacing.record(k, now)
            pb.next_k = k + 1
            if pb.next_k >= n:
                slot.stream.end_line(EndReason.FINISHED)
                pb.record.end("finished")
                slot.current = None
                return None
        return pb.pacing.due_s(pb.next_k)

    def _push(self, slot: _Slot, pb: Playback, frame: np.ndarray, t_s: float) -> None:
        out = np.asarray(frame, dtype=np.float32)
        slot.stream.push(out, t_s)
        slot.last_out = out.copy()
        pb.n_pushed += 1
        pb.record.n_sent += 1
        self.n_frames += 1

    def _shutdown(self) -> None:
        for slot in self._slots.values():
            for pb in (slot.pending, slot.current):
                if pb is not None:
                    pb.record.end("interrupted", "the service shut down")
            with contextlib.suppress(Exception):
                slot.stream.close()
