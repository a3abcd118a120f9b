"""What the cloud plugins themselves add to latency: time to first token/audio through the real
SDKs against the loopback fakes (which answer at once), concurrent calls sharing one client, and
how long a fallback hand-over takes. Network and model time are not in these figures.
Run once, on an idle machine, from the repository root: `python -m benchmarks.bench_cloud`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from tests.fakes.deepgram_fake import FakeDeepgram
from tests.fakes.elevenlabs_fake import FakeElevenLabs
from voicebot.bench.fake_base import Stall
from voicebot.bench.openai_fake import FakeOpenAI, tone
from voicebot.providers import AudioFormat, Message
from voicebot.providers.fallback import FallbackLLM
from voicebot_plugins.deepgram import DeepgramSTT, DeepgramTTS
from voicebot_plugins.elevenlabs_providers import ElevenLabsTTS
from voicebot_plugins.openai_providers import OpenAILLM, OpenAITTS

N = 100


async def started(cls: Any, url: str, **opts: Any) -> Any:
    provider = cls(cls.Options(api_key="k", base_url=url, **opts))
    await provider.start()
    return provider


async def first_item(stream: AsyncIterator[Any]) -> None:
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]


async def timed(label: str, op: Callable[[], Awaitable[None]], n: int = N) -> None:
    await op()  # warm the connection pool
    ms = []
    for _ in range(n):
        t0 = time.perf_counter()
        await op()
        ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    print(
        f"{label:<46} p50 {statistics.median(ms):6.2f} ms   p95 {ms[int(0.95 * len(ms))]:6.2f} ms"
    )


async def main() -> None:
    async with FakeOpenAI() as oa, FakeDeepgram() as dg, FakeElevenLabs() as xi:
        llm = await started(OpenAILLM, oa.url + "/v1")
        tts_oa = await started(OpenAITTS, oa.url + "/v1")
        tts_dg = await started(DeepgramTTS, dg.url)
        tts_xi = await started(ElevenLabsTTS, xi.url)
        stt_dg = await started(DeepgramSTT, dg.url)
        msgs = [Message("user", "hi")]
        fmt = AudioFormat(8000, "mulaw")
        text = "Thanks for calling, how can I help?"
        await timed("openai llm: first token", lambda: first_item(llm.stream(msgs)))
        await timed("openai tts: first audio", lambda: first_item(tts_oa.synthesize(text, fmt)))
        await timed("deepgram aura: first audio", lambda: first_item(tts_dg.synthesize(text, fmt)))
        await timed("elevenlabs: first audio", lambda: first_item(tts_xi.synthesize(text, fmt)))

        frame = tone(320, 16000)
        stream = stt_dg.stream(16000)

        async def turn() -> None:
            for _ in range(10):
                await stream.send(frame)
            await stream.finalize()

        await timed("deepgram live: 10 frames + Finalize round trip", turn)
        await stream.aclose()

        async def concurrent_llm() -> None:
            await asyncio.gather(*(first_item(llm.stream(msgs)) for _ in range(50)))

        await timed("openai llm: 50 concurrent first tokens", concurrent_llm, n=10)

        slow = await started(OpenAILLM, oa.url + "/v1")
        chain = FallbackLLM([slow, llm], budget=0.2, cooldown=0.0)

        async def hand_over() -> None:
            oa.script("chat", Stall())
            await first_item(chain.stream(msgs))

        await timed("fallback llm: stalled primary, budget 200 ms", hand_over, n=10)
        for p in (chain, tts_oa, tts_dg, tts_xi, stt_dg):
            await p.aclose()


if __name__ == "__main__":
    asyncio.run(main())
