"""What the browser page needs from /ws/voice: typing counts as caller activity for the no-input
prompt, and an `interrupted` status says how much of the bot's line the caller heard."""

from __future__ import annotations

import asyncio
import json
import time

import websockets

from .support import Client, base_config, serve, silence, tone

TIMEOUT_S = 0.6


def nag(e: dict) -> bool:
    return e.get("type") == "response" and e["text"] == "Are you still there?"


async def test_typing_holds_off_the_noinput_prompt(tmp_path):
    dialogue = {"mode": "echo", "greeting": "Hi.", "noinput_timeout_ms": int(TIMEOUT_S * 1000)}
    async with serve(tmp_path, base_config(dialogue=dialogue)) as server:
        c = Client(await websockets.connect(f"{server.url}/ws/voice"))
        t_speak, _ = await c.wait_for(lambda e: e.get("status") == "speaking")
        await c.wait_for(lambda e: e.get("status") == "listening", after=t_speak)  # timer runs
        last = time.monotonic()
        stop = last + 3 * TIMEOUT_S
        while time.monotonic() < stop:  # a slow typist: a key press every 150 ms
            await c.ws.send(json.dumps({"type": "typing"}))
            last = time.monotonic()
            await asyncio.sleep(0.15)  # pacing like a person typing, not waiting for luck
        t, _ = await c.wait_for(nag)
        # not while they typed, and then a whole timeout after their last key
        assert t - last >= TIMEOUT_S, t - last
        # the typed message itself is an answer, and the timer runs again after the reply
        await c.ws.send(json.dumps({"type": "text", "text": "hello"}))
        t_sent = time.monotonic()
        await c.wait_for(
            lambda e: e.get("type") == "response" and e["text"] == "You said: hello.",
            after=t_sent,
        )
        t2, _ = await c.wait_for(nag, after=t_sent)
        assert t2 - t_sent >= TIMEOUT_S
        await c.close()


async def test_typing_when_no_prompt_is_due_changes_nothing(tmp_path):
    """While the bot speaks no timer runs, and typing must not start one."""
    cfg = base_config(dialogue={"mode": "echo", "greeting": "Welcome to the test line, hello."})
    cfg["dialogue"]["noinput_timeout_ms"] = 300
    cfg["providers"]["tts"] = {"use": "stub", "ms_per_char": 60}  # ~2 s of greeting
    async with serve(tmp_path, cfg) as server:
        c = Client(await websockets.connect(f"{server.url}/ws/voice"))
        t_speak, _ = await c.wait_for(lambda e: e.get("status") == "speaking")
        await c.ws.send(json.dumps({"type": "typing"}))
        t_listen, _ = await c.wait_for(lambda e: e.get("status") == "listening", after=t_speak)
        t, _ = await c.wait_for(nag)
        assert t_listen - t_speak > 1.0 and t - t_listen >= 0.3
        await c.close()


async def test_interrupted_status_says_what_the_caller_heard(tmp_path):
    cfg = base_config()
    cfg["providers"]["tts"] = {"use": "stub", "ms_per_char": 100}
    greeting = "Welcome to the test line. This is a long greeting. It goes on for a while."
    cfg["dialogue"]["greeting"] = greeting
    async with serve(tmp_path, cfg) as server:
        c = Client(await websockets.connect(f"{server.url}/ws/voice"))
        await c.wait_for(lambda e: e.get("status") == "speaking")
        await c.wait_audio(32000 * 3)  # ~3 s: the first sentence has been played
        start = time.monotonic()
        speech = asyncio.ensure_future(c.stream(tone(500) + silence(400)))
        _, ev = await c.wait_for(lambda e: e.get("status") == "interrupted", after=start)
        # the sentence playing when the caller spoke, and how much of it reached them: the
        # first sentence had been heard whole, so it is not part of what was cut off
        said, heard = ev["said"], ev["heard"]
        assert said and greeting.index(said) > 0 and said.startswith(heard), ev
        await speech
        await c.close()
