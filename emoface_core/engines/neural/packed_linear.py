"""Linear layers with weights prepacked for oneDNN: the same float32 arithmetic, faster on a CPU.

``nn.Linear`` on a CPU calls a BLAS GEMM that re-reads the weight in its plain ``[out, in]``
layout on every call. oneDNN (bundled with PyTorch's CPU builds) can reorder a weight once into
the blocked layout its kernels read, after which each call is a plain float32 GEMM on that
layout: same products and sums, only their order differs (float rounding, about 1e-6 relative).
On this project's 2-core CPU a layer of the full-size network runs 2-3x faster for the few rows
of a streaming step, where reading weights is the bottleneck, and 1.1-1.2x faster for
whole-clip inference (``benchmarks/bench_inference.py``, ``benchmarks/bench_realtime.py``).

``PackedLinear`` is an ``nn.Linear`` subclass: same parameters, same ``state_dict``, same
training behaviour. It uses the packed weight only for CPU float32 inference (no autograd,
no autocast) and falls back to ``F.linear`` for everything else. Packed weights are a cache:
rebuilt when the weight changes (in-place update or a new tensor), dropped with the module,
never saved or copied. They cost a second copy of each Linear weight in memory (about 420 MB
for the full-size network). ``EMOFACE_PACKED_LINEAR=0`` turns the whole mechanism off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

ENV_SWITCH = "EMOFACE_PACKED_LINEAR"
_PACK_BATCH_HINT = 64  # rows oneDNN optimises the layout for; any row count works (measured)

_available: bool | None = None
# module -> (its weight tensor, (address, version, shape) of that weight, packed weight). Weak
# keys, so a dropped model frees its packed weights; a changed weight is packed again.
_packed: weakref.WeakKeyDictionary[nn.Module, tuple] = weakref.WeakKeyDictionary()


def packing_available() -> bool:
    """Whether this PyTorch build can run prepacked oneDNN linear layers (checked once).

    Besides the ops existing, a small layer is run through them and compared with ``F.linear``,
    so a build or CPU where they misbehave quietly keeps the plain path.
    """
    global _available
    if _available is None:
        _available = _self_test()
    return _available


@contextlib.contextmanager
def packing_disabled() -> Iterator[None]:
    """Run every ``PackedLinear`` on the plain ``F.linear`` path inside the block.

    Process-wide (not per thread): for comparisons in tests and benchmarks.
    """
    global _available
    saved = packing_available()
    _available = False
    try:
        yield
    finally:
        _available = saved


def _give_up(error: Exception) -> None:
    """Switch packing off for the rest of the process after an unexpected oneDNN failure."""
    global _available
    if _available:
        log.warning("oneDNN packed linear layers failed (%s); using plain F.linear from now", error)
    _available = False
    _packed.clear()


def _self_test() -> bool:
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        log.debug("packed linear layers switched off by %s", ENV_SWITCH)
        return False
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        gen = torch.Generator().manual_seed(0)
        weight = torch.randn(24, 40, generator=gen)
        bias = torch.randn(24, generator=gen)
        x = torch.randn(3, 5, 40, generator=gen)
        with torch.inference_mode():
            packed = torch.ops.mkldnn._reorder_linear_weight(weight, _PACK_BATCH_HINT)
            out = torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
            ok = out.shape == (3, 5, 24) and torch.allclose(
                out, F.linear(x, weight, bias), rtol=1e-4, atol=1e-4
            )
    except Exception as e:  # noqa: BLE001 - a capability probe: any failure means "not here"
        log.debug("packed linear layers unavailable: %s", e)
        return False
    if not ok:
        log.warning("oneDNN packed linear layers disagree with F.linear here; not using them")
    return bool(ok)


class PackedLinear(nn.Linear):
    """``nn.Linear`` that runs CPU float32 inference on a oneDNN-prepacked copy of its weight."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T + b``, on the packed weight when it applies."""
        if self._can_pack(x):
            try:
                packed = self._packed_weight()
                return torch.ops.mkldnn._linear_pointwise(x, packed, self.bias, "none", [], "")
            except RuntimeError as e:  # a shape or CPU the self-test did not cover
                _give_up(e)
        return F.linear(x, self.weight, self.bias)

    def _can_pack(self, x: torch.Tensor) -> bool:
        weight = self.weight
        return (
            not self.training
            and not torch.is_grad_enabled()
            and x.device.type == "cpu"
            and weight.device.type == "cpu"
            and x.dtype == torch.float32
            and weight.dtype == torch.float32
            and x.dim() >= 2
            and x.numel() > 0
            and not torch.is_autocast_enabled("cpu")
            and packing_available()
        )

    def _packed_weight(self) -> torch.Tensor:
        weight = self.weight
        # Inference tensors (made under torch.inference_mode) have no version counter; they are
        # derived weights that nothing updates in place, so their identity is enough.
        version = -1 if weight.is_inference() else weight._version
        stamp = (weight.data_ptr(), version, tuple(weight.shape))
        cached = _packed.get(self)
        if cached is None or cached[0]() is not weight or cached[1] != stamp:
            packed = torch.ops.mkldnn._reorder_linear_weight(
                weight.detach().contiguous(), _PACK_BATCH_HINT
            )
            cached = (weakref.ref(weight), stamp, packed)
            _packed[self] = cached
        return cached[2]


def pack_linear_layers(model: nn.Module) -> int:
    """Make every plain ``nn.Linear`` of ``model`` a ``PackedLinear`` (in place, idempotent).

    Subclasses of ``nn.Linear`` are left alone (``nn.MultiheadAttention`` reads its
    ``out_proj`` weight directly, and quantised or other special layers have their own forward).

    Returns:
        How many layers are packed now (0 when this build cannot pack).
    """
    if not packing_available():
        return 0
    count = 0
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = PackedLinear
        if type(module) is PackedLinear:
            count += 1
    return count


def unpack_linear_layers(model: nn.Module) -> int:
    """Turn every ``PackedLinear`` of ``model`` back into a plain ``nn.Linear`` (in place).

    For code that dispatches on ``type(module) is nn.Linear``, such as dynamic quantisation.
    """
    count = 0
    for module in model.modules():
        if type(module) is PackedLinear:
            module.__class__ = nn.Linear  # type: ignore[assignment]  # a class swap back
            _packed.pop(module, None)
            count += 1
    return count


def linear_from(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """A stand-alone ``PackedLinear`` over existing tensors.

    For derived weights such as the folded per-frame attention. It shares the tensors and is
    registered nowhere, so it never shows up in a ``state_dict``.
    """
    layer = PackedLinear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    layer.weight = nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        layer.bias = nn.Parameter(bias, requires_grad=False)
    return layer.eval()
