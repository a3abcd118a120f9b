"""No lost words at the end of a call: speech still open (or still being transcribed) when the
caller sends `stop` or hangs up reaches the transcript record (the `transcript` hook, history)."""

import json

import websockets

from .support import Client, base_config, serve, tone
from .twilio_e2e_support import record


async def test_speech_cut_short_by_stop_reaches_the_transcript_record(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        rec = record(server)
        c = Client(await websockets.connect(f"{server.url}/ws/voice"))
        at, _ = await c.wait_for(lambda e: e.get("type") == "response" and e["final"])
        await c.wait_for(lambda e: e.get("status") == "listening", after=at)
        await c.stream(tone(500))  # still talking: no silence has ended the turn
        await c.ws.send(json.dumps({"type": "stop"}))
        await rec.wait(lambda: rec.ended)
        assert rec.transcripts == ["what time is it"]
        await c.close()


async def test_speech_cut_short_by_a_hang_up_reaches_the_transcript_record(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        rec = record(server)
        c = Client(await websockets.connect(f"{server.url}/ws/voice"))
        at, _ = await c.wait_for(lambda e: e.get("type") == "response" and e["final"])
        await c.wait_for(lambda e: e.get("status") == "listening", after=at)
        await c.stream(tone(500))
        await c.close()  # the socket closes mid-sentence
        await rec.wait(lambda: rec.ended)
        assert rec.transcripts == ["what time is it"]
