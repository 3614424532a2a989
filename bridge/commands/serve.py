"""``emoface serve``: the NPC dialogue service (engine warm, JSON requests over ZeroMQ)."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING

from bridge.commands.options import (
    HelpFormatter,
    add_engine_arguments,
    add_transport_arguments,
    build_engine,
    build_outputs,
    curve_keys,
)

if TYPE_CHECKING:
    from emoface_core.engines.base import Engine

EPILOG = """\
requests (JSON over ZeroMQ REQ/DEALER; see docs/service.md):
  {"op": "speak", "subject": "guard", "audio": "/abs/path/halt.wav", "emotion": "angry"}
  {"op": "bake", "audio_b64": "...", "format": "json"}
  {"op": "cancel", "subject": "guard"}      {"op": "status"}      {"op": "ping"}

frames go to the transports given here (ZeroMQ PUB on tcp://127.0.0.1:5555 when none is given),
one subject (topic) per NPC; watch them with `emoface receive` or the Unreal plugin.

python:
  from bridge.service.client import ServiceClient
  ServiceClient().speak("guard", "halt.wav", emotion="angry")
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand."""
    from bridge.service.client import DEFAULT_SERVICE_ENDPOINT

    p = subparsers.add_parser(
        "serve",
        help="run the NPC dialogue service: speak/bake/cancel/status requests over ZeroMQ",
        description="Keep the engine warm and make NPCs speak on request: each 'speak' request "
        "animates a line and streams its frames in real time to that NPC's subject; a new line "
        "for a busy NPC cross-fades from the current one. Runs until Ctrl-C.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--bind",
        default=DEFAULT_SERVICE_ENDPOINT,
        help="request endpoint (ROUTER); tcp://*:5556 would accept other machines",
    )
    add_engine_arguments(p)
    add_transport_arguments(p)  # the same flags as `emoface stream` and `emoface live`
    p.add_argument(
        "--blend-ms",
        type=float,
        default=100.0,
        help="cross-fade when a line interrupts another, fade-out on cancel",
    )
    p.add_argument("--max-audio-s", type=float, default=600.0, help="longest clip accepted")
    roots = p.add_argument_group("what requests may touch (see docs/security.md)")
    roots.add_argument(
        "--audio-root",
        action="append",
        default=None,
        metavar="DIR",
        help="a folder whose audio files requests may name; repeat for more (default: the "
        "working directory)",
    )
    roots.add_argument(
        "--output-root",
        default=None,
        metavar="DIR",
        help="the folder bakes with an 'output' are written under (default: "
        "./emoface-serve-output)",
    )
    roots.add_argument(
        "--mappings-dir",
        default=None,
        metavar="DIR",
        help="a folder of extra mapping files requests may name (by file stem)",
    )
    roots.add_argument(
        "--max-subjects", type=int, default=64, help="NPCs the service keeps streams for"
    )
    roots.add_argument(
        "--max-scheduled",
        type=int,
        default=64,
        help="lines waiting for a future start_at before new ones are refused (busy)",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=64,
        help="requests waiting for the engine before new ones are refused (busy)",
    )
    p.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the warm-up inference at start (first line is then slower)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM."""
    from bridge.service.server import Service, ServiceConfig
    from emoface_core.emotion import parse_emotion_spec

    config = ServiceConfig(
        bind=args.bind,
        mapping=args.mapping,
        blend_ms=args.blend_ms,
        max_audio_s=args.max_audio_s,
        max_queue=args.max_queue,
        schema_interval_s=args.schema_interval_s,
        default_emotion=args.emotion,
        audio_roots=tuple(args.audio_root or ()),
        output_root=args.output_root,
        mappings_dir=args.mappings_dir,
        max_subjects=args.max_subjects,
        max_scheduled=args.max_scheduled,
        curve=curve_keys(args),
    )
    parse_emotion_spec(args.emotion)  # a bad default is a usage error now, not one per request
    engine = build_engine(args)
    if not args.no_warmup:
        _warm_up(engine)
    _, outputs = build_outputs(args)
    with Service(config, engine, outputs=outputs) as service:
        previous = signal.signal(signal.SIGTERM, lambda *_: service.stop())
        where = ", ".join(f"{s.kind} {s.address}" for s in service.senders)
        print(
            f"emoface serve: listening on {service.endpoint}; frames to {where}; audio from "
            f"{', '.join(config.audio_roots)}; bakes under {config.output_root} (Ctrl-C stops)",
            file=sys.stderr,
        )
        try:
            service.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        counters = service.counters
    print(
        f"emoface serve: stopped after {counters['requests']} requests "
        f"({counters['lines']} lines, {counters['bakes']} bakes, {counters['errors']} errors)",
        file=sys.stderr,
    )
    return 0


def _warm_up(engine: Engine) -> None:
    """One short inference, so the first real line does not pay for lazy initialisation."""
    import numpy as np

    from emoface_core.audio import Audio
    from emoface_core.emotion import parse_emotion_spec

    engine.infer(Audio.from_array(np.zeros(16_000, np.float32)), parse_emotion_spec("neutral"))
