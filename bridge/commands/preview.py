"""``emoface preview``: render a bake as a simple 2D face (GIF, or MP4 with the audio)."""

from __future__ import annotations

import argparse
import sys

from bridge.commands.options import HelpFormatter, positive_float, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``preview`` subcommand."""
    p = subparsers.add_parser(
        "preview",
        help="render a bake as a 2D face video (.gif, .mp4 with sound via ffmpeg) or sheet (.png)",
        description=(
            "Draw a simple 2D face (jaw, lips, mouth corners, brows, lids, gaze) driven by a "
            "baked file, so a result can be judged by eye without Unreal. MP4 needs ffmpeg on "
            "PATH and carries the audio; a GIF is silent; a .png is a contact sheet (a frame every "
            "--every-ms, captioned), for reviewing many lines fast. Captions show the time and "
            "the emotion active at that moment."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("baked", help="baked file (.json, or the authors' .txt)")
    p.add_argument(
        "-o", "--output", required=True, help="video file (.mp4, .gif) or contact sheet (.png)"
    )
    p.add_argument(
        "--every-ms",
        type=positive_float,
        default=200.0,
        help="contact sheet: time between frames (default 200)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
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

    from bridge.commands.options import source_audio_for
    from emoface_core.formats import load_animation
    from emoface_core.viz.preview import emotion_caption, write_preview

    animation = load_animation(args.baked)
    is_gif = Path(args.output).suffix.lower() in (".gif", ".png")  # silent outputs
    audio = None
    if is_gif:  # a GIF has no sound: nothing to look for
        if args.audio:
            print(
                "emoface: a GIF has no sound; --audio is ignored (write .mp4 for sound)",
                file=sys.stderr,
            )
    elif args.audio:
        if not Path(args.audio).is_file():
            raise ValueError(f"{args.audio}: no such audio file")
        audio = args.audio
    elif not args.no_audio:
        found, tried = source_audio_for(args.baked, animation.metadata)
        audio = str(found) if found else None
        if found is None:
            print(
                f"emoface: the bake's audio was not found (tried {', '.join(tried)}); the "
                "preview is silent (give it with --audio FILE)",
                file=sys.stderr,
            )
    caption = None if args.no_caption else emotion_caption(animation)
    bar = None
    if not args.quiet and Path(args.output).suffix.lower() != ".png":
        from tqdm import tqdm

        bar = tqdm(total=0, unit="frame", desc="emoface preview", file=sys.stderr, leave=False)

    def progress(done: int, total: int) -> None:
        assert bar is not None
        bar.total = total
        bar.update(done - bar.n)

    try:
        path = write_preview(
            animation,
            args.output,
            audio_path=None if is_gif else audio,
            fps=args.fps,
            size_px=args.size,
            caption=caption,
            progress=progress if bar is not None else None,
            every_ms=args.every_ms,
        )
    finally:
        if bar is not None:
            bar.close()
    sound = " with sound" if audio and not is_gif else ""
    kind = "contact sheet" if path.suffix.lower() == ".png" else "preview"
    print(f"{path}: {animation.duration_s:.2f} s {kind}{sound}", file=sys.stderr)
    return 0
