"""What the `rnnoise` denoiser costs per 20 ms frame, where, and the delay it adds:

- CPU per frame in the worker thread (`RNNoiseStream.process`, resampling included), 8/16 kHz;
- event-loop CPU per frame for the call's `DenoiseStage` (hand-off to a worker and back): the
  part that could stall other calls;
- the delay a frame sees: the algorithmic delay (`delay_ms`: RNNoise's two 10 ms frames and the
  resamplers) plus the wait for a worker, p50/p95, with `--calls` calls sending in real time.

    python benchmarks/denoise_cost.py [--calls 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import numpy as np

from voicebot.call.denoise import DenoiseStage
from voicebot.stats import percentile
from voicebot_plugins.denoise_rnnoise import RNNoiseDenoiser

FRAME_MS = 20


def noise_frames(rate: int, seconds: float, seed: int) -> list[bytes]:
    size = rate * FRAME_MS // 1000
    x = np.random.default_rng(seed).standard_normal(int(rate * seconds) // size * size) * 1000
    return [f.astype("<i2").tobytes() for f in x.reshape(-1, size)]


def worker_cost(d: RNNoiseDenoiser, rate: int) -> float:
    frames, stream = noise_frames(rate, 5, 1), d.stream(rate)
    start = time.thread_time()
    for f in frames:
        stream.process(f)
    return (time.thread_time() - start) / len(frames) * 1e6


async def call(d: RNNoiseDenoiser, rate: int, seconds: float, seed: int, waits: list[float]):
    frames = noise_frames(rate, seconds, seed)
    sent: list[float] = []
    done = asyncio.Event()
    stage: DenoiseStage

    def sink(_frame: bytes) -> None:  # frames come in order (a dropped one skews the rest)
        waits_of_call.append(1000 * (time.perf_counter() - sent.pop(0)))
        if len(waits_of_call) + stage.dropped == len(frames):
            done.set()

    waits_of_call: list[float] = []
    stage = DenoiseStage(d.stream(rate), d.frame_pool, sink, FRAME_MS, f"c{seed}")
    task = asyncio.ensure_future(stage.run())
    start = time.perf_counter()
    for i, f in enumerate(frames):
        await asyncio.sleep(max(0.0, start + i * FRAME_MS / 1000 - time.perf_counter()))
        sent.append(time.perf_counter())
        stage.push(f)
    await asyncio.wait_for(done.wait(), 30)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    waits += waits_of_call
    return stage


async def main(args) -> None:
    d = RNNoiseDenoiser()
    await d.start()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for rate in (8000, 16000):
        print(
            f"{rate} Hz: {worker_cost(d, rate):.0f} µs of worker CPU per {FRAME_MS} ms frame; "
            f"algorithmic delay {d.stream(rate).delay_ms:.0f} ms"
        )
    waits: list[float] = []
    loop_start = time.thread_time()
    stages = await asyncio.gather(
        *(call(d, 8000, args.seconds, i, waits) for i in range(args.calls))
    )
    loop_cpu = time.thread_time() - loop_start
    frames = len(waits)
    print(
        f"{args.calls} calls at 8 kHz in real time: event-loop CPU "
        f"{loop_cpu / frames * 1e6:.0f} µs per frame (the whole loop: pacing, hand-off, sink); "
        f"push → sink p50 {percentile(waits, 0.5):.1f} ms, p95 {percentile(waits, 0.95):.1f} ms, "
        f"n={frames}; passed on uncleaned {sum(s.passed for s in stages)}, dropped "
        f"{sum(s.dropped for s in stages)}"
    )
    await d.aclose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main(ap.parse_args()))
