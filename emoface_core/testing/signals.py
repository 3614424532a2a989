"""Small inputs tests and benchmarks share: the tiny wav2vec2 config and speech-like audio."""

from __future__ import annotations

import numpy as np

from emoface_core.audio import SAMPLE_RATE

# A wav2vec2 small enough to run in milliseconds: 64 wide (one 64-wide head, as the release
# loader infers heads from width), 2 layers, a 3-layer conv stack of stride 20 (800 Hz frames).
TINY_WAV2VEC2 = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 1,
    "intermediate_size": 96,
    "conv_dim": [32, 32, 32],
    "conv_kernel": [10, 3, 3],
    "conv_stride": [5, 2, 2],
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}


def speech_like(duration_s: float, seed: int = 0) -> np.ndarray:
    """Noise and a voiced buzz in 4 Hz syllables: every layer of a network gets something to do."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2
    voiced = np.sin(2 * np.pi * 140 * t) + 0.5 * np.sin(2 * np.pi * 280 * t)
    return (0.3 * envelope * (voiced + 0.3 * rng.standard_normal(t.size))).astype(np.float32)
