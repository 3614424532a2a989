"""CPU fast mode: the network on the CPU's native low-precision units, within a measured bound.

``precision="fast"`` picks what this CPU runs natively:

* ``bf16`` on CPUs with bfloat16 instructions (``amx_bf16`` or ``avx512_bf16``): the weights of
  every conv and linear layer are converted to bfloat16 once, at load (linear ones prepacked
  for oneDNN, conv ones in channels-last layout), so each call is one native bf16 GEMM or
  convolution (AMX tiles where present) with float32 accumulation and the activation (GELU,
  ReLU) fused. Attention runs in bf16 (q/k/v stay bf16 into SDPA); the conv stack stays bf16
  from layer to layer (the first layer, one input channel, becomes a GEMM of the audio's
  windows with the GroupNorm statistics folded in, in float32, before the cast). Layer norms,
  residual sums, softmax accumulation, the emotion encoder and the output head stay float32.
  Plain autocast instead re-casts every weight on every call (35 % of its time on AMX).
* ``off`` (float32, the exact path) elsewhere. ``int8`` (dynamic quantisation of the Linear
  layers, ``torch.ao.quantization.quantize_dynamic``: int8 weights, activations quantised per
  call) is 1.4-1.5x faster than float32 on VNNI but misses the bound (mean |diff| 0.025, max
  0.2 on the full-size network, per-channel weights barely better), so it is never picked by
  itself; ``fast_model(model, "int8")`` still makes one for callers who accept that.

Accuracy bound, checked by ``tests/test_fastmode.py`` on a tiny model and printed by
``benchmarks/bench_inference.py`` for the full-size one: mean |fast - exact| <= 0.005 and max
<= 0.05 over the 174 raw outputs.

A fast model is a copy with one copy of each converted weight (the packed bf16 one: half the
float32 bytes); the original model is left untouched. Its ``state_dict`` is not the release
layout (converted layers keep no float32 weight): save the exact model, not a fast copy.
"""

from __future__ import annotations

import copy
import logging
import platform
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from emoface_core.engines.neural.model import EmoFaceModel
from emoface_core.errors import ConfigError

log = logging.getLogger(__name__)

FAST_MODES = ("off", "int8", "bf16", "auto")
MEAN_BOUND, MAX_BOUND = 0.005, 0.05  # fast vs exact, raw outputs


def _pack_hint(n_out: int, n_in: int) -> int:
    """The row count oneDNN optimises a packed bf16 weight for.

    Measured on AMX (2 cores), 8 to 600 rows: every hint is equally fast for the few rows of a
    streaming step, but for whole clips a layer at most as wide as its input (768x3072,
    768x768, 512x2048) runs 1.3-1.6x faster packed for one row, and a wider one (3072x768,
    2048x512) packed for 64. A fixed rule rather than timing at load: the packed layout changes
    the order of the sums, and bakes must not depend on a timing race.
    """
    return 1 if n_out <= n_in else 64


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX512-BF16) through oneDNN.

    Emulated bf16 (AVX512 without BF16) is slower than float32, so it does not count.
    """
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        supported = False
    has_unit = bool({"amx_bf16", "avx512_bf16"} & cpu_flags())
    return has_unit and supported and torch.backends.mkldnn.is_available()


def native_int8() -> bool:
    """Whether this CPU has int8 dot-product instructions (VNNI, AMX-INT8)."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags())


def choose_fast_mode() -> tuple[str, str]:
    """``(mode, why)``: the fast path this CPU runs natively (see the module docstring)."""
    if native_bf16():
        unit = "AMX" if "amx_bf16" in cpu_flags() else "AVX512-BF16"
        return "bf16", f"bf16 weights on {unit}"
    if native_int8():
        return "off", (
            "float32: this CPU has no native bf16, and int8 (VNNI) misses the accuracy bound"
        )
    return "off", "float32: this CPU has no native bf16 units"


