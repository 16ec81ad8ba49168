"""The package's shape, enforced: no import cycles, no underscore names across subpackages,
modules kept small (docs/design.md section 4).

Read from the source with `ast` (nothing is imported), so a violation fails here with the
offending module named, not somewhere else as an import error.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "python" / "shallowprobes"
SUBPACKAGES = tuple(sorted(p.parent.name for p in PKG.glob("*/__init__.py")))
MAX_LINES = 600


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = list(f.relative_to(PKG).with_suffix("").parts)
        is_init = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_init else parts)] = (f, is_init)
    return out


MODULES = _modules()
# compiled modules (typed by their .pyi stub): imported whole, never part of a cycle
COMPILED = {p.stem for p in PKG.rglob("*.pyi")}


def _target(module: str, is_init: bool, node: ast.ImportFrom) -> str:
    base = module.split(".") if module else []
    if not is_init:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _relative_imports(module: str, top_level_only: bool):
    """(target module, imported name) of every relative import in `module`."""
    f, is_init = MODULES[module]
    tree = ast.parse(f.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    flat = []
    for node in nodes:
        # module-level imports under `if TYPE_CHECKING` / try blocks count as module level
        flat.extend(getattr(node, "body", []) if isinstance(node, (ast.If, ast.Try)) else [node])
    for node in flat:
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            target = _target(module, is_init, node)
            for alias in node.names:
                yield target, alias.name


def _subpackage(module: str) -> str:
    head = module.split(".")[0]
    return head if head in SUBPACKAGES else ""


def test_package_was_found():
    assert "probes.linear" in MODULES and "solve.ridge" in MODULES and len(MODULES) > 30
    assert {"backends", "solve", "probes", "monitors"} <= set(SUBPACKAGES)


def test_no_import_cycles_at_module_level():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for m in MODULES:
        for target, name in _relative_imports(m, top_level_only=True):
            dep = f"{target}.{name}".strip(".")
            if dep in COMPILED:
                continue
            dep = dep if dep in MODULES else target
            if dep in MODULES and dep != m:
                graph[m].add(dep)
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for dep in sorted(graph[m]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, [*path, dep])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def test_no_underscore_names_cross_subpackages():
    crossing = []
    for m in MODULES:
        for target, name in _relative_imports(m, top_level_only=False):
            if not name.startswith("_") or name.startswith("__"):
                continue
            if f"{target}.{name}".strip(".") in set(MODULES) | COMPILED:
                continue  # a package-private module (e.g. _core, _params) imported whole
            if _subpackage(m) != _subpackage(target):
                crossing.append(f"{m} imports {target}.{name}")
    assert not crossing, crossing


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_size(module):
    lines = sum(1 for _ in MODULES[module][0].open())
    assert lines <= MAX_LINES, f"{module}: {lines} lines (limit {MAX_LINES}); split it by concern"


def test_ridge_solution_fields_are_declared():
    """A solve's result carries only declared fields: a typo or an ad-hoc attribute fails."""
    import numpy as np
    from shallowprobes.solve.ridge import RidgeSolution

    sol = RidgeSolution(np.zeros((2, 1)), np.zeros(1), np.ones(3), np.zeros(1, int),
                        np.zeros((3, 1)), np.zeros(3))  # fmt: skip
    sol.gamma = 0.5  # declared
    assert sol.gamma == 0.5 and sol.quadratic is None
    with pytest.raises(AttributeError, match="no field 'gama'"):
        sol.gama = 0.5
