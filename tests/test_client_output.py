"""Replies in the container the client plays (`?output=`, or a `config` message): each `wav`
message is a whole file, `mp3` and `webm` are one continuous stream; all decode (with PyAV, as a
browser's decoder would) to the bot's speech at the announced rate. And a `config` that changes
the rate mid-greeting re-rates the greeting already queued."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import websockets

from voicebot.audio.encoders import default_output

from .client_audio import decode_file, dominant_hz
from .support import Client, base_config, serve

GREETING = "Hello there, and welcome to the test line of the voice bot."  # ~2.4 s of stub tone


def config(**tts) -> dict:
    cfg = base_config()
    cfg["providers"]["tts"] = {"use": "stub", "ms_per_char": 40, **tts}
    cfg["dialogue"]["greeting"] = GREETING
    return cfg


async def greeting_audio(c: Client) -> list[bytes]:
    """Every binary message of the greeting (it ends when the bot listens)."""
    t, _ = await c.wait_for(lambda e: e.get("status") == "speaking")
    await c.wait_for(lambda e: e.get("status") == "listening", after=t, timeout=15)
    return [a for _, a in c.audio]


@pytest.mark.parametrize(
    ("output", "rate", "mime"),
    [("mp3", 16000, "audio/mpeg"), ("mp3", 24000, "audio/mpeg"), ("webm", 16000, "audio/webm")],
)
async def test_streamed_outputs_decode_as_one_stream(tmp_path, output, rate, mime):
    async with serve(tmp_path, config()) as server:
        ws = await websockets.connect(f"{server.url}/ws/voice?output={output}&sample_rate={rate}")
        c = Client(ws, rate)
        try:
            _, first = await c.wait_for(lambda e: e.get("status") == "connected")
            assert first["audio_config"]["output"] == output
            assert first["audio_config"]["mime_type"].startswith(mime)
            assert first["audio_config"]["sample_rate"] == rate
            data = b"".join(await greeting_audio(c))
        finally:
            await c.close()
    x, got = decode_file(data)
    assert got == (48000 if output == "webm" else rate)  # Opus decodes at 48 kHz
    assert len(x) / got > 0.9 * len(GREETING) * 0.040
    assert abs(dominant_hz(x, got) - 440) < 5


async def test_wav_output_is_one_playable_file_per_message(tmp_path):
    async with serve(tmp_path, config()) as server:
        ws = await websockets.connect(f"{server.url}/ws/voice?output=wav")
        c = Client(ws)
        try:
            messages = await greeting_audio(c)
        finally:
            await c.close()
    assert messages and all(m.startswith(b"RIFF") for m in messages)
    total = 0.0
    for m in messages:  # each `new Audio(blob)` plays on its own
        x, got = decode_file(m)
        assert got == 16000 and abs(dominant_hz(x, got) - 440) < 5
        total += len(x) / got
    assert total > 0.9 * len(GREETING) * 0.040


async def test_config_message_selects_the_output(tmp_path):
    async with serve(tmp_path, config()) as server:
        ws = await websockets.connect(f"{server.url}/ws/voice")
        c = Client(ws)
        try:
            await c.wait_for(lambda e: e.get("status") == "connected")
            await ws.send(json.dumps({"type": "config", "output": "wav"}))
            t, ev = await c.wait_for(lambda e: "audio_config" in e and e["status"] != "connected")
            assert ev["audio_config"]["output"] == "wav"
            await ws.send(json.dumps({"type": "config", "output": "flac"}))
            _, err = await c.wait_for(lambda e: e.get("type") == "error")
            assert err["code"] == "invalid_config"
            await c.wait_for(lambda e: e.get("status") == "listening", after=t, timeout=15)
            after = [a for at, a in c.audio if at > t]
            assert after and after[-1].startswith(b"RIFF")
        finally:
            await c.close()


@pytest.mark.parametrize("query", ["output=ogg", "output=mp3&sample_rate=9000"])
async def test_an_output_that_cannot_be_made_is_refused(tmp_path, query):
    async with serve(tmp_path, config()) as server:
        ws = await websockets.connect(f"{server.url}/ws/voice?{query}")
        c = Client(ws)
        await c.closed.wait()
        assert ws.close_code == 1003
        assert c.events[0][1]["code"] == "invalid_config"


def test_the_default_output_is_browser_output_when_configured():
    assert default_output(SimpleNamespace()) == "pcm"
    assert default_output(SimpleNamespace(browser=SimpleNamespace(output="mp3"))) == "mp3"
    assert default_output(SimpleNamespace(browser={"output": "wav"})) == "wav"


async def test_a_rate_change_mid_greeting_re_rates_the_greeting(tmp_path):
    """The greeting is synthesised (and queued) at 16 kHz before a 24 kHz client's `config`
    arrives; what is sent after the config's reply must be 24 kHz, the same 440 Hz voice."""
    async with serve(tmp_path, config()) as server:
        ws = await websockets.connect(f"{server.url}/ws/voice")
        c = Client(ws)
        try:
            await c.wait_audio(640 * 5)  # the greeting is playing
            await ws.send(json.dumps({"type": "config", "sample_rate": 24000}))
            t, ev = await c.wait_for(lambda e: "audio_config" in e and e["status"] != "connected")
            assert ev["audio_config"]["sample_rate"] == 24000
            await c.wait_for(lambda e: e.get("status") == "listening", after=t, timeout=15)
            after = [a for at, a in c.audio if at > t]
        finally:
            await c.close()
    assert sum(map(len, after)) > 24000 * 2 * 0.5, "the rest of the greeting was sent"
    assert {len(a) % 960 for a in after} == {0}, sorted({len(a) for a in after})
    x = np.frombuffer(b"".join(after), "<i2").astype(float)
    assert abs(dominant_hz(x, 24000) - 440) < 5


async def test_a_wav_file_waits_for_the_previous_one_to_finish(tmp_path):
    """`new Audio(blob).play()` on every message: a short sentence sent as soon as it is ready
    would play over the end of the long one before it."""
    cfg = config()
    cfg["dialogue"]["greeting"] = "This first sentence of the greeting is rather long. Short."
    async with serve(tmp_path, cfg) as server:
        ws = await websockets.connect(f"{server.url}/ws/voice?output=wav")
        c = Client(ws)
        try:
            await greeting_audio(c)
            (t1, first), (t2, _) = c.audio[:2]
        finally:
            await c.close()
    first_s = decode_file(first)[0].size / 16000
    assert t2 - t1 >= first_s - 0.05, (t2 - t1, first_s)
