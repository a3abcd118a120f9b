"""config.yaml: loading, `${ENV}` interpolation and validation, with file:line errors.

Every section is a dataclass validated before the server starts; provider options are validated
against the provider's own `Options` dataclass once the plugins are loaded. All problems are
reported at once, each naming the file, line and key, and what would fix it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .deadlines import DeadlinesConfig
from .extras import provider_problems
from .options import ConfigError, Problem, build, check_ranges, suggest
from .providers import ROLES, BatchSTT
from .yamlhints import explain

#: `providers:` keys, each with the registry role its providers come from. `partials` is a second,
#: fast streaming STT that runs beside a whole-utterance one (Whisper) for live transcripts and
#: word-confirmed barge-in.
CONFIG_ROLES: dict[str, str] = {**{role: role for role in ROLES}, "partials": "stt"}

# ------------------------------------------------------------------------------------- sections


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata={"min": 0, "max": 65535})
    public_url: str = ""
    drain_grace_s: float = field(default=10.0, metadata={"min": 0})
    malloc_trim_s: float = field(default=60.0, metadata={"min": 0})


@dataclass
class BargeInConfig:
    enabled: bool = True
    min_speech_ms: int = field(default=200, metadata={"min": 0, "max": 5000})
    #: Interrupt only once the `partials` recogniser has heard a word (needs providers.partials).
    needs_words: bool = False


@dataclass
class FallbackConfig:
    """How provider chains (`stt: [deepgram, whisper]`) hand over."""

    first_result_ms: int = field(default=3000, metadata={"min": 0})  # 0: the role's deadline
    cooldown_s: float = field(default=30.0, metadata={"min": 0})


@dataclass
class PipelineConfig:
    sample_rate: int = field(default=16000, metadata={"min": 8000, "max": 48000})
    frame_ms: Literal[10, 20, 30] = 20
    vad_hangover_ms: int = field(default=300, metadata={"min": 0, "max": 5000})
    min_speech_ms: int = field(default=120, metadata={"min": 0, "max": 5000})
    max_utterance_ms: int = field(default=30000, metadata={"min": 500})
    preroll_ms: int = field(default=200, metadata={"min": 0, "max": 2000})
    playback_lead_ms: int = field(default=120, metadata={"min": 20, "max": 2000})
    #: Audio of fixed prompts (say with no variables) kept per process; 0 turns the cache off.
    tts_cache_mb: int = field(default=32, metadata={"min": 0, "max": 4096})
    barge_in: BargeInConfig = field(default_factory=BargeInConfig)
    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    deadlines: DeadlinesConfig = field(default_factory=DeadlinesConfig)
    apology: str = "Sorry, I'm having trouble right now. Please try again in a moment."
    #: Said before hanging up when a flow's `transfer` cannot be made (always, on /ws/voice).
    transfer_failed: str = (
        "Sorry, I can't connect you to a person right now. Please call back later."
    )


@dataclass
class DialogueConfig:
    """Which dialogue drives calls: YAML `flows`, a free `llm` conversation, or `echo` (tests)."""

    mode: Literal["flows", "llm", "echo"] = "flows"
    greeting: str = "Hello! How can I help you?"
    system_prompt: str = "You are a helpful voice assistant. Answer in one or two short sentences."
    noinput_timeout_ms: int = field(default=8000, metadata={"min": 0})
    #: The conversation sent to the LLM (`mode: llm`) is trimmed to about this many tokens.
    context_tokens: int = field(default=3000, metadata={"min": 100})


@dataclass
class FlowsConfig:
    dir: str = "flows"
    start: str = "main"
    timezone: str = "UTC"


@dataclass
class LimitsConfig:
    max_calls: int = field(default=500, metadata={"min": 1})
    max_frame_bytes: int = field(default=256 * 1024, metadata={"min": 1024})
    max_text_chars: int = field(default=2000, metadata={"min": 1})
    idle_timeout_s: float = field(default=60.0, metadata={"min": 1})
    max_call_s: float = field(default=3600.0, metadata={"min": 1})
    max_calls_per_subject: int = field(default=5, metadata={"min": 1})
    max_messages_per_s: float = field(default=200.0, metadata={"min": 1})
    message_burst: int = field(default=400, metadata={"min": 1})
    audio_realtime_factor: float = field(default=1.5, metadata={"min": 1})
    audio_burst_s: float = field(default=5.0, metadata={"min": 0.1})
    max_message_audio_s: float = field(default=2.0, metadata={"min": 0.1})
    heartbeat_s: float = field(default=20.0, metadata={"min": 0.5})
    max_call_warning_s: float = field(default=60.0, metadata={"min": 0})
    max_call_warning: str = "We'll have to end this call in a minute."
    header_timeout_s: float = field(default=5.0, metadata={"min": 0.5, "max": 300})
    max_connections_per_client: int = field(default=256, metadata={"min": 0})


@dataclass
class JWTConfig:
    secret: str = ""
    public_key_file: str = ""
    jwks_file: str = ""
    algorithms: list[str] = field(default_factory=lambda: ["HS256"])
    audience: str = ""
    issuer: str = ""
    leeway_s: float = field(default=30.0, metadata={"min": 0, "max": 600})


@dataclass
class AuthConfig:
    """Who may connect; see docs/security.md. Secrets come from `${ENV}` interpolation."""

    mode: Literal["none", "jwt", "api_key"] = "none"
    jwt: JWTConfig = field(default_factory=JWTConfig)
    api_keys: list[str] = field(default_factory=list)
    first_message_timeout_s: float = field(default=5.0, metadata={"min": 0.1, "max": 60})


@dataclass
class SessionsConfig:
    """Sessions from `POST /api/v1/sessions`: how long they live, and reconnects."""

    ttl_s: float = field(default=900.0, metadata={"min": 1})
    single_use: bool = False
    resume_grace_s: float = field(default=120.0, metadata={"min": 0})
    #: Bounds on what anonymous clients can make the server hold (docs/security.md).
    max_sessions: int = field(default=10_000, metadata={"min": 1})
    max_total_bytes: int = field(default=8 * 1024 * 1024, metadata={"min": 64 * 1024})
    max_field_bytes: int = field(default=2048, metadata={"min": 64, "max": 1024 * 1024})
    create_per_minute: float = field(default=60.0, metadata={"min": 0.1})
    create_burst: int = field(default=20, metadata={"min": 1})


@dataclass
class SecurityConfig:
    auth: AuthConfig = field(default_factory=AuthConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    cors_origins: list[str] = field(default_factory=list)


@dataclass
class StorageConfig:
    url: str = ""
    encrypt_key: str = ""
    retention_days: float = field(default=30.0, metadata={"min": 0})


@dataclass
class ProviderSpec:
    """One configured provider: the registered name and its validated options."""

    use: str
    options: Any = None
    raw: dict[str, Any] = field(default_factory=dict)
    path: str = ""


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    providers: dict[str, Any] = field(default_factory=dict)
    dialogue: DialogueConfig = field(default_factory=DialogueConfig)
    flows: FlowsConfig = field(default_factory=FlowsConfig)
    # provider name (`twilio`, or one a plugin registers) → its options, validated against the
    # provider's serializer `Options` once the plugins are loaded (see `validate_providers`)
    telephony: dict[str, Any] = field(default_factory=dict)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    plugins: list[str] = field(default_factory=list)

    # filled by the loader, not by users
    source: str = field(default="<defaults>", metadata={"internal": True})
    base_dir: Path = field(default_factory=Path.cwd, metadata={"internal": True})
    chains: dict[str, list[ProviderSpec]] = field(default_factory=dict, metadata={"internal": True})
    lines: dict[str, int] = field(default_factory=dict, metadata={"internal": True})
    #: key path → the environment variable it reads that was unset (so it took its default)
    unset_env: dict[str, str] = field(default_factory=dict, metadata={"internal": True})

    def line_of(self, path: str) -> int | None:
        return _line_of(self.lines, path)

    def resolve(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.base_dir / p


_USER_SECTIONS = (
    "server",
    "pipeline",
    "providers",
    "dialogue",
    "flows",
    "telephony",
    "security",
    "storage",
    "plugins",
)

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


def _line_of(lines: dict[str, int], path: str) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None


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
                    _line_of(lines, path),
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
        if key not in _USER_SECTIONS:
            problems.append(
                Problem(
                    file,
                    _line_of(lines, key),
                    key,
                    f"unknown section{suggest(key, _USER_SECTIONS)}; "
                    f"sections are: {', '.join(_USER_SECTIONS)}",
                )
            )
    user = {k: v for k, v in data.items() if k in _USER_SECTIONS}
    cfg = build(
        Config, user, path="", file=file, line_of=lambda k: _line_of(lines, k), problems=problems
    )
    if cfg is None:
        cfg = Config()
    check_ranges(cfg, "", file, lambda k: _line_of(lines, k), problems)
    cfg.source, cfg.base_dir, cfg.lines = file, base, lines
    cfg.unset_env = unset_env
    cfg.chains = _parse_providers(cfg.providers, file, lines, problems)
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
                    _line_of(lines, path),
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
                        _line_of(lines, item_path),
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
    installed = sorted(registry.transports)
    for name, raw in list(cfg.telephony.items()):
        path = f"telephony.{name}"
        cls = registry.transports.get(name)
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
