"""The browser transport end to end: real server on loopback, real websockets client."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
import websockets

from .support import Client, base_config, serve, silence, tone


async def connect(server, query: str = "", rate: int = 16000) -> Client:
    ws = await websockets.connect(f"{server.url}/ws/voice{query}")
    return Client(ws, rate)


@pytest.mark.parametrize("rate", [16000, 24000])
async def test_speech_turn_at_client_rate(tmp_path, rate):
    async with serve(tmp_path, base_config()) as server:
        c = await connect(server, f"?sample_rate={rate}", rate)
        _, first = await c.wait_for(lambda e: e.get("status") == "connected")
        assert first["audio_config"]["sample_rate"] == rate and first["call_id"]
        await c.wait_for(lambda e: e.get("type") == "response" and e["final"])  # greeting
        await c.stream(silence(200, rate) + tone(400, rate) + silence(400, rate))
        _, tr = await c.wait_for(lambda e: e.get("type") == "transcript" and e["final"])
        assert tr["text"] == "what time is it" and tr["is_final"] is True
        t_resp, resp = await c.wait_for(
            lambda e: e.get("type") == "response" and e["final"] and "what time" in e["text"]
        )
        assert resp["text"] == "You said what time is it. Anything else?"
        _, m = await c.wait_for(lambda e: e.get("type") == "metrics" and e["turn"] == 1)
        assert m["voice_to_voice_ms"] is not None and m["voice_to_voice_ms"] > 0
        # audio at the client's own rate: 20 ms frames, non-silent
        await c.wait_audio(rate * 2 // 2, after=t_resp - 1)
        frames = [a for _, a in c.audio]
        assert {len(f) for f in frames[:-1]} == {rate * 20 // 1000 * 2}
        pcm = np.frombuffer(b"".join(frames), dtype="<i2")
        assert np.abs(pcm).max() > 3000
        # the reply tone is 440 Hz at the client's rate
        seg = pcm[-rate // 2 :].astype(float)
        freqs = np.fft.rfftfreq(len(seg), 1 / rate)
        assert abs(freqs[np.argmax(np.abs(np.fft.rfft(seg)))] - 440) < 5
        await c.close()
        await _no_calls_left(server)


async def _no_calls_left(server, timeout: float = 2.0) -> None:
    """Calls end asynchronously after a close: wait for the runtime to say none is left."""
    await asyncio.wait_for(server.runtime.no_calls.wait(), timeout)
    assert not server.runtime.calls
    tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("call-")]
    assert tasks == [], tasks


async def test_text_input_without_audio(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        c = await connect(server)
        await c.ws.send(json.dumps({"type": "text", "content": "book a table"}))
        _, resp = await c.wait_for(
            lambda e: e.get("type") == "response" and e["final"] and "book" in e["text"]
        )
        assert resp["text"].startswith("You said book a table")
        await c.close()
        await _no_calls_left(server)


async def test_push_to_talk_end_turn(tmp_path):
    cfg = base_config()
    cfg["pipeline"]["vad_hangover_ms"] = 3000  # only end_turn can end this turn quickly
    async with serve(tmp_path, cfg) as server:
        c = await connect(server)
        await c.wait_for(lambda e: e.get("type") == "response" and e["final"])
        await c.stream(tone(400))
        sent = time.monotonic()
        await c.ws.send(json.dumps({"type": "control", "command": "end_audio"}))
        at, _ = await c.wait_for(lambda e: e.get("type") == "transcript" and e["final"])
        assert at - sent < 1.0
        await c.close()


async def test_barge_in_stops_playback_and_next_turn_is_answered(tmp_path):
    cfg = base_config()
    cfg["providers"]["tts"] = {"use": "stub", "ms_per_char": 150}  # a long greeting
    cfg["dialogue"]["greeting"] = "Welcome to the voice bot test line, this is a long greeting."
    async with serve(tmp_path, cfg) as server:
        c = await connect(server)
        await c.wait_for(lambda e: e.get("status") == "speaking")
        await c.wait_audio(32000)  # ~1 s of the greeting has arrived
        start = time.monotonic()
        speech = asyncio.ensure_future(c.stream(tone(500) + silence(400)))
        at, _ = await c.wait_for(lambda e: e.get("status") == "interrupted", after=start)
        # detection needs barge_in.min_speech_ms (60 ms) of speech; stopping must follow at once
        assert at - start < 0.060 + 0.100, at - start
        await asyncio.sleep(0.3)  # let any frame in flight arrive, then check nothing more came
        late = [a for t, a in c.audio if t > at + 0.05]
        assert late == [], f"{len(late)} frames after interruption"
        await speech
        await c.wait_for(
            lambda e: e.get("type") == "response" and e["final"] and "what time" in e["text"],
            after=start,
        )
        await c.wait_audio(3200, after=at + 0.05)  # the next turn is answered with audio
        await c.close()


def test_reply_pieces_join_like_speech():
    from voicebot.dialogue.sentences import join_pieces

    # whole prompts get a space, even without final punctuation; LLM deltas are kept as given
    assert join_pieces(["Welcome to Luigi's", "How can I help?"]) == (
        "Welcome to Luigi's How can I help?"
    )
    assert join_pieces([("Any", True), ("thing", True), (" else?", True)]) == "Anything else?"
    assert join_pieces(["Hi.", ("You", True), (" said", True)]) == "Hi. You said"


async def test_speaking_is_announced_before_the_audio_it_announces(tmp_path):
    """A client may start its player on `speaking`: no reply audio may come before it."""
    async with serve(tmp_path, base_config()) as server:
        c = Client(await websockets.connect(f"{server.url}/ws/voice"))
        at, _ = await c.wait_for(lambda e: e.get("status") == "speaking")
        await c.wait_audio(3200, after=at)
        first_audio = min(t for t, _ in c.audio)
        assert first_audio >= at, "audio arrived before the speaking status"
        await c.ws.close()
