"""``emoface live``: arguments -> ``LiveConfig`` -> ``bridge.runtime.live.run_live``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from bridge.commands.options import (
    DEFAULT_SUBJECT,
    HelpFormatter,
    add_engine_arguments,
    add_head_argument,
    add_transport_arguments,
    build_engine,
    build_outputs,
    non_negative_float,
    non_negative_int,
    port,
    positive_float,
    positive_int,
)

if TYPE_CHECKING:
    from bridge.runtime.live import LiveStats
    from bridge.transports.base import Sender

EPILOG = """\
sources:
  mic[:DEVICE]            microphone (needs the optional sounddevice package)
  stdin                   raw PCM on standard input, e.g. arecord -f S16_LE -r 16000 -c 1 -t raw |
  file:PATH               a sound file read in real time (--no-realtime: as fast as possible)
  zmq:ENDPOINT            PULL socket bound at ENDPOINT; each message raw PCM, an empty one ends
  zmq+connect:ENDPOINT    the same, connecting to a producer that binds
  udp:HOST:PORT           raw PCM datagrams, e.g. ffmpeg -re -i a.wav -f s16le -ar 16000 -ac 1
                          udp://127.0.0.1:PORT; an empty datagram (or --idle-timeout-s) ends
  Raw PCM is 16-bit little-endian mono at 16 kHz unless --sample-rate/--channels/--sample-format.

changing the emotion while running:
  keys 0-6 (angry 0, disgust 1, fear 2, happy 3, neutral 4, sad 5, surprise 6), q quits
    (when standard input is a terminal and not the audio source)
  --control-port PORT: UDP text commands on 127.0.0.1, e.g.
    echo "emotion happy:0.6" | nc -u -w0 127.0.0.1 PORT      (also: quit, {"emotion": "sad"})

latency: a frame leaves about (lookahead + hop) frames plus one network call after its audio;
  see docs/realtime.md for the trade-offs and measured figures. On a 2-core CPU the network's
  defaults give p99 about 305-330 ms; --hop-frames 4 --lookahead-frames 5
  --smooth-lookahead-frames 5 about 235-265 ms (float32). The procedural engine waits
  116 ms for its coarticulation; --procedural-lookahead-frames 0 --chunk-ms 10 brings frames
  out about 45 ms after their audio (no anticipation, a little less smoothing).

