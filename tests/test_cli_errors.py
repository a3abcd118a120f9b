"""`voicebot check` finds what `voicebot run` would fail on, and `run` says it in one line.

Every case goes through the real command in a subprocess on a config in a temp directory, as a
user would meet it; a `run` that fails must exit by itself, quickly and without a traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from voicebot.config.extras import install_extra

from .missing_sdk_plugin import MISSING

ROOT = Path(__file__).resolve().parent.parent
VOICEBOT = [sys.executable, "-m", "voicebot.cli"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
MAIN_FLOW = "nodes:\n  hello:\n    say: Hi\n    next: bye\n  bye:\n    hangup:\n"
STUBS = {"vad": {"use": "webrtc"}, "stt": {"use": "stub"}, "tts": {"use": "stub"}}


def voicebot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*VOICEBOT, *args], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=60
    )


def write_config(tmp_path: Path, text: str) -> Path:
    (tmp_path / "flows").mkdir(exist_ok=True)
    (tmp_path / "flows" / "main.yaml").write_text(MAIN_FLOW)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def assert_one_line_failure(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == expected, result.stderr


def test_unknown_flows_start(tmp_path):
    cfg = write_config(
        tmp_path, yaml.safe_dump({"providers": STUBS}) + "flows:\n  dir: flows\n  start: mian\n"
    )
    expected = (
        f"{cfg}:{line_of(cfg, 'start: mian')}: flows.start: no flow named 'mian' "
        "(did you mean 'main'?) (flows: main)"
    )
    check = voicebot("check", str(cfg), cwd=tmp_path)
    assert check.returncode == 1 and expected in check.stderr.splitlines(), check.stderr
    assert_one_line_failure(voicebot("run", str(cfg), "--port", "0", cwd=tmp_path), expected)


def test_provider_whose_sdk_is_not_installed(tmp_path):
    cfg = write_config(
        tmp_path,
        "plugins: [tests.missing_sdk_plugin]\n"
        + yaml.safe_dump({"providers": {**STUBS, "llm": {"use": "futurellm"}}}),
    )
    expected = (
        f"{cfg}:{line_of(cfg, 'futurellm')}: providers.llm.use: 'futurellm' needs {MISSING}, "
        f"which is not installed: run {install_extra('cloud')}"
    )
    check = voicebot("check", str(cfg), cwd=tmp_path)
    assert check.returncode == 1 and expected in check.stderr.splitlines(), check.stderr
    assert_one_line_failure(voicebot("run", str(cfg), "--port", "0", cwd=tmp_path), expected)
    listed = voicebot("plugins", "--config", str(cfg), cwd=tmp_path).stdout.splitlines()
    assert (
        f"tests.missing_sdk_plugin: llm:futurellm (needs: {install_extra('cloud')}), "
        "tts:undeclared" in listed
    )
    # the built-in cloud plugins are installed here (the dev extra): not marked
    assert "openai: llm:openai, stt:openai, tts:openai" in listed


def test_provider_that_imports_an_undeclared_missing_module(tmp_path):
    cfg = write_config(
        tmp_path,
        "plugins: [tests.missing_sdk_plugin]\n"
        + yaml.safe_dump({"providers": {**STUBS, "tts": {"use": "undeclared"}}}),
    )
    result = voicebot("run", str(cfg), "--port", "0", cwd=tmp_path)
    assert_one_line_failure(
        result,
        f"error: undeclared: cannot start, module {MISSING} is not installed: "
        f"run pip install {MISSING}",
    )


def test_cloud_provider_without_an_api_key(tmp_path):
    llm = {"use": "openai", "model": "gpt-4o-mini", "api_key": "${VOICEBOT_TEST_UNSET_KEY:-}"}
    cfg = write_config(tmp_path, yaml.safe_dump({"providers": {**STUBS, "llm": llm}}))
    expected = (
        f"{cfg}:{line_of(cfg, 'api_key')}: providers.llm.api_key: api_key is empty. Set "
        "OPENAI_API_KEY in the environment (config.yaml reads it with "
        'api_key: "${OPENAI_API_KEY:-}")'
        " or put the key under the provider's options"
    )
    check = voicebot("check", str(cfg), cwd=tmp_path)
    assert check.returncode == 1 and expected in check.stderr.splitlines(), check.stderr
    assert_one_line_failure(voicebot("run", str(cfg), "--port", "0", cwd=tmp_path), expected)
    # a self-hosted OpenAI-compatible server needs no key
    llm["base_url"] = "http://127.0.0.1:9/v1"
    cfg.write_text(yaml.safe_dump({"providers": {**STUBS, "llm": llm}}))
    assert voicebot("check", str(cfg), cwd=tmp_path).returncode == 0


def test_port_in_use(tmp_path):
    cfg = write_config(tmp_path, yaml.safe_dump({"providers": STUBS}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = voicebot("run", str(cfg), "--port", str(port), cwd=tmp_path)
    assert_one_line_failure(
        result,
        f"error: port {port} on 127.0.0.1 is already in use (another voicebot?): stop the other "
        f"process, or start this one on another port with --port {port + 1} (or server.port in "
        "config.yaml)",
    )


def test_host_that_cannot_be_listened_on(tmp_path):
    """192.0.2.1 is TEST-NET-1: never an address of this machine, and no lookup is needed."""
    cfg = write_config(tmp_path, yaml.safe_dump({"providers": STUBS}))
    result = voicebot("run", str(cfg), "--host", "192.0.2.1", "--port", "0", cwd=tmp_path)
    assert_one_line_failure(
        result,
        "error: cannot listen on port 0 on 192.0.2.1: Cannot assign requested address; "
        "check --host (or server.host in config.yaml): 127.0.0.1 for this machine only, "
        "0.0.0.0 for all interfaces",
    )