class Bf16PackedLinear(nn.Module):
    """``y = act(x W^T + b)`` with ``W`` in bf16, prepacked for oneDNN, the activation fused.

    Args:
        weight, bias: the float32 layer's tensors (copied to bf16).
        activation: "none", "gelu" (exact erf GELU, as wav2vec2) or "relu", fused into the GEMM.
        out: "float" (float32 result) or "bf16" (for a consumer that takes bf16: attention,
            the next bf16 layer), which saves a cast each way.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        *,
        activation: str = "none",
        out: str = "float",
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        plain = weight.detach().to(torch.bfloat16).contiguous()
        packed = torch.ops.mkldnn._reorder_linear_weight(plain, _pack_hint(*weight.shape))
        self.register_buffer("packed", packed)
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.bfloat16))
        self.activation = activation
        self.algorithm = "none" if activation == "gelu" else ""  # "none": erf, not tanh
        self.float_out = out == "float"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """bf16 GEMM with float32 accumulation (and the fused activation)."""
        y = torch.ops.mkldnn._linear_pointwise(
            x.to(torch.bfloat16), self.packed, self.bias, self.activation, [], self.algorithm
        )
        return y.float() if self.float_out else y


class Bf16ConvGelu(nn.Module):
    """One of wav2vec2's later conv layers (conv without norm, then GELU) in bf16.

    oneDNN convolution with the GELU fused, weights and activations in channels-last layout (no
    reorder per call): 1.8x the plain bf16 ``conv1d`` + ``gelu`` on AMX.
    The result is bf16 (the next layer takes it as is); ``EmoFaceModel._conv_stack`` returns
    float32. ``conv`` is the original layer, kept for its shape (``conv_output_length``).
    """

    def __init__(self, layer: Any) -> None:  # a transformers conv layer
        super().__init__()
        conv = layer.conv
        self.conv = _ShapeOf(conv)
        self.stride = [1, conv.stride[0]]
        self.padding = [0, conv.padding[0]]
        self.dilation = [1, conv.dilation[0]]
        self.groups = conv.groups
        # Channels-last, not prepacked: a weight prepacked for one input length is reordered
        # back on every call of another length (250 ms instead of 2 ms for the positional
        # convolution at 120 frames), while this layout serves every length.
        weight = conv.weight.detach().to(torch.bfloat16).unsqueeze(2)
        self.register_buffer("packed", weight.contiguous(memory_format=torch.channels_last))
        bias = conv.bias
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` (any float dtype) -> ``[B, C', T']`` bf16."""
        x4 = x.to(torch.bfloat16).unsqueeze(2).contiguous(memory_format=torch.channels_last)
        y = torch.ops.mkldnn._convolution_pointwise(
            x4,
            self.packed,
            self.bias,
            self.padding,
            self.stride,
            self.dilation,
            self.groups,
            "gelu",
            [],
            "none",
        )
        return y.squeeze(2)


