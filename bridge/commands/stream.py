"""``emoface stream``: animate a clip (or load a bake) and send it in real time."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.commands.options import (
    DEFAULT_SUBJECT,
    HelpFormatter,
    add_engine_arguments,
    add_head_argument,
    add_output_arguments,
    add_transcript_arguments,
    add_transport_arguments,
    build_engine,
    build_outputs,
    lips_from_arguments,
    non_negative_float,
    non_negative_int,
)

if TYPE_CHECKING:
    from bridge.runtime.clips import ClipPlayer
    from bridge.transports.base import Sender
    from emoface_core.animation import Animation

BAKED_SUFFIXES = (".json", ".txt")

EPILOG = """\
transports (any combination; ZeroMQ alone when none is given):
  --zmq [ENDPOINT]        PUB socket, topic = subject (default tcp://127.0.0.1:5555)
  --osc [HOST:PORT]       OSC bundles to /emoface/<subject>/... (default 127.0.0.1:9000)
  --livelink [HOST:PORT]  Live Link Face packets, ARKit names via arkit52 (default 127.0.0.1:11111)
  Everything stays on this machine unless you give another host or bind tcp://*:PORT.

examples:
  emoface stream line.wav --emotion happy --subject npc1
  emoface stream line.json --osc 127.0.0.1:9000 --livelink --loop
  emoface stream line.wav --mapping metahuman_curves --zmq tcp://127.0.0.1:6000
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``stream`` subcommand."""
    p = subparsers.add_parser(
        "stream",
        help="send animation frames in real time over ZeroMQ, OSC and/or Live Link Face",
        description="Animate an audio clip (or load a baked .json/.txt) and send its frames paced "
        "to the clip's 60 fps clock. Plays no sound: start the audio on the receiving side at the "
        "START message's time, or shift frames with --audio-offset-ms.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("input", help="audio file, or a baked .json/.txt to stream without recomputing")
    add_engine_arguments(p)
    add_head_argument(p)
    add_transcript_arguments(p, single_text=True)
    p.add_argument(
        "--raw", action="store_true", help="network output only: no smoothing, blinks or gaze"
    )
    p.add_argument("--seed", type=int, default=None, help="seed for blinks and gaze")
    p.add_argument(
        "--subject",
        action="append",
        default=None,
        metavar="NAME",
        help=f"subject (NPC) name; repeat to drive several (default {DEFAULT_SUBJECT})",
    )
    add_transport_arguments(p)
    p.add_argument("--no-realtime", action="store_true", help="send as fast as possible")
    add_output_arguments(p, "no announcement and no summary on stderr (errors only)")
    p.add_argument(
        "--loop",
        nargs="?",
        type=non_negative_int,
        const=0,
        default=1,
        metavar="N",
        help="play N times; --loop alone repeats until Ctrl-C",
    )
    p.add_argument(
        "--audio-offset-ms",
        type=float,
        default=0.0,
        help="send frames this much later (negative: earlier) than the audio clock",
    )
    p.add_argument(
        "--start-delay-s",
        type=non_negative_float,
        default=0.3,
        help="wait after opening sockets so subscribers can connect before frame 0",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Stream one clip."""
    from contextlib import ExitStack

    from bridge.runtime.clips import ClipPlayer
    from bridge.runtime.clock import FrameClock
    from bridge.runtime.subject import SubjectStream, check_subject, frames_with_head

    subjects = [check_subject(s) for s in (args.subject or [DEFAULT_SUBJECT])]
    senders, outputs = build_outputs(args)  # a bad mapping fails before the engine runs
    animation = _load_or_animate(args)
    with ExitStack() as stack:
        for sender in senders:
            stack.enter_context(sender)
        streams = [
            SubjectStream(
                subject, outputs, fps=animation.fps, schema_interval_s=args.schema_interval_s
            )
            for subject in subjects
        ]
        where = ", ".join(f"{s.kind} {s.address}" for s in senders)
        loops = "forever (Ctrl-C stops)" if args.loop == 0 else f"x{args.loop}"
        if not args.quiet:
            print(
                f"emoface: streaming {animation.n_frames} frames ({animation.duration_s:.2f} "
                f"s, {loops}) as {', '.join(subjects)} to {where}",
                file=sys.stderr,
            )
        if args.start_delay_s:
            time.sleep(args.start_delay_s)
        frames = frames_with_head(animation.values, animation.head)
        player = ClipPlayer(
            [(stream, frames) for stream in streams],
            fps=animation.fps,
            realtime=not args.no_realtime,
            loops=args.loop,
            audio_offset_s=args.audio_offset_ms / 1000.0,
            frame_clock=FrameClock(animation.fps),
            info=_line_info(Path(args.input), animation.metadata),
        )
        interrupted = False
        try:
            player.run()
        except KeyboardInterrupt:
            interrupted = True
        if not args.quiet:
            _print_summary(player, senders, len(subjects), interrupted)
        if args.json:
            print(json.dumps(_summary_json(player, senders, len(subjects), interrupted)))
    return 130 if interrupted and args.loop != 0 else 0


def _load_or_animate(args: argparse.Namespace) -> Animation:
    from emoface_core.formats import load_animation

    path = Path(args.input)
    if path.suffix.lower() in BAKED_SUFFIXES:
        if args.emotion != "neutral" or args.engine != "auto":
            print(
                "emoface: note: a baked file is streamed as is; --emotion/--engine are ignored",
                file=sys.stderr,
            )
        return load_animation(path)
    from emoface_core.animate import animate_audio
    from emoface_core.audio import load_audio
    from emoface_core.emotion import parse_emotion_spec

    timeline = parse_emotion_spec(args.emotion)
    audio = load_audio(path)
    engine = build_engine(args)
    lips = lips_from_arguments(args, engine, audio.samples)
    return animate_audio(
        engine, audio, timeline, raw=args.raw, seed=args.seed, head=args.head, **lips
    )


def _line_info(path: Path, metadata: dict) -> dict:
    """START's info, with absolute paths.

    The receiver (the editor: another process, with its own working directory) opens ``audio``
    to play the line.
    """
    keep = ("emotion", "seed", "duration_s")
    info: dict = {"source": str(path.resolve()), **{k: metadata[k] for k in keep if k in metadata}}
    if path.suffix.lower() not in BAKED_SUFFIXES:
        info["audio"] = info["source"]
    elif isinstance(metadata.get("source_audio"), str):
        audio = Path(metadata["source_audio"])
        if not audio.is_absolute():  # older bakes: relative to where they ran, or to the file
            beside = path.resolve().parent / audio
            audio = beside if beside.is_file() or not audio.is_file() else audio
        info["source_audio"] = info["audio"] = str(audio.resolve())
    engine = metadata.get("engine")
    if isinstance(engine, dict) and "name" in engine:
        info["engine"] = engine["name"]
    return info


def _summary_json(
    player: ClipPlayer, senders: list[Sender], n_subjects: int, interrupted: bool
) -> dict:
    stats = player.stats
    return {
        "interrupted": interrupted,
        "frames": stats.n_frames,
        "subjects": n_subjects,
        "lines": stats.n_lines,
        "duration_s": round(stats.duration_s, 3),
        "skipped_late": stats.n_skipped,
        "late": stats.pacing.n_late,
        "max_late_ms": round(1e3 * stats.pacing.max_late_s, 3),
        "senders": [
            {
                "kind": s.kind,
                "address": s.address,
                "frames": s.stats.n_frames,
                "dropped": s.stats.n_dropped,
                "errors": s.stats.n_errors,
                "bytes": s.stats.n_bytes,
            }
            for s in senders
        ],
    }


def _print_summary(
    player: ClipPlayer, senders: list[Sender], n_subjects: int, interrupted: bool
) -> None:
    stats = player.stats
    pacing = stats.pacing
    head = "interrupted after" if interrupted else "sent"
    print(
        f"emoface: {head} {stats.n_frames} frames x {n_subjects} subject(s) in "
        f"{stats.duration_s:.2f} s ({stats.n_lines} line(s)); skipped {stats.n_skipped} too late, "
        f"{pacing.n_late} late, max lateness {1e3 * pacing.max_late_s:.1f} ms",
        file=sys.stderr,
    )
    for sender in senders:
        s = sender.stats
        print(
            f"  {sender.kind} {sender.address}: {s.n_frames} frames, {s.n_dropped} dropped, "
            f"{s.n_errors} errors, {s.n_bytes / 1e6:.2f} MB",
            file=sys.stderr,
        )
