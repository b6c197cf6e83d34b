"""The package's imports run one way, downhill: no module imports, directly or through others,
a module that imports it back (an import circle makes the order of imports matter, and hides
which module is the lower one). Imports inside functions count; `if TYPE_CHECKING:` ones do not."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pinpoint"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports (a name imported from a package counts as its
    submodule when there is one), leaving out imports under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for guard in ast.walk(tree)
               if isinstance(guard, ast.If) and "TYPE_CHECKING" in ast.unparse(guard.test)
               for node in ast.walk(guard)}
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name in modules and name != this}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (a list of modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if nxt == "pinpoint":  # the package's front door (pinpoint/__init__.py) is not a module of the flow
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (circle := visit(nxt)):
                return circle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (circle := visit(node)):
            return circle
    return None


def test_the_checker_finds_a_circle() -> None:
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_circle_in_the_package() -> None:
    graph = import_graph()
    assert "pinpoint.tracking.runner" in graph and "pinpoint.outputs" in graph
    assert find_circle(graph) is None, " -> ".join(find_circle(graph) or [])


def test_outputs_sit_on_a_low_floor() -> None:
    """Every verb asks pinpoint.outputs before writing, so it may use only the lowest modules."""
    assert import_graph()["pinpoint.outputs"] <= {"pinpoint.errors", "pinpoint.files"}


if __name__ == "__main__":
    print(" -> ".join(find_circle(import_graph()) or ["no import circle"]))
