"""``emoface bake``: audio files, folders, globs or manifests -> baked controller values.

One audio file with ``-o OUT.txt|.json|.csv`` bakes that file (the original contract). Anything
else (several inputs, a folder, a glob, a manifest, or ``-o`` naming a folder) is a batch: one
output per line in the folder, up-to-date lines skipped, ``--jobs N`` workers, a progress bar and a
summary table; the library side is ``bridge.bake.run``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.commands.options import (
    HelpFormatter,
    add_engine_arguments,
    add_head_argument,
    add_output_arguments,
    add_transcript_arguments,
    build_engine,
    lips_from_arguments,
    read_text_argument,
)

if TYPE_CHECKING:
    from bridge.bake.journal import BatchPlan
    from bridge.bake.run import BatchReport, LineResult
    from bridge.mapping import Mapping

EPILOG = """\
weights:
  The 'emoface' engine needs the authors' released checkpoint (SJTU-Lucy/EmoFace, a *_model.pth
  file that already contains wav2vec2). Pass --checkpoint PATH, or set EMOFACE_CHECKPOINT, or save
  it as emoface_model.pth in the cache folder (Linux: ~/.cache/emoface/). Without weights,
  --engine auto uses the procedural engine, which needs nothing.

output:
  OUT ending in .txt is the authors' format (one line per frame, 174 comma-separated values,
  dataset column order, no header); .json holds named channels plus metadata; .csv has a
  time column and one column per channel, or per target of --mapping (for spreadsheets,
  DCCs, DataTables). --format curvetable writes .csv in Unreal's CurveTable layout instead
  (first row the key times, then one row per curve: import it as a CurveTable); in a batch
  its files are NAME.curvetable.csv. --mapping applies to the CSV layouts only.

batch (several inputs, a folder, a glob, a manifest, or -o naming a folder):
  emoface bake lines/ -o baked/                     every audio file under lines/ (sub-folders kept)
  emoface bake 'vo/**/*.wav' -o baked/ --format all quote globs; ** recurses
  emoface bake lines.csv -o baked/ --jobs 2         a manifest, two worker processes
  A manifest is a CSV with a header row or a JSON Lines file, one line per clip, with columns
  audio (required; relative to the manifest), emotion, subject (or character), output (name
  inside -o, no extension) and seed; other columns are ignored. Example:
    audio,emotion,subject,output
    vo/guard_01.wav,angry,guard,guard/line01
    vo/guard_02.wav,"happy@0,sad@2",guard,guard/line02
  Lines whose outputs are newer than their audio and were baked with the same settings are
  skipped (--force redoes them). A bad line is reported and the rest finish; the exit code is 1
  when any line failed. With --seed S each line gets its own seed derived from S and its output
  name (a manifest seed column wins), so a rerun reproduces every line.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bake`` subcommand."""
    p = subparsers.add_parser(
        "bake",
        help="bake audio into controller values (one file or a whole batch)",
        description="Animate audio clips and write the 174 controller values per frame.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="audio file (wav, flac, ogg: anything libsndfile reads), folder, glob, or manifest "
        "(.csv/.jsonl)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output file (.txt, .json or .csv) for one audio file, else an output folder",
    )
    add_engine_arguments(p)
    add_head_argument(p)
    add_transcript_arguments(p, single_text=True)
    p.add_argument(
        "--raw", action="store_true", help="network output only: no smoothing, blinks or gaze"
    )
    p.add_argument(
        "--seed", type=int, default=None, help="seed for blinks and gaze (reproducible output)"
    )
    p.add_argument(
        "--allow-truncated",
        action="store_true",
        help="bake what a truncated audio file holds (with a warning) instead of refusing it",
    )
    p.add_argument(
        "--mapping",
        default=None,
        metavar="NAME|FILE",
        help="CSV / curve-table curves: targets of this rig mapping (e.g. metahuman_curves) "
        "instead of the 174 channels",
    )
    p.add_argument(
        "--format",
        default=None,
        choices=("txt", "json", "csv", "curvetable", "all"),
        help="output format(s) in an output folder (default: json; all = txt, json and csv); "
        "for one .csv file, curvetable picks Unreal's CurveTable layout",
    )
    batch = p.add_argument_group("batch options")
    batch.add_argument(
        "--jobs",
        "-j",
        type=_jobs,
        default=1,
        help="worker processes, each with the engine loaded once (0 = one per core)",
    )
    batch.add_argument("--force", action="store_true", help="bake lines even when up to date")
    batch.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster: 'auto', 'ray://HOST:10001', or 'local' (needs emoface[ray])",
    )
    batch.add_argument(
        "--report",
        default=None,
        metavar="FILE.json",
        help="also write the per-line results as JSON",
    )
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_output_arguments(p, "only errors and warnings on stderr (no progress, no summary)")
    p.set_defaults(func=run)


def _jobs(text: str) -> int:
    import os

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--jobs must be a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"--jobs must be >= 0, got {n}")
    return n or (os.cpu_count() or 1)


def run(args: argparse.Namespace) -> int:
    """Bake one clip to one file, or a batch into a folder."""
    with _sigterm_as_interrupt():
        if _is_single(args):
            return _run_single(args)
        return _run_batch(args)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt, so an interrupted write removes its temporary file."""
    try:
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    except ValueError:  # not the main thread (e.g. called from a service thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _is_single(args: argparse.Namespace) -> bool:
    """Whether this is the one-file contract: ``bake AUDIO -o OUT.txt|.json|.csv``."""
    from bridge.bake.lines import is_glob, is_manifest
    from emoface_core.formats import WRITERS

    out = Path(args.output)
    names_file = out.suffix.lower().lstrip(".") in WRITERS and not args.output.endswith(("/", "\\"))
    one_audio = (
        len(args.inputs) == 1
        and not Path(args.inputs[0]).is_dir()
        and not is_manifest(args.inputs[0])
        and not (is_glob(args.inputs[0]) and not Path(args.inputs[0]).exists())
    )
    if names_file and not out.is_dir():
        if not one_audio:
            raise ValueError(
                f"{args.output}: -o names a file, but the inputs are a batch; "
                "give an output folder instead"
            )
        if args.format not in (None, "curvetable") or (
            args.format == "curvetable" and out.suffix.lower() != ".csv"
        ):
            raise ValueError(
                f"{args.output} names a file: its extension is its format (--format applies "
                "to an output folder, except --format curvetable for a .csv file)"
            )
        return True
    if one_audio and out.suffix and not out.is_dir() and not args.output.endswith(("/", "\\")):
        raise ValueError(
            f"{args.output}: unknown output extension {out.suffix}; use "
            f"{', '.join('.' + k for k in WRITERS)}, or a folder for a batch"
        )
    return False


