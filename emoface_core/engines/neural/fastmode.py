"""CPU fast mode: the network with int8 weights in its Linear layers (off by default).

Live streaming makes the network run in small blocks (a few frames per call), where a CPU spends
most of its time reading weights from memory. Dynamic int8 quantisation
(``torch.ao.quantization.quantize_dynamic``) stores every ``nn.Linear`` weight as int8 (a quarter
of the bytes) and quantises activations on the fly, per call. It covers wav2vec2's projections
and feed-forward layers and the Audio2Rig feed-forward layers, which hold almost all of the
weights; the conv feature extractor, layer norms and the fused per-frame attention stay float32.

It is an approximation: ``benchmarks/bench_realtime.py`` measures its speed-up and its deviation
from the float32 network (see ``docs/realtime.md``). A fast model is a copy; the original is left
untouched and can still be used.
"""

from __future__ import annotations

import copy
import logging
import warnings
from typing import TYPE_CHECKING

from emoface_core.errors import ConfigError

if TYPE_CHECKING:
    from emoface_core.engines.neural.model import EmoFaceModel

log = logging.getLogger(__name__)

FAST_MODES = ("off", "int8")


def fast_model(model: EmoFaceModel, mode: str = "int8") -> EmoFaceModel:
    """Return a CPU fast-mode copy of ``model`` (``mode="off"`` returns ``model`` itself).

    Args:
        model: an ``EmoFaceModel`` (any decoder mode); it is not modified.
        mode: "int8" for dynamic int8 quantisation of the Linear layers, or "off".

    Returns:
        The model to run, in eval mode, on the CPU.

    Raises:
        ConfigError: unknown mode, or the model is not on the CPU (int8 kernels are CPU-only).
        ImportError: this PyTorch build has no dynamic quantisation.
    """
    if mode not in FAST_MODES:
        raise ConfigError(f"fast mode must be one of {FAST_MODES}, but {mode!r} is given")
    if mode == "off":
        return model
    import torch
    from torch import nn

    from emoface_core.engines.neural.packed_linear import unpack_linear_layers

    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ConfigError(f"fast mode 'int8' runs on the CPU only; the model is on {device}")
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError as e:  # pragma: no cover - depends on the torch build
        raise ImportError(
            "fast mode needs torch.ao.quantization (PyTorch 2.x CPU builds ship it)"
        ) from e
    engines = torch.backends.quantized.supported_engines
    if torch.backends.quantized.engine == "none" and engines:
        torch.backends.quantized.engine = engines[0]
    source = copy.deepcopy(model).eval()
    source._fused_cache = None  # per-frame attention is re-fused from the copy's weights
    unpack_linear_layers(source)  # quantize_dynamic converts plain nn.Linear layers only
    with warnings.catch_warnings():
        # torch marks eager quantisation as deprecated in favour of torchao, which has no
        # CPU int8 kernels as fast as these; the API still works in the pinned version.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        fast = quantize_dynamic(source, {nn.Linear}, dtype=torch.qint8)
    log.info("fast mode: int8 dynamic quantisation of the Linear layers")
    return fast.eval()


def count_quantized(model: EmoFaceModel) -> int:
    """How many Linear layers of ``model`` run with int8 weights."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return sum(isinstance(m, DynamicLinear) for m in model.modules())
