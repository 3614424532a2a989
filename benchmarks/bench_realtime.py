"""Real-time streaming: latency, compute per chunk, concurrent streams, fast mode, window sizes.

The full-size network (wav2vec2-base + 10-layer Audio2Rig, random weights saved in the authors'
release layout and loaded like a released checkpoint, so it runs in the release's per-frame
decoder mode) streams the example speech clips (``examples/audio``, about 14.5 s) in 20 ms
chunks, as a microphone or network feed delivers them.

Tables:

1. **Window trade-offs** (full-size, exact and fast precision; fast = the CPU's native
   low-precision path, bf16 on AMX/AVX512-BF16, named in the header): per configuration (hop,
   lookahead, context mode) the algorithmic latency (simulated with 1 ms chunks and instant
   compute: the wait from a frame's first audio sample until the frame is final, max over
   frames), the compute time of the 20 ms calls that run the network (p50/p99), the real-time
   factor of one stream (compute / audio), and the deviation from whole-clip inference (mean
   absolute difference of the streamed frames, raw and post-processed, without and with the
   clip length known in advance; the whole-clip output's own standard deviation is printed for
   scale).
2. **End to end** (real time): a ``FileSource`` paced like a live recording -> ``LiveRunner`` ->
   ``SubjectStream`` -> ZeroMQ PUB on loopback. Latency = time the frame left the bridge minus
   the capture time of the frame's first audio sample, p50/p99/max; as computed (bursts) and
   with the default playout delay (steady 60 fps). Network and procedural engine; the
   procedural engine also with its low-latency setting (``lookahead_frames=0``) in 20 and
   10 ms chunks. With playout the GIL switch interval is 1 ms, as ``emoface live`` sets it.
3. **Concurrent streams**: N streams fed round-robin in one process, as fast as possible;
   sustained real-time factor = wall time / audio duration (<= 1: all N keep up).

Timing figures are min and median over ``--repeats`` runs: this machine is shared, so the
minimum is the better estimate of a quiet machine and the median shows the noise.

Usage: python benchmarks/bench_realtime.py [--repeats 3] [--threads 2] [--quick]
                                           [--sections tradeoff e2e concurrent]
                                           [--procedural-only]

``--procedural-only`` skips the network (no full-size model is built): only the procedural rows
of the end-to-end table run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import describe  # noqa: E402

from emoface_core.audio import FPS, SAMPLE_RATE, Audio, load_audio  # noqa: E402
from emoface_core.emotion import parse_emotion_spec  # noqa: E402

CHUNK = SAMPLE_RATE // 50  # 20 ms
CLIPS = sorted((REPO / "examples" / "audio").glob("*.wav"))
TIMELINE = parse_emotion_spec("neutral@0,happy@4,sad@9")


def speech(max_s: float | None = None) -> np.ndarray:
    """The example clips back to back (real speech from espeak-ng), optionally cut."""
    x = np.concatenate([load_audio(p).samples for p in CLIPS])
    return x[: int(max_s * SAMPLE_RATE)] if max_s else x


def full_size_engine():
    """The full-size network with random weights, loaded the way a released checkpoint is."""
    import torch
    from transformers import Wav2Vec2Config

    from emoface_core.engines.neural.engine import NeuralEngine
    from emoface_core.testing.release_reference import ReleaseEmoFace, release_state_dict

    torch.manual_seed(0)
    ref = ReleaseEmoFace(Wav2Vec2Config()).eval()
    torch.nn.init.normal_(ref.out_fn.weight, std=0.1 / 512**0.5)  # outputs of ~0.1, like rigs
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "full_size_random_model.pth"
        torch.save(release_state_dict(ref), path)
        del ref
        engine = NeuralEngine.from_checkpoint(path, device="cpu", precision="exact")
    assert engine.model.per_frame
    return engine


def fast_engine(engine, mode: str = "fast"):
    """``precision="fast"`` (a converted copy), or the int8 copy for ``mode="int8"``."""
    from emoface_core.engines.neural.engine import NeuralEngine
    from emoface_core.engines.neural.fastmode import fast_model

    if mode == "int8":
        return NeuralEngine(fast_model(engine.model, "int8"), precision="fp32")
    return NeuralEngine(engine.model, precision="fast")


def release_geometry_tiny_engine():
    """A tiny network with wav2vec2-base's conv geometry: same timing, instant compute."""
    import torch

    from emoface_core.engines.neural.config import ModelConfig
    from emoface_core.engines.neural.engine import NeuralEngine
    from emoface_core.engines.neural.model import EmoFaceModel

    torch.manual_seed(0)
    w2v = dict(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=32,
        conv_dim=[8] * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    )
    model = EmoFaceModel(
        ModelConfig(
            d_model=32, n_heads=1, n_layers=1, ff_dim=32, decoder_mode="per_frame", wav2vec2=w2v
        )
    )
    return NeuralEngine(model.eval(), precision="fp32")


