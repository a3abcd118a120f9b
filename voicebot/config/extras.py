"""How users install voicebot's optional extras, and whether a provider's modules are there.

The install command lives in one constant so that renaming the distribution (or recommending a
non-editable install) changes every message at once.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import Any

from .options import Problem

#: What to run to install an optional extra (`cloud`, `local`, `light`, `webm`).
INSTALL_EXTRA = "pip install -e '.[{extra}]'"


def install_extra(extra: str) -> str:
    return INSTALL_EXTRA.format(extra=extra)


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The modules of `modules` that cannot be imported, found without importing any of them
    (importing an SDK takes seconds; `voicebot check` and `voicebot plugins` only need to know)."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a dotted name whose parent package is missing
            found = False
        if not found:
            missing.append(name)
    return missing


def install_command(provider: type) -> str:
    """What to run so `provider` (a `voicebot.providers.Provider` class) can start; "" when
    every module it `requires` is installed."""
    missing = missing_modules(getattr(provider, "requires", ()))
    if not missing:
        return ""
    return getattr(provider, "install", "") or f"pip install {' '.join(missing)}"


def provider_problems(cfg: Any, spec: Any, provider: type) -> list[Problem]:
    """What would stop the configured provider `spec` from starting, found without starting it:
    a module it needs that is not installed, or an option it cannot work without."""
    problems = []
    command = install_command(provider)
    if command:
        missing = ", ".join(missing_modules(provider.requires))  # type: ignore[attr-defined]
        path = f"{spec.path}.use"
        problems.append(
            Problem(
                cfg.source,
                cfg.line_of(path),
                path,
                f"'{spec.use}' needs {missing}, which is not installed: run {command}",
            )
        )
    if spec.options is not None:
        for key, message in provider.check_options(spec.options).items():  # type: ignore[attr-defined]
            path = f"{spec.path}.{key}"
            problems.append(Problem(cfg.source, cfg.line_of(path), path, message))
    return problems
