"""The Opus decompression bomb against a real server process: how long its event loop stalls and
how much memory it takes, measured by a bystander call.

    python benchmarks/webm_bomb.py [config.yaml] [--port 8099] [--only "one message" ...]

Starts `voicebot run` on the given config (the default one: Silero VAD) and keeps one bystander
call pinging 50 times a second, one ping per pong; the longest gap between two pongs is the
longest time the server's loop did not serve it. Then, one after the other:

- `one message`: a maximum-size message (256 KB, ~3 900 s of audio once decoded; BOMB_SECONDS=960
  makes it the issue's 64 KB);
- `small bombs`: 1.8 s of audio per 130-byte message, sent as fast as the socket takes them;
- `whole utterance`: a base64 `audio` message holding ~2 900 s of audio;

after a control, `connect only`: a call that connects and hangs up, which costs the loop something
too (the call's set-up and greeting).

Printed per attack: the close code and reason, the bystander's worst pong gap and p99, and the
server's RSS and peak RSS (VmHWM) from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import aiohttp
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.attacks import opus_bomb_blocks, opus_bomb_webm, webm_header


async def event(ws, kind: str, value: str) -> None:
    """Read until a JSON message with `kind` == `value` (bot audio and other events skipped)."""
    while True:
        msg = await ws.recv()
        if isinstance(msg, str) and json.loads(msg).get(kind) == value:
            return


def memory_mb(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


class Bystander:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.gaps: list[float] = []
        self._stop = False
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        last = time.monotonic()
        while not self._stop:
            await self.ws.send(json.dumps({"type": "ping"}))
            await event(self.ws, "type", "pong")
            now = time.monotonic()
            self.gaps.append(now - last)
            last = now
            await asyncio.sleep(0.02)

    def window(self) -> list[float]:
        gaps, self.gaps = self.gaps, []
        return gaps


async def bomber(url: str) -> websockets.ClientConnection:
    ws = await websockets.connect(
        f"{url}?encoding=webm&sample_rate=48000", max_size=None, ping_interval=None
    )
    await event(ws, "status", "connected")
    return ws


async def outcome(ws, timeout: float = 60) -> str:
    errors = []

    async def read() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for msg in ws:
                if isinstance(msg, str) and json.loads(msg).get("type") == "error":
                    errors.append(json.loads(msg)["code"])

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        return f"error {errors[:1]}, not closed after {timeout:g} s"
    return f"error {errors[:1]} then close {ws.close_code} '{ws.close_reason}'"


async def connect_only(url: str) -> str:
    """The control: a call that connects, says nothing and hangs up (not an attack)."""
    ws = await bomber(url)
    await ws.send(json.dumps({"type": "end_call"}))
    return await outcome(ws)


async def one_message(url: str) -> str:
    ws = await bomber(url)
    bomb = opus_bomb_webm(float(os.environ.get("BOMB_SECONDS", 3900)))
    assert len(bomb) <= 262_144
    await ws.send(bomb)
    return await outcome(ws)


async def small_bombs(url: str) -> str:
    ws = await bomber(url)
    await ws.send(webm_header())
    chunk, sent = opus_bomb_blocks(1.8), 0
    with contextlib.suppress(websockets.ConnectionClosed):
        for _ in range(2000):
            await ws.send(chunk)
            sent += 1
    return f"{sent} messages sent; " + await outcome(ws)


async def whole_utterance(url: str) -> str:
    ws = await bomber(url)
    content = base64.b64encode(opus_bomb_webm(2900)).decode()
    await ws.send(json.dumps({"type": "audio", "content": content}))
    return await outcome(ws)


ATTACKS = {
    "connect only": connect_only,
    "one message": one_message,
    "small bombs": small_bombs,
    "whole utterance": whole_utterance,
}


async def main(config: str, port: int, attacks: list[str]) -> None:
    server = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "voicebot.cli", "run", config, "--port", str(port)],
        env={**os.environ, "PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):  # loading the models takes a while
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/health") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.2)
        url = f"ws://127.0.0.1:{port}/ws/voice"
        ws = await websockets.connect(url, ping_interval=None)  # measure a freeze, not die of it
        await event(ws, "status", "connected")
        probe = Bystander(ws)
        await asyncio.sleep(2)
        rss, peak = memory_mb(server.pid)
        gaps = probe.window()
        print(f"{'baseline':16} worst gap {max(gaps) * 1000:6.1f} ms   RSS {rss:.0f} MB")
        for name in attacks:
            # from another process: the bystander's own loop is not the one sending
            child = await asyncio.create_subprocess_exec(
                *[sys.executable, __file__, "--attack", name, "--url", url],
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await child.communicate()
            result = out.decode().strip() or "the attack failed to connect (server frozen?)"
            await asyncio.sleep(1)  # the bystander keeps measuring after the close
            seen = len(probe.gaps)
            for _ in range(1200):  # and a stall is only measured once its pong arrives
                if len(probe.gaps) > seen:
                    break
                await asyncio.sleep(0.1)
            gaps = probe.window() or [float("nan")]
            p99 = statistics.quantiles(gaps * 2, n=100, method="inclusive")[98]
            rss, peak = memory_mb(server.pid)
            print(
                f"{name:16} worst gap {max(gaps) * 1000:6.1f} ms, p99 {p99 * 1000:5.1f} ms   "
                f"RSS {rss:.0f} MB (peak {peak:.0f})   {result}"
            )
        probe._stop = True
        await probe.task
        await ws.close()
    finally:
        server.terminate()
        try:
            await asyncio.wait_for(server.wait(), 30)
        except TimeoutError:  # still frozen decoding
            server.kill()
            await server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("config", nargs="?", default="config.yaml")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--only", nargs="*", choices=ATTACKS, default=list(ATTACKS))
    parser.add_argument("--attack", choices=ATTACKS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attack:
        print(asyncio.run(ATTACKS[args.attack](args.url)))
    else:
        asyncio.run(main(args.config, args.port, args.only))
