"""Real-time factor and peak memory of the full-size EmoFace network (random weights), this CPU.

Compares, in one process and on the same inputs:

* ``emoface``: ``emoface_core.engines.neural.inference.animate`` on a released-layout checkpoint
  loaded by
  ``load_model`` (per-frame decoder with folded attention, SDPA in wav2vec2, Linear weights
  prepacked for oneDNN: ``emoface_core.engines.neural.packed_linear``);
* ``emoface-fast``: ``precision="fast"``, the CPU's native low-precision path
  (``emoface_core.engines.neural.fastmode``: bf16 on AMX/AVX512-BF16, int8 on VNNI, else float32;
  the table says which), with its mean and max deviation from ``emoface``;
* ``emoface-plain``: the same without the prepacked weights (plain ``F.linear``);
* ``release``: the release network as the authors ran it in 2023 (``ReleaseEmoFace``, transformers
  eager attention, the only kind wav2vec2 had then), plain fp32 forward;
* ``release-sdpa``: the same network on today's transformers default (scaled-dot-product attention),
  the leanest plain forward.

Peak memory is sampled in a fresh subprocess per variant: the highest resident set while the clip
runs, minus the resident set just before it (so it is the inference's own footprint).

Usage: python benchmarks/bench_inference.py [--durations 2 10 60] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe

from emoface_core.audio import Audio, normalize
from emoface_core.emotion import EmotionTimeline
from emoface_core.engines.neural.checkpoint import load_model
from emoface_core.engines.neural.inference import animate
from emoface_core.engines.neural.packed_linear import packing_disabled
from emoface_core.testing.release_reference import ReleaseEmoFace, release_state_dict

EMOTION = 0  # angry


def build(checkpoint: Path, attn: str):
    """The three variants' callables ``f(samples_16k) -> [T, 174]`` from one checkpoint file."""
    from transformers import Wav2Vec2Config

    if attn in ("emoface", "emoface-plain", "emoface-fast"):
        model, _ = load_model(checkpoint, device="cpu")
        timeline = EmotionTimeline.constant(EMOTION)
        if attn == "emoface":
            return lambda x: animate(model, Audio(x), timeline)
        if attn == "emoface-fast":
            from emoface_core.engines.neural.fastmode import fast_model

            fast = fast_model(model, "auto", inplace=True)
            return lambda x: animate(fast, Audio(x), timeline)

        def plain(x: np.ndarray) -> np.ndarray:
            with packing_disabled():
                return animate(model, Audio(x), timeline)

        return plain
    config = Wav2Vec2Config(attn_implementation="eager" if attn == "release" else "sdpa")
    ref = ReleaseEmoFace(config).eval()
    state = torch.load(checkpoint, weights_only=True)
    ref.load_state_dict(
        {
            k.replace("weight_g", "parametrizations.weight.original0").replace(
                "weight_v", "parametrizations.weight.original1"
            ): v
            for k, v in state.items()
        }
    )

    def run(x: np.ndarray) -> np.ndarray:
        n_frames = Audio(x).n_frames
        with torch.inference_mode():
            return ref(torch.from_numpy(normalize(x))[None], n_frames, EMOTION)[0].numpy()

    return run


