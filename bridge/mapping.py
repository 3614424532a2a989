"""Rig mappings: YAML files that turn EmoFace's 174 channels into named rig targets.

A mapping file is data (see ``docs/mappings.md``)::

    version: 1
    name: my_rig
    target_kind: control_rig        # control_rig | anim_curves | arkit | custom
    unlisted: error                 # every channel must be mapped or dropped (or: drop)
    entries:
      - {source: CTRL_C_jaw-translateY, target: CTRL_C_jaw.Y, clamp: [0, 1]}
      - {source: CTRL_C_jaw-translateX, positive: jawRight, negative: jawLeft}
      - {source: [CTRL_C_eye-translateY, CTRL_L_eye-translateY], positive: lookUpL}
      - {source: CTRL_neckCorrectivesMultiplyerD-translateY, drop: not on the Unreal board}

Each output is ``clamp(scale * sum(sources) + offset, lo, hi)``; a ``negative`` target is the
same with the sign flipped, clamped to [0, 1] unless ``clamp`` says otherwise. Loading checks
everything at once and raises ``MappingError`` listing every problem with file, line and key.
``Mapping.compiled`` holds the entries as index/scale/offset/clamp arrays, so applying a mapping
to a frame (or a whole clip) is a handful of numpy calls, whatever the number of entries.

Longer than most modules (~850 lines): the file format's one home. Its validator (``_Checker``,
half the file) must know every field and rule that ``Mapping`` compiles, and keeping them side by
side is what keeps the two from drifting apart; the public API (``load_mapping``,
``Mapping.apply*``) is documented in ``docs/mappings.md``.
"""

from __future__ import annotations

import difflib
import hashlib
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from bridge.arkit import LIVELINK_FACE_NAMES
from bridge.errors import MappingError, MappingProblem
from bridge.protocol import Schema
from emoface_core.controllers import CONTROLLER_NAMES, N_CONTROLLERS
from emoface_core.head import HEAD_CHANNELS

# What a mapping's sources may name: the 174 channels, then the head rotations in degrees
# (emoface_core.head), which frames carry when the animation has head motion (at rest: zeros).
SOURCE_NAMES = (*CONTROLLER_NAMES, *HEAD_CHANNELS)
SOURCE_INDEX = {name: i for i, name in enumerate(SOURCE_NAMES)}
N_SOURCES = len(SOURCE_NAMES)  # 177

MAPPING_VERSION = 1  # the only file version this code reads
SOURCE_SET = "emoface174"  # the 174 channels of emoface_core.controllers, in dataset order
TARGET_KINDS = ("control_rig", "anim_curves", "arkit", "custom")
UNLISTED_POLICIES = ("error", "drop")


def _mappings_dir() -> Path:
    """The folder of the shipped mappings.

    The repository's ``mappings/`` (the source of truth), else the copy an installed wheel
    carries in ``bridge/_data`` (setup.py copies it in at build time).
    """
    repo = Path(__file__).resolve().parent.parent / "mappings"
    wheel = Path(__file__).resolve().parent / "_data" / "mappings"
    return repo if repo.is_dir() or not wheel.is_dir() else wheel


MAPPINGS_DIR = _mappings_dir()
SHIPPED_MAPPINGS = ("metahuman_faceboard", "metahuman_curves", "arkit52")
DEFAULT_MAPPING = "metahuman_faceboard"
MAX_ABS_SCALE = 100.0  # a gain beyond this is a typo, not a rig
MAX_ABS_OFFSET = 100.0
MAX_TARGET_CHARS = 200  # keeps OSC addresses and UE names sane
# Whitespace and the characters OSC reserves in addresses (a target becomes /emoface/<subject>/<t>).
FORBIDDEN_TARGET_CHARS = frozenset(" \t\r\n#*,/?[]{}")

TOP_KEYS = ("version", "name", "description", "source", "target_kind", "unlisted", "entries")
ENTRY_KEYS = (
    "source",
    "target",
    "positive",
    "negative",
    "scale",
    "offset",
    "clamp",
    "drop",
    "note",
)
_TARGET_KEYS = ("target", "positive", "negative")


