"""``emoface distill-poses``: the procedural engine's emotion poses, learned from the network.

The library side is ``emoface_core.engines.procedural.distill``; this module expands the audio
inputs, loads the
network, reports unusable clips (the rest are used) and writes the poses file atomically.
"""

from __future__ import annotations

import argparse
import sys

from bridge.commands.options import HelpFormatter, positive_int

EPILOG = """\
why:
  The procedural engine's packaged poses are FACS prototypes. With the EmoFace weights on one
  machine, this fits each emotion's pose so that the procedural engine's average face over your
  speech equals the network's (which learned the captured actors, including controls the
  prototypes leave at rest). Speech shapes and articulation stay as they are.

examples:
  emoface distill-poses vo/ --checkpoint 1000_model.pth -o poses/studio_poses.yaml
  EMOFACE_POSES=poses/studio_poses.yaml emoface bake line.wav --engine procedural -o line.json

Use a few dozen varied lines (a minute or more of speech); every clip is run once per emotion
through the network. Inputs are audio files, folders (searched recursively), globs or manifests,
as for 'emoface bake'. Clips that cannot be read are reported and skipped.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``distill-poses`` subcommand."""
    p = subparsers.add_parser(
        "distill-poses",
        help="learn the procedural engine's emotion poses from the EmoFace network",
        description=(
            "Write an emotion_poses.yaml whose poses make the procedural engine's average face "
            "per emotion match the EmoFace network's on the given speech."
        ),
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="AUDIO", help="audio files, folders, globs")
    p.add_argument("-o", "--output", required=True, help="poses file to write (.yaml)")
    p.add_argument("--checkpoint", default=None, help="EmoFace weights (*.pth)")
    p.add_argument(
        "--device", default=None, choices=("cpu", "cuda"), help="default: cuda if available"
    )
    p.add_argument(
        "--precision",
        default="exact",
        choices=("exact", "fast"),
        help="the network's arithmetic (fast: bf16 on AMX/AVX512-BF16, fp16 on CUDA)",
    )
    p.add_argument(
        "--base-poses",
        default=None,
        metavar="FILE",
        help="poses to start from and take articulation multipliers from (default: packaged)",
    )
    p.add_argument(
        "--iterations",
        type=positive_int,
        default=None,
        help="fixed-point steps per emotion (default 4)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Distil and write the poses; exit 1 when some clips were skipped, 0 otherwise."""
    from bridge.bake.lines import collect_lines
    from bridge.commands.options import check_output_location
    from emoface_core.audio import load_audio
    from emoface_core.engines import load_engine
    from emoface_core.engines.procedural.distill import (
        DEFAULT_ITERATIONS,
        distill_poses,
        write_poses,
    )
    from emoface_core.engines.procedural.engine import ProceduralEngine

    check_output_location(args.output)
    base = ProceduralEngine(poses_path=args.base_poses)  # bad base file: fail before the network
    audios, skipped = [], 0
    for line in collect_lines(args.inputs):
        if line.problem:
            print(f"emoface: skipped {line.origin or line.audio}: {line.problem}", file=sys.stderr)
            skipped += 1
            continue
        try:
            audio = load_audio(line.audio)
        except (ValueError, OSError) as e:
            print(f"emoface: skipped {str(e).splitlines()[0]}", file=sys.stderr)
            skipped += 1
            continue
        if audio.n_frames < 1:
            print(
                f"emoface: skipped {line.audio}: shorter than one frame (1/60 s)", file=sys.stderr
            )
            skipped += 1
            continue
        audios.append(audio)
    if not audios:
        raise ValueError("no usable audio among the inputs; nothing to distil")
    teacher = load_engine("emoface", checkpoint=args.checkpoint, device=args.device)
    if args.precision != "exact":
        teacher = teacher.with_precision(args.precision)  # type: ignore[attr-defined]
    seconds = sum(a.duration_s for a in audios)
    print(
        f"emoface: distilling 7 poses from {teacher.name} over {len(audios)} clip(s), "
        f"{seconds:.1f} s of speech",
        file=sys.stderr,
    )
    result = distill_poses(
        teacher,
        audios,
        base=base,
        iterations=args.iterations or DEFAULT_ITERATIONS,
        progress=lambda text: print(f"  {text}", file=sys.stderr),
    )
    source = teacher.describe().get("checkpoint") or args.checkpoint or "the EmoFace network"
    write_poses(args.output, result, teacher=str(source))
    print(f"{args.output}: poses for {len(result.poses)} emotions", file=sys.stderr)
    return 1 if skipped else 0
