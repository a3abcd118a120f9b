"""Deepgram live STT over WebSocket.

The STT keeps one WebSocket per call open for the whole call (Deepgram charges for audio, not
for connections), with KeepAlive messages while the caller is silent so Deepgram does not hang
up after 10 s. With `endpointing_ms` set, Deepgram decides when the caller finished
(`speech_final` / `UtteranceEnd`) and the runtime's VAD hangover is skipped; otherwise the
runtime's VAD ends the turn and `finalize()` flushes Deepgram with its Finalize message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from voicebot.providers import (
    STT,
    ProviderError,
    SpeechStarted,
    STTStream,
    Transcript,
    Usage,
    UtteranceEnd,
)
from voicebot.records.usage import report_usage

from .._cloud import (
    backoff,
    bounded,
    error_headers,
    map_error,
)
from .client import DeepgramClient, DeepgramOptions

log = logging.getLogger("voicebot.deepgram")


def _flag(value: bool) -> str:
    return "true" if value else "false"


@dataclass
class DeepgramSTTOptions(DeepgramOptions):
    model: str = "nova-3"
    #: BCP-47; a call's own language wins. "multi" for code-switching (nova-3).
    language: str = "en"
    interim_results: bool = True
    smart_format: bool = True
    punctuate: bool = True
    #: Let Deepgram end the caller's turn after this much silence (ms) instead of the runtime's
    #: VAD hangover. None keeps turn-taking with the runtime.
    endpointing_ms: int | None = bounded(None, 10, 10000)
    #: With endpointing: also send UtteranceEnd this long (ms, >= 1000) after the last word, which
    #: still ends a turn in background noise where silence-based endpointing never fires.
    utterance_end_ms: int | None = bounded(1000, 1000, 5000)
    #: Words and names to recognise better (nova-3 keyterm prompting).
    keyterms: list[str] = field(default_factory=list)
    #: Seconds to wait for Deepgram's answer to Finalize at the end of a turn (it answers only
    #: when audio was still buffered, so this bounds the wait when it does not).
    finalize_timeout: float = bounded(1.0, 0.05)
    #: Send KeepAlive after this many seconds without audio (Deepgram closes after 10 s).
    keepalive_seconds: float = bounded(4.0, 0.01, 9.0)


class DeepgramSTT(DeepgramClient, STT):
    """Live streaming recognition: partials while the caller talks, finals as Deepgram commits."""

    name = "deepgram"
    Options = DeepgramSTTOptions

    def __init__(self, options: Any = None, workers: Any = None) -> None:
        super().__init__(options, workers)
        # Per instance: two configured Deepgram providers may differ.
        self.endpointing = self.options.endpointing_ms is not None

    def stream(self, sample_rate: int, *, language: str | None = None) -> STTStream:
        return DeepgramSTTStream(self, sample_rate, language or self.options.language)

    def connect_params(self, sample_rate: int, language: str) -> dict[str, Any]:
        opts: DeepgramSTTOptions = self.options
        params: dict[str, Any] = {
            "model": opts.model,
            "language": language,
            "encoding": "linear16",
            "sample_rate": sample_rate,
            "channels": 1,
            "interim_results": _flag(opts.interim_results or self.endpointing),
            "smart_format": _flag(opts.smart_format),
            "punctuate": _flag(opts.punctuate),
        }
        if self.endpointing:
            params["endpointing"] = opts.endpointing_ms
            params["vad_events"] = "true"
            if opts.utterance_end_ms is not None:
                params["utterance_end_ms"] = max(1000, opts.utterance_end_ms)
        if opts.keyterms:
            params["keyterm"] = list(opts.keyterms)
        return params


class DeepgramSTTStream(STTStream):
    """One call's WebSocket. A reader task turns Deepgram's messages into events; the utterance
    text is the concatenation of the `is_final` segments since the previous turn."""

    def __init__(self, provider: DeepgramSTT, sample_rate: int, language: str) -> None:
        self._p = provider
        self._rate = sample_rate
        self._language = language
        self._stack: contextlib.AsyncExitStack | None = None
        self._socket: Any = None
        self._connecting = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._error: ProviderError | None = None
        self._finals: list[tuple[str, float]] = []
        self._interim = ""
        self._ended = False  # UtteranceEnd already emitted for this utterance
        self._pending = 0  # bytes sent since the last finalize/cancel
        self._unbilled = 0
        self._sent = 0  # bytes sent on this socket: Deepgram's results are timed on this audio
        self._discard_until = -1.0  # results ending before this (seconds) were cancelled
        self._flushed: asyncio.Future[None] | None = None
        self._last_audio = 0.0
        self._closing = False

    # ----------------------------------------------------------------------- STTStream API

    async def send(self, pcm: bytes) -> None:
        self._raise_if_failed()
        socket = await self._connected()
        try:
            await socket.send_media(pcm)
        except Exception as exc:
            raise self._fail(exc) from exc
        self._pending += len(pcm)
        self._sent += len(pcm)
        self._unbilled += len(pcm)
        self._last_audio = asyncio.get_running_loop().time()

    async def finalize(self) -> Transcript:
        self._raise_if_failed()
        if self._socket is None or (self._pending == 0 and not self._finals and not self._interim):
            self._reset()
            return Transcript("", final=True, confidence=0.0, language=self._language)
        if not self._ended:  # after speech_final/UtteranceEnd the finals are already complete
            await self._flush()
        text = " ".join(t for t, _ in self._finals if t)
        conf = sum(c for _, c in self._finals) / len(self._finals) if self._finals else 0.0
        self._reset()
        self._bill()
        return Transcript(text, final=True, confidence=conf, language=self._language)

    async def _flush(self) -> None:
        """Send Finalize and wait for its `from_finalize` answer. Deepgram answers only when it
        still had audio buffered, so no answer within `finalize_timeout` means "nothing more"."""
        assert self._socket is not None
        self._flushed = asyncio.get_running_loop().create_future()
        try:
            await self._socket.send_finalize()
            async with asyncio.timeout(self._p.options.finalize_timeout):
                await asyncio.shield(self._flushed)
        except TimeoutError:
            log.debug("deepgram: no answer to Finalize; the finals so far are the utterance")
        except ProviderError:
            raise
        except Exception as exc:
            raise self._fail(exc) from exc
        finally:
            self._flushed = None

    async def cancel(self) -> None:
        if self._socket is not None and self._pending and self._error is None:
            # Results are timed on the audio sent: whatever ends before now was cancelled.
            # Finalize cuts Deepgram's segment here so no result straddles the boundary.
            self._discard_until = self._sent / 2 / self._rate
            try:
                await self._socket.send_finalize()
            except Exception as exc:
                self._fail(exc)
        self._reset()

    async def aclose(self) -> None:
        self._closing = True
        if self._socket is not None and self._error is None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._socket.send_close_stream()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._stack is not None:
            with contextlib.suppress(Exception):
                await self._stack.aclose()
        self._stack = self._socket = None
        self._bill()

    # ----------------------------------------------------------------------- connection

    async def _connected(self) -> Any:
        if self._socket is not None:
            return self._socket
        async with self._connecting:
            if self._socket is None:
                await self._connect()
        return self._socket

    async def _connect(self) -> None:
        opts: DeepgramSTTOptions = self._p.options
        params = self._p.connect_params(self._rate, self._language)
        attempt = 0
        while True:
            stack = contextlib.AsyncExitStack()
            try:
                async with asyncio.timeout(opts.timeout):
                    socket = await stack.enter_async_context(
                        self._p.client.listen.v1.connect(**params)
                    )
                break
            except Exception as exc:
                await stack.aclose()
                err = map_error(self._p.name, exc)
                wait = backoff(attempt, error_headers(exc)) if attempt < opts.max_retries else None
                if not err.retryable or wait is None:
                    self._error = err
                    raise err from exc
                attempt += 1
                await asyncio.sleep(wait)
        self._stack, self._socket = stack, socket
        self._last_audio = asyncio.get_running_loop().time()
        self._tasks = [
            asyncio.create_task(self._read(socket), name="deepgram-read"),
            asyncio.create_task(self._keepalive(socket), name="deepgram-keepalive"),
        ]

    async def _keepalive(self, socket: Any) -> None:
        interval = self._p.options.keepalive_seconds
        loop = asyncio.get_running_loop()
        while True:
            idle = loop.time() - self._last_audio
            if idle >= interval:
                try:
                    await socket.send_keep_alive()
                except Exception as exc:
                    self._fail(exc)
                    return
                self._last_audio = loop.time()
                idle = 0.0
            await asyncio.sleep(interval - idle)

    async def _read(self, socket: Any) -> None:
        try:
            async for message in socket:
                self._on_message(message)
            if not self._closing:
                raise ConnectionError("Deepgram closed the connection")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._closing:
                self._fail(exc)

    # ----------------------------------------------------------------------- messages

    def _on_message(self, msg: Any) -> None:
        kind = getattr(msg, "type", None)
        if kind == "Results":
            self._on_results(msg)
        elif kind == "SpeechStarted":
            self._ended = False
            self.emit(SpeechStarted())
        elif kind == "UtteranceEnd":
            self._end_utterance()
        elif kind == "Error":
            self._fail(ConnectionError(f"Deepgram error: {getattr(msg, 'description', msg)}"))

    def _on_results(self, msg: Any) -> None:
        if msg.start + msg.duration <= self._discard_until + 0.02:
            return
        alts = msg.channel.alternatives
        text = alts[0].transcript.strip() if alts else ""
        conf = float(alts[0].confidence) if alts else 0.0
        if msg.is_final:
            self._interim = ""
            if text:
                self._finals.append((text, conf))
                self.emit(Transcript(self._text(), final=True, confidence=conf))
            if msg.from_finalize and self._flushed is not None and not self._flushed.done():
                self._flushed.set_result(None)
            if msg.speech_final and text:
                self._end_utterance()
        elif text:
            self._interim = text
            self.emit(Transcript(self._text(), final=False, confidence=conf))

    def _end_utterance(self) -> None:
        if self._p.endpointing and not self._ended and (self._finals or self._interim):
            self._ended = True
            self.emit(UtteranceEnd())

    # ----------------------------------------------------------------------- helpers

    def _text(self) -> str:
        return " ".join([t for t, _ in self._finals] + ([self._interim] if self._interim else []))

    def _reset(self) -> None:
        self._finals, self._interim, self._pending, self._ended = [], "", 0, False

    def _fail(self, exc: BaseException) -> ProviderError:
        if self._error is None:
            self._error = map_error(self._p.name, exc)
            log.warning("%s", self._error)
        if self._flushed is not None and not self._flushed.done():
            self._flushed.set_exception(self._error)
        return self._error

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _bill(self) -> None:
        if self._unbilled:
            seconds = self._unbilled / 2 / self._rate
            self._unbilled = 0
            report_usage(Usage(provider=self._p.name, audio_seconds=seconds))


# --------------------------------------------------------------------------------------------- TTS

#: Rates Deepgram Aura produces per encoding.
