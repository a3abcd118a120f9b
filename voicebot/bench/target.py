"""The server under load: one `voicebot bench` starts (with fake providers) or one already
running at `--url`, and what can be read of it: its processes' CPU and RSS from /proc, its
`/health`, `/telephony/stats` and `/metrics`."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class BenchError(Exception):
    """The bench cannot run: the message says why and what to do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> Any:
    """GET a JSON or text route (None when the server does not have it)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read().decode()
    except OSError:
        return None
    return json.loads(body) if body.startswith("{") else body


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (the workers of `voicebot run --workers N`)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in task.read_text().split()]
    return pids


def proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds used, RSS in MB) of a process and its children, from /proc."""
    cpu = rss_kb = 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{p}/status").read_text().splitlines()
        except OSError:
            continue  # it exited meanwhile
        cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        rss_kb += next((int(ln.split()[1]) for ln in status if ln.startswith("VmRSS:")), 0)
    return cpu, rss_kb / 1024


def server_config(providers: str, fake_url: str | None, hangover_ms: int) -> dict[str, Any]:
    """A server with no greeting and the real webrtc VAD, on fake providers: `stub` measures the
    runtime alone; `openai-fake` the real OpenAI SDK against the loopback fake."""
    if providers == "openai-fake":
        cloud = {"api_key": "sk-bench", "base_url": f"{fake_url}/v1"}
        chain = {role: {"use": "openai", **cloud} for role in ("stt", "tts", "llm")}
    else:
        chain = {
            "stt": {"use": "stub", "text": "what time is it"},
            "tts": {"use": "stub", "ms_per_char": 10},
            "llm": {"use": "stub"},
        }
    return {
        "server": {"host": "127.0.0.1"},
        "pipeline": {"vad_hangover_ms": hangover_ms},
        "providers": {"vad": {"use": "webrtc"}, **chain},
        "dialogue": {"mode": "llm", "greeting": ""},
        # every simulated caller comes from 127.0.0.1: no per-address cap
        "security": {
            "limits": {"max_calls": 5000, "idle_timeout_s": 600, "max_connections_per_client": 0}
        },
        "telephony": {"twilio": {"allow_unsigned": True}},  # loopback only, no Twilio token
    }


def _wait_healthy(url: str, proc: subprocess.Popen, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the server exited at start (code {proc.returncode}); see above")
        if isinstance(fetch(f"{url}/health"), dict):
            return
        time.sleep(0.1)  # polling a child process: nothing to wait on but its port
    raise BenchError(f"the server did not answer {url}/health within {within:g} s")


@contextlib.contextmanager
def started_server(
    providers: str, hangover_ms: int, server_args: list[str]
) -> Iterator[tuple[str, int]]:
    """(url, pid) of a `voicebot run` started for the bench, stopped (SIGTERM) afterwards."""
    with contextlib.ExitStack() as stack:
        fake_url = None
        if providers == "openai-fake":
            fake = stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-m", "voicebot.bench.openai_fake"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
            stack.callback(_stop_fake, fake)
            assert fake.stdout is not None
            fake_url = fake.stdout.readline().strip()
            if not fake_url.startswith("http"):
                raise BenchError("the OpenAI fake did not start (is the [cloud] extra installed?)")
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="voicebot-bench-")))
        cfg = tmp / "config.yaml"
        cfg.write_text(json.dumps(server_config(providers, fake_url, hangover_ms)))
        port = free_port()
        cmd = [sys.executable, "-m", "voicebot.cli", "run", str(cfg), "--port", str(port)]
        server = subprocess.Popen(
            [*cmd, "--log-level", "WARNING", *server_args], stdout=subprocess.DEVNULL
        )
        stack.callback(_stop, server)
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, server)
        yield url, server.pid


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _stop_fake(fake: subprocess.Popen) -> None:
    assert fake.stdin is not None
    fake.stdin.close()  # its signal to stop
    try:
        fake.wait(timeout=10)
    except subprocess.TimeoutExpired:
        fake.kill()
        fake.wait()
