"""Start-up check of which way the jaw control opens the jaw, run over a few editor ticks.

Public reports disagree on the sign of ``CTRL_C_jaw``'s Y axis in Unreal (Epic's Maya rig opens
with +Y; one Unreal user keyed negative Y). So before driving a face, the driver sets the jaw to
+0.5 and reads the ``CTRL_expressions_jawOpen`` curve the face board computes; if that does not
rise it tries -0.5. The result sets the sign applied to the jaw's Y for the rest of the session.
Values settle a tick or more after being set, so this is a small state machine stepped once per
tick rather than a blocking call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

JAW_OPEN_CURVE = "CTRL_expressions_jawOpen"
TEST_VALUE = 0.5  # jaw Y used for the probe
MIN_RISE = 0.05  # curve rise that counts as "the jaw opened"
SETTLE_TICKS = 2  # ticks to wait after a write before the first read
MAX_WAIT_TICKS = 20  # reads per probe before giving up on that direction

PENDING, POSITIVE, NEGATIVE, INCONCLUSIVE = "pending", "positive", "negative", "inconclusive"


class JawSelfTest:
    """Probes the jaw once; ``sign`` is +1 unless the rig opens the jaw with negative Y.

    Args:
        write_jaw: sets the jaw control's Y (X stays 0).
        read_open: the current ``CTRL_expressions_jawOpen`` value, or None when unreadable.
    """

    def __init__(
        self, write_jaw: Callable[[float], None], read_open: Callable[[], float | None]
    ) -> None:
        self.write_jaw = write_jaw
        self.read_open = read_open
        self.result = PENDING
        self.message = ""
        self._phase = "start"
        self._wait = 0
        self._baseline = 0.0

    @property
    def done(self) -> bool:
        """Whether the test has finished (whatever the result)."""
        return self.result != PENDING

    @property
    def sign(self) -> float:
        """-1 when the rig opens the jaw with negative Y, else +1."""
        return -1.0 if self.result == NEGATIVE else 1.0

    def step(self) -> bool:
        """Advance one tick; returns ``done``. Never raises (a failing probe is inconclusive)."""
        if self.done:
            return True
        try:
            self._step()
        except Exception as e:  # noqa: BLE001 - the editor's API may fail in ways we cannot list
            self._finish(INCONCLUSIVE, f"jaw self-test failed ({e}); assuming +Y opens the jaw")
        return self.done

    def _read(self) -> float | None:
        value = self.read_open()
        return None if value is None else float(value)

    def _step(self) -> None:
        if self._phase == "start":
            self.write_jaw(0.0)
            self._phase, self._wait = "baseline", 0
            return
        self._wait += 1
        if self._wait < SETTLE_TICKS:
            return
        value = self._read()
        if value is None:
            self._finish(INCONCLUSIVE, f"cannot read {JAW_OPEN_CURVE}; assuming +Y opens the jaw")
            return
        if self._phase == "baseline":
            self._baseline = value
            self.write_jaw(TEST_VALUE)
            self._phase, self._wait = "plus", 0
        elif value - self._baseline > MIN_RISE:
            if self._phase == "plus":
                self._finish(
                    POSITIVE,
                    f"jaw opens with +Y ({JAW_OPEN_CURVE} {self._baseline:.2f} -> {value:.2f})",
                )
            else:
                self._finish(
                    NEGATIVE,
                    f"jaw opens with -Y on this rig ({JAW_OPEN_CURVE} "
                    f"{self._baseline:.2f} -> {value:.2f}); flipping the jaw's Y",
                )
        elif self._wait >= SETTLE_TICKS + MAX_WAIT_TICKS:
            if self._phase == "plus":
                self.write_jaw(-TEST_VALUE)
                self._phase, self._wait = "minus", 0
            else:
                self._finish(
                    INCONCLUSIVE,
                    f"{JAW_OPEN_CURVE} did not move for +Y or -Y (the rig may "
                    "not be evaluating); assuming +Y opens the jaw",
                )

    def _finish(self, result: str, message: str) -> None:
        self.result = result
        self.message = message
        with contextlib.suppress(Exception):  # restoring the jaw is best effort
            self.write_jaw(0.0)
