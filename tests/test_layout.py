"""The package's import graph, root included: no circle, nothing imports the package root,
and no arrow from the core into the application."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cortexgnn"
APPLICATION_ONLY = {"argparse", "tqdm", "matplotlib", "torchvision"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names), at any depth of the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return found


def internal_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in imports_of(path) if m in modules and m != name}
    return graph


def test_every_module_is_in_the_graph_root_included():
    graph = internal_graph()
    assert "cortexgnn" in graph and "cortexgnn._pyg" in graph
    assert len(graph) == len(list(PACKAGE.rglob("*.py")))


def test_nothing_imports_the_package_root():
    """The root only re-exports (lazily): a module importing it would point up."""
    importers = sorted(name for name, edges in internal_graph().items() if "cortexgnn" in edges)
    assert importers == []


#: the application: the command line, the training library, and the neuron system's plots
APPLICATION = ("cortexgnn.cli", "cortexgnn.train", "cortexgnn.__main__", "cortexgnn.neurons.plots")


def is_application(name: str) -> bool:
    return any(name == top or name.startswith(f"{top}.") for top in APPLICATION)


def test_core_never_imports_the_application():
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if is_application(name):
            continue
        imported = imports_of(path)
        assert not any(is_application(m) for m in imported), name
        tops = {m.split(".")[0] for m in imported}
        assert not tops & APPLICATION_ONLY, f"{name} imports {tops & APPLICATION_ONLY}"


def test_the_libraries_never_import_the_command_line():
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if name.startswith("cortexgnn.cli") or name == "cortexgnn.__main__":
            continue
        assert not any(m.startswith("cortexgnn.cli") for m in imports_of(path)), name


def test_import_graph_has_no_circle():
    graph = internal_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_the_model_does_not_import_the_reference():
    graph = internal_graph()
    assert "cortexgnn.reference" not in graph["cortexgnn.nn.model"]
    assert "cortexgnn.nn.model" in graph["cortexgnn.reference"]
