"""`voicebot plugins`: what each installed plugin registers, whether it can start, and (with
`-v`) every option of every provider, so the options need not be looked up in the source."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from typing import Any

from .config.extras import install_command
from .config.options import type_name
from .plugins import PluginManager

_FIELD = re.compile(r"^\s+(\w+)\s*:")


def describe(pm: PluginManager, verbose: bool = False) -> list[str]:
    """One line per plugin; a provider whose modules are missing is marked with what to run."""
    reg = pm.registry
    by_plugin: dict[str, list[tuple[str, str]]] = {}
    for (kind, name), owner in sorted(reg.owners.items()):
        by_plugin.setdefault(owner, []).append((kind, name))
    lines = []
    for plugin in pm.plugin_names():
        provided = by_plugin.get(plugin, [])
        if not provided:
            lines.append(f"{plugin}: (lifecycle hooks only)")
            continue
        needs = {(k, n): _needs(reg, k, n) for k, n in provided}
        shared = set(needs.values())
        if len(shared) == 1:  # one note for the plugin, not one per provider
            labels = [f"{k}:{n}" for k, n in provided]
            note = _note(shared.pop())
        else:
            labels = [f"{k}:{n}{_note(needs[(k, n)])}" for k, n in provided]
            note = ""
        lines.append(f"{plugin}: {', '.join(labels)}{note}")
        if verbose:
            for kind, name in provided:
                options = getattr(_registered(reg, kind, name), "Options", None)
                if options is not None:
                    lines += [f"  {kind}:{name}", *_options(options)]
    return lines


def _registered(reg: Any, kind: str, name: str) -> Any:
    if kind in reg.providers:
        return reg.provider(kind, name)
    return reg.transports.get(name) if kind == "transports" else None


def _needs(reg: Any, kind: str, name: str) -> str:
    provider = _registered(reg, kind, name)
    return install_command(provider) if isinstance(provider, type) else ""


def _note(command: str) -> str:
    return f" (needs: {command})" if command else ""


def _options(cls: type) -> list[str]:
    if not dataclasses.is_dataclass(cls):
        return []
    fields = [f for f in dataclasses.fields(cls) if f.init]
    if not fields:
        return ["    (no options)"]
    hints = typing.get_type_hints(cls)
    docs = _field_docs(cls)
    out = []
    for f in fields:
        what = f"{type_name(hints.get(f.name, Any))}, {_default(f)}"
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if lo is not None or hi is not None:
            what += f", {lo if lo is not None else '-∞'}..{hi if hi is not None else '∞'}"
        doc = f": {docs[f.name]}" if f.name in docs else ""
        out.append(f"    {f.name} ({what}){doc}")
    return out


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return f"default {f.default!r}"
    if f.default_factory is not dataclasses.MISSING:
        return f"default {f.default_factory()!r}"
    return "required"


def _field_docs(cls: type) -> dict[str, str]:
    """The `#:` comments above each field, from the Options class and the classes it extends:
    the same text the source shows, without keeping a second copy of it."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        comment: list[str] = []
        for line in source.splitlines()[1:]:
            stripped = line.strip()
            if stripped.startswith("#:"):
                comment.append(stripped[2:].strip())
                continue
            m = _FIELD.match(line)
            if m and comment:
                docs[m.group(1)] = " ".join(comment)
            comment = []
    return docs
