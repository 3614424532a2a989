"""The EmoFace network (paper 3.1): wav2vec2 audio encoder, emotion encoder, Audio2Rig transformer.

Submodule names match the authors' release (``embed``, ``emotion``, ``audio_encoder``, ``encoder``,
``in_fn``, ``out_fn``, ``pos_encoder``) so released state dicts load key for key.

Data flow, shapes in ``[B, T, C]`` at 60 fps::

    audio [B, S] (16 kHz, normalised)
      -> wav2vec2 conv feature extractor (frozen)          [B, T50, 512]  (50 fps)
      -> linear interpolation to T frames (align_corners)   [B, T, 512]
      -> wav2vec2 feature projection + transformer          [B, T, 768]
      -> in_fn + positional encoding + emotion code         [B, T, 512]
      -> Audio2Rig: 10 transformer encoder layers           [B, T, 512]
      -> out_fn                                             [B, T, 174]

The emotion enters as per-frame weights over the 7 emotions ``[B, T, 7]``: the code of a frame is
the weighted sum of the 7 emotion codes. One-hot weights give exactly the release's code; other
weights give intensities and cross-fades (see ``emoface_core.emotion``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from emoface_core.engines.neural.config import ModelConfig
from emoface_core.engines.neural.packed_linear import linear_from, pack_linear_layers

MIN_SAMPLES = 400  # receptive field of wav2vec2's conv stack (25 ms); shorter input is padded
CONV_BLOCK_FRAMES = 100  # conv stack output frames per block for long inputs (2 s at 50 fps)
# Frames per block where rows are independent (feed-forward layers, the per-frame decoder) in
# inference: a 60 s clip's [3600, 3072] intermediates would otherwise be mapped and zero-filled
# by the allocator on every layer; blocks of 1024 rows are reused from the heap (5 % at 60 s).
ROW_BLOCK = 1024


_row_blocked_class: type | None = None


def _row_blocked_feed_forward() -> type | None:
    """The class ``RowBlockedFeedForward``, made on first use.

    wav2vec2's feed-forward layer, run in blocks of ``ROW_BLOCK`` frames at inference. Made
    lazily so that importing this module needs no transformers. (Models with wav2vec2's
    weight-norm parametrization cannot be pickled anyway; state dicts are unchanged.)
    """
    global _row_blocked_class
    if _row_blocked_class is None:
        try:
            from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2FeedForward
        except ImportError:  # pragma: no cover - another transformers layout: plain layers
            return None

        class RowBlockedFeedForward(Wav2Vec2FeedForward):
            def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
                if hidden_states.shape[-2] <= ROW_BLOCK or torch.is_grad_enabled():
                    return super().forward(hidden_states)
                parts = hidden_states.split(ROW_BLOCK, dim=-2)
                return torch.cat([super(RowBlockedFeedForward, self).forward(p) for p in parts], -2)

        _row_blocked_class = RowBlockedFeedForward
    return _row_blocked_class


def _block_feed_forward_rows(audio_encoder: nn.Module) -> None:
    """Swap wav2vec2's feed-forward layers to ``RowBlockedFeedForward`` (in place).

    A class swap, like ``PackedLinear``: same submodules and state-dict keys.
    """
    cls = _row_blocked_feed_forward()
    if cls is None:
        return
    for module in audio_encoder.modules():
        if type(module) is cls.__bases__[0]:
            module.__class__ = cls


class PositionalEncoding(nn.Module):
    """Sinusoidal table ``pe`` of shape ``[max_positions, 1, d_model]`` (the release's layout)."""

    pe: torch.Tensor  # a registered buffer

    def __init__(self, d_model: int, max_positions: int = 5000, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_positions, dtype=torch.float32).unsqueeze(1)
        div_term = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
        )
        pe = torch.zeros(max_positions, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(1))

    def forward(self, x: torch.Tensor, *, per_frame: bool, start: int = 0) -> torch.Tensor:
        """Add positions to ``x [B, T, D]``: ``pe[0]`` to all when ``per_frame``, else ``pe[t]``."""
        if per_frame:
            x = x + self.pe[0]
        else:
            n = x.shape[1]
            if start + n > self.pe.shape[0]:
                raise ValueError(
                    f"sequence of {start + n} frames exceeds the positional table "
                    f"({self.pe.shape[0]} frames); infer in shorter windows"
                )
            x = x + self.pe[start : start + n, 0]
        return self.dropout(x)


