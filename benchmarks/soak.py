"""Soak test: 1,000 sequential short calls plus 100 abusive connections against one server.

    python benchmarks/soak.py [--calls 1000] [--abusers 100] [--bombs 3] [--slowloris 300]
                              [--flood 200]

The server runs on its own event loop in a thread (stub providers, the test VAD), so its tasks can
be counted apart from the clients'. Abusers run alongside the well-behaved calls: message floods,
audio faster than real time, oversized frames, silent connections (idle timeout), slowloris header
senders and raw garbage; then the three heavy attacks of `attack_clients.py`: Opus/WebM bombs,
hundreds of slowloris sockets from a second loopback address, and a flood of `POST
/api/v1/sessions` with large metadata.

Bystanders show whether other callers are affected: a few calls stream real-time 20 ms audio
frames with a `ping` after every fifth, first with the server quiet, then under attack; printed is
the ping→pong time (how late the server got to a bystander's inbound frames) p50/p99/max, and the
server's own event-loop lag in each phase. Also printed: calls served, abusers' outcomes, the
flood's accepted/refused counts and RSS growth, RSS, open fds and tasks before and after, and RSS
once the server has handed freed memory back (`server.malloc_trim_s`). Everything targets
127.0.0.1 (and 127.0.0.2 as the attacker's address), and the run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.attack_clients import opus_bomb, session_flood, slowloris
from tests.support import base_config, serve, silence, tone
from voicebot.server.appkeys import SESSIONS, TRIMMER

ATTACKER = "127.0.0.2"  # loopback too; a second address, so per-address limits can tell


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

    async def loop_lag(self, reset: bool = False) -> tuple[float, float]:
        """The server's event-loop lag p99 and max (ms) since the last reset. Read on the
        server's loop, so a stall still in progress is waited out and counted."""
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self._loop_lag(reset), self.loop)
        )

    async def _loop_lag(self, reset: bool) -> tuple[float, float]:
        await asyncio.sleep(0.1)  # one more sample: it records the stall that just ended
        samples = self.server.runtime.lag.samples
        s = sorted(samples)
        if reset:
            samples.clear()
        return (s[int(0.99 * (len(s) - 1))], s[-1]) if s else (0.0, 0.0)

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


async def bystander(url: str, seconds: float, rtts: list[float], lost: Counter) -> None:
    """Real-time 20 ms frames (silence and a tone), a `ping` after every fifth: the ping→pong
    time is how late the server got to this caller's inbound frames. Pongs still missing 30 s
    after the last frame, and calls that could not connect or were dropped, go to `lost`."""
    frames = [silence(20)] * 40 + [tone(20)] * 10
    sent: collections.deque[float] = collections.deque()
    answered = asyncio.Event()
    try:
        async with websockets.connect(f"{url}/ws/voice", max_queue=None, open_timeout=60) as ws:

            async def read() -> None:
                async for raw in ws:
                    if isinstance(raw, str) and json.loads(raw).get("type") == "pong" and sent:
                        rtts.append((time.monotonic() - sent.popleft()) * 1000)
                        if not sent:
                            answered.set()

            reader = asyncio.ensure_future(read())
            start = time.monotonic()
            for i in range(int(seconds * 50)):
                await ws.send(frames[i % len(frames)])
                if i % 5 == 4:
                    answered.clear()
                    sent.append(time.monotonic())
                    await ws.send('{"type":"ping"}')
                delay = start + (i + 1) * 0.02 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing like a microphone
            if sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(answered.wait(), 30)
            lost["pings never answered"] += len(sent)
            await ws.close()
            reader.cancel()
    except (OSError, websockets.WebSocketException, TimeoutError) as exc:
        lost[f"bystander failed: {type(exc).__name__}"] += 1
        lost["pings never answered"] += len(sent)


async def bystanders(url: str, n: int, seconds: float) -> tuple[list[float], Counter]:
    rtts: list[float] = []
    lost: Counter = Counter()
    await asyncio.gather(*(bystander(url, seconds, rtts, lost) for _ in range(n)))
    return sorted(rtts), lost


