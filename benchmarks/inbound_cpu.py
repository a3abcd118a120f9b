"""Server CPU per inbound media message: N phone calls that only listen.

Each call streams low noise (no speech, so no STT, LLM or TTS request is ever made) as Twilio
does, one 20 ms μ-law `media` message at a time; the server's CPU seconds over a fixed window,
divided by the messages sent in it, is the whole inbound path per message: the WebSocket
receive, the JSON and base64 parse, the limits, decoding, VAD and turn-taking. Same server as
benchmarks/load_sdk.py (the `openai` provider, webrtc VAD, 200 ms hangover), one process.

    python benchmarks/inbound_cpu.py --calls 100 --seconds 10 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from load_sdk import Caller, Clock, Results, free_port, server_config, wait_health  # noqa: E402

from voicebot.bench.load import noise_frame  # noqa: E402
from voicebot.bench.target import proc_stats  # noqa: E402


async def measure(port: int, pid: int, calls: int, seconds: float) -> dict[str, float]:
    quiet = noise_frame(1)
    sent = 0
    stop = asyncio.Event()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        clock = Clock(Results())
        ticker = asyncio.ensure_future(clock.run())
        callers = [Caller(port, http) for _ in range(calls)]
        await asyncio.gather(*(c.connect() for c in callers))

        async def stream(c: Caller, phase: int) -> None:
            nonlocal sent
            while not stop.is_set():
                await clock.wait(phase)
                await c.send(quiet)
                sent += 1

        streams = [asyncio.ensure_future(stream(c, clock.phase())) for c in callers]
        await asyncio.sleep(2.0)  # every call streaming, the server's first frames behind it
        cpu0, sent0, t0 = proc_stats(pid)[0], sent, time.monotonic()
        await asyncio.sleep(seconds)
        cpu, messages, wall = proc_stats(pid)[0] - cpu0, sent - sent0, time.monotonic() - t0
        stop.set()
        await asyncio.gather(*streams)
        await asyncio.gather(*(c.close() for c in callers))
        ticker.cancel()
    return {
        "us_per_message": cpu / messages * 1e6,
        "pct_per_call": cpu / wall * 100 / calls,
        "messages_per_s": messages / wall,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--server-path",
        help="PYTHONPATH for the server: another checkout's `voicebot` and `voicebot_plugins` "
        "(its plugins/ linked under that name), to compare it with this one",
    )
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    opts = argparse.Namespace(pipeline=[], max_calls=5000)
    cfg = server_config(tmp, "http://127.0.0.1:9", opts)  # never asked: nobody speaks
    rows = []
    for _ in range(args.runs):
        port = free_port()
        cmd = [sys.executable, "-m", "voicebot.cli", "run", str(cfg), "--port", str(port)]
        cmd += ["--log-level", "WARNING", "--workers", "1"]
        env = {**os.environ, "PYTHONPATH": args.server_path or str(ROOT)}
        cwd = args.server_path or ROOT  # `-m` puts the working directory first on the path
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env, cwd=cwd)
        try:
            asyncio.run(wait_health(port, server))
            rows.append(asyncio.run(measure(port, server.pid, args.calls, args.seconds)))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    us = sorted(r["us_per_message"] for r in rows)
    pct = sorted(r["pct_per_call"] for r in rows)
    print(
        f"{args.calls} listening calls, {rows[-1]['messages_per_s']:.0f} messages/s: server CPU "
        f"per inbound message median {us[len(us) // 2]:.1f} µs ("
        + ", ".join(f"{u:.1f}" for u in us)
        + f"), {pct[len(pct) // 2]:.3f} % of a core per call; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
