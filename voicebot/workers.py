"""A bounded pool for CPU-heavy provider work (local STT/TTS, model inference).

The event loop must never run inference itself: one 300 ms Whisper decode on the loop would
stall every other call's audio. Work is queued to a fixed number of threads (the engines used here
release the GIL) and the queue is bounded, so an overloaded process refuses new work quickly with
`Overloaded` instead of letting latency grow without limit. Queue wait is measured because it is
the first sign of overload.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .providers import ProviderError

T = TypeVar("T")


class Overloaded(ProviderError):
    def __init__(self, queued: int) -> None:
        super().__init__(
            f"inference queue is full ({queued} jobs waiting); the process is overloaded",
            retryable=True,
        )


class WorkerPool:
    def __init__(self, max_workers: int | None = None, max_queue: int | None = None) -> None:
        self.max_workers = max_workers or max(1, os.cpu_count() or 1)
        self.max_queue = max_queue if max_queue is not None else 32 * self.max_workers
        self._executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix="voicebot-infer")
        self._slots = asyncio.Semaphore(self.max_workers)
        self._waiting = 0
        self._waits_ms: deque[float] = deque(maxlen=1000)
        self.completed = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._waiting >= self.max_queue:
            raise Overloaded(self._waiting)
        queued_at = time.perf_counter()
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            self._waits_ms.append((time.perf_counter() - queued_at) * 1000)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, fn, *args)
        finally:
            self._slots.release()
            self.completed += 1

    def stats(self) -> dict[str, Any]:
        waits = sorted(self._waits_ms)

        def pct(p: float) -> float:
            return round(waits[min(len(waits) - 1, int(p * len(waits)))], 2) if waits else 0.0

        return {
            "workers": self.max_workers,
            "queued": self._waiting,
            "max_queue": self.max_queue,
            "completed": self.completed,
            "wait_ms_p50": pct(0.5),
            "wait_ms_p95": pct(0.95),
        }

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
