"""``emoface unreal install|check|sync``: the plugin lands in a project complete, with files
generated from this bridge (protocol, channels, mappings), and runs on the standard library."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.errors import MappingError
from bridge.unreal_install import (
    PROTOCOL_SOURCE,
    REPO_PLUGIN_DIR,
    UnrealInstallError,
    check_install,
    generated_files,
    install_plugin,
    stale_generated_files,
    wheel_platform,
)
from emoface_core.controllers import CONTROLLER_NAMES


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "MyGame"
    folder.mkdir()
    (folder / "MyGame.uproject").write_text(
        json.dumps({"FileVersion": 3, "EngineAssociation": "5.6"})
    )
    return folder


def installed(project: Path) -> Path:
    return project / "Plugins" / "EmoFaceBridge"


def package(project: Path) -> Path:
    return installed(project) / "Content" / "Python" / "emoface_unreal"


def make_wheel(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def test_the_repository_plugin_carries_current_generated_files():
    stale = stale_generated_files(REPO_PLUGIN_DIR, generated_files())
    assert not stale, f"stale generated plugin files {stale}: run `emoface unreal sync`"
    pkg = REPO_PLUGIN_DIR / "Content" / "Python" / "emoface_unreal"
    assert (pkg / "protocol.py").read_bytes() == PROTOCOL_SOURCE.read_bytes()
    assert json.loads((pkg / "data" / "channels.json").read_text())["channels"] == list(
        CONTROLLER_NAMES
    )


def test_install_copies_a_complete_plugin_with_generated_files(project):
    report = install_plugin(project)
    dest = installed(project)
    assert (
        report.plugin_dir == dest
        and not report.replaced
        and report.uproject.name == "MyGame.uproject"
    )
    assert report.mappings == {"faceboard": "metahuman_faceboard", "curves": "metahuman_curves"}
    for rel in (
        "EmoFaceBridge.uplugin",
        "Content/Python/init_unreal.py",
        "Content/Python/emoface_bake.py",
        "Content/Python/emoface_unreal/editor/live.py",
        "Content/Python/emoface_unreal/zmtp.py",
    ):
        assert (dest / rel).is_file(), rel
    assert (package(project) / "protocol.py").read_bytes() == PROTOCOL_SOURCE.read_bytes()
    assert not list(dest.rglob("__pycache__")) and not list(project.glob("Plugins/.EmoFaceBridge*"))
    assert check_install(project) == []


def test_the_installed_plugin_runs_on_the_standard_library_alone(project):
    install_plugin(project)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from emoface_unreal import live, transport, osc, zmtp, bakeplan;"
        "from emoface_unreal.rigmap import load_rig_mapping;"
        "from emoface_unreal.editor import live as editor_live, bake, menu, dialogs;"
        "print(load_rig_mapping('faceboard').name, len(load_rig_mapping('curves').targets))"
    )
    python = str(installed(project) / "Content" / "Python")
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, python], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["metahuman_faceboard", "240"]


def test_install_with_a_custom_mapping_and_refusing_the_wrong_kind(project, tmp_path):
    text = (REPO_PLUGIN_DIR.parent.parent / "mappings" / "metahuman_faceboard.yaml").read_text()
    custom = tmp_path / "my_rig.yaml"
    custom.write_text(
        text.replace("name: metahuman_faceboard", "name: my_rig").replace(
            "{source: CTRL_C_jaw-translateY, target: CTRL_C_jaw.Y, clamp: [0, 1]}",
            "{source: CTRL_C_jaw-translateY, target: CTRL_C_jaw.Y, scale: 0.8, clamp: [0, 1]}",
        )
    )
    report = install_plugin(project, faceboard=custom)
    assert report.mappings["faceboard"] == "my_rig"
    doc = json.loads((package(project) / "data" / "faceboard_mapping.json").read_text())
    jaw = next(t for t in doc["targets"] if t[0] == "CTRL_C_jaw.Y")
    assert doc["name"] == "my_rig" and jaw[2] == 0.8
    with pytest.raises(MappingError, match="target_kind is 'anim_curves'.*must be 'control_rig'"):
        install_plugin(project, faceboard="metahuman_curves")
    assert (
        json.loads((package(project) / "data" / "faceboard_mapping.json").read_text())["name"]
        == "my_rig"
    )


def test_reinstall_keeps_vendored_packages_and_foreign_folders_are_refused(project, tmp_path):
    install_plugin(project)
    vendored = installed(project) / "Content" / "Python" / "Win64" / "Lib" / "site-packages" / "zmq"
    vendored.mkdir(parents=True)
    (vendored / "__init__.py").write_text("# pyzmq")
    (package(project) / "protocol.py").write_text("# stale")
    report = install_plugin(project)
    assert report.replaced and (vendored / "__init__.py").read_text() == "# pyzmq"
    assert (package(project) / "protocol.py").read_bytes() == PROTOCOL_SOURCE.read_bytes()
    other = tmp_path / "Other"
    (other / "Plugins" / "EmoFaceBridge").mkdir(parents=True)
    (other / "Other.uproject").write_text("{}")
    (other / "Plugins" / "EmoFaceBridge" / "keep.txt").write_text("mine")
    with pytest.raises(
        UnrealInstallError, match="is not an EmoFace plugin; move it away or pass --force"
    ):
        install_plugin(other)
    assert (other / "Plugins" / "EmoFaceBridge" / "keep.txt").is_file()
    install_plugin(other / "Other.uproject", force=True)
    assert not (other / "Plugins" / "EmoFaceBridge" / "keep.txt").exists()


def test_project_folder_errors(tmp_path):
    with pytest.raises(UnrealInstallError, match="no .uproject file here"):
        install_plugin(tmp_path)
    with pytest.raises(UnrealInstallError, match="no such folder"):
        install_plugin(tmp_path / "missing")
    (tmp_path / "A.uproject").write_text("{}")
    (tmp_path / "B.uproject").write_text("{}")
    with pytest.raises(UnrealInstallError, match="several .uproject files"):
        install_plugin(tmp_path)


def test_wheels_are_vendored_per_platform_and_checked(project, tmp_path):
    win = make_wheel(
        tmp_path / "pyzmq-27.3.0-cp311-cp311-win_amd64.whl", {"zmq/__init__.py": "# win"}
    )
    linux = make_wheel(
        tmp_path / "pyzmq-27.3.0-cp311-cp311-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl",
        {"zmq/__init__.py": "# linux"},
    )
    report = install_plugin(project, wheels=(win, linux))
    python = installed(project) / "Content" / "Python"
    assert (
        python / "Win64" / "Lib" / "site-packages" / "zmq" / "__init__.py"
    ).read_text() == "# win"
    assert (
        python / "Linux" / "Lib" / "site-packages" / "zmq" / "__init__.py"
    ).read_text() == "# linux"
    assert len(report.vendored) == 2
    assert wheel_platform(Path("pyzmq-27.3.0-cp311-cp311-macosx_10_15_universal2.whl")) == "Mac"
    with pytest.raises(
        UnrealInstallError, match="built for cp312, but Unreal 5.4-5.6 embed Python 3.11"
    ):
        wheel_platform(Path("pyzmq-27.3.0-cp312-cp312-win_amd64.whl"))
    with pytest.raises(UnrealInstallError, match="not a wheel file name"):
        wheel_platform(Path("pyzmq.zip"))
    evil = make_wheel(tmp_path / "evil-1.0-cp311-cp311-win_amd64.whl", {"../../escape.py": "x"})
    with pytest.raises(UnrealInstallError, match="unsafe path"):
        install_plugin(project, wheels=(evil,))
    assert not (installed(project) / "Content" / "escape.py").exists()


def test_cli_install_check_and_sync(project, capsys):
    assert main(["unreal", "install", str(project)]) == 0
    out = capsys.readouterr().out
    assert "Installed EmoFace Bridge in" in out and "emoface stream line.wav --subject npc1" in out
    assert "MyGame.uproject" in out and "-run=pythonscript" in out
    # The headless bake is a command to copy: one line, from the editor to the skeleton.
    (command,) = [line for line in out.splitlines() if "-run=pythonscript" in line]
    assert command.startswith("UnrealEditor-Cmd") and "--skeleton /Game/" in command
    assert main(["unreal", "check", str(project)]) == 0
    assert "EmoFace plugin OK: faceboard metahuman_faceboard" in capsys.readouterr().out
    (package(project) / "live.py").write_text("# edited by hand")
    assert main(["unreal", "check", str(project)]) == 1
    assert "live.py: missing or out of date; reinstall" in capsys.readouterr().err
    assert main(["unreal", "install", str(project)]) == 0
    assert "Updated EmoFace Bridge" in capsys.readouterr().out
    assert main(["unreal", "sync", "--check"]) == 0
    assert main(["unreal", "install", str(project.parent / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("emoface: error:") and "no such folder" in err and err.count("\n") == 1
    assert main(["unreal", "check", str(project.parent / "nowhere")]) == 1


def test_plugin_versions_agree():
    descriptor = json.loads((REPO_PLUGIN_DIR / "EmoFaceBridge.uplugin").read_text())
    init = (REPO_PLUGIN_DIR / "Content" / "Python" / "emoface_unreal" / "__init__.py").read_text()
    assert f'__version__ = "{descriptor["VersionName"]}"' in init
