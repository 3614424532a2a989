"""Every Unreal API the plugin uses exists in UE 5.6, and the fake ``unreal`` module matches it.

The reference is ``tests/data/unreal_stub/ue56_index.json``, extracted from the ``unreal-stub``
0.3 package (the 5.6 editor's generated stub) by ``make_index.py``. Three checks chain together:

1. the plugin's source: every ``unreal.X`` and ``unreal.X.y`` it names, and the keyword arguments
   of the calls it makes through them, exist in the index;
2. the fake: every public class, method (parameter names, class/instance kind), property, editor
   property and enum member of ``tests/fake_unreal.py`` exists in the index, so the calls the
   plugin makes on objects it gets back (``rig.get_hierarchy().set_control_value(...)``) and that
   the behaviour tests run through the fake exist too;
3. the plugin's hygiene: ``import unreal`` only inside functions, standard library only, and the
   Unreal plugins that provide the classes it uses are dependencies in the ``.uplugin``.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import sys
from pathlib import Path

import fake_unreal
import pytest

REPO = Path(__file__).resolve().parent.parent
PLUGIN_DIR = REPO / "unreal_plugin" / "EmoFaceBridge"
PLUGIN_PYTHON = PLUGIN_DIR / "Content" / "Python"
PACKAGE = PLUGIN_PYTHON / "emoface_unreal"
INDEX_DIR = REPO / "tests" / "data" / "unreal_stub"
INDEX = json.loads((INDEX_DIR / "ue56_index.json").read_text(encoding="utf-8"))
CLASSES: dict = INDEX["classes"]
FUNCTIONS: dict = INDEX["functions"]
PLUGIN_SOURCES = sorted(p for p in PLUGIN_PYTHON.rglob("*.py") if "__pycache__" not in p.parts)
REGENERATE = (
    "regenerate tests/data/unreal_stub/ue56_index.json with make_index.py (see its docstring)"
)


def _legacy_names() -> tuple[str, ...]:
    tree = ast.parse((PACKAGE / "editor" / "compat.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", "") == "LEGACY_NAMES" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("compat.LEGACY_NAMES not found")


LEGACY = _legacy_names()


def chain(cls: str):
    """The class and its bases in the index, nearest first."""
    seen, todo = [], [cls]
    while todo:
        name = todo.pop(0)
        if name in CLASSES and name not in seen:
            seen.append(name)
            todo.extend(CLASSES[name]["bases"])
    return seen


def member(cls: str, name: str) -> dict | None:
    for klass in chain(cls):
        found = CLASSES[klass]["members"].get(name)
        if found is not None:
            return found
    return None


def editor_property(cls: str, name: str) -> bool:
    return any(name in CLASSES[k]["editor_properties"] for k in chain(cls))


def params(sig: str) -> list[str]:
    return [p.strip() for p in sig.split(",") if p.strip()]


def accepts(sig: str, keywords: list[str], n_positional: int) -> list[str]:
    """Problems calling a stub signature with these keywords and this many positional args."""
    names = params(sig)
    if any(p.startswith("*") for p in names):
        return []
    plain = [p.rstrip("=") for p in names]
    problems = [f"no parameter {k!r}" for k in keywords if k not in plain]
    if n_positional > len(plain):
        problems.append(f"{n_positional} positional arguments, the API takes {len(plain)}")
    return problems


def load_make_index():
    spec = importlib.util.spec_from_file_location("make_index", INDEX_DIR / "make_index.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_index_is_from_the_56_stub_and_covers_every_name_in_use():
    assert INDEX["stub"]["package"] == "unreal-stub" and INDEX["stub"]["version"] == "0.3"
    assert INDEX["stub"]["engine"].startswith("5.6")
    top, attrs = load_make_index().referenced_names()
    missing_top = sorted(top - set(INDEX["considered_top"]))
    missing_attrs = sorted(attrs - set(INDEX["considered_attrs"]) - {"__init__"})
    assert not missing_top and not missing_attrs, (
        f"names not in the index: {missing_top + missing_attrs}; {REGENERATE}"
    )


def _plugin_unreal_uses():
    """``(file, line, top, attr or None, call or None)`` for each ``unreal.X[.y]`` in the plugin."""
    for path in PLUGIN_SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "unreal"
            ):
                parent = parents.get(node)
                attr = (
                    parent.attr
                    if isinstance(parent, ast.Attribute) and parent.value is node
                    else None
                )
                target = parent if attr else node
                call = parents.get(target)
                call = call if isinstance(call, ast.Call) and call.func is target else None
                yield path.relative_to(REPO), node.lineno, node.attr, attr, call
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id == "unreal"
            ):
                yield path.relative_to(REPO), node.lineno, node.args[1].value, None, None


def test_every_unreal_name_the_plugin_uses_exists_in_ue56():
    problems = []
    n_checked = 0
    for where, line, top, attr, call in _plugin_unreal_uses():
        n_checked += 1
        loc = f"{where}:{line}: unreal.{top}" + (f".{attr}" if attr else "")
        if top in LEGACY:
            continue
        if top in FUNCTIONS:
            if call is not None and attr is None:
                problems += [
                    f"{loc}: {p}"
                    for p in accepts(
                        FUNCTIONS[top]["params"], [k.arg for k in call.keywords], len(call.args)
                    )
                ]
            continue
        if top not in CLASSES:
            problems.append(f"{loc}: not in the UE 5.6 API")
            continue
        if attr is None:
            if call is not None:  # a constructor
                init = member(top, "__init__")
                if init is not None:
                    problems += [
                        f"{loc}(): {p}"
                        for p in accepts(
                            init["params"], [k.arg for k in call.keywords], len(call.args)
                        )
                    ]
            continue
        enum_members = {m for k in chain(top) for m in CLASSES[k]["enum_members"]}
        found = member(top, attr)
        if found is None and attr not in enum_members and not editor_property(top, attr):
            problems.append(f"{loc}: no such member in UE 5.6")
        elif found is not None and call is not None:
            if found["kind"] not in ("classmethod", "staticmethod"):
                problems.append(f"{loc}: called on the class but it is an instance {found['kind']}")
            problems += [
                f"{loc}(): {p}"
                for p in accepts(found["params"], [k.arg for k in call.keywords], len(call.args))
            ]
    assert n_checked > 60, "the scan found too few uses; is the plugin path right?"
    assert not problems, "\n".join(problems)


def _fake_public_classes():
    for name, obj in vars(fake_unreal).items():
        if (
            inspect.isclass(obj)
            and obj.__module__ == fake_unreal.__name__
            and not name.startswith("_")
        ):
            yield name, obj


def _constructed_by_plugin() -> set[str]:
    return {
        top for _, _, top, attr, call in _plugin_unreal_uses() if attr is None and call is not None
    }


def _sig_problems(where: str, fn, stub_sig: str) -> list[str]:
    fake_params = [
        p for p in inspect.signature(fn).parameters.values() if p.name not in ("self", "cls")
    ]
    stub = params(stub_sig)
    if any(p.startswith("*") for p in stub):
        return []
    names = [p.rstrip("=") for p in stub]
    problems = []
    if [p.name for p in fake_params] != names[: len(fake_params)]:
        problems.append(
            f"{where}: fake parameters {[p.name for p in fake_params]} are not a prefix of "
            f"UE 5.6's {names}"
        )
    elif any(not p.endswith("=") for p in stub[len(fake_params) :]):
        problems.append(f"{where}: UE 5.6 requires {stub[len(fake_params) :]} which the fake lacks")
    return problems


def test_fake_unreal_matches_ue56_names_and_signatures():
    problems = []
    constructed = _constructed_by_plugin()
    for name, cls in _fake_public_classes():
        if name not in CLASSES:
            problems.append(f"fake class {name}: not in UE 5.6")
            continue
        for prop in cls.__dict__.get("_props", {}):
            if not editor_property(name, prop) and member(name, prop) is None:
                problems.append(f"{name}: editor property {prop!r} not in UE 5.6")
        if issubclass(cls, fake_unreal.EnumBase) and cls is not fake_unreal.EnumBase:
            stub_members = {m for k in chain(name) for m in CLASSES[k]["enum_members"]}
            for attr, value in vars(cls).items():
                if isinstance(value, cls) and attr not in stub_members:
                    problems.append(f"{name}.{attr}: enum member not in UE 5.6")
        for attr, value in vars(cls).items():
            if attr.startswith(("_", "fake_")) and attr != "__init__":
                continue
            if attr == "__init__":
                if name not in constructed:
                    continue  # the plugin never builds one; the fake's constructor is internal
                stub = member(name, "__init__")
                problems += (
                    _sig_problems(f"{name}()", value, stub["params"])
                    if stub
                    else [f"{name}(): no constructor in UE 5.6"]
                )
                continue
            if not (
                inspect.isfunction(value)
                or isinstance(value, (classmethod, staticmethod, property))
            ):
                continue
            stub = member(name, attr)
            if stub is None:
                if isinstance(value, property) and editor_property(name, attr):
                    continue
                problems.append(f"{name}.{attr}: not in UE 5.6")
                continue
            if isinstance(value, property):
                if stub["kind"] != "property":
                    problems.append(
                        f"{name}.{attr}: a property in the fake, a {stub['kind']} in UE 5.6"
                    )
                continue
            is_class_level = isinstance(value, (classmethod, staticmethod))
            if is_class_level != (stub["kind"] in ("classmethod", "staticmethod")):
                problems.append(
                    f"{name}.{attr}: {'class' if is_class_level else 'instance'} method in the "
                    f"fake, {stub['kind']} in UE 5.6"
                )
            fn = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
            problems += _sig_problems(f"{name}.{attr}", fn, stub["params"])
    for name, fn in vars(fake_unreal).items():
        if (
            inspect.isfunction(fn)
            and fn.__module__ == fake_unreal.__name__
            and not name.startswith(("_", "fake_"))
        ):
            if name not in FUNCTIONS:
                problems.append(f"function {name}: not in UE 5.6")
            else:
                problems += _sig_problems(name, fn, FUNCTIONS[name]["params"])
    assert not problems, "\n".join(problems)


def test_the_fake_rejects_what_unreal_rejects(monkeypatch):
    unreal = fake_unreal.fake_install(monkeypatch)
    with pytest.raises(Exception, match="Failed to find property"):
        unreal.AssetImportTask().set_editor_property(
            "file_name", "x.wav"
        )  # the property is "filename"
    with pytest.raises(TypeError):
        unreal.FrameNumber(1.5)  # FrameNumber holds an int32
    with pytest.raises(TypeError):
        unreal.ControlRigSequencerLibrary.set_local_control_rig_float(
            None, None, "x", unreal.FrameNumber(0), 1.0, setkey=False
        )


def test_plugin_imports_unreal_only_inside_functions_and_uses_stdlib_only():
    stdlib = set(sys.stdlib_module_names)
    problems = []
    for path in PLUGIN_SOURCES:
        rel = path.relative_to(PLUGIN_PYTHON)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        pure = rel.parts[0] == "emoface_unreal" and "editor" not in rel.parts
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                root = module.split(".")[0]
                if root == "unreal":
                    if node.col_offset == 0:
                        problems.append(f"{rel}:{node.lineno}: `import unreal` at module level")
                    if pure:
                        problems.append(f"{rel}:{node.lineno}: pure module imports unreal")
                elif module.startswith("emoface_unreal.editor") and pure:
                    problems.append(f"{rel}:{node.lineno}: pure module imports the editor package")
                elif root == "zmq":
                    if node.col_offset == 0:
                        problems.append(f"{rel}:{node.lineno}: pyzmq is optional; import it lazily")
                elif root not in stdlib and root not in ("emoface_unreal", "__future__"):
                    problems.append(f"{rel}:{node.lineno}: {module} is not in the standard library")
    assert not problems, "\n".join(problems)


def test_legacy_spellings_live_only_in_compat_and_are_absent_from_ue56():
    for name in LEGACY:
        assert (
            name not in CLASSES
            and name not in FUNCTIONS
            and all(name not in c["members"] for c in CLASSES.values())
        ), f"{name} exists in 5.6; not legacy"
    for path in PLUGIN_SOURCES:
        if path.name == "compat.py":
            continue
        text = path.read_text(encoding="utf-8")
        for name in LEGACY:
            assert f".{name}" not in text and f'"{name}"' not in text, (
                f"{path.name} uses legacy {name}"
            )


def test_uplugin_depends_on_every_unreal_plugin_the_code_uses():
    descriptor = json.loads((PLUGIN_DIR / "EmoFaceBridge.uplugin").read_text(encoding="utf-8"))
    deps = {p["Name"] for p in descriptor["Plugins"] if p.get("Enabled")}
    assert "PythonScriptPlugin" in deps
    assert descriptor["Modules"] == [] and descriptor["CanContainContent"] is True
    # Classes named in the plugin, plus those it reaches through returned objects (the fake
    # mirrors every class the behaviour tests touch, e.g. the Sequencer scripting channels).
    used = {top for _, _, top, _, _ in _plugin_unreal_uses() if top in CLASSES}
    used |= {name for name, _ in _fake_public_classes() if name in CLASSES}
    needed = {
        CLASSES[c]["source"]["plugin"]: c for c in sorted(used) if "plugin" in CLASSES[c]["source"]
    }
    missing = {p: c for p, c in needed.items() if p not in deps}
    assert not missing, f"add to EmoFaceBridge.uplugin Plugins: {missing}"
    assert {
        "ControlRig",
        "SequencerScripting",
        "LevelSequenceEditor",
        "EditorScriptingUtilities",
    } <= set(needed)
