"""Batch bake throughput: lines per minute and audio seconds per wall second, 1 and 2 workers.

Bakes the same set of lines (the example speech clips, repeated) with each engine and worker
count through ``bridge.bake.run.run_batch``, the code path of ``emoface bake DIR -o OUT``,
writing JSON outputs into a temporary folder (``force=True``, so nothing is skipped).

* ``procedural``: the default engine (no weights).
* ``emoface``: the full-size network (wav2vec2-base + 10-layer Audio2Rig) with random weights,
  saved in the authors' release layout, on the CPU.

Two throughputs per row: over the whole run (engine loading and worker start-up included, as a
user sees on a short batch) and in steady state (from the first finished line to the last, which
is what a batch of thousands of lines converges to). With 2 workers each worker runs torch on
``cores // 2`` threads; with 1 worker the engine runs in the calling process on all cores.

Usage: python benchmarks/bench_batch.py [--lines-procedural 120] [--lines-emoface 8]
                                        [--engines procedural emoface] [--jobs 1 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import describe  # noqa: E402

from bridge.bake.lines import BakeLine  # noqa: E402
from bridge.bake.render import BatchSettings  # noqa: E402
from bridge.bake.run import run_batch  # noqa: E402

CLIPS = sorted((REPO / "examples" / "audio").glob("*.wav"))


def full_size_checkpoint(folder: Path) -> Path:
    """A released-layout checkpoint of the full-size network with random weights."""
    import torch
    from transformers import Wav2Vec2Config

    from emoface_core.testing.release_reference import ReleaseEmoFace, release_state_dict

    torch.manual_seed(0)
    model = ReleaseEmoFace(Wav2Vec2Config()).eval()
    path = folder / "full_size_random_model.pth"
    torch.save(release_state_dict(model), path)
    return path


def lines_for(n: int) -> list[BakeLine]:
    emotions = ("angry", "happy", "sad@0,surprise@1.5", "neutral")
    return [
        BakeLine(CLIPS[i % len(CLIPS)], f"line{i:04d}", emotions[i % len(emotions)], seed=i)
        for i in range(n)
    ]


def bench(
    engine: str,
    checkpoint: Path | None,
    jobs: int,
    lines: list[BakeLine],
    precision: str = "exact",
) -> dict:
    finished: list[float] = []
    with tempfile.TemporaryDirectory(prefix="emoface-bench-batch-") as out:
        settings = BatchSettings(
            output_dir=Path(out),
            formats=("json",),
            engine=engine,
            checkpoint=str(checkpoint) if checkpoint else None,
            device="cpu",
            precision=precision,
        )
        start = time.perf_counter()
        report = run_batch(
            lines,
            settings,
            jobs=jobs,
            force=True,
            on_result=lambda r: finished.append(time.perf_counter()),
        )
        wall = time.perf_counter() - start
    if report.failed:
        raise SystemExit(f"{engine}: {report.failed[0].line.label}: {report.failed[0].reason}")
    audio_s = report.audio_s_done
    n = report.count("done")
    # Steady state: lines after the first one, over the time since the first one finished.
    steady_s = finished[-1] - finished[0] if len(finished) > 1 else float("nan")
    steady_audio = audio_s * (n - 1) / n if n > 1 else float("nan")
    return {
        "engine": engine if engine == "procedural" else f"{engine} ({precision})",
        "jobs": jobs,
        "lines": n,
        "audio_s": audio_s,
        "wall_s": wall,
        "first_s": finished[0] - start,
        "lines_per_min": 60.0 * n / wall,
        "rtf_inv": audio_s / wall,
        "steady_lines_per_min": 60.0 * (n - 1) / steady_s,
        "steady_rtf_inv": steady_audio / steady_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines-procedural", type=int, default=120, help="lines per run")
    parser.add_argument("--lines-emoface", type=int, default=8, help="lines per run")
    parser.add_argument(
        "--engines", nargs="+", default=["procedural", "emoface"], choices=("procedural", "emoface")
    )
    parser.add_argument("--jobs", nargs="+", type=int, default=[1, 2])
    parser.add_argument(
        "--precisions", nargs="+", default=["exact", "fast"], choices=("exact", "fast")
    )
    args = parser.parse_args()

    n_lines = {"procedural": args.lines_procedural, "emoface": args.lines_emoface}
    print(describe())
    print(f"# lines cycle through {len(CLIPS)} example clips (3.7-5.8 s); JSON output")
    rows = []
    with tempfile.TemporaryDirectory(prefix="emoface-bench-ckpt-") as tmp:
        checkpoint = full_size_checkpoint(Path(tmp)) if "emoface" in args.engines else None
        for engine in args.engines:
            for precision in args.precisions if engine == "emoface" else ["exact"]:
                for jobs in args.jobs:
                    lines = lines_for(n_lines[engine])
                    ckpt = checkpoint if engine == "emoface" else None
                    row = bench(engine, ckpt, jobs, lines, precision)
                    rows.append(row)
                    print(
                        f"  done: {row['engine']} x{jobs} in {row['wall_s']:.1f} s", file=sys.stderr
                    )

    print()
    print(
        "| engine | workers | lines | audio (s) | wall (s) | first line (s) | lines/min "
        "| audio s per wall s | steady lines/min | steady audio s per wall s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['engine']} | {r['jobs']} | {r['lines']} | {r['audio_s']:.1f} "
            f"| {r['wall_s']:.1f} | {r['first_s']:.1f} | {r['lines_per_min']:.1f} "
            f"| {r['rtf_inv']:.2f} | {r['steady_lines_per_min']:.1f} "
            f"| {r['steady_rtf_inv']:.2f} |"
        )


if __name__ == "__main__":
    main()
