"""The machine a benchmark ran on, printed at the top of every table.

Figures are only comparable within one run (machines differ: an AMD EPYC, an Intel Xeon with
AMX...), so each benchmark prints the CPU model, its core count and the instruction-set flags
that decide which kernels PyTorch and oneDNN use, and compares variants side by side.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

# Flags that change which CPU kernels run (oneDNN/PyTorch dispatch on them).
RELEVANT_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "avx_vnni",
)


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out.setdefault(key.strip(), value.strip())
    return out


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The relevant instruction-set flags this CPU has (Linux only; [] elsewhere)."""
    flags = set(_cpuinfo().get("flags", "").split())
    return [f for f in RELEVANT_FLAGS if f in flags]


def describe() -> str:
    """One line: CPU model, usable cores, relevant flags, Python and (if loaded) torch."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parts = [
        f"CPU: {cpu_model()}",
        f"{cores} core(s)",
        "flags: " + (" ".join(cpu_flags()) or "none of " + ",".join(RELEVANT_FLAGS[:3])),
        f"Python {sys.version.split()[0]}",
    ]
    torch = sys.modules.get("torch")
    if torch is not None:
        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    return "; ".join(parts)
