"""Domain errors of the bridge; the CLI turns each into one line on stderr."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.protocol import ProtocolError
from emoface_core.errors import EmoFaceError

__all__ = [
    "BatchError",
    "MappingError",
    "MappingProblem",
    "NotConnectedError",
    "ProtocolError",
    "TransportError",
]


@dataclass(frozen=True)
class MappingProblem:
    """One thing wrong with a mapping file, located as precisely as the file allows.

    Attributes:
        path: the file ("<string>" for text that has none).
        line: 1-based line, or None when the problem is about the whole file.
        key: where in the document, e.g. ``entries[3].scale``.
        message: what is wrong and what is allowed.
    """

    path: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class MappingError(EmoFaceError, ValueError):
    """A mapping file cannot be used; ``problems`` lists everything wrong with it at once."""

    def __init__(self, message: str, problems: list[MappingProblem] | None = None) -> None:
        super().__init__(message)
        self.problems: list[MappingProblem] = list(problems or [])


class TransportError(EmoFaceError, OSError):
    """A transport cannot be set up (bad endpoint, port in use, unresolvable host)."""


class NotConnectedError(EmoFaceError, ConnectionError):
    """A sender or receiver was used before ``open()`` or after ``close()``."""


class BatchError(EmoFaceError, RuntimeError):
    """The batch as a whole cannot run (engine fails to load, output folder busy, bad manifest)."""
