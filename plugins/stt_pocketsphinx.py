"""`pocketsphinx`: offline streaming speech recognition with the en-US model the wheel ships.

A loaded decoder costs ~90 MB of RSS and ~0.3 s to load, and holds the state of one utterance at a
time, so decoders live in a small per-process pool: a call's stream borrows one when its caller
starts speaking and returns it at the end of the turn. The pool is bounded (`decoders`): a caller
who starts speaking while every decoder is busy keeps buffering audio and is decoded as soon as
one is free. Its size need not exceed what the CPU can decode at once anyway (each speaking
caller costs ~0.25 of a core).

Audio is decoded in batches of `batch_ms` through the worker pool, at most one job in flight per
stream so the audio of one utterance is decoded in order; a 20 ms job per frame would spend more
on dispatch than on decoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from voicebot.audio import Resampler
from voicebot.hookspecs import hookimpl
from voicebot.providers import STT, ModelMissingError, ProviderError, STTStream, Transcript

if TYPE_CHECKING:
    from voicebot.providers.workers import WorkerPool

    from ._pocketsphinx_c import Decoder

INSTALL_HINT = "in a voicebot checkout: pip install -e '.[light]'"


@hookimpl
def register_stt(register: Callable[..., None]) -> None:
    register(PocketsphinxSTT)


class _DecoderPool:
    """Loaded decoders shared by every call; at most `size`, created when first needed."""

    def __init__(self, make: Callable[[], Decoder], size: int, workers: WorkerPool) -> None:
        self._make = make
        self._size = size
        self._workers = workers
        self._idle: list[Decoder] = []
        self._waiters: deque[asyncio.Future[Decoder]] = deque()
        self.created = 0
        self.closed = False

    async def acquire(self) -> Decoder:
        if self._idle:
            return self._idle.pop()
        if self.created < self._size:
            self.created += 1
            try:
                return await self._workers.run(self._make)
            except BaseException:
                self.created -= 1
                raise
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over just as we were cancelled
                self.release(waiter.result())
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def release(self, decoder: Decoder) -> None:
        if self.closed:
            decoder.free()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(decoder)
                return
        self._idle.append(decoder)

    async def aclose(self) -> None:
        self.closed = True
        idle, self._idle = self._idle, []
        for decoder in idle:
            await self._workers.run(decoder.free)

    @property
    def idle(self) -> int:
        return len(self._idle)


class PocketsphinxSTT(STT):
    name = "pocketsphinx"
    requires = ("pocketsphinx",)
    install = INSTALL_HINT

    @dataclass
    class Options:
        #: acoustic model directory; "" = the en-US model inside the pocketsphinx wheel
        hmm: str = ""
        #: language model (.lm.bin / .lm); "" = the bundled en-US LM
        lm: str = ""
        #: pronunciation dictionary (pocketsphinx's `dict`); "" = the bundled CMUdict
        dictionary: str = ""
        #: the rate the acoustic model expects; audio at other rates is resampled to it
        sample_rate: int = 16000
        #: most decoders (~90 MB each) loaded at once = most callers decoded at the same time
        decoders: int = 4
        #: audio decoded per worker job
        batch_ms: int = 100
        #: longest utterance kept; audio beyond it is ignored
        max_seconds: float = 30.0
        #: any other pocketsphinx parameter, e.g. {beam: 1e-40, fwdflat: false}
        config: dict[str, Any] = field(default_factory=dict)

        def __post_init__(self) -> None:
            if not 8000 <= self.sample_rate <= 48000:
                raise ValueError(f"sample_rate must be 8000-48000 Hz, got {self.sample_rate}")
            if self.decoders < 1:
                raise ValueError(f"decoders must be at least 1, got {self.decoders}")
            if not 20 <= self.batch_ms <= 1000:
                raise ValueError(f"batch_ms must be 20-1000, got {self.batch_ms}")
            if self.max_seconds <= 0:
                raise ValueError(f"max_seconds must be positive, got {self.max_seconds}")

    _pool: _DecoderPool

    async def start(self) -> None:
        try:
            from . import _pocketsphinx_c as psc

            psc.library()
        except ImportError as exc:
            raise ModelMissingError(
                f"the pocketsphinx STT needs the pocketsphinx package: {INSTALL_HINT}",
                provider=self.name,
            ) from exc
        except psc.BindingError as exc:
            raise ProviderError(str(exc), provider=self.name) from exc
        o = self.options
        paths = await self.workers.run(self._model_paths, psc.default_model_paths())
        params = {**paths, "samprate": o.sample_rate, **o.config}
        self._pool = _DecoderPool(partial(self._new_decoder, params), o.decoders, self.workers)
        # Load one decoder now: a bad model fails at startup, and the first caller doesn't wait.
        self._pool.release(await self._pool.acquire())

    def _new_decoder(self, params: dict[str, Any]) -> Decoder:
        from ._pocketsphinx_c import BindingError, Decoder

        try:
            return Decoder(params)
        except BindingError as exc:
            raise ProviderError(str(exc), provider=self.name) from exc

    def _model_paths(self, defaults: dict[str, str]) -> dict[str, str]:
        o = self.options
        paths = {
            "hmm": o.hmm or defaults["hmm"],
            "lm": o.lm or defaults["lm"],
            "dict": o.dictionary or defaults["dict"],
        }
        for key, path in paths.items():
            if not os.path.exists(path):
                option = "dictionary" if key == "dict" else key
                raise ModelMissingError(
                    f"pocketsphinx {option} not found: {path} (fix `{option}:` or leave it empty "
                    f"for the bundled en-US model from {INSTALL_HINT})",
                    provider=self.name,
                )
        return paths

    async def aclose(self) -> None:
        await self._pool.aclose()

    def health(self) -> dict[str, Any]:
        pool = getattr(self, "_pool", None)
        if pool is None:
            return {"name": self.name, "status": "not started"}
        return {"name": self.name, "status": "ok", "decoders": pool.created, "idle": pool.idle}

    def stream(self, sample_rate: int, *, language: str | None = None) -> STTStream:
        """`language` is not used: the model decides it (the bundled one is US English)."""
        return PocketsphinxStream(self, sample_rate)


@dataclass
class _Utterance:
    pending: bytearray = field(default_factory=bytearray)
    accepted: int = 0  # bytes at the model rate, bounded by max_seconds
    ending: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class PocketsphinxStream(STTStream):
    """One call's recogniser: borrows a pooled decoder for the length of each utterance."""

    def __init__(self, stt: PocketsphinxSTT, sample_rate: int) -> None:
        rate = stt.options.sample_rate
        self._stt = stt
        self._resampler = Resampler(sample_rate, rate) if sample_rate != rate else None
        self._batch = rate * stt.options.batch_ms // 1000 * 2
        self._max_job = 10 * self._batch  # bounds how long a cancelled job keeps its decoder
        self._limit = int(stt.options.max_seconds * rate) * 2
        self._utt: _Utterance | None = None
        self._task: asyncio.Task[tuple[str, float]] | None = None
        self._cmn: str | None = None  # this caller's channel estimate, kept across utterances

    async def send(self, pcm: bytes) -> None:
        if len(pcm) % 2:
            raise ProviderError(
                f"PCM16 audio must have an even number of bytes, got {len(pcm)}",
                provider=self._stt.name,
            )
        if self._task is not None and self._task.done():
            failed, self._utt, self._task = self._task, None, None
            await failed  # the decode failed: surface its error; the next send() starts afresh
        if self._resampler is not None:
            pcm = self._resampler.process(pcm)
        if self._utt is None:
            self._utt = _Utterance()
            self._task = asyncio.create_task(self._decode(self._utt))
        self._accept(self._utt, pcm)

    def _accept(self, utt: _Utterance, pcm: bytes) -> None:
        pcm = pcm[: max(0, self._limit - utt.accepted)]
        utt.accepted += len(pcm)
        utt.pending += pcm
        if len(utt.pending) >= self._batch:
            utt.wake.set()

    async def finalize(self) -> Transcript:
        utt, task = self._utt, self._task
        self._utt = self._task = None
        if utt is None or task is None:
            return Transcript("", final=True, confidence=0.0)
        if self._resampler is not None:
            self._accept(utt, self._resampler.flush())
        utt.ending = True
        utt.wake.set()
        try:
            text, prob = await task
        except asyncio.CancelledError:
            task.cancel()
            raise
        return Transcript(text, final=True, confidence=prob)

    async def cancel(self) -> None:
        task = self._task
        self._utt = self._task = None
        if self._resampler is not None:
            self._resampler.reset()
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # its decoder is back in the pool when this returns
            if not task.cancelled():
                task.exception()  # a decode error no longer matters: the utterance is dropped

    async def aclose(self) -> None:
        await self.cancel()

    async def _decode(self, utt: _Utterance) -> tuple[str, float]:
        from ._pocketsphinx_c import BindingError

        pool, workers = self._stt._pool, self._stt.workers
        decoder = await pool.acquire()  # may wait for another caller's utterance to end
        try:
            await workers.run(decoder.begin, self._cmn)
            partial_text = ""
            while True:
                if len(utt.pending) < self._batch and not utt.ending:
                    utt.wake.clear()
                    await utt.wake.wait()
                elif utt.pending:
                    chunk = bytes(utt.pending[: self._max_job])
                    del utt.pending[: len(chunk)]
                    hyp = await workers.run(decoder.feed, chunk)
                    if hyp and hyp != partial_text:
                        partial_text = hyp
                        self.emit(Transcript(hyp, final=False))
                else:
                    break
            text, prob, self._cmn = await workers.run(decoder.finish)
            return text, prob
        except BindingError as exc:
            raise ProviderError(str(exc), provider=self._stt.name) from exc
        finally:
            pool.release(decoder)