@dataclass(frozen=True)
class MappingEntry:
    """One entry of a mapping file, with defaults filled in.

    Attributes:
        sources: channels summed to form the input (usually one).
        target: the output for ``clamp(scale * input + offset)``, or None.
        positive: the output for the positive half of a sign split, or None.
        negative: the output for the negative half, or None.
        scale: gain applied to the input.
        offset: added after the gain.
        clamp: ``(lo, hi)`` or None (unbounded; sign splits default to (0, 1)).
        drop: why these channels are deliberately unused, or None.
        note: free text shown by ``emoface mapping show``.
        line: where the entry starts in its file (1-based; 0 when built in code).
    """

    sources: tuple[str, ...]
    target: str | None = None
    positive: str | None = None
    negative: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    clamp: tuple[float, float] | None = None
    drop: str | None = None
    note: str = ""
    line: int = 0


@dataclass(frozen=True)
class Target:
    """One output of a mapping: ``clamp(scale * sum(channels) + offset, lo, hi)``.

    A negative split target stores ``scale`` and ``offset`` already negated.
    """

    name: str
    sources: tuple[str, ...]
    scale: float
    offset: float
    lo: float
    hi: float
    line: int


@dataclass(frozen=True)
class Mapping:
    """A validated mapping. Build with ``load_mapping`` or ``parse_mapping``.

    Attributes:
        name: short id, sent to receivers in the schema.
        version: file format version.
        source: channel set (``emoface174``).
        target_kind: what the targets are (see ``TARGET_KINDS``).
        description: one line for humans.
        unlisted: "error" (every channel mapped or dropped) or "drop".
        entries: the entries in file order.
        path: the file it came from ("" when built from text).
        digest: first 16 hex digits of the file's SHA-256, to tell edited copies apart.
    """

    name: str
    version: int
    source: str
    target_kind: str
    description: str
    unlisted: str
    entries: tuple[MappingEntry, ...]
    path: str = ""
    digest: str = ""

    @cached_property
    def targets(self) -> tuple[Target, ...]:
        """The outputs in value order (entry order; a split gives positive, then negative)."""
        out: list[Target] = []
        for e in self.entries:
            if e.drop is not None:
                continue
            if e.target is not None:
                lo, hi = e.clamp if e.clamp else (-math.inf, math.inf)
                out.append(Target(e.target, e.sources, e.scale, e.offset, lo, hi, e.line))
                continue
            lo, hi = e.clamp if e.clamp else (0.0, 1.0)
            if e.positive is not None:
                out.append(Target(e.positive, e.sources, e.scale, e.offset, lo, hi, e.line))
            if e.negative is not None:
                out.append(Target(e.negative, e.sources, -e.scale, -e.offset, lo, hi, e.line))
        return tuple(out)

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Target names in value order (the schema)."""
        return tuple(t.name for t in self.targets)

    @cached_property
    def dropped(self) -> dict[str, str]:
        """Channel -> reason, for channels dropped explicitly or by ``unlisted: drop``."""
        used = {s for t in self.targets for s in t.sources}
        out = {s: e.drop for e in self.entries if e.drop is not None for s in e.sources}
        for name in CONTROLLER_NAMES:
            if name not in used and name not in out:
                out[name] = "not listed (unlisted: drop)"
        return out

    @cached_property
    def compiled(self) -> CompiledMapping:
        """The vectorised form used on every frame."""
        return CompiledMapping(self.targets)

    @property
    def n_targets(self) -> int:
        """Number of outputs."""
        return len(self.targets)

    def apply(self, frame: np.ndarray) -> dict[str, float]:
        """Map one frame ``[174]`` to ``{target: value}``."""
        return dict(zip(self.names, self.compiled.apply(frame).tolist()))

    def apply_array(self, values: np.ndarray) -> np.ndarray:
        """Map frames ``[T, 174]`` (or one ``[174]``) to ``[T, n_targets]`` float32."""
        return self.compiled.apply(values)

    def schema(self, subject: str, fps: float) -> Schema:
        """The protocol schema announcing this mapping's targets for one subject."""
        compiled = self.compiled
        ranges = tuple(zip(compiled.lo.tolist(), compiled.hi.tolist()))
        return Schema(
            subject, self.names, float(fps), self.name, self.digest, self.target_kind, ranges
        )


