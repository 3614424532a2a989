"""Live head motion: a face stream whose frames carry the head's yaw, pitch and roll too.

``HeadedStream`` feeds the same audio to the face ``Stream`` and to a ``HeadStream`` and
returns frames of 177 values (``mapping.SOURCE_NAMES``: the 174 controls, then the head in
degrees). The head is final ~100 ms after its audio; a face frame that is ready sooner (a
low-latency engine) carries the newest head rotation there is, so nothing waits for the head.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emoface_core.audio import FPS, SAMPLE_RATE
from emoface_core.head_stream import LOOKAHEAD_FRAMES, HeadStream

_TAIL_SAMPLES = int((LOOKAHEAD_FRAMES + 2) * SAMPLE_RATE / FPS) + 640  # silence that ends the head


class HeadedStream:
    """A face stream (``emoface_core.streaming.Stream``) plus head motion; see the module."""

    def __init__(self, stream: Any, head: HeadStream) -> None:
        self.stream = stream
        self.head = head
        self._rotations = np.zeros((0, 3), np.float32)  # head frames not yet sent
        self._first_rotation = 0  # frame index of _rotations[0]
        self._last = np.zeros(3, np.float32)  # the newest rotation sent
        self._n_out = 0

    def __getattr__(self, name: str) -> Any:  # everything else is the face stream's
        return getattr(self.stream, name)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """The face stream's new frames, each with the head's rotation appended."""
        faces = self.stream.process(samples)
        self._feed(samples)
        return self._join(faces)

    def process_gap(self, n_samples: int) -> np.ndarray:
        """``n_samples`` of silence (a feed's gap) for both streams."""
        faces = self.stream.process_gap(n_samples)
        self._feed(np.zeros(n_samples, np.float32))
        return self._join(faces)

    def finish(self) -> np.ndarray:
        """The last frames: the face stream's rest, the head ended on silence."""
        faces = self.stream.finish()
        self._feed(np.zeros(_TAIL_SAMPLES, np.float32))
        return self._join(faces)

    def _feed(self, samples: np.ndarray) -> None:
        weights = self.stream.emotion.weights(self.head.frame_index, 1)[0]
        new = self.head.push(samples, weights)
        self._rotations = np.concatenate([self._rotations, new])

    def _join(self, faces: np.ndarray) -> np.ndarray:
        n = len(faces)
        out = np.empty((n, faces.shape[1] + 3), np.float32)
        out[:, : faces.shape[1]] = faces
        # Each face frame takes its own head frame where that is final, else the newest one.
        k = self._n_out - self._first_rotation + np.arange(n)
        ready = k < len(self._rotations)
        out[ready, faces.shape[1] :] = self._rotations[k[ready]]
        if ready.any():
            self._last = self._rotations[k[ready][-1]]
        out[~ready, faces.shape[1] :] = self._last
        self._n_out += n
        used = min(max(0, self._n_out - self._first_rotation), len(self._rotations))
        self._rotations = self._rotations[used:]
        self._first_rotation += used
        return out
