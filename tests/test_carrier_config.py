"""Every built-in carrier is installed through the `voicebot` entry points like a third-party
plugin, its config keys are documented and validated by `voicebot check` (file, line, key), and
`check` warns when a carrier that receives calls has no webhook secret."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from voicebot.plugins import make_plugin_manager

from .test_cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
CARRIERS = ("telnyx", "plivo", "vonage", "exotel")


def test_each_carrier_is_a_registered_plugin():
    pm = make_plugin_manager()  # entry points only: what a fresh install sees
    carriers = pm.registry.carriers
    for name in CARRIERS:
        assert carriers[name].serializer.__module__ == f"voicebot_plugins.{name}.serializer"
        assert carriers[name].webhooks or name == "exotel"


def test_every_carrier_config_key_is_documented():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    registry = make_plugin_manager().registry
    missing = [
        f"{name}.{f.name}"
        for name in CARRIERS
        for f in dataclasses.fields(registry.transports[name].Options)
        if f"`{name}.{f.name}`" not in doc
    ]
    assert not missing, f"undocumented in docs/configuration.md: {missing}"


@pytest.mark.parametrize("carrier", CARRIERS)
def test_check_names_file_line_and_key_of_a_bad_carrier_key(tmp_path, carrier):
    config = tmp_path / "config.yaml"
    config.write_text(f"telephony:\n  {carrier}:\n    allow_unsigned: true\n    nonsense: 1\n")
    result = run_cli("check", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{config}:4: telephony.{carrier}.nonsense" in result.stderr, result.stderr


def test_check_warns_when_a_carrier_has_no_webhook_secret(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "dialogue: {mode: llm}\n"
        "telephony:\n"
        "  telnyx: {api_key: KEY1}\n"
        "  plivo: {auth_id: MA1}\n"
        "  vonage: {allow_unsigned: true, signature_secret: s, validate_signature: false}\n"
        "  exotel: {username: u}\n"
    )
    result = run_cli("check", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert len(warnings) == 4, result.stderr
    assert warnings[0].startswith(f"{config}:6: warning: telephony.exotel receives calls")
    assert "telephony.exotel.password is not set" in warnings[0]
    assert warnings[1].startswith(f"{config}:4: warning: telephony.plivo")
    assert "telephony.plivo.auth_token is not set" in warnings[1]
    assert "refuse every call" in warnings[1]
    assert "telephony.telnyx.public_key" in warnings[2]
    assert "signature check is off" in warnings[3] and "ANYONE" in warnings[3]
    config.write_text(
        "dialogue: {mode: llm}\n"
        "telephony:\n"
        "  telnyx: {public_key: cHVibGljLWtleS1wdWJsaWMta2V5LXB1YmxpYy1rZXk=}\n"
        "  plivo: {auth_id: MA1, auth_token: t}\n"
        "  vonage: {signature_secret: s}\n"
        "  exotel: {username: u, password: p}\n"
    )
    result = run_cli("check", str(config), cwd=tmp_path)
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr


def test_transfer_problems_name_only_the_configured_carriers(tmp_path):
    from voicebot.config import load_config
    from voicebot.server.telephony import transfer_problems

    path = tmp_path / "config.yaml"
    path.write_text("telephony:\n  plivo: {auth_id: MA1, auth_token: t}\n")
    registry = make_plugin_manager().registry
    (problem,) = transfer_problems(load_config(path, env={}), registry)
    assert "telephony.plivo.transfer_url" in problem and "twilio" not in problem
    path.write_text(
        "telephony:\n  plivo: {auth_id: MA1, auth_token: t, transfer_url: 'https://h/plivo/transfer'}\n"
    )
    assert transfer_problems(load_config(path, env={}), registry) == []


def test_a_missing_vonage_key_file_turns_call_control_off_not_every_call(caplog):
    from voicebot_plugins.vonage.serializer import VonageOptions, VonageSerializer

    options = VonageOptions(application_id="a", private_key="/nonexistent/private.key")
    assert VonageSerializer.call_control(options) is None
    assert "telephony.vonage.private_key" in caplog.text


async def test_start_up_logs_only_the_configured_carriers_doors(tmp_path, caplog):
    import logging

    from .support import base_config, serve

    cfg = base_config(telephony={"telnyx": {"public_key": "a2V5"}})
    cfg["server"] = {"public_url": "https://bot.example.com"}
    with caplog.at_level(logging.INFO):
        async with serve(tmp_path, cfg):
            pass
    (line,) = [r for r in caplog.records if r.name == "voicebot.transports.phone_door"]
    assert line.levelno == logging.INFO and line.getMessage().startswith("telnyx phone calls")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        async with serve(tmp_path, base_config(server={"public_url": "https://bot.example.com"})):
            pass
    (line,) = [r for r in caplog.records if r.name == "voicebot.transports.phone_door"]
    assert (
        line.levelno == logging.WARNING
        and "no telephony carrier is configured" in line.getMessage()
    )
