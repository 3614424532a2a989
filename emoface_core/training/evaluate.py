"""Scoring predicted controller values against ground truth (paper 5.1, Table 2).

Metrics per clip, then per emotion and overall:

* **MAE** over all 174 channels, over the mouth channels and over the eye channels
  (``MOUTH_CHANNELS`` / ``EYE_CHANNELS`` in ``emoface_core.controllers``; listed in
  docs/channels.md). Groups pool every frame of every clip, so a long clip weighs more than a
  short one. The paper reports 0.04024 / 0.03697 / 0.05698 for EmoFace (``PAPER_EMOFACE``).
* **jaw r**: Pearson correlation of predicted and true jaw opening (``CTRL_C_jaw-translateY``)
  over a clip's frames; how well the mouth opens and closes in time with the speech. Groups
  average the clips' values.
* **closure F1**: agreement on the frames where the mouth is shut. A frame counts as closed when
  its jaw opening is within the lowest ``closure_fraction`` (10 %) of the *true* clip's jaw range;
  the same threshold is applied to the prediction, and F1 compares the two sets of frames.
  Closures are where bilabials (p, b, m) and pauses happen, the moments a viewer notices. It is
  a jaw-based proxy: telling bilabials from other closures would need a phoneme alignment.

Both lip-sync measures are undefined (None) on clips whose true jaw barely moves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoface_core.controllers import EYE_CHANNELS, JAW_OPEN, MOUTH_CHANNELS, N_CONTROLLERS
from emoface_core.emotion import EMOTIONS, EmotionTimeline
from emoface_core.errors import EmoFaceError
from emoface_core.training.dataset import (
    DEFAULT_MAX_FRAME_MISMATCH,
    Clip,
    align_controls,
    load_clip,
    load_controls,
)

log = logging.getLogger(__name__)

# EmoFace's row of the paper's Table 2 (MAE, all / mouth / eye channels).
PAPER_EMOFACE = {"mae_all": 0.04024, "mae_mouth": 0.03697, "mae_eye": 0.05698}
DEFAULT_CLOSURE_FRACTION = 0.1  # lowest 10 % of the true jaw range counts as "closed"
MIN_JAW_RANGE = 0.05  # board units; below this the true jaw does not move enough to score
PREDICTION_EXTENSIONS = (".txt", ".json")

_MOUTH = np.asarray(MOUTH_CHANNELS)
_EYE = np.asarray(EYE_CHANNELS)


@dataclass(frozen=True)
class ClipScore:
    """Metrics of one clip (see the module docstring)."""

    name: str
    split: str
    emotion: str
    n_frames: int
    mae_all: float
    mae_mouth: float
    mae_eye: float
    mse_all: float
    jaw_corr: float | None
    closure_f1: float | None


@dataclass(frozen=True)
class GroupScore:
    """Metrics pooled over several clips: MAE/MSE over all frames, lip-sync measures averaged."""

    n_clips: int
    n_frames: int
    mae_all: float
    mae_mouth: float
    mae_eye: float
    mse_all: float
    jaw_corr: float | None
    closure_f1: float | None


def jaw_correlation(pred_jaw: np.ndarray, true_jaw: np.ndarray) -> float | None:
    """Pearson r of predicted and true jaw opening ``[T]``; None when either does not move."""
    pred, true = pred_jaw.astype(np.float64), true_jaw.astype(np.float64)
    if true.size < 3 or np.ptp(true) < MIN_JAW_RANGE or np.ptp(pred) < 1e-9:
        return None
    return float(np.corrcoef(pred, true)[0, 1])


def closure_f1(
    pred_jaw: np.ndarray,
    true_jaw: np.ndarray,
    closure_fraction: float = DEFAULT_CLOSURE_FRACTION,
) -> float | None:
    """F1 of "mouth closed" frames, with the threshold taken from the true clip's jaw range.

    Returns:
        F1 in 0..1, or None when the true jaw barely moves or is never closed.
    """
    span = float(np.ptp(true_jaw)) if true_jaw.size else 0.0
    if span < MIN_JAW_RANGE:
        return None
    threshold = float(true_jaw.min()) + closure_fraction * span
    closed_true = true_jaw <= threshold
    closed_pred = pred_jaw <= threshold
    hits = int(np.sum(closed_true & closed_pred))
    denominator = int(closed_true.sum() + closed_pred.sum())
    return 2.0 * hits / denominator if denominator else None


def score_clip(
    pred: np.ndarray,
    true: np.ndarray,
    *,
    name: str = "",
    split: str = "all",
    emotion: str = "unknown",
    closure_fraction: float = DEFAULT_CLOSURE_FRACTION,
) -> ClipScore:
    """Score one clip's prediction ``[T, 174]`` against its ground truth ``[T, 174]``.

    Raises:
        ValueError: the arrays differ in shape or are not ``[T, 174]`` with T >= 1.
    """
    if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != N_CONTROLLERS:
        raise ValueError(
            f"{name or 'clip'}: prediction {pred.shape} and ground truth {true.shape} must both "
            f"be [frames, {N_CONTROLLERS}]"
        )
    if pred.shape[0] == 0:
        raise ValueError(f"{name or 'clip'}: nothing to score (0 frames)")
    err = pred.astype(np.float64) - true.astype(np.float64)
    abs_err = np.abs(err)
    return ClipScore(
        name=name,
        split=split,
        emotion=emotion,
        n_frames=int(pred.shape[0]),
        mae_all=float(abs_err.mean()),
        mae_mouth=float(abs_err[:, _MOUTH].mean()),
        mae_eye=float(abs_err[:, _EYE].mean()),
        mse_all=float((err * err).mean()),
        jaw_corr=jaw_correlation(pred[:, JAW_OPEN], true[:, JAW_OPEN]),
        closure_f1=closure_f1(pred[:, JAW_OPEN], true[:, JAW_OPEN], closure_fraction),
    )


def aggregate(scores: Sequence[ClipScore]) -> GroupScore:
    """Pool clip scores: frame-weighted MAE/MSE, mean of the defined lip-sync values.

    Raises:
        ValueError: ``scores`` is empty.
    """
    if not scores:
        raise ValueError("no clip scores to aggregate")
    frames = np.array([s.n_frames for s in scores], dtype=np.float64)

    def pooled(attr: str) -> float:
        return float(np.dot(frames, [getattr(s, attr) for s in scores]) / frames.sum())

    def mean_defined(attr: str) -> float | None:
        values = [getattr(s, attr) for s in scores if getattr(s, attr) is not None]
        return float(np.mean(values)) if values else None

    return GroupScore(
        n_clips=len(scores),
        n_frames=int(frames.sum()),
        mae_all=pooled("mae_all"),
        mae_mouth=pooled("mae_mouth"),
        mae_eye=pooled("mae_eye"),
        mse_all=pooled("mse_all"),
        jaw_corr=mean_defined("jaw_corr"),
        closure_f1=mean_defined("closure_f1"),
    )


@dataclass
class EvalReport:
    """Scores of every clip that could be scored, and why the others could not.

    Attributes:
        scores: one per scored clip.
        failures: ``(clip name, one-line reason)`` for clips that could not be scored.
        source: what produced the predictions (engine description or folder).
    """

    scores: list[ClipScore] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)

    def by_emotion(self) -> dict[str, GroupScore]:
        """Pooled scores per emotion, in the paper's emotion order."""
        order = [*EMOTIONS, "unknown"]
        present = sorted({s.emotion for s in self.scores}, key=order.index)
        return {e: aggregate([s for s in self.scores if s.emotion == e]) for e in present}

    def overall(self) -> GroupScore | None:
        """Pooled scores over every clip, or None when nothing was scored."""
        return aggregate(self.scores) if self.scores else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: overall, per emotion, per clip, failures and the paper's row."""
        overall = self.overall()
        return {
            "source": self.source,
            "overall": asdict(overall) if overall else None,
            "per_emotion": {e: asdict(g) for e, g in self.by_emotion().items()},
            "clips": [asdict(s) for s in self.scores],
            "failures": [{"clip": name, "error": why} for name, why in self.failures],
            "paper_emoface": dict(PAPER_EMOFACE),
        }


