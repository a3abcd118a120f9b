"""The `voicebot` command: version, plugins, check, and run with a graceful SIGTERM drain."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import aiohttp
import pytest
import websockets
import yaml

from .support import Client, base_config

VOICEBOT = [sys.executable, "-m", "voicebot.cli"]


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*VOICEBOT, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_version_and_plugins():
    assert run_cli("--version").stdout.startswith("voicebot ")
    out = run_cli("plugins").stdout
    assert "stub: llm:stub, stt:stub, tts:stub" in out
    assert "vad_webrtc: vad:webrtc" in out


def test_check_reports_errors_and_exit_code(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("providers:\n  vad: {use: webrtk}\n")
    result = run_cli("check", str(bad))
    assert result.returncode == 1
    assert f"{bad}:2: providers.vad.use: unknown provider 'webrtk' (did you mean 'webrtc'?)" in (
        result.stderr
    )
    good = tmp_path / "good.yaml"
    good.write_text(
        yaml.safe_dump(
            {**base_config(), "plugins": []}
            | {
                "providers": {
                    "vad": {"use": "webrtc"},
                    "stt": {"use": "stub"},
                    "tts": {"use": "stub"},
                }
            }
        )
    )
    result = run_cli("check", str(good), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_sigterm_drains_active_calls(tmp_path):
    cfg = base_config(server={"drain_grace_s": 1.0})
    cfg["plugins"] = []
    cfg["providers"]["vad"] = {"use": "energy"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *VOICEBOT,
        "run",
        str(path),
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:

        async def listening() -> None:  # after the start-up log lines (e.g. the phone door's)
            while b"listening on" not in (line := await proc.stdout.readline()):
                assert line, "voicebot run exited before listening"

        await asyncio.wait_for(listening(), 30)
        c = Client(await websockets.connect(f"ws://127.0.0.1:{port}/ws/voice"))
        await c.wait_for(lambda e: e.get("status") == "connected")
        proc.send_signal(signal.SIGTERM)
        # the active call is told and closed once the grace period is over
        _, ended = await c.wait_for(lambda e: e.get("status") == "ended", timeout=15)
        assert ended["reason"] == "server shutdown"
        await asyncio.wait_for(c.closed.wait(), 5)
        assert c.ws.close_code == 1001
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        assert b"stopping: draining 1 call (up to 1 s)" in await proc.stdout.read()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_check_finds_security_and_storage_mistakes(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "providers: {vad: {use: webrtc}, stt: {use: stub}, tts: {use: stub}}\n"
        "dialogue: {mode: echo}\n"
        "security:\n  auth:\n    mode: jwt\n"
        "    jwt: {public_key_file: missing.pem, algorithms: [RS256]}\n"
        "storage: {url: 'sqlite:///calls.db', encrypt_key: not-a-fernet-key}\n"
    )
    result = run_cli("check", str(cfg), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{cfg}:4: security.auth:" in result.stderr and "missing.pem" in result.stderr
    assert f"{cfg}:7: storage:" in result.stderr
    assert not (tmp_path / "calls.db").exists()  # check creates nothing


def test_check_explains_an_empty_config_or_a_wrong_path(tmp_path):
    empty = tmp_path / "config.yaml"
    empty.write_text("")
    result = run_cli("check", str(empty), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{empty}: flows.dir: directory '{tmp_path / 'flows'}' does not exist" in result.stderr
    result = run_cli("check", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{tmp_path}: is a directory; pass the path of your config.yaml" in result.stderr


async def start_server(path, *args: str):
    """`voicebot run` on a free port; returns the process, the port and the banner's lines."""
    proc = await asyncio.create_subprocess_exec(
        *VOICEBOT,
        "run",
        "--config",
        str(path),
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    banner = (await lines_until(proc, "listening on http://127.0.0.1:", 30))[-1:]
    banner.append((await asyncio.wait_for(proc.stdout.readline(), 15)).decode())
    return proc, int(banner[0].rsplit(":", 1)[1]), banner


async def lines_until(proc, needle: str, timeout: float = 15) -> list[str]:
    lines: list[str] = []
    while not lines or needle not in lines[-1]:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        assert line, f"exited before {needle!r}: {lines}"
        lines.append(line.decode())
    return lines


@pytest.mark.parametrize("level", ["info", "debug"])
async def test_run_shows_the_page_and_keeps_health_polls_out_of_the_access_log(tmp_path, level):
    cfg = base_config(server={"drain_grace_s": 1.0})
    cfg["plugins"] = []
    cfg["providers"]["vad"] = {"use": "energy"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc, port, banner = await start_server(path, "--log-level", level)
    try:
        assert banner[1].strip() == (
            f"open http://127.0.0.1:{port}/ in a browser and press Start call (Ctrl-C to stop)"
        )
        async with aiohttp.ClientSession() as http:
            for route in ("/health", "/calls"):  # one connection: logged in this order
                async with http.get(f"http://127.0.0.1:{port}{route}") as response:
                    assert response.status == 200
        log = await lines_until(proc, '"GET /calls ')
        assert any('"GET /health ' in line for line in log) == (level == "debug"), log
        proc.send_signal(signal.SIGTERM)
        rest = (await asyncio.wait_for(proc.stdout.read(), 20)).decode()
        assert "stopping: draining 0 calls (up to 1 s)" in rest
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_run_help_explains_every_option():
    out = " ".join(run_cli("run", "--help").stdout.split())
    assert "--host HOST address to listen on (default: server.host, 127.0.0.1" in out
    assert "--port PORT TCP port (default: server.port, 8080); 0 picks a free one" in out
    assert "how much to log (default: INFO); DEBUG also logs the /health polls" in out


def test_every_command_takes_config_the_same_way(tmp_path):
    (tmp_path / "bot").mkdir()
    (tmp_path / "bot" / "hello.yaml").write_text("nodes:\n  hi:\n    say: Hi there\n    hangup:\n")
    path = tmp_path / "my.yaml"
    path.write_text(
        "providers: {vad: {use: webrtc}, stt: {use: stub}, tts: {use: stub}}\n"
        "flows: {dir: bot, start: hello}\n"
    )
    for args in (["chat", str(path)], ["chat", "--config", str(path)]):
        result = subprocess.run(
            [*VOICEBOT, *args], input="", capture_output=True, text=True, timeout=60
        )
        assert "bot> Hi there" in result.stdout, (args, result.stdout, result.stderr)
    for command in ("check", "plugins"):
        result = run_cli(command, "--config", str(path))
        assert result.returncode == 0, (command, result.stderr)
    assert run_cli("check", str(path)).returncode == 0
    both = run_cli("check", str(path), "--config", "other.yaml")
    assert both.returncode == 2 and "pick one" in both.stderr


def test_plugins_verbose_lists_each_providers_options():
    out = run_cli("plugins", "-v").stdout.splitlines()
    at = out.index("  llm:openai")
    options = out[at + 1 : out.index("  stt:openai")]
    assert "    model (a string, default 'gpt-4o-mini')" in options
    assert (
        "    base_url (a string, default ''): Empty for OpenAI itself; e.g. "
        "http://localhost:11434/v1 for Ollama." in options
    )
    assert "    max_retries (an integer, default 2, 0..10): Retries on 408/409/429/5xx" in " ".join(
        options
    )
    assert "  transports:twilio" in out