examples:
  emoface live --source mic --emotion happy --subject npc1 --livelink
  emoface live --source file:line.wav --engine procedural --osc 127.0.0.1:9000
  emoface live --source mic --engine procedural --procedural-lookahead-frames 0 --chunk-ms 10
  sox line.wav -t raw -r 16000 -e signed -b 16 -c 1 - | emoface live --source stdin
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``live`` subcommand."""
    p = subparsers.add_parser(
        "live",
        help="animate live audio (mic, stdin, file, ZeroMQ, UDP) and stream frames as they come",
        description="Read audio as it arrives, animate it with a bounded lookahead and send "
        "each frame as soon as it is final, over the same transports as 'emoface stream'. Ends "
        "when the source ends (or on Ctrl-C / q / a quit command).",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--source", required=True, help="where audio comes from (see below)")
    add_engine_arguments(p)
    p.add_argument("--subject", default=DEFAULT_SUBJECT, help="subject (NPC) name")
    add_head_argument(p)
    add_transport_arguments(p)
    pcm = p.add_argument_group("raw PCM input (stdin, zmq, udp; rate and channels also for mic)")
    pcm.add_argument("--sample-rate", type=positive_int, default=16000, help="Hz")
    pcm.add_argument("--channels", type=positive_int, default=1, help="interleaved channels")
    pcm.add_argument(
        "--sample-format", default="s16le", choices=("s16le", "s32le", "f32le"), help="encoding"
    )
    pcm.add_argument("--chunk-ms", type=positive_float, default=20.0, help="read size")
    pcm.add_argument(
        "--no-realtime",
        action="store_true",
        help="file source: read as fast as possible (no latency figures, no gaps)",
    )
    pcm.add_argument(
        "--idle-timeout-s",
        type=positive_float,
        default=None,
        help="udp source: end after this long without a datagram",
    )
    net = p.add_argument_group("streaming inference")
    net.add_argument(
        "--lookahead-frames",
        type=non_negative_int,
        default=None,
        help="network: future audio a frame waits for (default 7 = 117 ms)",
    )
    net.add_argument(
        "--procedural-lookahead-frames",
        type=_procedural_lookahead,
        default=None,
        help="procedural engine: future frames its coarticulation uses, 0-6 (default 6: "
        "116 ms latency; 0: 16 ms, mouth no longer anticipates the sound)",
    )
    net.add_argument(
        "--hop-frames", type=positive_int, default=6, help="frames made final per network call"
    )
    net.add_argument(
        "--context-frames", type=non_negative_int, default=120, help="past frames attended to"
    )
    net.add_argument(
        "--smooth-lookahead-frames",
        type=non_negative_int,
        default=None,
        help="Savitzky-Golay lookahead (default 7 = exact; fewer cut latency, smooth less)",
    )
    net.add_argument(
        "--context",
        default="cache",
        choices=("cache", "recompute"),
        help="reuse past keys/values (fast) or rerun the whole window (closer to whole-clip)",
    )
    net.add_argument(
        "--norm",
        default="auto",
        choices=("auto", "cumulative", "adaptive"),
        help="audio statistics: cumulative = all audio so far (files); adaptive = forgetting "
        "and silence-gated (open feeds); auto picks by source",
    )
    net.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument(
        "--raw", action="store_true", help="engine output only: no smoothing, blinks or gaze"
    )
    p.add_argument("--seed", type=int, default=None, help="seed for blinks and gaze")
    ctl = p.add_argument_group("control")
    ctl.add_argument(
        "--control-port",
        type=port,
        default=None,
        help="listen for UDP text commands ('emotion SPEC', 'quit') on 127.0.0.1:PORT",
    )
    ctl.add_argument("--no-keys", action="store_true", help="ignore the keyboard")
    out = p.add_argument_group("output")
    out.add_argument(
        "--json", action="store_true", help="print the summary as JSON on stdout (exit code kept)"
    )
    out.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no announcement, acknowledgements or status line",
    )
    ctl.add_argument(
        "--gap-timeout-ms",
        type=positive_float,
        default=200.0,
        help="a real-time source silent this long is a gap: silence fills it, the face relaxes",
    )
    ctl.add_argument(
        "--playout-ms",
        type=non_negative_float,
        default=None,
        help="send each frame this long after its audio was captured, at a steady 60 fps "
        "(0: as soon as computed, in bursts; default: the stream's latency plus a compute margin)",
    )
    ctl.add_argument(
        "--start-delay-s",
        type=non_negative_float,
        default=0.3,
        help="wait after opening sockets so subscribers can connect before audio is read",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Stream one live source until it ends."""
    from bridge.runtime.live import LiveConfig, run_live
    from emoface_core.engines.base import StreamConfig

    lookahead = args.lookahead_frames
    config = LiveConfig(
        source=args.source,
        subject=args.subject,
        emotion=args.emotion,
        seed=args.seed,
        raw=args.raw,
        sample_rate=args.sample_rate,
        channels=args.channels,
        sample_format=args.sample_format,
        chunk_ms=args.chunk_ms,
        realtime=not args.no_realtime,
        idle_timeout_s=args.idle_timeout_s,
        stream=StreamConfig(
            hop_frames=args.hop_frames,
            lookahead_frames=StreamConfig.lookahead_frames if lookahead is None else lookahead,
            context_frames=args.context_frames,
            context=args.context,
            smooth_lookahead_frames=args.smooth_lookahead_frames,
        ),
        norm=args.norm,
        gap_timeout_s=args.gap_timeout_ms / 1000.0,
        playout_s=None if args.playout_ms is None else args.playout_ms / 1000.0,
        start_delay_s=args.start_delay_s,
        control_port=args.control_port,
        keys=not args.no_keys,
        schema_interval_s=args.schema_interval_s,
        head=args.head,
    )
    _, outputs = build_outputs(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    engine = build_engine(
        args,
        procedural_lookahead_frames=args.procedural_lookahead_frames,
        default_precision="fast",
    )
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console = LiveConsole(quiet=args.quiet)
    try:
        result = run_live(
            config,
            engine,
            outputs,
            stop=stop.is_set,
            report=console.say,
            on_event=console.event,
            on_stats=console.watch,
        )
    finally:
        console.close()
        signal.signal(signal.SIGTERM, previous)
    _print_summary(result.stats, result.senders, result.interrupted)
    if args.json:
        print(json.dumps(summary_json(result.stats, result.senders, result.interrupted)))
    return 130 if result.interrupted else 0


class LiveConsole:
    """What a person watching ``emoface live`` sees on stderr while it runs.

    Acknowledges every key press and control command at once ("emotion now sad at 3.4 s"),
    says when frames are dropped or a gap is filled, and on a terminal keeps one status line
    refreshing in place (audio time, frames, latency, drops). ``quiet`` keeps only errors.
    """

    REFRESH_S = 0.5

    def __init__(self, *, quiet: bool = False, stream: Any = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) and not quiet
        self.t0 = time.monotonic()
        self._stats: LiveStats | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._status_shown = False

    def say(self, line: str) -> None:
        """A line of its own (the announcement, an acknowledgement)."""
        if self.quiet:
            return
        with self._lock:
            prefix = "\r\033[K" if self._status_shown else ""
            print(prefix + line, file=self.stream, flush=True)
            self._status_shown = False

    def event(self, kind: str, text: str) -> None:
        """``LiveRunner.on_event``: acknowledge at once."""
        at = f"at {time.monotonic() - self.t0:.1f} s"
        if kind == "emotion":
            self.say(f"emoface live: emotion now {text} {at}")
        elif kind == "refused":
            self.say(f"emoface live: refused {text} {at}")
        elif kind == "dropped":
            self.say(f"emoface live: {text} frame(s) dropped (playout backlog) {at}")
        elif kind == "gap":
            self.say(f"emoface live: gap in the feed, filled with silence {at}")

    def watch(self, stats: LiveStats) -> None:
        """``run_live``'s ``on_stats``: refresh a status line from ``stats`` on a terminal."""
        self._stats = stats
        if self.tty:
            self._thread = threading.Thread(target=self._refresh, daemon=True)
            self._thread.start()

    def status_line(self) -> str:
        """The one-line status (audio time, frames, latency, drops)."""
        stats = self._stats
        if stats is None:
            return ""
        try:
            latency = list(stats.latency_s)[-120:]
        except RuntimeError:  # the runner appended meanwhile: next refresh
            latency = []
        lat = f", latency {1e3 * max(latency):.0f} ms" if latency else ""
        return (
            f"live: {stats.n_samples / 16000:6.1f} s of audio, {stats.n_frames} frames{lat}, "
            f"{stats.n_dropped_frames} dropped, {stats.n_gaps} gap(s)"
        )

    def _refresh(self) -> None:
        while not self._stop.wait(self.REFRESH_S):
            line = self.status_line()
            with self._lock:
                print("\r\033[K" + line, end="", file=self.stream, flush=True)
                self._status_shown = True

    def close(self) -> None:
        """Stop refreshing and leave the terminal on a fresh line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        with self._lock:
            if self._status_shown:
                print("\r\033[K", end="", file=self.stream, flush=True)
                self._status_shown = False


def summary_json(stats: LiveStats, senders: list[Sender], interrupted: bool) -> dict[str, Any]:
    """The ``--json`` summary: what the stderr summary says, as numbers."""
    import numpy as np

    latency = list(stats.latency_s)
    busy = [t for t in stats.compute_s if t > 0.0005]
    return {
        "end": "interrupted" if interrupted else (stats.end_reason or "stopped"),
        "frames": stats.n_frames,
        "audio_s": stats.n_samples / 16000,
        "duration_s": stats.duration_s,
        "gaps": stats.n_gaps,
        "gap_s": stats.n_gap_samples / 16000,
        "emotion_changes": stats.n_emotion_changes,
        "bad_commands": stats.n_bad_commands,
        "late_frames": stats.n_late,
        "dropped_frames": stats.n_dropped_frames,
        "latency_ms": {
            "p50": 1e3 * stats.latency_percentile(50),
            "p99": 1e3 * stats.latency_percentile(99),
            "max": 1e3 * max(latency),
        }
        if latency
        else None,
        "compute_ms_p50": 1e3 * float(np.percentile(busy, 50)) if busy else None,
        "senders": [
            {
                "kind": sender.kind,
                "address": sender.address,
                "frames": sender.stats.n_frames,
                "dropped": sender.stats.n_dropped,
                "errors": sender.stats.n_errors,
            }
            for sender in senders
        ],
    }


def _print_summary(stats: LiveStats, senders: list[Sender], interrupted: bool) -> None:
    import numpy as np

    head = "interrupted after" if interrupted else f"{stats.end_reason or 'stopped'}:"
    line = (
        f"emoface live: {head} {stats.n_frames} frames from {stats.n_samples / 16000:.2f} s of "
        f"audio in {stats.duration_s:.2f} s; {stats.n_gaps} gap(s) "
        f"({stats.n_gap_samples / 16000:.2f} s filled), {stats.n_emotion_changes} emotion "
        f"change(s), {stats.n_bad_commands} bad command(s)"
    )
    print(line, file=sys.stderr)
    if stats.latency_s:
        print(
            f"  latency audio->sent: p50 {1e3 * stats.latency_percentile(50):.0f} ms, "
            f"p99 {1e3 * stats.latency_percentile(99):.0f} ms, "
            f"max {1e3 * max(stats.latency_s):.0f} ms; {stats.n_late} frame(s) late",
            file=sys.stderr,
        )
    busy = [t for t in stats.compute_s if t > 0.0005]
    if busy:
        print(
            f"  compute per call: p50 {1e3 * np.percentile(busy, 50):.1f} ms, "
            f"p99 {1e3 * np.percentile(busy, 99):.1f} ms",
            file=sys.stderr,
        )
    for sender in senders:
        s = sender.stats
        print(
            f"  {sender.kind} {sender.address}: {s.n_frames} frames, {s.n_dropped} dropped, "
            f"{s.n_errors} errors",
            file=sys.stderr,
        )


def _procedural_lookahead(text: str) -> int:
    from emoface_core.engines.procedural.articulation import LOOKAHEAD_FRAMES

    value = int(text)
    if not 0 <= value <= LOOKAHEAD_FRAMES:
        raise argparse.ArgumentTypeError(f"must be between 0 and {LOOKAHEAD_FRAMES}, got {value}")
    return value
