"""The package's shape: no import cycles inside `voicebot`, and the core never imports the
built-in plugins (they load through entry points like anyone else's)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "voicebot"


def _modules() -> dict[str, ast.Module]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = ast.parse(path.read_text("utf-8"))
    return mods


def _imports(name: str, tree: ast.Module, mods: dict) -> set[str]:
    """Modules of `voicebot` that `name` imports when it runs (function-local imports count,
    `if TYPE_CHECKING:` blocks do not). A submodule's import of its own package is no cycle."""
    is_package = (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - child.level + 1]
                    base = ".".join([*parts, *([child.module] if child.module else [])])
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in mods else base)
            visit(child)

    visit(tree)
    resolved = set()
    for target in found:
        while target and target not in mods:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def test_no_import_cycles() -> None:
    mods = _modules()
    graph = {name: _imports(name, tree, mods) for name, tree in mods.items()}
    cycles = []
    for start in graph:  # a cycle through `start`: is `start` reachable from what it imports?
        seen, todo = set(), [(n, [start, n]) for n in graph[start]]
        while todo:
            node, path = todo.pop()
            if node == start:
                cycles.append(" -> ".join(path))
                break
            if node not in seen:
                seen.add(node)
                todo += [(n, [*path, n]) for n in graph[node]]
    assert cycles == []


def test_the_core_never_imports_a_plugin() -> None:
    offenders = [
        name
        for name, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        and any(
            (n or "").startswith("voicebot_plugins")
            for n in ([node.module] if isinstance(node, ast.ImportFrom) else [])
            + [a.name for a in node.names]
        )
    ]
    assert offenders == []
