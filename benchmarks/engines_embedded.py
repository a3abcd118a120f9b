"""Speed and memory of each embedded engine on its own (no server): the figures in
docs/providers.md. One process, models loaded once, each measured after a warm-up.

    python benchmarks/engines_embedded.py

- memory: process RSS growth while the provider starts (model + runtime buffers),
- whisper: decode time and real-time factor on the human clips of benchmarks/data/speech,
- piper: time to the first audio chunk and RTF, for a short and a long (clause-split) reply,
- silero: µs per 20 ms frame (a 32 ms inference every 1.6 frames),
- embedding intent: ms per classification among 8 intents (examples cached).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import wave
from pathlib import Path

from voicebot.audio import Resampler
from voicebot.providers import AudioFormat, IntentSpec
from voicebot.providers.workers import WorkerPool
from voicebot_plugins.intent_embedding import EmbeddingIntent
from voicebot_plugins.stt_whisper import WhisperSTT
from voicebot_plugins.tts_piper import PiperTTS
from voicebot_plugins.vad_silero import SileroVAD

DATA = Path(__file__).parent / "data" / "speech"
SHORT = "Your table is booked for eight tonight."
LONG = (
    "Thanks for calling Luigi's, this is the automated assistant; I can book a table, "
    "move or cancel a booking, or put you through to someone, so what would you like to do?"
)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def started(provider):
    before = rss_mb()
    t0 = time.perf_counter()
    await provider.start()
    print(
        f"{provider.name:10s} start {time.perf_counter() - t0:5.2f} s, "
        f"RSS +{rss_mb() - before:4.0f} MB"
    )
    return provider


async def bench_whisper(stt: WhisperSTT) -> None:
    clips = []
    for wav in sorted(DATA.glob("*.wav")):
        with wave.open(str(wav)) as w:
            clips.append(w.readframes(w.getnframes()))
    times, audio_s = [], 0.0
    for pcm in clips:
        t0 = time.perf_counter()
        await stt.transcribe(pcm, 16000)
        times.append(time.perf_counter() - t0)
        audio_s += len(pcm) / 32000
    print(
        f"whisper: {len(clips)} utterances ({audio_s / len(clips):.1f} s average): decode median "
        f"{1000 * statistics.median(times):.0f} ms, max {1000 * max(times):.0f} ms, "
        f"RTF {sum(times) / audio_s:.3f}"
    )


async def bench_piper(tts: PiperTTS) -> None:
    for label, text in (("short", SHORT), ("long", LONG)):
        firsts, totals, audio = [], [], 0.0
        for _ in range(5):
            t0 = time.perf_counter()
            first = None
            n = 0
            async for chunk in tts.synthesize(text, AudioFormat()):
                first = first or time.perf_counter() - t0
                n += len(chunk.data)
            firsts.append(first)
            totals.append(time.perf_counter() - t0)
            audio = n / 2 / tts.sample_rate
        print(
            f"piper {label:5s} ({len(text)} chars, {audio:.1f} s of speech): first audio median "
            f"{1000 * statistics.median(firsts):.0f} ms,"
            f" RTF {statistics.median(totals) / audio:.3f}"
        )


def bench_silero(vad: SileroVAD) -> None:
    with wave.open(str(DATA / "librivox-0870.wav")) as w:
        pcm = w.readframes(w.getnframes())
    frames = [pcm[i : i + 640] for i in range(0, len(pcm) - 639, 640)]
    stream = vad.stream(16000)
    for f in frames[:50]:
        stream.process(f)
    t0 = time.perf_counter()
    for _ in range(5):
        for f in frames:
            stream.process(f)
    per_frame = (time.perf_counter() - t0) / (5 * len(frames))
    phone = vad.stream(8000)
    r = Resampler(16000, 8000)
    frames8 = [r.process(f) for f in frames]
    t0 = time.perf_counter()
    for f in frames8:
        phone.process(f)
    per_frame8 = (time.perf_counter() - t0) / len(frames8)
    print(
        f"silero: {per_frame * 1e6:.0f} µs per 20 ms frame at 16 kHz, "
        f"{per_frame8 * 1e6:.0f} µs at 8 kHz (resampled in the stream)"
    )


async def bench_intent(intent: EmbeddingIntent) -> None:
    sys.path.insert(0, str(Path(__file__).parent / "data"))
    from intent_phrases import HELD_OUT_A, INTENTS

    await intent.classify("warm up", INTENTS)
    times = []
    for text, _ in HELD_OUT_A:
        t0 = time.perf_counter()
        await intent.classify(text, INTENTS)
        times.append(time.perf_counter() - t0)
    cold = [
        IntentSpec(f"i{k}", tuple(f"example number {k} of {j}" for j in range(5))) for k in range(8)
    ]
    t0 = time.perf_counter()
    await intent.classify("first time these intents are seen", cold)
    print(
        f"embedding intent: {1000 * statistics.median(times):.1f} ms per query (8 intents, cached "
        f"examples); first query of a new flow (40 examples to embed): "
        f"{1000 * (time.perf_counter() - t0):.0f} ms"
    )


async def main() -> None:
    workers = WorkerPool()
    try:
        print(f"baseline RSS {rss_mb():.0f} MB")
        stt = await started(WhisperSTT(workers=workers))
        tts = await started(PiperTTS(workers=workers))
        vad = await started(SileroVAD(workers=workers))
        intent = await started(EmbeddingIntent(workers=workers))
        await bench_whisper(stt)
        await bench_piper(tts)
        bench_silero(vad)
        await bench_intent(intent)
    finally:
        workers.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
