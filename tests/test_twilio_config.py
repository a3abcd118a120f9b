"""`telephony.<provider>` config sections, validated against each provider's own `Options`."""

from __future__ import annotations

import pytest

from voicebot.config import load_config, validate_providers
from voicebot.config.options import ConfigError
from voicebot.plugins import make_plugin_manager
from voicebot.server.telephony import provider_options
from voicebot_plugins.twilio.serializer import TwilioOptions, TwilioSerializer


def load(tmp_path, text: str, env: dict | None = None):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    cfg = load_config(path, env=env or {})
    validate_providers(cfg, make_plugin_manager().registry)
    return cfg


def test_twilio_section_becomes_twilio_options(tmp_path):
    cfg = load(
        tmp_path,
        "telephony:\n  twilio:\n    auth_token: ${TOKEN:-}\n    transfer_caller_id: '+1555'\n",
        {"TOKEN": "t0k"},
    )
    opts = cfg.telephony["twilio"]
    assert opts == TwilioOptions(auth_token="t0k", transfer_caller_id="+1555")


def test_absent_section_means_defaults(tmp_path):
    cfg = load(tmp_path, "server:\n  port: 8080\n")
    assert provider_options(cfg, "twilio", TwilioSerializer) == TwilioOptions()


def test_errors_name_file_line_and_fix(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(
            tmp_path,
            "telephony:\n  twilio:\n    auth_tokn: x\n    validate_signature: maybe\n"
            "  twillio:\n    auth_token: y\n",
        )
    text = str(err.value)
    assert (
        "config.yaml:3: telephony.twilio.auth_tokn: unknown key (did you mean 'auth_token'?)"
        in text
    )
    assert "config.yaml:4: telephony.twilio.validate_signature" in text
    assert (
        "config.yaml:5: telephony.twillio: unknown telephony provider 'twillio' "
        "(did you mean 'twilio'?)" in text
    )
