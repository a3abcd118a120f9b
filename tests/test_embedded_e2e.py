"""A spoken question through the real server on the embedded stack: a recorded human utterance
streamed over `/ws/voice` in real time (as 16 kHz PCM, and as 8 kHz μ-law like a phone line),
recognised by Whisper, answered in Piper's voice; the answer is checked by ear (Whisper again)."""

from __future__ import annotations

import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import websockets
import yaml

from benchmarks.wer import normalize_words, wer
from voicebot.audio import Resampler, decode, encode
from voicebot.providers import AudioFormat

from .support import Client, Server, base_config, serve, silence, tone
from .twilio_e2e_support import assert_nothing_left, record, synthesize
from .twilio_phone import Phone, mulaw_silence

on_module_loop = pytest.mark.asyncio(loop_scope="module")

TWILIO_TOKEN = "test-twilio-auth-token"
SPEECH = Path(__file__).parent.parent / "benchmarks" / "data" / "speech" / "goforward.wav"
SAID = "go forward ten meters"
BOOKING_STARTS = ["great", "let's", "book", "a", "table"]  # flows/booking.yaml, node intro


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory) -> AsyncIterator[Server]:
    config = {
        "pipeline": {"vad_hangover_ms": 300},
        "providers": {
            "vad": {"use": "silero"},
            "stt": {"use": "whisper"},
            "tts": {"use": "piper"},
        },
        "dialogue": {"mode": "echo", "greeting": "Hi."},
    }
    async with serve(tmp_path_factory.mktemp("e2e"), config) as srv:
        yield srv


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def default_server(tmp_path_factory) -> AsyncIterator[Server]:
    """The repository's own config.yaml and flows, as the README's first command runs them."""
    root = Path(__file__).parent.parent
    config = yaml.safe_load((root / "config.yaml").read_text())
    config["flows"]["dir"] = str(root / "flows")
    config.pop("server", None)
    # Piper samples its prosody afresh on every synthesis, so each run would hear another
    # rendition and the exact transcripts below would depend on luck; without that noise the
    # audio is the same on every run.
    config["providers"]["tts"].update(noise_scale=0.0, noise_w_scale=0.0)
    config["telephony"]["twilio"]["auth_token"] = TWILIO_TOKEN  # as if TWILIO_AUTH_TOKEN were set
    async with serve(tmp_path_factory.mktemp("default"), config) as srv:
        yield srv


def human_question(rate: int, encoding: str) -> bytes:
    with wave.open(str(SPEECH)) as w:
        pcm = w.readframes(w.getnframes())
    pcm = silence(300) + pcm + silence(1000)
    if rate != 16000:
        r = Resampler(16000, rate)
        pcm = r.process(pcm) + r.flush()
    return encode(pcm, encoding)