def lag_line(label: str, rtts: list[float], lost: Counter, server_lag: tuple[float, float]) -> str:
    lost_text = f", {dict(lost)}" if +lost else ""
    if not rtts:
        return f"  {label}: no pongs{lost_text}"
    p50, p99 = rtts[len(rtts) // 2], rtts[int(0.99 * (len(rtts) - 1))]
    return (
        f"  {label}: bystander frame lag (ping after frame -> pong) p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms, max {rtts[-1]:.1f} ms (n={len(rtts)}{lost_text}); "
        f"server loop lag p99 {server_lag[0]:.1f} ms, max {server_lag[1]:.1f} ms"
    )


async def main(args: argparse.Namespace) -> int:
    n_calls, n_abusers = args.calls, args.abusers
    cfg = base_config()
    cfg["security"] = {
        "limits": {"idle_timeout_s": 2, "max_calls": 200, "max_connections_per_client": 100}
    }
    cfg["server"] = {"malloc_trim_s": 1}
    cfg["providers"]["tts"] = {"use": "stub", "ms_per_char": 1}
    srv = ServerThread(cfg)
    server = srv.start()
    await good_call(server.url, [])  # warm-up: lazy imports and first-call allocations
    rss0, fds0, tasks0 = rss_mb(), open_fds(), len(srv.tasks())
    print(f"before: rss {rss0:.1f} MB, open fds {fds0}, server tasks {tasks0}")

    async def phase(label: str, attack: Callable[[], Awaitable[str]]) -> None:
        """Bystanders for `--bystander-s` while `attack` runs (it starts with them)."""
        await srv.loop_lag(reset=True)
        attacking = asyncio.ensure_future(attack())
        rtts, lost = await bystanders(server.url, args.bystanders, args.bystander_s)
        lag = await srv.loop_lag()
        outcome = await attacking
        phases.append(
            lag_line(f"{label:13s}", rtts, lost, lag) + (f"\n      {outcome}" if outcome else "")
        )

    async def quiet() -> str:
        return ""

    async def loris() -> str:
        got = await slowloris(server.port, args.slowloris, args.bystander_s, ATTACKER)
        return f"slowloris: {args.slowloris} sockets from {ATTACKER} -> {dict(got)}"

    async def flood() -> str:
        before = rss_mb()
        got = await session_flood(server.http, args.flood, args.flood_kb * 1024)
        return (
            f"session flood: {args.flood} x {args.flood_kb} KB metadata -> status "
            f"{dict(got)}; RSS {rss_mb() - before:+.1f} MB, "
            f"{len(server.runner.app[SESSIONS])} sessions held"
        )

    async def bombs() -> str:
        size = args.bomb_kb * 1024
        got = await asyncio.gather(*(opus_bomb(server.url, size, 2) for _ in range(args.bombs)))
        return f"opus bomb: {args.bombs} clients, 2 x {args.bomb_kb} KB -> {dict(Counter(got))}"

    phases: list[str] = []
    await phase("quiet", quiet)
    await phase("slowloris", loris)
    await phase("session flood", flood)
    await phase("opus bomb", bombs)

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
    print("bystanders (client and server share one process: a stalled server also delays the")
    print("clients' sends, so the server's own loop lag is the figure to trust):")
    print("\n".join(phases))
    print(f"after:  rss {rss1:.1f} MB (+{rss1 - rss0:.1f}), open fds {fds1} ({fds1 - fds0:+d}), "
          f"server tasks {len(tasks)} ({len(tasks) - tasks0:+d}), call tasks {len(call_tasks)}, "
          f"live calls {len(server.runtime.calls)}")  # fmt: skip
    for t in tasks:
        print("  server task:", t.get_name(), t.get_coro().__qualname__)
    trimmer, trims = server.runner.app[TRIMMER], server.runner.app[TRIMMER].trims
    deadline = time.monotonic() + 5
    while trimmer.trims == trims and time.monotonic() < deadline:  # noqa: ASYNC110 - other loop
        await asyncio.sleep(0.1)
    print(
        f"rss after malloc_trim: {rss_mb():.1f} MB (trims so far: {trimmer.trims}; "
        f"{len(server.runner.app[SESSIONS])} sessions still held)"
    )
    srv.shutdown()
    return 0 if failures == 0 and not call_tasks and not server.runtime.calls else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--abusers", type=int, default=100)
    parser.add_argument("--bystanders", type=int, default=4, help="real-time calls measured")
    parser.add_argument("--bystander-s", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--bombs", type=int, default=3, help="Opus/WebM bomb clients")
    parser.add_argument("--bomb-kb", type=int, default=64, help="size of each bomb message")
    parser.add_argument("--slowloris", type=int, default=300, help="slow header sockets")
    parser.add_argument("--flood", type=int, default=200, help="POST /api/v1/sessions requests")
    parser.add_argument("--flood-kb", type=int, default=512, help="metadata per request")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
