"""Bad clients get a clear error or close code; the server keeps serving and nothing leaks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import websockets

from .support import Client, base_config, serve, silence, tone
from .test_voice_ws import _no_calls_left, connect


async def test_malformed_and_unknown_messages_get_errors_and_the_call_goes_on(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        c = await connect(server)
        await c.ws.send("{not json")
        _, e1 = await c.wait_for(lambda e: e.get("type") == "error")
        assert e1["code"] == "invalid_json"
        await c.ws.send(json.dumps({"type": "teleport"}))
        _, e2 = await c.wait_for(lambda e: e.get("code") == "unknown_type")
        assert "teleport" in e2["message"]
        await c.ws.send(json.dumps({"type": "dtmf", "digit": "x"}))
        await c.wait_for(lambda e: e.get("code") == "invalid_dtmf")
        await c.ws.send(json.dumps({"type": "ping"}))
        await c.wait_for(lambda e: e.get("type") == "pong")
        await c.ws.send(json.dumps({"type": "text", "text": "still here"}))
        await c.wait_for(lambda e: e.get("type") == "response" and "still here" in e["text"])
        await c.close()
        await _no_calls_left(server)


async def test_oversized_frame_closes_1009_and_others_are_unaffected(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        good = await connect(server)
        bad = await connect(server)
        await bad.wait_for(lambda e: e.get("status") == "connected")
        # uncompressed, the server closes while the frame is still on its way: the send may fail
        with contextlib.suppress(websockets.ConnectionClosed, ConnectionResetError):
            await bad.ws.send(bytes(10 * 1024 * 1024))
        await asyncio.wait_for(bad.closed.wait(), 10)
        assert bad.ws.close_code == 1009
        await good.ws.send(json.dumps({"type": "text", "text": "are you ok"}))
        await good.wait_for(lambda e: e.get("type") == "response" and "are you ok" in e["text"])
        await good.close()
        await _no_calls_left(server)


async def test_odd_length_pcm_is_reassembled(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        c = await connect(server)
        pcm = silence(100) + tone(400) + silence(400)
        chunks = [pcm[i : i + 641] for i in range(0, len(pcm), 641)]  # odd sizes
        for chunk in chunks:
            await c.ws.send(chunk)
            await asyncio.sleep(0.02)
        _, tr = await c.wait_for(lambda e: e.get("type") == "transcript" and e["final"])
        assert tr["text"] == "what time is it"
        await c.close()


async def test_bad_query_and_unknown_session(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        for query, code in [
            ("?sample_rate=1000", 1003),
            ("?encoding=flac", 1003),
            ("?encoding=opus", 1003),
            ("?session_id=nope", 4004),
        ]:
            ws = await websockets.connect(f"{server.url}/ws/voice{query}")
            c = Client(ws)
            await asyncio.wait_for(c.closed.wait(), 5)
            assert ws.close_code == code, query
        await _no_calls_left(server)


async def test_capacity_closes_1013(tmp_path):
    cfg = base_config(security={"limits": {"max_calls": 1}})
    async with serve(tmp_path, cfg) as server:
        first = await connect(server)
        await first.wait_for(lambda e: e.get("status") == "connected")
        second = await connect(server)
        await asyncio.wait_for(second.closed.wait(), 5)
        assert second.ws.close_code == 1013
        await first.close()
        await _no_calls_left(server)


async def test_client_disconnects_mid_reply(tmp_path):
    cfg = base_config()
    cfg["providers"]["tts"] = {"use": "stub", "ms_per_char": 200}
    cfg["dialogue"]["greeting"] = "A very long greeting that takes many seconds to play out."
    async with serve(tmp_path, cfg) as server:
        for _ in range(5):
            c = await connect(server)
            await c.wait_for(lambda e: e.get("status") == "speaking")
            await c.wait_audio(6400)
            c.ws.transport.abort()  # vanish without a close frame
            await c.closed.wait()
        await _no_calls_left(server)
        other = await connect(server)
        await other.wait_for(lambda e: e.get("status") == "speaking")
        await other.close()
        await _no_calls_left(server)


async def test_client_that_never_reads_is_dropped(tmp_path):
    """A peer that stops reading never answers pings: the heartbeat drops it, the call ends."""
    cfg = base_config(security={"limits": {"heartbeat_s": 0.5}})
    async with serve(tmp_path, cfg) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(
            b"GET /ws/voice HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        first = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)  # 101 + "connected"
        assert first.startswith(b"HTTP/1.1 101") and b"connected" in first
        assert len(server.runtime.calls) == 1
        call = next(iter(server.runtime.calls.values()))
        # well before the 60 s idle timeout, the missing pongs end the call
        await _no_calls_left(server, timeout=5)
        assert call.end_reason == "client disconnected"
        sock.close()
        good = await connect(server)
        await good.ws.send(json.dumps({"type": "text", "text": "hi"}))
        await good.wait_for(lambda e: e.get("type") == "response" and e["final"])
        await good.close()


async def test_many_calls_leave_nothing_behind(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        for _ in range(30):
            c = await connect(server)
            await c.ws.send(json.dumps({"type": "text", "text": "hi"}))
            await c.wait_for(
                lambda e: e.get("type") == "response" and e["final"] and "hi" in e["text"]
            )
            await c.ws.send(json.dumps({"type": "end_call"}))
            await asyncio.wait_for(c.closed.wait(), 5)
            assert c.ws.close_code == 1000
        await _no_calls_left(server)
        assert server.runtime.calls_total == 30


async def test_json_integer_past_python_digit_limit_is_an_error_not_a_traceback(tmp_path, caplog):
    """Python refuses to read an int of more than 4,300 digits with a ValueError that is not a
    JSONDecodeError; it once escaped the parser, closed the call 1000 and logged a traceback."""
    async with serve(tmp_path, base_config()) as server:
        c = await connect(server)
        await c.ws.send('{"type":"text","text":"hi","n":' + "9" * 5000 + "}")
        _, err = await c.wait_for(lambda e: e.get("type") == "error")
        assert err["code"] == "invalid_json" and "number" in err["message"]
        await c.ws.send('{"type":"text","text":"\\ud800 lone surrogate"}')
        await c.wait_for(lambda e: e.get("code") == "invalid_text")
        await c.ws.send(json.dumps({"type": "text", "text": "still here"}))
        await c.wait_for(lambda e: e.get("type") == "response" and "still here" in e["text"])
        await c.close()
        await _no_calls_left(server)
    assert not [r for r in caplog.records if r.exc_info], "a client error logged a traceback"
