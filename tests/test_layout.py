"""The package layout is the architecture: imports only run downward, and never in a cycle.

Layers, top to bottom (README, Layout): the entry points, `http`, `numbers`, `stores`,
`cache` and `auth`, `couchdb`, `kazoo`, then the modules every layer shares.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parent.parent / "service"

# A package may import from packages of a lower rank only (equal rank: not each other).
RANK = {
    "entry": 7,
    "http": 6,
    "events": 5,
    "numbers": 4,
    "users": 4,
    "stores": 3,
    "cache": 2,
    "auth": 2,
    "couchdb": 1,
    "kazoo": 0,
    "shared": -1,
}
ENTRY_MODULES = {"service.cli", "service.__main__"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in SERVICE.rglob("*.py"):
        parts = path.relative_to(SERVICE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _layer(module: str) -> str:
    if module in ENTRY_MODULES:
        return "entry"
    parts = module.split(".")
    if len(parts) == 2 and module not in {f"service.{p}" for p in RANK}:
        return "shared"
    return parts[1] if len(parts) > 1 else "shared"


def _imports(module: str) -> set[str]:
    """The service modules `module` imports (at any depth, lazy imports included)."""
    tree = ast.parse(MODULES[module].read_text())
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("service"):
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                targets.add(submodule if submodule in MODULES else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{module}: relative import; the layout uses absolute ones")
        elif isinstance(node, ast.Import):
            targets.update(a.name for a in node.names if a.name.startswith("service"))
    targets.discard(module)
    return targets


GRAPH = {module: _imports(module) for module in MODULES}


def test_every_package_has_a_known_layer() -> None:
    unknown = {_layer(m) for m in MODULES} - set(RANK)
    assert not unknown, f"packages without a layer in RANK: {unknown}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_downward(module: str) -> None:
    layer = _layer(module)
    upward = [
        target
        for target in GRAPH[module]
        if _layer(target) != layer and RANK[_layer(target)] >= RANK[layer]
    ]
    assert not upward, f"{module} ({layer}) imports from its own level or above: {upward}"


def test_no_import_cycle() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])


def test_the_checks_see_a_wrong_way_import() -> None:
    # The checks above only mean something if they can see an edge: the HTTP face does
    # import the stores, and the stores do not import the HTTP face.
    assert any(_layer(t) == "stores" for t in GRAPH["service.http.services"])
    assert RANK[_layer("service.http.services")] > RANK[_layer("service.stores.connectivity")]
