"""Fallback chains over the real cloud providers and their fakes: a failing or slow member hands
over to the next one within the call; when every member fails, the caller gets ProviderError."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.deepgram_fake import FakeDeepgram, speak_audio
from tests.fakes.elevenlabs_fake import FakeElevenLabs
from voicebot.bench.fake_base import Drop, Fail, Stall
from voicebot.bench.openai_fake import FakeOpenAI, tone
from voicebot.providers import AudioFormat, Message, ProviderError, UtteranceEnd
from voicebot.providers.fallback import FallbackLLM, FallbackSTT, FallbackTTS, build_chain
from voicebot_plugins.deepgram import DeepgramSTT, DeepgramTTS
from voicebot_plugins.elevenlabs_providers import ElevenLabsTTS
from voicebot_plugins.openai_providers import OpenAILLM, OpenAISTT

RATE = 16000
SPEECH = tone(RATE // 50, RATE)


@pytest.fixture
async def fakes():
    async with FakeOpenAI() as a, FakeOpenAI() as b, FakeDeepgram() as dg, FakeElevenLabs() as xi:
        yield a, b, dg, xi


async def started(cls, url, **opts):
    provider = cls(cls.Options(api_key="k", base_url=url, **opts))
    await provider.start()
    return provider


def text_of(items):
    return "".join(i for i in items if isinstance(i, str))


async def test_llm_hands_over_on_500(fakes):
    a, b, _, _ = fakes
    a.script("chat", Fail(500))
    chain = build_chain(
        "llm",
        [
            await started(OpenAILLM, a.url + "/v1", max_retries=0),
            await started(OpenAILLM, b.url + "/v1"),
        ],
    )
    assert isinstance(chain, FallbackLLM)
    try:
        items = [i async for i in chain.stream([Message("user", "hi")])]
        # the failed primary waits out its cooldown: the next request goes to b first
        again = [i async for i in chain.stream([Message("user", "hi")])]
    finally:
        await chain.aclose()
    assert text_of(items) == text_of(again) == "Hello there."
    assert (a.count("chat"), b.count("chat")) == (1, 2)


async def test_llm_slow_first_token_hands_over_within_budget(fakes):
    a, b, _, _ = fakes
    a.script("chat", Stall(after_chunks=0))
    primary = await started(OpenAILLM, a.url + "/v1", timeout=30.0)
    chain = FallbackLLM([primary, await started(OpenAILLM, b.url + "/v1")], budget=0.3)
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        items = [i async for i in chain.stream([Message("user", "hi")])]
    finally:
        await chain.aclose()
    assert text_of(items) == "Hello there."
    assert loop.time() - began < 3.0
    await a.wait_disconnect("chat")  # the abandoned request was really closed


async def test_llm_failure_after_first_token_is_not_handed_over(fakes):
    a, b, _, _ = fakes
    a.script("chat", Stall(after_chunks=2))
    primary = await started(OpenAILLM, a.url + "/v1", timeout=0.3, max_retries=0)
    chain = FallbackLLM([primary, await started(OpenAILLM, b.url + "/v1")])
    got = []
    try:
        with pytest.raises(ProviderError, match="timed out"):
            async for item in chain.stream([Message("user", "hi")]):
                got.append(item)
    finally:
        await chain.aclose()
    assert got == ["Hello"] and b.count("chat") == 0


async def test_tts_elevenlabs_down_deepgram_speaks(fakes):
    _, _, dg, xi = fakes
    xi.script("tts", Fail(500), Fail(500))
    chain = build_chain(
        "tts",
        [await started(ElevenLabsTTS, xi.url, max_retries=1), await started(DeepgramTTS, dg.url)],
    )
    assert isinstance(chain, FallbackTTS)
    try:
        chunks = [c async for c in chain.synthesize("Hello.", AudioFormat(8000, "mulaw"))]
    finally:
        await chain.aclose()
    assert b"".join(c.data for c in chunks) == speak_audio("Hello.", "mulaw", 8000)
    assert xi.count("tts") == 2 and dg.count("speak") == 1


async def test_all_failing_chain_raises_provider_error_naming_each(fakes):
    _, _, dg, xi = fakes
    xi.script("tts", Fail(401))
    dg.script("speak", Fail(500))
    chain = FallbackTTS(
        [await started(ElevenLabsTTS, xi.url), await started(DeepgramTTS, dg.url, max_retries=0)]
    )
    try:
        with pytest.raises(ProviderError, match="all 2 tts providers failed") as err:
            _ = [c async for c in chain.synthesize("Hello.", AudioFormat())]
    finally:
        await chain.aclose()
    assert "elevenlabs: elevenlabs: HTTP 401" in str(err.value) and "deepgram" in str(err.value)


async def test_stt_dropped_mid_utterance_replays_the_utterance_to_the_next(fakes):
    a, _, dg, _ = fakes
    dg.script("listen", Drop(after_chunks=8))
    a.transcripts.append("I'd like to book a table")
    chain = build_chain(
        "stt",
        [
            await started(DeepgramSTT, dg.url, max_retries=0, endpointing_ms=300),
            await started(OpenAISTT, a.url + "/v1"),
        ],
    )
    assert isinstance(chain, FallbackSTT) and chain.endpointing
    stream = chain.stream(RATE)
    assert stream.endpointing is True
    try:
        for _ in range(25):
            await stream.send(SPEECH)
        result = await stream.finalize()
        assert stream.endpointing is False  # the runtime's VAD ends turns again
        await stream.aclose()
    finally:
        await chain.aclose()
    assert result.text == "I'd like to book a table"
    assert a.requests[0].body["seconds"] == pytest.approx(0.5)  # all 25 frames, none lost


async def test_stt_all_failing_raises(fakes):
    a, _, dg, _ = fakes
    dg.script("listen", Fail(500))
    a.script("transcriptions", Fail(500))
    chain = FallbackSTT(
        [
            await started(DeepgramSTT, dg.url, max_retries=0),
            await started(OpenAISTT, a.url + "/v1", max_retries=0),
        ]
    )
    stream = chain.stream(RATE)
    events = []
    stream.on_event = events.append
    try:
        for _ in range(5):
            await stream.send(SPEECH)  # deepgram fails here, whisper buffers
        with pytest.raises(ProviderError, match="all 2 stt providers failed"):
            await stream.finalize()
        await stream.aclose()
    finally:
        await chain.aclose()
    assert not any(isinstance(e, UtteranceEnd) for e in events)


async def test_build_chain_single_and_unsupported_roles(fakes):
    a, *_ = fakes
    llm = await started(OpenAILLM, a.url + "/v1")
    try:
        assert build_chain("llm", [llm]) is llm
        with pytest.raises(ValueError, match="only stt, tts, llm"):
            build_chain("vad", [llm, llm])
        with pytest.raises(ValueError):
            build_chain("llm", [])
    finally:
        await llm.aclose()


async def test_stt_replay_keeps_only_the_newest_audio(fakes):
    a, _, dg, _ = fakes
    dg.script("listen", Drop(after_chunks=25))  # cut when the 26th frame arrives
    chain = FallbackSTT(
        [
            await started(DeepgramSTT, dg.url, max_retries=0),
            await started(OpenAISTT, a.url + "/v1"),
        ],
        max_buffer_seconds=0.2,
    )
    stream = chain.stream(RATE)
    try:
        for _ in range(26):
            await stream.send(SPEECH)
        result = await stream.finalize()  # deepgram's loss surfaces here
        await stream.aclose()
    finally:
        await chain.aclose()
    assert result.text == "hello world"
    assert a.requests[0].body["seconds"] == pytest.approx(0.2)
