"""``emoface stream``'s loop: finished clips played in real time on one or more subjects.

A ``FrameClock`` (``runtime.clock``) releases frame ``i`` at ``anchor + i / fps`` for every
subject at once, skips frames that are hopelessly late, and reports frames sent, skipped, late
and the worst lateness.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.protocol import EndReason
from bridge.runtime.clock import FrameClock, PacingStats
from bridge.runtime.subject import SubjectStream
from emoface_core.audio import FPS
from emoface_core.controllers import N_CONTROLLERS


@dataclass
class PlayStats:
    """Summary of a ``ClipPlayer`` run.

    Attributes:
        n_frames: frame slots released (each sent to every subject that had a frame).
        n_skipped: frame slots skipped because they were more than ``skip_after_s`` late.
        n_lines: lines played per subject (one per loop pass).
        duration_s: wall time of the run.
        pacing: the frame clock's lateness statistics.
    """

    n_frames: int = 0
    n_skipped: int = 0
    n_lines: int = 0
    duration_s: float = 0.0
    pacing: PacingStats = field(default_factory=PacingStats)


class ClipPlayer:
    """Plays finished clips on one or more subjects, paced together by one ``FrameClock``.

    Args:
        clips: ``(stream, values [T, 174])`` pairs; clips may differ in length.
        fps: frame rate of the clips.
        realtime: pace to the clock; False sends as fast as possible.
        loops: passes to play; 0 loops until ``stop`` is set or the process is interrupted.
        audio_offset_s: shifts frames against the audio (positive: frames later).
        frame_clock: the pacing clock (inject a fake one in tests).
        stop: returns True to stop early (checked every frame), e.g. ``threading.Event.is_set``.
        info: passed to every START message.
    """

    def __init__(
        self,
        clips: Sequence[tuple[SubjectStream, np.ndarray]],
        *,
        fps: float = FPS,
        realtime: bool = True,
        loops: int = 1,
        audio_offset_s: float = 0.0,
        frame_clock: FrameClock | None = None,
        stop: Callable[[], bool] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        if loops < 0:
            raise ValueError(f"loops must be 0 (forever) or more, but {loops} is provided")
        for stream, values in clips:
            widths = (N_CONTROLLERS, N_CONTROLLERS + 3)  # + the head's yaw, pitch, roll
            if values.ndim != 2 or values.shape[1] not in widths or len(values) == 0:
                raise ValueError(
                    f"{stream.subject}: clip must be [T>0, {N_CONTROLLERS}] (or "
                    f"{N_CONTROLLERS + 3} with the head), got {values.shape}"
                )
        self.clips = [(s, np.asarray(v, dtype=np.float32)) for s, v in clips]
        self.fps = float(fps)
        self.realtime = realtime
        self.loops = loops
        self.audio_offset_s = audio_offset_s
        self.frame_clock = frame_clock or FrameClock(fps)
        self.stop = stop or (lambda: False)
        self.info = info or {}
        self.stats = PlayStats()

    def run(self) -> PlayStats:
        """Play; on any exit (end, stop, Ctrl-C) active lines are ended and ``stats`` is final."""
        clock = self.frame_clock
        wall_start = time.time()
        anchor = clock.start(offset_s=self.audio_offset_s)
        n_slots = max(len(v) for _, v in self.clips)
        index = 0  # global frame index: deadlines keep counting across loop passes
        reason = EndReason.SHUTDOWN
        try:
            n_pass = 0
            while self.loops == 0 or n_pass < self.loops:
                n_pass += 1
                # Wall time at which this pass's audio time 0 plays (frames shift by the offset).
                t_audio = time.time() + (anchor + index / self.fps - clock.clock())
                for stream, values in self.clips:
                    stream.start_line(n_frames=len(values), info=self.info, t_audio_start=t_audio)
                self.stats.n_lines += 1
                for i in range(n_slots):
                    if self.stop():
                        return self.stats
                    skip = False
                    if self.realtime:
                        skip = clock.should_skip(clock.wait(index))
                    index += 1
                    if skip:
                        self.stats.n_skipped += 1
                        continue
                    for stream, values in self.clips:
                        if i < len(values):
                            stream.push(values[i], i / self.fps)
                            if i == len(values) - 1:
                                stream.end_line(EndReason.FINISHED)
                    self.stats.n_frames += 1
                for stream, _ in self.clips:
                    stream.end_line(EndReason.FINISHED)  # clips whose last frame was skipped
            reason = EndReason.FINISHED
            return self.stats
        finally:
            for stream, _ in self.clips:
                stream.end_line(reason)  # only lines cut short by stop/Ctrl-C/errors are active
            self.stats.duration_s = time.time() - wall_start
            self.stats.pacing = clock.stats
