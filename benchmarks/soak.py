"""Soak test: 1,000 sequential short calls plus 100 abusive connections against one server.

    python benchmarks/soak.py [--calls 1000] [--abusers 100]

The server runs on its own event loop in a thread (stub providers, the test VAD), so its tasks can
be counted apart from the clients'. Abusers run alongside the well-behaved calls: message floods,
audio faster than real time, oversized frames, silent connections (idle timeout), slowloris header
senders and raw garbage. Printed: calls served, abusers' close codes, RSS, open fds and tasks before
and after.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import base_config, serve, silence


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class ServerThread:
    """`tests.support.serve` on a private loop, so the client side cannot stall it."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop = asyncio.Event()
        self.server = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),))

    async def _run(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            async with serve(Path(tmp), self.config) as server:
                self.server = server
                self.ready.set()
                await self.stop.wait()

    def start(self):
        self.thread.start()
        self.ready.wait(30)
        return self.server

    def tasks(self) -> list[asyncio.Task]:
        return asyncio.run_coroutine_threadsafe(self._tasks(), self.loop).result(10)

    async def _tasks(self) -> list[asyncio.Task]:
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    def shutdown(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)


async def good_call(url: str, seen: list[str]) -> float:
    """Connect, say hello, wait for the answer, hang up; `seen` says how far a failure got."""
    start = time.monotonic()
    seen.append("connecting")
    # max_queue=None: with reply audio left unread past websockets' default queue of 16, the
    # client stops reading its socket and cannot see the server's close frame (a 10 s stall
    # that is the client's, not the server's)
    async with websockets.connect(f"{url}/ws/voice", max_queue=None) as ws:
        seen.append("open")
        await ws.send(json.dumps({"type": "text", "text": "hello"}))
        async for raw in ws:
            if isinstance(raw, str):
                ev = json.loads(raw)
                seen.append(f"{ev.get('type')}:{ev.get('status', ev.get('text', ''))}")
                if ev.get("type") == "response" and ev.get("final") and "hello" in ev["text"]:
                    break
    return time.monotonic() - start


async def abuser(kind: str, url: str, port: int) -> str:
    try:
        if kind in ("slowloris", "garbage"):
            return await _raw_socket(kind, port)
        async with websockets.connect(
            f"{url}/ws/voice", max_size=None, max_queue=None, close_timeout=2
        ) as ws:
            try:
                if kind == "flood":
                    for _ in range(2000):
                        await ws.send('{"type":"ping"}')
                elif kind == "audio_flood":
                    frame = silence(100)
                    for _ in range(400):  # 40 s of audio as fast as the socket takes it
                        await ws.send(frame)
                elif kind == "oversized":
                    await ws.send(os.urandom(1024 * 1024))
                await asyncio.wait_for(ws.wait_closed(), 15)
            except websockets.ConnectionClosed:
                pass
            return str(ws.close_code)
    except (OSError, websockets.WebSocketException, TimeoutError) as exc:
        return type(exc).__name__


async def _raw_socket(kind: str, port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if kind == "garbage":
            writer.write(os.urandom(4096))
            await writer.drain()
            data = await asyncio.wait_for(reader.read(100), 10)
            return f"http {data[9:12].decode(errors='replace')}" if data else "closed"
        request = b"GET /ws/voice HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        for byte in request[:40]:  # a byte every 50 ms: 2 s of a half-sent header
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)
        return "slowloris gave up after 2 s (server kept the socket)"
    finally:
        writer.close()


async def main(n_calls: int, n_abusers: int) -> int:
    cfg = base_config()
    cfg["security"] = {"limits": {"idle_timeout_s": 2, "max_calls": 200}}
    cfg["providers"]["tts"] = {"use": "stub", "ms_per_char": 1}
    srv = ServerThread(cfg)
    server = srv.start()
    await good_call(server.url, [])  # warm-up: lazy imports and first-call allocations
    rss0, fds0, tasks0 = rss_mb(), open_fds(), len(srv.tasks())
    print(f"before: rss {rss0:.1f} MB, open fds {fds0}, server tasks {tasks0}")

    kinds = ["flood", "audio_flood", "oversized", "idle", "slowloris", "garbage"]
    outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    async def abuse() -> None:
        sem = asyncio.Semaphore(20)

        async def one(i: int) -> None:
            kind = kinds[i % len(kinds)]
            async with sem:
                outcomes[kind][await abuser(kind, server.url, server.port)] += 1

        await asyncio.gather(*(one(i) for i in range(n_abusers)))

    abusing = asyncio.ensure_future(abuse())
    durations, failures = [], 0
    start = time.monotonic()
    for _ in range(n_calls):
        seen: list[str] = []
        try:
            durations.append(await asyncio.wait_for(good_call(server.url, seen), 10))
        except (OSError, websockets.WebSocketException, TimeoutError) as exc:
            failures += 1
            print(f"well-behaved call failed: {exc!r} after {seen}")
    await abusing
    elapsed = time.monotonic() - start

    deadline = time.monotonic() + 10  # let the server finish closing what the clients dropped
    while server.runtime.calls and time.monotonic() < deadline:  # noqa: ASYNC110 - another loop
        await asyncio.sleep(0.1)
    tasks = srv.tasks()
    call_tasks = [t.get_name() for t in tasks if t.get_name().startswith("call-")]
    rss1, fds1 = rss_mb(), open_fds()
    durations.sort()
    print(
        f"served {len(durations)}/{n_calls} well-behaved calls in {elapsed:.1f} s; "
        f"call time p50 {statistics.median(durations) * 1000:.0f} ms, "
        f"p99 {durations[int(0.99 * (len(durations) - 1))] * 1000:.0f} ms; failures {failures}"
    )
    for kind in kinds:
        print(f"  abuser {kind:12s} -> {dict(outcomes[kind])}")
    print(f"after:  rss {rss1:.1f} MB (+{rss1 - rss0:.1f}), open fds {fds1} ({fds1 - fds0:+d}), "
          f"server tasks {len(tasks)} ({len(tasks) - tasks0:+d}), call tasks {len(call_tasks)}, "
          f"live calls {len(server.runtime.calls)}")  # fmt: skip
    for t in tasks:
        print("  server task:", t.get_name(), t.get_coro().__qualname__)
    srv.shutdown()
    return 0 if failures == 0 and not call_tasks and not server.runtime.calls else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--abusers", type=int, default=100)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.calls, args.abusers)))
