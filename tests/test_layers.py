"""The layout's dependency rules (docs/architecture.md, R1-R5), checked by walking the imports.

Every ``import`` in the product is read with ``ast`` (also those inside functions; imports under
``if TYPE_CHECKING:`` are left out, they never run). A rule is a predicate over (importer,
imported) module names; the walker itself is tested on synthetic packages, so a rule that
silently matches nothing would fail here too.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from conftest import REPO_ROOT

PLUGIN_PYTHON = REPO_ROOT / "unreal_plugin" / "EmoFaceBridge" / "Content" / "Python"
ROOTS = {"emoface_core": REPO_ROOT, "bridge": REPO_ROOT}
STDLIB = set(sys.stdlib_module_names)

# R2: what the pure core never imports (the edge's business), and the one exception.
EDGE_MODULES = (
    "socket",
    "zmq",
    "threading",
    "queue",
    "multiprocessing",
    "ray",
    "sounddevice",
    "argparse",
    "subprocess",
    "concurrent",
    "signal",
)
SUBPROCESS_ALLOWED = {"emoface_core.viz.preview"}  # ffmpeg muxes the preview's sound
# R3: what the concrete engines may import from the rest of the core.
ENGINE_DEPENDENCIES = {
    "emoface_core.bounded",  # bounded YAML for the procedural data files
    "emoface_core",  # __version__
    "emoface_core.engines.base",
    "emoface_core.audio",
    "emoface_core.emotion",
    "emoface_core.controllers",
    "emoface_core.errors",
    "emoface_core.formats",
}
PACED_LOOPS = ("bridge.runtime.clips", "bridge.runtime.lines", "bridge.runtime.live")


def module_name(path: Path, root: Path) -> str:
    """``emoface_core/engines/base.py`` -> ``emoface_core.engines.base`` (packages: no __init__)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Modules a module's code imports (absolute names; ``from X import m`` resolves to X.m)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def import_graph(files: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """``{module: (source, is_package)}`` -> ``{module: imported modules}``."""
    known = set(files)
    return {m: imports_of(src, m, pkg, known) for m, (src, pkg) in files.items()}


def product_files() -> dict[str, tuple[str, bool]]:
    files = {}
    for top, root in ROOTS.items():
        for path in sorted((root / top).rglob("*.py")):
            files[module_name(path, root)] = (path.read_text(), path.name == "__init__.py")
    for path in sorted(PLUGIN_PYTHON.rglob("*.py")):
        files["plugin:" + module_name(path, PLUGIN_PYTHON)] = (
            path.read_text(),
            path.name == "__init__.py",
        )
    return files


