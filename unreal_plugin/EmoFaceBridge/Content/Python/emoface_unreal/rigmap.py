"""Apply a bridge mapping (compiled to JSON at install time) to baked clips, in plain Python.

Each target is ``clamp(scale * sum(sources) + offset, lo, hi)``, exactly the bridge's
``bridge.mapping`` rule (a negative sign-split target arrives with scale and offset negated).
Live frames need no mapping here: the sender applies it and names the targets in its schema.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from emoface_unreal.baked import BakedClip
from emoface_unreal.data import DataFileError, load_channel_names, mapping_path, read_json


@dataclass(frozen=True)
class MappedTarget:
    """One output: ``clamp(scale * sum(sources) + offset, lo, hi)``; None bounds are open."""

    name: str
    sources: tuple[str, ...]
    scale: float
    offset: float
    lo: float | None
    hi: float | None

    def value(
        self, inputs: dict[str, float] | dict[str, list[float]], i: int | None = None
    ) -> float:
        """The target's value from channel values (or frame ``i`` of channel columns)."""
        if i is None:
            x = sum(inputs[s] for s in self.sources)  # type: ignore[misc]
        else:
            x = sum(inputs[s][i] for s in self.sources)  # type: ignore[index]
        y = self.scale * x + self.offset
        if self.lo is not None and y < self.lo:
            y = self.lo
        if self.hi is not None and y > self.hi:
            y = self.hi
        return y


@dataclass(frozen=True)
class RigMapping:
    """A compiled mapping.

    Attributes:
        name: the mapping's name (e.g. ``metahuman_faceboard``).
        digest: its file digest, as sent in stream schemas.
        target_kind: "control_rig" or "anim_curves".
        targets: outputs in value order.
        path: the JSON file it was read from.
    """

    name: str
    digest: str
    target_kind: str
    targets: tuple[MappedTarget, ...]
    path: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """Target names in value order."""
        return tuple(t.name for t in self.targets)

    def apply_clip(self, clip: BakedClip) -> dict[str, list[float]]:
        """Every target's values over the clip: target name -> ``[T]``."""
        n = clip.n_frames
        columns = clip.columns
        return {t.name: [t.value(columns, i) for i in range(n)] for t in self.targets}

    def apply_frame(self, values: dict[str, float]) -> dict[str, float]:
        """One frame of channel values (name -> value) to target values."""
        return {t.name: t.value(values) for t in self.targets}


def _bound(x: object, where: str) -> float | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x):
        raise DataFileError(f"{where}: bound must be a number or null, got {x!r}")
    return float(x)


def load_rig_mapping(role_or_path: str | Path) -> RigMapping:
    """Load the generated mapping for a role ("faceboard", "curves") or from a JSON path.

    Raises:
        DataFileError: missing or malformed file, or unknown channels.
    """
    path = (
        mapping_path(role_or_path)
        if role_or_path in ("faceboard", "curves")
        else Path(role_or_path)
    )
    doc = read_json(path)
    channels = set(load_channel_names())
    try:
        rows = doc["targets"]
        targets = []
        for k, row in enumerate(rows):
            name, sources, scale, offset, lo, hi = row
            where = f"{path}: targets[{k}] ({name})"
            if not isinstance(name, str) or not name:
                raise DataFileError(f"{where}: name must be text")
            unknown = [s for s in sources if s not in channels]
            if not sources or unknown:
                raise DataFileError(f"{where}: unknown source channel(s) {unknown or sources}")
            targets.append(
                MappedTarget(
                    name,
                    tuple(sources),
                    float(scale),
                    float(offset),
                    _bound(lo, where),
                    _bound(hi, where),
                )
            )
        return RigMapping(
            str(doc["name"]),
            str(doc.get("digest", "")),
            str(doc["target_kind"]),
            tuple(targets),
            str(path),
        )
    except DataFileError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise DataFileError(f"{path}: malformed mapping file ({e}); reinstall the plugin") from e
