"""Extract the part of the UE 5.6 Python API the Unreal plugin uses into ``ue56_index.json``.

The source is the ``unreal-stub`` package on PyPI (version 0.3, "latest: 5.6.0"), whose
``unreal/unreal.py`` is the stub the 5.6 editor generates (25 MB). The index keeps only what the
tests need to check the plugin and the fake ``unreal`` module against it: for every class the
plugin or the fake names (plus their base classes), its bases, its C++ plugin/module, and the
signatures of the members whose names the plugin or the fake use; and the module functions.
It holds names and parameter lists only, no documentation text.

Regenerate after changing which Unreal names the plugin or ``tests/fake_unreal.py`` use::

    pip download --no-deps unreal-stub==0.3 -d /tmp/ustub
    python tests/data/unreal_stub/make_index.py /tmp/ustub/unreal_stub-0.3-py3-none-any.whl
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
PLUGIN_PYTHON = REPO / "unreal_plugin" / "EmoFaceBridge" / "Content" / "Python"
FAKE = REPO / "tests" / "fake_unreal.py"
OUT = HERE / "ue56_index.json"
STUB_MEMBER = "unreal/unreal.py"

_CLASS = re.compile(r"^class (\w+)\((.*)\):")
_DEF = re.compile(r"^(    )?def (\w+)\(")
_DECORATOR = re.compile(r"^    @(\w+)(\.setter)?")
_ENUM_MEMBER = re.compile(r"^    (\w+): (\w+) = \.\.\.")
_EDITOR_PROP = re.compile(r"^    - ``(\w+)`` \(")
_SOURCE = re.compile(r"^    - \*\*(Plugin|Module)\*\*: (\w+)")


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside brackets and quotes (stub defaults nest lists and strings)."""
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _params(def_line: str) -> tuple[list[str], str]:
    """Parameter names (``name=`` when defaulted; ``*args``/``**kw``) and the return annotation.

    Parsed by hand: some generated defaults are not valid Python.
    """
    head = def_line.strip()[len("def ") :]
    open_at = head.index("(")
    depth, close_at = 0, -1
    quote = ""
    for i, ch in enumerate(head[open_at:], open_at):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                close_at = i
                break
    inner = head[open_at + 1 : close_at]
    rest = head[close_at + 1 :].strip().rstrip(":").strip()
    returns = rest[2:].strip() if rest.startswith("->") else ""
    names = []
    for part in _split_top(inner, ","):
        part = part.strip()
        if not part or part == "*":
            continue
        name = _split_top(part, ":")[0].split("=")[0].strip()
        defaulted = len(_split_top(part, "=")) > 1
        names.append(name + ("=" if defaulted and not name.startswith("*") else ""))
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return names, returns


def parse_stub(text: str) -> dict:
    """The whole stub as ``{"classes": {...}, "functions": {...}}``."""
    classes: dict[str, dict] = {}
    functions: dict[str, dict] = {}
    current: dict | None = None
    decorators: list[str] = []
    for line in text.splitlines():
        m = _CLASS.match(line)
        if m:
            bases = [b.strip().split("[")[0] for b in m.group(2).split(",") if b.strip()]
            current = classes.setdefault(
                m.group(1),
                {
                    "bases": bases,
                    "source": {},
                    "members": {},
                    "editor_properties": [],
                    "enum_members": [],
                },
            )
            decorators = []
            continue
        if line and not line[0].isspace() and not line.startswith(("class ", "def ", "@")):
            current = None  # module-level statement ends the class
        m = _DECORATOR.match(line)
        if m:
            decorators.append(m.group(1) + (m.group(2) or ""))
            continue
        m = _DEF.match(line)
        if m:
            indented, name = m.group(1), m.group(2)
            params, returns = _params(line)
            params = ", ".join(params)  # one line per member keeps the index diffable
            if not indented:
                functions[name] = {"params": params, "returns": returns}
                current = None
            elif current is not None:
                if any(d.endswith(".setter") for d in decorators):
                    decorators = []
                    continue
                kind = (
                    "property"
                    if "property" in decorators
                    else "classmethod"
                    if "classmethod" in decorators
                    else "staticmethod"
                    if "staticmethod" in decorators
                    else "method"
                )
                current["members"].setdefault(
                    name, {"kind": kind, "params": params, "returns": returns}
                )
            decorators = []
            continue
        if current is None:
            continue
        m = _ENUM_MEMBER.match(line)
        if m:
            current["enum_members"].append(m.group(1))
            continue
        m = _EDITOR_PROP.match(line)
        if m:
            current["editor_properties"].append(m.group(1))
            continue
        m = _SOURCE.match(line)
        if m:
            current["source"][m.group(1).lower()] = m.group(2)
    return {"classes": classes, "functions": functions}


