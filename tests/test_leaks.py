"""Nothing accumulates per call: after warm-up, more calls do not grow Python memory."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc

import websockets

from .support import Client, base_config, serve, silence, tone


async def one_call(server) -> None:
    c = Client(await websockets.connect(f"{server.url}/ws/voice"))
    await c.stream(tone(200) + silence(240), realtime=False)
    await c.wait_for(lambda e: e.get("type") == "response" and e["final"] and "what" in e["text"])
    await c.ws.send(json.dumps({"type": "end_call"}))
    await asyncio.wait_for(c.closed.wait(), 5)
    await c._reader


async def test_memory_does_not_grow_with_calls(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        for _ in range(30):  # warm-up: imports, caches, the turns ring filling up
            await one_call(server)
        server.runtime.turns = type(server.runtime.turns)(maxlen=0)  # bounded by design; not a leak
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        n = 60
        for _ in range(n):
            await one_call(server)
        await asyncio.wait_for(server.runtime.no_calls.wait(), 5)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        stats = after.compare_to(before, "filename")
        growth = sum(s.size_diff for s in stats)
        top = "\n".join(str(s) for s in stats[:8])
        # what remains is interpreter noise (free lists, code caches), not per-call state
        assert growth / n < 2048, f"{growth / n:.0f} bytes per call\n{top}"
        assert not server.runtime.calls
        assert [t for t in asyncio.all_tasks() if t.get_name().startswith("call-")] == []
