"""Live drive in the editor: receive a stream and move the bound MetaHumans' faces every tick.

``start()`` binds each subject's MetaHuman in one scratch Level Sequence (the face board rig
exists only inside Sequencer; the sequence is reused from session to session, cleared, never
deleted: ``delete_asset`` closes every asset editor and may clear the undo history), starts the
network thread and registers a Slate post-tick callback. The callback runs on the game thread:
it drains the queue through ``LiveSession``, writes only the newest frame per subject (only the
values that changed), then forces one Sequencer evaluation for all of them (the default
"channels" writer: see ``writer``), imports line audio when its START arrives and plays it when
due, rests idle faces, and catches every error into the status so the editor never sees an
exception. ``stop()`` (also run at editor shutdown) unregisters the callback, stops the thread
and audio, rests the faces, clears the scratch sequence and saves it, so no dirty package is left
for the user's "Save All".
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoface_unreal import protocol
from emoface_unreal.controls import JAW, VECTOR2D, ControlPlan, DeltaFilter, plan_controls
from emoface_unreal.editor import compat, rig, scene
from emoface_unreal.editor.audio import AudioPlayer
from emoface_unreal.editor.logs import install_log_handler
from emoface_unreal.editor.writer import RigWriter, make_writer
from emoface_unreal.live import LiveSession
from emoface_unreal.selftest import JAW_OPEN_CURVE, JawSelfTest
from emoface_unreal.settings import SETTINGS_FILE, BakeSettings, LiveSettings, load_settings
from emoface_unreal.status import LiveStatus, SubjectStatus
from emoface_unreal.transport import Receiver, make_source

log = logging.getLogger(__name__)

LIVE_FOLDER = "/Game/EmoFace/Live"
LIVE_SEQUENCE = "LS_EmoFace_Live"
LIVE_FPS = 60
RECEIVING_WINDOW_S = 1.0  # "receiving" while a frame came within this long
START_WAIT_S = 0.5  # start() waits this long for the first connect/bind, to report its outcome
DRIVABLE_KINDS = ("control_rig", "custom")  # schema target kinds whose names can be rig controls
RATE_WINDOW_S = 2.0  # tick and apply rates are measured over this long
THROTTLED_HZ = 20.0  # below this tick rate while frames arrive, the status explains throttling
THROTTLING_HINT = (
    "the editor ticks only {hz:.0f} times a second, so the face updates that often: it is "
    "probably in the background with Editor Preferences > General > Performance > "
    '"Use Less CPU when in Background" on; turn that off for live preview'
)


class LiveError(RuntimeError):
    """Live drive cannot start; the message says what to fix."""


@dataclass
class DrivenSubject:
    """One subject bound to one MetaHuman face."""

    subject: str
    actor_label: str
    binding: rig.FaceBinding
    writer: RigWriter
    controls: dict[str, str]
    selftest: JawSelfTest | None = None
    schema: protocol.Schema | None = None
    plan: ControlPlan | None = None
    delta: DeltaFilter = field(default_factory=DeltaFilter)
    signs: dict[tuple[str, str], float] = field(default_factory=dict)
    reported: set[int] = field(default_factory=set)  # schema ids whose problems were logged
    held: protocol.Frame | None = None  # the newest frame that came during the jaw self-test


def settings_path() -> Path:
    """``<Project>/Saved/EmoFace/settings.json``."""
    import unreal

    return Path(unreal.Paths.project_saved_dir()) / SETTINGS_FILE


def load_saved_settings() -> tuple[LiveSettings, BakeSettings]:
    """The saved settings (defaults when none were saved)."""
    return load_settings(settings_path())


class LiveDriver:
    """Receives one stream and drives the faces bound to its subjects.

    Args:
        settings: transport, subjects and actors, options.
        clock: wall clock (tests inject a fake one).
    """

    def __init__(self, settings: LiveSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.subjects: dict[str, DrivenSubject] = {}
        self.receiver: Receiver | None = None
        self.session: LiveSession | None = None
        self.audio = AudioPlayer(settings.audio_folder, clock)
        self.sequence: Any = None
        self._evaluate = False  # a writer that needs a Sequencer evaluation wrote this tick
        self._tick_walls: deque[float] = deque()
        self._apply_walls: deque[float] = deque()
        self._tick_handle: Any = None
        self._shutdown_handle: Any = None
        self._errors_logged: set[str] = set()
        self._in_tick = False
        self._last_sequencer_check = 0.0

    @property
    def running(self) -> bool:
        """Whether the tick callback is registered."""
        return self._tick_handle is not None

    def start(self) -> None:
        """Bind the faces, start receiving and register the tick callback.

        Raises:
            LiveError: an actor, the face rig or the transport is not usable (nothing is left
                running in that case).
        """
        import unreal

        install_log_handler()
        try:
            self._bind_all()
            subjects = list(self.subjects)
            source = make_source(self.settings, subjects)
            self.receiver = Receiver(source, self.settings.queue_size, clock=self.clock)
            self.session = LiveSession(
                subjects,
                self.receiver.queue,
                watchdog_timeout_s=self.settings.watchdog_timeout_ms / 1000,
                audio_offset_s=self.settings.audio_offset_ms / 1000,
                play_audio=self.settings.play_audio,
                clock=self.clock,
            )
            self.receiver.start(wait_s=START_WAIT_S)
            self._tick_handle = unreal.register_slate_post_tick_callback(self._on_tick)
            if hasattr(unreal, "register_python_shutdown_callback"):
                self._shutdown_handle = unreal.register_python_shutdown_callback(self.stop)
        except (scene.SceneError, ImportError, OSError, ValueError) as e:
            self.stop()
            raise LiveError(str(e)) from e
        except Exception:
            self.stop()
            raise
        log.info(
            "EmoFace: live drive started, %s; %s",
            source.description,
            ", ".join(f"{s.subject} -> {s.actor_label}" for s in self.subjects.values()),
        )

    def _bind_all(self) -> None:
        actors = []
        for subject, label in self.settings.bindings():
            actor = scene.find_actor(label)
            if any(actor == other for _, other in actors):
                raise scene.SceneError(
                    f"{actor.get_actor_label()} is bound to two subjects; "
                    "give each subject its own MetaHuman"
                )
            actors.append((subject, actor))
        rig_classes = [
            scene.load_face_rig_class(self.settings.face_rig_asset, scene.face_component(actor))
            for _, actor in actors
        ]
        self.sequence = self._scratch_sequence()
        rig.open_in_sequencer(self.sequence)
        for (subject, actor), rig_class in zip(actors, rig_classes):
            binding = rig.bind_face(self.sequence, actor, rig_class)
            controls = rig.rig_controls(binding.rig)
            writer = make_writer(self.settings.apply_mode, binding)
            driven = DrivenSubject(subject, actor.get_actor_label(), binding, writer, controls)
            if self.settings.jaw_self_test and controls.get(JAW) == VECTOR2D:
                driven.selftest = JawSelfTest(
                    lambda y, d=driven: self._write(d, [], [(JAW, 0.0, y)]),
                    lambda b=binding: scene.jaw_transform(b.face),
                    scene.transform_delta,
                    lambda w=writer: w.read_curve(JAW_OPEN_CURVE),
                )
            self.subjects[subject] = driven
        compat.set_playhead(0)

    def _scratch_sequence(self) -> Any:
        """The live Level Sequence: the one from an earlier session, emptied, else a new one."""
        import unreal

        path = f"{LIVE_FOLDER}/{LIVE_SEQUENCE}"
        sequence = unreal.EditorAssetLibrary.load_asset(path)  # by path: no registry needed
        if sequence is None:
            sequence = rig.create_sequence(LIVE_SEQUENCE, LIVE_FOLDER)
        elif not isinstance(sequence, unreal.LevelSequence):
            raise scene.SceneError(
                f"{path} exists and is not a Level Sequence; rename it (EmoFace keeps its "
                "live scratch sequence there)"
            )
        else:
            lib = unreal.LevelSequenceEditorBlueprintLibrary
            if lib.get_current_level_sequence() == sequence:
                lib.close_level_sequence()
            rig.clear_sequence(sequence)
        sequence.set_display_rate(unreal.FrameRate(LIVE_FPS, 1))
        sequence.set_playback_start(0)
        sequence.set_playback_end(LIVE_FPS)
        return sequence

    def stop(self) -> None:
        """Stop receiving, rest the faces and clean up; safe to call twice and at shutdown."""
        import unreal

        if self._tick_handle is not None:
            unreal.unregister_slate_post_tick_callback(self._tick_handle)
            self._tick_handle = None
        if self._shutdown_handle is not None:
            if hasattr(unreal, "unregister_python_shutdown_callback"):
                unreal.unregister_python_shutdown_callback(self._shutdown_handle)
            self._shutdown_handle = None
        if self.receiver is not None:
            self.receiver.stop()
        self.audio.stop_all()
        if self.sequence is not None:
            try:
                self._rest_and_release()
            except Exception as e:  # noqa: BLE001 - cleanup is best effort
                log.warning("EmoFace: could not clear the live sequence: %s", e)
            self.sequence = None
        if self.session is not None:
            log.info("EmoFace: live drive stopped. %s", self.status().text())

    def _rest_and_release(self) -> None:
        """Faces to rest, the scratch sequence closed, emptied and saved (nothing left dirty)."""
        import unreal

        for driven in self.subjects.values():
            if driven.plan is not None:
                self._write(driven, *driven.plan.neutral())
        self._flush()
        lib = unreal.LevelSequenceEditorBlueprintLibrary
        if lib.get_current_level_sequence() == self.sequence:
            lib.close_level_sequence()
        rig.clear_sequence(self.sequence)
        unreal.EditorAssetLibrary.save_loaded_asset(self.sequence, only_if_is_dirty=True)

    def _write(
        self,
        driven: DrivenSubject,
        floats: list[tuple[str, float]],
        vectors: list[tuple[str, float, float]],
    ) -> None:
        if floats or vectors:
            driven.writer.write(floats, vectors)
            self._evaluate = self._evaluate or driven.writer.needs_evaluation

    def _flush(self) -> None:
        """One Sequencer evaluation for everything written this tick, if a writer needs it."""
        if self._evaluate:
            self._evaluate = False
            compat.force_evaluation(0)

    def _on_tick(self, delta_s: float) -> None:
        """Slate post-tick callback: never raises into the editor."""
        if self._in_tick or self.session is None:
            return
        self._in_tick = True
        try:
            self.tick()
        except Exception as e:  # noqa: BLE001 - the editor must never see our exceptions
            self._error(f"{type(e).__name__}: {e}")
        finally:
            self._in_tick = False

    def tick(self) -> None:
        """One editor tick (see the module docstring)."""
        session = self.session
        assert session is not None
        now = self.clock()
        events = session.tick()
        for schema in events.schemas:
            driven = self.subjects[schema.subject]
            driven.schema = schema
            self._replan(driven)
        for driven in self.subjects.values():
            if driven.selftest is not None and not driven.selftest.done and driven.selftest.step():
                self._selftest_done(driven)
        applied = False
        for subject, frame in events.frames.items():
            driven = self.subjects[subject]
            if driven.selftest is not None and not driven.selftest.done:
                if driven.held is not None:
                    session.state[subject].n_superseded += 1
                driven.held = frame  # at most selftest.MAX_TICKS ticks, then it applies
                continue
            applied = self._apply(driven, frame) or applied
        for driven in self.subjects.values():
            if driven.held is not None and (driven.selftest is None or driven.selftest.done):
                frame, driven.held = driven.held, None
                applied = self._apply(driven, frame) or applied
        for subject in events.idle:
            driven = self.subjects[subject]
            if driven.plan is not None:
                self._write(driven, *driven.plan.neutral())
                driven.delta.reset()
        self._flush()
        self._count_rates(now, applied)
        for subject in events.stop_audio:
            self.audio.stop(subject)
        for subject, path in events.prepare_audio:
            try:
                self.audio.prepare(subject, path)
            except scene.SceneError as e:
                self._error(f"{subject}: {e}")
        for subject, path, play_at in events.play_audio:
            try:
                self.audio.play(subject, path, play_at)
            except scene.SceneError as e:
                self._error(f"{subject}: {e}")
        self._check_sequencer()
        for driven in self.subjects.values():
            while driven.writer.new_errors:
                self._error(f"{driven.subject}: {driven.writer.new_errors.pop(0)}")

    def _apply(self, driven: DrivenSubject, frame: protocol.Frame) -> bool:
        """Write a frame's changed values to the face; whether it reached the rig."""
        if driven.plan is None or self.session is None:
            return False
        values = frame.values
        floats, vectors = driven.delta.select(
            driven.plan.float_values(values), driven.plan.vector_values(values)
        )
        self._write(driven, floats, vectors)
        self.session.count_applied(driven.subject)
        return True

    def _count_rates(self, now: float, applied: bool) -> None:
        for walls, happened in ((self._tick_walls, True), (self._apply_walls, applied)):
            if happened:
                walls.append(now)
            while walls and now - walls[0] > RATE_WINDOW_S:
                walls.popleft()

    def rates(self) -> tuple[float, float]:
        """``(editor ticks per second, ticks per second that moved a face)`` lately."""
        walls = self._tick_walls
        if len(walls) < 2 or walls[-1] <= walls[0]:
            return 0.0, 0.0
        span = walls[-1] - walls[0]
        applies = sum(1 for t in self._apply_walls if t > walls[0])
        return (len(walls) - 1) / span, applies / span

    def _check_sequencer(self) -> None:
        """Say (once per second at most) when the live sequence is no longer open in Sequencer:
        the rig instances exist only there, so writes then do nothing."""
        import unreal

        now = self.clock()
        if now - self._last_sequencer_check < 1.0:
            return
        self._last_sequencer_check = now
        current = unreal.LevelSequenceEditorBlueprintLibrary.get_current_level_sequence()
        if current != self.sequence:
            self._error(
                f"the live Level Sequence {LIVE_SEQUENCE} is not open in Sequencer, so the faces "
                "do not move; stop and start live drive to reopen it"
            )

    def _replan(self, driven: DrivenSubject) -> None:
        schema = driven.schema
        if schema is None:
            return
        first_time = schema.schema_id not in driven.reported
        driven.reported.add(schema.schema_id)
        if schema.target_kind not in DRIVABLE_KINDS:
            driven.plan = None
            self._error(
                f"{driven.subject}: the stream carries {schema.target_kind} targets (mapping "
                f"{schema.mapping_id or '?'}); live drive needs face-board controls: stream with "
                "--mapping metahuman_faceboard"
            )
            return
        plan = plan_controls(schema.names, driven.controls, signs=driven.signs)
        driven.delta.reset()
        if plan.n_controls == 0:
            driven.plan = None
            self._error(
                f"{driven.subject}: none of the {len(schema.names)} targets is a control of "
                f"{driven.actor_label}'s face rig (first: {(schema.names or ('-',))[0]})"
            )
            return
        driven.plan = plan
        if first_time:
            log.info(
                "EmoFace: %s: %d targets of mapping %s -> %d controls of %s",
                driven.subject,
                len(schema.names),
                schema.mapping_id or "?",
                plan.n_controls,
                driven.actor_label,
            )
            for note in plan.notes:
                log.info("EmoFace: %s: %s", driven.subject, note)
            if plan.unresolved:
                log.warning(
                    "EmoFace: %s: %d target(s) have no control on %s's face rig and are "
                    "ignored: %s",
                    driven.subject,
                    len(plan.unresolved),
                    driven.actor_label,
                    ", ".join(plan.unresolved),
                )

    def _selftest_done(self, driven: DrivenSubject) -> None:
        test = driven.selftest
        assert test is not None
        driven.signs[(JAW, "Y")] = test.sign
        level = logging.WARNING if test.result != "positive" else logging.INFO
        log.log(level, "EmoFace: %s (%s): %s", driven.subject, driven.actor_label, test.message)
        self._replan(driven)

    def _error(self, message: str) -> None:
        if self.session is not None:
            self.session.note_error(message)
        if message not in self._errors_logged:
            self._errors_logged.add(message)
            log.warning("EmoFace: %s", message)

    def status(self) -> LiveStatus:
        """A snapshot for the status dialog."""
        session, receiver = self.session, self.receiver
        if session is None or receiver is None:
            return LiveStatus()
        now = self.clock()
        stats = session.decoder.stats
        recent = any(now - s.last_frame_wall < RECEIVING_WINDOW_S for s in session.state.values())
        if not self.running:
            state = "stopped"
        elif not receiver.connected:
            state = "connecting"
        else:
            state = "receiving" if recent else "listening"
        candidates = [
            (session.last_error_wall, session.last_error),
            (receiver.last_error_wall, receiver.last_error),
            (
                getattr(receiver.source, "last_error_wall", 0.0),
                getattr(receiver.source, "last_error", ""),
            ),
        ]
        when, last_error = max((c for c in candidates if c[1]), default=(0.0, ""))
        tick_hz, apply_hz = self.rates()
        hint = THROTTLING_HINT.format(hz=tick_hz) if recent and 0 < tick_hz < THROTTLED_HZ else ""
        status = LiveStatus(
            state=state,
            tick_hz=tick_hz,
            apply_hz=apply_hz,
            hint=hint,
            source=receiver.source.description,
            n_packets=receiver.n_packets,
            n_frames=stats.n_frames,
            n_applied=session.n_frames_applied,
            dropped={
                "superseded": session.n_superseded,
                "stale": stats.n_out_of_order,
                "duplicate": stats.n_duplicates,
                "before schema": stats.n_waiting_for_schema,
                "lost in transit": stats.n_missing,
                "queue overflow": receiver.n_queue_dropped,
                "NaN or infinite": stats.n_nonfinite,
            },
            n_malformed=stats.n_malformed,
            last_error=last_error,
            last_error_age_s=max(0.0, now - when) if last_error else 0.0,
        )
        for subject, driven in self.subjects.items():
            state_ = session.state[subject]
            schema = driven.schema
            status.subjects.append(
                SubjectStatus(
                    subject=subject,
                    actor=driven.actor_label,
                    n_applied=state_.n_applied,
                    n_controls=driven.plan.n_controls if driven.plan else 0,
                    n_unresolved=len(driven.plan.unresolved) if driven.plan else 0,
                    line_id=state_.line.line_id if state_.line else 0,
                    last_seq=state_.last_frame.seq if state_.last_frame else None,
                    lag_ms=state_.lag_ms,
                    jaw=_jaw_status(driven.selftest),
                    mapping=f"{schema.mapping_id} ({schema.target_kind})" if schema else "",
                    audio=self.audio.status.get(subject, ""),
                )
            )
        return status


def _jaw_status(test: JawSelfTest | None) -> str:
    if test is None:
        return "off"
    return f"{test.result} ({test.degrees:.1f} deg)" if test.done else test.result


_DRIVER: LiveDriver | None = None


def start(settings: LiveSettings | None = None) -> LiveDriver:
    """Start live drive (stopping a running one first) with ``settings`` or the saved ones.

    Raises:
        LiveError: see ``LiveDriver.start``.
        ValueError: the saved settings are invalid.
    """
    global _DRIVER
    stop()
    settings = settings or load_saved_settings()[0]
    driver = LiveDriver(settings)
    driver.start()
    _DRIVER = driver
    return driver


def stop() -> None:
    """Stop live drive if it runs."""
    global _DRIVER
    if _DRIVER is not None:
        _DRIVER.stop()
        _DRIVER = None


def is_running() -> bool:
    """Whether live drive runs."""
    return _DRIVER is not None and _DRIVER.running


def status() -> LiveStatus:
    """The running driver's status (a "stopped" one when none runs)."""
    return _DRIVER.status() if _DRIVER is not None else LiveStatus()


def status_text() -> str:
    """``status()`` as text."""
    return status().text()
