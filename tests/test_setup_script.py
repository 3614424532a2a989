"""``scripts/setup.py`` picks the PyTorch build on purpose: CPU index without an NVIDIA GPU (and a
said fallback when it is unreachable), the CUDA build with one, nothing when told to skip."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "setup.py"


@pytest.fixture
def setup_script(monkeypatch):
    spec = importlib.util.spec_from_file_location("emoface_setup_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    commands: list[tuple[str, ...]] = []
    monkeypatch.setattr(module, "run", lambda *args: commands.append(args))
    monkeypatch.setattr(module, "has_torch", lambda python: "")
    monkeypatch.setattr(module.platform, "system", lambda: "Linux")
    module.commands = commands
    return module


def torch_install(commands) -> tuple[str, ...]:
    (command,) = [c for c in commands if "torch==2.13.0" in c]
    return command


@pytest.mark.parametrize(
    ("gpu", "index_up", "expected_index"),
    [(False, True, True), (False, False, False), (True, True, False)],
)
def test_the_torch_build_follows_the_machine(
    setup_script, monkeypatch, capsys, gpu, index_up, expected_index
):
    monkeypatch.setattr(setup_script, "has_nvidia_gpu", lambda: gpu)
    monkeypatch.setattr(setup_script, "reachable", lambda url, timeout_s=8.0: index_up)
    setup_script.install_torch(Path("python"), "auto", "torch==2.13.0")
    command = torch_install(setup_script.commands)
    assert (setup_script.CPU_INDEX in command) == expected_index
    out = capsys.readouterr().out
    if gpu:
        assert "CUDA build" in out
    elif not index_up:
        assert "cannot be reached" in out and "EMOFACE_TORCH=skip" in out
    else:
        assert "CPU build" in out


def test_skip_and_an_installed_torch_are_left_alone(setup_script, monkeypatch, capsys):
    setup_script.install_torch(Path("python"), "skip", "torch==2.13.0")
    monkeypatch.setattr(setup_script, "has_torch", lambda python: "2.13.0+cpu")
    setup_script.install_torch(Path("python"), "auto", "torch==2.13.0")
    assert setup_script.commands == []
    assert "already installed; keeping it" in capsys.readouterr().out


def test_a_bad_choice_is_one_clear_line(setup_script, monkeypatch, capsys):
    monkeypatch.setenv("EMOFACE_TORCH", "gpu")
    assert setup_script.main() == 2
    assert "EMOFACE_TORCH must be one of auto, cpu, cuda, skip" in capsys.readouterr().out