class CompiledMapping:
    """A mapping as flat arrays: gather, sum extra sources, scale, offset, clamp.

    ``apply_into`` reuses caller buffers, so the per-frame path allocates nothing.
    """

    def __init__(self, targets: tuple[Target, ...]) -> None:
        self.names = tuple(t.name for t in targets)
        self.index = np.array([SOURCE_INDEX[t.sources[0]] for t in targets], dtype=np.intp)
        # Extra sources in layers: layer k holds every target's (k+2)-th source, so positions
        # within a layer are unique and a fancy "+=" adds each once (np.add.at is 3x slower).
        n_layers = max((len(t.sources) - 1 for t in targets), default=0)
        self.extra_layers: list[tuple[np.ndarray, np.ndarray]] = []
        for k in range(1, n_layers + 1):
            layer = [
                (i, SOURCE_INDEX[t.sources[k]]) for i, t in enumerate(targets) if len(t.sources) > k
            ]
            self.extra_layers.append(
                (
                    np.array([p for p, _ in layer], dtype=np.intp),
                    np.array([s for _, s in layer], dtype=np.intp),
                )
            )
        self.scale = np.array([t.scale for t in targets], dtype=np.float32)
        self.offset = np.array([t.offset for t in targets], dtype=np.float32)
        self.lo = np.array([t.lo for t in targets], dtype=np.float32)
        self.hi = np.array([t.hi for t in targets], dtype=np.float32)
        self._needs_scale = bool(np.any(self.scale != 1))
        self._needs_offset = bool(np.any(self.offset != 0))
        self._needs_lo = bool(np.any(np.isfinite(self.lo)))
        self._needs_hi = bool(np.any(np.isfinite(self.hi)))
        sources = [self.index, *(s for _, s in self.extra_layers)]
        self.uses_head = any(bool(np.any(s >= N_CONTROLLERS)) for s in sources)

    @property
    def n_targets(self) -> int:
        """Number of outputs."""
        return len(self.names)

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Map ``[..., 174]`` channel values to ``[..., n_targets]`` float32.

        ``[..., 177]`` carries the head rotations too; without them the head is at rest.
        """
        values = np.asarray(values, dtype=np.float32)
        if values.shape[-1:] not in ((N_CONTROLLERS,), (N_SOURCES,)):
            raise ValueError(
                f"expected [..., {N_CONTROLLERS}] channel values (or {N_SOURCES} with the head), "
                f"got {values.shape}"
            )
        if self.uses_head and values.shape[-1] == N_CONTROLLERS:
            pad = np.zeros(values.shape[:-1] + (N_SOURCES - N_CONTROLLERS,), dtype=np.float32)
            values = np.concatenate([values, pad], axis=-1)
        out = np.empty(values.shape[:-1] + (self.n_targets,), dtype=np.float32)
        return self.apply_into(values, out)

    def apply_into(self, values: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Map float32 ``[..., 174]`` into the float32 buffer ``out`` ``[..., n_targets]``."""
        np.take(values, self.index, axis=-1, out=out)
        if values.ndim == 1:  # the per-frame path; plain fancy indexing is fastest there
            for positions, sources in self.extra_layers:
                out[positions] += values[sources]
        else:
            for positions, sources in self.extra_layers:
                out[..., positions] += values[..., sources]
        # Each step only when some entry needs it; minimum/maximum are 2-3x faster than clip.
        if self._needs_scale:
            np.multiply(out, self.scale, out=out)
        if self._needs_offset:
            np.add(out, self.offset, out=out)
        if self._needs_hi:
            np.minimum(out, self.hi, out=out)
        if self._needs_lo:
            np.maximum(out, self.lo, out=out)
        return out