def referenced_names() -> tuple[set[str], set[str]]:
    """``(top-level unreal names, member names)`` the plugin and the fake use.

    From the plugin: ``unreal.X``, ``unreal.X.y``, ``getattr(unreal, "X")`` and the literal names
    given to ``get_editor_property``/``set_editor_property``. From the fake: its public classes and
    functions, and their methods, properties, editor properties and enum members (the plugin's
    calls on returned objects go through those, and the tests check them against the index).
    """
    top: set[str] = set()
    attrs: set[str] = set()
    plugin = [p for p in PLUGIN_PYTHON.rglob("*.py") if "__pycache__" not in p.parts]
    for path in plugin:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "unreal"
            ):
                top.add(node.attr)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "unreal"
            ):
                attrs.add(node.attr)
            elif (
                isinstance(node, ast.Call)
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr in (
                    "get_editor_property",
                    "set_editor_property",
                ):
                    attrs.add(node.args[0].value)
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id == "unreal"
                and isinstance(node.args[1], ast.Constant)
            ):
                top.add(node.args[1].value)
    for node in ast.parse(FAKE.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            top.add(node.name)
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith(("_", "fake_")):
                    attrs.add(item.name)
                elif isinstance(item, ast.AnnAssign | ast.Assign):
                    value = item.value
                    targets = [item.target] if isinstance(item, ast.AnnAssign) else item.targets
                    if any(getattr(t, "id", "") == "_props" for t in targets) and isinstance(
                        value, ast.Dict
                    ):
                        attrs.update(k.value for k in value.keys if isinstance(k, ast.Constant))
                    elif isinstance(value, ast.Name):  # get_editor_property = _get_editor_property
                        attrs.update(
                            t.id
                            for t in targets
                            if isinstance(t, ast.Name) and not t.id.startswith("_")
                        )
        elif isinstance(node, ast.FunctionDef) and not node.name.startswith(("_", "fake_")):
            top.add(node.name)
        elif (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", "") == "_enum"
        ):
            attrs.update(a.value for a in node.value.args if isinstance(a, ast.Constant))
    return top, attrs


def build_index(model: dict, meta: dict) -> dict:
    """The compact index for the names the plugin and the fake use."""
    top, attrs = referenced_names()
    attrs.add("__init__")
    classes = model["classes"]
    wanted: set[str] = set()
    todo = [n for n in top if n in classes]
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted.add(name)
        todo.extend(b for b in classes[name]["bases"] if b in classes)
    out_classes = {}
    for name in sorted(wanted):
        cls = classes[name]
        out_classes[name] = {
            "bases": cls["bases"],
            "source": cls["source"],
            "members": {m: cls["members"][m] for m in sorted(cls["members"]) if m in attrs},
            "editor_properties": sorted(p for p in cls["editor_properties"] if p in attrs),
            "enum_members": sorted(e for e in cls["enum_members"] if e in attrs),
        }
    functions = {n: model["functions"][n] for n in sorted(model["functions"]) if n in top}
    return {
        "stub": meta,
        "about": "Names and signatures extracted from the UE 5.6 Python stub by make_index.py; "
        "only what the EmoFace plugin and tests/fake_unreal.py reference.",
        "considered_top": sorted(top),
        "considered_attrs": sorted(attrs),
        "functions": functions,
        "classes": out_classes,
    }


def main(argv: list[str]) -> int:
    """Write ``ue56_index.json`` from the wheel (or the extracted ``unreal.py``) given."""
    if len(argv) != 1:
        print(__doc__)
        return 2
    source = Path(argv[0])
    raw = source.read_bytes()
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as zf:
            text = zf.read(STUB_MEMBER).decode("utf-8-sig")
    else:
        text = raw.decode("utf-8-sig")
    meta = {
        "package": "unreal-stub",
        "version": "0.3",
        "engine": "5.6.0",
        "file": source.name,
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    index = build_index(parse_stub(text), meta)
    OUT.write_text(json.dumps(index, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(index['classes'])} classes, {len(index['functions'])} functions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
