"""End-to-end deadlines on every provider step, whatever the plugin does.

A provider's own `timeout` bounds each read, so a server that drips one byte every couple of
seconds never trips it, and the caller would sit in silence for as long as the server cares to
drip. So each step the call takes through a provider is bounded here: the time to its first
result and its total time. Only time spent waiting for the provider counts; a TTS stream held
back because the caller is still hearing the previous second of audio is not slow.

A step over its deadline raises `DeadlineExceeded`, a `ProviderError`, so the call reacts as to
any provider failure: a fallback chain hands over (each member gets its first-result time in
turn), or the caller hears the apology.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .base import LLM, Message, ProviderError, STTStream, ToolCall, ToolSpec, Transcript, Usage

T = TypeVar("T")

#: How long a recogniser that missed its deadline may take to close before it is abandoned.
CLOSE_GRACE_S = 1.0

# ------------------------------------------------------------------------------------ config


@dataclass
class STTDeadline:
    """`first_result_ms`: any one call into the recogniser (a write of audio, the transcript).
    `total_ms`: from the end of the caller's turn to the transcript, audio still queued for the
    recogniser included. Roomy: a local Whisper on a busy machine is slow, not stalled."""

    first_result_ms: int = field(default=10000, metadata={"min": 1})
    total_ms: int = field(default=30000, metadata={"min": 1})


@dataclass
class LLMDeadline:
    """One reply: to its first text or tool call, and in all."""

    first_result_ms: int = field(default=5000, metadata={"min": 1})
    total_ms: int = field(default=30000, metadata={"min": 1})


@dataclass
class TTSDeadline:
    """One sentence: to its first audio, and in all."""

    first_result_ms: int = field(default=8000, metadata={"min": 1})
    total_ms: int = field(default=30000, metadata={"min": 1})


@dataclass
class DeadlinesConfig:
    """`pipeline.deadlines`: per provider role."""

    stt: STTDeadline = field(default_factory=STTDeadline)
    llm: LLMDeadline = field(default_factory=LLMDeadline)
    tts: TTSDeadline = field(default_factory=TTSDeadline)


@dataclass(frozen=True)
class Deadline:
    """Seconds to the first result and in all, for one step."""

    first_s: float
    total_s: float

    @classmethod
    def of(cls, cfg: STTDeadline | LLMDeadline | TTSDeadline, members: int = 1) -> Deadline:
        """The step's deadline. A fallback chain of several `members` bounds each member's
        first result itself (its budget, see `Runtime._chain`), so that each gets its full
        time in turn; the step as a whole is then bounded by its total only."""
        first, total = cfg.first_result_ms / 1000, cfg.total_ms / 1000
        if members > 1:
            first = total = max(total, members * first)
        return cls(first, max(first, total))


class DeadlineExceeded(ProviderError):
    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message, provider=provider, retryable=True)


# ----------------------------------------------------------------------------------- streams


@contextlib.asynccontextmanager
async def _within(seconds: float) -> AsyncIterator[asyncio.Timeout]:
    """`asyncio.timeout(seconds)` with its timer scheduled in an empty context. A cancelled
    timer stays in the loop's heap until its time comes, holding the context it was scheduled
    in; the call's context holds the call, which would then outlive its hang-up by a deadline."""
    async with asyncio.timeout(None) as budget:
        when = asyncio.get_running_loop().time() + max(0.0, seconds)
        contextvars.Context().run(budget.reschedule, when)
        yield budget


async def bounded(
    stream: AsyncIterator[T], deadline: Deadline, *, provider: str, what: str
) -> AsyncIterator[T]:
    """`stream`, failing with `DeadlineExceeded` when its first item or the provider time of
    all of them takes too long. Closing this closes `stream` (barge-in reaches upstream)."""
    loop = asyncio.get_running_loop()
    spent = 0.0
    first = True
    try:
        while True:
            allowed = deadline.total_s - spent
            if first:
                allowed = min(allowed, deadline.first_s)
            began = loop.time()
            budget: asyncio.Timeout | None = None
            try:
                async with _within(allowed) as budget:
                    item = await anext(stream)
            except StopAsyncIteration:
                return
            except TimeoutError:
                if budget is None or not budget.expired():
                    raise
                message = _late(provider, what, deadline, first)
                raise DeadlineExceeded(message, provider=provider) from None
            spent += loop.time() - began
            first = False
            yield item
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()  # type: ignore[attr-defined]


