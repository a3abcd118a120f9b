"""Every limit closes the offending connection with its exact code and leaves other calls alone."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time

import aiohttp
import websockets

from voicebot.config import LimitsConfig
from voicebot.providers import AudioFormat
from voicebot.server.limits import ConnectionLimiter

from .support import Client, base_config, serve, silence
from .test_auth import auth_config, make_token
from .test_voice_ws import _no_calls_left


def limited(**limits) -> dict:
    cfg = base_config()
    cfg["security"] = {"limits": limits}
    return cfg


async def open_ws(server, query: str = "") -> Client:
    c = Client(await websockets.connect(f"{server.url}/ws/voice{query}"))
    await c.wait_for(lambda e: e.get("status") == "connected", timeout=5)
    return c


async def closed_with(c: Client) -> tuple[int, str]:
    await asyncio.wait_for(c.closed.wait(), 5)
    return c.ws.close_code, c.ws.close_reason


async def still_served(c: Client, word: str = "bystander") -> None:
    """The well-behaved call next door gets its answer."""
    sent = time.monotonic()
    await c.ws.send(json.dumps({"type": "text", "text": f"hello {word}"}))
    await c.wait_for(
        lambda e: e.get("type") == "response" and e["final"] and word in e["text"], after=sent
    )


async def until(cond, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_process_capacity_closes_1013(tmp_path):
    async with serve(tmp_path, limited(max_calls=1)) as server:
        a = await open_ws(server)
        b = Client(await websockets.connect(f"{server.url}/ws/voice"))
        assert (await closed_with(b))[0] == 1013
        await still_served(a)
        await a.close()
        await _no_calls_left(server)


async def test_per_subject_capacity_closes_1013(tmp_path):
    cfg = auth_config()
    cfg["security"]["limits"] = {"max_calls_per_subject": 1}
    async with serve(tmp_path, cfg) as server:
        alice = await open_ws(server, f"?token={make_token()}")
        again = Client(await websockets.connect(f"{server.url}/ws/voice?token={make_token()}"))
        code, why = await closed_with(again)
        assert code == 1013 and "this subject" in why
        bob = await open_ws(server, f"?token={make_token(sub='bob')}")
        await still_served(alice, "alice")
        await still_served(bob, "bob")
        await alice.close()
        await bob.close()
        await _no_calls_left(server)


async def test_message_flood_gets_error_then_1008(tmp_path):
    async with serve(tmp_path, limited(max_messages_per_s=20, message_burst=20)) as server:
        good = await open_ws(server)
        flood = await open_ws(server)
        for _ in range(60):
            await flood.ws.send(json.dumps({"type": "ping"}))
        code, why = await closed_with(flood)
        assert code == 1008 and why == "rate limit exceeded"
        errors = [e for _, e in flood.events if e.get("code") == "rate_limited"]
        assert errors and "messages per second" in errors[0]["message"]
        await still_served(good)
        await good.close()
        await _no_calls_left(server)


async def test_audio_faster_than_realtime_is_refused(tmp_path):
    cfg = limited(audio_burst_s=0.5, max_frame_bytes=1024)
    async with serve(tmp_path, cfg) as server:
        good = await open_ws(server)
        # 1.5 s of audio at real time passes the 16 000-byte (0.5 s) burst easily
        await good.stream(silence(1500), realtime=True)
        fast = await open_ws(server)
        frame = silence(20)
        for _ in range(100):  # 2 s of audio, as fast as the socket takes it
            await fast.ws.send(frame)
        code, _ = await closed_with(fast)
        assert code == 1008
        errors = [e for _, e in fast.events if e.get("code") == "rate_limited"]
        assert errors and "real time" in errors[0]["message"]
        assert not good.closed.is_set()
        await still_served(good)
        await good.close()
        await _no_calls_left(server)


def test_alaw_and_mulaw_have_the_same_byte_budget():
    limits = LimitsConfig(audio_realtime_factor=1.5)
    for encoding in ("mulaw", "alaw"):
        limiter = ConnectionLimiter(limits, AudioFormat(8000, encoding))
        assert limiter.bytes.rate == 12000, encoding  # 1 byte a sample, 1.5 x 8000/s


async def test_alaw_faster_than_realtime_is_refused(tmp_path):
    """A-law at 2.5x real time: over the 1.5x budget, under the 3x it used to have."""
    async with serve(tmp_path, limited(audio_burst_s=0.5, max_frame_bytes=1024)) as server:
        fast = await open_ws(server, "?encoding=alaw&sample_rate=8000")
        frame = bytes([0xD5]) * 160  # 20 ms of A-law silence
        start = time.monotonic()
        with contextlib.suppress(websockets.ConnectionClosed):
            for i in range(375):  # 7.5 s of audio in 3 s
                await fast.ws.send(frame)
                delay = start + (i + 1) * 0.008 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing at 2.5x real time
                if fast.closed.is_set():
                    break
        code, _ = await closed_with(fast)
        assert code == 1008
        errors = [e for _, e in fast.events if e.get("code") == "rate_limited"]
        assert errors and errors[0]["message"].startswith("data arrives faster than 1.5×")
        await _no_calls_left(server)


async def test_oversized_frame_closes_1009(tmp_path):
    async with serve(tmp_path, limited(max_frame_bytes=4096)) as server:
        good = await open_ws(server)
        big = await open_ws(server)
        await big.ws.send(os.urandom(8192))
        assert (await closed_with(big))[0] == 1009
        await still_served(good)
        await good.close()
        await _no_calls_left(server)


async def test_text_over_limit_is_an_error_not_a_close(tmp_path):
    async with serve(tmp_path, limited(max_text_chars=10)) as server:
        c = await open_ws(server)
        await c.ws.send(json.dumps({"type": "text", "text": "x" * 11}))
        _, err = await c.wait_for(lambda e: e.get("type") == "error")
        assert err["code"] == "text_too_long"
        await still_served(c, "ok")
        await c.close()


async def test_idle_and_max_length_close_4008(tmp_path):
    async with serve(tmp_path, limited(idle_timeout_s=1, max_call_s=1.6)) as server:
        idle = await open_ws(server)
        busy = await open_ws(server)

        async def keep_alive() -> None:
            while not busy.closed.is_set():
                await busy.ws.send(json.dumps({"type": "ping"}))
                await asyncio.sleep(0.25)  # a client's keep-alive cadence, not a wait for luck

        pinger = asyncio.ensure_future(keep_alive())
        start = time.monotonic()
        code, why = await closed_with(idle)
        assert code == 4008 and "idle" in why and 0.9 < time.monotonic() - start < 1.5
        assert not busy.closed.is_set()
        code, why = await closed_with(busy)
        assert code == 4008 and "maximum call length" in why
        pinger.cancel()
        await asyncio.gather(pinger, return_exceptions=True)
        await _no_calls_left(server)


async def test_heartbeat_drops_a_dead_peer(tmp_path):
    async with serve(tmp_path, limited(heartbeat_s=0.5)) as server:
        good = await open_ws(server)
        # a raw socket that completes the handshake, then never answers a ping
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ws/voice HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        assert b"101" in await reader.readuntil(b"\r\n")
        await until(lambda: len(server.runtime.calls) == 2, 2)  # the dead peer's call began
        await until(lambda: len(server.runtime.calls) == 1, 3)  # and the heartbeat ended it
        await still_served(good)  # the live client answers pings: websockets does it for us
        writer.close()
        await good.close()
        await _no_calls_left(server)


async def test_http_body_limit(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        async with aiohttp.ClientSession() as http:
            body = b"{" + b" " * (11 * 1024 * 1024) + b"}"
            async with http.post(
                f"{server.http}/api/chat", data=body, headers={"Content-Type": "application/json"}
            ) as r:
                assert r.status == 413


async def test_cors_only_for_configured_origins(tmp_path):
    cfg = base_config(security={"cors_origins": ["https://app.example"]})
    async with serve(tmp_path, cfg) as server, aiohttp.ClientSession() as http:
        url = f"{server.http}/api/v1/sessions"
        ok = {"Origin": "https://app.example"}
        evil = {"Origin": "https://evil.example"}
        pre = {"Access-Control-Request-Method": "POST"}
        async with http.options(url, headers={**ok, **pre}) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
        async with http.options(url, headers={**evil, **pre}) as r:
            assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
        async with http.post(url, json={}, headers=ok) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
        async with http.post(url, json={}, headers=evil) as r:
            assert "Access-Control-Allow-Origin" not in r.headers
        async with http.post(url, data=b"[", headers=ok) as r:  # errors carry CORS headers too
            assert r.status == 400
            assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
