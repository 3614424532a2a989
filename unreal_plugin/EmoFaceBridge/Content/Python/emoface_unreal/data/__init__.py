"""Loaders for the JSON files the bridge generates into this folder (channel names, mappings).

The ``*.json`` files here are written by ``emoface unreal sync``/``install`` from the bridge's
sources of truth (``emoface_core/controllers.py``, ``mappings/*.yaml``); never edit them by hand.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent
N_CHANNELS = 174
ROLES = ("faceboard", "curves")


class DataFileError(ValueError):
    """A generated data file is missing or malformed (reinstall the plugin)."""


def read_json(path: Path) -> Any:
    """Parse a JSON file, naming it in any error.

    Raises:
        DataFileError: missing or not JSON.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataFileError(
            f"{path}: cannot read ({e}); reinstall with `emoface unreal install`"
        ) from e


@functools.lru_cache(maxsize=1)
def load_channel_names() -> tuple[str, ...]:
    """The 174 EmoFace channels in dataset order (column order of ``.txt`` files).

    Raises:
        DataFileError: the generated file is missing or wrong.
    """
    path = DATA_DIR / "channels.json"
    doc = read_json(path)
    names = doc.get("channels") if isinstance(doc, dict) else None
    if (
        not isinstance(names, list)
        or len(names) != N_CHANNELS
        or not all(isinstance(n, str) for n in names)
    ):
        raise DataFileError(f"{path}: expected {N_CHANNELS} channel names; reinstall the plugin")
    return tuple(names)


def mapping_path(role: str) -> Path:
    """Path of the generated mapping for ``role`` ("faceboard" or "curves")."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, but {role!r} is provided")
    return DATA_DIR / f"{role}_mapping.json"
