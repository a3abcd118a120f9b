"""A TTS server that answers 200 with something that is not audio (an HTML sign-in page, a JSON
error) is a provider error, not noise played to the caller: its content type is checked, and so
is the start of the body whatever type it claims."""

from __future__ import annotations

import time

import pytest
import websockets

from tests.fakes.deepgram_fake import FakeDeepgram
from tests.fakes.elevenlabs_fake import FakeElevenLabs
from voicebot.bench.fake_base import Answer
from voicebot.bench.openai_fake import FakeOpenAI
from voicebot.providers import AudioFormat, ProviderError
from voicebot_plugins.deepgram import DeepgramTTS
from voicebot_plugins.elevenlabs_providers import ElevenLabsTTS
from voicebot_plugins.openai_providers import OpenAITTS

from .support import Client, base_config, serve

HTML = Answer()
JSON_AS_AUDIO = Answer(b'{"error": {"message": "quota exceeded", "code": 200}}', "audio/mpeg")
FAKES = {
    "openai": (FakeOpenAI, OpenAITTS, "speech", "/v1"),
    "elevenlabs": (FakeElevenLabs, ElevenLabsTTS, "tts", ""),
    "deepgram": (FakeDeepgram, DeepgramTTS, "speak", ""),
}


@pytest.mark.parametrize("name", FAKES)
@pytest.mark.parametrize(
    ("answer", "why"), [(HTML, "answered 'text/html', not audio"), (JSON_AS_AUDIO, "sent text")]
)
async def test_a_200_that_is_not_audio_is_a_provider_error(name, answer, why):
    fake_cls, tts_cls, route, path = FAKES[name]
    async with fake_cls() as fake:
        fake.script(route, answer)
        tts = tts_cls(tts_cls.Options(api_key="k", base_url=fake.url + path, max_retries=0))
        await tts.start()
        try:
            with pytest.raises(ProviderError, match=why):
                _ = [c async for c in tts.synthesize("Hello there.", AudioFormat())]
            real = [c async for c in tts.synthesize("Hello there.", AudioFormat())]
        finally:
            await tts.aclose()
    assert sum(len(c.data) for c in real) > 3200  # the next, real answer still plays


def cfg_with_tts(tts) -> dict:
    cfg = base_config()
    cfg["providers"] = {**cfg["providers"], "tts": tts}
    return cfg


async def test_caller_hears_no_noise_and_gets_an_error(tmp_path):
    async with FakeOpenAI() as oa:
        oa.script("speech", HTML)  # the greeting
        tts = {"use": "openai", "api_key": "k", "base_url": oa.url + "/v1", "max_retries": 0}
        async with serve(tmp_path, cfg_with_tts(tts)) as server:
            c = Client(await websockets.connect(f"{server.url}/ws/voice"), 16000)
            _, err = await c.wait_for(lambda e: e.get("type") == "error")
            assert err["code"] == "tts_failed" and "not audio" in err["message"]
            await c.ws.send('{"type": "text", "text": "hello"}')
            t_said, _ = await c.wait_for(lambda e: e.get("type") == "response" and e["final"])
            await c.wait_audio(3200, after=t_said)  # the next reply is real speech
            first_audio = c.audio[0][0]
            await c.close()
    assert first_audio >= t_said  # nothing was played for the greeting


async def test_garbage_hands_over_to_the_fallback(tmp_path):
    async with FakeOpenAI() as a, FakeOpenAI() as b:
        a.script("speech", HTML)
        tts = [
            {"use": "openai", "api_key": "k", "base_url": f.url + "/v1", "max_retries": 0}
            for f in (a, b)
        ]
        async with serve(tmp_path, cfg_with_tts(tts)) as server:
            began = time.monotonic()
            c = Client(await websockets.connect(f"{server.url}/ws/voice"), 16000)
            await c.wait_audio(1600)  # the greeting, from b
            assert c.audio[0][0] - began < 3.0
            assert not [e for _, e in c.events if e.get("type") == "error"]
            await c.close()
    assert (a.count("speech"), b.count("speech")) == (1, 1)
