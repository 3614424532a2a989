import pickle

import numpy as np
import pytest
from conftest import make_sine, tiny_model, write_wav

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from bridge.cli import main  # noqa: E402
from emoface_core.audio import normalize  # noqa: E402
from emoface_core.engines.neural.checkpoint import (  # noqa: E402
    config_from_release_state_dict,
    load_model,
    save_checkpoint,
)
from emoface_core.engines.neural.config import ModelConfig  # noqa: E402
from emoface_core.errors import CheckpointError  # noqa: E402


def test_full_size_release_layout_is_recognised():
    """The real release's keys and shapes (random weights) map onto the published network."""
    from transformers import Wav2Vec2Config

    from emoface_core.engines.neural.model import EmoFaceModel
    from emoface_core.testing.release_reference import ReleaseEmoFace, release_state_dict

    ref = ReleaseEmoFace(Wav2Vec2Config())  # wav2vec2-base: what the release wraps
    state = release_state_dict(ref)
    assert tuple(state["pos_encoder.pe"].shape) == (5000, 1, 512)
    for key in (
        "embed.weight",
        "emotion.0.weight",
        "emotion.2.bias",
        "in_fn.weight",
        "out_fn.bias",
        "encoder.layers.9.self_attn.in_proj_weight",
        "audio_encoder.masked_spec_embed",
        "audio_encoder.encoder.pos_conv_embed.conv.weight_g",
        "audio_encoder.encoder.pos_conv_embed.conv.weight_v",
    ):
        assert key in state, key
    config = config_from_release_state_dict(state)
    assert config.decoder_mode == "per_frame"
    assert (config.d_model, config.n_layers, config.ff_dim, config.n_controllers) == (
        512,
        10,
        2048,
        174,
    )
    w2v = config.wav2vec2_config()
    base = Wav2Vec2Config()
    for field in (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "conv_dim",
        "conv_kernel",
        "conv_stride",
        "conv_bias",
        "feat_extract_norm",
        "num_conv_pos_embeddings",
        "num_conv_pos_embedding_groups",
        "do_stable_layer_norm",
    ):
        assert list(np.atleast_1d(getattr(w2v, field))) == list(
            np.atleast_1d(getattr(base, field))
        ), field
    model = EmoFaceModel(config)
    from emoface_core.engines.neural.checkpoint import _load_state_dict

    _load_state_dict(model, state, "<memory>")  # every key and shape fits


def test_bake_raw_reproduces_release_forward(tmp_path, tiny_release_checkpoint):
    from conftest import TINY_WAV2VEC2
    from transformers import Wav2Vec2Config

    from emoface_core.testing.release_reference import ReleaseEmoFace

    x = make_sine(2.0, freq_hz=150)
    wav = write_wav(tmp_path / "clip.wav", x, subtype="FLOAT")
    out = tmp_path / "clip.txt"
    argv = [
        "bake",
        str(wav),
        "--checkpoint",
        str(tiny_release_checkpoint),
        "--raw",
        "--emotion",
        "happy",
        "--device",
        "cpu",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    ref = ReleaseEmoFace(
        Wav2Vec2Config(**TINY_WAV2VEC2), d_model=64, nhead=4, num_layers=2, dim_feedforward=128
    ).eval()
    state = torch.load(tiny_release_checkpoint, weights_only=True)
    renamed = {
        k.replace("weight_g", "parametrizations.weight.original0").replace(
            "weight_v", "parametrizations.weight.original1"
        ): v
        for k, v in state.items()
    }
    ref.load_state_dict(renamed)
    with torch.no_grad():
        expected = ref(torch.from_numpy(normalize(x))[None], 120, 3)[0].numpy()
    got = np.loadtxt(out, delimiter=",")
    assert got.shape == expected.shape == (120, 174)
    assert np.abs(got - expected).max() < 1e-3


def test_project_checkpoint_round_trip(tmp_path):
    model = tiny_model("temporal")
    path = save_checkpoint(tmp_path / "m.pth", model, extra={"epoch": 3})
    loaded, info = load_model(path, device="cpu")
    assert info["kind"] == "project" and info["extra"] == {"epoch": 3}
    assert loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


def test_unknown_format_version_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pth", tiny_model())
    doc = torch.load(path, weights_only=True)
    doc["format_version"] = 99
    torch.save(doc, path)
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_model(path)


def test_missing_corrupt_and_unsafe_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found; download"):
        load_model(tmp_path / "nope.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="corrupt.pth: not a readable PyTorch checkpoint"):
        load_model(corrupt)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    unsafe = tmp_path / "unsafe.pth"
    unsafe.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(CheckpointError, match="unsafe.pth"):
        load_model(unsafe)
    # Torch's own reasons were a bare number, or advice to load with weights_only=False.
    for name, content in (
        ("junk.pth", b"junk\n"),
        ("empty.pth", b""),
        ("noise.pth", bytes(range(256)) * 8),
    ):
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(CheckpointError) as err:
            load_model(bad)
        assert f"{name}: not a readable PyTorch checkpoint (corrupt" in str(err.value)
        assert "weights_only" not in str(err.value)
    import argparse

    torch.save({"args": argparse.Namespace(lr=1.0)}, tmp_path / "namespace.pth")
    with pytest.raises(CheckpointError, match=r"holds a Python object \(argparse.Namespace\)"):
        load_model(tmp_path / "namespace.pth")
    listy = tmp_path / "list.pth"
    torch.save([1, 2], listy)
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_model(listy)


def test_wrong_shapes_and_keys(tmp_path, tiny_release_checkpoint):
    state = torch.load(tiny_release_checkpoint, weights_only=True)
    bad = dict(state)
    bad["encoder.layers.1.linear2.weight"] = torch.zeros(64, 99)
    torch.save(bad, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match="'encoder.layers.1.linear2.weight' has shape"):
        load_model(tmp_path / "shape.pth")
    missing = {k: v for k, v in state.items() if not k.startswith("in_fn")}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="in_fn.weight"):
        load_model(tmp_path / "missing.pth")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not an EmoFace checkpoint"):
        load_model(tmp_path / "other.pth")


def test_cli_reports_bad_checkpoint_in_one_line(tmp_path, capsys):
    wav = write_wav(tmp_path / "a.wav", make_sine(0.5))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"nope")
    out = tmp_path / "out.txt"
    assert main(["bake", str(wav), "--checkpoint", str(bad), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("emoface: error: ") and "bad.pth" in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not out.exists()


def test_config_validation():
    with pytest.raises(ValueError, match="decoder_mode"):
        ModelConfig(decoder_mode="sideways")
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(d_model=30, n_heads=8)
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({"bogus": 1})
