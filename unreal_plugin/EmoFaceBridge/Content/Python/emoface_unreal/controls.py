"""Turn target names (``CTRL_C_jaw.Y``, ``CTRL_L_brow_down``) into writes on a real face rig.

Names are resolved once, when a rig is bound or a schema changes, against the controls the rig
actually has (``rig_controls``: name -> "float" | "vector2d" | "other"):

* ``CONTROL.X`` / ``CONTROL.Y`` are the axes of a 2D control; both axes of a control are written
  together as one Vector2D. ``CONTROL-translateX/Y`` (Maya style) is read the same way.
* a plain name is a float slider.
* MetaHuman 4 renamed the tongue controls; when the rig has ``CTRL_C_tongue_tipMove`` the old
  names are mapped to the new ones (MH4 also reuses ``CTRL_C_tongue_roll`` for a new 1-D
  control, so the rename wins over the same-named control).
* a float target on a 2D control drives its Y axis, a ``.Y`` target on a float control drives the
  float (the board's sliders move along Y); anything else is reported, never guessed.

Unresolved names are listed in the plan (the caller logs them once, not per frame).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

FLOAT = "float"
VECTOR2D = "vector2d"
OTHER = "other"
MH4_MARKER = "CTRL_C_tongue_tipMove"  # only MetaHuman 4 face boards have it
MH4_RENAMES = {
    "CTRL_C_tongue": "CTRL_C_tongue_move",
    "CTRL_C_tongue_tip": "CTRL_C_tongue_tipMove",
    "CTRL_C_tongue_roll": "CTRL_C_tongue_bendTwist",
    "CTRL_C_tongue_narrowWide": "CTRL_C_tongue_wideNarrow",
}
JAW = "CTRL_C_jaw"


_AXIS_SUFFIXES = ((".X", "X"), (".Y", "Y"), ("-translateX", "X"), ("-translateY", "Y"))


def split_target(name: str) -> tuple[str, str | None]:
    """``CTRL_C_jaw.Y`` -> ``("CTRL_C_jaw", "Y")``; a slider name -> ``(name, None)``."""
    for suffix, axis in _AXIS_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], axis
    return name, None


@dataclass(frozen=True)
class FloatWrite:
    """Write ``sign * values[index]`` to float control ``control``."""

    control: str
    index: int
    sign: float = 1.0


@dataclass(frozen=True)
class Vector2Write:
    """Write ``(x, y)`` to 2D control ``control``; a missing axis (None index) is written as 0."""

    control: str
    x_index: int | None
    y_index: int | None
    x_sign: float = 1.0
    y_sign: float = 1.0


@dataclass(frozen=True)
class ControlPlan:
    """How a frame's values land on a rig.

    Attributes:
        floats: float-control writes.
        vectors: Vector2D-control writes.
        unresolved: target names the rig has no control for.
        notes: one line per rename or type adaptation, for the log.
        n_targets: length of the frames this plan reads.
    """

    floats: tuple[FloatWrite, ...]
    vectors: tuple[Vector2Write, ...]
    unresolved: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    n_targets: int = 0

    @property
    def n_controls(self) -> int:
        """Controls written per frame."""
        return len(self.floats) + len(self.vectors)

    @property
    def controls(self) -> tuple[str, ...]:
        """Names of the controls written, floats first."""
        return tuple(w.control for w in self.floats) + tuple(w.control for w in self.vectors)

    def float_values(self, values: Sequence[float]) -> list[tuple[str, float]]:
        """``(control, value)`` for every float control, from one frame."""
        return [(w.control, w.sign * values[w.index]) for w in self.floats]

    def vector_values(self, values: Sequence[float]) -> list[tuple[str, float, float]]:
        """``(control, x, y)`` for every 2D control, from one frame."""
        return [
            (
                w.control,
                w.x_sign * values[w.x_index] if w.x_index is not None else 0.0,
                w.y_sign * values[w.y_index] if w.y_index is not None else 0.0,
            )
            for w in self.vectors
        ]

    def neutral(self) -> tuple[list[tuple[str, float]], list[tuple[str, float, float]]]:
        """Every control at rest (0)."""
        return [(w.control, 0.0) for w in self.floats], [
            (w.control, 0.0, 0.0) for w in self.vectors
        ]

    def with_sign(self, control: str, axis: str, sign: float) -> ControlPlan:
        """A copy with one axis' sign set (the jaw self-test flips the jaw's Y when needed)."""
        vectors = tuple(
            Vector2Write(
                w.control,
                w.x_index,
                w.y_index,
                sign if axis == "X" and w.control == control else w.x_sign,
                sign if axis == "Y" and w.control == control else w.y_sign,
            )
            for w in self.vectors
        )
        floats = tuple(
            FloatWrite(w.control, w.index, sign if w.control == control else w.sign)
            for w in self.floats
        )
        return ControlPlan(floats, vectors, self.unresolved, self.notes, self.n_targets)


def _resolve(control: str, rig: Mapping[str, str] | None, is_mh4: bool) -> tuple[str, str] | None:
    if rig is None:
        return control, ""
    renamed = MH4_RENAMES.get(control)
    if is_mh4 and renamed in rig:
        return renamed, rig[renamed]
    if control in rig:
        return control, rig[control]
    return None


def plan_controls(
    target_names: Sequence[str],
    rig_controls: Mapping[str, str] | None = None,
    *,
    signs: Mapping[tuple[str, str], float] | None = None,
) -> ControlPlan:
    """Resolve a schema's target names against a rig.

    Args:
        target_names: names in frame-value order.
        rig_controls: the rig's controls (name -> FLOAT | VECTOR2D | OTHER); None trusts the
            names (``.X``/``.Y`` are 2D axes, the rest floats), e.g. when baking without a rig.
        signs: ``{(control, "X" | "Y"): -1.0}`` flips, keyed by the resolved control name.

    Returns:
        The plan; ``unresolved`` and ``notes`` say what could not be used as named.
    """
    is_mh4 = rig_controls is not None and MH4_MARKER in rig_controls
    signs = dict(signs or {})
    floats: dict[str, FloatWrite] = {}
    axes: dict[str, dict[str, int]] = {}
    unresolved: list[str] = []
    notes: list[str] = []
    for i, name in enumerate(target_names):
        control, axis = split_target(name)
        found = _resolve(control, rig_controls, is_mh4)
        if found is None:
            unresolved.append(name)
            continue
        rig_name, kind = found
        if rig_name != control:
            notes.append(f"{name}: MetaHuman 4 rig, driving {rig_name}")
        if not kind:
            kind = VECTOR2D if axis else FLOAT
        if kind == VECTOR2D:
            axis = axis or "Y"
            if split_target(name)[1] is None:
                notes.append(f"{name}: {rig_name} is a 2D control here; driving its Y axis")
            if axis in axes.setdefault(rig_name, {}):
                notes.append(
                    f"{name}: {rig_name}.{axis} is already driven by another target; ignored"
                )
                continue
            axes[rig_name][axis] = i
        elif kind == FLOAT:
            if axis == "X":
                unresolved.append(name)
                notes.append(f"{name}: {rig_name} is a 1-D slider in this rig; it has no X axis")
                continue
            if axis == "Y":
                notes.append(f"{name}: {rig_name} is a 1-D slider in this rig; driving it directly")
            if rig_name in floats:
                notes.append(f"{name}: {rig_name} is already driven by another target; ignored")
                continue
            floats[rig_name] = FloatWrite(rig_name, i, signs.get((rig_name, "Y"), 1.0))
        else:
            unresolved.append(name)
            notes.append(f"{name}: {rig_name} is neither a float nor a 2D control; not driven")
    vectors = tuple(
        Vector2Write(c, a.get("X"), a.get("Y"), signs.get((c, "X"), 1.0), signs.get((c, "Y"), 1.0))
        for c, a in axes.items()
    )
    return ControlPlan(
        tuple(floats.values()), vectors, tuple(unresolved), tuple(notes), len(target_names)
    )


@dataclass
class DeltaFilter:
    """Skips writes whose value has not changed since the last write (most sliders rest at 0).

    Every ``refresh_every`` frames everything is written again, so a value that the editor
    overwrote (a Sequencer re-evaluation) is restored within a fraction of a second.

    Attributes:
        tolerance: changes at or below this are not written.
        refresh_every: frames between full writes (0: never).
    """

    tolerance: float = 1e-6  # far below what a face shows; skips mostly the sliders at rest
    refresh_every: int = 30
    _last: dict[str, tuple[float, ...]] = field(default_factory=dict)
    _n: int = 0

    def reset(self) -> None:
        """Forget what was written (the next frame writes everything)."""
        self._last.clear()
        self._n = 0

    def select(
        self, floats: list[tuple[str, float]], vectors: list[tuple[str, float, float]]
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float, float]]]:
        """The writes of one frame that need to happen."""
        full = not self._last or (self.refresh_every and self._n % self.refresh_every == 0)
        self._n += 1
        out_f = [w for w in floats if full or self._changed(w[0], w[1:])]
        out_v = [w for w in vectors if full or self._changed(w[0], w[1:])]
        for w in out_f:
            self._last[w[0]] = w[1:]
        for w in out_v:
            self._last[w[0]] = w[1:]
        return out_f, out_v

    def _changed(self, control: str, value: tuple[float, ...]) -> bool:
        last = self._last.get(control)
        return last is None or any(abs(a - b) > self.tolerance for a, b in zip(value, last))
