"""The FreeSWITCH plugin is installed through the `voicebot` entry points like a third-party
one, its keys and AudioSocket's `allow_from` are documented and validated by `voicebot check`
(file, line, key), and `check` warns about a PBX door anyone on the network could use."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from voicebot.plugins import make_plugin_manager
from voicebot.telephony.peers import PeerFilter, is_loopback

from .test_cli import run_cli

ROOT = Path(__file__).resolve().parents[1]


def test_freeswitch_is_a_registered_plugin_with_its_keys_documented():
    registry = make_plugin_manager().registry  # entry points only: what a fresh install sees
    carrier = registry.carriers["freeswitch"]
    assert carrier.serializer.__module__ == "voicebot_plugins.freeswitch.serializer"
    doc = (ROOT / "docs" / "configuration.md").read_text()
    keys = [f"freeswitch.{f.name}" for f in dataclasses.fields(carrier.serializer.Options)]
    keys.append("audiosocket.allow_from")
    assert not [k for k in keys if f"`{k}`" not in doc]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("    path: freeswitch\n", ":2: telephony.freeswitch: path 'freeswitch' must start"),
        ("    lookahead_ms: 5\n", ":4: telephony.freeswitch.lookahead_ms"),
        ("    sample_rate: 44100\n", ":4: telephony.freeswitch.sample_rate"),
    ],
)
def test_check_names_file_line_and_key_of_a_bad_freeswitch_key(tmp_path, body, expected):
    config = tmp_path / "config.yaml"
    config.write_text("telephony:\n  freeswitch:\n    secret: s\n" + body)
    result = run_cli("check", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{config}{expected}" in result.stderr, result.stderr


def test_check_warns_when_freeswitch_has_no_secret(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("dialogue: {mode: llm}\ntelephony:\n  freeswitch: {path: /fs}\n")
    result = run_cli("check", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = "warning: telephony.freeswitch receives calls but telephony.freeswitch.secret"
    assert f"{config}:3: {expected} is not set" in result.stderr


def test_check_warns_when_audiosocket_listens_beyond_loopback(tmp_path):
    config = tmp_path / "config.yaml"
    base = "dialogue: {mode: llm}\ntelephony:\n  audiosocket:\n    enabled: true\n"
    config.write_text(base + "    host: 127.0.0.1\n")
    quiet = run_cli("check", str(config), cwd=tmp_path)
    assert quiet.returncode == 0 and "audiosocket" not in quiet.stderr, quiet.stderr

    config.write_text(base + "    host: 0.0.0.0\n")
    result = run_cli("check", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{config}:5: warning: telephony.audiosocket listens on 0.0.0.0" in result.stderr
    assert "ANYONE who reaches port 9092" in result.stderr

    config.write_text(base + "    host: 0.0.0.0\n    allow_from: [10.0.0.0/8]\n")
    result = run_cli("check", str(config), cwd=tmp_path)
    assert "only peers in allow_from (10.0.0.0/8) are admitted" in result.stderr


def test_check_names_a_bad_allow_from_entry(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "telephony:\n  audiosocket:\n    enabled: true\n    allow_from: [10.0.0.0/8, pbx.lan]\n"
    )
    result = run_cli("check", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{config}:2: telephony.audiosocket: allow_from entry 'pbx.lan'" in result.stderr


def test_peer_filter():
    peers = PeerFilter(["10.0.0.0/8", "192.0.2.7", "fd00::/8"])
    assert peers.allows("10.1.2.3") and peers.allows("192.0.2.7") and peers.allows("fd00::1")
    assert peers.allows("::ffff:10.9.9.9")  # an IPv4 peer on a dual-stack listener
    assert not peers.allows("127.0.0.1") and not peers.allows("::1") and not peers.allows("")
    assert PeerFilter([]).allows("203.0.113.9")
    assert peers.first_refusal("127.0.0.1") and not peers.first_refusal("127.0.0.1")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5") and not is_loopback("")