def evaluate_engine(
    engine: Any,
    clips: Iterable[Clip],
    *,
    raw: bool = True,
    seed: int | None = 0,
    timeline: EmotionTimeline | None = None,
    max_frame_mismatch: int = DEFAULT_MAX_FRAME_MISMATCH,
    closure_fraction: float = DEFAULT_CLOSURE_FRACTION,
    progress: bool = False,
) -> EvalReport:
    """Animate every clip with an engine and score it against the clip's ground truth.

    Args:
        engine: an ``emoface_core.engines.base.Engine`` (neural or procedural).
        clips: clips from ``discover_dataset``.
        raw: score the engine's raw output (the paper's setting); False applies the full
            post-processing (smoothing, and the random blinks and gaze, seeded by ``seed``).
        seed: seed of the post-processing.
        timeline: an emotion to use for every clip instead of each clip's own.
        max_frame_mismatch: allowed difference between ground-truth rows and audio frames.
        closure_fraction: see ``closure_f1``.
        progress: show a progress bar on stderr.

    Returns:
        The report; clips that fail are listed in ``failures`` and the rest are still scored.
    """
    from emoface_core.animate import animate_audio

    report = EvalReport(source=dict(engine.describe()) | {"raw": raw, "seed": seed})
    for clip in _maybe_progress(list(clips), progress):
        try:
            loaded = load_clip(clip, max_frame_mismatch=max_frame_mismatch)
            clip_timeline = timeline or _clip_timeline(clip)
            animation = animate_audio(engine, loaded.audio, clip_timeline, raw=raw, seed=seed)
            pred = animation.values[: loaded.n_frames]
            report.scores.append(
                score_clip(
                    pred,
                    loaded.controls,
                    name=clip.name,
                    split=clip.split,
                    emotion=_emotion_label(clip, timeline),
                    closure_fraction=closure_fraction,
                )
            )
        except (EmoFaceError, ValueError, OSError) as e:
            log.debug("scoring %s failed", clip.name, exc_info=True)
            report.failures.append((clip.name, _one_line(e)))
    return report


