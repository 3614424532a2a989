"""Prepacked oneDNN linear layers: same results as nn.Linear, a cache that follows the weights."""

import copy
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_sine, tiny_model

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch.nn.functional as F  # noqa: E402

from emoface_core.audio import Audio  # noqa: E402
from emoface_core.emotion import EmotionTimeline  # noqa: E402
from emoface_core.engines.neural.inference import animate  # noqa: E402
from emoface_core.engines.neural.packed_linear import (  # noqa: E402
    PackedLinear,
    linear_from,
    pack_linear_layers,
    packing_available,
    packing_disabled,
    unpack_linear_layers,
)

needs_packing = pytest.mark.skipif(
    not packing_available(), reason="this PyTorch build has no oneDNN packed linear layers"
)


def _packed(in_features: int, out_features: int, bias: bool = True) -> torch.nn.Linear:
    torch.manual_seed(0)
    layer = torch.nn.Linear(in_features, out_features, bias=bias)
    assert pack_linear_layers(layer) == 1 and type(layer) is PackedLinear
    return layer.eval()


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = a.detach(), b.detach()
    return torch.allclose(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))


@needs_packing
@pytest.mark.parametrize(
    "shape, bias",
    [((1, 96), True), ((13, 96), True), ((2, 7, 96), False), ((3, 4, 5, 96), True)],
)
def test_matches_f_linear(shape, bias):
    layer = _packed(96, 80, bias)
    x = torch.randn(*shape)
    x_t = torch.randn(96, shape[0]).T  # a non-contiguous view
    with torch.inference_mode():
        y, y_t = layer(x), layer(x_t)
    assert y.shape == (*shape[:-1], 80) and _close(y, F.linear(x, layer.weight, layer.bias))
    assert _close(y_t, F.linear(x_t, layer.weight, layer.bias))
    # The cached packed weight exists, so the packed path (not the fallback) ran.
    from emoface_core.engines.neural.packed_linear import _packed as cache

    assert layer in cache


@needs_packing
def test_follows_in_place_updates_and_new_weights():
    layer = _packed(32, 16)
    x = torch.randn(5, 32)
    with torch.no_grad():
        before = layer(x)
        layer.weight.mul_(-2.0)  # an optimizer step or load_state_dict writes in place
        after = layer(x)
        assert _close(after, F.linear(x, layer.weight, layer.bias))
        assert not torch.allclose(before, after)
        layer.weight = torch.nn.Parameter(torch.randn(16, 32))  # a replaced tensor
        assert _close(layer(x), F.linear(x, layer.weight, layer.bias))


def test_training_path_is_plain_nn_linear():
    layer = _packed(12, 6) if packing_available() else torch.nn.Linear(12, 6)
    reference = torch.nn.Linear(12, 6)
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(4, 12)
    layer(x).square().sum().backward()
    reference(x).square().sum().backward()
    assert torch.equal(layer.weight.grad, reference.weight.grad)
    assert set(layer.state_dict()) == {"weight", "bias"}


@needs_packing
def test_model_is_packed_and_agrees_with_the_plain_path():
    model = tiny_model()
    packed = [m for m in model.modules() if type(m) is PackedLinear]
    assert len(packed) >= 10  # wav2vec2 projections and feed-forwards, Audio2Rig feed-forwards
    # Released checkpoints load key for key: packing renames nothing.
    plain = copy.deepcopy(model)
    assert unpack_linear_layers(plain) == len(packed)
    assert list(plain.state_dict()) == list(model.state_dict())
    audio, timeline = Audio(make_sine(1.0)), EmotionTimeline.constant("angry")
    y = animate(model, audio, timeline)
    with packing_disabled():
        y_plain = animate(model, audio, timeline)
    assert np.abs(y - y_plain).max() < 1e-4 * max(1.0, float(np.abs(y_plain).max()))


@needs_packing
def test_deepcopy_and_fused_layers_share_nothing_stale():
    model = tiny_model()
    audio, timeline = Audio(make_sine(0.5)), EmotionTimeline.constant("sad")
    first = animate(model, audio, timeline)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(0.5)
    assert not np.allclose(animate(twin, audio, timeline), first)
    assert np.array_equal(animate(model, audio, timeline), first)  # the original is untouched
    weight, bias, x = torch.randn(8, 8), torch.randn(8), torch.randn(3, 8)
    fused = linear_from(weight, bias)
    with torch.inference_mode():
        assert type(fused) is PackedLinear and _close(fused(x), F.linear(x, weight, bias))


def test_switch_off_by_environment():
    code = (
        "from emoface_core.engines.neural.packed_linear import packing_available; "
        "print(packing_available())"
    )
    env = dict(os.environ, EMOFACE_PACKED_LINEAR="0")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@needs_packing
def test_a_failing_packed_kernel_falls_back_for_good(monkeypatch, caplog):
    import emoface_core.engines.neural.packed_linear as packed_linear

    layer = _packed(16, 8)
    x = torch.randn(4, 16)

    def broken(*args, **kwargs):
        raise RuntimeError("oneDNN: unsupported shape")

    monkeypatch.setattr(packed_linear, "_available", True)
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", broken)
    with torch.inference_mode(), caplog.at_level("WARNING"):
        y = layer(x)
        assert _close(y, F.linear(x, layer.weight, layer.bias))
        assert not packing_available() and "using plain F.linear" in caplog.text
        assert _close(layer(x), y)  # no second attempt, no second warning
    assert caplog.text.count("failed") == 1
