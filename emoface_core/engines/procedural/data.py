"""The procedural engine's artist-editable data: emotion poses, speech shapes, idle motion.

Two YAML files ship in ``emoface_core/data`` (package data) and can be replaced by edited copies:
``emotion_poses.yaml`` (a pose and articulation multipliers per emotion) and ``articulation.yaml``
(controller weights per speech track, pose controls that yield to speech, idle-motion groups).
Both are read with a safe loader, carry ``version: 1``, and are validated as a whole: every
problem (unknown controller or track, value out of range, wrong type) is collected with its
``file: key`` context and reported in one ``ConfigError``. The files' own comments document the
format. A key containing ``_LR_`` names both the ``_L_`` and ``_R_`` channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from emoface_core.bounded import MAX_YAML_BYTES, BoundsError, load_yaml
from emoface_core.controllers import (
    CONTROLLER_INDEX,
    N_CONTROLLERS,
    channel_range,
)
from emoface_core.emotion import EMOTIONS, N_EMOTIONS
from emoface_core.errors import ConfigError

DATA_VERSION = 1  # the `version:` both data files must carry
_DATA_PACKAGE = "emoface_core"  # the files live in its data/ folder (package data)
POSES_FILE = "emotion_poses.yaml"
ARTICULATION_FILE = "articulation.yaml"

# The speech tracks the engine computes from audio, each 0..1 per frame (articulation.yaml says
# what each one means and which controllers it moves).
TRACKS: tuple[str, ...] = (
    "open",
    "round",
    "spread",
    "close",
    "press",
    "fricative",
    "labiodental",
    "emphasis",
    "speaking",
)
N_TRACKS = len(TRACKS)  # 9


@dataclass(frozen=True)
class IdleGroup:
    """Channels that drift together by ``0..amplitude`` as a sum of three slow sines."""

    channels: tuple[int, ...]
    amplitude: float
    period_s: tuple[float, float]


@dataclass(frozen=True)
class ProceduralData:
    """The engine's artist-editable data, as arrays.

    Attributes:
        poses: ``[7, 174]`` expression pose per emotion (``EMOTIONS`` order).
        gains: ``[7, N_TRACKS]`` articulation multiplier per emotion and track.
        shapes: ``[N_TRACKS, 174]`` controller weights of each speech track.
        yields: ``[174]`` share of each pose value that gives way while speaking (0..1).
        idle: the idle micro-motion groups.
        sources: where poses and articulation came from (for metadata).
    """

    poses: np.ndarray
    gains: np.ndarray
    shapes: np.ndarray
    yields: np.ndarray
    idle: tuple[IdleGroup, ...]
    sources: dict[str, str]


def _read_yaml(path: Path | None, default_name: str) -> tuple[Any, str]:
    import yaml

    if path is None:
        data_dir = resources.files(_DATA_PACKAGE).joinpath("data")
        text = data_dir.joinpath(default_name).read_text(encoding="utf-8")
        source = f"builtin:{default_name}"
    else:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such procedural data file")
        if path.stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(f"{path}: larger than a data file may be ({MAX_YAML_BYTES} bytes)")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read ({e})") from e
        source = str(path)
    try:
        doc = load_yaml(text, source)
    except BoundsError as e:
        raise ConfigError(str(e)) from None
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{source}: not valid YAML ({first})") from e
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping with 'version:' at the top")
    if doc.get("version") != DATA_VERSION:
        raise ConfigError(
            f"{source}: unsupported version {doc.get('version')!r}; this emoface reads version "
            f"{DATA_VERSION}"
        )
    return doc, source


def _expand(name: str) -> list[str]:
    """``CTRL_LR_x`` -> ``[CTRL_L_x, CTRL_R_x]``; any other name -> ``[name]``."""
    if "_LR_" in name:
        return [name.replace("_LR_", "_L_", 1), name.replace("_LR_", "_R_", 1)]
    return [name]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _channel_values(
    table: Any, where: str, problems: list[str], bounds: tuple[float, float] | None = None
) -> dict[int, float]:
    """Validate a ``{controller: value}`` table, collecting problems instead of stopping at one.

    Args:
        table: the parsed YAML mapping (None counts as empty).
        where: ``file: key`` prefix for messages.
        problems: where problems are appended.
        bounds: allowed value range; None means each channel's own board range.

    Returns:
        Channel index -> value for the valid entries.
    """
    if table is None:
        return {}
    if not isinstance(table, dict):
        problems.append(f"{where}: expected a mapping of controller -> value")
        return {}
    out: dict[int, float] = {}
    for key, value in table.items():
        if not _is_number(value):
            problems.append(f"{where}.{key}: value {value!r} is not a number")
            continue
        for name in _expand(str(key)):
            if name not in CONTROLLER_INDEX:
                problems.append(f"{where}.{key}: unknown controller {name!r}")
                continue
            lo, hi = bounds if bounds is not None else channel_range(name)
            if not lo <= float(value) <= hi:
                message = f"{where}.{key}: {value} is outside {lo:g}..{hi:g}"
                if message not in problems:  # both sides of an _LR_ key share one message
                    problems.append(message)
                continue
            out[CONTROLLER_INDEX[name]] = float(value)
    return out


def _read_emotions(doc: dict, src: str, problems: list[str]) -> tuple[np.ndarray, np.ndarray]:
    poses = np.zeros((N_EMOTIONS, N_CONTROLLERS), dtype=np.float64)
    gains = np.ones((N_EMOTIONS, N_TRACKS), dtype=np.float64)
    emotions = doc.get("emotions")
    if not isinstance(emotions, dict):
        problems.append(f"{src}: 'emotions' must map each emotion to its pose")
        return poses, gains
    for name in emotions:
        if name not in EMOTIONS:
            problems.append(f"{src}: emotions.{name}: unknown emotion; use {', '.join(EMOTIONS)}")
    for e, name in enumerate(EMOTIONS):
        where = f"{src}: emotions.{name}"
        entry = emotions.get(name)
        if not isinstance(entry, dict):
            problems.append(f"{where}: missing, or not a mapping with 'pose' and 'articulation'")
            continue
        for i, v in _channel_values(entry.get("pose"), f"{where}.pose", problems).items():
            poses[e, i] = v
        multipliers = entry.get("articulation") or {}
        if not isinstance(multipliers, dict):
            problems.append(f"{where}.articulation: expected a mapping of track -> multiplier")
            continue
        for track, gain in multipliers.items():
            if track not in TRACKS:
                problems.append(
                    f"{where}.articulation.{track}: unknown track; use {', '.join(TRACKS)}"
                )
            elif not _is_number(gain) or not 0 <= gain <= 3:
                problems.append(f"{where}.articulation.{track}: {gain!r} must be a number in 0..3")
            else:
                gains[e, TRACKS.index(track)] = float(gain)
    return poses, gains


def _read_shapes(doc: dict, src: str, problems: list[str]) -> np.ndarray:
    shapes = np.zeros((N_TRACKS, N_CONTROLLERS), dtype=np.float64)
    table = doc.get("shapes")
    if not isinstance(table, dict):
        problems.append(f"{src}: 'shapes' must map each track to its controller weights")
        return shapes
    for track in table:
        if track not in TRACKS:
            problems.append(f"{src}: shapes.{track}: unknown track; use {', '.join(TRACKS)}")
    for t, track in enumerate(TRACKS):
        weights = _channel_values(table.get(track), f"{src}: shapes.{track}", problems, (-1, 1))
        for i, v in weights.items():
            shapes[t, i] = v
    return shapes


def _read_yields(doc: dict, src: str, problems: list[str]) -> np.ndarray:
    yields = np.zeros(N_CONTROLLERS, dtype=np.float64)
    for i, v in _channel_values(
        doc.get("speech_yields"), f"{src}: speech_yields", problems, (0, 1)
    ).items():
        yields[i] = v
    return yields


def _read_idle(doc: dict, src: str, problems: list[str]) -> tuple[IdleGroup, ...]:
    groups = doc.get("idle") or []
    if not isinstance(groups, list):
        problems.append(f"{src}: 'idle' must be a list of groups")
        return ()
    idle = []
    for g, group in enumerate(groups):
        where = f"{src}: idle[{g}]"
        if not isinstance(group, dict):
            problems.append(f"{where}: expected channels, amplitude and period_s")
            continue
        channels = []
        for key in group.get("channels") or []:
            for name in _expand(str(key)):
                if name in CONTROLLER_INDEX:
                    channels.append(CONTROLLER_INDEX[name])
                else:
                    problems.append(f"{where}.channels: unknown controller {name!r}")
        amplitude: Any = group.get("amplitude")
        period: Any = group.get("period_s")
        if not _is_number(amplitude) or not 0 <= amplitude <= 0.5:
            problems.append(f"{where}.amplitude: {amplitude!r} must be a number in 0..0.5")
        elif (
            not isinstance(period, list)
            or len(period) != 2
            or not all(_is_number(p) for p in period)
            or not 0.1 <= period[0] <= period[1]
        ):
            problems.append(f"{where}.period_s: {period!r} must be [shortest, longest] >= 0.1 s")
        elif channels:
            idle.append(
                IdleGroup(tuple(channels), float(amplitude), (float(period[0]), float(period[1])))
            )
    return tuple(idle)


def load_procedural_data(
    poses_path: str | Path | None = None, articulation_path: str | Path | None = None
) -> ProceduralData:
    """Load and validate the pose and articulation files (the packaged ones by default).

    Args:
        poses_path: an edited copy of ``emotion_poses.yaml``, or None for the packaged file.
        articulation_path: an edited copy of ``articulation.yaml``, or None for the packaged file.

    Returns:
        The data as arrays.

    Raises:
        ConfigError: a file is missing or malformed; the message lists every problem with its
            ``file: key`` context.
    """
    poses_doc, poses_src = _read_yaml(Path(poses_path) if poses_path else None, POSES_FILE)
    art_doc, art_src = _read_yaml(
        Path(articulation_path) if articulation_path else None, ARTICULATION_FILE
    )
    problems: list[str] = []
    poses, gains = _read_emotions(poses_doc, poses_src, problems)
    shapes = _read_shapes(art_doc, art_src, problems)
    yields = _read_yields(art_doc, art_src, problems)
    idle = _read_idle(art_doc, art_src, problems)
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in procedural data: " + "; ".join(problems))
    return ProceduralData(
        poses, gains, shapes, yields, idle, {"poses": poses_src, "articulation": art_src}
    )
