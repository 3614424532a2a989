"""``emoface stream``: animate a clip (or load a bake) and send it in real time."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.commands.options import (
    HelpFormatter,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)

if TYPE_CHECKING:
    from bridge.runtime.subject import ClipPlayer, Output
    from bridge.transports.base import Sender
    from emoface_core.animation import Animation

from bridge.commands.bake import add_engine_arguments, build_engine

BAKED_SUFFIXES = (".json", ".txt")
DEFAULT_SUBJECT = "emoface"

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


def add_transport_arguments(p: argparse.ArgumentParser) -> None:
    """Mapping and transport flags, shared by ``stream`` and ``live``."""
    from bridge.mapping import DEFAULT_MAPPING

    p.add_argument(
        "--mapping", default=DEFAULT_MAPPING, help="mapping file or shipped name for ZeroMQ and OSC"
    )
    p.add_argument(
        "--zmq",
        nargs="?",
        const="tcp://127.0.0.1:5555",
        default=None,
        metavar="ENDPOINT",
        help="publish on a ZeroMQ PUB socket",
    )
    p.add_argument(
        "--zmq-hwm",
        type=positive_int,
        default=16,
        help="ZeroMQ per-subscriber queue, in messages (latest-only beyond it)",
    )
    p.add_argument(
        "--osc",
        nargs="?",
        const="127.0.0.1:9000",
        default=None,
        metavar="HOST:PORT",
        help="send OSC bundles",
    )
    p.add_argument(
        "--osc-mode",
        choices=("named", "array"),
        default="named",
        help="one OSC message per target, or one message with all values",
    )
    p.add_argument(
        "--livelink",
        nargs="?",
        const="127.0.0.1:11111",
        default=None,
        metavar="HOST:PORT",
        help="send Live Link Face packets",
    )
    p.add_argument(
        "--livelink-mapping",
        default="arkit52",
        help="mapping for Live Link Face (targets must be ARKit names)",
    )
    p.add_argument(
        "--schema-interval-s",
        type=positive_float,
        default=0.5,
        help="repeat the schema this often so late receivers can decode",
    )


def run(args: argparse.Namespace) -> int:
    """Stream one clip."""
    from contextlib import ExitStack

    from bridge.runtime.clock import FrameClock
    from bridge.runtime.subject import ClipPlayer, SubjectStream, check_subject

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
        print(
            f"emoface: streaming {animation.n_frames} frames ({animation.duration_s:.2f} s, "
            f"{loops}) as {', '.join(subjects)} to {where}",
            file=sys.stderr,
        )
        if args.start_delay_s:
            time.sleep(args.start_delay_s)
        player = ClipPlayer(
            [(stream, animation.values) for stream in streams],
            fps=animation.fps,
            realtime=not args.no_realtime,
            loops=args.loop,
            audio_offset_s=args.audio_offset_ms / 1000.0,
            frame_clock=FrameClock(animation.fps),
            info={"source": str(args.input), **_line_info(animation.metadata)},
        )
        interrupted = False
        try:
            player.run()
        except KeyboardInterrupt:
            interrupted = True
        _print_summary(player, senders, len(subjects), interrupted)
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
    from emoface_core.audio import load_audio
    from emoface_core.emotion import parse_emotion_spec
    from emoface_core.engines.base import animate_audio

    timeline = parse_emotion_spec(args.emotion)
    audio = load_audio(path)
    engine = build_engine(args)
    return animate_audio(engine, audio, timeline, raw=args.raw, seed=args.seed)


def build_outputs(args: argparse.Namespace) -> tuple[list[Sender], list[Output]]:
    """The senders the transport flags ask for, each paired with the mapping it sends."""
    from bridge.mapping import load_mapping
    from bridge.runtime.subject import Output

    mapping = load_mapping(args.mapping)
    livelink_mapping = load_mapping(args.livelink_mapping) if args.livelink else None
    senders = _build_senders(args)
    outputs = [
        Output(s, livelink_mapping if s.kind == "livelink" and livelink_mapping else mapping)
        for s in senders
    ]
    return senders, outputs


def _build_senders(args: argparse.Namespace) -> list[Sender]:
    from bridge.transports.base import parse_host_port
    from bridge.transports.livelink import LIVELINK_PORT, LiveLinkSender
    from bridge.transports.osc import DEFAULT_OSC_PORT, OscSender
    from bridge.transports.zmq import ZmqSender

    senders: list[Sender] = []
    zmq_endpoint = args.zmq
    if zmq_endpoint is None and args.osc is None and args.livelink is None:
        zmq_endpoint = "tcp://127.0.0.1:5555"
    if zmq_endpoint is not None:
        senders.append(ZmqSender(zmq_endpoint, sndhwm=args.zmq_hwm))
    if args.osc is not None:
        host, port = parse_host_port(args.osc, DEFAULT_OSC_PORT)
        senders.append(OscSender(host, port, mode=args.osc_mode))
    if args.livelink is not None:
        host, port = parse_host_port(args.livelink, LIVELINK_PORT)
        senders.append(LiveLinkSender(host, port))
    return senders


def _line_info(metadata: dict) -> dict:
    keep = ("emotion", "seed", "source_audio", "duration_s")
    info = {k: metadata[k] for k in keep if k in metadata}
    engine = metadata.get("engine")
    if isinstance(engine, dict) and "name" in engine:
        info["engine"] = engine["name"]
    return info


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
