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


def _third_party_imports(tree: ast.Module, *, typing_only: bool = False) -> set[str]:
    """Top-level names of the modules `tree` imports (function-local imports count). With
    `typing_only`, only those inside `if TYPE_CHECKING:` blocks; without, only the others."""
    found: set[str] = set()

    def visit(node: ast.AST, in_typing: bool) -> None:
        for child in ast.iter_child_nodes(node):
            typing = in_typing or (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            )
            if typing == typing_only:
                if isinstance(child, ast.Import):
                    found.update(a.name.split(".")[0] for a in child.names)
                elif isinstance(child, ast.ImportFrom) and not child.level and child.module:
                    found.add(child.module.split(".")[0])
            visit(child, typing)

    visit(tree, False)
    return found


#: The one module outside `voicebot.server` that may import aiohttp when it runs: the flow `http`
#: step is an aiohttp *client* (httpx is only in the `cloud` extra, and aiohttp is a core
#: dependency anyway), and it serves no route.
AIOHTTP_CLIENTS = {"voicebot.flows.http"}
#: Modules that name aiohttp types for type checkers only: a carrier's webhook handlers take and
#: return aiohttp objects, but the plugin-facing carrier shape loads no aiohttp.
AIOHTTP_TYPES_ONLY = {"voicebot.telephony.carrier"}
#: The loopback provider fakes: aiohttp *servers* that `voicebot bench` (and the tests) run in a
#: process of their own, standing in for a cloud API. Nothing else in the package imports them.
AIOHTTP_FAKES = {"voicebot.bench.fake_base", "voicebot.bench.openai_fake"}


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_only_the_server_imports_aiohttp() -> None:
    mods = _modules()
    running = {
        n
        for n, t in mods.items()
        if "aiohttp" in _third_party_imports(t) and not _in(n, "voicebot.server")
    }
    typing = {
        n
        for n, t in mods.items()
        if "aiohttp" in _third_party_imports(t, typing_only=True) and not _in(n, "voicebot.server")
    }
    assert running == AIOHTTP_CLIENTS | AIOHTTP_FAKES
    importers = {n for n, t in mods.items() if _imports(n, t, mods) & AIOHTTP_FAKES}
    assert importers <= AIOHTTP_FAKES, "the runtime must not load a fake (nor aiohttp with it)"
    assert typing <= AIOHTTP_TYPES_ONLY


def test_audio_and_turn_rules_do_no_io() -> None:
    """Audio, the wire formats and the turn rules are sans-I/O: the same code runs on the loop,
    in a worker thread and under a fake clock in tests."""
    offenders = {
        name: sorted(found)
        for name, tree in _modules().items()
        if _in(name, "voicebot.audio")
        or _in(name, "voicebot.protocol")
        or name == "voicebot.call.turns"
        for found in [
            (_third_party_imports(tree) | _third_party_imports(tree, typing_only=True))
            & {"asyncio", "aiohttp"}
        ]
        if found
    }
    assert offenders == {}
