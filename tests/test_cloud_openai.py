"""The OpenAI plugin, through the real `openai` SDK, against the wire-compatible fake."""

from __future__ import annotations

import asyncio

import pytest

from voicebot.bench.fake_base import Fail, Stall
from voicebot.bench.openai_fake import PCM_RATE, ChatReply, FakeOpenAI, speech_pcm
from voicebot.providers import AudioFormat, Message, ProviderError, ToolCall, ToolSpec, Usage
from voicebot.records.usage import collect_usage
from voicebot_plugins.openai_providers import OpenAILLM, OpenAISTT, OpenAITTS


@pytest.fixture
async def fake():
    async with FakeOpenAI() as server:
        yield server


async def started(cls, fake, **opts):
    provider = cls(cls.Options(api_key="sk-test", base_url=fake.url + "/v1", **opts))
    await provider.start()
    return provider


async def collect(agen):
    return [item async for item in agen]


async def test_llm_streams_text_then_usage(fake):
    llm = await started(OpenAILLM, fake)
    try:
        items = await collect(llm.stream([Message("user", "hi")]))
    finally:
        await llm.aclose()
    assert items == ["Hello", " there", ".", Usage("openai", input_tokens=17, output_tokens=5)]
    sent = fake.requests[0].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert fake.requests[0].headers["Authorization"] == "Bearer sk-test"


async def test_llm_assembles_tool_calls_from_deltas(fake):
    fake.chat_replies.append(
        ChatReply(
            text_parts=["Let me check."],
            tool_calls=[
                ("call_1", "get_weather", {"city": "Zürich", "unit": "celsius"}),
                ("call_2", "book_table", {"people": 4, "time": "19:30"}),
            ],
        )
    )
    llm = await started(OpenAILLM, fake)
    tool = ToolSpec("get_weather", "Weather for a city", {"type": "object", "properties": {}})
    history = [
        Message("system", "be brief"),
        Message("assistant", "", tool_calls=[ToolCall("c0", "lookup", {"q": 1})]),
        Message("tool", '{"ok": true}', tool_call_id="c0"),
        Message("user", "weather?"),
    ]
    try:
        items = await collect(llm.stream(history, [tool]))
    finally:
        await llm.aclose()
    assert items[0] == "Let me check."
    assert items[1:3] == [
        ToolCall("call_1", "get_weather", {"city": "Zürich", "unit": "celsius"}),
        ToolCall("call_2", "book_table", {"people": 4, "time": "19:30"}),
    ]
    assert isinstance(items[3], Usage)
    sent = fake.requests[0].body
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["messages"][1]["tool_calls"][0]["function"] == {
        "name": "lookup",
        "arguments": '{"q": 1}',
    }
    assert sent["messages"][2] == {"role": "tool", "content": '{"ok": true}', "tool_call_id": "c0"}


async def test_llm_retries_429_then_succeeds(fake):
    fake.script("chat", Fail(429, {"retry-after-ms": "10"}))
    llm = await started(OpenAILLM, fake, max_retries=2)
    try:
        items = await collect(llm.stream([Message("user", "hi")]))
    finally:
        await llm.aclose()
    assert "".join(i for i in items if isinstance(i, str)) == "Hello there."
    assert fake.count("chat") == 2


async def test_llm_500_after_retries_is_a_retryable_provider_error(fake):
    fake.script("chat", Fail(500, {"retry-after-ms": "5"}), Fail(500, {"retry-after-ms": "5"}))
    llm = await started(OpenAILLM, fake, max_retries=1)
    try:
        with pytest.raises(ProviderError) as err:
            await collect(llm.stream([Message("user", "hi")]))
    finally:
        await llm.aclose()
    assert err.value.retryable and "500" in str(err.value)
    assert fake.count("chat") == 2


async def test_llm_401_is_not_retried_and_says_what_to_check(fake):
    fake.script("chat", Fail(401))
    llm = await started(OpenAILLM, fake, max_retries=3)
    try:
        with pytest.raises(ProviderError, match="API key") as err:
            await collect(llm.stream([Message("user", "hi")]))
    finally:
        await llm.aclose()
    assert not err.value.retryable and fake.count("chat") == 1