def _late(provider: str, what: str, deadline: Deadline, first: bool) -> str:
    if first:
        return f"{provider}: no {what} within {deadline.first_s:g} s"
    return f"{provider}: {what} not complete within {deadline.total_s:g} s"


class BoundedLLM(LLM):
    """The LLM a dialogue sees: the process's provider (or chain) with the reply deadline."""

    def __init__(self, inner: Any, deadline: Deadline) -> None:
        # Not Provider.__init__: the provider is configured and started already.
        self.inner = inner
        self.name = getattr(inner, "name", "llm")  # type: ignore[misc]
        self.options = getattr(inner, "options", None)
        self.deadline = deadline

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[str | ToolCall | Usage]:
        return bounded(
            self.inner.stream(messages, tools), self.deadline, provider=self.name, what="reply"
        )

    def health(self) -> dict[str, Any]:
        return self.inner.health()


class BoundedSTTStream(STTStream):
    """A call's recogniser with the STT deadline: each call into it within `first_s`, and the
    transcript within `total_s` of the end of the caller's turn (`turn_ended()`), audio still
    queued for it included. A count from the turn's end, not a sum over the call: a recogniser
    that hears hours of silence is not slow.

    After a missed deadline the stream is discarded: audio for the rest of that utterance is
    dropped, its `finalize()` fails at once (the caller hears the apology without a second
    wait), and the next utterance gets a new stream, so one stall does not cost the call."""

    def __init__(
        self,
        open_stream: Callable[[], STTStream],
        deadline: Deadline,
        *,
        provider: str,
        endpointing: bool,
    ) -> None:
        self._open = open_stream
        self._endpointing = endpointing
        self._deadline = deadline
        self._provider = provider
        self._inner: STTStream | None = None
        self._due: float | None = None  # loop time the transcript is due by
        self._failed: DeadlineExceeded | None = None
        self._stream()

    @property
    def endpointing(self) -> bool:
        """The inner stream's (a fallback chain's can change mid-call), else the provider's."""
        return bool(getattr(self._inner, "endpointing", self._endpointing))

    def _stream(self) -> STTStream:
        if self._inner is None:
            self._inner = self._open()
            self._inner.on_event = self.emit
        return self._inner

    def turn_ended(self) -> None:
        """The caller's turn is over: its transcript is due within `total_s` from now."""
        if self._due is None:
            self._due = asyncio.get_running_loop().time() + self._deadline.total_s

    async def send(self, pcm: bytes) -> None:
        if self._failed is None:
            await self._run(lambda s: s.send(pcm), "audio")

    async def speculate(self) -> None:
        if self._failed is None:
            await self._run(lambda s: s.speculate(), "audio")

    async def finalize(self) -> Transcript:
        failed, self._failed = self._failed, None
        try:
            if failed is not None:
                raise DeadlineExceeded(str(failed), provider=self._provider)
            return await self._run(lambda s: s.finalize(), "transcript")
        finally:
            self._due = None

    async def cancel(self) -> None:
        self._failed, self._due = None, None
        if self._inner is not None:
            await self._run(lambda s: s.cancel(), "audio")

    async def aclose(self) -> None:
        await self._discard()

    async def _run(self, op: Callable[[STTStream], Awaitable[T]], what: str) -> T:
        d, name = self._deadline, self._provider
        allowed = d.first_s
        if self._due is not None:
            allowed = min(allowed, self._due - asyncio.get_running_loop().time())
        budget: asyncio.Timeout | None = None
        try:
            async with _within(allowed) as budget:
                return await op(self._stream())
        except TimeoutError:
            if budget is None or not budget.expired():
                raise
            if allowed < d.first_s:
                message = f"{name}: no transcript within {d.total_s:g} s of the end of the turn"
            elif what == "transcript":
                message = f"{name}: no transcript within {d.first_s:g} s"
            else:
                message = f"{name}: an audio write took over {d.first_s:g} s"
            failed = DeadlineExceeded(message, provider=name)
            await self._discard()
            if what != "transcript":
                self._failed = failed
            raise failed from None

    async def _discard(self) -> None:
        stream, self._inner = self._inner, None
        if stream is not None:
            with contextlib.suppress(Exception, TimeoutError):
                async with _within(CLOSE_GRACE_S):
                    await stream.aclose()
