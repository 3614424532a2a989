"""Distil the procedural engine's emotion poses from another engine (the EmoFace network).

Why: the packaged poses are EMFACS prototypes. The network learned how the captured actors
actually hold their face in each emotion, including channels the prototypes leave at rest (the
capture solver's sticky lips, eyelash tweakers, face scrunch). Where weights exist, this writes an
``emotion_poses.yaml`` whose poses make the weightless engine hold the network's average face per
emotion over the given speech: for machines and live previews without weights, and as a
data-driven starting point for artists. Only the static poses are fitted (to the mean over all
frames of all clips); speech shapes, articulation multipliers and idle motion stay as they are.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoface_core.audio import Audio
from emoface_core.controllers import CONTROLLER_NAMES, GAZE_X, GAZE_Y, N_CONTROLLERS, channel_range
from emoface_core.emotion import EMOTIONS, N_EMOTIONS, EmotionTimeline
from emoface_core.engines.base import Engine
from emoface_core.engines.procedural.data import DATA_VERSION, TRACKS
from emoface_core.engines.procedural.engine import ProceduralEngine
from emoface_core.formats import atomic_write

# Gaze is replaced by the post-processing's saccades for every engine, so a pose there is moot.
UNFITTED_CHANNELS = (GAZE_X, GAZE_Y)
DEFAULT_ITERATIONS = 4  # pose += target mean - procedural mean; yields and clipping need a few
WRITE_THRESHOLD = 0.005  # pose values smaller than this are left out of the written file


@dataclass(frozen=True)
class DistilledPoses:
    """Poses fitted so the procedural engine's mean face matches a teacher's, per emotion.

    Attributes:
        poses: ``[7, 174]`` pose per emotion (``EMOTIONS`` order), within each channel's range.
        gains: ``[7, N_TRACKS]`` articulation multipliers, copied from the base engine.
        error_before: ``[7]`` mean absolute difference (fitted channels) between the teacher's
            and the procedural engine's mean face with the base poses.
        error_after: ``[7]`` the same with the distilled poses.
        n_clips: clips the means were taken over.
        n_frames: frames per emotion the means were taken over.
    """

    poses: np.ndarray
    gains: np.ndarray
    error_before: np.ndarray
    error_after: np.ndarray
    n_clips: int
    n_frames: int


def distill_poses(
    teacher: Engine,
    audios: Sequence[Audio],
    *,
    base: ProceduralEngine | None = None,
    iterations: int = DEFAULT_ITERATIONS,
    progress: Callable[[str], None] | None = None,
) -> DistilledPoses:
    """Fit each emotion's pose so the procedural mean face equals the teacher's on ``audios``.

    Args:
        teacher: the engine to learn from (raw output, before blinks and gaze).
        audios: speech clips; more and more varied lines give a steadier mean.
        base: the procedural engine whose shapes, multipliers and idle motion are kept and whose
            poses are the starting point (default: the packaged data).
        iterations: fixed-point steps; the speech yields and board ranges make one step inexact.
        progress: called with one line per emotion, for a CLI to print.

    Raises:
        ValueError: no clips, or a clip shorter than one frame.
    """
    if not audios:
        raise ValueError("distilling poses needs at least one audio clip")
    if any(a.n_frames < 1 for a in audios):
        raise ValueError("every clip must hold at least one frame (1/60 s) of audio")
    base = base or ProceduralEngine()
    lo, hi = (np.asarray(b) for b in zip(*(channel_range(n) for n in CONTROLLER_NAMES)))
    fitted = np.ones(N_CONTROLLERS, dtype=bool)
    fitted[list(UNFITTED_CHANNELS)] = False
    poses = base.data.poses.copy()
    before = np.zeros(N_EMOTIONS)
    after = np.zeros(N_EMOTIONS)
    for e, name in enumerate(EMOTIONS):
        timeline = EmotionTimeline.constant(name)
        target = _mean_face(teacher, audios, timeline)
        for step in range(iterations + 1):
            engine = _with_poses(base, poses)
            gap = target - _mean_face(engine, audios, timeline)
            error = float(np.abs(gap[fitted]).mean())
            if step == 0:
                before[e] = error
            if step == iterations:
                after[e] = error
                break
            poses[e] = np.where(fitted, np.clip(poses[e] + gap, lo, hi), 0.0)
        if progress is not None:
            progress(f"{name:<9} mean |teacher - procedural| {before[e]:.4f} -> {after[e]:.4f}")
    return DistilledPoses(
        poses=poses,
        gains=base.data.gains.copy(),
        error_before=before,
        error_after=after,
        n_clips=len(audios),
        n_frames=sum(a.n_frames for a in audios),
    )


def _with_poses(base: ProceduralEngine, poses: np.ndarray) -> ProceduralEngine:
    engine = copy.copy(base)
    engine.data = dataclasses.replace(base.data, poses=poses.copy())
    return engine


def _mean_face(engine: Engine, audios: Sequence[Audio], timeline: EmotionTimeline) -> np.ndarray:
    """Mean controller values over every frame of every clip (clips weighted by length)."""
    total = np.zeros(N_CONTROLLERS)
    frames = 0
    for audio in audios:
        values = np.asarray(engine.infer(audio, timeline), dtype=np.float64)
        total += values.sum(axis=0)
        frames += values.shape[0]
    return total / max(frames, 1)


def render_poses_yaml(result: DistilledPoses, *, teacher: str = "") -> str:
    """The poses as an ``emotion_poses.yaml`` the procedural engine loads (``EMOFACE_POSES``)."""
    today = datetime.date.today().isoformat()
    lines = [
        "# Expression poses of the procedural engine, distilled by `emoface distill-poses`",
        f"# on {today} from {teacher or 'a teacher engine'}",
        f"# over {result.n_clips} clip(s), {result.n_frames} frames per emotion: each pose makes",
        "# the engine's mean face equal the teacher's. Every key is documented in the packaged",
        "# emoface_core/data/emotion_poses.yaml; edit freely. Use:",
        "#   EMOFACE_POSES=this-file emoface bake LINE.wav --engine procedural -o LINE.json",
        f"version: {DATA_VERSION}",
        "",
        "emotions:",
    ]
    for e, name in enumerate(EMOTIONS):
        multipliers = {
            track: float(result.gains[e, t])
            for t, track in enumerate(TRACKS)
            if result.gains[e, t] != 1.0
        }
        lines.append(f"  {name}:")
        lines.append(
            f"    # mean |teacher - procedural| {result.error_before[e]:.4f} with the base "
            f"poses, {result.error_after[e]:.4f} with these"
        )
        rendered = ", ".join(f"{track}: {gain:g}" for track, gain in multipliers.items())
        lines.append(f"    articulation: {{{rendered}}}")
        entries = [
            f"      {CONTROLLER_NAMES[i]}: {value:.3f}"
            for i, value in enumerate(result.poses[e].tolist())
            if abs(value) >= WRITE_THRESHOLD
        ]
        lines.append("    pose:" if entries else "    pose: {}")
        lines.extend(entries)
        lines.append("")
    return "\n".join(lines)


def write_poses(path: str | Path, result: DistilledPoses, *, teacher: str = "") -> Path:
    """Write ``render_poses_yaml`` atomically; returns the path."""
    atomic_write(path, render_poses_yaml(result, teacher=teacher))
    return Path(path)
