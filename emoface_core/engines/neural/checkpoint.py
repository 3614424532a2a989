"""Loading and saving EmoFace weights: the authors' released state dicts and our own checkpoints.

Two kinds of file load here, both with ``torch.load(weights_only=True)``:

* A **released** checkpoint (``*_model.pth`` from SJTU-Lucy/EmoFace): a bare state dict. Its
  dimensions and its wav2vec2 configuration are read off the tensor shapes (no hub access), its
  weight-norm keys ``weight_g``/``weight_v`` are renamed to the parametrization names current
  PyTorch uses, and it runs in the release's ``per_frame`` decoder mode.
* A **project** checkpoint: ``{format, format_version, config, controller_names, state_dict,
  extra}``; the model is rebuilt from ``config``, never from shapes. Unknown versions are refused.
"""

from __future__ import annotations

import io
import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from emoface_core.controllers import CONTROLLER_NAMES
from emoface_core.engines.neural.config import ModelConfig
from emoface_core.engines.neural.model import EmoFaceModel
from emoface_core.errors import CheckpointError
from emoface_core.formats import atomic_write

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "emoface-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
W2V = "audio_encoder."
WAV2VEC2_DOWNLOAD_HINT = (
    "download facebook/wav2vec2-base-960h from https://huggingface.co/facebook/wav2vec2-base-960h "
    "(config.json and model.safetensors or pytorch_model.bin) into that folder"
)


def _load_failure_reason(error: Exception) -> str:
    """Say why ``torch.load(weights_only=True)`` failed, in a few words.

    Torch's own messages are a bare key for some corrupt files and, for anything its safe
    unpickler refuses (random bytes included), advise loading with ``weights_only=False``,
    which this project never does.
    """
    text = str(error).strip()
    if isinstance(error, pickle.UnpicklingError):
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if refused:
            return f"holds a Python object ({refused.group(1)}) that is not loaded, for safety"
        return "corrupt, or not a PyTorch file"
    if isinstance(error, (KeyError, EOFError, IndexError)):
        return "corrupt, truncated, or not a PyTorch file"
    return text.splitlines()[0] if text else type(error).__name__


def load_checkpoint_dict(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file safely (tensors and plain containers only).

    Raises:
        CheckpointError: missing, unreadable or not a dict; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: checkpoint not found; download the EmoFace weights (SJTU-Lucy/EmoFace "
            "release, e.g. 1000_model.pth) and give their path"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or unsafe files
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({_load_failure_reason(e)})"
        ) from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(data).__name__}")
    return data


def load_model(
    path: str | Path, *, device: str | torch.device | None = None
) -> tuple[EmoFaceModel, dict[str, Any]]:
    """Load a released or project checkpoint into an ``EmoFaceModel`` in eval mode.

    Args:
        path: the checkpoint file.
        device: target device; None picks CUDA when available.

    Returns:
        ``(model, info)``; ``info`` says ``kind`` ("release"/"project"), the path and ``extra``.

    Raises:
        CheckpointError: unreadable file, unknown format version, or wrong keys/shapes.
    """
    data = load_checkpoint_dict(path)
    if data.get("format") == CHECKPOINT_FORMAT:
        version = data.get("format_version")
        if version != CHECKPOINT_FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: checkpoint format_version {version!r} is not supported "
                f"(this emoface reads version {CHECKPOINT_FORMAT_VERSION})"
            )
        try:
            config = ModelConfig.from_dict(data["config"])
            state_dict = data["state_dict"]
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: malformed project checkpoint ({e})") from e
        names = tuple(data.get("controller_names", CONTROLLER_NAMES))
        if names != CONTROLLER_NAMES[: len(names)] or len(names) != config.n_controllers:
            log.warning("%s: controller names differ from the dataset order", path)
        # A training run's optimizer/scheduler/RNG state is for --resume, not for inference.
        extra = {k: v for k, v in dict(data.get("extra", {})).items() if k != "training_state"}
        kind = "project"
    else:
        state_dict = _unwrap_state_dict(data)
        config = config_from_release_state_dict(state_dict, path)
        kind, extra = "release", {}
    _check_finite(state_dict, path)
    model = EmoFaceModel(config)
    _load_state_dict(model, state_dict, path)
    model.eval()
    model.to(resolve_device(device))
    return model, {"kind": kind, "path": str(path), "extra": extra, "config": config.to_dict()}


