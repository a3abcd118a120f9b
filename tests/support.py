"""Test support: a real server on an ephemeral loopback port, and a recording WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import websockets
import yaml
from aiohttp import web

from voicebot.config import load_config
from voicebot.runtime import Runtime
from voicebot.server.app import create_app
from voicebot.server.connections import GuardedAppRunner, limits_from


def tone(ms: int, rate: int = 16000, freq: float = 300.0, amp: int = 8000) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * freq * t) * amp).astype("<i2").tobytes()


def silence(ms: int, rate: int = 16000) -> bytes:
    return bytes(2 * (rate * ms // 1000))


class Server:
    def __init__(self, runtime: Runtime, runner: web.AppRunner, port: int) -> None:
        self.runtime = runtime
        self.runner = runner
        self.port = port
        self.url = f"ws://127.0.0.1:{port}"
        self.http = f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, config: dict[str, Any]):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    runtime = Runtime(load_config(path, env={}))
    runner = GuardedAppRunner(create_app(runtime), limits_from(runtime.config), shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield Server(runtime, runner, port)
    finally:
        await runner.cleanup()


class Client:
    """Records everything the server sends, with arrival times, while the test talks."""

    def __init__(self, ws: Any, rate: int = 16000) -> None:
        self.ws = ws
        self.rate = rate
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.audio: list[tuple[float, bytes]] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.ensure_future(self._read())
        self.closed = asyncio.Event()

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                now = time.monotonic()
                if isinstance(msg, bytes):
                    self.audio.append((now, msg))
                else:
                    self.events.append((now, json.loads(msg)))
                async with self._changed:
                    self._changed.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()
            async with self._changed:
                self._changed.notify_all()

    async def wait_for(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0, after: float = 0.0
    ) -> tuple[float, dict[str, Any]]:
        async def find() -> tuple[float, dict[str, Any]]:
            async with self._changed:
                while True:
                    for at, ev in self.events:
                        if at >= after and pred(ev):
                            return at, ev
                    if self.closed.is_set():
                        raise AssertionError(f"connection closed; events: {self.types()}")
                    await self._changed.wait()

        return await asyncio.wait_for(find(), timeout)

    async def wait_audio(self, n_bytes: int, after: float = 0.0, timeout: float = 10.0) -> None:
        async def enough() -> None:
            async with self._changed:
                while sum(len(a) for t, a in self.audio if t >= after) < n_bytes:
                    if self.closed.is_set():
                        raise AssertionError("connection closed before audio arrived")
                    await self._changed.wait()

        await asyncio.wait_for(enough(), timeout)

    def types(self) -> list[str]:
        return [f"{e.get('type')}:{e.get('status', e.get('text', ''))}" for _, e in self.events]

    async def stream(self, pcm: bytes, frame_ms: int = 20, realtime: bool = True) -> None:
        step = self.rate * frame_ms // 1000 * 2
        start = time.monotonic()
        for i, off in enumerate(range(0, len(pcm), step)):
            await self.ws.send(pcm[off : off + step])
            if realtime:
                delay = start + (i + 1) * frame_ms / 1000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing like a microphone, not waiting for luck

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


def base_config(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "plugins": ["tests.testvad"],
        "pipeline": {
            "vad_hangover_ms": 200,
            "min_speech_ms": 60,
            # barge-in mechanics at once; the backchannel window is tested on its own
            "barge_in": {"min_speech_ms": 60, "backchannel_ms": 0},
        },
        "providers": {
            "vad": {"use": "testvad"},
            "stt": {"use": "stub", "text": "what time is it"},
            "tts": {"use": "stub", "ms_per_char": 40},
            "llm": {"use": "stub"},
        },
        "dialogue": {"mode": "llm", "greeting": "Hi."},
    }
    for key, value in over.items():
        cfg[key] = value
    return cfg


async def memory_growth_per_call(
    one_call: Callable[[], Awaitable[None]], n: int, settled: Callable[[], Awaitable[None]]
) -> tuple[float, str]:
    """Python memory added per call over `n` calls (after `settled()` each side), and the
    top allocation sites for the failure message."""
    await settled()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(n):
        await one_call()
    await settled()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    stats = after.compare_to(before, "filename")
    return sum(s.size_diff for s in stats) / n, "\n".join(str(s) for s in stats[:8])
