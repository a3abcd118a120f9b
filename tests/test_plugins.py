"""Plugins from entry points (as a third-party distribution), module paths, and name clashes."""

from __future__ import annotations

import textwrap

import pytest

from voicebot.config import load_config
from voicebot.config.options import ConfigError
from voicebot.hookspecs import hookimpl
from voicebot.plugins import PluginError, make_plugin_manager
from voicebot.providers import TTS, AudioChunk, AudioFormat
from voicebot.runtime import Runtime

PLUGIN = """
from dataclasses import dataclass
from voicebot.hookspecs import hookimpl
from voicebot.providers import TTS, AudioChunk

class Shouty(TTS):
    name = "{name}"

    @dataclass
    class Options:
        volume: int = 3

    async def synthesize(self, text, preferred):
        yield AudioChunk(b"\\x10\\x00" * 160 * self.options.volume, 8000)

@hookimpl
def register_tts(register):
    register(Shouty)
"""


def install_distribution(site, dist: str, module: str, provider: str) -> None:
    """Lay out an installed distribution (code + dist-info with an entry point), as pip would."""
    (site / f"{module}.py").write_text(PLUGIN.format(name=provider))
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[voicebot]\n{module} = {module}\n")


async def test_third_party_entry_point_is_selectable_from_config(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    install_distribution(site, "voicebot_shouty", "voicebot_shouty", "shouty")
    monkeypatch.syspath_prepend(str(site))
    pm = make_plugin_manager()
    assert "voicebot_shouty" in pm.plugin_names()
    assert pm.registry.owners[("tts", "shouty")] == "voicebot_shouty"
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(
        textwrap.dedent(
            """
            providers:
              tts: {use: shouty, volume: 2}
              stt: {use: stub}
              vad: {use: testvad}
            plugins: [tests.testvad]
            dialogue: {mode: echo}
            """
        )
    )
    runtime = Runtime(load_config(cfg_file, env={}), pm)
    await runtime.start()
    try:
        chunks = [c async for c in runtime.providers["tts"].synthesize("x", AudioFormat())]
        assert len(chunks[0].data) == 2 * 160 * 2
    finally:
        await runtime.stop()


def test_two_plugins_with_one_provider_name_is_an_error_naming_both(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    install_distribution(site, "voicebot_a", "voicebot_a", "dup")
    install_distribution(site, "voicebot_b", "voicebot_b", "dup")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginError) as err:
        _ = make_plugin_manager().registry
    assert "'dup'" in str(err.value)
    assert "voicebot_a" in str(err.value) and "voicebot_b" in str(err.value)


def test_unknown_provider_names_file_line_and_choices(tmp_path):
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text("providers:\n  vad: {use: testvad}\n  stt:\n    use: stubb\n")
    cfg = load_config(cfg_file, env={})
    pm = make_plugin_manager(["tests.testvad"])
    with pytest.raises(ConfigError) as err:
        Runtime(cfg, pm)
    msg = str(err.value)
    assert (
        f"{cfg_file}:4: providers.stt.use: unknown provider 'stubb' (did you mean 'stub'?)" in msg
    )
    assert "installed: " in msg and "stub" in msg


def test_provider_options_are_validated_against_its_schema(tmp_path):
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(
        "providers:\n  tts:\n    use: stub\n    ms_per_chr: 3\n    chunk_ms: lots\n"
    )
    with pytest.raises(ConfigError) as err:
        Runtime(load_config(cfg_file, env={}))
    msg = str(err.value)
    assert (
        f"{cfg_file}:4: providers.tts.ms_per_chr: unknown key (did you mean 'ms_per_char'?)" in msg
    )
    assert f"{cfg_file}:5: providers.tts.chunk_ms: expected an integer, got 'lots'" in msg


def test_module_listed_under_plugins_that_does_not_exist(tmp_path):
    with pytest.raises(PluginError, match="could not be imported"):
        make_plugin_manager(["no_such_module_here"])


def test_register_hooks_are_called_through_pluggy() -> None:
    """pluggy dispatches the `register_*` hooks, so its `@hookimpl` options hold: an
    implementation named by `specname`, and none for a plain function without the marker."""

    class Quiet(TTS):
        name = "quiet"

        async def synthesize(self, text, preferred):
            yield AudioChunk(b"", 8000)

    class Plugin:
        @hookimpl(specname="register_tts")
        def tts_providers(self, register):
            register(Quiet)

        def register_llm(self, register):  # no @hookimpl: not a hook implementation
            raise AssertionError("called without @hookimpl")

    pm = make_plugin_manager()
    pm.register(Plugin(), "quiet_plugin")
    assert pm.registry.provider("tts", "quiet") is Quiet
    assert pm.registry.owners[("tts", "quiet")] == "quiet_plugin"
