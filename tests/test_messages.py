"""What a new user sees when something optional is missing: one line saying what to install."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from bridge.cli import main


def test_bare_emoface_prints_the_overview_and_succeeds(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: emoface" in out and "bake" in out


def test_missing_torch_says_what_to_install(
    monkeypatch, tiny_release_checkpoint, sine_wav, tmp_path, capsys
):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    code = main(["bake", str(sine_wav), "-o", str(tmp_path / "a.json"), "--engine", "emoface",
                 "--checkpoint", str(tiny_release_checkpoint)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "needs torch, which is not installed" in err
    assert "download.pytorch.org/whl/cpu" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("failure", "fragment"),
    [(ImportError("No module named 'sounddevice'"), "pip install 'emoface[live]'"),
     (OSError("PortAudio library not found"), "apt-get install libportaudio2")],
)  # fmt: skip
def test_the_microphone_says_which_piece_is_missing(monkeypatch, failure, fragment):
    from bridge.sources import MicSource

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    if isinstance(failure, OSError):
        import builtins

        real_import = builtins.__import__

        def fake_import(name, *args, **kwargs):
            if name == "sounddevice":
                raise failure
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        MicSource()._open()
