"""Stub providers with fixed, configurable delays: for tests and for measuring the runtime's own
overhead (benchmarks subtract the delays declared here from the measured voice-to-voice time)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from voicebot.hookspecs import hookimpl
from voicebot.providers import (
    LLM,
    TTS,
    AudioChunk,
    AudioFormat,
    BatchSTT,
    Message,
    ToolCall,
    ToolSpec,
    Transcript,
    Usage,
)


class StubSTT(BatchSTT):
    """Answers every non-empty utterance with `text`, or, with `per_burst`, with one phrase per
    loud burst in the audio decoded: like a real recogniser, audio holding two bursts comes back
    as two phrases, so a test sees what one decode was given."""

    name = "stub"

    @dataclass
    class Options:
        text: str = "hello there"
        delay_ms: int = 0
        #: the phrase said by the 1st, 2nd, … burst of sound (over 50 ms apart) in an utterance
        per_burst: list[str] = field(default_factory=list)

    async def transcribe(self, pcm: bytes, sample_rate: int) -> Transcript:
        if self.options.delay_ms:
            await asyncio.sleep(self.options.delay_ms / 1000)
        if not pcm:
            return Transcript("", final=True, confidence=0.0)
        if self.options.per_burst:
            n = _bursts(pcm, sample_rate)
            return Transcript(" ".join(self.options.per_burst[:n]), final=True, confidence=1.0)
        return Transcript(self.options.text, final=True, confidence=1.0)


def _bursts(pcm: bytes, sample_rate: int) -> int:
    """Runs of 10 ms blocks louder than a whisper, counted as separate when 50 ms apart."""
    block = sample_rate // 100
    x = np.frombuffer(pcm[: len(pcm) // (2 * block) * 2 * block], "<i2").astype(np.float32)
    loud = np.sqrt((x.reshape(-1, block) ** 2).mean(axis=1)) > 500
    runs, quiet = 0, 5
    for is_loud in loud:
        if is_loud and quiet >= 5:
            runs += 1
        quiet = 0 if is_loud else quiet + 1
    return runs


class StubTTS(TTS):
    """A 440 Hz tone, `ms_per_char` long per character, in `chunk_ms` chunks."""

    name = "stub"

    @dataclass
    class Options:
        sample_rate: int = 16000
        ms_per_char: float = 60.0
        first_chunk_delay_ms: int = 0
        chunk_ms: int = 100

    async def synthesize(self, text: str, preferred: AudioFormat) -> AsyncIterator[AudioChunk]:
        o = self.options
        if o.first_chunk_delay_ms:
            await asyncio.sleep(o.first_chunk_delay_ms / 1000)
        total = int(len(text) * o.ms_per_char * o.sample_rate / 1000)
        t = np.arange(total) / o.sample_rate
        pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()
        step = o.sample_rate * o.chunk_ms // 1000 * 2
        for i in range(0, len(pcm), step):
            yield AudioChunk(pcm[i : i + step], o.sample_rate)
            await asyncio.sleep(0)


class StubLLM(LLM):
    """Replies `reply` (with `{text}` replaced by the user's last words), word by word."""

    name = "stub"

    @dataclass
    class Options:
        reply: str = "You said {text}. Anything else?"
        first_token_ms: int = 0
        token_ms: int = 0

    async def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[str | ToolCall | Usage]:
        last = next((m.content for m in reversed(messages) if m.role == "user"), "")
        words = self.options.reply.format(text=last).split(" ")
        if self.options.first_token_ms:
            await asyncio.sleep(self.options.first_token_ms / 1000)
        for i, word in enumerate(words):
            if i and self.options.token_ms:
                await asyncio.sleep(self.options.token_ms / 1000)
            yield word if i == 0 else " " + word
        yield Usage("stub", input_tokens=len(last.split()), output_tokens=len(words))


@hookimpl
def register_stt(register):
    register(StubSTT)


@hookimpl
def register_tts(register):
    register(StubTTS)


@hookimpl
def register_llm(register):
    register(StubLLM)