def save_checkpoint(path: str | Path, model: EmoFaceModel, *, extra: dict | None = None) -> Path:
    """Write a self-describing project checkpoint atomically.

    Args:
        path: output file.
        model: the model to save (its config travels with it).
        extra: JSON-ready facts to keep (training config, dataset fingerprint, epoch...).
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    doc = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "config": model.config.to_dict(),
        "decoder_mode": model.config.decoder_mode,
        "controller_names": list(CONTROLLER_NAMES[: model.config.n_controllers]),
        "state_dict": state,
        "extra": extra or {},
    }
    buf = io.BytesIO()
    torch.save(doc, buf)
    atomic_write(path, buf.getvalue())
    return Path(path)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> CUDA when available, else CPU; "cuda" without CUDA is an error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError("--device cuda was asked for, but PyTorch sees no CUDA device")
    return device


def wav2vec2_kwargs_from_directory(directory: str | Path) -> dict[str, Any]:
    """The ``Wav2Vec2Config`` of a local Hugging Face folder as ``ModelConfig.wav2vec2`` kwargs.

    Raises:
        CheckpointError: the folder or its ``config.json`` is missing; says what to download.
    """
    from transformers import Wav2Vec2Config

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise CheckpointError(f"{directory}: no wav2vec2 model here; {WAV2VEC2_DOWNLOAD_HINT}")
    try:
        config = Wav2Vec2Config.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as e:
        raise CheckpointError(
            f"{directory}: unreadable wav2vec2 config ({str(e).splitlines()[0]})"
        ) from e
    meta = {
        "architectures",
        "_name_or_path",
        "transformers_version",
        "model_type",
        "torch_dtype",
        "dtype",
        "vocab_size",
        "pad_token_id",
        "bos_token_id",
        "eos_token_id",
        "ctc_loss_reduction",
        "ctc_zero_infinity",
        "id2label",
        "label2id",
    }
    return {k: v for k, v in config.to_diff_dict().items() if k not in meta}


def init_wav2vec2_from_pretrained(model: EmoFaceModel, directory: str | Path) -> None:
    """Copy pretrained wav2vec2 weights from a local Hugging Face folder into ``model``.

    Raises:
        CheckpointError: the folder is missing or incomplete; says what to download where.
    """
    from transformers import Wav2Vec2Model

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise CheckpointError(f"{directory}: no wav2vec2 model here; {WAV2VEC2_DOWNLOAD_HINT}")
    try:
        pretrained = Wav2Vec2Model.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as e:
        raise CheckpointError(
            f"{directory}: cannot load wav2vec2 ({str(e).splitlines()[0]}); "
            f"{WAV2VEC2_DOWNLOAD_HINT}"
        ) from e
    result = model.audio_encoder.load_state_dict(pretrained.state_dict(), strict=False)
    if result.missing_keys:
        raise CheckpointError(
            f"{directory}: wav2vec2 weights do not fit the model's audio encoder "
            f"(missing {result.missing_keys[:3]})"
        )


def _unwrap_state_dict(data: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Accept a bare state dict, a ``{"state_dict": ...}`` wrapper, or DataParallel prefixes."""
    if "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if data and all(k.startswith("module.") for k in data):
        data = {k[len("module.") :]: v for k, v in data.items()}
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def _shape(state_dict: dict[str, torch.Tensor], key: str, path: str | Path) -> tuple[int, ...]:
    if key not in state_dict:
        raise CheckpointError(
            f"{path}: not an EmoFace checkpoint (no '{key}'); expected the authors' "
            "*_model.pth state dict or a checkpoint saved by emoface"
        )
    return tuple(state_dict[key].shape)


def config_from_release_state_dict(
    state_dict: dict[str, torch.Tensor], path: str | Path = "<checkpoint>"
) -> ModelConfig:
    """Read the network's dimensions and wav2vec2 configuration off a released state dict.

    Shapes give every size except the attention head counts. Those cannot change a
    ``per_frame`` decoder's output (attention over one frame), so the Audio2Rig uses the
    paper's 8 heads; wav2vec2 uses its family's 64-wide heads (12 for base, 16 for large).
    Conv strides follow the wav2vec2 family: 5 for the 10-wide first kernel, 2 elsewhere.
    """
    n_emotions, embed_dim = _shape(state_dict, "embed.weight", path)
    hidden_dim = _shape(state_dict, "emotion.0.weight", path)[0]
    d_model, w2v_hidden = _shape(state_dict, "in_fn.weight", path)
    n_controllers = _shape(state_dict, "out_fn.weight", path)[0]
    ff_dim = _shape(state_dict, "encoder.layers.0.linear1.weight", path)[0]
    n_layers = _count_layers(state_dict, r"encoder\.layers\.(\d+)\.")
    max_positions = (
        _shape(state_dict, "pos_encoder.pe", path)[0] if "pos_encoder.pe" in state_dict else 5000
    )
    return ModelConfig(
        n_controllers=n_controllers,
        n_emotions=n_emotions,
        emotion_embed_dim=embed_dim,
        emotion_hidden_dim=hidden_dim,
        d_model=d_model,
        n_heads=8 if d_model % 8 == 0 else 1,
        n_layers=n_layers,
        ff_dim=ff_dim,
        max_positions=max_positions,
        decoder_mode="per_frame",
        wav2vec2=_wav2vec2_kwargs(state_dict, w2v_hidden, path),
    )