class Bf16FirstConv(nn.Module):
    """wav2vec2's first conv layer (conv, per-input GroupNorm, GELU) in bf16.

    ``forward_normalised`` takes the whole input's GroupNorm statistics, folds them into the
    kernels (in float32, as ``EmoFaceModel._conv0_normalised``) and runs one bf16 convolution
    with the GELU fused, straight into the channels-last layout the next layer reads. ``conv``
    and ``layer_norm`` are the original float32 modules (the statistics are computed from the
    float32 kernels; ``forward`` is the float32 layer, for inputs without statistics).
    """

    def __init__(self, layer: Any) -> None:  # a transformers conv layer
        super().__init__()
        self.layer = layer
        self.conv: Any = layer.conv
        self.layer_norm: Any = layer.layer_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The float32 layer (its own GroupNorm statistics)."""
        return self.layer(x)

    def forward_normalised(
        self, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor
    ) -> torch.Tensor:
        """``[1, 1, S]`` audio and ``[1, C, 1]`` statistics -> ``[1, C, T]`` bf16.

        One input channel: the convolution is a GEMM of the audio's strided windows
        ``[T, K]`` with the kernels ``[C, K]``, whose ``[T, C]`` result already is the
        channels-last layout the next layer reads (a oneDNN convolution would give the plain
        layout for a one-channel input, and the next layer would transpose it: 15 % of a clip).
        """
        conv, norm = self.conv, self.layer_norm
        scale = torch.rsqrt(var + norm.eps) * norm.weight[:, None]  # [1, C, 1]
        conv_bias = conv.bias[:, None] if conv.bias is not None else 0.0
        bias = (((conv_bias - mean) * scale)[0, :, 0] + norm.bias).to(torch.bfloat16)
        weight = (conv.weight[:, 0, :] * scale[0]).to(torch.bfloat16)  # [C, K]
        kernel, stride = conv.kernel_size[0], conv.stride[0]
        audio = x.reshape(-1).to(torch.bfloat16)
        n_out = (audio.shape[0] - kernel) // stride + 1
        windows = audio.as_strided((n_out, kernel), (stride, 1)).contiguous()
        y = torch.ops.mkldnn._linear_pointwise(windows, weight, bias, "gelu", [], "none")
        return y.T[None]  # [1, C, T] with C fastest: channels-last


class Bf16PositionalConv(nn.Module):
    """wav2vec2's positional convolution (768 channels, 16 groups, kernel 128) in bf16.

    A channels-last oneDNN convolution: 4.7 ms instead of 32 ms for 10 s on AMX.
    ``weight``/``bias`` keep the float32 (weight-norm applied) tensors, which the streaming
    path reads for its own step-wise convolution (a GEMM: few output frames per step).
    """

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        with torch.no_grad():
            weight = conv.weight.detach().clone()  # weight norm applied once
        self.register_buffer("weight", weight)
        bias = None if conv.bias is None else conv.bias.detach()
        self.register_buffer("bias", bias)
        self.kernel_size, self.groups = conv.kernel_size, conv.groups
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        plain = weight.to(torch.bfloat16).unsqueeze(2)  # channels-last: see Bf16ConvGelu
        self.register_buffer("packed", plain.contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias_bf16", None if bias is None else bias.to(torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` -> ``[B, C, T']`` bf16 (the layer's GELU follows, on bf16)."""
        padding = self.padding[0]
        x4 = x.to(torch.bfloat16).unsqueeze(2).contiguous(memory_format=torch.channels_last)
        y = torch.ops.mkldnn._convolution_pointwise(
            x4,
            self.packed,
            self.bias_bf16,
            [0, padding],
            [1, 1],
            [1, 1],
            self.groups,
            "none",
            [],
            "",
        )
        return y.squeeze(2)


class _ShapeOf(nn.Module):
    """What the model reads of a converted conv: its kernel size and stride (no weights)."""

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation, self.groups = conv.padding, conv.dilation, conv.groups


