"""Fake clocks for tests and benchmarks: time moves only when the code under test sleeps."""

from __future__ import annotations

from collections.abc import Callable


class FakeClock:
    """A clock for tests: time moves only when ``sleep`` (or ``advance``) is called.

    Args:
        start_s: the initial time.
        oversleep_s: added to every sleep, to model a scheduler that wakes late; a callable
            gets the requested duration and returns the extra delay.
    """

    def __init__(
        self, start_s: float = 1000.0, *, oversleep_s: float | Callable[[float], float] = 0.0
    ) -> None:
        self.now_s = start_s
        self.oversleep_s = oversleep_s
        self.n_sleeps = 0

    def __call__(self) -> float:
        """The current fake time."""
        return self.now_s

    def sleep(self, duration_s: float) -> None:
        """Advance by the duration plus the modelled oversleep."""
        extra = self.oversleep_s(duration_s) if callable(self.oversleep_s) else self.oversleep_s
        self.now_s += max(0.0, duration_s) + extra
        self.n_sleeps += 1

    def advance(self, duration_s: float) -> None:
        """Advance without counting a sleep (models work done between frames)."""
        self.now_s += duration_s
