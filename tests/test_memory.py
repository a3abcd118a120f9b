"""Memory freed after a burst of calls goes back to the OS once the server is idle."""

from __future__ import annotations

import asyncio
import json
import time

import websockets

from voicebot.server.appkeys import TRIMMER

from .support import base_config, serve


async def one_call(server) -> None:
    async with websockets.connect(f"{server.url}/ws/voice", max_queue=None) as ws:
        await ws.send(json.dumps({"type": "text", "text": "hello"}))
        async for raw in ws:
            if isinstance(raw, str) and '"final": true' in raw and "hello" in raw:
                return


async def test_trim_runs_once_after_calls_end_and_never_during_them(tmp_path):
    cfg = base_config(server={"malloc_trim_s": 0.2})
    cfg["providers"]["tts"] = {"use": "stub", "ms_per_char": 1}
    async with serve(tmp_path, cfg) as server:
        trimmer = server.runner.app[TRIMMER]
        # proving an absence: three trim periods pass with nothing to give back (no call yet)
        await asyncio.sleep(0.6)
        assert trimmer.trims == 0
        async with websockets.connect(f"{server.url}/ws/voice") as live:
            await asyncio.gather(*(one_call(server) for _ in range(5)))
            await asyncio.sleep(0.6)  # three trim periods with a live call: no trim
            assert trimmer.trims == 0
            await live.close()
        deadline = time.monotonic() + 5
        while trimmer.trims == 0:
            assert time.monotonic() < deadline, "no trim after the calls ended"
            await asyncio.sleep(0.05)
        assert trimmer.trims == 1
