"""The ElevenLabs plugin, through the real `elevenlabs` SDK, against the wire-compatible fake."""

from __future__ import annotations

import pytest

from tests.fakes.elevenlabs_fake import FakeElevenLabs, eleven_audio
from voicebot.bench.fake_base import Fail, Stall
from voicebot.providers import AudioFormat, ProviderError, Usage
from voicebot.records.usage import collect_usage
from voicebot_plugins.elevenlabs_providers import ElevenLabsTTS


@pytest.fixture
async def fake():
    async with FakeElevenLabs() as server:
        yield server


async def started(fake, **opts):
    tts = ElevenLabsTTS(ElevenLabsTTS.Options(api_key="xi-test", base_url=fake.url, **opts))
    await tts.start()
    return tts


@pytest.mark.parametrize(
    ("preferred", "output_format", "rate", "encoding"),
    [
        (AudioFormat(8000, "mulaw"), "ulaw_8000", 8000, "mulaw"),
        (AudioFormat(16000), "pcm_16000", 16000, "pcm_s16le"),
        (AudioFormat(24000), "pcm_24000", 24000, "pcm_s16le"),
        (AudioFormat(11025), "pcm_16000", 16000, "pcm_s16le"),
    ],
)
async def test_streams_the_format_the_call_plays(fake, preferred, output_format, rate, encoding):
    tts = await started(fake, voice_id="voice123", stability=0.4, similarity_boost=0.8, speed=1.1)
    text = "Your order has shipped."
    usage = []
    try:
        with collect_usage(usage.append):
            chunks = [c async for c in tts.synthesize(text, preferred)]
    finally:
        await tts.aclose()
    assert {(c.sample_rate, c.encoding) for c in chunks} == {(rate, encoding)}
    assert b"".join(c.data for c in chunks) == eleven_audio(text, output_format)
    if encoding == "pcm_s16le":
        assert all(len(c.data) % 2 == 0 for c in chunks)
    req = fake.requests[0]
    assert req.path == "/v1/text-to-speech/voice123/stream"
    assert req.query["output_format"] == output_format
    assert req.headers["xi-api-key"] == "xi-test"
    assert req.body["model_id"] == "eleven_flash_v2_5"
    assert req.body["voice_settings"] == {"stability": 0.4, "similarity_boost": 0.8, "speed": 1.1}
    assert usage == [Usage("elevenlabs", characters=len(text))]


async def test_429_then_success(fake):
    fake.script("tts", Fail(429, {"retry-after": "0.01"}))
    tts = await started(fake)
    try:
        chunks = [c async for c in tts.synthesize("Hi.", AudioFormat())]
    finally:
        await tts.aclose()
    assert b"".join(c.data for c in chunks) == eleven_audio("Hi.", "pcm_16000")
    assert fake.count("tts") == 2


async def test_500_exhausts_retries_and_a_long_retry_after_is_not_waited_for(fake):
    fake.script("tts", Fail(500), Fail(503, {"retry-after": "60"}))
    tts = await started(fake, max_retries=3)
    try:
        with pytest.raises(ProviderError, match="503") as err:
            _ = [c async for c in tts.synthesize("Hi.", AudioFormat())]
    finally:
        await tts.aclose()
    assert err.value.retryable and fake.count("tts") == 2


async def test_stalled_stream_times_out(fake):
    fake.script("tts", Stall(after_chunks=0))
    tts = await started(fake, timeout=0.3, max_retries=0)
    try:
        with pytest.raises(ProviderError, match="timed out"):
            _ = [c async for c in tts.synthesize("Hello.", AudioFormat())]
    finally:
        await tts.aclose()
    await fake.wait_disconnect("tts")


async def test_barge_in_closes_the_upstream_stream(fake):
    fake.audio_pace = 0.005
    tts = await started(fake)
    try:
        stream = tts.synthesize("Let me tell you about our opening hours. " * 10, AudioFormat())
        await anext(stream)
        await stream.aclose()
        await fake.wait_disconnect("tts")
    finally:
        await tts.aclose()
    assert "tts" not in fake.completed


async def test_missing_key_names_the_variable():
    with pytest.raises(ProviderError, match="ELEVENLABS_API_KEY"):
        await ElevenLabsTTS(ElevenLabsTTS.Options()).start()
