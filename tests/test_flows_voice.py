"""End to end over /ws/voice: speech drives a flow through a slot, an intent branch and a
hang-up, on a real server with a real WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import textwrap

import aiohttp
import websockets

from .support import Client, base_config, serve, silence, tone

FLOW = """
slots:
  size: {type: integer, prompt: For how many people?}
intents:
  book: {keywords: [book], examples: [please book it]}
  cancel: {keywords: [cancel]}
nodes:
  hello:
    say: Hi.
    next: size
  size:
    ask: size
    next: menu
  menu:
    say: "{{ size }} people. Shall I book it or cancel?"
    listen:
      - intent: book
        goto: booked
      - intent: cancel
        goto: bye
  booked:
    say: Booked for {{ size }}. Goodbye.
    hangup: booked
  bye:
    say: Goodbye.
    hangup:
"""


async def test_speech_fills_a_slot_takes_an_intent_branch_and_hangs_up(tmp_path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "main.yaml").write_text(textwrap.dedent(FLOW))
    cfg = base_config(dialogue={"mode": "flows"}, flows={"dir": "flows", "start": "main"})
    cfg["plugins"].append("tests.scriptstt")
    cfg["providers"]["stt"] = {"use": "scripted", "texts": ["four people", "please book it"]}
    cfg["providers"]["intent"] = {"use": "keyword"}
    cfg["providers"]["tts"] = {"use": "stub", "ms_per_char": 2}
    async with serve(tmp_path, cfg) as server:
        c = Client(await websockets.connect(f"{server.url}/ws/voice"))
        at, greeting = await c.wait_for(lambda e: e.get("type") == "response" and e["final"])
        assert greeting["text"] == "Hi. For how many people?"
        at, _ = await c.wait_for(lambda e: e.get("status") == "listening", after=at)

        await c.stream(tone(300) + silence(400))
        at, heard = await c.wait_for(lambda e: e.get("type") == "transcript" and e["final"])
        assert heard["text"] == "four people"
        _, slots = await c.wait_for(lambda e: e.get("type") == "slots", after=at)
        assert slots["slots"] == {"size": 4}
        at, reply = await c.wait_for(lambda e: e.get("type") == "response" and e["final"], after=at)
        assert reply["text"] == "4 people. Shall I book it or cancel?"
        at, _ = await c.wait_for(lambda e: e.get("status") == "listening", after=at)

        # the bot may answer and hang up while the trailing silence is still being sent
        with contextlib.suppress(websockets.ConnectionClosedOK):
            await c.stream(tone(300) + silence(400))
        _, intent = await c.wait_for(lambda e: e.get("type") == "intent", after=at)
        assert intent["intent"] == "book" and intent["confidence"] > 0.7
        await c.wait_for(lambda e: e.get("type") == "node" and e["node"] == "booked", after=at)
        _, bye = await c.wait_for(lambda e: e.get("type") == "response" and e["final"], after=at)
        assert bye["text"] == "Booked for 4. Goodbye."
        await c.wait_for(lambda e: e.get("status") == "ended", after=at)
        await c.closed.wait()
        assert c.ws.close_code == 1000


async def test_running_server_picks_up_an_edit_and_refuses_a_broken_one(tmp_path, caplog) -> None:
    flow = tmp_path / "flows" / "main.yaml"
    flow.parent.mkdir()
    version = "nodes:\n  hi:\n    say: Version {n}.\n    listen:\n      - goto: hi\n"
    flow.write_text(version.format(n=1))
    cfg = base_config(dialogue={"mode": "flows"}, flows={"dir": "flows", "start": "main"})
    cfg["security"] = {"sessions": {"create_burst": 1000}}  # a new chat every poll

    async def greeting(http: aiohttp.ClientSession) -> str:
        async with http.post(f"{server.http}/api/chat", json={"text": "hello"}) as resp:
            return (await resp.json())["greeting"]

    async def until(condition, http) -> str:
        """New chats until `condition(greeting)` holds: the library rechecks once a second."""
        async with asyncio.timeout(10):
            while not condition(said := await greeting(http)):  # noqa: ASYNC110 - polls HTTP
                await asyncio.sleep(0.1)
        return said

    def bump(text: str) -> None:
        mtime = flow.stat().st_mtime_ns + 1_000_000_000
        flow.write_text(text)
        os.utime(flow, ns=(mtime, mtime))

    async with serve(tmp_path, cfg) as server, aiohttp.ClientSession() as http:
        assert await greeting(http) == "Version 1."
        bump(version.format(n=2))
        assert await until(lambda said: said != "Version 1.", http) == "Version 2."
        with caplog.at_level(logging.ERROR, logger="voicebot.flows"):
            bump("nodes:\n  hi:\n    say: Broken.\n    next: nowhere\n")
            await until(lambda said: "still serving" in caplog.text, http)
        assert "node 'hi' goes to 'nowhere' which does not exist" in caplog.text
        assert await greeting(http) == "Version 2."


TRANSFER_FLOW = """
nodes:
  hello:
    say: Connecting you now.
    transfer: "+15550100"
"""


async def test_a_transfer_the_browser_cannot_make_is_announced_and_ends_the_call(tmp_path) -> None:
    """A flow that ends in a transfer must not leave a browser caller in silence."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "main.yaml").write_text(textwrap.dedent(TRANSFER_FLOW))
    cfg = base_config(dialogue={"mode": "flows"}, flows={"dir": "flows", "start": "main"})
    cfg["providers"]["tts"] = {"use": "stub", "ms_per_char": 2}
    cfg["pipeline"]["transfer_failed"] = "No one is free."
    async with serve(tmp_path, cfg) as server:
        c = Client(await websockets.connect(f"{server.url}/ws/voice"))
        at, transfer = await c.wait_for(lambda e: e.get("type") == "transfer")
        assert transfer["target"] == "+15550100"
        _, said = await c.wait_for(lambda e: e.get("type") == "response" and e["final"])
        assert said["text"] == "Connecting you now. No one is free."
        _, ended = await c.wait_for(lambda e: e.get("status") == "ended", after=at)
        assert ended["reason"] == "transfer to +15550100 failed"
        await c.closed.wait()
        assert c.ws.close_code == 1000
        assert sum(len(a) for _, a in c.audio) > 0  # the apology was spoken, not only sent
