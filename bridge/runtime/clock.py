"""Frame pacing, the one rule every loop that releases frames follows (R5 of the layout).

A ``FrameClock`` makes frame ``i`` due at ``anchor + offset + i / fps``, measures how late each
released frame is, and decides when a frame is too late to send (``should_skip``, ``pick``).
``stream`` (``runtime.clips``) sleeps until each frame is due (``wait``); ``serve``
(``runtime.lines``) wakes on a condition and picks the frame to send (``pick``, ``record``);
``live`` (``runtime.live``) waits in a playout thread and never skips.

Every deadline is computed from the one anchor taken at ``start()``, never by adding a frame
period to the previous wake-up, so sleep overshoot and per-frame work do not accumulate: frame
36,000 (ten minutes at 60 fps) is due exactly ten minutes after the anchor. The clock and the
sleep function are injectable; tests and the drift benchmark drive it with
``emoface_core.testing.clocks.FakeClock`` instead of waiting (lerobot's CycleTimer + FakeClock).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_LATE_TOLERANCE_FRAMES = 0.25  # later than this counts as "late" (4 ms at 60 fps)
DEFAULT_SKIP_AFTER_FRAMES = 2.0  # later than this, a frame is skipped, not sent stale


@dataclass
class PacingStats:
    """What the clock saw; ``FrameClock.stats`` reports overruns at the end of a run.

    Attributes:
        n_frames: frames waited for (sent or skipped).
        n_late: frames released later than the tolerance.
        n_skipped: frames so late they were skipped (``should_skip``).
        max_late_s: worst lateness.
        total_late_s: sum of lateness (mean = total / n_frames).
        last_late_s: lateness of the most recent frame (drift shows up here on long runs).
    """

    n_frames: int = 0
    n_late: int = 0
    n_skipped: int = 0
    max_late_s: float = 0.0
    total_late_s: float = 0.0
    last_late_s: float = 0.0


class FrameClock:
    """Paces a loop to ``fps`` from a fixed anchor (no drift), and measures lateness.

    Args:
        fps: frames per second.
        clock: monotonic seconds; default ``time.perf_counter``.
        sleep: sleeps for the given seconds; default ``time.sleep``.
        late_tolerance_s: lateness above which a frame counts as late (default 1/4 frame).
        skip_after_s: lateness above which ``should_skip`` says to drop the frame (default two
            frames); ``math.inf`` never skips.
    """

    def __init__(
        self,
        fps: float,
        *,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
        late_tolerance_s: float | None = None,
        skip_after_s: float | None = None,
    ) -> None:
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, but {fps!r} is provided")
        self.fps = float(fps)
        self.period_s = 1.0 / self.fps
        self.clock = clock
        self.sleep = sleep
        self.late_tolerance_s = (
            DEFAULT_LATE_TOLERANCE_FRAMES * self.period_s
            if late_tolerance_s is None
            else late_tolerance_s
        )
        self.skip_after_s = (
            DEFAULT_SKIP_AFTER_FRAMES * self.period_s if skip_after_s is None else skip_after_s
        )
        self.anchor_s: float | None = None
        self.offset_s = 0.0
        self.stats = PacingStats()

    def start(self, at_s: float | None = None, *, offset_s: float = 0.0) -> float:
        """Set the anchor (default: now). Frame ``i`` becomes due at ``anchor + offset + i/fps``.

        Frames whose due time falls before the anchor (a negative offset) are due at the anchor.
        Returns the anchor.
        """
        self.anchor_s = self.clock() if at_s is None else at_s
        self.offset_s = offset_s
        self.stats = PacingStats()
        return self.anchor_s

    def due_s(self, index: int) -> float:
        """When frame ``index`` is due, on the clock's time line."""
        if self.anchor_s is None:
            raise RuntimeError("FrameClock.start() must be called before due_s()/wait()")
        return max(self.anchor_s, self.anchor_s + self.offset_s + index / self.fps)

    def frame_at(self, now_s: float | None = None) -> int:
        """Index of the newest frame due at ``now_s`` (default now); -1 before frame 0."""
        if self.anchor_s is None:
            raise RuntimeError("FrameClock.start() must be called before frame_at()")
        now = self.clock() if now_s is None else now_s
        if now < self.anchor_s:
            return -1
        # The epsilon keeps a wake-up exactly on a due time from reading as the frame before.
        return math.floor((now - self.anchor_s - self.offset_s) * self.fps + 1e-6)

    def pick(self, first: int, last: int, now_s: float | None = None) -> int | None:
        """The frame to release now, for a loop that wakes when it can rather than per frame.

        Frames from ``first`` on that are later than ``skip_after_s`` are skipped (counted in
        ``stats.n_skipped``), never sent stale; ``last`` is never skipped (it carries the end of
        a line). None when ``first`` is not due yet. Record the frame sent with ``record``.
        """
        now = self.clock() if now_s is None else now_s
        if self.due_s(first) > now + 1e-6 / self.fps:
            return None
        index = first
        while index < last and self.should_skip(now - self.due_s(index)):
            index += 1
        return index

    def record(self, index: int, now_s: float | None = None) -> float:
        """Record frame ``index`` as released at ``now_s`` (default now); returns its lateness."""
        late = max(0.0, (self.clock() if now_s is None else now_s) - self.due_s(index))
        stats = self.stats
        stats.n_frames += 1
        stats.last_late_s = late
        stats.total_late_s += late
        if late > stats.max_late_s:
            stats.max_late_s = late
        if late > self.late_tolerance_s:
            stats.n_late += 1
        return late

    def wait(self, index: int) -> float:
        """Sleep until frame ``index`` is due; return how late it is now (>= 0), and record it."""
        remaining = self.due_s(index) - self.clock()
        if remaining > 0:
            self.sleep(remaining)
        return self.record(index)

    def should_skip(self, late_s: float) -> bool:
        """Whether a frame this late should be dropped (and counts it when so)."""
        if late_s > self.skip_after_s:
            self.stats.n_skipped += 1
            return True
        return False
