"""YAML files read with the position of every key and value.

Error messages point at `file:line:col`, so the loader needs positions for data that PyYAML's
`safe_load` throws away. We compose the node graph (which keeps marks), build plain Python data
from it ourselves and record marks by path: `("nodes", "confirm", "next")` → (line, col).
Duplicate keys, which YAML silently collapses, are reported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path_ = tuple[Any, ...]


@dataclass
class Source:
    """One parsed file: its data, and positions of values and keys by path."""

    file: str
    data: Any = None
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def where(self, path: Path_, *, key: bool = False) -> str:
        """`file:line:col` of the value at `path` (or of its key), or of the nearest parent."""
        table = self.keys if key else self.values
        p = tuple(path)
        while p:
            if p in table:
                line, col = table[p]
                return f"{self.file}:{line}:{col}"
            if key and p in self.values:
                line, col = self.values[p]
                return f"{self.file}:{line}:{col}"
            p = p[:-1]
        line, col = self.values.get((), (1, 1))
        return f"{self.file}:{line}:{col}"

    def problem(self, path: Path_, message: str, *, key: bool = False) -> None:
        self.problems.append(f"{self.where(path, key=key)}: {message}")


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def parse(text: str, file: str) -> Source:
    src = Source(file)
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else f"{file}:1:1"
        what = exc.problem or exc.context or "invalid YAML"
        src.problems.append(f"{where}: YAML syntax error: {what}")
        return src
    except yaml.YAMLError as exc:
        src.problems.append(f"{file}:1:1: YAML syntax error: {exc}")
        return src
    if root is None:
        src.data = None
        return src
    constructor = yaml.SafeLoader("")
    src.data = _build(root, (), src, constructor)
    return src


def _build(node: yaml.Node, path: Path_, src: Source, constructor: yaml.SafeLoader) -> Any:
    src.values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                src.problems.append(
                    f"{src.file}:{_mark(key_node)[0]}:{_mark(key_node)[1]}: "
                    "a key must be a plain name, not a list or mapping"
                )
                continue
            if key_node.tag == "tag:yaml.org,2002:merge":
                src.problems.append(
                    f"{src.file}:{_mark(key_node)[0]}:{_mark(key_node)[1]}: "
                    "YAML merge keys (<<) are not supported in flow files"
                )
                continue
            key = str(key_node.value)  # as written: `no:` is the name "no", `1:` the key "1"
            if key in out:
                line, col = _mark(key_node)
                first = src.keys[(*path, key)]
                src.problems.append(
                    f"{src.file}:{line}:{col}: duplicate key '{key}' (first at line {first[0]})"
                )
                continue
            src.keys[(*path, key)] = _mark(key_node)
            out[key] = _build(value_node, (*path, key), src, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), src, constructor) for i, item in enumerate(node.value)]
    value = constructor.construct_object(node)
    if not isinstance(value, str | int | float | bool | type(None)):
        # dates and timestamps: keep the text the user wrote; flows treat them as strings
        value = node.value
    return value


def read(path: Path, display: str) -> Source:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        src = Source(display)
        src.problems.append(f"{display}:1:1: cannot read the file: {exc}")
        return src
    return parse(text, display)
