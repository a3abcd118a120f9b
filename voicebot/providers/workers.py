"""A bounded pool for CPU-heavy provider work (local STT/TTS, model inference).

The event loop must never run inference itself: one 300 ms Whisper decode on the loop would
stall every other call's audio. Work is queued to a fixed number of threads (the engines used here
release the GIL) and the queue is bounded, so an overloaded process refuses new work quickly with
`Overloaded` instead of letting latency grow without limit. Queue wait is measured because it is
the first sign of overload.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..stats import percentile
from .errors import ProviderError

T = TypeVar("T")


class Overloaded(ProviderError):
    def __init__(self, queued: int) -> None:
        super().__init__(
            f"inference queue is full ({queued} jobs waiting); the process is overloaded",
            retryable=True,
        )


WORKER_NICENESS = 5


def _lower_priority() -> None:
    """Inference threads yield the CPU to the event loop thread: on a 2-core machine two busy
    decoders would otherwise starve the loop and every call's audio with it."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)


class WorkerPool:
    def __init__(
        self,
        max_workers: int | None = None,
        max_queue: int | None = None,
        observe_wait: Callable[[float], None] | None = None,
    ) -> None:
        self.max_workers = max_workers or max(1, os.cpu_count() or 1)
        self.max_queue = max_queue if max_queue is not None else 32 * self.max_workers
        self._executor = ThreadPoolExecutor(
            self.max_workers, thread_name_prefix="voicebot-infer", initializer=_lower_priority
        )
        self._slots = asyncio.Semaphore(self.max_workers)
        self._waiting = 0
        self._waits_ms: deque[float] = deque(maxlen=1000)
        self.completed = 0
        self._observe_wait = observe_wait  # each wait in seconds, for the /metrics histogram

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._waiting >= self.max_queue:
            raise Overloaded(self._waiting)
        queued_at = time.perf_counter()
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        waited = time.perf_counter() - queued_at
        self._waits_ms.append(waited * 1000)
        if self._observe_wait is not None:
            self._observe_wait(waited)
        loop = asyncio.get_running_loop()
        try:
            job = self._executor.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        # the slot is freed when the thread is done, not when a cancelled caller stops waiting:
        # a barge-in must not let more jobs run at once than there are workers
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._job_done))
        return await asyncio.wrap_future(job, loop=loop)

    def _job_done(self) -> None:
        self._slots.release()
        self.completed += 1

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker now."""
        return self._waiting

    def stats(self) -> dict[str, Any]:
        waits = list(self._waits_ms)

        def pct(p: float) -> float:
            return round(percentile(waits, p), 2)

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
