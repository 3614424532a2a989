"""Peak memory of a whole `emoface bake` against the clip's length, for both engines.

Each bake runs as its own process (the CLI exactly as a user runs it) and its peak resident set
size is read from the kernel (``RUSAGE_CHILDREN``), so nothing of this script is counted. The
audio is speech-like noise bursts written as 16 kHz PCM WAV; the network is the full-size
release layout with random weights (memory does not depend on the weights).

    python benchmarks/bench_memory.py                      # procedural 10/60 min, network 10 min
    python benchmarks/bench_memory.py --network-minutes 10 60 --formats json txt

Targets (issue 16): a 1 h bake under 1.5 GB with the procedural engine and under 3 GB with the
network.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from machine import describe  # noqa: E402


def write_speech(path: Path, minutes: float) -> Path:
    """Speech-like audio: noise and a voiced buzz in 4 Hz syllables, with pauses (int16 WAV)."""
    import soundfile as sf

    rate = 16_000
    with sf.SoundFile(str(path), "w", rate, 1, subtype="PCM_16") as f:
        rng = np.random.default_rng(0)
        for start in range(0, int(minutes * 60), 10):  # 10 s at a time: bounded here too
            t = np.arange(start * rate, (start + 10) * rate) / rate
            envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, 1) * (
                np.sin(2 * np.pi * 0.3 * t) > -0.5
            )
            voice = np.sin(2 * np.pi * 140 * t) + 0.3 * rng.standard_normal(t.size)
            f.write((0.3 * envelope * voice).astype(np.float32))
    return path


def make_checkpoint(directory: Path) -> Path:
    """The full-size release network with random weights, saved as a release checkpoint."""
    import torch
    from transformers import Wav2Vec2Config

    from emoface_core.testing.release_reference import ReleaseEmoFace, release_state_dict

    torch.manual_seed(0)
    path = directory / "random_full_size.pth"
    torch.save(release_state_dict(ReleaseEmoFace(Wav2Vec2Config())), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procedural-minutes", type=float, nargs="*", default=[10, 60])
    parser.add_argument("--network-minutes", type=float, nargs="*", default=[10])
    parser.add_argument("--formats", nargs="*", default=["json"], choices=["json", "txt", "csv"])
    args = parser.parse_args()
    print(describe())
    print(f"{'engine':<11}{'audio':>8}{'format':>8}{'peak MB':>10}{'wall s':>9}{'MB/min':>9}")
    with tempfile.TemporaryDirectory(prefix="emoface-mem-") as tmp:
        folder = Path(tmp)
        cases = [("procedural", m) for m in sorted(args.procedural_minutes)]
        cases += [("emoface", m) for m in sorted(args.network_minutes)]
        checkpoint = make_checkpoint(folder) if args.network_minutes else None
        for engine, minutes in cases:
            wav = write_speech(folder / f"speech_{minutes:g}min.wav", minutes)
            for fmt in args.formats:
                out = folder / f"out.{fmt}"
                extra = ["--checkpoint", str(checkpoint)] if engine == "emoface" else []
                # A fresh interpreter per case, so each peak is that case's alone.
                code = (
                    "import resource,subprocess,sys;"
                    "p=subprocess.run([sys.executable,'-m','bridge.cli','bake',*sys.argv[1:]],"
                    "capture_output=True,text=True);"
                    "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
                    "print(p.stderr[-300:], file=sys.stderr)"
                )
                t0 = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, "-c", code, str(wav), "--engine", engine, *extra,
                     "--emotion", "happy", "-o", str(out)],
                    cwd=REPO, capture_output=True, text=True,
                )  # fmt: skip
                wall = time.perf_counter() - t0
                rc, peak_kb = proc.stdout.split()
                if rc != "0":
                    raise SystemExit(f"{engine} {minutes:g} min failed: {proc.stderr.strip()}")
                peak_mb = int(peak_kb) / 1024
                print(
                    f"{engine:<11}{minutes:>6g} m{fmt:>8}{peak_mb:>10.0f}{wall:>9.1f}"
                    f"{peak_mb / minutes:>9.1f}",
                    flush=True,
                )
                out.unlink(missing_ok=True)
            wav.unlink()


if __name__ == "__main__":
    main()
