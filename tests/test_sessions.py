"""Sessions: a dropped call resumes on reconnect; a clean end consumes a single-use session."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import websockets

from .support import Client, base_config, serve
from .test_voice_ws import _no_calls_left

FLOWS = str(Path(__file__).resolve().parent.parent / "flows")


def flows_config(**sessions):
    cfg = base_config(dialogue={"mode": "flows"}, flows={"dir": FLOWS, "start": "main"})
    cfg["providers"]["intent"] = {"use": "keyword"}
    cfg["security"] = {"sessions": sessions} if sessions else {}
    return cfg


async def new_session(server) -> str:
    async with aiohttp.ClientSession() as http:
        r = await http.post(f"{server.http}/api/v1/sessions", json={})
        return (await r.json())["session_id"]


async def connect(server, session_id: str) -> tuple[Client, dict]:
    c = Client(await websockets.connect(f"{server.url}/ws/voice?session_id={session_id}"))
    _, first = await c.wait_for(lambda e: e.get("status") == "connected")
    return c, first


async def say(c: Client, text: str, expect: str) -> None:
    t = c.events[-1][0] if c.events else 0
    await c.ws.send(json.dumps({"type": "text", "text": text}))
    await c.wait_for(lambda e: e.get("type") == "response" and expect in e.get("text", ""), after=t)


async def drop(c: Client) -> None:
    c.ws.transport.abort()  # the network went away: no close frame
    await c.closed.wait()


async def test_dropped_call_resumes_at_the_same_step_with_its_slots(tmp_path):
    async with serve(tmp_path, flows_config()) as server:
        sid = await new_session(server)
        c, first = await connect(server, sid)
        assert first["resumed"] is False
        await c.wait_for(lambda e: e.get("type") == "response" and "book a table" in e["text"])
        await say(c, "I would like to book a table", "For how many people?")
        await say(c, "four", "For what day and time?")
        await drop(c)
        await _no_calls_left(server)
        c2, first2 = await connect(server, sid)
        assert first2["resumed"] is True
        # the flow repeats where it stopped instead of greeting again
        _, again = await c2.wait_for(lambda e: e.get("type") == "response" and e["final"])
        assert "For what day and time?" in again["text"] and "Welcome" not in again["text"]
        await say(c2, "tomorrow at seven pm", "what name")
        calls = server.runtime.calls
        (call,) = calls.values()
        assert call.dialogue.snapshot()["slots"]["party_size"] == 4
        assert call.turns_count == 3
        await c2.close()


async def test_reconnect_takes_over_a_connection_the_server_still_thinks_is_open(tmp_path):
    async with serve(tmp_path, flows_config()) as server:
        sid = await new_session(server)
        a, _ = await connect(server, sid)
        await say(a, "book a table", "For how many people?")
        b, first = await connect(server, sid)
        assert first["resumed"] is True
        await asyncio.wait_for(a.closed.wait(), 5)
        assert len(server.runtime.calls) == 1
        await say(b, "two", "For what day and time?")
        await b.close()
        await _no_calls_left(server)


async def test_clean_end_starts_over_or_consumes_a_single_use_session(tmp_path):
    async with serve(tmp_path, flows_config()) as server:
        sid = await new_session(server)
        c, _ = await connect(server, sid)
        await say(c, "book a table", "For how many people?")
        await c.ws.send(json.dumps({"type": "end_call"}))
        await asyncio.wait_for(c.closed.wait(), 5)
        await _no_calls_left(server)
        c2, first = await connect(server, sid)  # reusable: a new conversation
        assert first["resumed"] is False
        await c2.wait_for(lambda e: e.get("type") == "response" and "Welcome" in e["text"])
        await c2.close()
    async with serve(tmp_path, flows_config(single_use=True)) as server:
        sid = await new_session(server)
        c, _ = await connect(server, sid)
        await c.ws.send(json.dumps({"type": "end_call"}))
        await asyncio.wait_for(c.closed.wait(), 5)
        await _no_calls_left(server)
        again = Client(await websockets.connect(f"{server.url}/ws/voice?session_id={sid}"))
        await asyncio.wait_for(again.closed.wait(), 5)
        assert again.ws.close_code == 4004


async def test_no_resume_after_the_grace_period(tmp_path):
    async with serve(tmp_path, flows_config(resume_grace_s=0)) as server:
        sid = await new_session(server)
        c, _ = await connect(server, sid)
        await say(c, "book a table", "For how many people?")
        await drop(c)
        await _no_calls_left(server)
        c2, first = await connect(server, sid)
        assert first["resumed"] is False
        await c2.close()


async def test_llm_conversation_resumes_its_messages(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        sid = await new_session(server)
        c, _ = await connect(server, sid)
        await c.wait_for(lambda e: e.get("status") == "speaking")
        await c.wait_for(lambda e: e.get("status") == "listening", after=c.events[-1][0])
        await say(c, "my name is Ada", "You said my name is Ada")
        await drop(c)
        await _no_calls_left(server)
        c2, first = await connect(server, sid)
        assert first["resumed"] is True
        (call,) = server.runtime.calls.values()
        contents = [m.content for m in call.dialogue.messages]
        assert "my name is Ada" in contents and contents.count("Hi.") == 1  # no second greeting
        await c2.close()