class Bf16FeedForward(nn.Module):
    """wav2vec2's feed-forward block in bf16.

    The GELU is fused into the first GEMM, the 3072-wide intermediate stays bf16, and rows run
    in blocks (as ``RowBlockedFeedForward``).
    """

    def __init__(self, ff: Any, row_block: int) -> None:  # Wav2Vec2FeedForward
        super().__init__()
        dense1, dense2 = ff.intermediate_dense, ff.output_dense
        self.up = Bf16PackedLinear(dense1.weight, dense1.bias, activation="gelu", out="bf16")
        self.down = Bf16PackedLinear(dense2.weight, dense2.bias)
        self.row_block = row_block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Inference only (dropout is off in eval)."""
        if x.shape[-2] <= self.row_block:
            return self.down(self.up(x))
        return torch.cat([self.down(self.up(p)) for p in x.split(self.row_block, dim=-2)], -2)


def _to_bf16(model: EmoFaceModel, inplace: bool) -> EmoFaceModel:
    """A bf16 version of ``model`` (see the module docstring for what stays float32)."""
    from emoface_core.engines.neural.model import ROW_BLOCK

    fast = (model if inplace else copy.deepcopy(model)).eval()
    w2v = fast.audio_encoder
    projection = w2v.feature_projection.projection
    w2v.feature_projection.projection = Bf16PackedLinear(projection.weight, projection.bias)
    n_linear = 1
    for layer in w2v.encoder.layers:
        attn = layer.attention
        for name in ("q_proj", "k_proj", "v_proj"):  # attention runs in bf16
            old = getattr(attn, name)
            setattr(attn, name, Bf16PackedLinear(old.weight, old.bias, out="bf16"))
        attn.out_proj = Bf16PackedLinear(attn.out_proj.weight, attn.out_proj.bias)
        layer.feed_forward = Bf16FeedForward(layer.feed_forward, ROW_BLOCK)
        n_linear += 6
    setattr(fast, "in_fn", Bf16PackedLinear(fast.in_fn.weight, fast.in_fn.bias))  # noqa: B010
    n_linear += 1
    if fast.per_frame:  # the temporal decoder's layers are read whole by TransformerEncoderLayer
        with torch.inference_mode():
            fused = fast._fused_attention()  # folded from the float32 weights, then converted
        assert fast._fused_cache is not None
        fast._fused_cache = (
            fast._fused_cache[0],
            [Bf16PackedLinear(f.weight, f.bias) for f in fused],
        )
        decoder_layers: list[Any] = list(fast.encoder.layers)
        for layer in decoder_layers:
            relu = layer.activation is F.relu or isinstance(layer.activation, nn.ReLU)
            layer.linear1 = Bf16PackedLinear(
                layer.linear1.weight,
                layer.linear1.bias,
                activation="relu" if relu else "none",
                out="bf16",
            )
            if relu:
                layer.activation = nn.Identity()  # fused into linear1
            layer.linear2 = Bf16PackedLinear(layer.linear2.weight, layer.linear2.bias)
        n_linear += 3 * len(fused)
    pos = w2v.encoder.pos_conv_embed
    pos.conv = Bf16PositionalConv(pos.conv)
    conv_layers = w2v.feature_extractor.conv_layers
    if isinstance(getattr(conv_layers[0], "layer_norm", None), nn.GroupNorm):
        conv_layers[0] = Bf16FirstConv(conv_layers[0])
    for i in range(1, len(conv_layers)):
        conv_layers[i] = Bf16ConvGelu(conv_layers[i])
    log.info("fast mode bf16: %d linear and %d conv layers in bf16", n_linear, len(conv_layers) - 1)
    return fast


def _to_int8(model: EmoFaceModel, inplace: bool) -> EmoFaceModel:
    from emoface_core.engines.neural.packed_linear import unpack_linear_layers

    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError as e:  # pragma: no cover - depends on the torch build
        raise ImportError(
            "fast mode int8 needs torch.ao.quantization (PyTorch 2.x CPU builds ship it)"
        ) from e
    engines = torch.backends.quantized.supported_engines
    if torch.backends.quantized.engine == "none" and engines:
        torch.backends.quantized.engine = engines[0]
    source = (model if inplace else copy.deepcopy(model)).eval()
    source._fused_cache = None  # per-frame attention is re-fused from the copy's weights
    unpack_linear_layers(source)  # quantize_dynamic converts plain nn.Linear layers only
    with warnings.catch_warnings():
        # torch marks eager quantisation as deprecated in favour of torchao, which has no
        # CPU int8 kernels as fast as these; the API still works in the pinned version.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        fast = quantize_dynamic(source, {nn.Linear}, dtype=torch.qint8, inplace=inplace)
    log.info("fast mode int8: dynamic quantisation of the Linear layers")
    return fast.eval()


def fast_model(model: EmoFaceModel, mode: str = "auto", *, inplace: bool = False) -> EmoFaceModel:
    """Return a CPU fast-mode copy of ``model`` (``mode="off"`` returns ``model`` itself).

    Args:
        model: an ``EmoFaceModel`` on the CPU; it is not modified unless ``inplace``.
        mode: "bf16", "int8", "off", or "auto" (``choose_fast_mode``).
        inplace: convert ``model`` itself (no second copy while converting; the float32
            model is gone afterwards).

    Raises:
        ConfigError: unknown mode, the model is not on the CPU, or bf16 asked on a CPU without
            native bf16 (it would be emulated: slower than float32).
        ImportError: this PyTorch build has no dynamic quantisation (int8).
    """
    if mode not in FAST_MODES:
        raise ConfigError(f"fast mode must be one of {FAST_MODES}, but {mode!r} is given")
    if mode == "auto":
        mode = choose_fast_mode()[0]
    if mode == "off":
        return model
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ConfigError(f"fast mode {mode!r} runs on the CPU only; the model is on {device}")
    if mode == "bf16":
        if not native_bf16():
            raise ConfigError("fast mode 'bf16' needs a CPU with AMX or AVX512-BF16")
        return _to_bf16(model, inplace)
    return _to_int8(model, inplace)


def fast_path(model: nn.Module) -> str:
    """Which fast path a model runs: "bf16", "int8" or "off"."""
    if any(isinstance(m, Bf16PackedLinear) for m in model.modules()):
        return "bf16"
    return "int8" if count_quantized(model) else "off"


def count_quantized(model: nn.Module) -> int:
    """How many Linear layers of ``model`` run with int8 weights."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return sum(isinstance(m, DynamicLinear) for m in model.modules())