def _run_single(args: argparse.Namespace) -> int:
    from bridge.bake.render import write_file
    from emoface_core.animate import animate_audio
    from emoface_core.audio import load_audio
    from emoface_core.emotion import parse_emotion_spec
    from emoface_core.formats import format_of

    fmt = "curvetable" if args.format == "curvetable" else format_of(args.output)
    if args.mapping and fmt in ("txt", "json"):
        raise ValueError(
            f"--mapping applies to .csv and curve-table outputs; {args.output} is {fmt}, which "
            "keeps the 174 channels (.txt is the authors' layout; the Unreal plugin and "
            "`emoface stream` map .json themselves)"
        )
    if os.path.realpath(args.output) == os.path.realpath(args.inputs[0]):
        raise ValueError(f"{args.output}: is the input audio file; refusing to overwrite it")
    timeline = parse_emotion_spec(args.emotion)
    mapping = _load_mapping(args.mapping) if args.mapping else None
    read_text_argument(args)  # a bad --text-file fails before the audio is decoded
    audio = load_audio(args.inputs[0], allow_truncated=args.allow_truncated)
    engine = build_engine(args)
    lips = lips_from_arguments(args, engine, audio.samples)
    animation = animate_audio(
        engine, audio, timeline, raw=args.raw, seed=args.seed, head=args.head, **lips
    )
    write_file(args.output, animation, fmt, mapping)
    transcript = animation.metadata.get("transcript")
    if not args.quiet:
        print(
            f"{args.output}: {animation.n_frames} frames ({animation.duration_s:.2f} s)"
            + (f"; {transcript_summary(transcript)}" if transcript else ""),
            file=sys.stderr,
        )
    if args.json:
        print(
            json.dumps(
                {
                    "output": str(Path(args.output).resolve()),
                    "format": fmt,
                    "frames": animation.n_frames,
                    "duration_s": round(animation.duration_s, 6),
                    "engine": animation.metadata.get("engine", {}).get("name"),
                    **({"transcript": transcript} if transcript else {}),
                }
            )
        )
    return 0


def transcript_summary(facts: dict) -> str:
    """One phrase on how the text was used: aligned share, fallbacks, or why not."""
    if not facts.get("used"):
        return f"text not used: {facts.get('reason', 'no alignment')}"
    if facts.get("source") == "phones":
        return f"lips from {facts.get('phonemes', 0)} recognised phones"
    share = 100.0 * float(facts.get("aligned_share", 0.0))
    spans = facts.get("fallback_s") or []
    fallback = sum(b - a for a, b in spans)
    text = f"text aligned on {share:.0f}% of its phonemes"
    if spans:
        text += f", audio-only lips for {fallback:.2f} s where the audio did not match"
    return text


def _load_mapping(name: str) -> Mapping:
    from bridge.mapping import load_mapping

    return load_mapping(name)


