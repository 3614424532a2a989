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


def test_bake_json_and_quiet(sine_wav, tmp_path, capsys):
    import json

    out = tmp_path / "a.json"
    assert main(["bake", str(sine_wav), "-o", str(out), "--json", "-q"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["frames"] == 90 and summary["output"] == str(out.resolve())
    assert captured.err == ""  # quiet: nothing but errors
    folder = tmp_path / "lines"
    folder.mkdir()
    (folder / "x.wav").write_bytes(sine_wav.read_bytes())
    (folder / "broken.wav").write_bytes(b"RIFF0000WAVE")
    assert main(["bake", str(folder), "-o", str(tmp_path / "baked"), "--json", "-q"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["done"] == 1 and report["counts"]["failed"] == 1


def test_stream_and_receive_json(sine_wav, capsys):
    import json
    import socket
    import threading
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    results = {}
    receiver = threading.Thread(
        target=lambda: results.setdefault(
            "code", main(["receive", "--zmq", endpoint, "--timeout", "3", "--json", "-q"])
        )
    )
    receiver.start()
    time.sleep(0.5)
    assert main(["stream", str(sine_wav), "--zmq", endpoint, "--start-delay-s", "0.8",
                 "--json", "-q"]) == 0  # fmt: skip
    receiver.join(20)
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    sent = next(x for x in lines if "senders" in x)
    got = next(x for x in lines if "stats" in x)
    # A loaded machine may skip a hopelessly late frame; whatever was sent arrives.
    assert sent["frames"] >= 80 and sent["senders"][0]["kind"] == "zmq"
    assert results["code"] == 0 and got["stats"]["n_frames"] == sent["frames"]


@pytest.mark.parametrize("command", ["bake", "stream", "live", "serve"])
def test_help_has_the_sections_it_points_to(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "(see below)" in text and "emotion spec (--emotion):" in text
    assert "happy@0,sad@2.5" in text
