"""The light offline providers: energy/webrtc VAD, pocketsphinx STT, espeak TTS.

Speech comes from espeak itself, so the STT tests are TTS → STT round trips. pocketsphinx is weak
on espeak's robotic voice and espeak adds a little random variation per synthesis, so the
sentences below were picked among ones it gets mostly right (measured over repeated runs) and
transcripts are judged by word overlap, not exact text.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from voicebot.audio import Resampler, silence
from voicebot.plugins import make_plugin_manager
from voicebot.providers import AudioFormat, ModelMissingError, ProviderError, Transcript
from voicebot.providers.workers import WorkerPool
from voicebot_plugins._espeak_c import engine
from voicebot_plugins.stt_pocketsphinx import PocketsphinxSTT
from voicebot_plugins.tts_espeak import EspeakTTS, split_sentences
from voicebot_plugins.vad_energy import EnergyVAD
from voicebot_plugins.vad_webrtc import WebRTCVAD

RATE = 16000
FRAME = RATE // 50 * 2  # 20 ms of PCM16
YES = "yes that is right"
PERSON = "I want to speak to a person"


def overlap(expected: str, heard: str) -> float:
    words = expected.lower().split()
    got = set(heard.lower().split())
    return sum(w in got for w in words) / len(words)


def frames(pcm: bytes, size: int = FRAME) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]


def speech(text: str, rate: int = RATE) -> bytes:
    """espeak audio at `rate` with 200 ms of silence either side, as a VAD-gated turn would be."""
    pcm = engine().synth(text, "en-us", 175, 50)
    rs = Resampler(engine().sample_rate, rate)
    pad = silence(200, rate)
    return pad + rs.process(pcm) + rs.flush() + pad


def speech_like(seconds: float, rate: int = RATE, level_db: float = -20.0) -> bytes:
    """A voiced-speech stand-in: 120 Hz harmonics, 4 Hz syllable-rate envelope."""
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 12))
    envelope = 0.7 + 0.3 * np.sin(2 * np.pi * 4 * t)
    x = voiced * envelope
    x *= 10 ** (level_db / 20) * 32767 * math.sqrt(2) / np.sqrt(np.mean(x**2)) / math.sqrt(2)
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def noise(seconds: float, level_db: float, rate: int = RATE, seed: int = 1) -> bytes:
    x = np.random.default_rng(seed).normal(0, 10 ** (level_db / 20) * 32767, int(seconds * rate))
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


class LoopLag:
    """Measures how late the event loop wakes a 5 ms ticker: the worst stall of the loop."""

    def __init__(self) -> None:
        self.max_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            self.max_ms = max(self.max_ms, (time.perf_counter() - t0 - 0.005) * 1000)

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
async def stt() -> AsyncIterator[PocketsphinxSTT]:
    # One worker thread: on a busy 2-core machine, two decoding threads plus other processes
    # starve the event loop thread of CPU (measured 15-38 ms ticker lag at load 4, against
    # 4-15 ms with one worker), which would make the loop-lag assertion measure the machine.
    p = PocketsphinxSTT(PocketsphinxSTT.Options(decoders=4), WorkerPool(max_workers=1))
    await p.start()
    yield p
    await p.aclose()
    p.workers.shutdown()


async def transcribe(
    stt: PocketsphinxSTT, pcm: bytes, on_event: Callable[..., None] | None = None
) -> Transcript:
    s = stt.stream(RATE)
    s.on_event = on_event
    for f in frames(pcm):
        await s.send(f)
    try:
        return await s.finalize()
    finally:
        await s.aclose()


# ------------------------------------------------------------------------------------------ VAD


async def test_entry_points_register_all_four_providers() -> None:
    reg = make_plugin_manager().registry
    assert reg.provider("vad", "energy") is EnergyVAD
    assert reg.provider("vad", "webrtc") is WebRTCVAD
    assert reg.provider("stt", "pocketsphinx") is PocketsphinxSTT
    assert reg.provider("tts", "espeak") is EspeakTTS


async def test_energy_vad_separates_silence_from_speech_like_signal() -> None:
    vad = EnergyVAD(EnergyVAD.Options(adaptive=False))
    await vad.start()
    s = vad.stream(RATE)
    assert max(s.process(f) for f in frames(silence(500, RATE))) < 0.01
    assert max(s.process(f) for f in frames(noise(0.5, -70))) < 0.01
    probs = [s.process(f) for f in frames(speech_like(1.0))]
    assert min(probs) > 0.99


async def test_energy_vad_adaptive_floor_ignores_steady_noise() -> None:
    background = noise(2.0, -40)
    fixed = EnergyVAD(EnergyVAD.Options(threshold_db=-45, adaptive=False)).stream(RATE)
    assert np.mean([fixed.process(f) for f in frames(background)]) > 0.9  # noise counts as speech

    adaptive = EnergyVAD(EnergyVAD.Options(threshold_db=-45, adaptive=True)).stream(RATE)
    assert max(adaptive.process(f) for f in frames(background)) < 0.5
    mixed = np.frombuffer(speech_like(1.0), "<i2") + np.frombuffer(noise(1.0, -40, seed=2), "<i2")
    probs = [adaptive.process(f) for f in frames(mixed.astype("<i2").tobytes())]
    assert np.mean(np.array(probs) > 0.5) > 0.9


async def test_energy_vad_rejects_bad_options_and_frames() -> None:
    with pytest.raises(ValueError, match="threshold_db"):
        EnergyVAD.Options(threshold_db=3)
    with pytest.raises(Exception, match="even number of bytes"):
        EnergyVAD().stream(RATE).process(b"\x00\x01\x02")


async def test_webrtc_vad_on_real_speech_and_silence() -> None:
    vad = WebRTCVAD(WebRTCVAD.Options(mode=2))
    await vad.start()
    s = vad.stream(RATE)
    assert max(s.process(f) for f in frames(silence(500, RATE))) == 0.0
    spoken = [s.process(f) for f in frames(speech(PERSON)[6400:-6400])]
    assert np.mean(np.array(spoken) >= WebRTCVAD.threshold) > 0.6


@pytest.mark.parametrize("rate", [24000, 44100])
async def test_webrtc_vad_resamples_unsupported_rates(rate: int) -> None:
    vad = WebRTCVAD()
    await vad.start()
    s = vad.stream(rate)
    frame = rate // 50 * 2
    assert max(s.process(f) for f in frames(silence(300, rate), frame)) == 0.0
    spoken = [s.process(f) for f in frames(speech(PERSON, rate)[rate // 5 * 2 :], frame)]
    assert np.mean(np.array(spoken) >= 0.5) > 0.5


async def test_webrtc_vad_validates_mode_and_frame_length() -> None:
    with pytest.raises(ValueError, match="mode must be 0, 1, 2 or 3"):
        WebRTCVAD.Options(mode=4)
    vad = WebRTCVAD()
    await vad.start()
    with pytest.raises(Exception, match="multiple of 10 ms"):
        vad.stream(RATE).process(bytes(300))


# ------------------------------------------------------------------------------------------ TTS


async def test_espeak_produces_speech_of_plausible_duration() -> None:
    tts = EspeakTTS(EspeakTTS.Options(voice="en-us", rate=175))
    await tts.start()
    text = "Hello, thank you for calling. How can I help you today?"
    chunks = [c async for c in tts.synthesize(text, AudioFormat())]
    assert len(chunks) == 2  # sentence by sentence
    assert {c.sample_rate for c in chunks} == {22050}
    pcm = np.frombuffer(b"".join(c.data for c in chunks), "<i2")
    seconds = len(pcm) / 22050
    assert 2.0 < seconds < 6.0  # 11 words at 175 wpm ≈ 3.8 s
    assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 1000


async def test_espeak_rate_option_changes_duration_and_bad_voice_is_explained() -> None:
    async def seconds(rate: int) -> float:
        tts = EspeakTTS(EspeakTTS.Options(rate=rate))
        await tts.start()
        return sum([len(c.data) async for c in tts.synthesize(PERSON, AudioFormat())]) / 44100

    assert await seconds(300) < 0.75 * await seconds(150)
    with pytest.raises(ModelMissingError, match="no voice 'xx-nope'"):
        await EspeakTTS(EspeakTTS.Options(voice="xx-nope")).start()
    with pytest.raises(ValueError, match="pitch"):
        EspeakTTS.Options(pitch=101)


async def test_espeak_stops_at_the_next_sentence_when_the_reader_stops() -> None:
    tts = EspeakTTS()
    await tts.start()
    before = tts.workers.completed
    gen = tts.synthesize("One. Two. Three. Four. Five.", AudioFormat())
    assert (await anext(gen)).data
    await gen.aclose()  # barge-in
    assert tts.workers.completed == before + 1


async def test_espeak_concurrent_syntheses_do_not_mix() -> None:
    tts = EspeakTTS(workers=WorkerPool(max_workers=2))
    await tts.start()

    async def seconds(text: str) -> float:
        chunks = [c async for c in tts.synthesize(text, AudioFormat())]
        return sum(len(c.data) for c in chunks) / 44100

    short, long = "Yes.", "I want to speak to a person about my bill, please."
    solo = [await seconds(short), await seconds(long)]
    together = await asyncio.gather(seconds(short), seconds(long), seconds(short))
    assert together[0] == pytest.approx(solo[0], rel=0.02)
    assert together[1] == pytest.approx(solo[1], rel=0.02)
    assert together[2] == pytest.approx(solo[0], rel=0.02)


def test_split_sentences_cuts_long_text() -> None:
    assert split_sentences("One. Two!  Three? ") == ["One.", "Two!", "Three?"]
    long = " ".join(["word"] * 300)
    assert all(len(p) <= 400 for p in split_sentences(long))
    assert " ".join(split_sentences(long)) == long


@pytest.mark.parametrize(
    ("module", "provider", "package"),
    [
        ("espeakng_loader", "EspeakTTS", "tts_espeak"),
        ("pocketsphinx", "PocketsphinxSTT", "stt_pocketsphinx"),
    ],
)
def test_missing_engine_package_names_the_extra(module: str, provider: str, package: str) -> None:
    code = (
        f"import sys, asyncio; sys.modules[{module!r}] = None\n"
        f"from voicebot_plugins.{package} import {provider}\n"
        f"asyncio.run({provider}().start())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "ModelMissingError" in proc.stderr
    assert "pip install -e '.[light]'" in proc.stderr


# ------------------------------------------------------------------------------------------ STT


async def test_round_trip_tts_to_stt(stt: PocketsphinxSTT) -> None:
    tts = EspeakTTS()
    await tts.start()
    pcm = b"".join([c.data async for c in tts.synthesize(YES, AudioFormat())])
    rs = Resampler(22050, RATE)
    audio = silence(200, RATE) + rs.process(pcm) + rs.flush() + silence(200, RATE)
    result = await transcribe(stt, audio)
    assert result.final
    assert overlap(YES, result.text) >= 0.5, result.text
    assert result.confidence is not None and 0.0 < result.confidence <= 1.0


async def test_partials_are_emitted_in_batches_before_the_final(stt: PocketsphinxSTT) -> None:
    events: list[Transcript] = []
    audio = speech(PERSON)
    s = stt.stream(RATE)
    s.on_event = events.append
    jobs_before = stt.workers.completed
    for f in frames(audio):
        await s.send(f)
        await asyncio.sleep(0)  # let the decode task run, as real-time input would
    final = await s.finalize()
    jobs = stt.workers.completed - jobs_before
    assert events and all(not e.final and e.text for e in events)
    assert len({e.text for e in events}) == len(events)  # only changes are emitted
    assert overlap(PERSON, final.text) >= 0.5, final.text
    n_frames = len(frames(audio))
    assert jobs <= n_frames / 5 + 2  # ~100 ms per job (+ start and end), not one per frame


async def test_cancel_discards_the_utterance(stt: PocketsphinxSTT) -> None:
    s = stt.stream(RATE)
    for f in frames(speech(PERSON)):
        await s.send(f)
        await asyncio.sleep(0)  # so a decode job is in flight when we cancel
    await s.cancel()
    for f in frames(speech(YES)):
        await s.send(f)
    result = await asyncio.wait_for(s.finalize(), 30)
    assert overlap(YES, result.text) >= 0.5, result.text
    assert overlap(PERSON, result.text) < 0.3, result.text
    assert (await s.finalize()).text == ""  # nothing sent since


async def test_concurrent_streams_get_their_own_text_without_stalling_the_loop(
    stt: PocketsphinxSTT,
) -> None:
    texts = [YES, PERSON, YES, PERSON]
    audio = {t: speech(t) for t in set(texts)}
    async with LoopLag() as lag:
        results = await asyncio.gather(*(transcribe(stt, audio[t]) for t in texts))
    for text, result in zip(texts, results, strict=True):
        other = PERSON if text == YES else YES
        assert overlap(text, result.text) >= 0.5, (text, result.text)
        assert overlap(other, result.text) < 0.3, (text, result.text)
    assert stt.health()["decoders"] == 4
    assert lag.max_ms < 50, f"event loop stalled {lag.max_ms:.1f} ms"


async def test_exhausted_decoder_pool_makes_a_caller_wait_not_fail() -> None:
    p = PocketsphinxSTT(PocketsphinxSTT.Options(decoders=1), WorkerPool(max_workers=2))
    await p.start()
    try:
        a, b = await asyncio.wait_for(
            asyncio.gather(transcribe(p, speech(YES)), transcribe(p, speech(PERSON))), 60
        )
        assert overlap(YES, a.text) >= 0.5, a.text
        assert overlap(PERSON, b.text) >= 0.5, b.text
        assert p.health()["decoders"] == 1
    finally:
        await p.aclose()
        p.workers.shutdown()


async def test_other_pipeline_rates_are_resampled(stt: PocketsphinxSTT) -> None:
    s = stt.stream(24000)
    for f in frames(speech(YES, 24000), 960):
        await s.send(f)
    result = await s.finalize()
    assert overlap(YES, result.text) >= 0.5, result.text


async def test_bad_model_path_is_a_clear_error() -> None:
    with pytest.raises(ModelMissingError, match=r"lm not found: /nope\.lm\.bin"):
        await PocketsphinxSTT(PocketsphinxSTT.Options(lm="/nope.lm.bin")).start()
    with pytest.raises(ProviderError, match="rejected option no_such_option=1"):
        await PocketsphinxSTT(PocketsphinxSTT.Options(config={"no_such_option": 1})).start()
    with pytest.raises(ValueError, match="decoders"):
        PocketsphinxSTT.Options(decoders=0)


async def test_odd_length_audio_is_refused_clearly(stt: PocketsphinxSTT) -> None:
    s = stt.stream(RATE)
    with pytest.raises(ProviderError, match="even number of bytes"):
        await s.send(b"\x00" * 641)
    await s.aclose()
