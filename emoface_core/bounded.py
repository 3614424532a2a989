"""JSON and YAML from outside, bounded before they are parsed into memory.

A 600-byte YAML "billion laughs" (anchors of anchors) expands to gigabytes, and a few KB of
``[[[[...`` exhaust the parser's recursion; neither may take a process down. So:

* **Size** is checked on the raw text first (``max_bytes``).
* **JSON depth** is checked before ``json.loads`` by peeling innermost bracket pairs off the
  bracket skeleton of the text (strings removed), one level per pass: no Python loop per
  character. ``NaN``, ``Infinity`` and numbers that overflow to infinity are refused.
* **YAML** is composed into its node graph first (aliases are shared nodes there, so composing is
  cheap), then the graph is walked counting every node as it would be expanded, up to
  ``max_nodes``, and its depth, up to ``max_depth``; only then is it constructed.

Every refusal is a ``BoundsError`` (a ``ValueError``) whose message starts with the source name.
The wire protocol has its own stdlib copy of the JSON rule (``bridge.protocol.loads_json``),
because the Unreal plugin ships that module and cannot import this package.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from emoface_core.errors import EmoFaceError

MAX_JSON_BYTES = 64 * 1024 * 1024  # default size limit of a JSON document
MAX_YAML_BYTES = 4 * 1024 * 1024  # mappings and pose files are a few KB
MAX_DEPTH = 64  # nesting levels of arrays/objects (mappings, poses, requests: under 10)
MAX_YAML_NODES = 200_000  # expanded YAML nodes (the shipped mappings: ~2,000)

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNER_PAIR = re.compile(r"\[\]|\{\}")


class BoundsError(EmoFaceError, ValueError):
    """Outside data exceeds a bound (size, depth, expansion) or holds a non-finite number."""


def json_depth_exceeds(text: str, max_depth: int) -> bool:
    """Whether the JSON ``text`` nests arrays/objects deeper than ``max_depth``.

    Brackets inside strings do not count. Each pass removes the innermost ``[]``/``{}`` pairs, so
    after ``max_depth`` passes any bracket left means a deeper nesting (or unbalanced brackets,
    which ``json.loads`` rejects anyway).
    """
    if text.count("[") + text.count("{") <= max_depth:
        return False
    skeleton = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    for _ in range(max_depth):
        if not skeleton:
            return False
        skeleton, n = _INNER_PAIR.subn("", skeleton)
        if n == 0:  # only unmatched brackets are left: refuse a run longer than the limit
            return len(skeleton) > max_depth
    return bool(skeleton)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows here")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} does not fit a 64-bit float")
    return value


def load_json(
    data: str | bytes,
    source: str,
    *,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Parse JSON from outside with size, depth and finiteness bounds.

    Args:
        data: the document.
        source: names it in errors (a file path, "request").
        max_bytes: largest accepted document.
        max_depth: deepest accepted nesting.

    Raises:
        BoundsError: too large, too deep, not JSON, or holding NaN/infinity.
    """
    if len(data) > max_bytes:
        raise BoundsError(f"{source}: {len(data)} bytes is more than the limit of {max_bytes}")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as e:
        raise BoundsError(f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if json_depth_exceeds(text, max_depth):
        raise BoundsError(f"{source}: nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as e:
        raise BoundsError(f"{source}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except (ValueError, RecursionError) as e:
        raise BoundsError(f"{source}: {e}") from None


def check_yaml_node(node: Any, source: str, *, max_depth: int, max_nodes: int) -> None:
    """Refuse a composed YAML node graph that expands too far or nests too deep.

    Counts nodes as construction would visit them (an alias counts as a full copy of what it
    names), without recursion, and stops at the first bound crossed.

    Raises:
        BoundsError: more than ``max_nodes`` expanded nodes, or deeper than ``max_depth``.
    """
    import yaml

    count = 0
    stack: list[tuple[Any, int]] = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        count += 1
        if count > max_nodes:
            raise BoundsError(
                f"{source}: expands to more than {max_nodes} YAML nodes "
                "(anchors and aliases that repeat each other?)"
            )
        if depth > max_depth:
            raise BoundsError(f"{source}: nested deeper than {max_depth} levels")
        if isinstance(current, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in current.value)
        elif isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))


def compose_yaml(
    text: str,
    source: str,
    *,
    max_bytes: int = MAX_YAML_BYTES,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_YAML_NODES,
) -> Any:
    """Compose YAML text into a checked node graph (None for an empty document).

    Raises:
        BoundsError: too large, too deep, expanding too far.
        yaml.YAMLError: the text is not YAML (callers locate it with its ``problem_mark``).
    """
    import yaml

    if len(text) > max_bytes:
        raise BoundsError(f"{source}: {len(text)} characters is more than the limit of {max_bytes}")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise BoundsError(f"{source}: nested too deep to read") from None
    if node is not None:
        check_yaml_node(node, source, max_depth=max_depth, max_nodes=max_nodes)
    return node


def load_yaml(
    text: str,
    source: str,
    *,
    max_bytes: int = MAX_YAML_BYTES,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_YAML_NODES,
) -> Any:
    """``yaml.safe_load`` with the bounds of ``compose_yaml`` checked before construction.

    Raises:
        BoundsError: too large, too deep, expanding too far (message names ``source``).
        yaml.YAMLError: not YAML.
    """
    import yaml

    node = compose_yaml(text, source, max_bytes=max_bytes, max_depth=max_depth, max_nodes=max_nodes)
    if node is None:
        return None
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except RecursionError:
        raise BoundsError(f"{source}: a recursive alias (an anchor that contains itself)") from None
    finally:
        loader.dispose()