def evaluate_predictions(
    predictions: str | Path,
    clips: Iterable[Clip],
    *,
    max_frame_mismatch: int = DEFAULT_MAX_FRAME_MISMATCH,
    closure_fraction: float = DEFAULT_CLOSURE_FRACTION,
    progress: bool = False,
) -> EvalReport:
    """Score baked files (``.txt`` in the authors' format or our ``.json``) against ground truth.

    The prediction of a clip is ``DIR/<split>/<name>.txt|.json`` or ``DIR/<name>.txt|.json``
    (``name`` is the clip's audio path relative to its folder, without extension), or the same
    with only the file's stem. Ground truth is cut to the audio's frame count first, as in
    training; a prediction may differ from that by at most ``max_frame_mismatch`` frames.

    Returns:
        The report; clips without a usable prediction are listed in ``failures``.
    """
    from emoface_core.formats import load_animation

    folder = Path(predictions)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such predictions folder")
    report = EvalReport(source={"predictions": str(folder)})
    for clip in _maybe_progress(list(clips), progress):
        try:
            path = find_prediction(folder, clip)
            if path is None:
                raise FileNotFoundError(
                    f"no prediction for {clip.name} in {folder} (looked for "
                    f"{clip.name}.txt/.json and {Path(clip.name).name}.txt/.json)"
                )
            if path.resolve() == clip.controls_path.resolve():
                raise ValueError(f"{path}: is the ground truth itself; bake into another folder")
            true = align_controls(
                load_controls(clip.controls_path),
                _audio_frames(clip.audio_path),
                max_mismatch=max_frame_mismatch,
                where=str(clip.controls_path),
            )
            pred = load_animation(path).values
            if abs(pred.shape[0] - true.shape[0]) > max_frame_mismatch:
                raise ValueError(
                    f"{path}: {pred.shape[0]} frames, the ground truth has {true.shape[0]} "
                    f"(more than {max_frame_mismatch} apart)"
                )
            n = min(pred.shape[0], true.shape[0])
            report.scores.append(
                score_clip(
                    pred[:n],
                    true[:n],
                    name=clip.name,
                    split=clip.split,
                    emotion=clip.emotion_name,
                    closure_fraction=closure_fraction,
                )
            )
        except (EmoFaceError, ValueError, OSError) as e:
            report.failures.append((clip.name, _one_line(e)))
    return report


