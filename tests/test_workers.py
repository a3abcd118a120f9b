"""The inference pool: bounded, back-pressure, slots held until the thread is really done."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from voicebot.providers.workers import WORKER_NICENESS, Overloaded, WorkerPool


async def test_cancelled_caller_keeps_the_slot_until_the_job_ends():
    pool = WorkerPool(max_workers=1, max_queue=4)
    release = threading.Event()
    started = threading.Event()

    def slow() -> str:
        started.set()
        release.wait(5)
        return "slow"

    first = asyncio.ensure_future(pool.run(slow))
    await asyncio.to_thread(started.wait, 5)
    first.cancel()
    second = asyncio.ensure_future(pool.run(lambda: "second"))
    await asyncio.sleep(0.05)
    assert not second.done()  # the only worker is still busy with the cancelled job
    release.set()
    assert await asyncio.wait_for(second, 5) == "second"
    assert pool.completed == 2
    pool.shutdown()


async def test_full_queue_refuses_quickly():
    pool = WorkerPool(max_workers=1, max_queue=1)
    gate = threading.Event()
    busy = asyncio.ensure_future(pool.run(gate.wait, 5))
    await asyncio.sleep(0)
    queued = asyncio.ensure_future(pool.run(lambda: 1))
    await asyncio.sleep(0)
    with pytest.raises(Overloaded):
        await pool.run(lambda: 2)
    gate.set()
    assert await busy is True and await queued == 1
    stats = pool.stats()
    assert stats["completed"] == 2 and stats["queued"] == 0
    pool.shutdown()


async def test_worker_threads_run_at_lower_priority():
    pool = WorkerPool(max_workers=1)
    nice = await pool.run(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    assert nice == os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICENESS
    pool.shutdown()
