"""``emoface receive``: the mock receiver on the command line (decode, check, record, stats)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import TYPE_CHECKING

from bridge.commands.options import (
    HelpFormatter,
    check_output_location,
    positive_float,
    positive_int,
)

if TYPE_CHECKING:
    from bridge.receiver import MockReceiver

STATUS_INTERVAL_S = 1.0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``receive`` subcommand."""
    p = subparsers.add_parser(
        "receive",
        help="receive a stream like Unreal would; print live stats, optionally record it",
        description="Listen on one transport, decode frames, count sequence gaps, duplicates, "
        "out-of-order and malformed packets, print frame rate, latency and jitter once a second, "
        "and optionally record the frames (.jsonl, or .json with one list per target).",
        formatter_class=HelpFormatter,
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--zmq",
        nargs="?",
        const="tcp://127.0.0.1:5555",
        default=None,
        metavar="ENDPOINT",
        help="subscribe to a ZeroMQ PUB endpoint (the default)",
    )
    where.add_argument(
        "--osc",
        nargs="?",
        const="127.0.0.1:9000",
        default=None,
        metavar="HOST:PORT",
        help="listen for OSC on a UDP port",
    )
    where.add_argument(
        "--livelink",
        nargs="?",
        const="127.0.0.1:11111",
        default=None,
        metavar="HOST:PORT",
        help="listen for Live Link Face packets on a UDP port",
    )
    p.add_argument("--subject", default=None, help="keep only this subject")
    p.add_argument("--count", type=positive_int, default=None, help="stop after N frames")
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        metavar="S",
        help="stop after S seconds without a frame (default: wait until Ctrl-C)",
    )
    p.add_argument(
        "-o",
        "--output",
        "--out",  # the earlier spelling, kept working
        dest="out",
        default=None,
        metavar="FILE",
        help="record frames to FILE (.jsonl or .json)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no live stats, only the summary")
    p.add_argument("--json", action="store_true", help="also print the summary as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Receive until the count, the idle timeout or Ctrl-C; return 1 if the count was not met."""
    from bridge.receiver import MockReceiver

    if args.count is not None and args.count < 1:
        raise ValueError(f"--count must be at least 1, but {args.count} is provided")
    if args.out and not args.out.endswith((".jsonl", ".json")):
        raise ValueError(f"{args.out}: recording must end in .jsonl or .json")
    if args.out:
        check_output_location(args.out)
    if args.osc is not None:
        transport, address = "osc", args.osc
    elif args.livelink is not None:
        transport, address = "livelink", args.livelink
    else:
        transport, address = "zmq", args.zmq or "tcp://127.0.0.1:5555"
    receiver = MockReceiver(transport, address, subject=args.subject, keep_frames=bool(args.out))
    interrupted = False
    with receiver:
        print(
            f"emoface: receiving {transport} on {receiver.address}"
            + (f" (subject {args.subject})" if args.subject else ""),
            file=sys.stderr,
        )
        try:
            _loop(receiver, args)
        except KeyboardInterrupt:
            interrupted = True
    stats = receiver.stats
    timing = receiver.timing()
    print(
        f"emoface: {stats.n_frames} frames from {len(receiver.schemas)} subject(s); "
        f"gaps {stats.n_gaps} ({stats.n_missing} missing), duplicates {stats.n_duplicates}, "
        f"out-of-order {stats.n_out_of_order}, malformed {stats.n_malformed}, "
        f"waiting for schema {stats.n_waiting_for_schema}; {_timing_text(timing)}",
        file=sys.stderr,
    )
    if args.out:
        path = receiver.write(args.out)
        print(f"{path}: {len(receiver.frames)} frames recorded", file=sys.stderr)
    if args.json:
        from dataclasses import asdict

        from bridge.commands.options import finite_or_none

        print(
            json.dumps(
                {
                    "subjects": sorted(receiver.schemas),
                    "stats": asdict(stats),
                    "timing": {k: finite_or_none(v) for k, v in timing.items()},
                    "interrupted": interrupted,
                }
            )
        )
    if args.count is not None and stats.n_frames < args.count and not interrupted:
        print(
            f"emoface: error: received {stats.n_frames} of {args.count} frames before the timeout",
            file=sys.stderr,
        )
        return 1
    return 0


def _loop(receiver: MockReceiver, args: argparse.Namespace) -> None:
    last_count = 0
    last_frame_s = time.monotonic()
    next_status_s = last_frame_s + STATUS_INTERVAL_S
    while True:
        if args.count is not None:
            done = receiver.wait_for(args.count, timeout_s=0.1)
        else:
            done = False
            time.sleep(0.1)
        now = time.monotonic()
        count = receiver.stats.n_frames
        if count != last_count:
            last_count, last_frame_s = count, now
        if done:
            return
        if args.timeout is not None and now - last_frame_s >= args.timeout:
            return
        if not args.quiet and now >= next_status_s:
            next_status_s = now + STATUS_INTERVAL_S
            s = receiver.stats
            print(
                f"  {count} frames | {_timing_text(receiver.timing())} | gaps {s.n_gaps} "
                f"dup {s.n_duplicates} ooo {s.n_out_of_order} bad {s.n_malformed}",
                file=sys.stderr,
            )


def _timing_text(timing: dict[str, float]) -> str:
    def ms(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{x:.2f} ms"

    fps = "n/a" if math.isnan(timing["fps"]) else f"{timing['fps']:.1f}"
    return (
        f"{fps} fps, latency p50 {ms(timing['latency_p50_ms'])} p99 "
        f"{ms(timing['latency_p99_ms'])}, jitter {ms(timing['jitter_ms'])}"
    )
