"""``emoface preview``: render a bake as a simple 2D face (GIF, or MP4 with the audio)."""

from __future__ import annotations

import argparse
import sys

from bridge.commands.options import HelpFormatter, positive_float, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``preview`` subcommand."""
    p = subparsers.add_parser(
        "preview",
        help="render a bake as a 2D face video (.gif, or .mp4 with sound via ffmpeg)",
        description=(
            "Draw a simple 2D face (jaw, lips, mouth corners, brows, lids, gaze) driven by a "
            "baked file, so a result can be judged by eye without Unreal. MP4 needs ffmpeg on "
            "PATH and carries the audio; a GIF is silent."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("baked", help="baked file (.json, or the authors' .txt)")
    p.add_argument("-o", "--output", required=True, help="video file: .mp4 or .gif")
    p.add_argument(
        "--audio",
        default=None,
        help="audio to mux into the MP4 (default: the bake's source audio, when it exists)",
    )
    p.add_argument("--no-audio", action="store_true", help="a silent MP4")
    p.add_argument(
        "--fps",
        type=positive_float,
        default=None,
        help="frame rate (default: 60 for MP4, 25 for GIF)",
    )
    p.add_argument(
        "--size",
        type=positive_int,
        default=None,
        help="width = height in pixels (512 MP4, 320 GIF)",
    )
    p.add_argument("--no-caption", action="store_true", help="no time/emotion caption")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Render one preview."""
    from pathlib import Path

    from emoface_core.formats import load_animation
    from emoface_core.viz.preview import write_preview

    animation = load_animation(args.baked)
    audio = None
    if not args.no_audio:
        audio = args.audio or animation.metadata.get("source_audio") or None
        if args.audio and not Path(args.audio).is_file():
            raise ValueError(f"{args.audio}: no such audio file")
        if audio and not Path(audio).is_file():
            print(
                f"emoface: {audio} (the bake's source audio) is gone; preview is silent",
                file=sys.stderr,
            )
            audio = None
    is_gif = Path(args.output).suffix.lower() == ".gif"
    if is_gif and args.audio:
        print(
            "emoface: a GIF has no sound; --audio is ignored (write .mp4 for sound)",
            file=sys.stderr,
        )
    caption = None if args.no_caption else str(animation.metadata.get("emotion", ""))
    path = write_preview(
        animation,
        args.output,
        audio_path=None if is_gif else audio,
        fps=args.fps,
        size_px=args.size,
        caption=caption,
    )
    sound = " with sound" if audio and not is_gif else ""
    print(f"{path}: {animation.duration_s:.2f} s preview{sound}", file=sys.stderr)
    return 0
