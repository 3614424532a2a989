"""``benchmarks/gpu_check.py --device cpu``: the GPU check's own code runs end to end on tiny
sizes, so the script works the first time a GPU machine is lent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytest.importorskip("transformers")


def test_the_gpu_check_runs_on_the_cpu_and_reports_every_section(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    for section in ("parity", "whole", "streams", "train", "batch"):
        assert "error" not in report[section], (section, report[section])
    parity = report["parity"]
    assert parity["fp32"]["vs_cpu_fp32"]["max"] < 1e-5  # the same arithmetic on the CPU
    assert parity["bf16"]["finite"] and parity["bf16"]["vs_cpu_fp32"]["mean"] < 0.05
    streams = report["streams"]
    assert streams["exact"]["rows"]["N=1"]["step_p50_ms"] > 0
    assert "fast_vs_exact_streamed" in streams
    assert report["train"]["finite"] and report["batch"]["failed"] == 0
    assert "[streams]" in done.stdout and "report written to" in done.stdout
