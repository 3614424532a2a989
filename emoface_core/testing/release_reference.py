"""A plain re-statement of the authors' released network, used as the parity oracle.

Tests and benchmarks build this network from stock torch and transformers modules, save its state
dict the way the release did (PyTorch 1.9 era: the positional conv's weight norm stored as
``weight_g``/``weight_v``), load that file through
``emoface_core.engines.neural.checkpoint.load_model`` and
compare outputs. It reproduces the release's quirks on purpose: ``nn.TransformerEncoder`` built with
``batch_first=False`` but fed ``[1, T, D]`` (so attention runs over a length-1 sequence per frame),
and ``x + pe[:x.size(0)]`` with ``x.size(0) == 1`` (so every frame gets ``pe[0]``). No shortcuts.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class ReleasePositionalEncoding(nn.Module):
    """Sinusoidal table indexed by the first dimension of its input, as released."""

    def __init__(self, d_model: int, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=0.1)
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0).transpose(0, 1))

    pe: torch.Tensor  # a registered buffer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add ``pe[:x.size(0)]`` (``pe[0]`` for the release's batch-first input)."""
        return self.dropout(x + self.pe[: x.size(0), :])


class ReleaseEmoFace(nn.Module):
    """The released EmoFace network, wav2vec2 built from a config (no hub access)."""

    def __init__(
        self,
        wav2vec2_config: Any,  # transformers.Wav2Vec2Config
        *,
        emo_dim: int = 7,
        out_dim: int = 174,
        d_model: int = 512,
        nhead: int = 8,
        num_layers: int = 10,
        dim_feedforward: int = 2048,
    ) -> None:
        super().__init__()
        from transformers import Wav2Vec2Model

        self.embed = nn.Embedding(emo_dim, 256)
        self.emotion = nn.Sequential(
            nn.Linear(256, 512), nn.LeakyReLU(0.2), nn.Linear(512, d_model)
        )
        self.audio_encoder = Wav2Vec2Model(wav2vec2_config)
        self.audio_encoder.feature_extractor._freeze_parameters()
        layer = nn.TransformerEncoderLayer(
            d_model=d_model, nhead=nhead, dim_feedforward=dim_feedforward
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.in_fn = nn.Linear(wav2vec2_config.hidden_size, d_model)
        self.out_fn = nn.Linear(d_model, out_dim)
        self.pos_encoder = ReleasePositionalEncoding(d_model)

    def encode_audio(self, audio: torch.Tensor, seq_len: int) -> torch.Tensor:
        """wav2vec2 with the release's 50 -> 60 fps interpolation before the transformer."""
        enc = self.audio_encoder
        hidden = enc.feature_extractor(audio).transpose(1, 2)
        hidden = F.interpolate(
            hidden.transpose(1, 2), size=seq_len, align_corners=True, mode="linear"
        ).transpose(1, 2)
        hidden, _ = enc.feature_projection(hidden)
        return enc.encoder(hidden).last_hidden_state

    def forward(self, audio: torch.Tensor, seq_len: int, emotion: int) -> torch.Tensor:
        """``audio [1, S]`` normalised 16 kHz, one emotion id -> ``[1, seq_len, out_dim]``."""
        e = torch.tensor([[emotion]], dtype=torch.long, device=audio.device)
        emo_embed = self.emotion(self.embed(e))  # [1, 1, d_model]
        layer_in = self.in_fn(self.encode_audio(audio, seq_len))
        layer_in = self.pos_encoder(layer_in)
        layer_in = emo_embed + layer_in
        layer_in = self.encoder(layer_in)  # batch_first=False, fed [1, T, D]: the release's call
        return self.out_fn(layer_in)


def release_state_dict(model: ReleaseEmoFace) -> dict[str, torch.Tensor]:
    """The state dict as the release saved it: weight-norm tensors as ``weight_g``/``weight_v``."""
    out = {}
    for key, value in model.state_dict().items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        out[key] = value.detach().clone()
    return out
