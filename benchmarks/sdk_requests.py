"""CPU per turn of the `openai` provider's requests, measured in this process alone.

One turn's worth of provider work, as a phone call does it: one transcription (a 2.2 s
utterance as WAV), one streamed chat completion, one streamed speech synthesis. The OpenAI fake
(`voicebot/bench/openai_fake.py`) runs in its own process, so its CPU is not counted; this
process's CPU seconds (`time.process_time`) over the run, divided by the turns, is the client's
cost per turn: the SDK, its HTTP transport, and our parsing. `--concurrency` turns run at
once, as calls would.

    python benchmarks/sdk_requests.py --turns 300 --concurrency 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voicebot.providers import AudioFormat, Message  # noqa: E402
from voicebot_plugins.openai_providers import OpenAILLM, OpenAISTT, OpenAITTS  # noqa: E402

UTTERANCE = bytes(2 * 16000 * 22 // 10)  # 2.2 s of PCM16 at 16 kHz


ROLES = ("stt", "llm", "tts")


async def turn(stt, llm, tts, roles=ROLES) -> None:
    if "stt" in roles:
        await stt.transcribe(UTTERANCE, 16000)
    text = "It is three o'clock."
    if "llm" in roles:
        parts = [t async for t in llm.stream([Message("user", "what time is it")])]
        text = "".join(t for t in parts if isinstance(t, str))
    if "tts" in roles:
        async for _chunk in tts.synthesize(text, AudioFormat(8000, "mulaw")):
            pass


async def run(url: str, turns: int, concurrency: int, roles=ROLES) -> dict[str, float]:
    opts = {"api_key": "sk-bench", "base_url": f"{url}/v1"}
    providers = [cls(cls.Options(**opts)) for cls in (OpenAISTT, OpenAILLM, OpenAITTS)]
    for p in providers:
        await p.start()
    try:
        await turn(*providers)  # connections and lazy imports warm
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                await turn(*providers, roles)

        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.gather(*(one() for _ in range(turns)))
        cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    finally:
        for p in providers:
            await p.aclose()
    return {"cpu_ms_per_turn": cpu / turns * 1000, "wall_s": wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--turns", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=30)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--roles", nargs="+", choices=ROLES, default=list(ROLES))
    args = p.parse_args()
    port_file = Path(tempfile.mkdtemp()) / "fake.port"
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "load_sdk.py"), "--serve-fake", str(port_file)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        while not port_file.exists() or not port_file.read_text():
            if fake.poll() is not None:
                raise SystemExit("the fake OpenAI server did not start")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        figures = [
            asyncio.run(run(url, args.turns, args.concurrency, args.roles))
            for _ in range(args.runs)
        ]
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    per_turn = sorted(f["cpu_ms_per_turn"] for f in figures)
    print(
        f"{args.turns} turns, {args.concurrency} at once: client CPU per turn "
        f"({' + '.join(args.roles)}) "
        f"median {per_turn[len(per_turn) // 2]:.2f} ms (runs: "
        + ", ".join(f"{v:.2f}" for v in per_turn)
        + f"); load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
