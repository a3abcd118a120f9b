"""The Deepgram plugin, through the real `deepgram-sdk`, against the wire-compatible fake."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.deepgram_fake import FakeDeepgram, speak_audio
from voicebot.bench.fake_base import Drop, Fail, Stall
from voicebot.bench.openai_fake import tone
from voicebot.providers import (
    AudioFormat,
    ProviderError,
    SpeechStarted,
    Transcript,
    Usage,
    UtteranceEnd,
)
from voicebot.records.usage import collect_usage
from voicebot_plugins.deepgram import DeepgramSTT, DeepgramTTS

RATE = 16000
SPEECH = tone(RATE // 50, RATE)  # 20 ms, loud
QUIET = bytes(RATE // 50 * 2)


@pytest.fixture
async def fake():
    async with FakeDeepgram() as server:
        yield server


async def started(cls, fake, **opts):
    provider = cls(cls.Options(api_key="dg-test", base_url=fake.url, **opts))
    await provider.start()
    return provider


async def speak(stream, frames=30, quiet=0):
    for _ in range(frames):
        await stream.send(SPEECH)
    for _ in range(quiet):
        await stream.send(QUIET)


async def test_live_stt_partials_then_finalize(fake):
    fake.utterances.extend(["book a table for two"])
    stt = await started(DeepgramSTT, fake)
    assert stt.endpointing is False
    stream = stt.stream(RATE, language="en-GB")
    events = []
    stream.on_event = events.append
    usage = []
    try:
        with collect_usage(usage.append):
            await speak(stream)
            result = await stream.finalize()
            await stream.aclose()
    finally:
        await stt.aclose()
    assert result.text == "book a table for two" and result.final
    assert result.confidence == pytest.approx(0.97)
    partials = [e for e in events if isinstance(e, Transcript) and not e.final]
    assert [p.text for p in partials][:2] == ["book", "book a"]
    assert events[-1] == Transcript("book a table for two", final=True, confidence=0.97)
    q = fake.requests[0].query
    assert q["encoding"] == "linear16" and q["sample_rate"] == "16000" and q["channels"] == "1"
    assert q["language"] == "en-GB" and q["model"] == "nova-3" and q["interim_results"] == "true"
    assert "endpointing" not in q
    assert fake.requests[0].headers["Authorization"] == "Token dg-test"
    assert fake.control == ["Finalize", "CloseStream"]
    assert "listen" in fake.completed
    assert usage == [Usage("deepgram", audio_seconds=0.6)]


async def test_endpointing_emits_speech_started_and_one_utterance_end(fake):
    fake.utterances.extend(["yes please"])
    stt = await started(DeepgramSTT, fake, endpointing_ms=200)
    assert stt.endpointing is True
    stream = stt.stream(RATE)
    events = []
    ended = asyncio.Event()

    def on_event(event):
        events.append(event)
        if isinstance(event, UtteranceEnd):
            ended.set()

    stream.on_event = on_event
    try:
        await speak(stream, frames=20, quiet=15)
        async with asyncio.timeout(5):
            await ended.wait()
        result = await stream.finalize()
        await stream.aclose()
    finally:
        await stt.aclose()
    q = fake.requests[0].query
    assert q["endpointing"] == "200" and q["vad_events"] == "true"
    assert q["utterance_end_ms"] == "1000"
    assert events[0] == SpeechStarted()
    assert sum(isinstance(e, UtteranceEnd) for e in events) == 1  # speech_final + UtteranceEnd
    assert Transcript("yes please", final=True, confidence=0.97) in events
    assert result.text == "yes please"
    assert "Finalize" not in fake.control  # speech_final already completed the utterance


async def test_turns_share_one_socket_and_cancel_discards(fake):
    fake.utterances.extend(["first", "false start", "second"])
    stt = await started(DeepgramSTT, fake)
    stream = stt.stream(RATE)
    try:
        await speak(stream, frames=10)
        first = await stream.finalize()
        await speak(stream, frames=10)
        await stream.cancel()
        await speak(stream, frames=10)
        second = await stream.finalize()
        empty = await stream.finalize()  # nothing sent since: no round trip needed
        await stream.aclose()
    finally:
        await stt.aclose()
    assert (first.text, second.text, empty.text) == ("first", "second", "")
    assert fake.count("listen") == 1


async def test_noise_without_words_finalizes_to_empty_when_deepgram_does_not_answer(fake):
    stt = await started(DeepgramSTT, fake, finalize_timeout=0.1)
    stream = stt.stream(RATE)
    try:
        for _ in range(10):
            await stream.send(QUIET)
        result = await stream.finalize()
        await stream.aclose()
    finally:
        await stt.aclose()
    assert result.text == "" and fake.control == ["Finalize", "CloseStream"]


async def test_keepalive_while_the_caller_is_silent(fake):
    stt = await started(DeepgramSTT, fake, keepalive_seconds=0.05)
    stream = stt.stream(RATE)
    try:
        await speak(stream, frames=1)
        await fake.wait_for(lambda: "KeepAlive" in fake.control, within=2.0)
        await stream.aclose()
    finally:
        await stt.aclose()


async def test_handshake_429_then_success(fake):
    fake.script("listen", Fail(429))
    stt = await started(DeepgramSTT, fake, max_retries=2)
    stream = stt.stream(RATE)
    try:
        await speak(stream, frames=10)
        result = await stream.finalize()
        await stream.aclose()
    finally:
        await stt.aclose()
    assert result.text == "hello world" and fake.count("listen") == 2


async def test_handshake_500_without_retries_raises(fake):
    fake.script("listen", Fail(500))
    stt = await started(DeepgramSTT, fake, max_retries=0)
    stream = stt.stream(RATE)
    try:
        with pytest.raises(ProviderError, match="500") as err:
            await stream.send(SPEECH)
        with pytest.raises(ProviderError):  # the stream stays failed: the chain moves on
            await stream.send(SPEECH)
        await stream.aclose()
    finally:
        await stt.aclose()
    assert err.value.retryable


async def test_connection_dropped_mid_utterance_raises_retryable(fake):
    fake.script("listen", Drop(after_chunks=5))
    stt = await started(DeepgramSTT, fake, finalize_timeout=1.0)
    stream = stt.stream(RATE)
    try:
        with pytest.raises(ProviderError) as err:
            await speak(stream, frames=10)
            await stream.finalize()
        await stream.aclose()
    finally:
        await stt.aclose()
    assert err.value.retryable


async def test_missing_key_names_the_variable():
    with pytest.raises(ProviderError, match="DEEPGRAM_API_KEY"):
        await DeepgramSTT(DeepgramSTT.Options()).start()


@pytest.mark.parametrize(
    ("preferred", "encoding", "rate", "out"),
    [
        (AudioFormat(8000, "mulaw"), "mulaw", 8000, "mulaw"),
        (AudioFormat(16000), "linear16", 16000, "pcm_s16le"),
        (AudioFormat(44100), "linear16", 24000, "pcm_s16le"),
    ],
)
async def test_aura_tts_streams_the_format_the_call_needs(fake, preferred, encoding, rate, out):
    tts = await started(DeepgramTTS, fake)
    text = "Thanks for calling."
    usage = []
    try:
        with collect_usage(usage.append):
            chunks = [c async for c in tts.synthesize(text, preferred)]
    finally:
        await tts.aclose()
    assert {(c.sample_rate, c.encoding) for c in chunks} == {(rate, out)}
    assert b"".join(c.data for c in chunks) == speak_audio(text, encoding, rate)
    if out == "pcm_s16le":
        assert all(len(c.data) % 2 == 0 for c in chunks)
    q = fake.requests[0].query
    assert (q["encoding"], q["sample_rate"], q["model"]) == (
        encoding,
        str(rate),
        "aura-2-thalia-en",
    )
    assert fake.requests[0].body == {"text": text}
    assert usage == [Usage("deepgram", characters=len(text))]


async def test_aura_retries_429_and_503_before_audio(fake):
    fake.script("speak", Fail(429, {"retry-after-ms": "10"}), Fail(503))
    tts = await started(DeepgramTTS, fake, max_retries=2)
    try:
        chunks = [c async for c in tts.synthesize("Hi.", AudioFormat())]
    finally:
        await tts.aclose()
    assert b"".join(c.data for c in chunks) == speak_audio("Hi.", "linear16", 16000)
    assert fake.count("speak") == 3


async def test_aura_400_is_not_retried(fake):
    fake.script("speak", Fail(400))
    tts = await started(DeepgramTTS, fake, max_retries=2)
    try:
        with pytest.raises(ProviderError) as err:
            _ = [c async for c in tts.synthesize("Hi.", AudioFormat())]
    finally:
        await tts.aclose()
    assert not err.value.retryable and fake.count("speak") == 1


async def test_aura_stalled_stream_times_out(fake):
    fake.script("speak", Stall(after_chunks=1))
    tts = await started(DeepgramTTS, fake, timeout=0.3, max_retries=0)
    got = []
    try:
        with pytest.raises(ProviderError, match="timed out"):
            async for chunk in tts.synthesize("Hello there.", AudioFormat()):
                got.append(chunk)
    finally:
        await tts.aclose()
    assert len(got) == 1
    await fake.wait_disconnect("speak")


async def test_aura_cancel_disconnects(fake):
    fake.audio_pace = 0.005
    tts = await started(DeepgramTTS, fake)
    try:
        stream = tts.synthesize("A long sentence the caller talks over. " * 10, AudioFormat())
        await anext(stream)
        await stream.aclose()
        await fake.wait_disconnect("speak")
    finally:
        await tts.aclose()
    assert "speak" not in fake.completed
