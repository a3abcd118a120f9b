"""config.yaml: loading, `${ENV}` interpolation and validation, with file:line errors.

Every section is a dataclass validated before the server starts; provider options are validated
against the provider's own `Options` dataclass once the plugins are loaded. All problems are
reported at once, each naming the file, line and key, and what would fix it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from ..cluster.config import problems_of
from ..providers import BatchSTT
from .browser import check_browser
from .extras import provider_problems
from .model import CONFIG_ROLES, USER_SECTIONS, Config, ProviderSpec, line_of_key
from .options import ConfigError, Problem, build, check_ranges, suggest
from .yamlhints import explain

# ------------------------------------------------------------------------------ YAML with lines

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _walk(node: yaml.Node, path: str, lines: dict[str, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = f"{path}.{key.value}" if path else str(key.value)
            lines[child] = key.start_mark.line + 1
            _walk(value, child, lines)
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, f"{path}[{i}]", lines)


def _interpolate(
    value: Any,
    path: str,
    env: dict[str, str],
    file: str,
    lines: dict,
    problems: list,
    unset: dict[str, str] | None = None,
) -> Any:
    """`${VAR}` references resolved; `unset` collects key path → VAR for each that fell back to
    its default, so messages can name the variable to export rather than the line to write."""
    unset = {} if unset is None else unset
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env and env[name] != "":
                return env[name]
            unset.setdefault(path, name)
            if default is not None:
                return default
            problems.append(
                Problem(
                    file,
                    line_of_key(lines, path),
                    path,
                    f"environment variable {name} is not set; export it, or write "
                    f"${{{name}:-default}} to give a default",
                )
            )
            return ""

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: _interpolate(v, f"{path}.{k}" if path else str(k), env, file, lines, problems, unset)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _interpolate(v, f"{path}[{i}]", env, file, lines, problems, unset)
            for i, v in enumerate(value)
        ]
    return value


def read_yaml(path: Path) -> tuple[Any, dict[str, int]]:
    """Parse YAML keeping a line number per key path; syntax errors become a `ConfigError`."""
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line, message = explain(exc)
        raise ConfigError([Problem(str(path), line, "", f"invalid YAML: {message}")]) from None
    lines: dict[str, int] = {}
    if node is not None:
        _walk(node, "", lines)
    return data, lines


# ----------------------------------------------------------------------------------- loading


def load_config(
    path: str | Path | None = None,
    *,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Load and validate every section except provider options (see `validate_providers`)."""
    env = dict(os.environ) if env is None else env
    if path is None:
        data, lines, file, base = {}, {}, "<defaults>", Path.cwd()
    else:
        p = Path(path)
        if not p.is_file():
            why = "is a directory" if p.is_dir() else "file not found"
            raise ConfigError(
                [Problem(str(p), None, "", f"{why}; pass the path of your config.yaml")]
            )
        data, lines = read_yaml(p)
        file, base = str(p), p.resolve().parent
    problems: list[Problem] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(file, 1, "", "the top level must be a mapping of sections")])
    unset_env: dict[str, str] = {}
    data = _interpolate(data, "", env, file, lines, problems, unset_env)
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        data.setdefault(section, {})[name] = value
    for key in data:
        if key not in USER_SECTIONS:
            problems.append(
                Problem(
                    file,
                    line_of_key(lines, key),
                    key,
                    f"unknown section{suggest(key, USER_SECTIONS)}; "
                    f"sections are: {', '.join(USER_SECTIONS)}",
                )
            )
    user = {k: v for k, v in data.items() if k in USER_SECTIONS}
    cfg = build(
        Config, user, path="", file=file, line_of=lambda k: line_of_key(lines, k), problems=problems
    )
    if cfg is None:
        cfg = Config()
    check_ranges(cfg, "", file, lambda k: line_of_key(lines, k), problems)
    check_browser(cfg.browser, file, lambda k: line_of_key(lines, k), problems)
    cfg.source, cfg.base_dir, cfg.lines = file, base, lines
    cfg.unset_env = unset_env
    cfg.chains = _parse_providers(cfg.providers, file, lines, problems)
    problems += [Problem(file, line_of_key(lines, k), k, m) for k, m in problems_of(cfg.cluster)]
    if problems:
        raise ConfigError(problems)
    return cfg


