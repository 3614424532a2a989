"""``emoface dataset check``: find what would hurt training in a dataset before training on it."""

from __future__ import annotations

import argparse
import json
import sys

from bridge.commands.options import HelpFormatter, non_negative_int

EPILOG = """\
layouts (tried in this order):
  ROOT/manifest.csv|.jsonl or ROOT itself a manifest: columns audio, controls[, emotion, split]
  ROOT/train/WAV + ROOT/train/VALID_CTR, ROOT/validation/...   (the authors' release)
  ROOT/WAV + ROOT/VALID_CTR                                     (one split)
  ROOT/x.wav + ROOT/x.txt                                       (pairs by name)
  Emotion from the file name prefix (ang_ dis_ fea_ hap_ neu_ sad_ sur_, or the full word).

errors: unreadable/empty files, wrong column count, unknown emotion, NaN/inf, values outside
  the board range, more than --max-frame-mismatch frames between controls and audio.
warnings: silent audio, files without a partner, channels constant over a split, a clip name in
  two splits. Exit status is 0 unless --strict is given and there are errors.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``dataset`` subcommand group."""
    p = subparsers.add_parser(
        "dataset", help="inspect training data", description="Inspect a training dataset."
    )
    actions = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="report counts, durations and defects per split and emotion",
        description="Read every clip of a dataset and report counts, durations and defects.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    check.add_argument("root", help="dataset folder or manifest (.csv/.jsonl)")
    check.add_argument(
        "--manifest", default=None, help="manifest file to use instead of the folder layout"
    )
    check.add_argument(
        "--max-frame-mismatch",
        type=non_negative_int,
        default=3,
        help="frames by which controls may differ from int(audio duration * 60)",
    )
    check.add_argument(
        "--range-tolerance",
        type=float,
        default=1e-3,
        help="how far beyond a channel's board range a value may go before it is an error",
    )
    check.add_argument("--strict", action="store_true", help="exit 1 when any error is found")
    check.add_argument("--json", action="store_true", help="print the full report as JSON")
    check.add_argument(
        "--max-listed", type=int, default=50, help="issues listed in the text report"
    )
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Check a dataset and print the report."""
    from emoface_core.training.dataset import check_dataset, discover_dataset, format_report

    index = discover_dataset(args.root, manifest=args.manifest)
    report = check_dataset(
        index,
        max_frame_mismatch=args.max_frame_mismatch,
        range_tolerance=args.range_tolerance,
        progress=sys.stderr.isatty() and not args.json,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print(format_report(report, max_listed=args.max_listed))
    return 1 if args.strict and report.errors else 0