def find_prediction(folder: Path, clip: Clip) -> Path | None:
    """The baked file for ``clip`` in ``folder``, or None (see ``evaluate_predictions``)."""
    stems = [Path(clip.split) / clip.name, Path(clip.name), Path(Path(clip.name).name)]
    for stem in stems:
        for ext in PREDICTION_EXTENSIONS:
            candidate = folder / stem.with_name(stem.name + ext)
            if candidate.is_file():
                return candidate
    return None


def _audio_frames(path: Path) -> int:
    import soundfile as sf

    from emoface_core.audio import frame_count

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such audio file")
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises several types for bad files
        raise ValueError(f"{path}: not a readable audio file ({_one_line(e)})") from e
    return frame_count(info.frames, info.samplerate)


def _clip_timeline(clip: Clip) -> EmotionTimeline:
    if clip.emotion is None:
        raise ValueError(
            f"{clip.audio_path}: cannot tell the emotion from the file name; pass --emotion"
        )
    return EmotionTimeline.constant(clip.emotion)


def _emotion_label(clip: Clip, timeline: EmotionTimeline | None) -> str:
    if timeline is not None and len(timeline.segments) == 1:
        return EMOTIONS[timeline.segments[0].emotion]
    return clip.emotion_name


def _maybe_progress(items: list, progress: bool) -> Iterable:
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="evaluating", unit="clip", leave=False)


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def format_table(report: EvalReport, *, per_clip: bool = False) -> str:
    """Render a report as the text table ``emoface eval`` prints."""
    names = [s.name for s in report.scores] if per_clip else []
    w = min(48, max([16, *map(len, names)]))  # label column: long enough for clip names
    header = (
        f"{'':<{w}} {'clips':>5} {'frames':>7} {'MAE all':>9} {'MAE mouth':>10} "
        f"{'MAE eye':>9} {'jaw r':>7} {'closure F1':>11}"
    )
    lines = [header, "-" * len(header)]

    def row(label: str, n_clips: int, g: GroupScore | ClipScore) -> str:
        return (
            f"{label[:w]:<{w}} {n_clips:>5} {g.n_frames:>7} {g.mae_all:>9.5f} "
            f"{g.mae_mouth:>10.5f} {g.mae_eye:>9.5f} {_opt(g.jaw_corr, 7)} "
            f"{_opt(g.closure_f1, 11)}"
        )

    if per_clip:
        for s in report.scores:
            lines.append(row(s.name, 1, s))
        lines.append("-" * len(header))
    for emotion, g in report.by_emotion().items():
        lines.append(row(emotion, g.n_clips, g))
    overall = report.overall()
    if overall is not None:
        lines.append(row("overall", overall.n_clips, overall))
    p = PAPER_EMOFACE
    lines.append(
        f"{'paper EmoFace':<{w}} {'':>5} {'':>7} {p['mae_all']:>9.5f} {p['mae_mouth']:>10.5f} "
        f"{p['mae_eye']:>9.5f}"
    )
    if report.failures:
        lines += ["", f"could not score {len(report.failures)} clip(s):"]
        lines += [f"  {name}: {why}" for name, why in report.failures]
    return "\n".join(lines)


def _opt(value: float | None, width: int) -> str:
    return f"{value:>{width}.3f}" if value is not None else f"{'-':>{width}}"