def find_mapping(name_or_path: str | Path) -> Path:
    """Resolve a shipped mapping's short name (``arkit52``) or a path to a mapping file.

    Raises:
        MappingError: neither an existing file nor a shipped mapping.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = MAPPINGS_DIR / f"{name_or_path}.yaml"
    if path.suffix == "" and shipped.is_file():
        return shipped
    raise MappingError(
        f"{name_or_path}: no such mapping file; shipped mappings are "
        f"{', '.join(SHIPPED_MAPPINGS)} (in {MAPPINGS_DIR}), or give a path to a .yaml file"
    )


def load_mapping(name_or_path: str | Path) -> Mapping:
    """Load and validate a mapping file (or a shipped mapping by short name).

    Raises:
        MappingError: the file is missing or has problems; ``.problems`` lists all of them.
    """
    from emoface_core.bounded import MAX_YAML_BYTES

    path = find_mapping(name_or_path)
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise MappingError(
                f"{path}: {path.stat().st_size} bytes is more than a mapping file may hold "
                f"({MAX_YAML_BYTES})"
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MappingError(f"{path}: cannot read mapping: {e}") from e
    return parse_mapping(text, str(path))


def check_mapping(name_or_path: str | Path) -> list[MappingProblem]:
    """Every problem of a mapping file (empty when it is valid); never raises ``MappingError``."""
    try:
        load_mapping(name_or_path)
    except MappingError as e:
        return e.problems or [MappingProblem(str(name_or_path), None, "", str(e))]
    return []


def parse_mapping(text: str, path: str = "<string>") -> Mapping:
    """Validate mapping text and build the ``Mapping``.

    Raises:
        MappingError: listing every problem found.
    """
    checker = _Checker(path)
    mapping = checker.build(text)
    if checker.problems or mapping is None:
        n = len(checker.problems)
        first = checker.problems[0] if checker.problems else f"{path}: invalid mapping"
        more = f" (and {n - 1} more)" if n > 1 else ""
        raise MappingError(f"{first}{more}", checker.problems)
    return mapping


def mapping_table(mapping: Mapping) -> list[dict[str, Any]]:
    """The effective table, one row per target then one per dropped channel (for ``show``)."""
    rows: list[dict[str, Any]] = []
    for t in mapping.targets:
        rows.append(
            {
                "target": t.name,
                "sources": list(t.sources),
                "scale": t.scale,
                "offset": t.offset,
                "clamp": [t.lo, t.hi],
                "line": t.line,
            }
        )
    for channel, reason in mapping.dropped.items():
        rows.append({"target": None, "sources": [channel], "dropped": reason})
    return rows


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) for mapping files, for editors' completion and checks."""
    channel = {"enum": list(SOURCE_NAMES)}
    target = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_TARGET_CHARS,
        "pattern": r"^[^\s#*,/?\[\]{}]+$",
    }
    number = {"type": "number"}
    entry = {
        "type": "object",
        "additionalProperties": False,
        "required": ["source"],
        "properties": {
            "source": {
                "description": "EmoFace channel(s); several are summed before scale and clamp",
                "oneOf": [channel, {"type": "array", "items": channel, "minItems": 1}],
            },
            "target": {**target, "description": "output = clamp(scale*input + offset)"},
            "positive": {**target, "description": "output = clamp(+(scale*input + offset), 0, 1)"},
            "negative": {**target, "description": "output = clamp(-(scale*input + offset), 0, 1)"},
            "scale": {
                **number,
                "description": f"gain, 0 < |scale| <= {MAX_ABS_SCALE:g}",
                "default": 1,
            },
            "offset": {
                **number,
                "maximum": MAX_ABS_OFFSET,
                "minimum": -MAX_ABS_OFFSET,
                "default": 0,
            },
            "clamp": {
                "type": "array",
                "items": number,
                "minItems": 2,
                "maxItems": 2,
                "description": "[lo, hi]; sign splits default to [0, 1], single targets to none",
            },
            "drop": {"type": "string", "minLength": 1, "description": "why the channel is unused"},
            "note": {"type": "string"},
        },
        "oneOf": [
            {
                "required": ["target"],
                "not": {"anyOf": [{"required": [k]} for k in ("positive", "negative", "drop")]},
            },
            {
                "anyOf": [{"required": ["positive"]}, {"required": ["negative"]}],
                "not": {"anyOf": [{"required": ["target"]}, {"required": ["drop"]}]},
            },
            {
                "required": ["drop"],
                "not": {
                    "anyOf": [
                        {"required": [k]}
                        for k in ("target", "positive", "negative", "scale", "offset", "clamp")
                    ]
                },
            },
        ],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/emoface/emoface/mapping.schema.json",
        "title": "EmoFace rig mapping",
        "type": "object",
        "additionalProperties": False,
        "required": ["version", "entries"],
        "properties": {
            "version": {"const": MAPPING_VERSION},
            "name": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+$"},
            "description": {"type": "string"},
            "source": {"const": SOURCE_SET},
            "target_kind": {"enum": list(TARGET_KINDS), "default": "custom"},
            "unlisted": {"enum": list(UNLISTED_POLICIES), "default": "error"},
            "entries": {"type": "array", "items": entry, "minItems": 1},
        },
    }