def _run_batch(args: argparse.Namespace) -> int:
    from bridge.bake.lines import collect_lines
    from bridge.bake.render import BatchSettings
    from bridge.bake.run import run_batch
    from emoface_core.emotion import parse_emotion_spec

    parse_emotion_spec(args.emotion)  # a bad default spec is a usage error, not N failed lines
    from emoface_core.formats import ALL_FORMATS

    fmt = args.format or "json"
    formats = ALL_FORMATS if fmt == "all" else (fmt,)
    if args.mapping and not {"csv", "curvetable"} & set(formats):
        raise ValueError(
            "--mapping sets the CSV / curve-table curves; add --format csv, curvetable or all"
        )
    settings = BatchSettings(
        output_dir=Path(args.output),
        formats=formats,
        engine=args.engine,
        checkpoint=args.checkpoint,
        device=args.device,
        precision=args.precision or "exact",
        head=args.head,
        raw=args.raw,
        mapping=_load_mapping(args.mapping) if args.mapping else None,
        allow_truncated=args.allow_truncated,
        language=args.language,
        text_mode=args.text_mode,
        network_lips=args.network_lips,
        phones=args.phones,
    )
    if args.text is not None or args.text_file is not None:
        raise ValueError(
            "--text and --text-file are for one audio file; a batch takes each line's text "
            "from a manifest's text column"
        )
    lines = collect_lines(args.inputs, emotion=args.emotion, seed=args.seed)
    progress = _Progress(enabled=not (args.no_progress or args.quiet))
    try:
        report = run_batch(
            lines,
            settings,
            jobs=args.jobs,
            force=args.force,
            ray_address=args.ray,
            on_plan=progress.start,
            on_result=progress.update,
        )
    finally:
        progress.close()
    if args.report:
        from emoface_core.formats import atomic_write

        atomic_write(args.report, json.dumps(report.to_json(), indent=1) + "\n")
    if not args.quiet:
        _print_summary(report, args)
    if args.json:
        print(json.dumps(report.to_json()))
    if report.interrupted:
        return 130
    return 0 if report.ok else 1


class _Progress:
    """A tqdm bar over the lines to bake (ETA included) that also prints failures as they come."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.n_failed = 0

    def start(self, plan: BatchPlan) -> None:
        if plan.up_to_date:
            print(
                f"emoface: {len(plan.up_to_date)} line(s) up to date, skipped (--force redoes)",
                file=sys.stderr,
            )
        if not self.enabled or not plan.to_bake:
            return
        from tqdm import tqdm

        # disable=None: no bar when stderr is not a terminal (logs, CI).
        self.bar = tqdm(
            total=len(plan.to_bake),
            unit="line",
            desc="baking",
            disable=None,
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def update(self, result: LineResult) -> None:
        if result.status == "failed":
            self.n_failed += 1
            self._write(f"FAILED {result.line.label}: {result.reason}")
        if self.bar is not None and result.status != "skipped" and not result.line.problem:
            self.bar.update(1)
            if self.n_failed:
                self.bar.set_postfix(failed=self.n_failed, refresh=False)

    def _write(self, text: str) -> None:
        # Without a bar (not a terminal) the summary lists failures; don't print them twice.
        if self.bar is not None and not self.bar.disable:
            self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _print_summary(report: BatchReport, args: argparse.Namespace) -> None:
    from bridge.bake.run import iter_summary_rows

    workers = (
        f"Ray at {args.ray}" if args.ray else f"{args.jobs} worker{'s' if args.jobs > 1 else ''}"
    )
    print(
        f"emoface bake: {len(report.results) + report.n_unfinished} line(s) in "
        f"{report.wall_s:.1f} s (engine {report.engine}, {workers})",
        file=sys.stderr,
    )
    for status, n, note in iter_summary_rows(report):
        print(f"  {status:<11} {n:>6}  {note}".rstrip(), file=sys.stderr)
    done = report.count("done")
    if done and report.wall_s > 0:
        print(
            f"  throughput  {60 * done / report.wall_s:.1f} lines/min, "
            f"{report.audio_s_done / report.wall_s:.2f} s audio per wall second",
            file=sys.stderr,
        )
    failed = report.failed
    if failed:
        shown = 20
        print("failed lines:", file=sys.stderr)
        for r in failed[:shown]:
            # Audio errors already start with the file, which is a folder line's label.
            named = r.reason.startswith(f"{r.line.label}:")
            print(f"  {r.reason if named else f'{r.line.label}: {r.reason}'}", file=sys.stderr)
        if len(failed) > shown:
            more = "see --report" if not args.report else f"see {args.report}"
            print(f"  ... and {len(failed) - shown} more ({more})", file=sys.stderr)
    if report.interrupted:
        print(
            "emoface: interrupted; finished outputs are kept, rerun to bake the rest",
            file=sys.stderr,
        )
