"""`POST /api/transcribe` is bounded like a call's whole utterance: the Opus bomb over REST is
refused at its decoded cap without freezing the server, and a stalled recogniser is cut at the
STT deadline instead of holding the request forever."""

from __future__ import annotations

import asyncio
import base64
import time

import aiohttp

from tests.attacks import opus_bomb_webm
from voicebot.bench.fake_base import Drip
from voicebot.bench.openai_fake import FakeOpenAI

from .support import base_config, serve, tone


async def test_opus_bomb_over_rest_is_refused_at_its_cap_and_the_loop_keeps_running(tmp_path):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        loop = asyncio.get_running_loop()
        gaps: list[float] = []
        stop = asyncio.Event()

        async def tick() -> None:  # runs on the server's loop: a stall there shows as a gap
            last = loop.time()
            while not stop.is_set():
                await asyncio.sleep(0.005)
                now = loop.time()
                gaps.append(now - last)
                last = now

        ticker = asyncio.ensure_future(tick())
        bomb = opus_bomb_webm(3900)  # ~260 KB that decodes to about an hour of audio
        url = f"{server.http}/api/transcribe?encoding=webm&sample_rate=48000"
        async with http.post(url, data=bomb) as r:
            status, body = r.status, await r.json()
        stop.set()
        await ticker
        assert status == 413 and body["code"] == "audio_too_large", body
        assert "at most 30 s of audio" in body["message"]
        assert max(gaps) < 0.5, f"the event loop stalled {max(gaps) * 1000:.0f} ms"


async def test_audio_within_the_cap_is_still_transcribed(tmp_path):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        pcm = base64.b64encode(tone(1000)).decode()
        async with http.post(f"{server.http}/api/transcribe", json={"audio": pcm}) as r:
            assert r.status == 200 and (await r.json())["text"] == "what time is it"


async def test_stalled_recogniser_is_cut_at_the_stt_deadline(tmp_path):
    async with FakeOpenAI() as oa:
        oa.transcripts.append("never finished")
        oa.script("transcriptions", Drip(every=0.05))
        cfg = base_config()
        cfg["providers"]["stt"] = {
            "use": "openai",
            "api_key": "sk",
            "base_url": oa.url + "/v1",
            "timeout": 30.0,
            "max_retries": 0,
            "speculate": False,
        }
        cfg["pipeline"]["deadlines"] = {"stt": {"first_result_ms": 600, "total_ms": 5000}}
        async with serve(tmp_path, cfg) as server, aiohttp.ClientSession() as http:
            asked = time.monotonic()
            pcm = base64.b64encode(tone(500)).decode()
            async with http.post(f"{server.http}/api/transcribe", json={"audio": pcm}) as r:
                status, body = r.status, await r.json()
            assert status == 502 and body["code"] == "stt_failed", body
            assert "within 0.6 s" in body["message"]
            assert time.monotonic() - asked < 3
