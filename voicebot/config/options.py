"""Validation of plain YAML data against a dataclass, with errors that point at file and line.

Config sections and provider `Options` are dataclasses; this module turns user YAML into instances
and, when it cannot, reports every problem at once with its key path and line, a did-you-mean for
misspelled keys, and the expected type.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union


@dataclass
class Problem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    """Everything wrong with a configuration, one problem per line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


LineOf = Callable[[str], "int | None"]


def suggest(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return f"a list of {type_name(item)}"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {str: "a string", int: "an integer", float: "a number", bool: "true/false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


class _Invalid(Exception):
    pass


def build(
    cls: type,
    data: Any,
    *,
    path: str,
    file: str,
    line_of: LineOf,
    problems: list[Problem],
) -> Any:
    """Instantiate dataclass `cls` from `data`, appending problems instead of raising."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(Problem(file, line_of(path), path, f"expected a mapping, got {data!r}"))
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in fields:
            problems.append(
                Problem(
                    file,
                    line_of(key_path),
                    key_path,
                    f"unknown key{suggest(str(key), fields)}; allowed: {', '.join(fields)}",
                )
            )
            continue
        try:
            kwargs[key] = _convert(hints[key], value, key_path, file, line_of, problems)
        except _Invalid as exc:
            problems.append(Problem(file, line_of(key_path), key_path, str(exc)))
    for name, f in fields.items():
        missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if missing and name not in kwargs and name not in data:
            key_path = f"{path}.{name}" if path else name
            problems.append(
                Problem(
                    file, line_of(path), key_path, f"required, expected {type_name(hints[name])}"
                )
            )
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a `__post_init__` check of the dataclass itself
        problems.append(Problem(file, line_of(path), path, str(exc)))
    except TypeError:
        pass  # a missing required field, already reported above
    return None


def _convert(tp: Any, value: Any, path: str, file: str, line_of: LineOf, problems: list) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path=path, file=file, line_of=line_of, problems=problems)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path, file, line_of, problems)
            except _Invalid as exc:
                errors.append(str(exc))
        raise _Invalid(f"expected {type_name(tp)}, got {value!r}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value in allowed:
            return value
        hint = suggest(str(value), [str(a) for a in allowed])
        raise _Invalid(f"{value!r} is not one of {', '.join(map(repr, allowed))}{hint}")
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list):
            if item is str and isinstance(value, str):
                return [value]
            raise _Invalid(f"expected {type_name(tp)}, got {value!r}")
        return [
            _convert(item, v, f"{path}[{i}]", file, line_of, problems) for i, v in enumerate(value)
        ]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _Invalid(f"expected a mapping, got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise _Invalid(f"expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise _Invalid(f"expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise _Invalid(f"expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise _Invalid(f"expected a string, got {value!r}")
    return value


def check_ranges(obj: Any, path: str, file: str, line_of: LineOf, problems: list[Problem]) -> None:
    """Apply `metadata={"min": .., "max": ..}` bounds declared on dataclass fields."""
    if obj is None or not dataclasses.is_dataclass(obj):
        return
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key_path = f"{path}.{f.name}" if path else f.name
        if dataclasses.is_dataclass(value):
            check_ranges(value, key_path, file, line_of, problems)
            continue
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                problems.append(
                    Problem(
                        file,
                        line_of(key_path),
                        key_path,
                        f"{value} is out of range ({lo if lo is not None else '-∞'}"
                        f"..{hi if hi is not None else '∞'})",
                    )
                )