def stream_timed(streamer, samples: np.ndarray, *, raw: bool, hint: bool, seed: int = 0):
    """Stream ``samples`` in 20 ms chunks; return frames and the seconds of each call."""
    stream = streamer.open(
        TIMELINE, raw=raw, seed=seed, expected_samples=samples.size if hint else None
    )
    frames, times = [], []
    for i in range(0, samples.size, CHUNK):
        t0 = time.perf_counter()
        frames.append(stream.process(samples[i : i + CHUNK]))
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    frames.append(stream.finish())
    times.append(time.perf_counter() - t0)
    return np.concatenate(frames), np.array(times)


def algorithmic_latency_ms(config, engine=None) -> tuple[float, float]:
    """Wait from a frame's first sample until the frame is final, with 1 ms chunks and a
    network of the same geometry that computes instantly: (max after the first second, the
    first frame's wait at the start of a stream)."""
    from emoface_core.streaming import Streamer

    engine = engine or release_geometry_tiny_engine()
    stream = Streamer(engine, config).open("neutral", seed=0)
    x = speech(4.0)
    waits = []
    step = SAMPLE_RATE // 1000
    for i in range(0, x.size, step):
        before = stream.n_frames_out
        out = stream.process(x[i : i + step])
        received = i + min(step, x.size - i)
        for f in range(before, before + len(out)):
            waits.append(received - f * SAMPLE_RATE / FPS)
    waits = np.array(waits) / SAMPLE_RATE * 1000
    return float(waits[FPS:].max()), float(waits[0])


def fmt_ms(values: list[float]) -> str:
    return f"{1e3 * min(values):6.1f} / {1e3 * statistics.median(values):6.1f}"


def configs() -> dict:
    from emoface_core.streaming import StreamConfig

    return {
        "hop 6, look 7": StreamConfig(hop_frames=6, lookahead_frames=7),
        "hop 3, look 7": StreamConfig(hop_frames=3, lookahead_frames=7),
        "hop 4, look 5, smooth 5": StreamConfig(
            hop_frames=4, lookahead_frames=5, smooth_lookahead_frames=5
        ),
        "hop 6, look 5, smooth 5": StreamConfig(
            hop_frames=6, lookahead_frames=5, smooth_lookahead_frames=5
        ),
        "hop 3, look 2, smooth 2": StreamConfig(
            hop_frames=3, lookahead_frames=2, smooth_lookahead_frames=2
        ),
        "hop 12, look 7": StreamConfig(hop_frames=12, lookahead_frames=7),
        "hop 6, look 12": StreamConfig(hop_frames=6, lookahead_frames=12),
        "hop 6, look 7, recompute": StreamConfig(
            hop_frames=6, lookahead_frames=7, context="recompute"
        ),
    }


def section_tradeoff(args: argparse.Namespace, engines: dict) -> None:
    from emoface_core.animate import animate_audio
    from emoface_core.streaming import Streamer

    x = speech(8.0 if args.quick else None)
    audio = Audio(x)
    table = list(configs().items())
    if args.quick:
        table = table[:2]
    print(
        f"\n1. Window trade-offs: full-size network, {x.size / SAMPLE_RATE:.1f} s of speech in "
        f"20 ms chunks, context 2 s; timings min / median of {args.repeats} runs"
    )
    for name, engine in engines.items():
        whole_raw = engine.infer(audio, TIMELINE)
        whole = animate_audio(engine, audio, TIMELINE, seed=0).values
        print(f"\n  [{name}] whole-clip output std {whole_raw.std():.3f}")
        print(
            f"  {'config':<26} {'algo ms':>11} {'call p50 ms':>15} {'call p99 ms':>15} "
            f"{'RTF':>13} {'MAE raw':>8} {'MAE post':>9} {'+len raw':>9} {'+len post':>10}"
        )
        for label, config in table:
            algo_max, algo_first = algorithmic_latency_ms(config)
            streamer = Streamer(engine, config)
            stream_timed(streamer, x[: 2 * SAMPLE_RATE], raw=False, hint=False)  # warm-up
            p50s, p99s, rtfs = [], [], []
            for _ in range(args.repeats):
                _, times = stream_timed(streamer, x, raw=False, hint=False)
                busy = times[times > 0.002]  # calls that ran the network
                p50s.append(float(np.percentile(busy, 50)))
                p99s.append(float(np.percentile(busy, 99)))
                rtfs.append(times.sum() / (x.size / SAMPLE_RATE))
            maes = []
            for hint in (False, True):
                raw, _ = stream_timed(streamer, x, raw=True, hint=hint)
                post, _ = stream_timed(streamer, x, raw=False, hint=hint)
                maes += [np.abs(raw - whole_raw).mean(), np.abs(post - whole).mean()]
            print(
                f"  {label:<26} {algo_max:5.0f} ({algo_first:3.0f}) "
                f"{fmt_ms(p50s):>15} {fmt_ms(p99s):>15} "
                f"{min(rtfs):5.2f} / {statistics.median(rtfs):5.2f} "
                f"{maes[0]:8.4f} {maes[1]:9.4f} {maes[2]:9.4f} {maes[3]:10.4f}",
                flush=True,
            )


