"""Speed of the procedural engine on one CPU core: whole clips and live streaming.

    python benchmarks/bench_procedural.py [--seconds 60] [--repeats 5]

Pins the process to one core and BLAS/OpenMP to one thread, warms up, then prints the real-time
factor (compute time / audio time; target < 0.01) of ``infer`` on a long clip, and per-chunk
compute time (p50 / p95) and real-time factor when the same audio is streamed in chunks of
10, 20 and 100 ms. The audio is the example clips in ``examples/audio`` repeated to length.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
CHUNKS_MS = (10, 20, 100)


def _pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity here)"


def _speech(seconds: float) -> np.ndarray:
    from emoface_core.audio import SAMPLE_RATE, load_audio

    paths = sorted((REPO_ROOT / "examples" / "audio").glob("*.wav"))
    clips = [load_audio(p).samples for p in paths]
    if not clips:
        rng = np.random.default_rng(0)
        clips = [0.1 * rng.standard_normal(SAMPLE_RATE).astype(np.float32)]
    x = np.concatenate(clips)
    return np.resize(x, int(seconds * SAMPLE_RATE)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    from emoface_core.audio import SAMPLE_RATE, Audio
    from emoface_core.emotion import parse_emotion_spec
    from emoface_core.engines.procedural.engine import ProceduralEngine

    pinning = _pin_one_core()
    samples = _speech(args.seconds)
    audio = Audio(samples)
    timeline = parse_emotion_spec("happy@0,sad:0.6@20,angry@40")
    engine = ProceduralEngine(seed=0)
    engine.infer(Audio(samples[:SAMPLE_RATE]), timeline)  # warm-up

    print(
        f"procedural engine, {args.seconds:g} s of speech, {pinning}, "
        f"{audio.n_frames} frames at 60 fps"
    )
    print(f"algorithmic latency of a stream: {engine.latency_ms:.0f} ms past a frame's centre")
    print()
    header = f"{'mode':<22}{'RTF':>9}{'x real time':>13}{'p50 ms':>9}{'p95 ms':>9}"
    print(header)
    print("-" * len(header))

    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        engine.infer(audio, timeline)
        times.append(time.perf_counter() - t0)
    rtf = float(np.median(times)) / args.seconds
    print(f"{'infer (whole clip)':<22}{rtf:9.4f}{1 / rtf:13.0f}{'':>9}{'':>9}")

    for chunk_ms in CHUNKS_MS:
        step = SAMPLE_RATE * chunk_ms // 1000
        per_chunk = []
        t_all = time.perf_counter()
        state = engine.start_stream(timeline)
        for i in range(0, samples.size, step):
            t0 = time.perf_counter()
            _, state = engine.process(state, samples[i : i + step])
            per_chunk.append(time.perf_counter() - t0)
        engine.flush(state)
        total = time.perf_counter() - t_all
        p50, p95 = (1000 * float(np.percentile(per_chunk, q)) for q in (50, 95))
        label = f"stream, {chunk_ms} ms chunks"
        print(
            f"{label:<22}{total / args.seconds:9.4f}{args.seconds / total:13.0f}"
            f"{p50:9.3f}{p95:9.3f}"
        )
    print()
    print("target (issue 4): RTF < 0.01 on one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
