"""The EmoFace network as an ``Engine``: a loaded model plus its inference settings.

Precision: "exact" (default) runs float32 (on CUDA too): outputs equal the release forward to
float rounding. "fast" runs what the device does natively in low precision: on a CPU the
``fastmode`` copy of the model (bf16 on AMX/AVX512-BF16, int8 on VNNI, else float32, said in
``precision_note``), on CUDA fp16 autocast. The autocast names of ``inference.animate`` ("fp32",
"fp16", "bf16", "auto") are accepted too, for the callers that chose one before.
"""

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
from emoface_core.errors import ConfigError

PRECISIONS = ("exact", "fast")
AUTOCAST_PRECISIONS = ("fp32", "fp16", "bf16", "auto")


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
        precision: str = "exact",
        owns_model: bool = False,
    ) -> None:
        if precision not in PRECISIONS + AUTOCAST_PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(PRECISIONS)}, but {precision!r} is given"
            )
        self.model = model.eval()
        self.info = info or {}
        self.chunk_s = chunk_s
        self.overlap_s = overlap_s
        self.precision = precision
        self.precision_note = ""  # what "fast" runs on this machine
        self._owns_model = owns_model  # nobody else holds the model: "fast" may convert it
        self._autocast = precision if precision in AUTOCAST_PRECISIONS else "fp32"
        if precision == "fast":
            self._make_fast()
        self._streaming: StreamingNetwork | None = None

    def _make_fast(self) -> None:
        device = next(self.model.parameters()).device
        if device.type == "cuda":
            self._autocast = "fp16"
            self.precision_note = "fp16 autocast on CUDA"
            return
        from emoface_core.engines.neural.fastmode import choose_fast_mode, fast_model

        mode, self.precision_note = choose_fast_mode()
        # In place when the engine owns its model: no second float32 copy while converting.
        self.model = fast_model(self.model, mode, inplace=self._owns_model)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, *, device: str | None = None, **options: Any
    ) -> NeuralEngine:
        """Load weights (released or project checkpoint) and wrap them."""
        from emoface_core.engines.neural.checkpoint import load_model

        model, info = load_model(path, device=device)
        return cls(model, info=info, owns_model=True, **options)

    def with_precision(self, precision: str) -> NeuralEngine:
        """The same network at another precision (this engine when it already has it).

        When this engine owns its model, a "fast" engine converts it in place: use only the
        returned engine from then on.
        """
        if precision == self.precision:
            return self
        return NeuralEngine(
            self.model,
            info=self.info,
            chunk_s=self.chunk_s,
            overlap_s=self.overlap_s,
            precision=precision,
            owns_model=self._owns_model,
        )

    def infer(self, audio: Audio, timeline: EmotionTimeline) -> np.ndarray:
        """Raw network output ``[audio.n_frames, 174]``."""
        return animate(
            self.model,
            audio,
            timeline,
            chunk_s=self.chunk_s,
            overlap_s=self.overlap_s,
            precision=self._autocast,
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
            self._streaming = StreamingNetwork(self.model, self._autocast_for_streaming())
        return self._streaming.open(
            emotion, config, provisional=provisional, expected_samples=expected_samples
        )

    def _autocast_for_streaming(self) -> str:
        """Whole-clip autocast, made concrete ("auto" is fp16 on CUDA, nothing on a CPU)."""
        if self._autocast != "auto":
            return self._autocast
        device = next(self.model.parameters()).device
        return "fp16" if device.type == "cuda" else "fp32"

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
            **({"precision_path": self.precision_note} if self.precision_note else {}),
        }
