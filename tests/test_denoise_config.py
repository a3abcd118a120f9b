"""`providers.denoise` in config.yaml: validated like every provider role, by `voicebot check`
and at start, each mistake reported at its line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from voicebot.config import ConfigError, load_config, validate_providers
from voicebot.plugins import make_plugin_manager
from voicebot.providers import Denoiser


def problems(tmp_path, text: str, plugins: tuple[str, ...] = ()) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    cfg = load_config(path)
    with pytest.raises(ConfigError) as err:
        validate_providers(cfg, make_plugin_manager(plugins).registry)
    return str(err.value)


def test_rnnoise_is_registered_as_a_denoiser(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("providers:\n  denoise: {use: rnnoise}\n")
    cfg = load_config(path)
    registry = make_plugin_manager().registry
    validate_providers(cfg, registry)
    assert registry.names("denoise") == ["rnnoise"]
    assert issubclass(registry.provider("denoise", "rnnoise"), Denoiser)
    assert cfg.chains["denoise"][0].use == "rnnoise"


def test_off_unless_configured(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("providers:\n  vad: {use: webrtc}\n")
    assert "denoise" not in load_config(path).chains


def test_a_misspelt_denoiser_is_named_with_a_suggestion(tmp_path) -> None:
    message = problems(tmp_path, "providers:\n  vad: {use: webrtc}\n  denoise: {use: rnnoize}\n")
    assert (
        "config.yaml:3: providers.denoise.use: unknown provider 'rnnoize' "
        "(did you mean 'rnnoise'?)" in message
    )


def test_an_unknown_option_is_refused_at_its_line(tmp_path) -> None:
    message = problems(tmp_path, "providers:\n  denoise:\n    use: rnnoise\n    level: 3\n")
    assert "config.yaml:4: providers.denoise.level" in message


def test_a_denoiser_whose_engine_is_missing_says_what_to_install(tmp_path) -> None:
    message = problems(
        tmp_path,
        "plugins: [tests.nodenoise_plugin]\nproviders:\n  denoise: {use: absent}\n",
        ("tests.nodenoise_plugin",),
    )
    assert "providers.denoise.use: 'absent' needs no_such_denoiser_engine" in message


def test_voicebot_check_accepts_the_denoiser(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "dialogue: {mode: echo}\nproviders:\n  vad: {use: webrtc}\n  denoise: {use: rnnoise}\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  denoise: {use: rnnoise, level: 3}\n")
    check = [sys.executable, "-m", "voicebot.cli", "check"]
    good = subprocess.run([*check, str(path)], capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stderr
    wrong = subprocess.run([*check, str(bad)], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 1 and "providers.denoise.level" in wrong.stderr