class EmoFaceModel(nn.Module):
    """EmoFace: audio + emotion -> 174 controller values per frame."""

    # transformers' Wav2Vec2Model: its submodules (conv layers, attention) are read by
    # attribute, which torch's Module typing cannot follow.
    audio_encoder: Any

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        from transformers import Wav2Vec2Model

        self.config = config
        w2v_config = config.wav2vec2_config()
        self.embed = nn.Embedding(config.n_emotions, config.emotion_embed_dim)
        self.emotion = nn.Sequential(
            nn.Linear(config.emotion_embed_dim, config.emotion_hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(config.emotion_hidden_dim, config.d_model),
        )
        self.audio_encoder = Wav2Vec2Model(w2v_config)
        self.audio_encoder.feature_extractor._freeze_parameters()
        _block_feed_forward_rows(self.audio_encoder)
        layer = nn.TransformerEncoderLayer(
            d_model=config.d_model,
            nhead=config.n_heads,
            dim_feedforward=config.ff_dim,
            dropout=config.dropout,
        )
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.in_fn = nn.Linear(w2v_config.hidden_size, config.d_model)
        self.out_fn = nn.Linear(config.d_model, config.n_controllers)
        self.pos_encoder = PositionalEncoding(config.d_model, config.max_positions, config.dropout)
        nn.init.zeros_(self.out_fn.weight)  # the release starts from a zero output
        nn.init.zeros_(self.out_fn.bias)
        self._fused_cache: tuple[tuple, list] | None = None
        # CPU float32 inference reads prepacked weights (same arithmetic); training is unchanged.
        pack_linear_layers(self)

    @property
    def per_frame(self) -> bool:
        """True for the release's decoder semantics (every frame decoded on its own)."""
        return self.config.decoder_mode == "per_frame"

    def extract_features(self, audio: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Frozen conv features resampled to the 60 fps grid, exactly as the release does.

        Args:
            audio: normalised 16 kHz audio ``[B, S]``.
            n_frames: output frames T.

        Returns:
            ``[B, T, C_conv]`` (C_conv = 512 for wav2vec2-base).
        """
        feats = self.conv_features(audio)  # [B, C, T50]
        feats = F.interpolate(feats, size=n_frames, mode="linear", align_corners=True)
        return feats.transpose(1, 2)

    def conv_features(
        self,
        audio: torch.Tensor,
        norm_stats: tuple[torch.Tensor, torch.Tensor] | None = None,
        block_frames: int = CONV_BLOCK_FRAMES,
    ) -> torch.Tensor:
        """wav2vec2's conv stack: ``[B, S] -> [B, C_conv, T50]``.

        wav2vec2-base normalises its first conv layer per channel over the *whole input*
        (GroupNorm with one group per channel). ``norm_stats`` (from ``conv_norm_stats`` over a
        whole clip) replaces those window-local statistics, so a window of a long clip gets
        exactly the features the whole clip would give it.

        Long inputs run in blocks of ``block_frames`` output frames (2 s by default), each
        block's samples starting on a whole output stride, with the whole input's statistics:
        the same values up to float rounding, but the stack's large intermediates (a 10 s clip's
        first layer alone is 3 x 64 MB) stay small enough to be reused from the heap and cache
        instead of being mapped and zero-filled for every layer (4-8 % of a whole-clip pass).
        """
        if audio.shape[-1] < MIN_SAMPLES:
            audio = F.pad(audio, (0, MIN_SAMPLES - audio.shape[-1]))
        n_out = self.conv_output_length(audio.shape[-1])
        if block_frames and n_out > block_frames:
            if norm_stats is None:
                norm_stats = self.conv_norm_stats(audio)
            stride, field = self.conv_stride(), self.conv_receptive_field()
            blocks = [
                self._conv_stack(
                    audio[:, f0 * stride : (min(n_out, f0 + block_frames) - 1) * stride + field],
                    norm_stats,
                )
                for f0 in range(0, n_out, block_frames)
            ]
            return torch.cat(blocks, dim=-1)
        return self._conv_stack(audio, norm_stats)

    def _conv_stack(
        self, audio: torch.Tensor, norm_stats: tuple[torch.Tensor, torch.Tensor] | None
    ) -> torch.Tensor:
        x = audio[:, None]
        layers = self.audio_encoder.feature_extractor.conv_layers
        if norm_stats is None and hasattr(layers[0], "forward_normalised") and x.shape[0] == 1:
            norm_stats = self.conv_norm_stats(audio)  # the fast first layer folds them in
        for i, layer in enumerate(layers):
            norm = getattr(layer, "layer_norm", None)
            if i == 0 and norm_stats is not None and hasattr(layer, "forward_normalised"):
                x = layer.forward_normalised(x, *norm_stats)  # fastmode.Bf16FirstConv
            elif i == 0 and norm_stats is not None and isinstance(norm, nn.GroupNorm):
                x = layer.activation(self._conv0_normalised(layer.conv, norm, x, *norm_stats))
            else:
                x = layer(x)
        return x.float()  # a fast-mode (bf16) stack ends in bf16; a float32 one is returned as is

    @staticmethod
    def _conv0_normalised(
        conv: nn.Conv1d, norm: nn.GroupNorm, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor
    ) -> torch.Tensor:
        """The first conv layer and its GroupNorm under given statistics ``[B, C, 1]``.

        Both are affine per channel, so for one input they fold into a single convolution
        (kernels scaled by ``weight / std``, bias ``norm_bias - mean * weight / std``): no pass
        over the layer's output, the largest tensor of the stack. Audio is normalised to zero
        mean, so the channel means are small next to their spread and the fold loses nothing
        to cancellation (float rounding only).
        """
        scale = torch.rsqrt(var + norm.eps) * norm.weight[:, None]  # [B, C, 1]
        if x.shape[0] != 1:  # per-input statistics: normalise the output instead
            return (conv(x) - mean) * scale + norm.bias[:, None]
        conv_bias = conv.bias[:, None] if conv.bias is not None else 0.0
        bias = ((conv_bias - mean) * scale)[0, :, 0] + norm.bias
        weight = conv.weight * scale[0][:, :, None]  # [C, C_in, K] * [C, 1, 1]
        return F.conv1d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    def conv_norm_stats(
        self, audio: torch.Tensor, block_frames: int = 65_536
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-channel mean and variance ``[B, C, 1]`` of the first conv layer over all ``audio``.

        The layer is linear, so its output statistics follow exactly from the mean ``[K]`` and
        covariance ``[K, K]`` of its ``K``-sample input windows: ``mean = W mu + b``,
        ``var = diag(W Sigma W^T)``, in float64, without running the layer. Windows are read
        in blocks (5 MB), so a 10-minute clip needs no more memory than a short one. Returns
        None when the feature extractor has no per-input GroupNorm.
        """
        batch, n_samples = audio.shape
        x = audio.detach()
        return self.conv_norm_stats_of(lambda lo, hi: x[:, lo:hi], n_samples, block_frames)

    def conv_norm_stats_of(
        self,
        read: Callable[[int, int], torch.Tensor],
        n_samples: int,
        block_frames: int = 65_536,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``conv_norm_stats`` of audio that ``read(lo, hi)`` hands out piece by piece ``[B, n]``.

        For a long clip normalised on the fly: no copy of the whole clip is made.
        """
        layer = self.audio_encoder.feature_extractor.conv_layers[0]
        if not isinstance(getattr(layer, "layer_norm", None), nn.GroupNorm):
            return None
        conv = layer.conv
        kernel, stride = conv.kernel_size[0], conv.stride[0]
        n_out = (n_samples - kernel) // stride + 1
        window_sum: torch.Tensor | None = None
        window_outer: torch.Tensor | None = None
        for j0 in range(0, n_out, block_frames):
            n = min(n_out, j0 + block_frames) - j0
            # Each block in float64 (not the whole clip: an hour of audio would be 460 MB).
            piece = read(j0 * stride, (j0 + n - 1) * stride + kernel).double().contiguous()
            windows = piece.as_strided((piece.shape[0], n, kernel), (piece.stride(0), stride, 1))
            block_sum = windows.sum(dim=1)
            block_outer = windows.transpose(1, 2) @ windows
            window_sum = block_sum if window_sum is None else window_sum + block_sum
            window_outer = block_outer if window_outer is None else window_outer + block_outer
        assert window_sum is not None and window_outer is not None
        mu = window_sum / n_out
        cov = window_outer / n_out - mu[:, :, None] * mu[:, None, :]
        weight = conv.weight.detach().double()[:, 0, :]  # [C, K]; wav2vec2's layer has 1 input
        bias = conv.bias.detach().double() if conv.bias is not None else 0.0
        mean = mu @ weight.T + bias
        var = torch.einsum("ck,bkl,cl->bc", weight, cov, weight).clamp_min(0.0)
        return mean[:, :, None].float(), var[:, :, None].float()

    def conv_output_length(self, n_samples: int) -> int:
        """Frames the conv stack produces for ``n_samples`` of audio."""
        length = max(n_samples, MIN_SAMPLES)
        for layer in self.audio_encoder.feature_extractor.conv_layers:
            length = (length - layer.conv.kernel_size[0]) // layer.conv.stride[0] + 1
        return length

    def conv_receptive_field(self) -> int:
        """Samples that one conv frame depends on (400 for wav2vec2-base: 25 ms)."""
        field = 1
        for layer in reversed(self.audio_encoder.feature_extractor.conv_layers):
            field = (field - 1) * layer.conv.stride[0] + layer.conv.kernel_size[0]
        return field

    def conv_stride(self) -> int:
        """Samples between consecutive conv frames (320 for wav2vec2-base: 50 fps)."""
        stride = 1
        for layer in self.audio_encoder.feature_extractor.conv_layers:
            stride *= layer.conv.stride[0]
        return stride

    def encode_features(self, features: torch.Tensor) -> torch.Tensor:
        """wav2vec2 feature projection and transformer: ``[B, T, C_conv] -> [B, T, hidden]``."""
        hidden, _ = self.audio_encoder.feature_projection(features)
        if self.training:
            hidden = self.audio_encoder._mask_hidden_states(hidden)  # SpecAugment, as in training
        return self.audio_encoder.encoder(hidden).last_hidden_state

    def emotion_codes(self) -> torch.Tensor:
        """The 7 emotion codes ``[7, d_model]`` (emotion encoder applied to every embedding)."""
        return self.emotion(self.embed.weight)

    def decode(
        self, hidden: torch.Tensor, emotion_weights: torch.Tensor, *, start_frame: int = 0
    ) -> torch.Tensor:
        """Audio2Rig: ``hidden [B, T, H]`` and ``emotion_weights [B, T, 7]`` -> ``[B, T, 174]``.

        Args:
            hidden: wav2vec2 output.
            emotion_weights: per-frame weights over the emotions (rows sum to 1).
            start_frame: position of the first frame (temporal mode, windowed inference).
        """
        x = self.pos_encoder(self.in_fn(hidden), per_frame=self.per_frame, start=start_frame)
        x = x + emotion_weights.to(x.dtype) @ self.emotion_codes()
        b, t, d = x.shape
        if self.per_frame:
            if not self.training and not torch.is_grad_enabled():
                rows = x.reshape(b * t, d).split(ROW_BLOCK, dim=0)  # frames are independent
                x = torch.cat([self._per_frame_fast(part) for part in rows])
            else:
                # Sequence length 1, batch B*T: exactly the release's (batch_first=False) call.
                x = self.encoder(x.reshape(1, b * t, d))
            x = x.reshape(b, t, d)
        else:
            x = self.encoder(x.transpose(0, 1)).transpose(0, 1)
        return self.out_fn(x)

    def forward(
        self, audio: torch.Tensor, emotion_weights: torch.Tensor, n_frames: int
    ) -> torch.Tensor:
        """Audio ``[B, S]`` + emotion weights ``[B, T, 7]`` -> controller values ``[B, T, 174]``."""
        hidden = self.encode_features(self.extract_features(audio, n_frames))
        return self.decode(hidden, emotion_weights)

    def _per_frame_fast(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame Audio2Rig with each layer's attention folded into one matrix.

        Attention over a single frame returns that frame's value, so a layer's attention block is
        ``out_proj(v_proj(x))``: one affine map ``W_o W_v x + (W_o b_v + b_o)``. The query and key
        projections and the softmax drop out. Same result up to float rounding (~1e-6).
        """
        for layer, attention in zip(self.encoder.layers, self._fused_attention()):
            x = layer.norm1(x + attention(x))
            x = layer.norm2(x + layer.linear2(layer.activation(layer.linear1(x))))
        return x

    def _fused_attention(self) -> list[nn.Linear]:
        params = [layer.self_attn for layer in self.encoder.layers]
        key = tuple(
            (
                p.in_proj_weight._version,
                p.in_proj_weight.data_ptr(),
                p.out_proj.weight._version,
                p.out_proj.weight.data_ptr(),
                p.out_proj.weight.dtype,
            )
            for p in params
        )
        if self._fused_cache is None or self._fused_cache[0] != key:
            d = self.config.d_model
            fused = []
            for attn in params:
                w_v = attn.in_proj_weight[2 * d :]
                b_v = attn.in_proj_bias[2 * d :]
                w_o, b_o = attn.out_proj.weight, attn.out_proj.bias
                fused.append(linear_from(w_o @ w_v, w_o @ b_v + b_o))
            self._fused_cache = (key, fused)
        return self._fused_cache[1]
