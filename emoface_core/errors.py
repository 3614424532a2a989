"""Domain errors of emoface_core; the CLI turns each into one line on stderr."""

from __future__ import annotations


class EmoFaceError(Exception):
    """Base of every error the library raises on purpose (bad input, missing files)."""


class AudioError(EmoFaceError, ValueError):
    """An audio file or buffer cannot be used (missing, empty, corrupt, wrong shape)."""


class EmotionSpecError(EmoFaceError, ValueError):
    """An emotion spec such as ``happy@0,sad@2.5`` does not parse."""


class CheckpointError(EmoFaceError, RuntimeError):
    """A checkpoint is missing, corrupt, of an unknown format or of the wrong shape."""


class DatasetError(EmoFaceError, ValueError):
    """A training/evaluation dataset is missing pieces or malformed."""


class ConfigError(EmoFaceError, ValueError):
    """A configuration value is out of its allowed range."""


class EngineError(EmoFaceError, RuntimeError):
    """An engine produced output that must not leave it (NaN or infinite values)."""