async def test_llm_stalled_stream_hits_the_timeout(fake):
    fake.script("chat", Stall(after_chunks=2))
    llm = await started(OpenAILLM, fake, timeout=0.3, max_retries=0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    received = []
    try:
        with pytest.raises(ProviderError, match="timed out") as err:
            async for item in llm.stream([Message("user", "hi")]):
                received.append(item)
    finally:
        await llm.aclose()
    assert received == ["Hello"]  # the stream did start; then it went quiet
    assert err.value.retryable
    assert 0.25 < loop.time() - began < 3.0
    await fake.wait_disconnect("chat")


async def test_missing_api_key_is_a_clear_error_unless_base_url_is_set():
    with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
        await OpenAILLM(OpenAILLM.Options()).start()
    local = OpenAILLM(OpenAILLM.Options(base_url="http://127.0.0.1:9/v1"))
    await local.start()  # Ollama, vLLM, ... need no key
    await local.aclose()


async def test_stt_uploads_an_in_memory_wav_and_reports_audio_seconds(fake):
    fake.transcripts.append(" Book a table for two. ")
    stt = await started(OpenAISTT, fake, model="gpt-4o-transcribe", language="en")
    usage = []
    try:
        with collect_usage(usage.append):
            stream = stt.stream(16000, language="de-CH")
            await stream.send(bytes(16000 * 2))  # one second
            await stream.send(bytes(8000 * 2))
            result = await stream.finalize()
    finally:
        await stt.aclose()
    assert result.text == "Book a table for two." and result.final
    sent = fake.requests[0].body
    assert sent["model"] == "gpt-4o-transcribe" and sent["language"] == "de"
    assert sent["rate"] == 16000 and sent["channels"] == 1 and sent["seconds"] == 1.5
    assert usage == [Usage("openai", audio_seconds=1.5)]


async def test_stt_error_maps_to_provider_error(fake):
    fake.script("transcriptions", Fail(400))
    stt = await started(OpenAISTT, fake)
    try:
        with pytest.raises(ProviderError) as err:
            await stt.transcribe(bytes(3200), 16000)
    finally:
        await stt.aclose()
    assert not err.value.retryable


async def test_tts_streams_sample_aligned_24k_pcm(fake):
    tts = await started(OpenAITTS, fake, voice="nova")
    usage = []
    text = "Your table is booked for seven thirty."
    try:
        with collect_usage(usage.append):
            chunks = await collect(tts.synthesize(text, AudioFormat(8000, "mulaw")))
    finally:
        await tts.aclose()
    assert len(chunks) > 3
    assert all(c.sample_rate == PCM_RATE and c.encoding == "pcm_s16le" for c in chunks)
    assert all(len(c.data) % 2 == 0 for c in chunks)
    assert b"".join(c.data for c in chunks) == speech_pcm(text, PCM_RATE)
    assert fake.requests[0].body["voice"] == "nova"
    assert usage == [Usage("openai", characters=len(text))]


async def test_tts_retries_429_before_audio(fake):
    fake.script("speech", Fail(429, {"retry-after-ms": "10"}))
    tts = await started(OpenAITTS, fake)
    try:
        chunks = await collect(tts.synthesize("Hi.", AudioFormat()))
    finally:
        await tts.aclose()
    assert b"".join(c.data for c in chunks) == speech_pcm("Hi.", PCM_RATE)
    assert fake.count("speech") == 2


async def test_closing_a_tts_stream_disconnects_from_the_server(fake):
    fake.audio_pace = 0.005
    tts = await started(OpenAITTS, fake)
    try:
        stream = tts.synthesize("A long answer that the caller interrupts. " * 10, AudioFormat())
        first = await anext(stream)
        await anext(stream)
        await stream.aclose()  # barge-in
        await fake.wait_disconnect("speech")
    finally:
        await tts.aclose()
    assert first.data and "speech" not in fake.completed


@pytest.mark.parametrize("speculate", [True, False])
async def test_stt_speculation_can_be_turned_off_to_save_requests(fake, speculate):
    stt = await started(OpenAISTT, fake, speculate=speculate)
    try:
        stream = stt.stream(16000)
        await stream.send(bytes(3200))
        await stream.speculate()  # the caller pauses ...
        if speculate:
            await fake.wait_for(lambda: fake.count("transcriptions") == 1)
        await stream.send(bytes(3200))  # ... and goes on
        result = await stream.finalize()
    finally:
        await stt.aclose()
    assert result.text == "hello world"
    assert fake.count("transcriptions") == (2 if speculate else 1)


async def test_the_sdk_speaks_through_its_aiohttp_transport(fake):
    """Half the CPU per request of the httpx/httpcore pool (benchmarks/sdk_requests.py)."""
    from openai import DefaultAioHttpClient

    llm = await started(OpenAILLM, fake)
    try:
        assert isinstance(llm.client._client, DefaultAioHttpClient)
        assert await collect(llm.stream([Message("user", "hi")]))
    finally:
        await llm.aclose()
