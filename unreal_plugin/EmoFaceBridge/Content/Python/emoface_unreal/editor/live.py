"""Live drive in the editor: receive a stream and move the bound MetaHumans' faces every tick.

``start()`` binds each subject's MetaHuman in a temporary Level Sequence (the face board rig
exists only inside Sequencer), starts the network thread and registers a Slate post-tick
callback. The callback runs on the game thread: it drains the queue through ``LiveSession``,
applies only the newest frame per subject, plays line audio, rests idle faces, and catches every
error into the status so the editor never sees an exception. ``stop()`` (also run at editor
shutdown) unregisters the callback, stops the thread and audio, and removes the temporary
sequence.
"""

from __future__ import annotations

import logging
import time
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
        self.audio = AudioPlayer()
        self.sequence: Any = None
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
        import unreal

        actors = []
        for subject, label in self.settings.bindings():
            actor = scene.find_actor(label)
            if any(actor == other for _, other in actors):
                raise scene.SceneError(
                    f"{actor.get_actor_label()} is bound to two subjects; "
                    "give each subject its own MetaHuman"
                )
            actors.append((subject, actor))
        rig_class = scene.load_face_rig_class(self.settings.face_rig_asset)
        library = unreal.EditorAssetLibrary
        path = f"{LIVE_FOLDER}/{LIVE_SEQUENCE}"
        if library.does_asset_exist(path):  # our own scratch asset from an earlier session
            sequencer = unreal.LevelSequenceEditorBlueprintLibrary
            if sequencer.get_current_level_sequence() == library.load_asset(path):
                sequencer.close_level_sequence()
            library.delete_asset(path)
        self.sequence = rig.create_sequence(LIVE_SEQUENCE, LIVE_FOLDER)
        self.sequence.set_display_rate(unreal.FrameRate(LIVE_FPS, 1))
        self.sequence.set_playback_start(0)
        self.sequence.set_playback_end(LIVE_FPS)
        unreal.LevelSequenceEditorBlueprintLibrary.open_level_sequence(self.sequence)
        for subject, actor in actors:
            binding = rig.bind_face(self.sequence, actor, rig_class)
            controls = rig.rig_controls(binding.rig)
            writer = make_writer(self.settings.apply_mode, binding)
            driven = DrivenSubject(subject, actor.get_actor_label(), binding, writer, controls)
            if self.settings.jaw_self_test and controls.get(JAW) == VECTOR2D:
                driven.selftest = JawSelfTest(
                    lambda y, w=writer: w.write([], [(JAW, 0.0, y)]),
                    lambda w=writer: w.read_curve(JAW_OPEN_CURVE),
                )
            self.subjects[subject] = driven
        compat.set_playhead(0)

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
        for driven in self.subjects.values():
            if driven.plan is not None:
                driven.writer.write(*driven.plan.neutral())
        if self.sequence is not None:
            try:
                library = unreal.LevelSequenceEditorBlueprintLibrary
                if library.get_current_level_sequence() == self.sequence:
                    library.close_level_sequence()
                unreal.EditorAssetLibrary.delete_asset(self.sequence.get_path_name())
            except Exception as e:  # noqa: BLE001 - cleanup is best effort
                log.warning("EmoFace: could not remove the live sequence: %s", e)
            self.sequence = None
        if self.session is not None:
            log.info("EmoFace: live drive stopped. %s", self.status().text())

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
        events = session.tick()
        for schema in events.schemas:
            driven = self.subjects[schema.subject]
            driven.schema = schema
            self._replan(driven)
        for driven in self.subjects.values():
            if driven.selftest is not None and not driven.selftest.done and driven.selftest.step():
                self._selftest_done(driven)
        for subject, frame in events.frames.items():
            driven = self.subjects[subject]
            if driven.plan is None or (driven.selftest is not None and not driven.selftest.done):
                continue
            values = frame.values
            floats, vectors = driven.delta.select(
                driven.plan.float_values(values), driven.plan.vector_values(values)
            )
            driven.writer.write(floats, vectors)
            session.count_applied(subject)
        for subject in events.idle:
            driven = self.subjects[subject]
            if driven.plan is not None:
                driven.writer.write(*driven.plan.neutral())
                driven.delta.reset()
        for subject in events.stop_audio:
            self.audio.stop(subject)
        for subject, path, start_s in events.play_audio:
            try:
                self.audio.play(subject, path, start_s)
            except scene.SceneError as e:
                self._error(f"{subject}: {e}")
        self._check_sequencer()
        for driven in self.subjects.values():
            while driven.writer.new_errors:
                self._error(f"{driven.subject}: {driven.writer.new_errors.pop(0)}")

    def _check_sequencer(self) -> None:
        """Say (once per second at most) when the live sequence is no longer open in Sequencer:
        Sequencer-mode writes then do nothing."""
        import unreal

        now = self.clock()
        if self.settings.apply_mode != "sequencer" or now - self._last_sequencer_check < 1.0:
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
        status = LiveStatus(
            state=state,
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
                    jaw=driven.selftest.result if driven.selftest else "off",
                    mapping=f"{schema.mapping_id} ({schema.target_kind})" if schema else "",
                )
            )
        return status


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
