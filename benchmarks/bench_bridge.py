"""Bridge benchmark: per-frame cost, loopback latency and pacing drift.

    python benchmarks/bench_bridge.py            # full run (about a minute)
    python benchmarks/bench_bridge.py --quick    # smaller counts, for CI smoke runs

Prints three tables:

1. Per-frame cost of mapping + encoding + sending (``SubjectStream.push``) per transport, and
   of each stage alone, with a real subscriber/listener in another process (face-board mapping;
   Live Link uses arkit52, as it always does). Target: ZeroMQ under 20 us per frame. The sender
   (and ZeroMQ's I/O thread) is pinned to CPU 0 and the receiver process to the last CPU, so
   "frames/s" is what one core sustains.
2. End-to-end loopback latency at 60 fps: from just before ``push`` in this process to the frame
   decoded by a ``MockReceiver`` in a separate process (p50/p99), per transport.
3. Pacing drift over a 10-minute ``--loop`` stream: simulated with a fake clock whose sleeps
   overshoot by delays sampled from this machine's real ``time.sleep`` and whose frames cost the
   measured push time (36,000 frames, seconds of CPU), plus a real-clock run of ``--real-s``
   seconds whose lateness trend is extrapolated to 10 minutes. Target: under one frame (16.7 ms).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bridge.mapping import load_mapping  # noqa: E402
from bridge.protocol import Frame, FrameEncoder, decode  # noqa: E402
from bridge.runtime.clips import ClipPlayer  # noqa: E402
from bridge.runtime.clock import FrameClock  # noqa: E402
from bridge.runtime.subject import Output, SubjectStream  # noqa: E402
from bridge.transports.livelink import LiveLinkEncoder, LiveLinkSender  # noqa: E402
from bridge.transports.osc import FrameTemplate, OscSender  # noqa: E402
from bridge.transports.zmq import ZmqSender  # noqa: E402
from emoface_core.testing.clocks import FakeClock  # noqa: E402

FPS = 60
TEN_MINUTES_FRAMES = 10 * 60 * FPS


def _clip(n: int) -> np.ndarray:
    """A plausible animation: smooth random motion in each channel's range."""
    t = np.arange(n)[:, None] / FPS
    rng = np.random.default_rng(0)
    phase, freq = rng.uniform(0, 6.3, 174), rng.uniform(0.2, 3.0, 174)
    return (0.5 + 0.5 * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def _free_port(kind: int) -> int:
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _pctl(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


class _Peer:
    """A MockReceiver in a child process (``--_receiver`` mode of this script)."""

    def __init__(self, transport: str, address: str, n_frames: int, timeout_s: float) -> None:
        self.out = Path(tempfile.mkstemp(suffix=".json")[1])
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--_receiver", transport, address, str(n_frames),
             str(timeout_s), str(self.out)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{transport} receiver did not start")

    def result(self) -> dict:
        self.proc.wait(timeout=120)
        data = json.loads(self.out.read_text())
        self.out.unlink()
        return data


def _receiver_main(transport: str, address: str, n_frames: int, timeout_s: float, out: str) -> None:
    from bridge.receiver import MockReceiver

    _pin(os.cpu_count() - 1)  # the sender has CPU 0

    with MockReceiver(transport, address) as rx:
        print("ready", flush=True)
        rx.wait_for(n_frames, timeout_s)
        frames = [(f.seq, f.t_received) for f in rx.frames]
        stats = rx.stats.as_dict()
    Path(out).write_text(json.dumps({"frames": frames, "stats": stats}))


def _pin(cpu: int) -> None:
    """Keep this process (and threads it starts later, e.g. ZeroMQ's) on one CPU, if allowed."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})


def _senders(zmq_endpoint: str, osc_port: int, ll_port: int) -> dict:
    return {
        "zmq": ZmqSender(zmq_endpoint),
        "osc named": OscSender("127.0.0.1", osc_port, mode="named"),
        "osc array": OscSender("127.0.0.1", osc_port, mode="array"),
        "livelink": LiveLinkSender("127.0.0.1", ll_port),
    }


def bench_cost(n_frames: int) -> list[tuple[str, float, float, float]]:
    """Rows (what, mean_us, p50_us, p95_us) of per-frame costs."""
    faceboard, arkit = load_mapping("metahuman_faceboard"), load_mapping("arkit52")
    clip = _clip(n_frames)
    rows = []

    def timed(label: str, fn, n: int = n_frames) -> None:
        for i in range(min(500, n)):  # warm-up
            fn(i)
        batch_means = []  # best of three batches: other processes on a shared box only add
        for b in range(3):
            start = time.perf_counter()
            for i in range(b * n // 3, (b + 1) * n // 3):  # no per-call timer overhead
                fn(i)
            batch_means.append((time.perf_counter() - start) / (n // 3) * 1e6)
        mean_us = min(batch_means)
        samples = []
        for i in range(n):
            t = time.perf_counter_ns()
            fn(i)
            samples.append((time.perf_counter_ns() - t) / 1000)
        rows.append((label, mean_us, _pctl(samples, 50), _pctl(samples, 95)))

    out_fb = np.zeros(faceboard.n_targets, np.float32)
    out_ak = np.zeros(arkit.n_targets, np.float32)
    timed("map metahuman_faceboard (171)", lambda i: faceboard.compiled.apply_into(clip[i], out_fb))
    curves = load_mapping("metahuman_curves")
    out_cv = np.zeros(curves.n_targets, np.float32)
    timed("map metahuman_curves (240)", lambda i: curves.compiled.apply_into(clip[i], out_cv))
    timed("map arkit52 (52)", lambda i: arkit.compiled.apply_into(clip[i], out_ak))
    schema = faceboard.schema("npc", FPS)
    encoder = FrameEncoder("npc", schema.schema_id, FPS)
    timed(
        "encode protocol frame (zmq)",
        lambda i: encoder.encode_packed(
            i, i / FPS, out_fb.astype("<f4", copy=False).tobytes(), line_id=1, t_capture=time.time()
        ),
    )
    template = FrameTemplate.build(schema, "named")
    frame = Frame("npc", 0, 0.0, FPS, out_fb, schema.schema_id, 1, 0.0)
    timed("encode OSC bundle (named)", lambda i: template.fill(frame))
    ll = LiveLinkEncoder("npc")
    ll_values = np.zeros(61, np.float32)
    timed("encode Live Link packet", lambda i: ll.encode(i, ll_values))
    payload = encoder.encode_packed(1, 0.0, out_fb.tobytes())
    timed("decode protocol frame (receiver)", lambda i: decode(payload))

    zmq_endpoint = f"tcp://127.0.0.1:{_free_port(socket.SOCK_STREAM)}"
    osc_port, ll_port = _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_DGRAM)
    for name, sender in _senders(zmq_endpoint, osc_port, ll_port).items():
        with sender:
            peer = None
            if name == "zmq":  # a subscriber in another process, so PUB really queues/sends
                peer = _Peer("zmq", sender.address, n_frames, 30.0)
                time.sleep(0.5)
            mapping = arkit if name == "livelink" else faceboard
            stream = SubjectStream("npc", [Output(sender, mapping)])
            stream.start_line()
            timed(f"push: map+encode+send {name}", lambda i, s=stream: s.push(clip[i]))
            if peer is not None:
                peer.proc.kill()
                peer.proc.wait()
    return rows


def bench_latency(n_frames: int) -> list[tuple[str, float, float, float, int, int]]:
    """Rows (transport, p50_ms, p99_ms, max_ms, received, sent) at real-time 60 fps."""
    faceboard, arkit = load_mapping("metahuman_faceboard"), load_mapping("arkit52")
    clip = _clip(n_frames)
    rows = []
    zmq_endpoint = f"tcp://127.0.0.1:{_free_port(socket.SOCK_STREAM)}"
    osc_port, ll_port = _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_DGRAM)
    for name, sender in _senders(zmq_endpoint, osc_port, ll_port).items():
        transport = name.split()[0]
        address = {"zmq": zmq_endpoint, "osc": f"127.0.0.1:{osc_port}",
                   "livelink": f"127.0.0.1:{ll_port}"}[transport]  # fmt: skip
        with sender:
            peer = _Peer(transport, address, n_frames, n_frames / FPS + 10)
            time.sleep(0.5)  # subscriber connected / socket bound
            mapping = arkit if transport == "livelink" else faceboard
            stream = SubjectStream("npc", [Output(sender, mapping)])
            stream.start_line()
            clock = FrameClock(FPS)
            clock.start()
            sent_at = {}
            for i in range(n_frames):
                clock.wait(i)
                sent_at[stream.seq] = time.time()
                stream.push(clip[i])
            stream.end_line()
            data = peer.result()
        latencies = [1e3 * (t - sent_at[seq]) for seq, t in data["frames"] if seq in sent_at]
        rows.append((name, _pctl(latencies, 50), _pctl(latencies, 99), max(latencies),
                     len(latencies), n_frames))  # fmt: skip
    return rows


def _sleep_overshoots(n: int) -> list[float]:
    """How late time.sleep wakes on this machine, for sleeps of a few milliseconds."""
    out = []
    rng = random.Random(1)
    for _ in range(n):
        want = rng.uniform(0.002, 0.014)
        t = time.perf_counter()
        time.sleep(want)
        out.append(time.perf_counter() - t - want)
    return out


class _RecordingClock(FrameClock):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lates: list[float] = []

    def wait(self, index: int) -> float:
        late = super().wait(index)
        self.lates.append(late)
        return late


def bench_drift(real_s: float, push_cost_s: float) -> list[tuple[str, str]]:
    """Rows (measurement, value) for pacing drift."""
    rows = []
    overshoots = _sleep_overshoots(300)
    rows.append(("time.sleep overshoot here: p50 / p99 / max",
                 f"{1e3 * _pctl(overshoots, 50):.3f} / {1e3 * _pctl(overshoots, 99):.3f} / "
                 f"{1e3 * max(overshoots):.3f} ms"))  # fmt: skip
    faceboard = load_mapping("metahuman_faceboard")
    clip = _clip(202)  # a 3.4 s line, looped
    loops = -(-TEN_MINUTES_FRAMES // len(clip))
    rng = random.Random(2)
    fake = FakeClock(oversleep_s=lambda _: rng.choice(overshoots))
    clock = _RecordingClock(FPS, clock=fake, sleep=fake.sleep)

    class _CostlySender(ZmqSender):
        def _send_frame(self, frame):
            fake.advance(push_cost_s)  # each frame costs what push costs for real
            return super()._send_frame(frame)

    with _CostlySender(f"tcp://127.0.0.1:{_free_port(socket.SOCK_STREAM)}") as sender:
        stream = SubjectStream("npc", [Output(sender, faceboard)], clock=fake)
        stats = ClipPlayer([(stream, clip)], loops=loops, frame_clock=clock).run()
    n = len(clock.lates)
    last_due = clock.anchor_s + (n - 1) / FPS
    rows.append((f"simulated 10 min --loop ({n} frames, fake clock)",
                 f"final drift {1e3 * (clock.lates[-1]):.3f} ms, max lateness "
                 f"{1e3 * stats.pacing.max_late_s:.3f} ms, late {stats.pacing.n_late}, "
                 f"skipped {stats.n_skipped}"))  # fmt: skip
    assert abs(fake.now_s - push_cost_s - last_due - clock.lates[-1]) < 1e-6

    n_real = int(real_s * FPS)
    clock = _RecordingClock(FPS)
    with ZmqSender(f"tcp://127.0.0.1:{_free_port(socket.SOCK_STREAM)}") as sender:
        stream = SubjectStream("npc", [Output(sender, faceboard)])
        stats = ClipPlayer([(stream, clip)], loops=-(-n_real // len(clip)), frame_clock=clock).run()
    lates = np.array(clock.lates)
    idx = np.arange(len(lates))
    slope_s_per_frame = float(np.polyfit(idx, lates, 1)[0])
    rows.append((f"real clock, {len(lates) / FPS:.0f} s --loop ({len(lates)} frames)",
                 f"lateness p50 {1e3 * np.median(lates):.3f} ms, p99 "
                 f"{1e3 * np.percentile(lates, 99):.3f} ms, max {1e3 * lates.max():.3f} ms, "
                 f"last {1e3 * lates[-1]:.3f} ms, late {stats.pacing.n_late}, "
                 f"skipped {stats.n_skipped}"))  # fmt: skip
    rows.append(("real-clock lateness trend, extrapolated to 10 min",
                 f"{1e3 * slope_s_per_frame * TEN_MINUTES_FRAMES:+.3f} ms "
                 f"(slope {1e9 * slope_s_per_frame:+.2f} ns/frame)"))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (CI smoke run)")
    parser.add_argument("--frames", type=int, default=20_000, help="frames per cost measurement")
    parser.add_argument("--latency-frames", type=int, default=600, help="frames per transport")
    parser.add_argument("--real-s", type=float, default=30.0, help="real-clock drift run, seconds")
    parser.add_argument(
        "--sections", default="cost,latency,drift", help="comma-separated: cost, latency, drift"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin sender to CPU 0 and receiver to the last"
    )
    args = parser.parse_args()
    if args.quick:
        args.frames, args.latency_frames, args.real_s = 2_000, 120, 3.0
    if not args.no_pin:
        _pin(0)  # before zmq starts its I/O thread, so it shares the sender's one core
    import zmq

    print(f"# bridge benchmark: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}, "
          f"libzmq {zmq.zmq_version()}\n")  # fmt: skip

    sections = set(args.sections.split(","))
    push_cost_us = 15.0  # used by the drift simulation when the cost section is skipped
    if "cost" in sections:
        cost = bench_cost(args.frames)
        print(f"## Per-frame cost ({args.frames} frames each after warm-up), microseconds")
        print("   mean: best of 3 batches; p50/p95: per call")
        print(f"{'stage':<40} {'mean':>8} {'p50':>8} {'p95':>8} {'frames/s':>10}")
        for label, mean, p50, p95 in cost:
            print(f"{label:<40} {mean:>8.2f} {p50:>8.2f} {p95:>8.2f} {1e6 / mean:>10.0f}")
        push_cost_us = next(r for r in cost if r[0].endswith("send zmq"))[1]
        verdict = "meets" if push_cost_us < 20 else "MISSES"
        print(
            f"ZeroMQ + face board: {push_cost_us:.1f} us/frame mean ({verdict} the 20 us target)\n"
        )
    if "latency" in sections:
        _print_latency(bench_latency(args.latency_frames), args.latency_frames)
    if "drift" in sections:
        print("## Pacing drift (target: under one frame, 16.7 ms, after 10 minutes)")
        for label, value in bench_drift(args.real_s, push_cost_us * 1e-6):
            print(f"{label:<52} {value}")


def _print_latency(latency: list, n_frames: int) -> None:
    print(f"## Loopback end-to-end latency at 60 fps ({n_frames} frames each), ms")
    print("   push start in this process -> decoded by a MockReceiver in another process")
    print(f"{'transport':<12} {'p50':>8} {'p99':>8} {'max':>8} {'received':>12}")
    for name, p50, p99, worst, got, sent in latency:
        print(f"{name:<12} {p50:>8.3f} {p99:>8.3f} {worst:>8.3f} {got:>6}/{sent:<5}")
    print()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_receiver":
        _, _, transport, address, n, timeout_s, out = sys.argv
        _receiver_main(transport, address, int(n), float(timeout_s), out)
    else:
        main()
