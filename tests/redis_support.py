"""A real `redis-server` per test, on a free loopback port, that a test may stop and restart.

Tests skip only when the binary is missing (`.ci/run` installs it); everything else about Redis
is real: the client library talks to it over TCP like in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

REDIS = shutil.which("redis-server")
needs_redis = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


def free_port() -> int:
    """A port nothing listens on now (redis has no `--port 0`)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            REDIS or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert self.proc.stdout is not None

        async def ready() -> None:
            while line := await self.proc.stdout.readline():
                if b"Ready to accept connections" in line:
                    return
            raise AssertionError("redis-server exited before it was ready")

        await asyncio.wait_for(ready(), 10)
        self._drain = asyncio.ensure_future(self._read_rest())

    async def _read_rest(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while await self.proc.stdout.readline():
            pass

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.kill()  # as a crash would: no goodbye to the clients
        await self.proc.wait()
        await self._drain


@contextlib.asynccontextmanager
async def redis_server(tmp_path: Path):
    server = RedisServer(tmp_path / "redis")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def until(pred: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
    """Wait for a condition someone else makes true (a heartbeat, a write), bounded in time."""

    async def poll() -> None:
        while True:
            got = pred()
            if asyncio.iscoroutine(got):
                got = await got
            if got:
                return
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)
