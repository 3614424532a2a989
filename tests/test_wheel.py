"""A plain ``pip install`` of the built wheel works outside the repository: the mappings and the
Unreal plugin travel inside it (``setup.py`` copies them in), so ``mapping list``, ``stream``
and ``unreal install`` run from a fresh virtual environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import make_sine, write_wav

from bridge.receiver import MockReceiver

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (no repository on its path).

    The dependencies come from this test environment's site-packages through a ``.pth`` line
    (a path line adds the folder, it does not run that folder's own ``.pth`` files: the
    editable install of the repository stays out), so nothing is downloaded.
    """
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation"]
        + ["-q", "-w", str(dist)],
        check=True,
        cwd=root,
        timeout=TIMEOUT_S,
    )
    (wheel,) = dist.glob("emoface-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
        + [str(wheel)],
        check=True,
        timeout=TIMEOUT_S,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(venv / "bin" / "emoface"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def test_the_wheel_runs_from_outside_the_repository(wheel_venv, tmp_path):
    python = wheel_venv / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import bridge, emoface_core; print(bridge.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert str(wheel_venv) in where and str(REPO) not in where  # the wheel, not the checkout
    listed = run(wheel_venv, "mapping", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for name in ("metahuman_faceboard", "metahuman_curves", "arkit52"):
        assert name in listed.stdout
    assert str(REPO) not in listed.stdout + listed.stderr

    project = tmp_path / "MyGame"
    project.mkdir()
    (project / "MyGame.uproject").write_text(json.dumps({"FileVersion": 3}))
    installed = run(wheel_venv, "unreal", "install", str(project), cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    plugin = project / "Plugins" / "EmoFaceBridge"
    assert (plugin / "EmoFaceBridge.uplugin").is_file()
    assert (plugin / "Content" / "Python" / "emoface_unreal" / "editor" / "live.py").is_file()
    assert plugin / "Content" / "Python" / "emoface_unreal" / "data" / "faceboard_mapping.json"

    wav = write_wav(tmp_path / "line.wav", make_sine(0.4))
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    with MockReceiver("zmq", endpoint) as rx:
        streamed = run(
            wheel_venv,
            "stream",
            "line.wav",
            "--engine",
            "procedural",
            "--zmq",
            endpoint,
            "--start-delay-s",
            "0.5",
            cwd=tmp_path,
        )
        assert streamed.returncode == 0, streamed.stderr
        assert rx.wait_for(24, 10.0), rx.stats
    assert rx.starts[0].info["audio"] == str(wav.resolve())
    assert len(rx.frames[0].values) == 171  # the face-board mapping (from the wheel): 171 targets

    # Every room of the core travels: a bake with a text (espeak-ng when the machine has it)
    # goes through emoface_core.transcript and bridge.transcript from the wheel.
    baked = run(
        wheel_venv,
        "bake",
        "line.wav",
        "--text",
        "hello",
        "--text-mode",
        "prefer",
        "-o",
        "line.json",
        cwd=tmp_path,
    )
    assert baked.returncode == 0, baked.stderr
    assert "transcript" in json.loads((tmp_path / "line.json").read_text())["metadata"] or (
        "audio-only lips" in baked.stderr
    )