def _parse_providers(
    providers: Any, file: str, lines: dict[str, int], problems: list[Problem]
) -> dict[str, list[ProviderSpec]]:
    chains: dict[str, list[ProviderSpec]] = {}
    if not isinstance(providers, dict):
        return chains
    for role, value in providers.items():
        path = f"providers.{role}"
        if role not in CONFIG_ROLES:
            problems.append(
                Problem(
                    file,
                    line_of_key(lines, path),
                    path,
                    f"unknown role{suggest(role, CONFIG_ROLES)}; roles are: "
                    f"{', '.join(CONFIG_ROLES)}",
                )
            )
            continue
        items = value if isinstance(value, list) else [value]
        chain = []
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]" if isinstance(value, list) else path
            if isinstance(item, str):
                item = {"use": item}
            if not isinstance(item, dict) or not isinstance(item.get("use"), str):
                problems.append(
                    Problem(
                        file,
                        line_of_key(lines, item_path),
                        f"{item_path}.use",
                        "missing: name the provider, e.g. `use: webrtc`",
                    )
                )
                continue
            raw = {k: v for k, v in item.items() if k != "use"}
            chain.append(ProviderSpec(use=item["use"], raw=raw, path=item_path))
        if chain:
            chains[role] = chain
    return chains


def validate_providers(cfg: Config, registry: Any) -> None:
    """Check every `use:` against the registered providers and build each one's `Options`."""
    problems: list[Problem] = []
    for role, chain in cfg.chains.items():
        role = CONFIG_ROLES[role]
        installed = registry.names(role)
        for spec in chain:
            if spec.use not in installed:
                problems.append(
                    Problem(
                        cfg.source,
                        cfg.line_of(f"{spec.path}.use"),
                        f"{spec.path}.use",
                        f"unknown provider '{spec.use}'{suggest(spec.use, installed)} "
                        f"(installed: {', '.join(installed) or 'none'})",
                    )
                )
                continue
            cls = registry.provider(role, spec.use)
            spec.options = build(
                cls.Options,
                spec.raw,
                path=spec.path,
                file=cfg.source,
                line_of=cfg.line_of,
                problems=problems,
            )
            check_ranges(spec.options, spec.path, cfg.source, cfg.line_of, problems)
            problems += provider_problems(cfg, spec, cls)
    _validate_needs_words(cfg, registry, problems)
    _validate_telephony(cfg, registry, problems)
    if problems:
        raise ConfigError(problems)


def _validate_needs_words(cfg: Config, registry: Any, problems: list[Problem]) -> None:
    """Word-confirmed barge-in with no recogniser that streams words would never interrupt."""
    if not cfg.pipeline.barge_in.needs_words or "partials" in cfg.chains:
        return
    chain = cfg.chains.get("stt", [])
    installed = registry.names("stt")
    classes = [registry.provider("stt", spec.use) for spec in chain if spec.use in installed]
    if classes and all(issubclass(cls, BatchSTT) for cls in classes):
        path = "pipeline.barge_in.needs_words"
        problems.append(
            Problem(
                cfg.source,
                cfg.line_of(path),
                path,
                f"`{chain[0].use}` hears whole utterances only, so no interruption would ever "
                "be confirmed: add `partials: {use: pocketsphinx}` under providers, or set it "
                "to false",
            )
        )


def _validate_telephony(cfg: Config, registry: Any, problems: list[Problem]) -> None:
    """Each `telephony.<name>` section against that provider's serializer `Options`."""
    if not isinstance(cfg.telephony, dict):
        return
    tcp = {name: carrier.protocol for name, carrier in registry.tcp_carriers.items()}
    installed = sorted({*registry.transports, *tcp})
    for name, raw in list(cfg.telephony.items()):
        path = f"telephony.{name}"
        cls = registry.transports.get(name) or tcp.get(name)
        if cls is None:
            problems.append(
                Problem(
                    cfg.source,
                    cfg.line_of(path),
                    path,
                    f"unknown telephony provider '{name}'{suggest(str(name), installed)} "
                    f"(installed: {', '.join(installed) or 'none'})",
                )
            )
            continue
        if isinstance(raw, cls.Options):
            continue  # validated already
        options = build(
            cls.Options, raw, path=path, file=cfg.source, line_of=cfg.line_of, problems=problems
        )
        check_ranges(options, path, cfg.source, cfg.line_of, problems)
        cfg.telephony[name] = options
