"""Regenerate the pictures in ``docs/images`` (run from the repository: needs Pillow).

    .venv/bin/python scripts/make_docs_images.py

* ``preview_emotions.png``: the 2D preview of each of the seven emotions' poses (the procedural
  engine's mean face over 2 s of silence), side by side and captioned;
* ``preview_sheet.png``: ``emoface preview --sheet``-style contact sheet of an example line
  (``examples/audio/hello_en.wav``, "neutral@0,happy@1.2", seed 0), a frame every 200 ms;
* ``head_motion.png``: the head motion layer on the example clips (back to back, neutral,
  seed 0) against the speech's pitch and loudness, with the detected accents marked.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / "docs" / "images"


def emotions(size_px: int = 224) -> Path:
    """The seven emotion poses, one tile each."""
    from PIL import Image

    from emoface_core.audio import Audio
    from emoface_core.emotion import EMOTIONS, EmotionTimeline
    from emoface_core.engines.procedural.engine import ProceduralEngine
    from emoface_core.viz.preview import FaceRenderer

    engine = ProceduralEngine()
    silence = Audio(np.zeros(32_000, np.float32))
    renderer = FaceRenderer(size_px)
    sheet = Image.new("RGB", (size_px * len(EMOTIONS), size_px))
    for k, emotion in enumerate(EMOTIONS):
        pose = engine.infer(silence, EmotionTimeline.constant(emotion)).mean(axis=0)
        sheet.paste(renderer.render(pose, emotion), (k * size_px, 0))
    path = OUT / "preview_emotions.png"
    sheet.save(path)
    return path


def contact_sheet() -> Path:
    """A line's contact sheet, as ``emoface preview line.json -o sheet.png`` writes it."""
    from emoface_core.animate import animate_audio
    from emoface_core.audio import load_audio
    from emoface_core.emotion import parse_emotion_spec
    from emoface_core.engines.procedural.engine import ProceduralEngine
    from emoface_core.viz.preview import emotion_caption, write_sheet

    audio = load_audio(REPO / "examples" / "audio" / "hello_en.wav")
    timeline = parse_emotion_spec("neutral@0,happy@1.2")
    animation = animate_audio(ProceduralEngine(), audio, timeline, seed=0)
    return write_sheet(
        animation, OUT / "preview_sheet.png", every_ms=200, caption=emotion_caption(animation)
    )


def head_plot() -> Path:
    """Head yaw/pitch/roll over a line, against its pitch track and loudness."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from emoface_core.audio import FPS, load_audio
    from emoface_core.emotion import EmotionTimeline
    from emoface_core.head import accents, head_motion, load_head_params, prosody

    clips = sorted((REPO / "examples" / "audio").glob("*.wav"))
    samples = np.concatenate([load_audio(p).samples for p in clips])
    n = int(len(samples) * FPS / 16_000)
    head = head_motion(samples, n, EmotionTimeline.constant("neutral").weights(n), seed=0)
    energy, voiced, pitch = prosody(samples, n)
    frames, _ = accents(energy, voiced, pitch, load_head_params())
    t = np.arange(n) / FPS
    fig = Figure(figsize=(11, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    top, middle, bottom = fig.subplots(3, 1, sharex=True)
    top.plot(t, pitch, lw=1.2, color="#1f77b4")
    top.set_ylabel("pitch (Hz)")
    middle.plot(t, energy, lw=1.0, color="0.4")
    middle.set_ylabel("loudness (dB)")
    for name, column, colour in zip(
        ("yaw", "pitch", "roll"), head.T, ("#2ca02c", "#d62728", "#9467bd")
    ):
        bottom.plot(t, column, lw=1.4, label=name, color=colour)
    for ax in (top, middle, bottom):
        for f in frames:
            ax.axvline(f / FPS, color="#ffbf00", lw=0.8, zorder=0)
    bottom.set_ylabel("head (deg)")
    bottom.set_xlabel("time (s); orange: detected accents")
    bottom.legend(loc="upper right", fontsize=8)
    fig.suptitle("Head motion from speech: the example clips (neutral, seed 0)", fontsize=11)
    path = OUT / "head_motion.png"
    fig.savefig(path)
    return path


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for path in (emotions(), contact_sheet(), head_plot()):
        print(f"wrote {path.relative_to(REPO)}")