def speech_like(duration_s: float, seed: int = 0) -> np.ndarray:
    """Noise shaped by a syllable-rate envelope: enough structure to exercise every layer."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * 16_000)
    t = np.arange(n) / 16_000
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2
    voiced = np.sin(2 * np.pi * 140 * t) + 0.5 * np.sin(2 * np.pi * 280 * t)
    return (0.3 * envelope * (voiced + 0.3 * rng.standard_normal(n))).astype(np.float32)


def make_checkpoint(directory: Path) -> Path:
    """A full-size released-layout checkpoint with random weights (and a non-zero output layer)."""
    from transformers import Wav2Vec2Config

    torch.manual_seed(0)
    ref = ReleaseEmoFace(Wav2Vec2Config())
    torch.nn.init.normal_(ref.out_fn.weight, std=0.02)
    path = directory / "random_full_size_model.pth"
    torch.save(release_state_dict(ref), path)
    return path


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def child_peak_mb(checkpoint: Path, variant: str, duration_s: float) -> None:
    """Run in a fresh process: print the inference's own peak RSS (MB) as JSON.

    A thread samples the resident set every millisecond while the clip runs; the figure is the
    highest sample minus the resident set before any inference (model and audio loaded).
    """
    import ctypes
    import gc
    import threading

    run = build(checkpoint, variant)
    x = speech_like(duration_s)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand loading leftovers back, so they aren't reused
    baseline = _rss_mb()
    run(speech_like(0.5))  # warm up kernels (its scratch memory counts toward the peak)
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    run(x)
    done.set()
    sampler.join()
    print(json.dumps({"peak_mb": peak[0] - baseline, "total_mb": peak[0]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[2.0, 10.0, 60.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave default)")
    parser.add_argument("--memory-duration", type=float, default=60.0)
    parser.add_argument(
        "--child", nargs=3, metavar=("CKPT", "VARIANT", "DURATION"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        child_peak_mb(Path(args.child[0]), args.child[1], float(args.child[2]))
        return

    from emoface_core.engines.neural.fastmode import MAX_BOUND, MEAN_BOUND, choose_fast_mode

    variants = ("emoface", "emoface-fast", "emoface-plain", "release", "release-sdpa")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = make_checkpoint(Path(tmp))
        runs = {v: build(checkpoint, v) for v in variants}
        print(describe())
        print(
            f"full-size network, random weights, CPU; best of {args.repeats} after a warm-up; "
            f"emoface-fast runs {choose_fast_mode()[1]}\n"
        )
        print(
            f"{'clip':>6} | {'variant':<13} | {'time s':>8} | {'RTF':>6} | {'vs sdpa':>8} | "
            "max |diff| vs release"
        )
        print("-" * 78)
        for duration in args.durations:
            x = speech_like(duration)
            times, outputs = {}, {}
            for v in variants:
                runs[v](x[:16_000])
            for _ in range(args.repeats):  # interleave variants so load changes hit all alike
                for v in variants:
                    start = time.perf_counter()
                    outputs[v] = runs[v](x)
                    times[v] = min(times.get(v, np.inf), time.perf_counter() - start)
            for v in variants:
                diff = float(np.abs(outputs[v] - outputs["release"]).max())
                rtf = times[v] / duration
                print(
                    f"{duration:>5.0f}s | {v:<13} | {times[v]:>8.3f} | {rtf:>6.3f} | "
                    f"{times['release-sdpa'] / times[v]:>7.2f}x | {diff:.2e}"
                )
            fast_diff = np.abs(outputs["emoface-fast"] - outputs["emoface"])
            ok = fast_diff.mean() <= MEAN_BOUND and fast_diff.max() <= MAX_BOUND
            print(
                f"{'':>6} | emoface-fast vs emoface: mean |diff| {fast_diff.mean():.4f}, max "
                f"{fast_diff.max():.4f} (bound {MEAN_BOUND} / {MAX_BOUND}: "
                f"{'within' if ok else 'EXCEEDED'})"
            )
        print(
            f"\npeak memory of one {args.memory_duration:.0f} s clip (fresh process each, "
            "resident-set samples above the loaded model; for emoface this includes the prepacked "
            "copy of the Linear weights made by the first call):"
        )
        for v in variants:
            out = (
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        str(checkpoint),
                        v,
                        str(args.memory_duration),
                    ]
                    + (["--threads", str(args.threads)] if args.threads else []),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            mem = json.loads(out)
            print(
                f"  {v:<13} {mem['peak_mb']:>8.0f} MB for inference "
                f"({mem['total_mb']:.0f} MB resident at peak)"
            )


if __name__ == "__main__":
    main()
