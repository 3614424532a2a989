"""EmoFace > Diagnose: what each way of moving the face really does in this editor, in one report.

Nobody on the project has run the plugin in a real Unreal Editor, so this is how the first user's
editor tells us. On one MetaHuman (the selected one, or a label) it binds the face in a scratch
Level Sequence and, for each writer of ``writer.WRITERS`` (channel defaults + one forced
evaluation; the rig setters; direct hierarchy writes):

* writes the jaw open (+0.5, then -0.5) and measures the face's jaw joint a tick later: the
  rotation in degrees, so "moved" means what a viewer would see;
* times 1,000 writes of one float control (and, for channels, the forced evaluation);

then imports and plays a short generated tone, and records the engine version, the rig class and
where it came from, the controls resolved and unresolved against the face board mapping and the
editor's tick rate. The report goes to ``Saved/EmoFace/diagnose-<time>.json`` and ``.txt``; the
path is logged and shown. The rig setters' writes run inside one cancelled transaction, so the
user's undo history is not flooded (there is no Python API to read the undo history's size: the
report says so rather than guess).

It is a generator stepped once per editor tick (a pose shows a tick after it is evaluated), so it
runs from the menu and unattended: ``UnrealEditor Project.uproject -ExecutePythonScript=
".../emoface_diagnose.py --actor BP_Ada --quit"``. Every step catches its own errors into the
report: a diagnosis must always finish and say what failed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import struct
import sys
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoface_unreal import __version__
from emoface_unreal.controls import FLOAT, JAW, VECTOR2D, plan_controls
from emoface_unreal.editor import compat, rig, scene
from emoface_unreal.editor.logs import install_log_handler
from emoface_unreal.editor.writer import WRITERS, make_writer
from emoface_unreal.rigmap import load_rig_mapping
from emoface_unreal.selftest import JAW_OPEN_CURVE, MIN_DEGREES, TEST_VALUE

log = logging.getLogger(__name__)

REPORT_VERSION = 1
DIAGNOSE_FOLDER = "/Game/EmoFace/Diagnose"
DIAGNOSE_SEQUENCE = "LS_EmoFace_Diagnose"
N_WRITES = 1000
N_EVALUATIONS = 20
SETTLE_TICKS = 2  # ticks between a write and the joint reading
TIMED_CONTROL = "CTRL_L_brow_down"  # a float control every face board has
TONE_S, TONE_HZ, TONE_RATE = 0.5, 440.0, 48000
UNDO_NOTE = (
    "UE 5.6 has no Python API for the undo history's size; open Edit > Undo History to see it. "
    "From the engine source: the rig setters make one transaction per call, channel defaults "
    "and hierarchy writes none. Diagnose cancels the transactions its own writes make."
)


@dataclass
class Diagnosis:
    """One run; ``report`` fills in as it goes, ``done`` when it is written.

    Args:
        actor_label: the MetaHuman's label; empty: the one selected actor.
        n_writes: writes timed per mechanism.
        clock: for the timings and the tick rate.
        on_done: called with the report's JSON path (or None if it could not be written).
    """

    actor_label: str = ""
    n_writes: int = N_WRITES
    clock: Callable[[], float] = time.perf_counter
    on_done: Callable[[Path | None], None] | None = None
    report: dict[str, Any] = field(default_factory=dict)
    done: bool = False
    path: Path | None = None
    _steps: Iterator[None] | None = None
    _tick_handle: Any = None
    _tick_times: list[float] = field(default_factory=list)

    def start(self) -> None:
        """Run over the next editor ticks (a Slate post-tick callback)."""
        import unreal

        install_log_handler()
        self._steps = self._run()
        self._tick_handle = unreal.register_slate_post_tick_callback(self._on_tick)

    def _on_tick(self, delta_s: float) -> None:
        self._tick_times.append(self.clock())
        try:
            assert self._steps is not None
            next(self._steps)
        except StopIteration:
            self._finish()
        except Exception as e:  # noqa: BLE001 - the editor must never see our exceptions
            self._error("diagnosis", e)
            self._finish()

    def _finish(self) -> None:
        import unreal

        if self._tick_handle is not None:
            unreal.unregister_slate_post_tick_callback(self._tick_handle)
            self._tick_handle = None
        self._steps = None
        self.report["editor_tick_hz"] = round(tick_rate(self._tick_times), 1)
        try:
            self.path = write_report(self.report)
            log.info("EmoFace: Diagnose report written to %s", self.path)
        except OSError as e:
            log.error("EmoFace: could not write the Diagnose report: %s", e)
        self.done = True
        if self.on_done is not None:
            self.on_done(self.path)

    def _error(self, step: str, e: BaseException) -> None:
        self.report.setdefault("errors", []).append(f"{step}: {type(e).__name__}: {e}")
        log.warning("EmoFace Diagnose: %s: %s", step, e)

    def _run(self) -> Iterator[None]:
        report = self.report
        report.update(
            diagnose_version=REPORT_VERSION,
            when=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            engine_version=compat.engine_version(),
            plugin_version=__version__,
            python=sys.version.split()[0],
            platform=platform.platform(),
            undo=UNDO_NOTE,
        )
        binding = None
        sequence = None
        try:
            binding, sequence = self._bind()
        except Exception as e:  # noqa: BLE001 - reported; the audio check still runs
            self._error("bind", e)
        if binding is not None:
            report["mechanisms"] = {}
            for mode in WRITERS:
                yield from self._mechanism(mode, binding)
            moved = [m for m, r in report["mechanisms"].items() if r.get("moved")]
            report["moves_the_face"] = moved
        self._audio()
        if sequence is not None:
            try:
                release_sequence(sequence)
            except Exception as e:  # noqa: BLE001
                self._error("cleanup", e)
        yield

    def _bind(self) -> tuple[rig.FaceBinding, Any]:
        import unreal

        report = self.report
        actor = scene.find_actor(self.actor_label)
        face = scene.face_component(actor)
        mesh = compat.skeletal_mesh_of(face)
        animating = compat.default_animating_rig(mesh) if mesh is not None else None
        report.update(
            actor=actor.get_actor_label(),
            face_component=str(face.get_fname()),
            face_mesh=mesh.get_path_name() if mesh is not None else "",
            default_animating_rig=animating.get_path_name() if animating is not None else "",
        )
        rig_class = scene.load_face_rig_class("", face)
        report["rig_class"] = rig_class.get_path_name()
        sequence = scratch_sequence(DIAGNOSE_SEQUENCE, DIAGNOSE_FOLDER)
        rig.open_in_sequencer(sequence)
        binding = rig.bind_face(sequence, actor, rig_class)
        controls = rig.rig_controls(binding.rig)
        plan = plan_controls(load_rig_mapping("faceboard").names, controls)
        kinds = list(controls.values())
        report["controls"] = {
            "total": len(controls),
            "float": kinds.count(FLOAT),
            "vector2d": kinds.count(VECTOR2D),
            "other": len(kinds) - kinds.count(FLOAT) - kinds.count(VECTOR2D),
            "resolved": plan.n_controls,
            "unresolved": list(plan.unresolved),
            "notes": list(plan.notes),
        }
        report["channels"] = len(list(binding.section.get_all_channels()))
        report["sequence_open"] = (
            unreal.LevelSequenceEditorBlueprintLibrary.get_current_level_sequence() == sequence
        )
        compat.force_evaluation(0)
        return binding, sequence

    def _mechanism(self, mode: str, binding: rig.FaceBinding) -> Iterator[None]:
        result: dict[str, Any] = {}
        self.report["mechanisms"][mode] = result
        try:
            writer = make_writer(mode, binding)
        except Exception as e:  # noqa: BLE001
            result["error"] = f"{type(e).__name__}: {e}"
            return
        rest = make_writer("channels", binding)  # the reference rest pose between mechanisms

        def write_jaw(w: Any, y: float) -> None:
            with _untracked():  # the rig setters' transaction would stay in the undo history
                w.write([], [(JAW, 0.0, y)])
            if w.needs_evaluation:
                compat.force_evaluation(0)

        try:
            write_jaw(rest, 0.0)
            compat.force_evaluation(0)
        except Exception as e:  # noqa: BLE001
            result["error"] = f"rest: {type(e).__name__}: {e}"
        yield from _ticks(SETTLE_TICKS)
        for label, value in (("plus", TEST_VALUE), ("minus", -TEST_VALUE)):
            try:
                before = scene.jaw_transform(binding.face)
                write_jaw(writer, value)
            except Exception as e:  # noqa: BLE001
                result[f"jaw_{label}_error"] = f"{type(e).__name__}: {e}"
                continue
            yield from _ticks(SETTLE_TICKS)
            try:
                degrees, cm = scene.transform_delta(before, scene.jaw_transform(binding.face))
                result[f"jaw_{label}_deg"] = round(degrees, 3)
                result[f"jaw_{label}_cm"] = round(cm, 4)
                curve = writer.read_curve(JAW_OPEN_CURVE)
                result[f"{JAW_OPEN_CURVE}_{label}"] = None if curve is None else round(curve, 4)
                write_jaw(writer, 0.0)
            except Exception as e:  # noqa: BLE001
                result[f"jaw_{label}_error"] = f"{type(e).__name__}: {e}"
            yield from _ticks(SETTLE_TICKS)
        result["moved"] = any(
            result.get(f"jaw_{label}_deg", 0.0) >= MIN_DEGREES for label in ("plus", "minus")
        )
        self._time_writes(mode, writer, result)
        result["write_errors"] = dict(list(writer.errors.items())[:5])
        try:
            write_jaw(rest, 0.0)
            compat.force_evaluation(0)
        except Exception as e:  # noqa: BLE001
            self._error(f"{mode} rest", e)

    def _time_writes(self, mode: str, writer: Any, result: dict[str, Any]) -> None:
        n = self.n_writes
        try:
            with _untracked():  # the rig setters would leave n entries in the undo history
                start = self.clock()
                for i in range(n):
                    writer.write([(TIMED_CONTROL, 0.5 * (i % 2))], [])
                elapsed = self.clock() - start
            result["us_per_write"] = round(elapsed / n * 1e6, 2)
            result["writes_per_s"] = round(n / elapsed) if elapsed > 0 else None
            if writer.needs_evaluation:
                start = self.clock()
                for _ in range(N_EVALUATIONS):
                    compat.force_evaluation(0)
                result["ms_per_evaluation"] = round((self.clock() - start) / N_EVALUATIONS * 1e3, 3)
            with _untracked():
                writer.write([(TIMED_CONTROL, 0.0)], [])
        except Exception as e:  # noqa: BLE001
            result["timing_error"] = f"{type(e).__name__}: {e}"

    def _audio(self) -> None:
        from emoface_unreal.editor import audio

        result: dict[str, Any] = {}
        self.report["audio"] = result
        try:
            tone = write_tone(saved_folder() / "diagnose_tone.wav")
            sound = audio.import_sound(str(tone), folder=DIAGNOSE_FOLDER, save=True)
            result["import"] = sound.get_path_name()
        except Exception as e:  # noqa: BLE001
            result["import"] = f"failed: {type(e).__name__}: {e}"
            return
        player = audio.AudioPlayer()
        try:
            player.play("diagnose", str(tone), time.time())
            result["playback"] = "started"
        except Exception as e:  # noqa: BLE001
            result["playback"] = f"failed: {e}"
        finally:
            player.stop_all()


@contextlib.contextmanager
def _untracked() -> Iterator[None]:
    """One editor transaction around the block, then cancelled: inner transactions join it, so
    nothing is left in the undo history (the changes stay)."""
    import unreal

    with unreal.ScopedEditorTransaction("EmoFace Diagnose") as transaction:
        try:
            yield
        finally:
            transaction.cancel()


def _ticks(n: int) -> Iterator[None]:
    for _ in range(n):
        yield


def tick_rate(times: list[float]) -> float:
    """Ticks per second over the recorded tick times."""
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def scratch_sequence(name: str, folder: str) -> Any:
    """A Level Sequence of ours to bind in: reused and emptied, else created (never deleted:
    ``delete_asset`` closes every asset editor and may clear the undo history)."""
    import unreal

    path = f"{folder}/{name}"
    sequence = unreal.EditorAssetLibrary.load_asset(path)
    if sequence is None:
        return rig.create_sequence(name, folder)
    if not isinstance(sequence, unreal.LevelSequence):
        raise scene.SceneError(f"{path} exists and is not a Level Sequence; rename it")
    lib = unreal.LevelSequenceEditorBlueprintLibrary
    if lib.get_current_level_sequence() == sequence:
        lib.close_level_sequence()
    rig.clear_sequence(sequence)
    return sequence


def release_sequence(sequence: Any) -> None:
    """Close, empty and save a scratch sequence, so no dirty package is left behind."""
    import unreal

    lib = unreal.LevelSequenceEditorBlueprintLibrary
    if lib.get_current_level_sequence() == sequence:
        lib.close_level_sequence()
    rig.clear_sequence(sequence)
    unreal.EditorAssetLibrary.save_loaded_asset(sequence, only_if_is_dirty=True)


def saved_folder() -> Path:
    """``<Project>/Saved/EmoFace``."""
    import unreal

    folder = Path(unreal.Paths.project_saved_dir()) / "EmoFace"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_tone(path: Path) -> Path:
    """A short 440 Hz tone (16-bit mono WAV) to check import and playback with."""
    n = int(TONE_S * TONE_RATE)
    samples = (int(0.3 * 32767 * math.sin(2 * math.pi * TONE_HZ * i / TONE_RATE)) for i in range(n))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(TONE_RATE)
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


def report_text(report: dict[str, Any]) -> str:
    """The report for people: what moved the face, what failed, the numbers."""
    lines = [
        f"EmoFace Diagnose {report.get('when', '')}",
        f"  engine {report.get('engine_version', '?')}, plugin {report.get('plugin_version')}, "
        f"Python {report.get('python')}, {report.get('platform', '')}",
    ]
    if "actor" in report:
        lines.append(
            f"  {report['actor']}: face {report.get('face_component')} "
            f"({report.get('face_mesh') or 'no mesh'}), rig {report.get('rig_class', '?')}"
        )
    controls = report.get("controls")
    if controls:
        lines.append(
            f"  controls: {controls['total']} ({controls['float']} float, "
            f"{controls['vector2d']} 2D), face board targets resolved {controls['resolved']}, "
            f"unresolved {len(controls['unresolved'])}"
        )
    for mode, result in report.get("mechanisms", {}).items():
        parts = [
            f"jaw +{TEST_VALUE}: {result.get('jaw_plus_deg', '?')} deg",
            f"-{TEST_VALUE}: {result.get('jaw_minus_deg', '?')} deg",
        ]
        if "us_per_write" in result:
            parts.append(f"{result['us_per_write']} us/write")
        if "ms_per_evaluation" in result:
            parts.append(f"{result['ms_per_evaluation']} ms/evaluation")
        errors = [str(v) for k, v in result.items() if k.endswith("error")]
        verdict = "MOVES the face" if result.get("moved") else "does not move the face"
        lines.append(
            f"  {mode}: {verdict} ({', '.join(parts)})" + "".join(f"; {e}" for e in errors)
        )
    if "moves_the_face" in report:
        moved = report["moves_the_face"]
        lines.append(
            "  use apply mode: " + (moved[0] if moved else "none moved the face: send this report")
        )
    audio = report.get("audio", {})
    lines.append(
        f"  audio: import {audio.get('import', '?')}, playback {audio.get('playback', '?')}"
    )
    lines.append(f"  editor ticks: {report.get('editor_tick_hz', '?')} per second")
    lines.append(f"  undo: {report.get('undo', '')}")
    for error in report.get("errors", []):
        lines.append(f"  ERROR {error}")
    return "\n".join(lines)


def write_report(report: dict[str, Any]) -> Path:
    """``Saved/EmoFace/diagnose-<time>.json`` and ``.txt`` (written whole, then renamed)."""
    folder = saved_folder()
    stem = f"diagnose-{time.strftime('%Y%m%d-%H%M%S')}"
    path = folder / f"{stem}.json"
    for target, text in (
        (path, json.dumps(report, indent=2, sort_keys=True, default=str)),
        (folder / f"{stem}.txt", report_text(report)),
    ):
        partial = target.with_name(target.name + ".part")
        partial.write_text(text + "\n", encoding="utf-8")
        os.replace(partial, target)
    return path


_RUNNING: Diagnosis | None = None


def start(actor_label: str = "", on_done: Callable[[Path | None], None] | None = None) -> Diagnosis:
    """Start a diagnosis (one at a time); it finishes over the next few dozen ticks."""
    global _RUNNING
    if _RUNNING is not None and not _RUNNING.done:
        return _RUNNING
    _RUNNING = Diagnosis(actor_label, on_done=on_done)
    _RUNNING.start()
    return _RUNNING
