"""``emoface bake``: audio file(s) -> baked controller values (.txt / .json / .csv)."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
emotion spec:
  happy             one emotion for the whole clip (names, 3-letter prefixes or ids 0-6:
                    angry 0, disgust 1, fear 2, happy 3, neutral 4, sad 5, surprise 6)
  happy:0.6         60%% happy blended with neutral
  happy@0,sad@2.5   switch to sad at 2.5 s, cross-fading over 0.3 s

weights:
  The 'emoface' engine needs the authors' released checkpoint (SJTU-Lucy/EmoFace, a *_model.pth
  file that already contains wav2vec2). Pass --checkpoint PATH, or set EMOFACE_CHECKPOINT, or save
  it as ~/.cache/emoface/emoface_model.pth. Without weights, --engine auto uses the procedural
  engine, which needs nothing.

output:
  OUT ending in .txt is the authors' format (one line per frame, 174 comma-separated values,
  dataset column order, no header); .json holds named channels plus metadata; .csv has a
  time column and one column per channel.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bake`` subcommand."""
    p = subparsers.add_parser(
        "bake",
        help="bake audio into controller values",
        description="Animate an audio clip and write the 174 controller values per frame.",
        epilog=EPILOG,
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, width=100),
    )
    p.add_argument("audio", help="audio file (wav, flac, ogg: anything libsndfile reads)")
    p.add_argument("-o", "--output", required=True, help="output file: .txt, .json or .csv")
    add_engine_arguments(p)
    p.add_argument("--raw", action="store_true", help="network output only: no smoothing, blinks or gaze")
    p.add_argument("--seed", type=int, default=None, help="seed for blinks and gaze (reproducible output)")
    p.set_defaults(func=run)


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """Engine, emotion and device flags shared by bake, stream, serve and live."""
    p.add_argument("--emotion", default="neutral", help="emotion spec (see below); default neutral")
    p.add_argument(
        "--engine", default="auto", choices=("auto", "emoface", "procedural"),
        help="animator; auto = emoface when a checkpoint is configured, else procedural",
    )
    p.add_argument("--checkpoint", default=None, help="EmoFace weights (*.pth)")
    p.add_argument("--device", default=None, choices=("cpu", "cuda"), help="default: cuda if available")


def build_engine(args: argparse.Namespace):  # noqa: ANN201 - returns an Engine
    """Load the engine the flags ask for and say once, on stderr, which one runs."""
    from emoface_core.engines import load_engine

    engine = load_engine(args.engine, checkpoint=args.checkpoint, device=args.device)
    print(f"emoface: engine {engine.name}", file=sys.stderr)
    return engine


def run(args: argparse.Namespace) -> int:
    """Bake one clip."""
    from emoface_core.audio import load_audio
    from emoface_core.emotion import parse_emotion_spec
    from emoface_core.engine import animate_audio
    from emoface_core.formats import format_of, get_writers

    fmt = format_of(args.output)
    timeline = parse_emotion_spec(args.emotion)
    audio = load_audio(args.audio)
    engine = build_engine(args)
    animation = animate_audio(engine, audio, timeline, raw=args.raw, seed=args.seed)
    get_writers(fmt)[0].write(animation, args.output)
    print(f"{args.output}: {animation.n_frames} frames ({animation.duration_s:.2f} s)", file=sys.stderr)
    return 0
