"""What Redis adds to a call (`cluster:`), against a real redis-server on loopback.

Starts its own `redis-server` on a free port (no persistence), two cluster states on it as two
instances would hold, and measures:

- per call start: the admission (one Lua script run) and, for a call with a session, reading
  the session back (one MGET): the time the call's start waits on Redis;
- per turn: what the turn pays on the event loop (serialising and encrypting the flow state)
  and the write that follows off the call's path (one SET);
- admissions per second through the global limiter, from both instances at once (each admitted
  slot released again, so the limit is never the bottleneck).

    python benchmarks/cluster.py [--calls 2000] [--seconds 3] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import tempfile
import time
from types import SimpleNamespace

from cryptography.fernet import Fernet

from voicebot.cluster.redis_state import RedisCluster
from voicebot.config import Config
from voicebot.server.sessions import SessionStore
from voicebot.stats import percentile


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_redis(port: int, workdir: str) -> asyncio.subprocess.Process:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    args = ("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
    proc = await asyncio.create_subprocess_exec(
        binary, *args, "--dir", workdir, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    while b"Ready to accept connections" not in await proc.stdout.readline():
        pass
    return proc


def instance(url: str, name: str, key: str) -> RedisCluster:
    cfg = Config()
    cfg.cluster.redis_url, cfg.cluster.instance_id = url, name
    cfg.cluster.max_calls = 1_000_000
    cfg.security.limits.max_calls_per_subject = 1_000_000
    cfg.storage.encrypt_key = key
    return RedisCluster(SimpleNamespace(config=cfg, calls={}))


class FakeCall:
    """What a session's state is made of: a flow mid-booking and ten turns of history."""

    def __init__(self, session_id: str) -> None:
        self.id = "call-" + session_id
        self.session_id = session_id
        self.end_reason = ""
        self.clean_end = False

    def snapshot(self) -> dict:
        history = [
            {"role": r, "text": "I'd like a table for four tomorrow at seven", "at": 1.0}
            for r in ("user", "bot") * 5
        ]
        dialogue = {"flow": "booking", "node": "ask_time", "slots": {"party_size": 4}, "stack": []}
        return {"dialogue": dialogue, "history": history, "variables": {}, "turns_count": 5}


def ms(samples: list[float], p: float) -> float:
    return round(percentile(samples, p), 3)


async def main(calls: int, seconds: float, concurrency: int, encrypt: bool) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        proc = await start_redis(port, workdir)
        url = f"redis://127.0.0.1:{port}/0"
        key = Fernet.generate_key().decode() if encrypt else ""
        a, b = instance(url, "a", key), instance(url, "b", key)
        await a.start()
        await b.start()
        try:
            await measure(a, b, calls, seconds, concurrency)
        finally:
            await a.stop()
            await b.stop()
            proc.kill()
            await proc.wait()


async def measure(a: RedisCluster, b: RedisCluster, calls: int, seconds: float, conc: int) -> None:
    store = SessionStore()
    admit, fetch, encode, write = [], [], [], []
    for i in range(calls):
        session = store.create()
        await a.session_created(session)
        t0 = time.perf_counter()
        assert await a.admit(f"slot-{i}", "subject") is None
        t1 = time.perf_counter()
        await b.fetch_session(SessionStore(), session.id)  # a call starting on the other one
        t2 = time.perf_counter()
        admit.append((t1 - t0) * 1000)
        fetch.append((t2 - t1) * 1000)
        call = FakeCall(session.id)
        t3 = time.perf_counter()
        a.sessions.save(call, live=True)  # what the turn boundary pays on the loop
        t4 = time.perf_counter()
        await a.sessions.flush()  # the write, off the call's path in the server
        encode.append((t4 - t3) * 1000)
        await a.release(f"slot-{i}")
    write = list(a.sessions.write_ms)
    start = [x + y for x, y in zip(admit, fetch, strict=True)]
    print(
        f"per call start, {calls} calls (ms): admission p50 {ms(admit, 0.5)} p95 "
        f"{ms(admit, 0.95)}; session read p50 {ms(fetch, 0.5)} p95 {ms(fetch, 0.95)}; "
        f"both p95 {ms(start, 0.95)}"
    )
    print(
        f"per turn (ms): on the loop (serialise{'+encrypt' if a.sessions.fernet else ''}) "
        f"p50 {ms(encode, 0.5)} p95 {ms(encode, 0.95)}; Redis write (off the call's path) "
        f"p50 {ms(write, 0.5)} p95 {ms(write, 0.95)}"
    )

    admitted = 0
    deadline = time.monotonic() + seconds

    async def worker(n: int) -> None:
        nonlocal admitted
        cluster = a if n % 2 else b
        i = 0
        while time.monotonic() < deadline:
            slot = f"w{n}-{i}"
            i += 1
            if await cluster.admit(slot, f"subject-{n % 8}") is None:
                admitted += 1
                await cluster.release(slot)

    started = time.monotonic()
    await asyncio.gather(*(worker(n) for n in range(conc)))
    rate = admitted / (time.monotonic() - started)
    print(
        f"global limiter: {rate:.0f} admissions/s (admit + release each) from 2 instances, "
        f"{conc} concurrent, one process, one Redis on loopback"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-encrypt", action="store_true", help="session state in clear")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.seconds, args.concurrency, not args.no_encrypt))
