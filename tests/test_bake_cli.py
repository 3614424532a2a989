import json

import numpy as np
import pytest
from conftest import make_sine, write_wav

pytest.importorskip("torch")
pytest.importorskip("transformers")

from bridge.cli import main
from emoface_core.controllers import BLINK_L, GAZE_X


def _bake(tmp_path, ckpt, *extra, name="out.json", wav=None):
    wav = wav or write_wav(tmp_path / "clip.wav", make_sine(3.0))
    out = tmp_path / name
    code = main(["bake", str(wav), "--checkpoint", str(ckpt), "-o", str(out), *extra])
    return code, out


def test_json_metadata_and_engine_line(tmp_path, tiny_release_checkpoint, capsys):
    code, out = _bake(
        tmp_path, tiny_release_checkpoint, "--emotion", "happy:0.5@0,sad@1.5", "--seed", "4"
    )
    assert code == 0
    assert capsys.readouterr().err.count("engine emoface") == 1
    doc = json.loads(out.read_text())
    meta = doc["metadata"]
    assert meta["engine"]["name"] == "emoface" and meta["engine"]["checkpoint_kind"] == "release"
    assert meta["engine"]["decoder_mode"] == "per_frame"
    assert meta["seed"] == 4 and meta["raw"] is False
    assert meta["emotion"] == "happy:0.5@0,sad@1.5"
    assert meta["source_audio"].endswith("clip.wav")
    assert doc["n_frames"] == 180


def test_seed_makes_output_reproducible(tmp_path, tiny_release_checkpoint):
    _, a = _bake(tmp_path, tiny_release_checkpoint, "--seed", "1", name="a.txt")
    _, b = _bake(tmp_path, tiny_release_checkpoint, "--seed", "1", name="b.txt")
    _, c = _bake(tmp_path, tiny_release_checkpoint, "--seed", "2", name="c.txt")
    va, vb, vc = (np.loadtxt(p, delimiter=",") for p in (a, b, c))
    np.testing.assert_array_equal(va, vb)
    assert not np.array_equal(va[:, GAZE_X], vc[:, GAZE_X])


def test_raw_skips_postprocessing(tmp_path, tiny_release_checkpoint):
    _, raw = _bake(tmp_path, tiny_release_checkpoint, "--raw", name="raw.txt")
    _, post = _bake(tmp_path, tiny_release_checkpoint, "--seed", "0", name="post.txt")
    r, p = np.loadtxt(raw, delimiter=","), np.loadtxt(post, delimiter=",")
    assert np.abs(np.diff(p[:, 50], axis=0)).mean() < np.abs(np.diff(r[:, 50], axis=0)).mean()
    assert not np.array_equal(r[:, BLINK_L], p[:, BLINK_L]) or not np.array_equal(
        r[:, GAZE_X], p[:, GAZE_X]
    )


@pytest.mark.parametrize(
    "make_input, extra, fragment",
    [
        (lambda d: d / "missing.wav", [], "missing.wav: no such audio file"),
        (
            lambda d: (d / "empty.wav").write_bytes(b"") or d / "empty.wav",
            [],
            "empty.wav: not a readable audio file",
        ),
        (
            lambda d: write_wav(d / "ok.wav", make_sine(0.5)),
            ["--emotion", "grumpy"],
            "unknown emotion 'grumpy'",
        ),
    ],
)
def test_bad_input_one_line_no_output(
    tmp_path, tiny_release_checkpoint, capsys, make_input, extra, fragment
):
    wav = make_input(tmp_path)
    out = tmp_path / "never.json"
    code = main(
        ["bake", str(wav), "--checkpoint", str(tiny_release_checkpoint), "-o", str(out), *extra]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and fragment in err[-1] and "Traceback" not in "\n".join(err)
    assert not out.exists()


def test_silence_and_clipped_audio_are_valid(tmp_path, tiny_release_checkpoint):
    silence = write_wav(tmp_path / "silence.wav", np.zeros(16_000, np.float32))
    clipped = write_wav(tmp_path / "clipped.wav", np.clip(make_sine(1.0, amplitude=5.0), -1, 1))
    for wav in (silence, clipped):
        code, out = _bake(tmp_path, tiny_release_checkpoint, wav=wav, name=wav.stem + ".txt")
        assert code == 0 and np.all(np.isfinite(np.loadtxt(out, delimiter=",")))
