"""Figures of the light offline providers: pocketsphinx RSS per decoder and real-time factor,
espeak time to first audio. Run once, on an idle machine: `python benchmarks/bench_light.py`.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from voicebot.audio import Resampler, silence
from voicebot.providers import AudioFormat
from voicebot.providers.workers import WorkerPool
from voicebot_plugins._espeak_c import engine
from voicebot_plugins._pocketsphinx_c import Decoder, default_model_paths
from voicebot_plugins.stt_pocketsphinx import PocketsphinxSTT
from voicebot_plugins.tts_espeak import EspeakTTS

SENTENCES = [
    "yes that is right",
    "I want to speak to a person",
    "Hello, thank you for calling. How can I help you today?",
    "Please hold while I transfer you to the billing department.",
]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def bench_decoder_rss(n: int = 3) -> None:
    params = {**default_model_paths(), "samprate": 16000}
    Decoder(params)  # first load also maps the library: not counted
    keep, deltas, loads = [], [], []
    for _ in range(n):
        before, t0 = rss_mb(), time.perf_counter()
        keep.append(Decoder(params))
        loads.append(time.perf_counter() - t0)
        deltas.append(rss_mb() - before)
    print(
        f"pocketsphinx decoder: RSS +{statistics.mean(deltas):.1f} MB each "
        f"(n={n}: {', '.join(f'{d:.1f}' for d in deltas)}), load {statistics.mean(loads):.2f} s"
    )


def speech16k(text: str) -> bytes:
    pcm = engine().synth(text, "en-us", 175, 50)
    rs = Resampler(engine().sample_rate, 16000)
    return silence(200, 16000) + rs.process(pcm) + rs.flush() + silence(200, 16000)


async def bench_rtf(streams: int) -> None:
    stt = PocketsphinxSTT(PocketsphinxSTT.Options(decoders=streams), WorkerPool(max_workers=2))
    await stt.start()
    audio = [speech16k(t) for t in SENTENCES]

    async def caller(utterances: list[bytes]) -> None:
        s = stt.stream(16000)
        for pcm in utterances:
            for i in range(0, len(pcm) - 639, 640):
                await s.send(pcm[i : i + 640])
                await asyncio.sleep(0)  # let the decode task run between frames
            await s.finalize()

    await caller(audio[:1])  # warm up
    seconds = sum(len(a) for a in audio) / 32000 * streams
    t0 = time.perf_counter()
    await asyncio.gather(*(caller(audio) for _ in range(streams)))
    wall = time.perf_counter() - t0
    print(
        f"pocketsphinx {streams} concurrent stream(s), 2 workers: {seconds:.1f} s of audio in "
        f"{wall:.2f} s wall -> RTF {wall / seconds:.3f} (aggregate), "
        f"{wall / seconds * streams:.3f} per stream"
    )
    await stt.aclose()
    stt.workers.shutdown()


async def bench_ttfa() -> None:
    tts = EspeakTTS()
    await tts.start()
    for text in SENTENCES[2:]:
        firsts, totals = [], []
        for _ in range(20):
            t0 = time.perf_counter()
            first = None
            async for _chunk in tts.synthesize(text, AudioFormat()):
                first = first or time.perf_counter() - t0
            firsts.append(first * 1000)
            totals.append((time.perf_counter() - t0) * 1000)
        print(
            f"espeak '{text[:30]}...': first audio median {statistics.median(firsts):.2f} ms "
            f"(max {max(firsts):.2f}), whole text {statistics.median(totals):.2f} ms"
        )


def main() -> None:
    bench_decoder_rss()
    asyncio.run(bench_rtf(1))
    asyncio.run(bench_rtf(4))
    asyncio.run(bench_ttfa())


if __name__ == "__main__":
    main()