def new_mapping(source: str | Path, out_path: str | Path, *, name: str | None = None) -> Path:
    """Start a custom mapping from an existing one, keeping its comments and key order.

    The copy gets ``name`` (default: the output file's stem); everything else is kept as written.

    Raises:
        MappingError: the source is not a valid mapping, or the new name is not allowed.
    """
    from ruamel.yaml import YAML

    from emoface_core.formats import atomic_write

    src = find_mapping(source)
    load_mapping(src)  # refuse to copy a broken file
    out_path = Path(out_path)
    new_name = name or out_path.stem
    if not _valid_name(new_name):
        raise MappingError(f"{out_path}: mapping name {new_name!r} must match [A-Za-z0-9_.-]+")
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the user's long flow-style entries
    yaml.indent(mapping=2, sequence=4, offset=2)  # "  - {...}", as the shipped files write it
    doc = yaml.load(src.read_text(encoding="utf-8"))
    if "name" in doc:
        doc["name"] = new_name
    else:
        doc.insert(1, "name", new_name)
    import io

    buf = io.StringIO()
    yaml.dump(doc, buf)
    parse_mapping(buf.getvalue(), str(out_path))  # what we write must load
    atomic_write(out_path, buf.getvalue())
    return out_path


def _valid_name(name: str) -> bool:
    return bool(name) and all(c.isascii() and (c.isalnum() or c in "_.-") for c in name)


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass
class _Node:
    """A YAML value with the line it starts on, so every problem can name its line."""

    value: Any
    line: int
    key_lines: dict[str, int] = field(default_factory=dict)


