"""Nothing accumulates per call: after warm-up, more calls do not grow Python memory."""

from __future__ import annotations

import asyncio
import gc
import json

import websockets

from voicebot.call import Call

from .support import Client, base_config, memory_growth_per_call, serve, silence, tone


async def one_call(server) -> None:
    c = Client(await websockets.connect(f"{server.url}/ws/voice"))
    await c.stream(tone(200) + silence(240), realtime=False)
    await c.wait_for(lambda e: e.get("type") == "response" and e["final"] and "what" in e["text"])
    await c.ws.send(json.dumps({"type": "end_call"}))
    await asyncio.wait_for(c.closed.wait(), 5)
    await c._reader


async def no_call_objects_alive(runtime) -> None:
    """Every Call object of `runtime` is gone. A connection's teardown finishes a moment after
    its call left the runtime's table, so wait for the garbage collector to find none."""
    while True:
        gc.collect()
        if not any(isinstance(o, Call) and o.services is runtime for o in gc.get_objects()):
            return
        await asyncio.sleep(0.02)  # teardown of the last connection is still running


async def test_memory_does_not_grow_with_calls(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        for _ in range(30):  # warm-up: imports, caches
            await one_call(server)

        async def settled() -> None:
            await asyncio.wait_for(server.runtime.no_calls.wait(), 5)
            await asyncio.wait_for(no_call_objects_alive(server.runtime), 5)

        per_call, top = await memory_growth_per_call(lambda: one_call(server), 60, settled)
        # what remains is interpreter noise (free lists, code caches), not per-call state
        assert per_call < 2048, f"{per_call:.0f} bytes per call\n{top}"
        assert not server.runtime.calls
        assert [t for t in asyncio.all_tasks() if t.get_name().startswith("call-")] == []
