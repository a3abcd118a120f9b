"""REST routes next to the voice socket: sessions, health, calls, stats, chat, transcribe."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import websockets

from .support import Client, base_config, serve, silence, tone
from .test_voice_ws import _no_calls_left


async def test_session_then_connect_with_it_and_see_the_call(tmp_path):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        r = await http.post(f"{server.http}/api/v1/sessions", json={"namespace": "acme"})
        body = await r.json()
        assert set(body) == {"session_id", "expires_at", "ws_url"}
        assert body["ws_url"].endswith(f"/ws/voice?session_id={body['session_id']}")
        c = Client(await websockets.connect(body["ws_url"]))
        _, first = await c.wait_for(lambda e: e.get("status") == "connected")
        assert first["session_id"] == body["session_id"]
        calls = await (await http.get(f"{server.http}/calls")).json()
        assert calls["active_calls"] == 1 and calls["max_calls"] == 500
        (call,) = calls["calls"]
        assert call["session_id"] == body["session_id"] and call["transport"] == "websocket"
        assert set(call) >= {"call_id", "state", "turns_count", "flow", "node", "started_at"}
        stats = await (await http.get(f"{server.http}/ws/stats")).json()
        assert stats == {"active_connections": 1, "connection_ids": [call["call_id"][:8]]}
        health = await (await http.get(f"{server.http}/health")).json()
        assert health["status"] == "healthy" and health["active_calls"] == 1
        assert set(health["providers"]) >= {"vad", "stt", "tts", "llm"}
        assert "p99" in health["event_loop_lag_ms"]
        await c.close()
        await _no_calls_left(server)
        metrics = await (await http.get(f"{server.http}/metrics")).text()
        assert 'voicebot_calls_total{outcome="caller_hangup",transport="websocket"} 1.0' in metrics
        assert "voicebot_event_loop_lag_seconds_count" in metrics


async def test_chat_keeps_a_conversation_by_session(tmp_path):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        r = await http.post(f"{server.http}/api/chat", json={"text": "hello"})
        first = await r.json()
        assert first["text"] == "You said hello. Anything else?" and first["greeting"] == "Hi."
        r = await http.post(
            f"{server.http}/api/chat", json={"text": "goodbye", "session_id": first["session_id"]}
        )
        assert (await r.json()) == {
            "session_id": first["session_id"],
            "greeting": None,
            "text": "Goodbye!",
            "intent": "unknown",  # the llm dialogue classifies nothing
            "confidence": 0.0,
            "ended": True,
        }
        r = await http.post(f"{server.http}/api/chat", data="nope")
        assert r.status == 400 and (await r.json())["code"] == "invalid_json"
        r = await http.post(f"{server.http}/api/chat", json={"text": ""})
        assert r.status == 400 and (await r.json())["code"] == "invalid_text"


async def test_transcribe_raw_and_json(tmp_path):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        audio = tone(300, 8000)
        r = await http.post(
            f"{server.http}/api/transcribe?sample_rate=8000",
            data=audio,
            headers={"Content-Type": "audio/l16"},
        )
        assert (await r.json()) == {"text": "what time is it", "confidence": 1.0}
        r = await http.post(
            f"{server.http}/api/transcribe", json={"audio": base64.b64encode(tone(300)).decode()}
        )
        assert (await r.json())["text"] == "what time is it"
        r = await http.post(f"{server.http}/api/transcribe", json={"audio": "***"})
        assert r.status == 400 and (await r.json())["code"] == "invalid_audio"


async def connect(server, query=""):
    c = Client(await websockets.connect(f"{server.url}/ws/voice{query}"))
    await c.wait_for(lambda e: e.get("type") == "response" and e["final"])  # greeting
    return c


async def test_pause_resume_interrupt_reset(tmp_path):
    cfg = base_config()
    cfg["providers"]["tts"] = {"use": "stub", "ms_per_char": 150}
    async with serve(tmp_path, cfg) as server:
        c = await connect(server)
        await c.ws.send(json.dumps({"action": "pause"}))
        t_pause, _ = await c.wait_for(lambda e: e.get("status") == "paused")
        await c.stream(tone(400) + silence(400))  # ignored while paused
        await c.ws.send(json.dumps({"type": "resume"}))
        t_resume, _ = await c.wait_for(lambda e: e.get("status") == "listening", after=t_pause)
        assert not [e for t, e in c.events if e.get("type") == "transcript" and t < t_resume]
        await c.ws.send(json.dumps({"type": "text", "text": "tell me a long story please"}))
        t_speak, _ = await c.wait_for(lambda e: e.get("status") == "speaking", after=t_resume)
        await c.ws.send(json.dumps({"type": "interrupt"}))
        await c.wait_for(lambda e: e.get("status") == "interrupted", after=t_speak)
        await c.ws.send(json.dumps({"type": "reset"}))
        # the greeting comes again: the conversation started over
        await c.wait_for(
            lambda e: e.get("type") == "response" and e["final"] and e["text"] == "Hi.",
            after=t_speak,
        )
        await c.close()


async def test_dtmf_audio_message_and_format_change(tmp_path):
    cfg = base_config(dialogue={"mode": "echo", "greeting": "Hi."})
    async with serve(tmp_path, cfg) as server:
        c = await connect(server)
        await c.ws.send(json.dumps({"type": "dtmf", "digit": "5"}))
        await c.wait_for(
            lambda e: e.get("type") == "response" and e["text"] == "You said: I pressed 5."
        )
        await c.ws.send(json.dumps({"type": "config", "sample_rate": 8000, "encoding": "mulaw"}))
        _, st = await c.wait_for(
            lambda e: "audio_config" in e and e["audio_config"]["sample_rate"] == 8000
        )
        assert st["audio_config"]["encoding"] == "mulaw"
        from voicebot.audio import encode

        utterance = encode(tone(500, 8000), "mulaw")
        await c.ws.send(
            json.dumps({"type": "audio", "content": base64.b64encode(utterance).decode()})
        )
        t, _ = await c.wait_for(lambda e: e.get("type") == "transcript" and e["final"])
        await c.wait_audio(1600, after=t)
        frames = [a for at, a in c.audio if at > t]
        assert {len(f) for f in frames[:-1]} == {160}  # 20 ms of μ-law at 8 kHz
        await c.close()


async def test_noinput_reaches_the_dialogue(tmp_path):
    cfg = base_config(dialogue={"mode": "llm", "greeting": "Hi.", "noinput_timeout_ms": 300})
    async with serve(tmp_path, cfg) as server:
        c = await connect(server)
        t, _ = await c.wait_for(
            lambda e: e.get("type") == "response" and e["text"] == "Are you still there?"
        )
        # the timer runs from the end of the bot's speech, not from the start of the call
        speaking_done = max(at for at, e in c.events if e.get("status") == "listening" and at < t)
        assert t - speaking_done >= 0.3
        await c.close()


async def test_browser_page_is_served(tmp_path):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        r = await http.get(f"{server.http}/")
        page = await r.text()
        assert r.status == 200 and r.content_type == "text/html"
        assert "/ws/voice?sample_rate=" in page and "interrupted" in page


async def test_spoken_warning_before_the_maximum_call_length(tmp_path):
    limits = {
        "max_call_s": 2.0,
        "max_call_warning_s": 1.0,
        "max_call_warning": "Time is nearly up.",
    }
    async with serve(tmp_path, base_config(security={"limits": limits})) as server:
        c = Client(await websockets.connect(f"{server.url}/ws/voice"))
        t0, _ = await c.wait_for(lambda e: e.get("status") == "connected")
        t_warn, _ = await c.wait_for(
            lambda e: e.get("type") == "response" and e["text"] == "Time is nearly up."
        )
        await c.wait_audio(3200, after=t_warn)  # it is spoken, not only sent as text
        await asyncio.wait_for(c.closed.wait(), 5)
        assert c.ws.close_code == 4008 and "maximum call length" in c.ws.close_reason
        assert t_warn - t0 > 0.9  # not before max_call_s - max_call_warning_s
