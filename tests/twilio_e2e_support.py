"""Shared pieces of the phone-call tests: a hook recorder and leak checks."""

from __future__ import annotations

import asyncio
from typing import Any

from voicebot.hookspecs import hookimpl
from voicebot.providers import AudioFormat
from voicebot.server.telephony import TELEPHONY

from .twilio_phone import to_mulaw_8k


class Recorder:
    """A plugin registered on the running server: what the calls did, as hooks saw it."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.transcripts: list[str] = []
        self.spoken: list[tuple[str, str, bool]] = []
        self.ended: list[str] = []
        self.changed = asyncio.Event()

    def _poke(self) -> None:
        self.changed.set()

    @hookimpl
    def call_started(self, call: Any) -> None:
        self.calls.append(call)
        self._poke()

    @hookimpl
    def transcript(self, call: Any, transcript: Any) -> None:
        self.transcripts.append(transcript.text)
        self._poke()

    @hookimpl
    def bot_spoke(self, call: Any, text: str, heard: str, interrupted: bool) -> None:
        self.spoken.append((text, heard, interrupted))
        self._poke()

    @hookimpl
    def call_ended(self, call: Any, reason: str) -> None:
        self.ended.append(reason)
        self._poke()

    async def wait(self, pred: Any, within_s: float = 10.0) -> None:
        async def check() -> None:
            while not pred():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(check(), within_s)


def record(server: Any) -> Recorder:
    rec = Recorder()
    server.runtime.pm.register(rec)
    return rec


async def synthesize(runtime: Any, text: str) -> bytes:
    """Speech for the caller's side, from the server's own TTS, as 8 kHz μ-law."""
    tts = runtime.providers["tts"]
    chunks = [c async for c in tts.synthesize(text, AudioFormat(16000, "pcm_s16le"))]
    rate = chunks[0].sample_rate
    return to_mulaw_8k(b"".join(c.data for c in chunks), rate)


def call_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("call-")]


async def assert_nothing_left(server: Any) -> None:
    """Once every media-stream handler has returned, no call and no call task may remain."""
    await asyncio.wait_for(server.runner.app[TELEPHONY].idle.wait(), 5)
    assert not server.runtime.calls, server.runtime.calls
    assert call_tasks() == []
