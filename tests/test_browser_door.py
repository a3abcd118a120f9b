"""The browser door's `browser:` config and issue 13's smaller behaviours, over real sockets:
heartbeats, extra paths, the default rate, `?dialect=`, the JSON size limit, status replies,
`call_id` on every status, integer error statuses, one `response` per turn, and `/api/chat`
conversations the client names."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import pytest
import websockets

from voicebot.config import ConfigError, load_config

from .support import Client, base_config, serve, silence, tone
from .test_auth import auth_config, make_token
from .test_voice_ws import _no_calls_left


def browser_config(**browser) -> dict:
    return base_config(browser=browser)


async def connect(server, path: str = "/ws/voice", query: str = "", rate: int = 16000) -> Client:
    ws = await websockets.connect(f"{server.url}{path}{query}", max_size=None)
    return Client(ws, rate)


def status(state: str):
    return lambda e: e.get("type") == "status" and e.get("status") == state


async def test_heartbeat_every_heartbeat_s(tmp_path):
    async with serve(tmp_path, browser_config(heartbeat_s=0.2)) as server:
        c = await connect(server)
        t0, _ = await c.wait_for(status("connected"))
        t1, _ = await c.wait_for(lambda e: e.get("type") == "heartbeat", after=t0)
        t2, _ = await c.wait_for(lambda e: e.get("type") == "heartbeat", after=t1 + 0.01)
        assert t2 - t1 >= 0.15
        await c.close()
        await _no_calls_left(server)


async def test_extra_path_is_served_like_ws_voice(tmp_path):
    async with serve(tmp_path, browser_config(paths=["/voice-agent/ws/voice"])) as server:
        c = await connect(server, "/voice-agent/ws/voice")
        _, hello = await c.wait_for(status("connected"))
        assert hello["call_id"]
        await c.ws.send(json.dumps({"type": "text", "content": "book a table"}))
        await c.wait_for(lambda e: e.get("type") == "response" and "book a table" in e["text"])
        await c.close()
        await _no_calls_left(server)


async def test_a_client_that_announces_nothing_gets_browser_sample_rate(tmp_path):
    async with serve(tmp_path, browser_config(sample_rate=24000)) as server:
        c = await connect(server, rate=24000)
        _, hello = await c.wait_for(status("connected"))
        assert hello["audio_config"]["sample_rate"] == 24000
        await c.close()
        c = await connect(server, query="?sample_rate=8000", rate=8000)
        _, hello = await c.wait_for(status("connected"))
        assert hello["audio_config"]["sample_rate"] == 8000  # announced rates still win
        await c.close()


async def test_dialect_query_is_checked(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        c = await connect(server, query="?dialect=soap")
        await asyncio.wait_for(c.closed.wait(), 5)
        assert c.ws.close_code == 1003 and "dialect" in c.ws.close_reason
        _, err = await c.wait_for(lambda e: e.get("type") == "error")
        assert err["code"] == "invalid_config" and err["status"] == 400
        c = await connect(server, query="?dialect=envelope")
        _, hello = await c.wait_for(lambda e: e.get("type") == "system")
        assert hello["content"]["message"] == "Connected"
        await c.close()


async def test_json_over_max_message_bytes_closes_1009(tmp_path):
    async with serve(tmp_path, browser_config(max_message_bytes=300_000)) as server:
        c = await connect(server)
        await c.wait_for(status("connected"))
        # over max_frame_bytes (256 KiB) but within browser.max_message_bytes: taken
        content = base64.b64encode(silence(6000, 16000) + tone(500)).decode()
        assert 256 * 1024 < len(content) < 300_000
        sent = time.monotonic()
        await c.ws.send(json.dumps({"type": "audio", "content": content}))
        await c.wait_for(status("processing"), after=sent)
        assert not c.closed.is_set()
        # over it: 1009
        await c.ws.send(json.dumps({"type": "audio", "content": "A" * 300_004}))
        await asyncio.wait_for(c.closed.wait(), 5)
        assert c.ws.close_code == 1009
        await _no_calls_left(server)


async def test_every_status_names_the_call_and_silent_requests_are_answered(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        c = await connect(server)
        _, hello = await c.wait_for(status("connected"))
        call_id = hello["call_id"]
        t, _ = await c.wait_for(status("listening"))
        await c.wait_for(lambda e: e.get("type") == "response")  # the greeting
        t, _ = await c.wait_for(status("listening"), after=t + 0.001)  # it has played
        # nothing was being said: end_turn and interrupt are still answered
        sent = time.monotonic()
        await c.ws.send(json.dumps({"type": "end_turn"}))
        _, answer = await c.wait_for(lambda e: e.get("type") == "status", after=sent)
        assert answer["status"] == "listening" and answer["call_id"] == call_id
        sent = time.monotonic()
        await c.ws.send(json.dumps({"type": "interrupt"}))
        _, answer = await c.wait_for(lambda e: e.get("type") == "status", after=sent)
        assert answer["status"] == "listening" and answer["call_id"] == call_id
        # integer status beside the string code
        await c.ws.send(json.dumps({"type": "shout"}))
        _, err = await c.wait_for(lambda e: e.get("type") == "error")
        assert (err["code"], err["status"]) == ("unknown_type", 400)
        await c.ws.send(json.dumps({"type": "end_call"}))
        await c.wait_for(status("ended"))
        await asyncio.wait_for(c.closed.wait(), 5)
        statuses = [e for _, e in c.events if e.get("type") == "status"]
        assert len(statuses) >= 6 and all(e["call_id"] == call_id for e in statuses)
        await _no_calls_left(server)


async def test_one_response_per_turn_and_deltas_apart(tmp_path):
    cfg = base_config()
    cfg["dialogue"] = {"mode": "echo", "greeting": "Hello there. How can I help you today?"}
    async with serve(tmp_path, cfg) as server:
        c = await connect(server)
        t, whole = await c.wait_for(lambda e: e.get("type") == "response")
        assert whole == {
            "type": "response",
            "text": "Hello there. How can I help you today?",
            "final": True,
        }
        deltas = [e["text"] for at, e in c.events if e.get("type") == "response_delta"]
        assert "".join(deltas) == whole["text"]
        await c.wait_for(status("listening"), after=t)
        sent = time.monotonic()
        await c.ws.send(json.dumps({"type": "text", "text": "one. two. three."}))
        t, _ = await c.wait_for(lambda e: e.get("type") == "response", after=sent)
        await c.wait_for(status("listening"), after=t, timeout=15)
        responses = [e for at, e in c.events if at >= sent and e.get("type") == "response"]
        assert len(responses) == 1
        await c.close()


async def test_ended_on_max_call_s_says_why(tmp_path):
    cfg = base_config(security={"limits": {"max_call_s": 1, "max_call_warning_s": 0}})
    async with serve(tmp_path, cfg) as server:
        c = await connect(server)
        _, ended = await c.wait_for(status("ended"), timeout=5)
        assert ended["reason"] == "maximum call length reached" and ended["call_id"]
        await asyncio.wait_for(c.closed.wait(), 5)
        assert c.ws.close_code == 4008
        await _no_calls_left(server)


async def chat(http, server, body, headers=None):
    async with http.post(f"{server.http}/api/chat", json=body, headers=headers) as r:
        return r.status, await r.json()


async def test_chat_continues_a_conversation_the_client_named(tmp_path):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        _, first = await chat(http, server, {"text": "hello", "session_id": "my-conv.1"})
        assert first["session_id"] == "my-conv.1" and first["greeting"] == "Hi."
        assert (first["intent"], first["confidence"]) == ("unknown", 0.0)
        _, second = await chat(http, server, {"text": "goodbye", "session_id": "my-conv.1"})
        assert second["session_id"] == "my-conv.1" and second["greeting"] is None
        assert second["text"] == "Goodbye!" and second["ended"]
        code, bad = await chat(http, server, {"text": "hi", "session_id": "no spaces"})
        assert code == 400 and bad["code"] == "invalid_body"


async def test_chat_returns_the_flows_intent(tmp_path):
    cfg = base_config()
    cfg["dialogue"] = {"mode": "flows"}
    cfg["flows"] = {"dir": str(__import__("pathlib").Path(__file__).parent.parent / "flows")}
    cfg["providers"]["intent"] = {"use": "keyword"}
    async with serve(tmp_path, cfg) as server, aiohttp.ClientSession() as http:
        _, out = await chat(http, server, {"text": "I'd like to book a table", "session_id": "b1"})
        assert out["intent"] not in (None, "unknown") and 0 < out["confidence"] <= 1, out


async def test_a_named_chat_is_bound_to_its_subject(tmp_path):
    alice = {"Authorization": f"Bearer {make_token(sub='alice')}"}
    bob = {"Authorization": f"Bearer {make_token(sub='bob')}"}
    async with serve(tmp_path, auth_config()) as server, aiohttp.ClientSession() as http:
        _, mine = await chat(http, server, {"text": "hello", "session_id": "alice-1"}, alice)
        assert mine["session_id"] == "alice-1"
        _, his = await chat(http, server, {"text": "hello", "session_id": "alice-1"}, bob)
        assert his["session_id"] != "alice-1" and his["greeting"] == "Hi."
        _, again = await chat(http, server, {"text": "more", "session_id": "alice-1"}, alice)
        assert again["session_id"] == "alice-1" and again["greeting"] is None


def test_check_reports_browser_keys_with_file_and_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "browser:\n"
        "  dialect: soap\n"
        "  output: ogg\n"
        "  sample_rate: 4000\n"
        "  heartbeat_s: -1\n"
        "  max_message_bytes: 10\n"
        "  paths:\n"
        "    - /ws/voice\n"
        "    - no-slash\n"
        "    - /a\n"
        "    - /a\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    lines = {(p.line, p.key) for p in caught.value.problems}
    assert lines == {
        (2, "browser.dialect"),
        (3, "browser.output"),
        (4, "browser.sample_rate"),
        (5, "browser.heartbeat_s"),
        (6, "browser.max_message_bytes"),
        (8, "browser.paths[0]"),
        (9, "browser.paths[1]"),
        (11, "browser.paths[3]"),
    }
    path.write_text("browser:\n  output: mp3\n  paths: [/voice-agent/ws/voice]\n")
    cfg = load_config(path, env={})
    assert cfg.browser.output == "mp3" and cfg.browser.paths == ["/voice-agent/ws/voice"]
