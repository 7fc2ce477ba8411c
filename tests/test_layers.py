"""The import graph of shoal/ keeps the layering docs/architecture.md draws.

Read with `ast` (nothing is imported): every `import shoal...` / `from shoal... import`
in every module, at module level, inside functions or under `if TYPE_CHECKING:`.
Asserted:

- no import cycles among shoal's modules (function-local and type-checking imports
  included, so a cycle cannot hide inside a function or behind TYPE_CHECKING);
- `shoal.node` imports nothing from `shoal.mesh` (the node is the kubelet; the mesh
  plugs in through `shoal.node.hooks.PodHooks`);
- no package imports one of a higher layer (LAYERS below, lowest first; packages of one
  layer may import each other, without cycles);
- the lower layers (OWN_NO_LOCAL_IMPORTS) import shoal modules at module level only.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "shoal"

# lowest first; "shoal" is the package's own __init__
LAYERS: list[set[str]] = [
    {"shoal", "errors", "config", "fsutil", "tasks", "timestamps", "examples"},
    {"images", "runtime"},
    {"network", "builder"},
    {"api", "store"},
    {"apiserver", "client"},
    {"controllers", "node", "kubeproxy"},
    {"mesh"},
    {"cli", "daemon", "teardown"},
]
LEVEL = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}

OWN_NO_LOCAL_IMPORTS = ("node", "runtime", "network", "images", "builder", "controllers", "kubeproxy",
                        "daemon", "teardown")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def resolve(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(name: str) -> list[tuple[str, bool, int]]:
    """(imported module, inside a function?, line) of one module."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((resolve(a.name), local, child.lineno) for a in child.names if a.name.startswith("shoal"))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[:len(package) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target == "shoal" or target.startswith("shoal."):
                    for alias in child.names:
                        full = f"{target}.{alias.name}"
                        found.append((resolve(full if full in MODULES else target), local, child.lineno))
            visit(child, local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text()), False)
    return [(t, local, line) for t, local, line in found if t != name]


GRAPH = {name: imports_of(name) for name in MODULES}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "shoal"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = collections.defaultdict(int)  # 0 new, 1 on the stack, 2 done
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state[nxt] == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state[nxt] == 0:
                found = walk(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state[node] == 0:
            found = walk(node)
            if found:
                return found
    return None


def test_every_package_has_a_layer():
    assert {package_of(m) for m in MODULES} <= set(LEVEL), "add new packages to LAYERS"


def test_no_import_cycles():
    # an import of a package's submodule also runs the package's __init__; Python handles
    # an __init__ importing its own submodules, so edges into one's own package __init__
    # are left out (they are not cycles between concerns)
    graph = {m: {t for t, _, _ in edges if not m.startswith(t + ".")} for m, edges in GRAPH.items()}
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"


def test_node_imports_nothing_from_mesh():
    bad = [(m, t, line) for m, edges in GRAPH.items() if package_of(m) == "node"
           for t, _, line in edges if package_of(t) == "mesh"]
    assert not bad, f"node/ imports the mesh: {bad}"


def test_no_layer_imports_a_higher_one():
    bad = [f"{m}:{line} imports {t}" for m, edges in GRAPH.items() for t, _, line in edges
           if LEVEL[package_of(t)] > LEVEL[package_of(m)]]
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_lower_layers_import_at_module_level_only():
    skip = {"shoal.controllers.namespace"}  # owned elsewhere
    bad = [f"{m}:{line} imports {t} inside a function" for m, edges in GRAPH.items()
           if package_of(m) in OWN_NO_LOCAL_IMPORTS and m not in skip for t, local, line in edges if local]
    assert not bad, "function-local imports:\n" + "\n".join(bad)


def test_the_graph_reader_sees_layering_violations(tmp_path):
    """The checks can fail: a module importing upward, or a cycle, is found."""
    assert ("shoal.node.hooks", False) in {(t, local) for t, local, _ in GRAPH["shoal.mesh.sidecar"]}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