def within(name: str, *prefixes: str) -> bool:
    """Whether module ``name`` is one of ``prefixes`` or inside one of them."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


Rule = Callable[[str, str], str | None]  # (importer, imported) -> the broken rule, or None


def rule_r1(src: str, dst: str) -> str | None:
    if within(src, "emoface_core") and within(dst, "bridge"):
        return "R1: emoface_core imports nothing from bridge"
    if src.startswith("plugin:") and within(dst, "emoface_core", "bridge"):
        return "R1: the Unreal plugin imports neither emoface_core nor bridge"
    return None


def rule_r2(src: str, dst: str) -> str | None:
    if not within(src, "emoface_core"):
        return None
    top = dst.split(".")[0]
    if top == "subprocess" and src in SUBPROCESS_ALLOWED:
        return None
    if top in EDGE_MODULES:
        return f"R2: emoface_core never imports {top} (sockets, threads, processes, argv)"
    return None


def rule_r3(src: str, dst: str) -> str | None:
    if not (within(src, "emoface_core") and within(dst, "emoface_core")):
        return None
    for engine, other in (("neural", "procedural"), ("procedural", "neural")):
        here = f"emoface_core.engines.{engine}"
        if within(src, here):
            if within(dst, f"emoface_core.engines.{other}"):
                return "R3: the two engines never import each other"
            if not within(dst, here) and dst not in ENGINE_DEPENDENCIES:
                return "R3: an engine imports only engines.base, audio, emotion, controllers, "
                "errors and formats"
    if (
        src in ("emoface_core.animate", "emoface_core.streaming")
        and within(dst, "emoface_core.engines")
        and dst != "emoface_core.engines.base"
    ):
        return "R3: animate and streaming see only the engine contracts (engines.base)"
    on_top = ("emoface_core.training", "emoface_core.viz", "emoface_core.testing")
    if within(dst, *on_top) and not within(src, *on_top):
        return "R3: training/, viz/ and testing/ sit on top of the core"
    return None


def rule_testing(src: str, dst: str) -> str | None:
    if within(dst, "emoface_core.testing") and not within(src, "emoface_core.testing"):
        return "R3: nothing in the product imports emoface_core.testing"
    return None


_BRIDGE_LAYERS = {
    # importer prefix -> bridge modules it may import (besides its own folder)
    "bridge.protocol": (),
    "bridge.errors": ("bridge.protocol",),
    "bridge.arkit": (),
    "bridge.mapping": ("bridge.errors", "bridge.arkit", "bridge.protocol"),
    "bridge.transports": ("bridge.protocol", "bridge.arkit", "bridge.errors"),
    "bridge.sources": ("bridge.errors",),
    "bridge.controls": ("bridge.errors", "bridge.sources"),
    "bridge.receiver": ("bridge.protocol", "bridge.arkit", "bridge.errors", "bridge.transports"),
    "bridge.runtime": (
        "bridge.protocol",
        "bridge.errors",
        "bridge.arkit",
        "bridge.mapping",
        "bridge.transports",
        "bridge.sources",
        "bridge.controls",
    ),
    "bridge.transcript": ("bridge.errors",),
    "bridge.bake": ("bridge.errors", "bridge.mapping", "bridge.transcript"),
    "bridge.service": (
        "bridge.protocol",
        "bridge.errors",
        "bridge.mapping",
        "bridge.transports",
        "bridge.runtime",
        "bridge.bake.render",
        "bridge.bake.lines",
        "bridge.transcript",
    ),
    "bridge.unreal_install": ("bridge.errors", "bridge.mapping", "bridge.protocol"),
}


def rule_r4(src: str, dst: str) -> str | None:
    if src == "bridge.protocol" and dst.split(".")[0] not in STDLIB:
        return "R4: bridge/protocol.py imports nothing beyond the standard library"
    if not within(dst, "bridge") or not within(src, "bridge"):
        return None
    if within(src, "bridge.commands"):
        shared = ("bridge.commands", "bridge.commands.options", src)
        if within(dst, "bridge.commands") and dst not in shared:
            return "R4: no command imports another command (shared options: commands.options)"
        return None
    if within(dst, "bridge.commands") and src != "bridge.cli":
        return "R4: only bridge/cli.py imports the commands"
    for layer, allowed in _BRIDGE_LAYERS.items():
        if within(src, layer):
            if within(dst, layer) or within(dst, *allowed) or dst == "bridge":
                return None
            return f"R4: {layer} may import only {', '.join(allowed) or 'the standard library'}"
    return None


RULES: tuple[Rule, ...] = (rule_r1, rule_r2, rule_r3, rule_testing, rule_r4)


def violations(graph: dict[str, set[str]], rules: Iterable[Rule] = RULES) -> list[str]:
    out = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            for rule in rules:
                broken = rule(src, dst)
                if broken:
                    out.append(f"{src} -> {dst}: {broken}")
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles among the graph's own modules (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(product_files())


def test_the_product_keeps_every_dependency_rule(graph):
    assert violations(graph) == []


def test_no_import_cycles_anywhere(graph):
    assert cycles(graph) == []


def test_every_loop_that_releases_frames_paces_through_the_frame_clock(graph):
    # R5: stream, serve and live take due times, lateness and skips from runtime/clock.
    for module in PACED_LOOPS:
        assert "bridge.runtime.clock" in graph[module], module


def test_the_walk_sees_the_whole_product(graph):
    # A walker that found nothing would pass every rule: make sure it sees the layout.
    for module in (
        "emoface_core.engines.base",
        "emoface_core.engines.neural.streaming",
        "emoface_core.engines.procedural.engine",
        "bridge.runtime.live",
        "bridge.service.server",
        "bridge.bake.run",
        "plugin:emoface_unreal.live",
    ):
        assert module in graph
    assert "emoface_core.engines.base" in graph["emoface_core.engines.neural.engine"]


# The walker and the rules on synthetic modules: each planted violation is caught. -----------


def _synthetic(**modules: str) -> dict[str, set[str]]:
    files = {name.replace("__", "."): (src, False) for name, src in modules.items()}
    return import_graph(files)


@pytest.mark.parametrize(
    ("modules", "expected"),
    [
        ({"emoface_core__audio": "from bridge.mapping import load_mapping"}, "R1"),
        ({"emoface_core__streaming": "import threading"}, "R2"),
        ({"emoface_core__animate": "def f():\n    import zmq\n"}, "R2"),  # inside a function
        ({"emoface_core__formats": "import subprocess"}, "R2"),
        (
            {
                "emoface_core__engines__neural__engine": (
                    "from emoface_core.engines.procedural.engine import ProceduralEngine"
                )
            },
            "never import each other",
        ),
        (
            {"emoface_core__engines__procedural__engine": "from emoface_core.postprocess import x"},
            "an engine imports only",
        ),
        (
            {"emoface_core__streaming": "from emoface_core.engines.neural import streaming"},
            "contracts",
        ),
        ({"bridge__runtime__live": "from emoface_core.testing.clocks import FakeClock"}, "testing"),
        ({"bridge__commands__live": "from bridge.commands.bake import build_engine"}, "command"),
        ({"bridge__runtime__live": "from bridge.service.server import Service"}, "R4"),
        ({"bridge__protocol": "import numpy as np"}, "standard library"),
        ({"bridge__transports__zmq": "from ..runtime import subject"}, "R4"),  # relative import
    ],
)
def test_the_walker_catches_a_planted_violation(modules, expected):
    found = violations(_synthetic(**modules))
    assert found and expected in found[0], found


def test_type_checking_imports_are_not_dependencies():
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import zmq\n"
    assert violations(_synthetic(emoface_core__audio=source)) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = _synthetic(
        bridge__a="from bridge import b",
        bridge__b="def f():\n    import bridge.c\n",
        bridge__c="import bridge.a",
    )
    assert cycles(graph) == [["bridge.a", "bridge.b", "bridge.c"]]
