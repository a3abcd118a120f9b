"""`voicebot run --workers 2`: two real worker processes on one port (SO_REUSEPORT). Calls
spread over both, `/health` and `/calls` answer for the whole server, a killed worker is
restarted, and SIGTERM drains the calls of every worker."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
import yaml

from .support import Client, base_config

pytestmark = pytest.mark.slow

VOICEBOT = [sys.executable, "-m", "voicebot.cli"]


async def start(
    tmp_path: Path, grace: float = 1.0, **sections: Any
) -> tuple[asyncio.subprocess.Process, int]:
    cfg = base_config(server={"drain_grace_s": grace}, **sections)
    cfg["plugins"] = []
    cfg["providers"]["vad"] = {"use": "energy"}
    cfg["security"] = {"limits": {"max_connections_per_client": 0}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = await asyncio.create_subprocess_exec(
        *VOICEBOT,
        "run",
        str(path),
        "--port",
        "0",
        "--workers",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    while b"listening on" not in (line := await asyncio.wait_for(proc.stdout.readline(), 60)):
        assert line, "voicebot run exited before listening"
    port = int(line.rsplit(b":", 1)[1])  # the banner of a single process, unchanged
    assert b"open http://" in await asyncio.wait_for(proc.stdout.readline(), 10)
    workers = await asyncio.wait_for(proc.stdout.readline(), 10)
    assert workers.startswith(b"2 worker processes share the port"), workers
    return proc, port


async def get(port: int, path: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as r:
        assert r.status == 200
        return await r.json()


async def call(port: int) -> Client:
    c = Client(await websockets.connect(f"ws://127.0.0.1:{port}/ws/voice"))
    await c.wait_for(lambda e: e.get("status") == "connected")
    return c


async def calls_on_both(port: int, limit: int = 24) -> tuple[list[Client], dict]:
    """Open calls until `/calls` shows them on two processes: the kernel hashes each new
    connection to a worker, so 24 calls all landing on one of two has odds of 2**-23."""
    clients: list[Client] = []
    while len(clients) < limit:
        clients.append(await call(port))
        listing = await get(port, "/calls")
        if len({c["pid"] for c in listing["calls"]}) == 2:
            return clients, listing
    raise AssertionError(f"{limit} calls all landed on one worker")


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()  # its workers get SIGTERM from the kernel (PR_SET_PDEATHSIG)
            await proc.wait()


async def test_calls_spread_over_workers_and_every_route_reports_them_all(tmp_path):
    proc, port = await start(tmp_path)
    try:
        clients, listing = await calls_on_both(port)
        assert listing["active_calls"] == len(clients) == len(listing["calls"])
        pids = {p["pid"] for p in listing["processes"]}
        assert len(pids) == 2 and os.getpid() not in pids
        for _ in range(4):  # whichever worker answers, the answer is the same server
            health = await get(port, "/health")
            assert health["status"] == "healthy"
            assert health["active_calls"] == len(clients)
            assert {p["pid"] for p in health["processes"]} == pids
            assert sum(p["active_calls"] for p in health["processes"]) == len(clients)
        for c in clients:
            await c.ws.close()
    finally:
        await stop(proc)


async def test_a_killed_worker_is_restarted(tmp_path):
    proc, port = await start(tmp_path)
    try:
        before = {p["worker"]: p["pid"] for p in (await get(port, "/health"))["processes"]}
        os.kill(before[1], signal.SIGKILL)
        async with asyncio.timeout(60):
            while True:  # unreachable, then restarted under a new pid
                health = await get(port, "/health")
                now = {p["worker"]: p.get("pid") for p in health["processes"]}
                if health["status"] == "healthy" and now[1] not in (None, before[1]):
                    break
                await asyncio.sleep(0.2)
        assert now[0] == before[0]
        c = await call(port)  # the server still takes calls
        await c.ws.close()
    finally:
        await stop(proc)


async def test_sigterm_drains_the_calls_of_every_worker(tmp_path):
    proc, port = await start(tmp_path, grace=1.0)
    try:
        clients, _ = await calls_on_both(port)
        proc.send_signal(signal.SIGTERM)
        for c in clients:
            _, ended = await c.wait_for(lambda e: e.get("status") == "ended", timeout=20)
            assert ended["reason"] == "server shutdown"
            await asyncio.wait_for(c.closed.wait(), 5)
            assert c.ws.close_code == 1001
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        out = (await proc.stdout.read()).decode()
        drained = [line for line in out.splitlines() if "stopping: draining" in line]
        assert len(drained) == 2 and all("worker " in line for line in drained), out
    finally:
        await stop(proc)


async def ready(port: int) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/ready") as r:
        return r.status, await r.json()


async def test_drain_and_ready_act_on_every_worker(tmp_path):
    proc, port = await start(tmp_path)
    try:
        clients, _ = await calls_on_both(port)
        for _ in range(4):  # whichever worker answers, the server is ready
            status, body = await ready(port)
            assert status == 200 and body["status"] == "healthy"
            assert len(body["processes"]) == 2
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{port}/drain") as r,
        ):
            assert r.status == 200
            drained = await r.json()
        assert drained["status"] == "draining"
        assert drained["active_calls"] == len(clients)
        assert [p["status"] for p in drained["processes"]] == ["draining", "draining"]
        for _ in range(4):  # every worker stopped taking calls, not only the one asked
            status, body = await ready(port)
            assert status == 503 and body["status"] == "draining"
            assert [p["status"] for p in body["processes"]] == ["draining", "draining"]
        assert (await get(port, "/health"))["active_calls"] == len(clients)  # calls go on
        # a worker restarted after the drain does not take calls either
        old = {p["worker"]: p["pid"] for p in (await get(port, "/health"))["processes"]}
        os.kill(old[1], signal.SIGKILL)
        async with asyncio.timeout(60):
            while True:
                _, body = await ready(port)
                now = {p["worker"]: p for p in body["processes"]}
                if now[1].get("pid") not in (None, old[1]):
                    break
                await asyncio.sleep(0.2)
        assert now[1]["status"] == "draining" and body["status"] == "draining"
        for c in clients:
            await c.ws.close()
    finally:
        await stop(proc)
