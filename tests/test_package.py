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


def test_the_design_page_lists_every_module_with_its_imports_layer_by_layer():
    """docs/design.md's table: every module once, its imports as the code has them, none from a layer above."""
    short = {module: module.removeprefix("vskip.") or module for module in import_graph()}
    graph = {short[module]: {short[target] for target in targets} for module, targets in import_graph().items()}
    layers, listed = [], {}
    for line in (ROOT.parents[1] / "docs" / "design.md").read_text().splitlines():
        if line.startswith("### "):
            layers.append(line)
        elif line.startswith("| `"):
            module, _, imports = (cell.strip() for cell in line.strip("|").split(" | "))
            assert module.strip("`") not in listed, f"{module} is listed twice"
            listed[module.strip("`")] = (len(layers), set(imports.split(", ")) - {"–"})
    assert set(listed) == set(graph), f"missing: {set(graph) - set(listed)}, gone: {set(listed) - set(graph)}"
    for module, (layer, imports) in listed.items():
        assert imports == graph[module], f"{module} imports {', '.join(sorted(graph[module])) or '–'}"
        above = [target for target in imports if listed[target][0] < layer]
        assert not above, f"{module} imports {above} from a layer above its own"
