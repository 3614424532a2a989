"""Plots of baked animations: the key channels over time, with the emotion timeline under them.

A designer checks a bake by looking, not by reading 174 columns: jaw, lips, mouth corners, brows,
blinks and gaze each get a panel on a shared time axis, the audio envelope sits on top when the
audio is at hand, and the emotion weights fill the bottom panel. Rendering uses matplotlib's
object API on the Agg canvas (no pyplot, no display, safe in threads), and the file is written
atomically like every other output.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emoface_core.animation import Animation
from emoface_core.emotion import EMOTIONS, EmotionTimeline, parse_emotion_spec
from emoface_core.formats import atomic_write

PLOT_FORMATS = ("png", "svg", "pdf")
DPI = 110  # a 12 x 11 inch figure comes out about 1300 x 1200 pixels

# (panel title, [(channel, legend label), ...]); L channels stand for both sides unless the
# asymmetry is the point (blinks, brows).
PANELS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "jaw",
        (
            ("CTRL_C_jaw-translateY", "open"),
            ("CTRL_C_jaw_openExtreme-translateY", "open extreme"),
            ("CTRL_C_jaw-translateX", "side"),
            ("CTRL_C_jaw_fwdBack-translateY", "back(+)/fwd(-)"),
        ),
    ),
    (
        "lips",
        (
            ("CTRL_L_mouth_lipsTogetherU-translateY", "together U"),
            ("CTRL_L_mouth_pressU-translateY", "press U"),
            ("CTRL_L_mouth_funnelU-translateY", "funnel U"),
            ("CTRL_L_mouth_purseU-translateY", "purse U"),
            ("CTRL_L_mouth_upperLipRaise-translateY", "upper lip raise"),
            ("CTRL_L_mouth_lowerLipDepress-translateY", "lower lip depress"),
        ),
    ),
    (
        "mouth corners",
        (
            ("CTRL_L_mouth_corner-translateY", "corner up(+)/down(-) L"),
            ("CTRL_R_mouth_corner-translateY", "corner up(+)/down(-) R"),
            ("CTRL_L_mouth_cornerPull-translateY", "pull L"),
            ("CTRL_L_mouth_cornerDepress-translateY", "depress L"),
            ("CTRL_L_mouth_stretch-translateY", "stretch L"),
        ),
    ),
    (
        "brows",
        (
            ("CTRL_L_brow_raiseIn-translateY", "raise in L"),
            ("CTRL_R_brow_raiseIn-translateY", "raise in R"),
            ("CTRL_L_brow_raiseOut-translateY", "raise out L"),
            ("CTRL_R_brow_raiseOut-translateY", "raise out R"),
            ("CTRL_L_brow_down-translateY", "down L"),
            ("CTRL_R_brow_down-translateY", "down R"),
        ),
    ),
    (
        "blinks",
        (
            ("CTRL_L_eye_blink-translateY", "blink L"),
            ("CTRL_R_eye_blink-translateY", "blink R"),
        ),
    ),
    (
        "gaze",
        (
            ("CTRL_C_eye-translateX", "left(+)/right(-)"),
            ("CTRL_C_eye-translateY", "up(+)/down(-)"),
        ),
    ),
)

# One colour per emotion, in EMOTIONS order, chosen to read at a glance (sad blue, angry red).
EMOTION_COLOURS = ("#d62728", "#8c564b", "#9467bd", "#ffbf00", "#b0b0b0", "#1f77b4", "#17becf")


@dataclass(frozen=True)
class PlotInputs:
    """What a plot shows besides the channels.

    Attributes:
        title: figure title (default: the animation's source).
        emotion: emotion timeline; None when unknown (a ``.txt`` bake has no metadata).
        audio_envelope: per-frame audio level ``[T]`` in 0..1, or None.
    """

    title: str = ""
    emotion: EmotionTimeline | None = None
    audio_envelope: np.ndarray | None = None


def _require_matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'emoface[plot]'") from None
    return matplotlib


def timeline_of(animation: Animation, emotion: str | None = None) -> EmotionTimeline | None:
    """The emotion timeline to draw: ``emotion`` if given, else the bake's metadata, else None.

    Raises:
        EmotionSpecError: ``emotion`` (or the metadata's spec) does not parse.
    """
    spec = emotion if emotion else animation.metadata.get("emotion")
    return parse_emotion_spec(spec) if spec else None


def audio_envelope(samples: np.ndarray, sample_rate: int, n_frames: int, fps: float) -> np.ndarray:
    """RMS level per animation frame, scaled to 0..1 (``[n_frames]``)."""
    samples = np.asarray(samples, dtype=np.float32)
    edges = (np.arange(n_frames + 1) * sample_rate / fps).astype(np.int64)
    edges = np.clip(edges, 0, samples.size)
    rms = np.array(
        [np.sqrt(np.mean(samples[a:b] ** 2)) if b > a else 0.0 for a, b in zip(edges, edges[1:])]
    )
    peak = rms.max() if rms.size else 0.0
    return rms / peak if peak > 0 else rms


def build_figure(animation: Animation, inputs: PlotInputs | None = None) -> Any:
    """Draw the panels into a new matplotlib ``Figure`` (Agg canvas) and return it.

    Args:
        animation: the bake.
        inputs: title, emotion timeline and audio envelope.

    Returns:
        The figure; its axes are, top to bottom: audio (when given), the ``PANELS``, emotion.
    """
    _require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    inputs = inputs or PlotInputs()
    has_audio = inputs.audio_envelope is not None
    n_rows = len(PANELS) + 1 + int(has_audio)
    ratios = ([0.6] if has_audio else []) + [1.0] * len(PANELS) + [0.7]
    fig = Figure(figsize=(12, 1.5 * n_rows + 0.8), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    t = np.arange(animation.n_frames) / animation.fps
    index = {name: i for i, name in enumerate(animation.controller_names)}

    row = 0
    envelope = inputs.audio_envelope
    if envelope is not None:
        ax = axes[row]
        ax.fill_between(t, -envelope, envelope, color="0.55", lw=0)
        ax.set_ylabel("audio", rotation=0, ha="right", va="center")
        ax.set_yticks([])
        row += 1
    for title, channels in PANELS:
        ax = axes[row]
        shown = [index[channel] for channel, _ in channels if channel in index]
        for channel, label in channels:
            if channel in index:
                ax.plot(t, animation.values[:, index[channel]], lw=1.2, label=label)
        ax.set_ylim(*panel_limits(title, animation.values[:, shown]))
        ax.set_ylabel(title, rotation=0, ha="right", va="center")
        ax.axhline(0.0, color="0.8", lw=0.6, zorder=0)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
        ax.grid(True, axis="x", color="0.92")
        row += 1
    _draw_emotion(axes[row], inputs.emotion, animation.n_frames, animation.fps, t)
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(0, max(t[-1] if t.size else 0.0, 1.0 / animation.fps))
    fig.suptitle(inputs.title or _default_title(animation), fontsize=11)
    return fig


# Each panel's y-axis spans at least its controls' working range, so that a wiggle of 0.0002
# looks like one, not like a full blink (matplotlib would scale every panel to its data).
PANEL_RANGES = {
    "jaw": (-0.2, 1.0),
    "lips": (0.0, 1.0),
    "mouth corners": (-1.0, 1.0),
    "brows": (0.0, 1.0),
    "blinks": (-0.5, 1.0),
    "gaze": (-1.0, 1.0),
}


def panel_limits(title: str, values: np.ndarray) -> tuple[float, float]:
    """A panel's y-limits: its working range, widened to the data when the data leave it."""
    lo, hi = PANEL_RANGES.get(title, (-1.0, 1.0))
    if values.size:
        lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def _draw_emotion(
    ax: Any, timeline: EmotionTimeline | None, n_frames: int, fps: float, t: np.ndarray
) -> None:
    ax.set_ylabel("emotion", rotation=0, ha="right", va="center")
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    if timeline is None:
        ax.text(
            0.5,
            0.5,
            "emotion unknown (no metadata; pass --emotion)",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="0.4",
        )
        return
    weights = timeline.weights(n_frames, fps)
    used = [i for i in range(len(EMOTIONS)) if weights[:, i].max() > 1e-3]
    ax.stackplot(
        t,
        *(weights[:, i] for i in used),
        labels=[EMOTIONS[i] for i in used],
        colors=[EMOTION_COLOURS[i] for i in used],
        alpha=0.85,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)


def _default_title(animation: Animation) -> str:
    meta = animation.metadata
    source = meta.get("source_audio") or meta.get("source") or "animation"
    engine = meta.get("engine", {})
    engine_name = engine.get("name") if isinstance(engine, dict) else engine
    parts = [Path(str(source)).name, f"{animation.n_frames} frames at {animation.fps:g} fps"]
    if engine_name:
        parts.append(f"engine {engine_name}")
    if meta.get("emotion"):
        parts.append(f"emotion {meta['emotion']}")
    return " | ".join(parts)


def save_figure(fig: Any, path: str | Path) -> Path:
    """Render a figure to ``path`` (.png, .svg or .pdf) atomically.

    Raises:
        ValueError: the extension is not a supported plot format.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        raise ValueError(
            f"{path}: unknown plot extension {path.suffix or '(none)'}; "
            f"use {', '.join('.' + f for f in PLOT_FORMATS)}"
        )
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    atomic_write(path, buf.getvalue())
    return path


def plot_animation(
    animation: Animation,
    path: str | Path,
    *,
    emotion: str | None = None,
    audio: Any | None = None,
    title: str = "",
) -> Path:
    """Plot a bake's key channels and emotion timeline into an image file.

    Args:
        animation: the bake (``emoface_core.formats.load_animation`` reads .json and .txt).
        path: output .png, .svg or .pdf.
        emotion: emotion spec to draw when the bake has none in its metadata (or to override it).
        audio: an ``emoface_core.audio.Audio`` to draw the envelope of, or None.
        title: figure title (default: source, frames, engine and emotion).

    Returns:
        The path written.
    """
    envelope = None
    if audio is not None:
        from emoface_core.audio import SAMPLE_RATE

        envelope = audio_envelope(audio.samples, SAMPLE_RATE, animation.n_frames, animation.fps)
    inputs = PlotInputs(title, timeline_of(animation, emotion), envelope)
    return save_figure(build_figure(animation, inputs), path)
