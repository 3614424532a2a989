"""Model dimensions. A checkpoint carries its ``ModelConfig``, and the model is rebuilt from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from emoface_core.errors import ConfigError

# How the Audio2Rig transformer sees time.
# "temporal": the paper's design: true per-frame positions and self-attention across frames.
# "per_frame": the authors' release: its nn.TransformerEncoder (batch_first=False) was fed
#   batch-first tensors, so attention ran over a length-1 sequence (every frame on its own) and the
#   positional encoding added pe[0] to every frame. Released weights were trained that way.
DECODER_MODES = ("temporal", "per_frame")
# Upper bounds of what a checkpoint may ask to build, so that a small file with absurd numbers
# fails with a message instead of asking the allocator for tens of GB. wav2vec2-large and the
# published network are well inside them.
MAX_WIDTH = 4096  # d_model, ff_dim / 4, wav2vec2 hidden and conv widths
MAX_LAYERS = 64
MAX_POSITIONS = 200_000  # 55 minutes at 60 fps
MAX_PARAMETERS = 2_000_000_000  # rough count, 8 GB of float32
_W2V_LIMITS = {
    "hidden_size": MAX_WIDTH,
    "num_hidden_layers": MAX_LAYERS,
    "num_attention_heads": 256,
    "intermediate_size": 4 * MAX_WIDTH,
    "num_conv_pos_embeddings": 1024,
    "num_conv_pos_embedding_groups": 1024,
}


@dataclass(frozen=True)
class ModelConfig:
    """EmoFace network dimensions (paper 3.1, 4.2); defaults are the published network."""

    n_controllers: int = 174  # rig controller values per frame
    n_emotions: int = 7  # angry disgust fear happy neutral sad surprise
    emotion_embed_dim: int = 256  # Embedding(7, 256)
    emotion_hidden_dim: int = 512  # Linear(256, 512) -> LeakyReLU(0.2) -> Linear(512, d_model)
    d_model: int = 512  # Audio2Rig width
    n_heads: int = 8
    n_layers: int = 10
    ff_dim: int = 2048
    dropout: float = 0.1
    max_positions: int = 5000  # rows of the sinusoidal table: 83 s at 60 fps
    decoder_mode: str = "temporal"
    # transformers.Wav2Vec2Config keyword arguments; {} means wav2vec2-base (768 wide, 12 layers).
    wav2vec2: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.decoder_mode not in DECODER_MODES:
            raise ConfigError(
                f"decoder_mode must be one of {DECODER_MODES}, but {self.decoder_mode!r} is given"
            )
        for name in ("n_controllers", "n_emotions", "d_model", "n_heads", "n_layers", "ff_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, but {getattr(self, name)} is given")
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        self._check_sizes()

    def _check_sizes(self) -> None:
        """Refuse dimensions no real network has (a corrupt or hostile checkpoint)."""
        limits = {
            "d_model": MAX_WIDTH,
            "emotion_embed_dim": MAX_WIDTH,
            "emotion_hidden_dim": MAX_WIDTH,
            "ff_dim": 4 * MAX_WIDTH,
            "n_heads": 256,
            "n_layers": MAX_LAYERS,
            "max_positions": MAX_POSITIONS,
            "n_controllers": 4096,
            "n_emotions": 64,
        }
        for name, limit in limits.items():
            if getattr(self, name) > limit:
                raise ConfigError(
                    f"{name} must be at most {limit}, but {getattr(self, name)} is given"
                )
        w2v = self.wav2vec2
        for name, limit in _W2V_LIMITS.items():
            value = w2v.get(name)
            if value is not None and not (isinstance(value, int) and 1 <= value <= limit):
                raise ConfigError(f"wav2vec2.{name} must be 1..{limit}, but {value!r} is given")
        for name in ("conv_dim", "conv_kernel", "conv_stride"):
            value = w2v.get(name)
            if value is None:
                continue
            if (
                not isinstance(value, (list, tuple))
                or not 1 <= len(value) <= 16
                or not all(isinstance(v, int) and 1 <= v <= MAX_WIDTH for v in value)
            ):
                raise ConfigError(f"wav2vec2.{name} must be 1-16 sizes of 1..{MAX_WIDTH}")
        hidden = int(w2v.get("hidden_size", 768))
        inner = int(w2v.get("intermediate_size", 3072))
        layers = int(w2v.get("num_hidden_layers", 12))
        estimate = layers * (4 * hidden * hidden + 2 * hidden * inner) + self.n_layers * (
            4 * self.d_model * self.d_model + 2 * self.d_model * self.ff_dim
        )
        if estimate > MAX_PARAMETERS:
            raise ConfigError(
                f"the network would have about {estimate:,} parameters; at most "
                f"{MAX_PARAMETERS:,} are supported (a corrupt checkpoint?)"
            )

    def wav2vec2_config(self):
        """The ``transformers.Wav2Vec2Config`` of the audio encoder."""
        from transformers import Wav2Vec2Config

        return Wav2Vec2Config(**self.wav2vec2)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (stored inside checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from ``to_dict`` output; unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown ModelConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)
