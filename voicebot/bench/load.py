"""Simulated callers: each streams its microphone in real time for the whole call (noise between
turns, the utterance for a turn), takes `turns` turns, and times every answer.

A turn is taken once the bot is quiet and `gap_ms` of the caller's own silence has passed (so a
greeting is heard out first). It is answered when the first frame of reply audio arrives within
`reply_timeout_s` of the utterance's last frame; voice-to-voice is that wait, as the caller
hears it (it includes the server's VAD hangover).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .callers import FRAME_MS, PROTOCOLS, RATE

FRAME_BYTES = RATE * FRAME_MS // 1000 * 2


def voiced(ms: int) -> bytes:
    """A synthetic voiced signal (harmonics, gliding pitch, syllable-rate envelope) that every
    VAD takes for speech."""
    n = RATE * ms // 1000
    t = np.arange(n) / RATE
    f0 = 120 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 30)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return (x / np.abs(x).max() * 12000).astype("<i2").tobytes()


def noise_frame(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(FRAME_BYTES // 2) * 30).astype("<i2").tobytes()


def frames(pcm: bytes) -> list[bytes]:
    pcm += bytes(-len(pcm) % FRAME_BYTES)
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


@dataclass
class Plan:
    protocol: str
    url: str
    calls: int
    turns: int
    ramp_s: float
    utterance: list[bytes]
    gap_ms: int = 1000
    reply_timeout_s: float = 10.0


@dataclass
class Results:
    turns_sent: int = 0
    turns_answered: int = 0
    v2v_ms: list[float] = field(default_factory=list)
    #: the server's own figure per turn, where the door reports it (browser)
    server_v2v_ms: list[float] = field(default_factory=list)
    send_lag_ms: list[float] = field(default_factory=list)
    failed_calls: list[str] = field(default_factory=list)
    calls_done: int = 0


class SimulatedCall:
    def __init__(self, i: int, plan: Plan, results: Results, on_turn: Callable[[], None]):
        self.plan = plan
        self.results = results
        self.on_turn = on_turn
        self.quiet = noise_frame(i)
        self.speech: list[bytes] = []
        self.bot_quiet = asyncio.Event()
        self.bot_quiet.set()
        self.heard = asyncio.Event()
        self.sent = asyncio.Event()  # the utterance's last frame went out
        self.sent_at = 0.0
        self.caller = PROTOCOLS[plan.protocol](
            plan.url, self._on_audio, self._on_speaking, results.server_v2v_ms.append
        )

    def _on_audio(self) -> None:
        if self.sent.is_set() and not self.heard.is_set():
            self.results.v2v_ms.append((time.monotonic() - self.sent_at) * 1000)
            self.heard.set()

    def _on_speaking(self, speaking: bool) -> None:
        (self.bot_quiet.clear if speaking else self.bot_quiet.set)()

    async def _microphone(self) -> None:
        """20 ms frames on a real-time clock, whatever else happens, like a real microphone."""
        start = time.monotonic()
        n = 0
        while True:
            due = start + n * FRAME_MS / 1000
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.results.send_lag_ms.append(max(0.0, time.monotonic() - due) * 1000)
            if self.speech:
                await self.caller.send(self.speech.pop(0))
                if not self.speech:
                    self.sent_at = time.monotonic()
                    self.sent.set()
            else:
                await self.caller.send(self.quiet)
            n += 1

    async def _quiet_for(self, seconds: float) -> None:
        """Until the bot is quiet and has been for `seconds` (the caller's pause)."""
        while True:
            await self.bot_quiet.wait()
            await asyncio.sleep(seconds)
            if self.bot_quiet.is_set():
                return

    async def run(self) -> None:
        await self.caller.connect()
        mic = asyncio.ensure_future(self._microphone())
        try:
            for _ in range(self.plan.turns):
                await asyncio.wait_for(
                    self._quiet_for(self.plan.gap_ms / 1000), self.plan.reply_timeout_s * 3
                )
                self.heard.clear()
                self.sent.clear()
                self.speech = list(self.plan.utterance)
                self.results.turns_sent += 1
                await self.sent.wait()
                try:
                    await asyncio.wait_for(self.heard.wait(), self.plan.reply_timeout_s)
                    self.results.turns_answered += 1
                except TimeoutError:
                    pass
                self.on_turn()
            # hang up once the last answer has been heard out
            await asyncio.wait_for(self.bot_quiet.wait(), self.plan.reply_timeout_s * 3)
        finally:
            mic.cancel()
            await asyncio.gather(mic, return_exceptions=True)
            await self.caller.close()


async def run_calls(
    plan: Plan, on_turn: Callable[[], None], milestone: Callable[[str], None] = lambda _: None
) -> Results:
    """All the calls, started evenly over `ramp_s`; every one ends by itself (bounded waits).
    `milestone` is told "all_up" once every call is placed and "first_done" when one ends."""
    results = Results()

    async def one(i: int) -> None:
        await asyncio.sleep(plan.ramp_s * i / max(1, plan.calls))
        try:
            await SimulatedCall(i, plan, results, on_turn).run()
        except Exception as exc:  # one call's failure is a figure, not the end of the bench
            results.failed_calls.append(f"{type(exc).__name__}: {exc}"[:200])
        finally:
            results.calls_done += 1
            milestone("first_done")

    tasks = [asyncio.ensure_future(one(i)) for i in range(plan.calls)]
    await asyncio.sleep(plan.ramp_s)
    milestone("all_up")
    await asyncio.gather(*tasks)
    return results
