"""Does `malloc_trim(0)` give memory back after a spike? RSS before, after and trimmed.

    python benchmarks/malloc_trim.py [--calls 150]

One in-process server (stub providers, the test VAD, `server.malloc_trim_s: 0` so only this
script trims); `--calls` concurrent calls each stream 3 s of audio and a long text turn, all end;
then RSS after `gc.collect()`, and after one `malloc_trim(0)` (glibc only).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import base_config, serve, silence, tone
from voicebot.memory import glibc_malloc_trim


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def call(url: str) -> None:
    speech = silence(100) + tone(1000) + silence(400)
    async with websockets.connect(f"{url}/ws/voice", max_queue=None) as ws:
        for _ in range(2):
            for i in range(0, len(speech), 3200):
                await ws.send(speech[i : i + 3200])
        await ws.send(json.dumps({"type": "text", "text": "hello " + "x" * 1500}))
        async for raw in ws:
            if isinstance(raw, str) and '"final": true' in raw and "hello" in raw:
                return


async def main(n: int) -> int:
    trim = glibc_malloc_trim()
    if trim is None:
        print("no glibc malloc_trim here")
        return 1
    cfg = base_config(server={"malloc_trim_s": 0})
    cfg["providers"]["tts"] = {"use": "stub", "ms_per_char": 1}
    limits = {"max_calls": 1000, "audio_realtime_factor": 1000, "audio_burst_s": 100}
    cfg["security"] = {"limits": limits}
    with tempfile.TemporaryDirectory() as tmp:
        async with serve(Path(tmp), cfg) as server:
            await call(server.url)  # warm-up
            gc.collect()
            before = rss_mb()
            await asyncio.gather(*(call(server.url) for _ in range(n)))
            gc.collect()
            after = rss_mb()
            start = time.perf_counter()
            trim(0)
            took = (time.perf_counter() - start) * 1000
            print(
                f"{n} concurrent calls: RSS {before:.1f} MB before, {after:.1f} MB after they "
                f"ended, {rss_mb():.1f} MB after malloc_trim(0) ({took:.1f} ms)"
            )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=150)
    raise SystemExit(asyncio.run(main(parser.parse_args().calls)))
