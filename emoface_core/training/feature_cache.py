"""A cache of wav2vec2's frozen conv features, so that training epochs after the first skip them.

The conv feature extractor is frozen during training and deterministic, so the features of a
piece of audio (``EmoFaceModel.extract_features``: conv stack + 50 -> 60 fps interpolation) are
the same every epoch. They are computed once and kept in memory, and also on disk when a folder
is given, so the next run starts fast too.

An entry's key hashes everything its value depends on: the audio file's bytes, the piece of the
clip (sample range and frame count), the encoder (``encoder_fingerprint``: the conv weights and
configuration) and ``FEATURE_VERSION`` (bumped when the audio preparation changes). Changed audio
or a different encoder therefore never hits a stale entry; old entries are simply not read
again and the folder can be deleted at any time. Files are ``<dir>/<encoder>/<key>.npy``
(float32 ``[T, C_conv]``), written atomically; a damaged file is recomputed.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emoface_core.formats import atomic_write

log = logging.getLogger(__name__)

# Bump when the way audio becomes features changes (resampling, normalisation, interpolation).
FEATURE_VERSION = 1


def encoder_fingerprint(model: Any) -> str:
    """Hex hash of the model's frozen conv feature extractor (weights and layer geometry).

    Args:
        model: an ``EmoFaceModel`` (or anything with ``audio_encoder.feature_extractor``).
    """
    h = hashlib.sha256(f"v{FEATURE_VERSION}".encode())
    extractor = model.audio_encoder.feature_extractor
    for layer in extractor.conv_layers:
        conv = layer.conv
        h.update(f"{type(layer).__name__}:{conv.kernel_size}:{conv.stride}".encode())
    for name, tensor in sorted(extractor.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(data.shape)}:{data.dtype}".encode())
        h.update(data.float().numpy().tobytes())
    return h.hexdigest()


class FeatureCache:
    """Conv features by key, in memory and optionally on disk.

    Args:
        directory: folder for ``.npy`` files, or None to keep features in memory only.
        encoder: ``encoder_fingerprint`` of the model whose features are stored.
    """

    def __init__(self, directory: str | Path | None, encoder: str) -> None:
        self.encoder = encoder
        self.directory = Path(directory) / encoder[:16] if directory is not None else None
        self._memory: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    def key(self, audio_sha256: str, start_sample: int, end_sample: int, n_frames: int) -> str:
        """The key of one piece of one audio file."""
        text = (
            f"v{FEATURE_VERSION}|{self.encoder}|{audio_sha256}|{start_sample}:{end_sample}|"
            f"{n_frames}"
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> np.ndarray | None:
        """The stored features, or None; a damaged file counts as missing. Counts hits/misses."""
        value = self._load(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def _load(self, key: str) -> np.ndarray | None:
        if key in self._memory:
            return self._memory[key]
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            value = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            log.warning("%s: damaged feature cache entry, recomputing (%s)", path, e)
            return None
        if value.ndim != 2 or value.dtype != np.float32:
            log.warning(
                "%s: unexpected feature cache entry %s %s, recomputing",
                path,
                value.shape,
                value.dtype,
            )
            return None
        self._memory[key] = value
        return value

    def put(self, key: str, features: np.ndarray) -> None:
        """Store ``features`` (float32 ``[T, C]``) under ``key``."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        self._memory[key] = features
        path = self._path(key)
        if path is not None:
            buf = io.BytesIO()
            np.save(buf, features, allow_pickle=False)
            atomic_write(path, buf.getvalue())

    def get_or_compute(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """Return the stored value for ``key``, computing and storing it when absent."""
        value = self.get(key)
        if value is not None:
            return value
        value = np.ascontiguousarray(compute(), dtype=np.float32)
        self.put(key, value)
        return value

    def __contains__(self, key: str) -> bool:
        return key in self._memory or ((path := self._path(key)) is not None and path.is_file())

    def _path(self, key: str) -> Path | None:
        return self.directory / f"{key}.npy" if self.directory is not None else None