@on_module_loop
@pytest.mark.parametrize(("rate", "encoding"), [(16000, "pcm_s16le"), (8000, "mulaw")])
async def test_spoken_question_gets_a_spoken_answer(server: Server, rate: int, encoding: str):
    stt = server.runtime.providers["stt"]
    transcribe = stt.transcribe
    ws = await websockets.connect(
        f"{server.url}/ws/voice?sample_rate={rate}&encoding={encoding}", max_size=None
    )
    c = Client(ws, rate * (2 if encoding == "pcm_s16le" else 1) // 2)
    try:
        await c.wait_for(lambda e: e.get("type") == "response" and e["final"])  # greeting
        await c.wait_for(lambda e: e.get("status") == "listening")
        await c.stream(human_question(rate, encoding))
        _, heard = await c.wait_for(lambda e: e.get("type") == "transcript" and e["final"], 15)
        assert wer(SAID, heard["text"]) == 0, heard
        t_answer, answer = await c.wait_for(
            lambda e: e.get("type") == "response" and e["final"] and "said" in e["text"], 15
        )
        assert wer(f"you said {SAID}", answer["text"]) == 0, answer
        _, metrics = await c.wait_for(lambda e: e.get("type") == "metrics" and e["turn"] == 1)
        assert metrics["voice_to_voice_ms"] > 300  # includes the hangover
        await c.wait_for(lambda e: e.get("status") == "listening", 15, after=t_answer)
        reply = b"".join(a for t, a in c.audio if t >= t_answer - 1)
        pcm = decode(reply, encoding)
        if rate != 16000:
            r = Resampler(rate, 16000)
            pcm = r.process(pcm) + r.flush()
        spoken = await transcribe(pcm, 16000)
        assert wer(f"you said {SAID}", spoken.text) <= 0.2, spoken.text
    finally:
        await c.close()


@on_module_loop
async def test_hangover_silence_does_not_void_the_speculative_decode(tmp_path) -> None:
    """The decode started when the caller went quiet is the one used: the hangover frames that
    follow are silence and must not make a batch STT decode the utterance a second time."""
    async with serve(tmp_path, base_config()) as srv:
        stt = srv.runtime.providers["stt"]
        decoded: list[int] = []
        transcribe = stt.transcribe

        async def counting(pcm: bytes, sample_rate: int):
            decoded.append(len(pcm))
            return await transcribe(pcm, sample_rate)

        stt.transcribe = counting
        ws = await websockets.connect(f"{srv.url}/ws/voice")
        c = Client(ws)
        try:
            await c.wait_for(lambda e: e.get("type") == "response" and e["final"])
            await c.stream(silence(200) + tone(400) + silence(100) + tone(300) + silence(500))
            await c.wait_for(lambda e: e.get("type") == "transcript" and e["final"])
            # one speculation per pause (100 ms: resumed, so voided), none after the hangover
            assert len(decoded) == 2 and decoded[0] < decoded[1], decoded
        finally:
            await c.close()


@on_module_loop
async def test_fixed_prompts_are_synthesized_once_per_process(server: Server) -> None:
    tts = server.runtime.providers["tts"]
    greetings = []
    for _ in range(2):
        ws = await websockets.connect(f"{server.url}/ws/voice")
        c = Client(ws)
        try:
            t0, _ = await c.wait_for(lambda e: e.get("status") == "speaking")
            await c.wait_for(lambda e: e.get("status") == "listening", after=t0)
            greetings.append(b"".join(a for _, a in c.audio))
        finally:
            await c.close()
    cache = tts.health()["cache"]
    assert cache["hits"] >= 1 and cache["entries"] >= 1
    assert greetings[0] == greetings[1] and len(greetings[0]) > 8000  # "Hi." in Piper's voice


@on_module_loop
async def test_default_config_answers_a_phone_caller_from_the_flows(default_server) -> None:
    """The repository's own config.yaml and flows, over a μ-law 8 kHz line: a caller cuts into
    the menu to ask for a table and hears the booking flow start, in Piper's voice."""
    srv = default_server
    tts, stt = srv.runtime.providers["tts"], srv.runtime.providers["stt"]
    assert (tts.name, stt.name, srv.runtime.providers["intent"].name) == (
        "piper",
        "whisper",
        "embedding",
    )
    chunks = [c async for c in tts.synthesize("I'd like to book a table.", AudioFormat())]
    question = b"".join(c.data for c in chunks)
    r = Resampler(chunks[0].sample_rate, 8000)
    question = encode(silence(300, 8000) + r.process(question) + r.flush(), "mulaw")
    ws = await websockets.connect(f"{srv.url}/ws/voice?sample_rate=8000&encoding=mulaw")
    c = Client(ws, 8000)
    try:
        t0, _ = await c.wait_for(lambda e: e.get("status") == "speaking", 15)
        await c.wait_audio(8000, after=t0)  # a second of the menu, then the caller cuts in
        await c.stream(question + encode(silence(1000, 8000), "mulaw"))
        await c.wait_for(lambda e: e.get("status") == "interrupted", 1, after=t0)
        t_int, intent = await c.wait_for(lambda e: e.get("type") == "intent", 15)
        assert intent["intent"] == "booking", intent
        t1, _ = await c.wait_for(lambda e: e.get("status") == "speaking", 15, after=t_int)
        await c.wait_audio(8000 * 2, after=t1, timeout=15)  # 2 s of the answer
        r = Resampler(8000, 16000)
        answer = decode(b"".join(a for t, a in c.audio if t >= t1), "mulaw")
        heard = await stt.transcribe(r.process(answer) + r.flush(), 16000)
        assert normalize_words(heard.text)[:5] == BOOKING_STARTS, heard
    finally:
        await c.close()


@on_module_loop
async def test_default_config_over_a_twilio_media_stream(default_server) -> None:
    """The same, through `/twilio/media`: a caller asks for a table and hears, in μ-law with
    marks, the booking flow's first question."""
    srv = default_server
    rec = record(srv)
    question = await synthesize(srv.runtime, "I'd like to book a table.")
    phone = await Phone.call(srv, auth_token=TWILIO_TOKEN)
    try:
        await phone.connected()
        await phone.start({"From": "+15550001111"})
        await phone.wait(lambda: phone.media, 15)
        t_talk = time.monotonic()
        await phone.talk(mulaw_silence(300) + question + mulaw_silence(1000))
        await rec.wait(lambda: rec.transcripts, 15)
        assert wer("I'd like to book a table", rec.transcripts[-1]) == 0, rec.transcripts
        await rec.wait(lambda: any("let's book a table" in t for t, _, _ in rec.spoken), 15)
        await phone.wait(lambda: len(phone.audio(t_talk + 2)) >= 8000 * 2, 20)
        r = Resampler(8000, 16000)
        answer = decode(phone.audio(t_talk + 2), "mulaw")
        heard = await srv.runtime.providers["stt"].transcribe(r.process(answer) + r.flush(), 16000)
        assert normalize_words(heard.text)[:5] == BOOKING_STARTS, heard
        await phone.stop()
        assert await phone.wait_closed() == 1000
    finally:
        await phone.close()
    await assert_nothing_left(srv)
