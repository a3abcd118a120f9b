"""Abusive clients for `benchmarks/soak.py`: an Opus/WebM decompression bomb, slowloris header
senders and a session flood. They only ever connect to 127.0.0.1.

The bomb is the issue-19 attack, built by `tests/attacks.py`: a 2-byte Opus packet that decodes
to 120 ms of audio, so a WebM message that is nothing but such SimpleBlocks expands ~15,000-fold.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

import aiohttp
import websockets

from tests.attacks import BOMB_PACKET_S, SIMPLE_BLOCK_BYTES, opus_bomb_blocks, webm_header

TARGET = "127.0.0.1"


def bomb_blocks(n_bytes: int) -> bytes:
    """About `n_bytes` of SimpleBlocks of the 2-byte bomb packet (8 bytes decode to 120 ms)."""
    return opus_bomb_blocks(BOMB_PACKET_S * max(1, n_bytes // SIMPLE_BLOCK_BYTES))


async def opus_bomb(url: str, message_bytes: int, messages: int) -> str:
    """Send the WebM header, then `messages` bomb messages; returns how the server answered."""
    try:
        async with websockets.connect(
            f"{url}/ws/voice?encoding=webm&sample_rate=48000", max_queue=None, close_timeout=2
        ) as ws:
            try:
                await ws.send(webm_header())
                for _ in range(messages):
                    await ws.send(bomb_blocks(message_bytes))
                await asyncio.wait_for(ws.wait_closed(), 30)
            except websockets.ConnectionClosed:
                pass
            except TimeoutError:
                return "still open after 30 s"
            return f"{ws.close_code} {ws.close_reason}".strip()
    except (OSError, websockets.WebSocketException) as exc:
        return type(exc).__name__


async def slowloris(port: int, sockets: int, seconds: float, source: str) -> Counter:
    """Open `sockets` connections from `source` (another loopback address, so the server can
    tell them apart) and trickle a request header on each, a byte every 0.5 s, for `seconds`;
    counts how each ended: 408 (header deadline), 503 (per-address cap), held, refused."""
    outcome: Counter = Counter()

    async def one() -> None:
        try:
            reader, writer = await asyncio.open_connection(TARGET, port, local_addr=(source, 0))
        except OSError as exc:
            outcome[f"connect failed: {type(exc).__name__}"] += 1
            return
        request = b"GET /ws/voice HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nX-Pad: " + b"a" * 200
        reading = asyncio.ensure_future(reader.read(64))
        try:
            for byte in request:
                if reading.done() or writer.is_closing():
                    break
                writer.write(bytes([byte]))
                done, _ = await asyncio.wait({reading}, timeout=0.5)
                if done or asyncio.get_running_loop().time() > deadline:
                    break
            if not reading.done():
                outcome["held to the end"] += 1
                return
            data = reading.result()
            outcome[f"http {data[9:12].decode(errors='replace')}" if data else "closed"] += 1
        except OSError as exc:
            outcome[type(exc).__name__] += 1
        finally:
            reading.cancel()
            writer.close()

    deadline = asyncio.get_running_loop().time() + seconds
    await asyncio.gather(*(one() for _ in range(sockets)))
    return outcome


async def session_flood(http_url: str, requests: int, metadata_bytes: int) -> Counter:
    """`POST /api/v1/sessions` with `metadata_bytes` of metadata, `requests` times, 8 at once;
    counts the status codes."""
    outcome: Counter = Counter()
    body = {"metadata": {"blob": os.urandom(metadata_bytes // 2).hex()}, "namespace": "flood"}
    sem = asyncio.Semaphore(8)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def one() -> None:
            async with sem:
                try:
                    async with http.post(f"{http_url}/api/v1/sessions", json=body) as r:
                        await r.read()
                        outcome[r.status] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    outcome[type(exc).__name__] += 1

        await asyncio.gather(*(one() for _ in range(requests)))
    return outcome
