r"""Create .venv and install emoface into it, on Linux, macOS and Windows (standard library only).

    python3 scripts/setup.py            # Linux, macOS
    py scripts\\setup.py                 # Windows

PyTorch comes first, and which build is chosen on purpose (``EMOFACE_TORCH`` overrides):

* ``auto`` (default): an NVIDIA GPU (``nvidia-smi`` answers) -> the CUDA build (``torch==2.13.0``
  from PyPI, which is the CUDA build on Linux); no NVIDIA GPU on Linux or Windows -> the CPU
  build from PyTorch's CPU wheel index (about 200 MB instead of several GB of CUDA libraries),
  falling back to the plain requirement when that index cannot be reached (a machine that sees
  only a package mirror); macOS -> the plain requirement (PyPI's macOS build has no CUDA).
* ``cpu`` / ``cuda``: that build; ``skip``: keep whatever torch the venv has (or none: the
  procedural engine needs no torch).

``EMOFACE_TORCH_SPEC`` changes the requirement (default ``torch==2.13.0``); ``PYTHON`` the
interpreter that creates the venv (Linux/macOS wrapper). Extras: ``EMOFACE_EXTRAS`` (default
``model,plot,dev``). Each step says what it does; pip's own output shows the downloads.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import urllib.request
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CHOICES = ("auto", "cpu", "cuda", "skip")


def say(message: str) -> None:
    """One progress line."""
    print(f"setup: {message}", flush=True)


def venv_python() -> Path:
    r"""The venv's interpreter (``Scripts\\python.exe`` on Windows, ``bin/python`` elsewhere)."""
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def run(*args: str) -> None:
    """Run a command, echoing it; stop with its exit status on failure."""
    print("  $ " + " ".join(args), flush=True)
    completed = subprocess.run(args, check=False)
    if completed.returncode != 0:
        say(f"failed (exit {completed.returncode}): {' '.join(args[:6])} ...")
        sys.exit(completed.returncode)


def has_nvidia_gpu() -> bool:
    """Whether ``nvidia-smi`` lists a GPU (the driver is installed and sees one)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def reachable(url: str, timeout_s: float = 8.0) -> bool:
    """Whether an index answers at all (pip would otherwise retry for minutes)."""
    try:
        with urllib.request.urlopen(url + "/", timeout=timeout_s):
            return True
    except OSError:
        return False


def has_torch(python: Path) -> str:
    """The venv's torch version, or ""."""
    out = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def install_torch(python: Path, choice: str, spec: str) -> None:
    """Install the torch build ``choice`` asks for (see the module docstring)."""
    installed = has_torch(python)
    if choice == "skip":
        say(f"torch: skipped (EMOFACE_TORCH=skip); in the venv: {installed or 'none'}")
        return
    if installed and choice == "auto":
        say(
            f"torch {installed} is already installed; keeping it (EMOFACE_TORCH=cpu|cuda to change)"
        )
        return
    if choice == "auto":
        if has_nvidia_gpu():
            choice = "cuda"
            say("an NVIDIA GPU is present: installing the CUDA build of torch")
        elif platform.system() == "Darwin":
            choice = "plain"
            say("macOS: installing torch from PyPI (its macOS build has no CUDA)")
        else:
            choice = "cpu"
            say("no NVIDIA GPU found: installing the CPU build of torch")
    pip = [str(python), "-m", "pip", "install", "--progress-bar", "on"]
    if choice == "cpu":
        if reachable(CPU_INDEX):
            say(f"from PyTorch's CPU index {CPU_INDEX} (about 200 MB)")
            run(
                *pip, spec, "--index-url", CPU_INDEX, "--extra-index-url", "https://pypi.org/simple"
            )
            return
        say(
            f"PyTorch's CPU index ({CPU_INDEX}) cannot be reached from here; installing {spec} "
            "from the configured package index instead (on a plain Linux machine with internet "
            "that would be the multi-GB CUDA build: set EMOFACE_TORCH=skip and install torch "
            "yourself if that is not what you want)"
        )
    elif choice == "cuda":
        say(
            f"{spec} from PyPI: the CUDA build on Linux and Windows (several GB with its libraries)"
        )
    run(*pip, spec)


def main() -> int:
    """Set up .venv; the exit status of the step that failed, else 0."""
    choice = os.environ.get("EMOFACE_TORCH", "auto").strip().lower()
    if choice not in CHOICES:
        say(f"EMOFACE_TORCH must be one of {', '.join(CHOICES)}, not {choice!r}")
        return 2
    if sys.version_info < (3, 10):  # noqa: UP036 - run by whatever python3 the user has
        say(f"Python 3.10 or newer is needed (this is {platform.python_version()})")
        return 2
    spec = os.environ.get("EMOFACE_TORCH_SPEC", "torch==2.13.0")
    extras = os.environ.get("EMOFACE_EXTRAS", "model,plot,dev")
    python = venv_python()
    if not python.exists():
        say(f"creating the virtual environment {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    else:
        say(f"using the virtual environment {VENV}")
    install_torch(python, choice, spec)
    say(f"installing emoface (editable) with the extras [{extras}]")
    run(str(python), "-m", "pip", "install", "--progress-bar", "on", "-e", f".[{extras}]")
    emoface = VENV / ("Scripts/emoface.exe" if os.name == "nt" else "bin/emoface")
    say(f"done: {emoface} (torch {has_torch(python) or 'not installed'})")
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