def section_fast(args: argparse.Namespace, engine, fast) -> None:
    from emoface_core.streaming import Streamer

    x = speech(8.0 if args.quick else None)
    audio = Audio(x)
    y32 = engine.infer(audio, TIMELINE)
    y8 = fast.infer(audio, TIMELINE)
    s32, _ = stream_timed(Streamer(engine), x, raw=True, hint=False)
    s8, _ = stream_timed(Streamer(fast), x, raw=True, hint=False)
    print(f"\n2. Fast precision ({fast.precision_note}), deviation from exact:")
    print(
        f"  whole clip: MAE {np.abs(y8 - y32).mean():.4f}, max {np.abs(y8 - y32).max():.4f} "
        f"(output std {y32.std():.3f}); streamed: MAE {np.abs(s8 - s32).mean():.4f}, max "
        f"{np.abs(s8 - s32).max():.4f}; streamed fast vs whole-clip fast: MAE "
        f"{np.abs(s8 - y8).mean():.4f} (exact: {np.abs(s32 - y32).mean():.4f})"
    )


def section_e2e(args: argparse.Namespace, engines: dict) -> None:
    import soundfile as sf

    from bridge.mapping import load_mapping
    from bridge.runtime.live import PLAYOUT_SWITCH_INTERVAL_S, LiveRunner
    from bridge.runtime.subject import Output, SubjectStream
    from bridge.sources import FileSource
    from bridge.transports.zmq import ZmqSender
    from emoface_core.engines.procedural.engine import ProceduralEngine
    from emoface_core.streaming import StreamConfig, Streamer

    duration_s = 6.0 if args.quick else args.e2e_seconds
    table = configs()
    runs = [
        (name, engine, label, table[label], 20)
        for name, engine in engines.items()
        for label in (
            "hop 6, look 7",
            "hop 6, look 5, smooth 5",
            "hop 4, look 5, smooth 5",
            "hop 3, look 2, smooth 2",
        )
    ]
    if args.quick:
        runs = runs[:1]
    for lookahead, chunk_ms in ((6, 20), (0, 20), (0, 10)):
        engine = ProceduralEngine(lookahead_frames=lookahead)
        label = f"lookahead {lookahead} ({engine.latency_ms:.0f} ms)"
        runs.append(("procedural", engine, label, StreamConfig(), chunk_ms))
    mapping = load_mapping("metahuman_faceboard")
    print(
        f"\n3. End to end, real time: {duration_s:.0f} s file paced like a live feed "
        "-> stream -> SubjectStream -> ZeroMQ PUB (loopback); latency = frame sent minus "
        "capture of its first audio sample; min / median of the runs"
    )
    print(
        f"  {'engine':<11} {'config':<24} {'chunk':>5} {'mode':<15} {'p50 ms':>15} "
        f"{'p99 ms':>15} {'max ms':>7} {'late':>5}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        sf.write(str(wav), speech(duration_s), SAMPLE_RATE)
        for name, engine, label, config, chunk_ms in runs:
            streamer = Streamer(engine, config)
            warm = streamer.open("neutral")
            warm.process(np.zeros(SAMPLE_RATE, np.float32))
            for mode in ("as computed", "playout"):
                p50, p99, worst, late = [], [], [], []
                for _ in range(args.repeats):
                    with ZmqSender("tcp://127.0.0.1:*", sndhwm=1000) as sender:
                        subject = SubjectStream("npc", [Output(sender, mapping)])
                        stream = streamer.open(TIMELINE, seed=0)
                        delay = None
                        if mode == "playout":
                            margin = 0.06 if streamer.engine.name == "emoface" else 0.01
                            delay = stream.algorithmic_latency_s(chunk_ms / 1000) + margin

                        def sink(frames, first, subject=subject) -> None:
                            for i, frame in enumerate(frames):
                                subject.push(frame, (first + i) / FPS)

                        default_switch_s = sys.getswitchinterval()
                        if delay is not None:
                            sys.setswitchinterval(PLAYOUT_SWITCH_INTERVAL_S)
                        try:
                            with FileSource(wav, chunk_ms=chunk_ms) as source:
                                runner = LiveRunner(source, stream, sink, playout_delay_s=delay)
                                stats = runner.run()
                        finally:
                            sys.setswitchinterval(default_switch_s)
                        subject.end_line()
                    lat = np.array(stats.latency_s)
                    p50.append(np.percentile(lat, 50))
                    p99.append(np.percentile(lat, 99))
                    worst.append(lat.max())
                    late.append(stats.n_late)
                shown = mode if delay is None else f"playout {1e3 * delay:.0f}"
                print(
                    f"  {name:<11} {label:<24} {chunk_ms:3d}ms {shown:<15} {fmt_ms(p50):>15} "
                    f"{fmt_ms(p99):>15} {1e3 * min(worst):7.0f} {int(min(late)):5d}",
                    flush=True,
                )


def section_concurrent(args: argparse.Namespace, engines: dict) -> None:
    from emoface_core.streaming import Streamer, process_many

    x = speech(6.0 if args.quick else 10.0)
    audio_s = x.size / SAMPLE_RATE
    print(
        f"\n4. Concurrent streams of one model, 20 ms chunks, {audio_s:.0f} s each, as fast as "
        "possible: sustained real-time factor (wall / audio; <= 1 keeps up), min / median; "
        "one by one (each stream its own network call) and batched (process_many)"
    )
    for name, engine in engines.items():
        for label, config in (
            ("hop 6, look 7", configs()["hop 6, look 7"]),
            ("hop 12, look 7", configs()["hop 12, look 7"]),
        ):
            streamer = Streamer(engine, config)
            single_fits = 0
            for mode in ("one by one", "batched"):
                fits = single_fits  # batched N=1 is the one-by-one N=1 run
                for n in (1, 2, 3, 4, 6, 8) if not args.quick else (1, 2):
                    if mode == "batched" and n == 1:
                        continue
                    rtfs = []
                    for _ in range(args.repeats):
                        streams = [streamer.open(TIMELINE, seed=k) for k in range(n)]
                        t0 = time.perf_counter()
                        for i in range(0, x.size, CHUNK):
                            chunk = x[i : i + CHUNK]
                            if mode == "batched":
                                process_many([(s, chunk) for s in streams])
                            else:
                                for s in streams:
                                    s.process(chunk)
                        for s in streams:
                            s.finish()
                        rtfs.append((time.perf_counter() - t0) / audio_s)
                    best = min(rtfs)
                    fits = n if best <= 1.0 else fits
                    if n == 1:
                        single_fits = fits
                    print(
                        f"  {name:<10} {label:<15} {mode:<11} N={n}: RTF {best:5.2f} / "
                        f"{statistics.median(rtfs):5.2f}",
                        flush=True,
                    )
                    if best > 1.1:
                        break
                print(f"  {name:<10} {label:<15} {mode:<11} streams that keep up: {fits}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--quick", action="store_true", help="fewer configs, shorter audio")
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["tradeoff", "fast", "e2e", "concurrent"],
        choices=["tradeoff", "fast", "e2e", "concurrent"],
    )
    parser.add_argument("--no-fast", action="store_true", help="skip the fast-precision rows")
    parser.add_argument("--int8", action="store_true", help="add int8 rows (off the bound)")
    parser.add_argument("--e2e-seconds", type=float, default=14.0, help="audio per e2e run")
    parser.add_argument(
        "--procedural-only",
        action="store_true",
        help="no network: only the procedural rows of the end-to-end table",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(describe())
    print(f"bench_realtime: {args.threads} threads, load average {os.getloadavg()[0]:.2f} at start")
    if args.procedural_only:
        section_e2e(args, {})
        print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
        return
    engine = full_size_engine()
    engines = {"full exact": engine}
    if not args.no_fast:
        engines["full fast"] = fast_engine(engine)
        print(f"fast precision here: {engines['full fast'].precision_note}")
    if args.int8:
        engines["full int8"] = fast_engine(engine, "int8")
    if "tradeoff" in args.sections:
        section_tradeoff(args, engines)
    if "fast" in args.sections and not args.no_fast:
        section_fast(args, engine, engines["full fast"])
    if "e2e" in args.sections:
        section_e2e(args, engines)
    if "concurrent" in args.sections:
        section_concurrent(args, engines)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
