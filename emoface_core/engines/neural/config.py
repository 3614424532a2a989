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