class _Checker:
    """Builds a Mapping from text while collecting every problem instead of stopping at one."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[MappingProblem] = []

    def add(self, line: int | None, key: str, message: str) -> None:
        self.problems.append(MappingProblem(self.path, line, key, message))

    def build(self, text: str) -> Mapping | None:
        root = self._parse_yaml(text)
        if root is None:
            return None
        if not isinstance(root.value, dict):
            self.add(
                root.line, "", "a mapping file must be a YAML mapping with version and entries"
            )
            return None
        top: dict[str, _Node] = root.value
        for key in top:
            if key not in TOP_KEYS:
                self.add(
                    root.key_lines[key],
                    key,
                    f"unknown key{_suggest(key, TOP_KEYS)} (allowed: {', '.join(TOP_KEYS)})",
                )
        version = self._version(top, root)
        name = self._text(
            top, "name", Path(self.path).stem if self.path != "<string>" else "custom"
        )
        if name and not _valid_name(name):
            self.add(top["name"].line, "name", f"{name!r} must match [A-Za-z0-9_.-]+")
        description = self._text(top, "description", "")
        source = self._choice(top, "source", (SOURCE_SET,), SOURCE_SET)
        target_kind = self._choice(top, "target_kind", TARGET_KINDS, "custom")
        unlisted = self._choice(top, "unlisted", UNLISTED_POLICIES, "error")
        indexed = self._entries(top, root, target_kind)
        if indexed is not None:
            self._cross_check(indexed, unlisted, root.key_lines.get("entries", root.line))
        self.problems.sort(key=lambda p: p.line or 0)  # stable: same line keeps check order
        entries = [e for _, e in indexed] if indexed is not None else None
        if self.problems or entries is None or version is None:
            return None
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        return Mapping(
            name=name,
            version=version,
            source=source,
            target_kind=target_kind,
            description=description,
            unlisted=unlisted,
            entries=tuple(entries),
            path="" if self.path == "<string>" else self.path,
            digest=digest,
        )

    def _parse_yaml(self, text: str) -> _Node | None:
        import yaml

        from emoface_core.bounded import BoundsError, compose_yaml

        try:
            # Bounded: an alias bomb or a deep nesting is refused before anything expands.
            node = compose_yaml(text, self.path)
        except BoundsError as e:
            self.add(None, "", str(e).removeprefix(f"{self.path}: "))
            return None
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = mark.line + 1 if mark is not None else None
            message = f"not valid YAML: {e.problem or e.context}"
            if e.context and e.context_mark is not None and e.context_mark is not mark:
                message += f" ({e.context} that starts at line {e.context_mark.line + 1})"
            self.add(line, "", message)
            return None
        except yaml.YAMLError as e:
            self.add(None, "", f"not valid YAML: {e}")
            return None
        if node is None:
            self.add(1, "", "the file is empty; a mapping needs version and entries")
            return None
        return self._convert(node, yaml.SafeLoader(""), "")

    def _convert(self, node: Any, constructor: Any, where: str) -> _Node:
        import yaml

        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[str, _Node] = {}
            key_lines: dict[str, int] = {}
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                key = constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    self.add(key_line, where, f"keys must be text, got {key!r}")
                    continue
                sub = f"{where}.{key}" if where else key
                if key in out:
                    self.add(key_line, sub, f"duplicate key (first at line {key_lines[key]})")
                    continue
                key_lines[key] = key_line
                out[key] = self._convert(value_node, constructor, sub)
            return _Node(out, line, key_lines)
        if isinstance(node, yaml.SequenceNode):
            items = [
                self._convert(n, constructor, f"{where}[{i}]") for i, n in enumerate(node.value)
            ]
            return _Node(items, line)
        try:
            return _Node(constructor.construct_object(node, deep=True), line)
        except yaml.YAMLError as e:
            self.add(line, where, f"bad value: {e}")
            return _Node(None, line)

    def _version(self, top: dict[str, _Node], root: _Node) -> int | None:
        node = top.get("version")
        if node is None:
            self.add(root.line, "version", f"missing; add 'version: {MAPPING_VERSION}' at the top")
            return None
        if not isinstance(node.value, int) or isinstance(node.value, bool):
            self.add(
                node.line, "version", f"must be the integer {MAPPING_VERSION}, got {node.value!r}"
            )
            return None
        if node.value != MAPPING_VERSION:
            self.add(
                node.line,
                "version",
                f"unknown version {node.value} (this emoface reads version {MAPPING_VERSION})",
            )
            return None
        return node.value

    def _text(self, top: dict[str, _Node], key: str, default: str) -> str:
        node = top.get(key)
        if node is None:
            return default
        if not isinstance(node.value, str):
            self.add(
                node.line, key, f"must be text, got {type(node.value).__name__} {node.value!r}"
            )
            return default
        return node.value

    def _choice(
        self, top: dict[str, _Node], key: str, allowed: tuple[str, ...], default: str
    ) -> str:
        value = self._text(top, key, default)
        if value not in allowed:
            self.add(
                top[key].line,
                key,
                f"{value!r} is not one of {', '.join(allowed)}{_suggest(value, allowed)}",
            )
            return default
        return value

    def _entries(
        self, top: dict[str, _Node], root: _Node, kind: str
    ) -> list[tuple[int, MappingEntry]] | None:
        """The valid entries with their index in the file (problems recorded for the others)."""
        node = top.get("entries")
        if node is None:
            self.add(root.line, "entries", "missing; list the channel -> target entries")
            return None
        if not isinstance(node.value, list) or not node.value:
            self.add(node.line, "entries", "must be a non-empty list of entries")
            return None
        entries = []
        for i, item in enumerate(node.value):
            entry = self._entry(item, f"entries[{i}]", kind)
            if entry is not None:
                entries.append((i, entry))
        return entries

    def _entry(self, item: _Node, where: str, kind: str) -> MappingEntry | None:
        if not isinstance(item.value, dict):
            self.add(
                item.line, where, "each entry must be a mapping like {source: ..., target: ...}"
            )
            return None
        fields: dict[str, _Node] = item.value
        n_before = len(self.problems)
        for key in fields:
            if key not in ENTRY_KEYS:
                self.add(
                    item.key_lines[key],
                    f"{where}.{key}",
                    f"unknown key{_suggest(key, ENTRY_KEYS)} (allowed: {', '.join(ENTRY_KEYS)})",
                )
        sources = self._sources(fields.get("source"), item, where)
        drop = fields.get("drop")
        present = [k for k in _TARGET_KEYS if k in fields]
        if drop is not None:
            for key in (*present, "scale", "offset", "clamp"):
                if key in fields:
                    self.add(
                        fields[key].line,
                        f"{where}.{key}",
                        "a dropped entry has no targets or gains; remove this key or the drop",
                    )
            if not isinstance(drop.value, str) or not drop.value.strip():
                self.add(drop.line, f"{where}.drop", "must say why the channel is dropped (text)")
        elif not present:
            self.add(item.line, where, "needs target, or positive and/or negative, or drop")
        elif "target" in fields and len(present) > 1:
            self.add(
                fields["target"].line,
                f"{where}.target",
                "use either target or positive/negative, not both",
            )
        names = {k: self._target_name(fields[k], f"{where}.{k}", kind) for k in present}
        scale = self._number(fields.get("scale"), f"{where}.scale", 1.0, MAX_ABS_SCALE)
        if scale == 0.0:
            self.add(
                fields["scale"].line,
                f"{where}.scale",
                "must not be 0; use drop to disable a channel",
            )
        offset = self._number(fields.get("offset"), f"{where}.offset", 0.0, MAX_ABS_OFFSET)
        clamp = self._clamp(fields.get("clamp"), f"{where}.clamp")
        note = fields.get("note")
        if note is not None and not isinstance(note.value, str):
            self.add(note.line, f"{where}.note", "must be text")
        if len(self.problems) != n_before or sources is None:
            return None
        return MappingEntry(
            sources=sources,
            target=names.get("target"),
            positive=names.get("positive"),
            negative=names.get("negative"),
            scale=scale,
            offset=offset,
            clamp=clamp,
            drop=drop.value if drop is not None else None,
            note=note.value if note is not None else "",
            line=item.line,
        )

    def _sources(self, node: _Node | None, item: _Node, where: str) -> tuple[str, ...] | None:
        if node is None:
            self.add(
                item.line,
                f"{where}.source",
                "missing; name an EmoFace channel such as CTRL_C_jaw-translateY",
            )
            return None
        raw = node.value
        items = [_Node(raw, node.line)] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not items:
            self.add(node.line, f"{where}.source", "must be a channel name or a list of them")
            return None
        out = []
        for sub in items:
            if not isinstance(sub.value, str):
                self.add(sub.line, f"{where}.source", f"channel names are text, got {sub.value!r}")
            elif sub.value not in SOURCE_INDEX:
                self.add(
                    sub.line,
                    f"{where}.source",
                    f"unknown channel {sub.value!r}{_suggest(sub.value, SOURCE_NAMES)}",
                )
            elif sub.value in out:
                self.add(sub.line, f"{where}.source", f"channel {sub.value!r} listed twice")
            else:
                out.append(sub.value)
        return tuple(out) if len(out) == len(items) else None

    def _target_name(self, node: _Node, where: str, kind: str) -> str | None:
        name = node.value
        if not isinstance(name, str) or not name:
            self.add(node.line, where, f"target names are non-empty text, got {name!r}")
            return None
        bad = sorted(set(name) & FORBIDDEN_TARGET_CHARS)
        if bad:
            self.add(
                node.line,
                where,
                f"{name!r} contains {''.join(bad)!r}; target names cannot "
                "hold whitespace or the OSC characters #*,/?[]{}",
            )
        if len(name) > MAX_TARGET_CHARS:
            self.add(
                node.line, where, f"target name is {len(name)} characters (max {MAX_TARGET_CHARS})"
            )
        if kind == "arkit" and name not in LIVELINK_FACE_NAMES:
            self.add(
                node.line,
                where,
                f"{name!r} is not a Live Link Face value"
                f"{_suggest(name, LIVELINK_FACE_NAMES)} (target_kind arkit)",
            )
        return name

    def _number(self, node: _Node | None, where: str, default: float, limit: float) -> float:
        if node is None:
            return default
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(node.line, where, f"must be a number, got {value!r}")
            return default
        if not math.isfinite(value) or abs(value) > limit:
            self.add(
                node.line, where, f"{value!r} is out of range (allowed: -{limit:g}..{limit:g})"
            )
            return default
        return float(value)

    def _clamp(self, node: _Node | None, where: str) -> tuple[float, float] | None:
        if node is None:
            return None
        items = node.value
        values = [n.value for n in items] if isinstance(items, list) else None
        if (
            values is None
            or len(values) != 2
            or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v)
                for v in values
            )
        ):
            self.add(node.line, where, f"must be [lo, hi] with two numbers, got {_plain(items)!r}")
            return None
        lo, hi = float(values[0]), float(values[1])
        if not lo < hi:
            self.add(node.line, where, f"lo must be below hi, got [{lo:g}, {hi:g}]")
            return None
        return lo, hi

    def _cross_check(
        self, entries: list[tuple[int, MappingEntry]], unlisted: str, entries_line: int
    ) -> None:
        target_lines: dict[str, int] = {}
        mapped: dict[str, int] = {}
        dropped: dict[str, int] = {}
        dropped_at: dict[str, str] = {}
        for i, e in entries:
            for name in (e.target, e.positive, e.negative):
                if name is None:
                    continue
                if name in target_lines:
                    self.add(
                        e.line,
                        f"entries[{i}]",
                        f"duplicate target {name!r} (first at line {target_lines[name]})",
                    )
                else:
                    target_lines[name] = e.line
            for channel in e.sources:
                if e.drop is not None:
                    if channel in dropped:
                        self.add(
                            e.line,
                            f"entries[{i}].source",
                            f"{channel!r} is already dropped at line {dropped[channel]}",
                        )
                    dropped.setdefault(channel, e.line)
                    dropped_at.setdefault(channel, f"entries[{i}]")
                else:
                    mapped.setdefault(channel, e.line)
        for channel, line in dropped.items():
            if channel in mapped:
                self.add(
                    line,
                    f"{dropped_at[channel]}.drop",
                    f"{channel!r} is dropped here but mapped at line {mapped[channel]}",
                )
        if unlisted == "error":
            missing = [c for c in CONTROLLER_NAMES if c not in mapped and c not in dropped]
            if missing:
                shown = ", ".join(missing[:8]) + (", ..." if len(missing) > 8 else "")
                self.add(
                    entries_line,
                    "entries",
                    f"{len(missing)} channel(s) neither mapped nor "
                    f"dropped: {shown} (map them, drop them, or set 'unlisted: drop')",
                )


def _plain(items: Any) -> Any:
    if isinstance(items, list):
        return [n.value if isinstance(n, _Node) else n for n in items]
    if isinstance(items, dict):
        return {k: _plain(v.value) for k, v in items.items()}
    return items
