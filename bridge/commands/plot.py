"""``emoface plot``: draw a baked animation's key channels and emotion timeline into an image."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from bridge.commands.options import HelpFormatter

if TYPE_CHECKING:
    from emoface_core.audio import Audio


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``plot`` subcommand."""
    p = subparsers.add_parser(
        "plot",
        help="plot a bake: jaw, lips, corners, brows, blinks, gaze and emotion over time",
        description=(
            "Draw the key channels of a baked .json or .txt file over time, with the audio "
            "envelope on top and the emotion timeline at the bottom."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("baked", help="baked file (.json, or the authors' .txt)")
    p.add_argument("-o", "--output", required=True, help="image file: .png, .svg or .pdf")
    p.add_argument(
        "--emotion",
        default=None,
        help="emotion spec to draw (default: the one in the bake's metadata; .txt has none)",
    )
    p.add_argument(
        "--audio",
        default=None,
        help="audio to draw the envelope of (default: the bake's source audio, when it exists)",
    )
    p.add_argument("--no-audio", action="store_true", help="no audio envelope panel")
    p.add_argument("--title", default="", help="figure title (default: source, engine, emotion)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Plot one bake."""
    from emoface_core.formats import load_animation
    from emoface_core.viz.plot import plot_animation

    animation = load_animation(args.baked)
    audio = None if args.no_audio else _audio_for(args.audio, args.baked, animation.metadata)
    path = plot_animation(
        animation, args.output, emotion=args.emotion, audio=audio, title=args.title
    )
    print(f"{path}: {animation.n_frames} frames plotted", file=sys.stderr)
    return 0


def _audio_for(explicit: str | None, baked: str, metadata: dict[str, Any]) -> Audio | None:
    """The audio given on the command line, else the bake's source audio if it can be found."""
    from bridge.commands.options import source_audio_for
    from emoface_core.audio import load_audio

    if explicit:
        return load_audio(explicit)
    found, _ = source_audio_for(baked, metadata)
    if found is not None:
        try:
            return load_audio(found)
        except ValueError:
            return None  # the plot is still useful without the envelope
    return None
