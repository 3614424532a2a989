"""Write control values to a live face rig, once per editor tick.

Three ways, chosen in the settings (``LiveSettings.apply_mode``):

* ``ChannelWriter`` (default, "channels"): each control's Sequencer channel in the face track's
  section gets the value as its *default* (``MovieSceneScriptingFloatChannel.set_default``; a 2D
  control has ``NAME.X`` and ``NAME.Y``). A channel without keys evaluates to its default, so
  the one forced Sequencer evaluation per tick (``compat.force_evaluation``) puts every value
  into the rig, and from there into the mesh: a cheap write per changed channel, one
  evaluation per tick, no undo transactions, no keys.
* ``RigSetterWriter`` ("rig_setters"): ``ControlRigSequencerLibrary.set_local_control_rig_*``
  with ``set_key=False``. In the engine each call runs Sequencer's interactive keying path (a
  transaction, an interrogation of the section); with Auto Key and Auto Set Track Defaults off
  (the defaults) it writes no channel and suppresses re-evaluation, so the next evaluation puts
  the channels' values back into the rig. Kept for comparison and for Diagnose.
* ``HierarchyWriter`` ("hierarchy"): the rig hierarchy's current values directly; a Sequencer
  evaluation overwrites them with the channels' values.

A failing call never raises into the editor: it is counted, and each control's first failure is
kept in ``errors`` for the status and the log.
"""

from __future__ import annotations

from typing import Any

from emoface_unreal.editor import compat, rig


class RigWriter:
    """Base: ``write(floats, vectors)``; ``read_curve(name)``; ``evaluates`` for the tick."""

    # Whether writes reach the mesh only through a Sequencer evaluation (the driver then forces
    # one per tick, after every subject's writes).
    needs_evaluation = False

    def __init__(self, binding: rig.FaceBinding) -> None:
        self.binding = binding
        self.n_calls = 0
        self.n_failed = 0
        self.errors: dict[str, str] = {}  # control -> its first failure
        self.new_errors: list[str] = []  # failures not yet reported to the status

    def write(
        self, floats: list[tuple[str, float]], vectors: list[tuple[str, float, float]]
    ) -> None:
        """Set float controls and 2D controls; failures are counted, not raised."""
        for control, value in floats:
            self._call(control, self._write_float, control, value)
        for control, x, y in vectors:
            self._call(control, self._write_vector2d, control, x, y)

    def read_curve(self, name: str) -> float | None:
        """A curve the rig computes, or None."""
        return rig.read_rig_curve(self.binding.rig, name)

    def _call(self, control: str, fn: Any, *args: Any) -> None:
        self.n_calls += 1
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - one bad control must not stop the others
            self.n_failed += 1
            if control not in self.errors:
                self.errors[control] = f"{type(e).__name__}: {e}"
                self.new_errors.append(f"cannot set {control}: {self.errors[control]}")

    def _write_float(self, control: str, value: float) -> None:
        raise NotImplementedError

    def _write_vector2d(self, control: str, x: float, y: float) -> None:
        raise NotImplementedError


class ChannelWriter(RigWriter):
    """Channel defaults of the face track's section; one forced evaluation per tick shows them."""

    needs_evaluation = True

    def __init__(self, binding: rig.FaceBinding) -> None:
        super().__init__(binding)
        self._channels: dict[str, Any] = {}

    def channel(self, name: str) -> Any:
        """The section's scripting channel ``name`` (``CTRL_x`` or ``CTRL_x.X``), looked up once.

        Raises:
            LookupError: the section has no such channel.
        """
        found = self._channels.get(name)
        if found is None:
            found = rig.find_channel(self.binding.section, name)
            if found is None:
                raise LookupError(f"no channel {name} on the face track")
            self._channels[name] = found
        return found

    def _write_float(self, control: str, value: float) -> None:
        self.channel(control).set_default(value)

    def _write_vector2d(self, control: str, x: float, y: float) -> None:
        self.channel(f"{control}.X").set_default(x)
        self.channel(f"{control}.Y").set_default(y)


class RigSetterWriter(RigWriter):
    """Unkeyed sets through ``ControlRigSequencerLibrary`` at the playhead frame."""

    def __init__(self, binding: rig.FaceBinding, frame: int = 0) -> None:
        import unreal

        super().__init__(binding)
        self._lib = unreal.ControlRigSequencerLibrary
        self._frame = unreal.FrameNumber(frame)
        self._unit = compat.display_rate_unit()
        self._vector2d = unreal.Vector2D

    def _write_float(self, control: str, value: float) -> None:
        self._lib.set_local_control_rig_float(
            self.binding.sequence,
            self.binding.rig,
            control,
            self._frame,
            value,
            time_unit=self._unit,
            set_key=False,
        )

    def _write_vector2d(self, control: str, x: float, y: float) -> None:
        self._lib.set_local_control_rig_vector2d(
            self.binding.sequence,
            self.binding.rig,
            control,
            self._frame,
            self._vector2d(x, y),
            time_unit=self._unit,
            set_key=False,
        )


class HierarchyWriter(RigWriter):
    """Direct writes of the rig hierarchy's current control values."""

    def __init__(self, binding: rig.FaceBinding) -> None:
        import unreal

        super().__init__(binding)
        self._unreal = unreal
        self._hierarchy = binding.rig.get_hierarchy()
        self._keys: dict[str, Any] = {}

    def _key(self, control: str) -> Any:
        key = self._keys.get(control)
        if key is None:
            unreal = self._unreal
            key = self._keys[control] = unreal.RigElementKey(
                type=unreal.RigElementType.CONTROL, name=control
            )
        return key

    def _write_float(self, control: str, value: float) -> None:
        unreal = self._unreal
        self._hierarchy.set_control_value(
            self._key(control),
            unreal.RigHierarchy.make_control_value_from_float(value),
            unreal.RigControlValueType.CURRENT,
        )

    def _write_vector2d(self, control: str, x: float, y: float) -> None:
        unreal = self._unreal
        value = unreal.RigHierarchy.make_control_value_from_vector2d(unreal.Vector2D(x, y))
        self._hierarchy.set_control_value(
            self._key(control), value, unreal.RigControlValueType.CURRENT
        )


WRITERS: dict[str, type[RigWriter]] = {
    "channels": ChannelWriter,
    "rig_setters": RigSetterWriter,
    "hierarchy": HierarchyWriter,
}


def make_writer(mode: str, binding: rig.FaceBinding) -> RigWriter:
    """The writer for ``LiveSettings.apply_mode``."""
    return WRITERS[mode](binding)
