"""The package as a whole: its modules import each other without a circle, and the pure core imports nothing heavy."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import vskip

ROOT = Path(vskip.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(module: str, path: Path, node: ast.ImportFrom | ast.Import, modules: set[str]) -> set[str]:
    """The vskip modules an import statement loads (submodules named in `from x import y` included)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & modules
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
    target = ".".join(base + ([node.module] if node.module else []))
    submodules = {f"{target}.{alias.name}" for alias in node.names} & modules
    return submodules or ({target} & modules)


def import_graph() -> dict[str, set[str]]:
    """Module -> the vskip modules it imports anywhere in its body (imports inside functions too).

    A module's own parent packages are left out: Python loads them first whatever the module imports.
    """
    paths = {_module_name(path): path for path in ROOT.rglob("*.py")}
    graph = {}
    for module, path in paths.items():
        parents = {module.rsplit(".", n)[0] for n in range(1, module.count(".") + 1)}
        graph[module] = {
            target
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for target in _imported(module, path, node, set(paths))
        } - parents - {module}
    return graph


def test_modules_import_each_other_without_a_circle():
    graph = import_graph()
    assert graph["vskip.generate"] and "vskip.vllm_backend" in graph  # the graph is not vacuous
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"import circle: {' -> '.join(err.args[1])}") from None
    assert set(order) == set(graph)


def test_the_gate_is_pure():
    """`scores, γ → keep mask` loads no image library and no model library (STYLE.md, practice 1)."""
    heavy = ("PIL", "torch", "transformers", "numpy")
    code = f"import sys, vskip.gate, vskip.compress; print([m for m in {heavy!r} if m in sys.modules])"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
