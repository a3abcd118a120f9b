"""The docs users read stay true to the code."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from voicebot.config import Config

ROOT = Path(__file__).resolve().parent.parent


def config_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys += config_keys(tp, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def test_every_config_key_is_documented():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    sections = {f.name for f in dataclasses.fields(Config) if not f.metadata.get("internal")}
    for section in sections:
        assert f"## {section}" in doc, f"section {section} is not documented"
    hints = typing.get_type_hints(Config)
    missing = []
    for section in sections:
        tp = hints[section]
        if not dataclasses.is_dataclass(tp):
            continue
        for key in config_keys(tp):
            if f"`{key}`" not in doc:
                missing.append(f"{section}.{key}")
    assert not missing, f"undocumented config keys: {missing}"


def test_readme_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text().splitlines()
    block = readme[readme.index("```bash") + 1 : readme.index("```bash") + 3]
    assert block[0].endswith("voicebot run config.yaml") and block[0].startswith("pip install")
    assert "pytest" in block[1] and block[1].startswith("pip install")


def test_every_provider_and_option_is_documented():
    from voicebot.plugins import make_plugin_manager

    doc = (ROOT / "docs" / "providers.md").read_text()
    missing = []
    for role, table in make_plugin_manager().registry.providers.items():
        for name, cls in table.items():
            if f"`{name}`" not in doc:
                missing.append(f"{role} {name}")
            if dataclasses.is_dataclass(cls.Options):
                missing += [
                    f"{role} {name}: {f.name}"
                    for f in dataclasses.fields(cls.Options)
                    if f"`{f.name}" not in doc
                ]
    assert not missing, f"undocumented in docs/providers.md: {missing}"


def test_every_builtin_intent_is_documented():
    from voicebot.flows.builtin_intents import builtin_intents

    doc = (ROOT / "docs" / "flows.md").read_text()
    for name, intent in builtin_intents().items():
        assert f"| `{name}` | {intent.description} | {len(intent.examples)} |" in doc, name
