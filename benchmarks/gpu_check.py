"""Prove the CUDA paths on a GPU and measure how many real-time NPC streams one GPU carries.

One short run (under 8 minutes on a GPU machine, set-up included: ``scripts/gpu_setup.sh``):

1. **parity**: the full-size network (wav2vec2-base + 10-layer Audio2Rig, random weights, saved
   in the authors' release layout and loaded like a released checkpoint) on a 10 s clip in
   fp32, fp16 and bf16 autocast on the GPU, against fp32 on the GPU and on the CPU (mean/max
   |diff| of the 174 raw outputs);
2. **whole clips**: 2, 10 and 60 s per precision (best of 3, synchronised), real-time factor;
3. **streams**: N concurrent streams stepped together (``process_many``, 20 ms chunks, hop 6),
   exact (fp32) and fast (fp16 autocast) precision, N = 1, 8, 32, 64, 128, 256 until real time
   fails: per-step p50/p99 against the hop, GPU memory per stream, and streaming parity of fast
   against exact;
4. **training**: two optimiser steps of a tiny model with AMP (fp16 autocast, grad scaler);
5. **batch**: one batch bake of 4 lines with two workers sharing the GPU.

It prints one table and writes everything to a JSON file (``--out``). ``--device cpu`` runs the
same code on tiny sizes (a tiny network, short clips, N up to 4): the tests run it that way, so
the script is known to work before a GPU is ever lent.

Usage: python benchmarks/gpu_check.py [--device cuda|cpu] [--out gpu_check.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import describe  # noqa: E402

from emoface_core.testing.signals import TINY_WAV2VEC2, speech_like  # noqa: E402

SAMPLE_RATE = 16_000
CHUNK = SAMPLE_RATE // 50  # 20 ms


class Sizes:
    """What one run measures: full size on CUDA, tiny on the CPU (the script's own test)."""

    def __init__(self, tiny: bool) -> None:
        self.tiny = tiny
        self.parity_s = 2.0 if tiny else 10.0
        self.durations = (1.0, 2.0) if tiny else (2.0, 10.0, 60.0)
        self.stream_counts = (1, 2, 4) if tiny else (1, 8, 32, 64, 128, 256)
        self.stream_s = 2.0 if tiny else 6.0
        self.repeats = 1 if tiny else 3
        self.batch_lines = 4
        self.batch_line_s = 1.0 if tiny else 10.0


def make_checkpoint(folder: Path, tiny: bool) -> Path:
    """A release-layout checkpoint with random weights (a non-zero output layer)."""
    import torch
    from transformers import Wav2Vec2Config

    from emoface_core.testing.release_reference import ReleaseEmoFace, release_state_dict

    torch.manual_seed(0)
    if tiny:
        ref = ReleaseEmoFace(
            Wav2Vec2Config(**TINY_WAV2VEC2), d_model=64, nhead=4, num_layers=2, dim_feedforward=128
        )
    else:
        ref = ReleaseEmoFace(Wav2Vec2Config())
    torch.nn.init.normal_(ref.out_fn.weight, std=0.1 / ref.out_fn.weight.shape[1] ** 0.5)
    path = folder / "random_release_model.pth"
    torch.save(release_state_dict(ref), path)
    return path


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def diff(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    d = np.abs(a - b)
    return {"mean": float(d.mean()), "max": float(d.max())}


def check_parity(checkpoint: Path, device: str, sizes: Sizes) -> dict[str, Any]:
    from emoface_core.audio import Audio
    from emoface_core.emotion import EmotionTimeline
    from emoface_core.engines.neural.checkpoint import load_model
    from emoface_core.engines.neural.inference import animate

    audio = Audio(speech_like(sizes.parity_s))
    timeline = EmotionTimeline.constant("happy")
    cpu_model, _ = load_model(checkpoint, device="cpu")
    reference = animate(cpu_model, audio, timeline, precision="fp32")
    del cpu_model
    model, _ = load_model(checkpoint, device=device)
    out: dict[str, Any] = {}
    outputs = {}
    precisions = ("fp32", "fp16", "bf16") if device == "cuda" else ("fp32", "bf16")
    for precision in precisions:
        outputs[precision] = animate(model, audio, timeline, precision=precision)
        out[precision] = {
            "vs_device_fp32": diff(outputs[precision], outputs.get("fp32", reference)),
            "vs_cpu_fp32": diff(outputs[precision], reference),
            "finite": bool(np.isfinite(outputs[precision]).all()),
        }
    return out


def time_whole_clips(checkpoint: Path, device: str, sizes: Sizes) -> dict[str, Any]:
    from emoface_core.audio import Audio
    from emoface_core.emotion import EmotionTimeline
    from emoface_core.engines.neural.checkpoint import load_model
    from emoface_core.engines.neural.inference import animate

    model, _ = load_model(checkpoint, device=device)
    timeline = EmotionTimeline.constant("neutral")
    precisions = ("fp32", "fp16", "bf16") if device == "cuda" else ("fp32",)
    out: dict[str, Any] = {}
    for precision in precisions:
        animate(model, Audio(speech_like(1.0)), timeline, precision=precision)  # warm-up
        for duration in sizes.durations:
            audio = Audio(speech_like(duration))
            best = float("inf")
            for _ in range(sizes.repeats):
                sync(device)
                t0 = time.perf_counter()
                animate(model, audio, timeline, precision=precision)
                sync(device)
                best = min(best, time.perf_counter() - t0)
            out[f"{precision} {duration:.0f}s"] = {"seconds": best, "rtf": best / duration}
    return out


def run_streams(checkpoint: Path, device: str, sizes: Sizes) -> dict[str, Any]:
    import torch

    from emoface_core.engines.neural.engine import NeuralEngine
    from emoface_core.streaming import StreamConfig, Streamer, process_many

    config = StreamConfig(hop_frames=6, lookahead_frames=7)
    hop_s = config.hop_frames / 60
    x = speech_like(sizes.stream_s)
    out: dict[str, Any] = {"hop_ms": 1000 * hop_s, "audio_s": sizes.stream_s}
    streamed: dict[str, np.ndarray] = {}
    for precision in ("exact", "fast"):
        engine = NeuralEngine.from_checkpoint(checkpoint, device=device, precision=precision)
        streamer = Streamer(engine, config)
        rows: dict[str, Any] = {}
        for n in sizes.stream_counts:
            streams = [streamer.open("neutral", raw=True, seed=k) for k in range(n)]
            if device == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            steps, frames = [], [[] for _ in range(n)]
            t_start = time.perf_counter()
            for i in range(0, x.size, CHUNK):
                chunk = x[i : i + CHUNK]
                sync(device)
                t0 = time.perf_counter()
                news = process_many([(s, chunk) for s in streams])
                sync(device)
                steps.append(time.perf_counter() - t0)
                for k, new in enumerate(news):
                    frames[k].append(new)
            for k, s in enumerate(streams):
                frames[k].append(s.finish())
            wall = time.perf_counter() - t_start
            busy = [t for t in steps if t > 1e-3] or steps  # the calls that ran the network
            row = {
                "step_p50_ms": 1000 * statistics.median(busy),
                "step_p99_ms": 1000 * float(np.percentile(busy, 99)),
                "rtf": wall / sizes.stream_s,
            }
            row["real_time"] = row["rtf"] <= 1.0 and row["step_p99_ms"] <= 1000 * hop_s
            if device == "cuda":
                row["gpu_mb_per_stream"] = (torch.cuda.max_memory_allocated() - base) / n / 2**20
            rows[f"N={n}"] = row
            if n == 1:
                streamed[precision] = np.concatenate(frames[0])
            if not row["real_time"]:
                break
        fits = [int(k[2:]) for k, r in rows.items() if r["real_time"]]
        out[precision] = {
            "path": engine.precision_note or "fp32",
            "rows": rows,
            "streams_in_real_time": max(fits, default=0),
        }
    if "exact" in streamed and "fast" in streamed:
        out["fast_vs_exact_streamed"] = diff(streamed["fast"], streamed["exact"])
    return out


def write_dataset(root: Path) -> Path:
    """Two training clips and one validation clip in the release's layout (60 fps controls)."""
    import soundfile as sf

    from emoface_core.controllers import N_CONTROLLERS

    for split, names in (("train", ("ang_000", "hap_001")), ("validation", ("ang_100",))):
        (root / split / "WAV").mkdir(parents=True, exist_ok=True)
        (root / split / "VALID_CTR").mkdir(parents=True, exist_ok=True)
        for k, name in enumerate(names):
            x = speech_like(1.0, seed=k)
            sf.write(str(root / split / "WAV" / f"{name}.wav"), x, SAMPLE_RATE)
            controls = np.random.default_rng(k).uniform(0, 0.5, (61, N_CONTROLLERS))
            np.savetxt(
                root / split / "VALID_CTR" / f"{name}.txt", controls, fmt="%.6f", delimiter=","
            )
    return root


def train_two_steps(folder: Path, device: str) -> dict[str, Any]:
    from emoface_core.engines.neural.config import ModelConfig
    from emoface_core.training.train import TrainConfig, Trainer

    dataset = write_dataset(folder / "dataset")
    config = TrainConfig(
        dataset=str(dataset),
        output_dir=str(folder / "run"),
        epochs=1,
        lr=1e-3,
        save_every=0,
        progress=False,
        tensorboard=False,
        device=device,
        precision="fp16" if device == "cuda" else "fp32",
    )
    model_config = ModelConfig(
        d_model=64, n_heads=4, n_layers=2, ff_dim=128, wav2vec2=dict(TINY_WAV2VEC2)
    )
    t0 = time.perf_counter()
    trainer = Trainer(config, model_config)
    result = trainer.fit()
    return {
        "precision": trainer.precision,
        "val_mae": float(result.best_val_mae),
        "finite": bool(np.isfinite(result.best_val_mae)),
        "seconds": time.perf_counter() - t0,
    }


def batch_bake(folder: Path, checkpoint: Path, device: str, sizes: Sizes) -> dict[str, Any]:
    import soundfile as sf

    from bridge.bake.lines import BakeLine
    from bridge.bake.render import BatchSettings
    from bridge.bake.run import run_batch

    lines = []
    for k in range(sizes.batch_lines):
        wav = folder / f"line_{k}.wav"
        sf.write(str(wav), speech_like(sizes.batch_line_s, seed=k), SAMPLE_RATE)
        lines.append(BakeLine(audio=wav, output=f"line_{k}", emotion="happy"))
    settings = BatchSettings(
        output_dir=folder / "out", engine="emoface", checkpoint=str(checkpoint), device=device
    )
    t0 = time.perf_counter()
    report = run_batch(lines, settings, jobs=2, force=True)
    wall = time.perf_counter() - t0
    return {
        "lines": sizes.batch_lines,
        "failed": len(report.failed),
        "errors": [r.reason for r in report.failed][:3],
        "seconds": wall,
        "lines_per_minute": 60 * sizes.batch_lines / wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument(
        "-o", "--output", "--out", dest="out", default="gpu_check.json", help="JSON report"
    )
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["parity", "whole", "streams", "train", "batch"],
        choices=["parity", "whole", "streams", "train", "batch"],
    )
    args = parser.parse_args()
    import torch

    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device here (torch.cuda.is_available() is False); use --device cpu"
        )
        return 2
    sizes = Sizes(tiny=device == "cpu")
    report: dict[str, Any] = {
        "machine": describe(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (tiny sizes)",
        "cuda": torch.version.cuda,
    }
    print(f"gpu_check: {report['device']}; {report['machine']}", flush=True)
    sections = {
        "parity": lambda tmp, ck: check_parity(ck, device, sizes),
        "whole": lambda tmp, ck: time_whole_clips(ck, device, sizes),
        "streams": lambda tmp, ck: run_streams(ck, device, sizes),
        "train": lambda tmp, ck: train_two_steps(tmp, device),
        "batch": lambda tmp, ck: batch_bake(tmp, ck, device, sizes),
    }
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = make_checkpoint(Path(tmp), tiny=sizes.tiny)
        for name in args.sections:
            t0 = time.perf_counter()
            try:
                report[name] = sections[name](Path(tmp), checkpoint)
            except Exception as e:  # noqa: BLE001 - one failing section must not hide the others
                failed = True
                report[name] = {
                    "error": f"{type(e).__name__}: {e}",
                    "trace": traceback.format_exc(),
                }
            report[name]["section_seconds"] = time.perf_counter() - t0
            print_section(name, report[name])
    target = Path(args.out)
    partial = target.with_name(target.name + ".part")
    partial.write_text(json.dumps(report, indent=2, default=str) + "\n")
    os.replace(partial, target)
    print(f"gpu_check: report written to {target}")
    return 1 if failed else 0


def print_section(name: str, result: dict[str, Any]) -> None:
    """One block of the table."""
    print(f"\n[{name}] ({result.get('section_seconds', 0):.0f} s)")
    if "error" in result:
        print(f"  FAILED: {result['error']}")
        return
    if name == "parity":
        for precision, r in result.items():
            if isinstance(r, dict):
                print(
                    f"  {precision:<5} vs device fp32 mean {r['vs_device_fp32']['mean']:.5f} max "
                    f"{r['vs_device_fp32']['max']:.4f}; vs CPU fp32 mean "
                    f"{r['vs_cpu_fp32']['mean']:.5f} max {r['vs_cpu_fp32']['max']:.4f}"
                )
    elif name == "whole":
        for key, r in result.items():
            if isinstance(r, dict):
                print(f"  {key:<10} {r['seconds']:8.3f} s  RTF {r['rtf']:.4f}")
    elif name == "streams":
        for precision in ("exact", "fast"):
            r = result.get(precision)
            if not r:
                continue
            print(f"  {precision} ({r['path']}): {r['streams_in_real_time']} streams in real time")
            for n, row in r["rows"].items():
                mem = (
                    f", {row['gpu_mb_per_stream']:.1f} MB/stream"
                    if "gpu_mb_per_stream" in row
                    else ""
                )
                print(
                    f"    {n:<6} step p50 {row['step_p50_ms']:7.1f} ms, p99 "
                    f"{row['step_p99_ms']:7.1f} ms (hop {result['hop_ms']:.0f}), "
                    f"RTF {row['rtf']:.3f}{mem}"
                )
        if "fast_vs_exact_streamed" in result:
            d = result["fast_vs_exact_streamed"]
            print(f"  fast vs exact, streamed: mean {d['mean']:.5f}, max {d['max']:.4f}")
    else:
        print("  " + ", ".join(f"{k} {v}" for k, v in result.items() if k != "section_seconds"))


if __name__ == "__main__":
    sys.exit(main())
