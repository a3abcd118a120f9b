"""Fallback chains: several providers for one role, tried in order, so a failing or slow provider
costs the caller a moment instead of the call.

A chain implements the same interface as its members. A member that raises, or gives no first
result within the chain's `budget` (seconds), hands the request to the next one. For LLM and TTS
that is possible only before the first chunk was passed on: after that the caller has already
heard or seen part of the answer, so the error goes up and the call apologises. STT keeps a
bounded copy of the current utterance's audio, so the next recogniser gets the whole utterance
even when the first one fails halfway through it.

A member that failed is tried last for `cooldown` seconds, so every call does not pay the
primary's time budget again while it is down. That health is process-wide, like the providers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from .base import (
    LLM,
    STT,
    TTS,
    AudioChunk,
    AudioFormat,
    Message,
    Provider,
    ProviderError,
    STTStream,
    ToolCall,
    ToolSpec,
    Transcript,
    Usage,
)

log = logging.getLogger("voicebot.fallback")


class _Health:
    """Which members failed recently; healthy ones first, in configured order."""

    def __init__(self, size: int, cooldown: float) -> None:
        self._failed_at: list[float | None] = [None] * size
        self._cooldown = cooldown

    def order(self) -> list[int]:
        now = time.monotonic()
        fresh = [i for i, t in enumerate(self._failed_at) if t is None or now - t >= self._cooldown]
        cooling = sorted(
            (i for i in range(len(self._failed_at)) if i not in fresh),
            key=lambda i: self._failed_at[i] or 0.0,
        )
        return fresh + cooling

    def failed(self, index: int) -> None:
        self._failed_at[index] = time.monotonic()

    def ok(self, index: int) -> None:
        self._failed_at[index] = None


def _budget(seconds: float | None) -> Any:
    return asyncio.timeout(seconds) if seconds is not None else contextlib.nullcontext()


def _describe(provider: Provider, exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"{provider.name}: no result within the time budget"
    return f"{provider.name}: {exc}"


class _Chain(Provider):
    """Members are started by whoever built the chain; the chain owns them from then on."""

    name = "fallback"
    role = ""

    def __init__(
        self, providers: Sequence[Provider], *, budget: float | None = None, cooldown: float = 30.0
    ) -> None:
        if not providers:
            raise ValueError("a fallback chain needs at least one provider")
        super().__init__(None, providers[0].workers)
        self.providers = list(providers)
        self.budget = budget
        self._health = _Health(len(providers), cooldown)
        #: told (role, provider name) each time a member fails and the next one is tried
        self.on_fallback: Callable[[str, str], None] | None = None

    async def aclose(self) -> None:
        for p in self.providers:
            try:
                await p.aclose()
            except Exception:
                log.exception("closing %s failed", p.name)

    def health(self) -> dict[str, Any]:
        members = [p.health() for p in self.providers]
        ok = any(m.get("status") == "ok" for m in members)
        return {"name": self.name, "status": "ok" if ok else "degraded", "members": members}

    def _fell_back(self, provider: Provider) -> None:
        if self.on_fallback is not None:
            self.on_fallback(self.role, provider.name)

    def _all_failed(self, errors: list[str]) -> ProviderError:
        return ProviderError(
            f"all {len(self.providers)} {self.role} providers failed: " + "; ".join(errors),
            provider=self.name,
        )

    async def _first_then_rest(
        self, open_stream: Callable[[Provider], AsyncIterator[Any]]
    ) -> AsyncIterator[Any]:
        """Yield from the first member that produces a first item within the budget."""
        errors: list[str] = []
        for index in self._health.order():
            provider = self.providers[index]
            stream = open_stream(provider)
            try:
                async with _budget(self.budget):
                    first = await anext(stream)
            except StopAsyncIteration:
                self._health.ok(index)
                return
            except Exception as exc:
                await _close_quietly(stream)
                self._health.failed(index)
                errors.append(_describe(provider, exc))
                log.warning("%s %s failed, handing over: %s", self.role, provider.name, errors[-1])
                self._fell_back(provider)
                continue
            self._health.ok(index)
            try:
                yield first
                async for item in stream:
                    yield item
            except ProviderError:
                raise
            except Exception as exc:
                raise ProviderError(
                    f"{provider.name}: {exc}", provider=provider.name, retryable=True
                ) from exc
            finally:
                await stream.aclose()
            return
        raise self._all_failed(errors)


async def _close_quietly(stream: Any) -> None:
    with contextlib.suppress(Exception):
        await stream.aclose()


class FallbackLLM(_Chain, LLM):
    role = "llm"

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[str | ToolCall | Usage]:
        return self._first_then_rest(lambda p: p.stream(messages, tools))  # type: ignore[attr-defined]


class FallbackTTS(_Chain, TTS):
    role = "tts"

    def synthesize(self, text: str, preferred: AudioFormat) -> AsyncIterator[AudioChunk]:
        return self._first_then_rest(lambda p: p.synthesize(text, preferred))  # type: ignore[attr-defined]


class FallbackSTT(_Chain, STT):
    """`budget` bounds each `send()` and `finalize()` of the current member."""

    role = "stt"

    def __init__(
        self,
        providers: Sequence[STT],
        *,
        budget: float | None = None,
        cooldown: float = 30.0,
        max_buffer_seconds: float = 30.0,
    ) -> None:
        super().__init__(providers, budget=budget, cooldown=cooldown)
        self.max_buffer_seconds = max_buffer_seconds
        # The runtime decides turn-taking per call from this; see FallbackSTTStream.endpointing.
        self.endpointing = providers[0].endpointing

    def stream(self, sample_rate: int, *, language: str | None = None) -> STTStream:
        return FallbackSTTStream(self, sample_rate, language)


class FallbackSTTStream(STTStream):
    """Feeds the current member and keeps the utterance's audio (the newest
    `max_buffer_seconds`) to replay into the next member if the current one fails."""

    REPLAY_CHUNK_SECONDS = 0.1

    def __init__(self, chain: FallbackSTT, sample_rate: int, language: str | None) -> None:
        self._chain = chain
        self._rate = sample_rate
        self._language = language
        self._order = chain._health.order()
        self._pos = 0
        self._current: STTStream | None = None
        # Frames, not one bytearray: dropping the oldest audio must be O(1) per frame when the
        # runtime streams every frame (endpointing mode) and the buffer is full.
        self._buf: deque[bytes] = deque()
        self._buffered = 0
        self._limit = int(chain.max_buffer_seconds * sample_rate) * 2
        self._replay = False
        self._errors: list[str] = []

    @property
    def endpointing(self) -> bool:
        """Whether the member now in use ends turns itself (it can change after a hand-over)."""
        return self._member.endpointing

    @property
    def _member(self) -> STT:
        return self._chain.providers[self._order[self._pos]]  # type: ignore[return-value]

    def _stream(self) -> STTStream:
        if self._current is None:
            self._current = self._member.stream(self._rate, language=self._language)
            self._current.on_event = self.emit
        return self._current

    async def send(self, pcm: bytes) -> None:
        self._buf.append(pcm)
        self._buffered += len(pcm)
        while self._buffered > self._limit and len(self._buf) > 1:
            self._buffered -= len(self._buf.popleft())
        await self._run(lambda s: s.send(pcm), replay_covers_it=True)

    async def finalize(self) -> Transcript:
        try:
            return await self._run(lambda s: s.finalize(), replay_covers_it=False)
        finally:
            self._clear()

    async def speculate(self) -> None:
        await self._run(lambda s: s.speculate(), replay_covers_it=True)

    async def cancel(self) -> None:
        self._clear()
        if self._current is not None:
            with contextlib.suppress(Exception):
                await self._current.cancel()

    async def aclose(self) -> None:
        self._clear()
        if self._current is not None:
            await _close_quietly(self._current)
            self._current = None

    async def _run(self, op: Callable[[STTStream], Any], *, replay_covers_it: bool) -> Any:
        while True:
            stream = self._stream()
            try:
                async with _budget(self._chain.budget):
                    if self._replay:
                        await self._replay_into(stream)
                        self._replay = False
                        if replay_covers_it:
                            return None
                    result = await op(stream)
                self._chain._health.ok(self._order[self._pos])
                return result
            except Exception as exc:
                await self._hand_over(exc)

    def _clear(self) -> None:
        self._buf.clear()
        self._buffered = 0

    async def _replay_into(self, stream: STTStream) -> None:
        step = max(2, int(self.REPLAY_CHUNK_SECONDS * self._rate) * 2)
        audio = b"".join(self._buf)
        for i in range(0, len(audio), step):
            await stream.send(audio[i : i + step])

    async def _hand_over(self, exc: Exception) -> None:
        failed = self._member
        self._chain._health.failed(self._order[self._pos])
        self._errors.append(_describe(failed, exc))
        log.warning("stt %s failed mid-call, handing over: %s", failed.name, self._errors[-1])
        self._chain._fell_back(failed)
        if self._current is not None:
            await _close_quietly(self._current)
            self._current = None
        if self._pos + 1 >= len(self._order):
            raise self._chain._all_failed(self._errors) from exc
        self._pos += 1
        self._replay = True


ROLE_CHAINS: dict[str, type[_Chain]] = {"stt": FallbackSTT, "tts": FallbackTTS, "llm": FallbackLLM}


def build_chain(
    role: str,
    providers: Sequence[Provider],
    *,
    budget: float | None = None,
    cooldown: float = 30.0,
) -> Provider:
    """One provider for `role` from the started providers a config list names, in order.

    A single provider is returned as is. `budget` is the time (seconds) a member gets for its
    first result before the next one is tried; None waits for the member's own timeout.
    """
    if not providers:
        raise ValueError(f"no provider configured for '{role}'")
    if len(providers) == 1:
        return providers[0]
    chain = ROLE_CHAINS.get(role)
    if chain is None:
        raise ValueError(
            f"'{role}' does not take a fallback list (only {', '.join(ROLE_CHAINS)} do): "
            "configure a single provider"
        )
    return chain(providers, budget=budget, cooldown=cooldown)
