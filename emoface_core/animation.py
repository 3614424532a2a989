"""The product of every engine: controller values per frame plus the metadata that explains them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emoface_core.audio import FPS
from emoface_core.controllers import CONTROLLER_NAMES


@dataclass
class Animation:
    """Controller values of one clip.

    Attributes:
        values: float32 ``[T, 174]``, columns in ``CONTROLLER_NAMES`` order.
        fps: frames per second (60 for EmoFace).
        metadata: JSON-ready facts: engine, emotion timeline, seed, source audio, raw flag.
        head: float32 ``[T, 3]`` head yaw, pitch, roll in degrees (``emoface_core.head``), or
            None when the animation has no head motion (``.txt`` bakes, raw output, ``head=0``).
    """

    values: np.ndarray
    fps: float = FPS
    metadata: dict[str, Any] = field(default_factory=dict)
    controller_names: tuple[str, ...] = CONTROLLER_NAMES
    head: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        assert self.values.ndim == 2 and self.values.shape[1] == len(self.controller_names), (
            f"values must be [T, {len(self.controller_names)}], got {self.values.shape}"
        )
        if self.head is not None:
            self.head = np.asarray(self.head, dtype=np.float32)
            assert self.head.shape == (self.values.shape[0], 3), (
                f"head must be [T, 3], got {self.head.shape}"
            )

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return int(self.values.shape[0])

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.n_frames / self.fps

    def channel(self, name: str) -> np.ndarray:
        """Values ``[T]`` of one channel by name."""
        return self.values[:, self.controller_names.index(name)]
