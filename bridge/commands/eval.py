"""``emoface eval``: MAE (all/mouth/eye), jaw correlation and closure F1 against ground truth."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bridge.commands.options import HelpFormatter

EPILOG = """\
what is scored:
  emoface eval CHECKPOINT ROOT            the network (released or trained checkpoint)
  emoface eval ROOT --engine procedural   the procedural engine (no weights)
  emoface eval ROOT --predictions DIR     baked files DIR/<name>.txt|.json from any tool

ROOT is any dataset layout that 'emoface dataset check' understands, including a folder of
audio + .txt pairs such as the shared sample. Ground truth is cut to int(audio duration * 60)
frames, as in training. By default the engine's raw output is scored (the paper's Table 2
setting: no smoothing, blinks or gaze); --postprocess scores what 'bake' would write.

metrics: MAE over all 174 channels, the mouth channels and the eye channels (docs/channels.md),
pooled over frames, per emotion and overall; jaw r = correlation of predicted and true
CTRL_C_jaw-translateY per clip; closure F1 = agreement on closed-mouth frames (jaw within the
lowest 10% of the true clip's range). Paper, EmoFace: 0.04024 / 0.03697 / 0.05698.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` subcommand."""
    p = subparsers.add_parser(
        "eval",
        help="score a checkpoint, an engine or baked files against ground truth",
        description="Score predicted controller values against a dataset's ground truth.",
        usage="emoface eval [CHECKPOINT] ROOT [options]",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="[CHECKPOINT] ROOT: weights to score (optional) and the dataset folder or manifest",
    )
    p.add_argument("--checkpoint", default=None, help="EmoFace weights (instead of the positional)")
    p.add_argument(
        "--engine",
        default=None,
        choices=("emoface", "procedural"),
        help="engine to score (default: emoface with a checkpoint)",
    )
    p.add_argument(
        "--predictions",
        default=None,
        metavar="DIR",
        help="score baked files in DIR instead of running an engine",
    )
    p.add_argument(
        "--split",
        default=None,
        help="split to score ('all' for every clip); default: validation when present",
    )
    p.add_argument(
        "--manifest", default=None, help="manifest file to use instead of the folder layout"
    )
    p.add_argument(
        "--emotion",
        default=None,
        help="emotion spec for every clip instead of each file name's emotion",
    )
    p.add_argument(
        "--postprocess",
        action="store_true",
        help="score post-processed output (smoothing, blinks, gaze) instead of raw",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of blinks and gaze with --postprocess")
    p.add_argument(
        "--device", default=None, choices=("cpu", "cuda"), help="default: cuda if available"
    )
    p.add_argument(
        "--max-frame-mismatch",
        type=int,
        default=3,
        help="frames by which ground truth may differ from the audio's frame count",
    )
    p.add_argument("--per-clip", action="store_true", help="also list every clip in the table")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("-o", "--output", default=None, help="also write the JSON report to this file")
    p.set_defaults(func=run, _parser=p)


def _resolve(args: argparse.Namespace) -> tuple[str | None, str]:
    """``(checkpoint, root)`` from positionals and flags; a conflict is a usage error."""
    parser: argparse.ArgumentParser = args._parser
    if len(args.paths) > 2:
        parser.error("give at most two paths: [CHECKPOINT] ROOT")
    checkpoint = args.checkpoint
    if len(args.paths) == 2:
        if checkpoint:
            parser.error("the checkpoint is given twice (positional and --checkpoint)")
        checkpoint = args.paths[0]
    root = args.paths[-1]
    if args.predictions and (checkpoint or args.engine):
        parser.error("--predictions scores existing files; it takes no checkpoint or --engine")
    if args.engine == "procedural" and checkpoint:
        parser.error("the procedural engine takes no checkpoint")
    if not (args.predictions or checkpoint or args.engine):
        parser.error(
            "nothing to score: give a CHECKPOINT, --engine procedural or --predictions DIR"
        )
    return checkpoint, root


def run(args: argparse.Namespace) -> int:
    """Score and print the table (or JSON)."""
    from emoface_core.emotion import parse_emotion_spec
    from emoface_core.formats import atomic_write
    from emoface_core.training.dataset import ALL, discover_dataset
    from emoface_core.training.evaluate import evaluate_engine, evaluate_predictions, format_table

    checkpoint, root = _resolve(args)
    index = discover_dataset(root, manifest=args.manifest)
    split = args.split or ("validation" if "validation" in index.splits else ALL)
    clips = index.select(split)
    progress = sys.stderr.isatty() and not args.json
    if args.predictions:
        report = evaluate_predictions(
            args.predictions, clips, max_frame_mismatch=args.max_frame_mismatch, progress=progress
        )
    else:
        from emoface_core.engines import load_engine

        engine = load_engine(args.engine or "emoface", checkpoint=checkpoint, device=args.device)
        timeline = parse_emotion_spec(args.emotion) if args.emotion else None
        report = evaluate_engine(
            engine,
            clips,
            raw=not args.postprocess,
            seed=args.seed,
            timeline=timeline,
            max_frame_mismatch=args.max_frame_mismatch,
            progress=progress,
        )
    report.source.update({"dataset": str(Path(root)), "split": split})
    doc = report.to_json()
    if args.output:
        atomic_write(args.output, json.dumps(doc, indent=1) + "\n")
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print(f"{root} (split {split}): {len(report.scores)} of {len(clips)} clip(s) scored")
        print(format_table(report, per_clip=args.per_clip))
    if not report.scores:
        print("emoface: error: no clip could be scored", file=sys.stderr)
        return 1
    return 1 if report.failures else 0
