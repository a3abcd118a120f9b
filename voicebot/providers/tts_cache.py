"""A per-process cache of synthesized audio for fixed prompts.

Greetings, menus and "sorry, I didn't catch that" are said thousands of times with the same words;
synthesizing them once and replaying the chunks makes their first audio instant and frees the CPU
for the calls that need it. Only text the caller marks with a `cache_key` is cached (a flow's `say`
with no variables): caching every reply would fill memory with audio said once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from ..audio.types import AudioFormat
from .base import TTS, AudioChunk

_Key = tuple[str, str, int, str]


class CachedTTS(TTS):
    """Wraps a TTS provider; an LRU of whole utterances bounded by `max_bytes` of audio.

    `synthesize(text, preferred, cache_key=...)` (or `synthesize_cached`, which the call uses)
    replays a cached utterance chunk for chunk; without a key it streams from the engine. The key
    is combined with the text and format, so a stale or reused key can never play the wrong words.
    Audio is stored only when the engine finished the whole utterance (not after a barge-in).
    """

    def __init__(self, tts: Any, max_bytes: int = 32 * 1024 * 1024) -> None:
        # Not Provider.__init__: the engine (or fallback chain) is already configured and started.
        self.inner = tts
        self.options = getattr(tts, "options", None)
        self.workers = getattr(tts, "workers", None)  # type: ignore[assignment]
        self.name = getattr(tts, "name", "tts")  # type: ignore[misc]  # stands in for the engine
        self.max_bytes = max_bytes
        self._entries: OrderedDict[_Key, tuple[list[AudioChunk], int]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    async def start(self) -> None:
        await self.inner.start()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def synthesize(
        self, text: str, preferred: AudioFormat, *, cache_key: str | None = None
    ) -> AsyncIterator[AudioChunk]:
        """Speech for `text`; `cache_key` (optional, keyword-only) marks it as a fixed prompt."""
        if cache_key is None:
            async for chunk in self.inner.synthesize(text, preferred):
                yield chunk
            return
        key = (cache_key, text, preferred.sample_rate, preferred.encoding)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            for chunk in entry[0]:
                yield chunk
            return
        self.misses += 1
        chunks: list[AudioChunk] = []
        async for chunk in self.inner.synthesize(text, preferred):
            chunks.append(chunk)
            yield chunk
        self._store(key, chunks)

    def synthesize_cached(
        self, text: str, preferred: AudioFormat, *, cache_key: str
    ) -> AsyncIterator[AudioChunk]:
        return self.synthesize(text, preferred, cache_key=cache_key)

    def _store(self, key: _Key, chunks: list[AudioChunk]) -> None:
        size = sum(len(c.data) for c in chunks)
        if size > self.max_bytes or key in self._entries:
            return
        self._entries[key] = (chunks, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped

    def health(self) -> dict[str, Any]:
        return {
            **self.inner.health(),
            "cache": {
                "entries": len(self._entries),
                "bytes": self.bytes,
                "hits": self.hits,
                "misses": self.misses,
            },
        }
