"""Clients written for other servers, end to end on the embedded stack (Whisper hears, Piper
speaks), each sending recorded human speech the way it does and reading every field it reads:

- a JSON-only client (`browser.dialect: envelope`) sending base64 WAV at 44.1 kHz and 48 kHz
  (stereo, over 256 KiB: once closed with 1009), and typed text;
- a 24 kHz client that announces nothing, against `browser.sample_rate: 24000`.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import wave
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
import websockets

from benchmarks.wer import wer
from voicebot.audio import Resampler

from .support import Client, Server, serve, silence

on_module_loop = pytest.mark.asyncio(loop_scope="module")

SPEECH = Path(__file__).parent.parent / "benchmarks" / "data" / "speech" / "goforward.wav"
SAID = "go forward ten meters"
STACK = {
    "pipeline": {"vad_hangover_ms": 300},
    "providers": {
        "vad": {"use": "silero"},
        "stt": {"use": "whisper"},
        # Piper samples its prosody afresh on every synthesis: without that noise each run
        # hears the same rendition, so what Whisper makes of the reply does not depend on luck
        "tts": {"use": "piper", "noise_scale": 0.0, "noise_w_scale": 0.0},
    },
    "dialogue": {"mode": "echo", "greeting": "Hi."},
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory) -> AsyncIterator[Server]:
    config = {**STACK, "browser": {"dialect": "envelope"}}
    async with serve(tmp_path_factory.mktemp("envelope"), config) as srv:
        yield srv


def speech_at(rate: int) -> bytes:
    """The recording (16 kHz) with some silence around it, resampled to `rate`."""
    with wave.open(str(SPEECH)) as w:
        pcm = silence(300) + w.readframes(w.getnframes()) + silence(700)
    if rate == 16000:
        return pcm
    r = Resampler(16000, rate)
    return r.process(pcm) + r.flush()


def wav_file(pcm: bytes, rate: int, channels: int) -> bytes:
    samples = np.frombuffer(pcm, "<i2")
    if channels == 2:
        samples = np.repeat(samples, 2)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return out.getvalue()


class JsonOnlyClient:
    """As that client's page does: `JSON.parse` on every message (a binary frame would throw)."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.messages: asyncio.Queue[dict] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                assert isinstance(raw, str), "a binary frame reached a JSON-only client"
                await self.messages.put(json.loads(raw))
        except websockets.ConnectionClosed:
            pass

    async def next(self, kinds: tuple[str, ...], timeout: float = 30) -> dict:
        while True:
            msg = await asyncio.wait_for(self.messages.get(), timeout)
            if msg["type"] in kinds:
                return msg

    async def close(self) -> None:
        await self.ws.close()
        await self._reader  # re-raises if a binary frame arrived


def assert_envelope(msg: dict, session_id: str) -> None:
    assert set(msg) == {"type", "content", "session_id", "timestamp", "metadata"}
    assert msg["session_id"] == session_id
    datetime.fromisoformat(msg["timestamp"])


async def heard(server: Server, b64_wav: str) -> tuple[str, int]:
    """What Whisper hears in a reply's audio, and the WAV's rate."""
    with wave.open(io.BytesIO(base64.b64decode(b64_wav))) as w:
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
    if rate != 16000:
        r = Resampler(rate, 16000)
        pcm = r.process(pcm) + r.flush()
    return (await server.runtime.providers["stt"].transcribe(pcm, 16000)).text, rate


@on_module_loop
@pytest.mark.parametrize(("rate", "channels"), [(44100, 1), (48000, 2)])
async def test_json_only_client_with_base64_wav(server: Server, rate: int, channels: int):
    c = JsonOnlyClient(await websockets.connect(f"{server.url}/ws/voice"))
    try:
        hello = await c.next(("system",))
        sid = hello["content"]["session_id"]
        assert hello["content"]["message"] == "Connected" and sid
        assert_envelope(hello, sid)
        greeting = await c.next(("response", "audio_response"))
        assert greeting["content"]["text"] == "Hi."
        await c.ws.send(json.dumps({"type": "ping"}))
        pong = await c.next(("status",))
        assert pong["content"] == {"status": "pong"}
        assert_envelope(pong, sid)

        utterance = base64.b64encode(wav_file(speech_at(rate), rate, channels)).decode()
        if channels == 2:
            assert len(utterance) > 256 * 1024  # once closed with 1009
        await c.ws.send(json.dumps({"type": "audio", "content": utterance}))
        answer = await c.next(("response", "audio_response"))
        assert_envelope(answer, sid)
        assert answer["type"] == "audio_response"
        content = answer["content"]
        assert wer(SAID, content["transcription"]) == 0, content
        assert wer(f"you said {SAID}", content["text"]) == 0, content
        assert isinstance(content["intent"], str) and isinstance(content["confidence"], float)
        spoken, reply_rate = await heard(server, content["audio"])
        assert reply_rate == 16000  # the connection's rate (it announced none)
        assert wer(f"you said {SAID}", spoken) <= 0.2, spoken

        await c.ws.send(json.dumps({"type": "text", "content": "hello there"}))
        typed = await c.next(("response", "audio_response"))
        assert typed["type"] == "response"
        assert typed["content"] == {
            "text": "You said: hello there.",
            "intent": "unknown",
            "confidence": 0.0,
        }
    finally:
        await c.close()


@on_module_loop
async def test_24khz_client_that_announces_nothing(tmp_path):
    """Binary PCM16 at 24 kHz in 80 ms frames, no `sample_rate` in the URL: heard right and
    answered at 24 kHz when the server is configured for it."""
    config = {**STACK, "browser": {"sample_rate": 24000}}
    async with serve(tmp_path, config) as srv:
        ws = await websockets.connect(f"{srv.url}/ws/voice", max_size=None)
        c = Client(ws, 24000)
        try:
            _, hello = await c.wait_for(lambda e: e.get("status") == "connected")
            assert hello["audio_config"]["sample_rate"] == 24000
            await c.wait_for(lambda e: e.get("type") == "response")  # greeting
            await c.stream(speech_at(24000), frame_ms=80)
            _, transcript = await c.wait_for(
                lambda e: e.get("type") == "transcript" and e["final"], 20
            )
            assert wer(SAID, transcript["text"]) == 0, transcript
            t_answer, answer = await c.wait_for(
                lambda e: e.get("type") == "response" and "said" in e["text"], 20
            )
            assert wer(f"you said {SAID}", answer["text"]) == 0, answer
            await c.wait_for(lambda e: e.get("status") == "listening", 20, after=t_answer)
            reply = b"".join(a for t, a in c.audio if t >= t_answer - 1)
            r = Resampler(24000, 16000)
            pcm = r.process(reply) + r.flush()
            spoken = await srv.runtime.providers["stt"].transcribe(pcm, 16000)
            assert wer(f"you said {SAID}", spoken.text) <= 0.2, spoken.text
        finally:
            await c.close()