def _count_layers(state_dict: dict[str, torch.Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for k in state_dict if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _wav2vec2_kwargs(
    state_dict: dict[str, torch.Tensor], hidden: int, path: str | Path
) -> dict[str, Any]:
    fe = W2V + "feature_extractor.conv_layers."
    n_conv = _count_layers(state_dict, re.escape(fe) + r"(\d+)\.")
    if n_conv == 0:
        raise CheckpointError(f"{path}: no wav2vec2 weights ({fe}*) in this checkpoint")
    conv_shapes = [tuple(state_dict[f"{fe}{i}.conv.weight"].shape) for i in range(n_conv)]
    pos_v = state_dict.get(W2V + "encoder.pos_conv_embed.conv.weight_v")
    if pos_v is None:
        pos_v = state_dict.get(
            W2V + "encoder.pos_conv_embed.conv.parametrizations.weight.original1"
        )
    if pos_v is None:
        raise CheckpointError(f"{path}: no wav2vec2 positional conv weights in this checkpoint")
    layer_norm_everywhere = f"{fe}1.layer_norm.weight" in state_dict
    has_mask_embed = W2V + "masked_spec_embed" in state_dict
    return {
        "hidden_size": hidden,
        "num_hidden_layers": _count_layers(
            state_dict, re.escape(W2V) + r"encoder\.layers\.(\d+)\."
        ),
        "num_attention_heads": max(1, hidden // 64),
        "intermediate_size": int(
            state_dict[W2V + "encoder.layers.0.feed_forward.intermediate_dense.weight"].shape[0]
        ),
        "conv_dim": [s[0] for s in conv_shapes],
        "conv_kernel": [s[2] for s in conv_shapes],
        "conv_stride": [5 if s[2] == 10 else 2 for s in conv_shapes],
        "conv_bias": f"{fe}0.conv.bias" in state_dict,
        "feat_extract_norm": "layer" if layer_norm_everywhere else "group",
        "do_stable_layer_norm": layer_norm_everywhere,
        "num_conv_pos_embeddings": int(pos_v.shape[2]),
        "num_conv_pos_embedding_groups": int(hidden // pos_v.shape[1]),
        "mask_time_prob": 0.05 if has_mask_embed else 0.0,
        "mask_feature_prob": 0.0,
    }


def _rename_weight_norm(
    state_dict: dict[str, torch.Tensor], expected: set[str]
) -> dict[str, torch.Tensor]:
    """Map ``weight_g/weight_v`` to or from ``parametrizations.weight.original0/1``, as needed."""
    pairs = (
        ("weight_g", "parametrizations.weight.original0"),
        ("weight_v", "parametrizations.weight.original1"),
    )
    out = {}
    for key, value in state_dict.items():
        for old, new in pairs:
            if key.endswith("." + old) and key not in expected:
                candidate = key[: -len(old)] + new
                if candidate in expected:
                    key = candidate
            elif key.endswith("." + new) and key not in expected:
                candidate = key[: -len(new)] + old
                if candidate in expected:
                    key = candidate
        out[key] = value
    return out


def _check_finite(state_dict: dict[str, Any], path: str | Path) -> None:
    """Refuse weights holding NaN or infinity: they would bake NaN frames without a word."""
    for key, tensor in state_dict.items():
        floating = isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
        if floating and not bool(torch.isfinite(tensor).all()):
            n_bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"{path}: weight '{key}' holds {n_bad} NaN or infinite value(s); the "
                "checkpoint is corrupt (re-download it, or pick an earlier epoch)"
            )


def _load_state_dict(
    model: EmoFaceModel, state_dict: dict[str, torch.Tensor], path: str | Path
) -> None:
    expected = model.state_dict()
    state_dict = _rename_weight_norm(state_dict, set(expected))
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise CheckpointError(
            f"{path}: checkpoint keys do not match the network: {'; '.join(parts)}"
        )
    for key, tensor in state_dict.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{path}: '{key}' has shape {tuple(tensor.shape)}, "
                f"the network expects {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state_dict)
