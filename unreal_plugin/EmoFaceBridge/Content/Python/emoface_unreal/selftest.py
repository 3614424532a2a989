"""Start-up proof that writing the jaw control moves the face's jaw joint, run over a few ticks.

A rig value that never reaches the mesh is the failure a user sees as "the face does not move",
so the test reads what the viewer sees: the face mesh's jaw joint transform. It writes jaw Y = 0,
reads the joint, writes +0.5 and reads it again; if the joint did not turn it tries -0.5 (public
reports disagree on the sign of ``CTRL_C_jaw``'s Y in Unreal: Epic's Maya rig opens with +Y, one
Unreal user keyed negative Y). The result says moved / did not move with the measured delta, and
sets the sign of the jaw's Y for the session.

The driver forces one Sequencer evaluation per tick and the mesh shows the pose from the next
tick on, so each probe reads one tick after its write (with one retry): the whole test takes at
most ``MAX_TICKS`` ticks, and the driver holds frames only that long (then the newest applies).
It is a state machine stepped once per tick, never a blocking call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

JAW_OPEN_CURVE = "CTRL_expressions_jawOpen"
TEST_VALUE = 0.5  # jaw Y used for the probe
MIN_DEGREES = 0.5  # joint rotation that counts as "the jaw moved"
READS_PER_PROBE = 2  # ticks a probe waits for the joint to move (the pose shows a tick late)
MAX_TICKS = 2 + 2 * READS_PER_PROBE  # the longest the test can take (frames wait this long)

PENDING, POSITIVE, NEGATIVE, NOT_MOVED, INCONCLUSIVE = (
    "pending",
    "moved (+Y opens)",
    "moved (-Y opens)",
    "did not move",
    "inconclusive",
)


class JawSelfTest:
    """Probes the jaw once; ``sign`` is +1 unless the rig opens the jaw with negative Y.

    Args:
        write_jaw: sets the jaw control's Y (X stays 0).
        read_joint: the face's jaw joint transform now (None when it cannot be read).
        joint_delta: ``(degrees, cm)`` between two joint transforms.
        read_curve: the rig's ``CTRL_expressions_jawOpen``, or None: reported beside the joint
            so "the rig computed it but the mesh did not move" is told apart from "nothing".
    """

    def __init__(
        self,
        write_jaw: Callable[[float], None],
        read_joint: Callable[[], Any],
        joint_delta: Callable[[Any, Any], tuple[float, float]],
        read_curve: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.write_jaw = write_jaw
        self.read_joint = read_joint
        self.joint_delta = joint_delta
        self.read_curve = read_curve
        self.result = PENDING
        self.message = ""
        self.degrees = 0.0  # the largest joint rotation measured
        self.n_ticks = 0
        self._phase = "start"
        self._reads = 0
        self._baseline: Any = None
        self._curve_baseline: float | None = None
        self._tried: list[str] = []

    @property
    def done(self) -> bool:
        """Whether the test has finished (whatever the result)."""
        return self.result != PENDING

    @property
    def moved(self) -> bool:
        """Whether writing the jaw visibly moved the jaw joint."""
        return self.result in (POSITIVE, NEGATIVE)

    @property
    def sign(self) -> float:
        """-1 when the rig opens the jaw with negative Y, else +1."""
        return -1.0 if self.result == NEGATIVE else 1.0

    def step(self) -> bool:
        """Advance one tick; returns ``done``. Never raises (a failing probe is inconclusive)."""
        if self.done:
            return True
        self.n_ticks += 1
        try:
            self._step()
        except Exception as e:  # noqa: BLE001 - the editor's API may fail in ways we cannot list
            self._finish(INCONCLUSIVE, f"jaw self-test failed ({e}); assuming +Y opens the jaw")
        return self.done

    def _step(self) -> None:
        if self._phase == "start":
            self.write_jaw(0.0)
            self._phase = "baseline"
            return
        joint = self.read_joint()
        if joint is None:
            self._finish(INCONCLUSIVE, "cannot read the jaw joint; assuming +Y opens the jaw")
            return
        if self._phase == "baseline":
            self._baseline = joint
            self._curve_baseline = _safe(self.read_curve)
            self._probe("plus", TEST_VALUE)
            return
        degrees, cm = self.joint_delta(self._baseline, joint)
        self.degrees = max(self.degrees, degrees)
        self._reads += 1
        direction = "+Y" if self._phase == "plus" else "-Y"
        if degrees >= MIN_DEGREES:
            result = POSITIVE if self._phase == "plus" else NEGATIVE
            flip = "" if result == POSITIVE else "; flipping the jaw's Y"
            self._finish(
                result,
                f"jaw joint moved {degrees:.1f} deg ({cm:.2f} cm) for jaw {direction} "
                f"{TEST_VALUE}{flip}",
            )
            return
        if self._reads < READS_PER_PROBE:
            return
        self._tried.append(f"{degrees:.2f} deg for {direction}")
        if self._phase == "plus":
            self._probe("minus", -TEST_VALUE)
            return
        curve = _safe(self.read_curve)
        if curve is not None and self._curve_baseline is not None:
            curve_note = (
                f"; the rig's {JAW_OPEN_CURVE} went {self._curve_baseline:.2f} -> {curve:.2f}"
                + (
                    " (the rig computes the pose but the mesh does not show it)"
                    if abs(curve - self._curve_baseline) > 0.05
                    else " (the rig is not being evaluated)"
                )
            )
        else:
            curve_note = ""
        self._finish(
            NOT_MOVED,
            f"the jaw joint did not move ({', '.join(self._tried)}){curve_note}; run "
            "EmoFace > Diagnose on this MetaHuman and send the report",
        )

    def _probe(self, phase: str, value: float) -> None:
        self.write_jaw(value)
        self._phase, self._reads = phase, 0

    def _finish(self, result: str, message: str) -> None:
        self.result = result
        self.message = message
        with contextlib.suppress(Exception):  # restoring the jaw is best effort
            self.write_jaw(0.0)


def _safe(read: Callable[[], float | None]) -> float | None:
    try:
        value = read()
    except Exception:  # noqa: BLE001 - the curve is extra information only
        return None
    return None if value is None else float(value)
