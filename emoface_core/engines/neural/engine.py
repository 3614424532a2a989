"""The EmoFace network as an ``Engine``: a loaded model plus its inference settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emoface_core.audio import Audio
from emoface_core.emotion import EmotionControl, EmotionTimeline
from emoface_core.engines.base import StreamConfig
from emoface_core.engines.neural.inference import DEFAULT_CHUNK_S, DEFAULT_OVERLAP_S, animate
from emoface_core.engines.neural.model import EmoFaceModel
from emoface_core.engines.neural.streaming import NeuralRawStream, StreamingNetwork


class NeuralEngine:
    """Runs ``EmoFaceModel`` over whole clips (windowed for long audio)."""

    name = "emoface"
    wants_smoothing = True
    takes_seed = False  # the network is deterministic; blinks and gaze take the seed

    def __init__(
        self,
        model: EmoFaceModel,
        *,
        info: dict[str, Any] | None = None,
        chunk_s: float = DEFAULT_CHUNK_S,
        overlap_s: float = DEFAULT_OVERLAP_S,
        precision: str = "auto",
    ) -> None:
        self.model = model.eval()
        self.info = info or {}
        self.chunk_s = chunk_s
        self.overlap_s = overlap_s
        self.precision = precision
        self._streaming: StreamingNetwork | None = None

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, *, device: str | None = None, **options: Any
    ) -> NeuralEngine:
        """Load weights (released or project checkpoint) and wrap them."""
        from emoface_core.engines.neural.checkpoint import load_model

        model, info = load_model(path, device=device)
        return cls(model, info=info, **options)

    def infer(self, audio: Audio, timeline: EmotionTimeline) -> np.ndarray:
        """Raw network output ``[audio.n_frames, 174]``."""
        return animate(
            self.model,
            audio,
            timeline,
            chunk_s=self.chunk_s,
            overlap_s=self.overlap_s,
            precision=self.precision,
        )

    def open_raw_stream(
        self,
        emotion: EmotionControl,
        config: StreamConfig,
        *,
        seed: int | None = None,
        provisional: bool = True,
        expected_samples: int | None = None,
    ) -> NeuralRawStream:
        """Start causal streaming inference (``engines.neural.streaming``).

        Streams of one engine share its ``StreamingNetwork`` (constants of the weights, built
        once per model: replacing ``model``, e.g. by a fast-mode copy, builds a new one), so
        ``emoface_core.streaming.process_many`` steps them in one batched call.
        """
        if self._streaming is None or self._streaming.model is not self.model:
            self._streaming = StreamingNetwork(self.model)
        return self._streaming.open(
            emotion, config, provisional=provisional, expected_samples=expected_samples
        )

    def describe(self) -> dict[str, Any]:
        """Engine facts for metadata."""
        device = next(self.model.parameters()).device
        return {
            "name": self.name,
            "checkpoint": self.info.get("path"),
            "checkpoint_kind": self.info.get("kind"),
            "decoder_mode": self.model.config.decoder_mode,
            "device": str(device),
            "precision": self.precision,
        }
