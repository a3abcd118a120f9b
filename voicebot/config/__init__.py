"""config.yaml: its sections (`model`), loading and validation with file:line errors (`loader`),
the YAML-to-dataclass checker (`options`), and the hints for what users get wrong (`yamlhints`,
`extras`). Importers keep using `from voicebot.config import Config, load_config`."""

from .browser import BrowserConfig
from .loader import load_config, validate_providers
from .model import (
    CONFIG_ROLES,
    AuthConfig,
    BargeInConfig,
    Config,
    DialogueConfig,
    FallbackConfig,
    FlowsConfig,
    JWTConfig,
    LimitsConfig,
    PipelineConfig,
    ProviderSpec,
    SecurityConfig,
    ServerConfig,
    SessionsConfig,
    StorageConfig,
)
from .options import ConfigError

__all__ = [
    "CONFIG_ROLES",
    "AuthConfig",
    "BargeInConfig",
    "BrowserConfig",
    "Config",
    "ConfigError",
    "DialogueConfig",
    "FallbackConfig",
    "FlowsConfig",
    "JWTConfig",
    "LimitsConfig",
    "PipelineConfig",
    "ProviderSpec",
    "SecurityConfig",
    "ServerConfig",
    "SessionsConfig",
    "StorageConfig",
    "load_config",
    "validate_providers",
]
