"""Choosing an engine: the EmoFace network when weights are configured, else the procedural one.

``auto`` looks for a checkpoint in this order: the ``--checkpoint`` flag, the ``EMOFACE_CHECKPOINT``
environment variable, then ``emoface_model.pth`` in the platform's cache folder
(``DEFAULT_CHECKPOINT``: ``~/.cache/emoface`` on Linux).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import platformdirs

from emoface_core.engines.base import Engine
from emoface_core.errors import ConfigError

log = logging.getLogger(__name__)

ENGINE_CHOICES = ("auto", "emoface", "procedural")
CHECKPOINT_ENV = "EMOFACE_CHECKPOINT"
# The platform's cache folder: ~/.cache/emoface on Linux, ~/Library/Caches/emoface on macOS,
# %LOCALAPPDATA%\emoface\Cache on Windows.
DEFAULT_CHECKPOINT = Path(platformdirs.user_cache_dir("emoface", appauthor=False)) / (
    "emoface_model.pth"
)


def find_checkpoint(checkpoint: str | Path | None = None) -> Path | None:
    """The configured checkpoint path (flag, then environment, then default location), if any."""
    if checkpoint:
        return Path(checkpoint)
    if os.environ.get(CHECKPOINT_ENV):
        return Path(os.environ[CHECKPOINT_ENV])
    if DEFAULT_CHECKPOINT.is_file():
        return DEFAULT_CHECKPOINT
    return None


def load_engine(
    name: str = "auto",
    *,
    checkpoint: str | Path | None = None,
    wav2vec2: str | Path | None = None,
    device: str | None = None,
    **options: object,
) -> Engine:
    """Build the engine ``name`` ("auto", "emoface" or "procedural").

    Args:
        name: which engine; "auto" picks "emoface" when a checkpoint is configured.
        checkpoint: EmoFace weights (a released ``*_model.pth`` or a project checkpoint).
        wav2vec2: unused by released checkpoints (their wav2vec2 weights are inside); kept for
            project checkpoints saved without the encoder.
        device: "cpu", "cuda" or None for CUDA when available.
        **options: engine-specific options (e.g. ``chunk_s`` or ``precision="fast"`` for the
            network; ``precision`` is ignored by the procedural engine, which has only one).

    Raises:
        ConfigError: unknown engine name, or "emoface" without a checkpoint.
        CheckpointError: the checkpoint cannot be loaded.
    """
    if name not in ENGINE_CHOICES:
        raise ConfigError(f"unknown engine {name!r}; choose from {', '.join(ENGINE_CHOICES)}")
    path = find_checkpoint(checkpoint)
    if name == "auto":
        name = "emoface" if path is not None else "procedural"
    if name == "procedural":
        from emoface_core.engines.procedural.engine import ProceduralEngine

        if device not in (None, "cpu"):
            log.warning("the procedural engine runs on the CPU; --device %s is ignored", device)
        options.pop("precision", None)  # the network's option; the procedural engine has one
        return ProceduralEngine(**options)  # type: ignore[arg-type]
    if path is None:
        raise ConfigError(
            "the emoface engine needs weights: download the authors' checkpoint "
            "(SJTU-Lucy/EmoFace release, e.g. 1000_model.pth) and pass --checkpoint PATH, set "
            f"{CHECKPOINT_ENV}, or put it at {DEFAULT_CHECKPOINT}"
        )
    require_model_packages()
    from emoface_core.engines.neural.engine import NeuralEngine

    return NeuralEngine.from_checkpoint(path, device=device, **options)


def require_model_packages() -> None:
    """Say what to install when the network's packages are missing (not a bare import error).

    Raises:
        ConfigError: torch or transformers cannot be imported.
    """
    import importlib.util

    missing = [name for name in ("torch", "transformers") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"the emoface engine needs {' and '.join(missing)}, which is not installed: "
            "pip install 'emoface[model]' after installing PyTorch (CPU-only on Linux: pip install "
            "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu; or run "
            "scripts/setup.py, which picks the build); the procedural engine needs neither"
        )
