"""The caller's side of a call: inbound frames → (denoiser) → VAD → turn-taking → STT.

Inbound audio is processed inline (decode, resample, VAD and turn-taking are microseconds of
vectorised work per frame), except the optional denoiser, which runs in worker threads
(`voicebot.call.denoise`); STT gets its frames through one bounded queue and task, and an optional
fast "partials" recogniser through another. What the turn-taker decides goes back to the call
(`ListenerHost.act`), which owns the reply side.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .. import audio
from ..audio.sniff import compressed
from ..audio.types import AudioFormat, Meter
from ..config import PipelineConfig
from ..providers import (
    ProviderError,
    SpeechStarted,
    STTEvent,
    Transcript,
    UtteranceEnd,
)
from ..providers.deadlines import BoundedSTTStream
from .denoise import DenoiseStage, denoise_clip
from .services import CallServices
from .turns import Action, TurnTaker

log = logging.getLogger("voicebot.call")

STT_QUEUE_FRAMES = 500  # 10 s of 20 ms frames: a stalled STT sheds audio instead of memory
CARRY_MAX_S = 30  # audio of one turn kept to decode its pieces together (a batch STT's limit)


class ListenerHost(Protocol):
    """What the listener tells its call."""

    def act(self, action: Action) -> None:
        """A turn-taking decision (`voicebot.turns.Action`)."""

    def heard_words(self, partial: Transcript) -> None:
        """Words not yet final, from either recogniser."""

    async def transcribed(self, result: Transcript, joined: bool) -> None:
        """The final transcript of the turn that just ended; `joined`: its audio began with the
        pieces `carry_last()` kept, so the text covers them too."""

    async def stt_failed(self, exc: ProviderError, finalizing: bool) -> None: ...


class Listener:
    def __init__(
        self,
        services: CallServices,
        turns: TurnTaker,
        host: ListenerHost,
        fmt: AudioFormat,
        spawn: Callable[[Awaitable[Any], str], asyncio.Task[Any]],
        call_id: str,
    ) -> None:
        cfg: PipelineConfig = services.config.pipeline
        self._services = services
        self._turns = turns
        self._host = host
        self._spawn = spawn
        self._call_id = call_id
        self._rate = cfg.sample_rate
        self._frame_ms = cfg.frame_ms
        self._now_ms = 0.0
        self._stt_provider = services.providers["stt"]
        self.stt = self._bounded_stt("stt")
        self.stt.on_event = self._on_stt_event
        # a fast streaming recogniser beside a whole-utterance one: live words, nothing final
        self._partials: BoundedSTTStream | None = None
        if services.providers.get("partials") is not None:
            self._partials = self._bounded_stt("partials")
            self._partials.on_event = self._on_partial_event
        self._partials_queue: asyncio.Queue[bytes | None] = asyncio.Queue(STT_QUEUE_FRAMES)
        self._vad_provider = services.providers["vad"]
        self._vad_threshold = self._vad_provider.threshold
        self._preroll: deque[bytes] = deque(maxlen=max(1, cfg.preroll_ms // cfg.frame_ms))
        self._hangover: list[bytes] | None = None  # silence held back from STT while speculating
        self._stt_queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(STT_QUEUE_FRAMES)
        # The pieces of one turn that the VAD cut at a pause are decoded as one audio: what the
        # current utterance gave STT, the last finalized one, and the pieces carried over.
        self._sent = bytearray()
        self._last = b""
        self._carry = b""
        self._carry_limit = CARRY_MAX_S * self._rate * 2
        self._vad_rate: int | None = None
        self._denoiser = services.providers.get("denoise")
        self.denoise: DenoiseStage | None = None
        self.amd: Any = None  # a `CallAmd` when the call detects answering machines
        self.listen_at(fmt)

    def _bounded_stt(self, role: str) -> BoundedSTTStream:
        provider, rate = self._services.providers[role], self._rate
        return BoundedSTTStream(
            lambda: provider.stream(rate),
            self._services.deadlines[role],
            provider=provider.name,
            endpointing=provider.endpointing,
        )

    def start(self) -> None:
        self._spawn(self._stt_loop(), "stt")
        if self.denoise is not None:
            self._spawn(self.denoise.run(), "denoise")
        if self._partials is not None:
            self._spawn(self._partials_loop(), "partials")

    async def aclose(self) -> None:
        """Close the recognisers (the call has cancelled the tasks feeding them)."""
        stage = self.denoise
        if stage is not None and (stage.passed or stage.dropped):
            log.warning(
                "call %s: the denoiser cleaned %d frames, passed %d on uncleaned, dropped %d",
                self._call_id,
                stage.frames,
                stage.passed,
                stage.dropped,
            )
        for stream in (self.stt, self._partials):
            if stream is not None:
                try:
                    await stream.aclose()
                except Exception:  # hanging up: a recogniser that fails to close is let go
                    log.debug("call %s: closing STT failed", self._call_id, exc_info=True)

    @property
    def endpointing(self) -> bool:
        """Whether the recogniser ends turns itself. Asked of the stream, not the provider: a
        fallback chain can hand over mid-call to a member that does not."""
        return bool(getattr(self.stt, "endpointing", self._stt_provider.endpointing))

    def listen_at(self, fmt: AudioFormat) -> None:
        """Decode the caller's audio to frames at the rate the VAD will judge them at: the
        caller's own rate when it is below the pipeline rate and the VAD works there natively."""
        rate = fmt.sample_rate
        native = fmt.encoding != "webm" and rate < self._rate
        vad_rate = rate if native and self._vad_provider.supports_rate(rate) else self._rate
        self._inbound = audio.InboundAudio(rate, fmt.encoding, vad_rate, self._frame_ms)
        if self._vad_rate != vad_rate:
            self._vad_rate = vad_rate
            self._vad = self._vad_provider.stream(vad_rate)
            if self._denoiser is not None:
                stream = self._denoiser.stream(vad_rate)
                if self.denoise is None:
                    self.denoise = DenoiseStage(
                        stream,
                        self._denoiser.frame_pool,
                        self._on_frame,
                        self._frame_ms,
                        self._call_id,
                    )
                else:
                    self.denoise.restart(stream)
            self._stt_resampler = (
                audio.Resampler(vad_rate, self._rate) if vad_rate != self._rate else None
            )
            self._stt_pending = bytearray()
            batch_ms = 40 if self.endpointing else 100  # streaming recognisers want it sooner
            self._stt_batch_bytes = vad_rate * batch_ms // 1000 * 2
            self._preroll.clear()

    # ------------------------------------------------------------------------- inbound audio

    def feed(self, data: bytes, meter: Meter) -> None:
        """Decode, frame and judge streamed caller audio. Raises `audio.AudioFormatError` and
        `audio.AudioLimitError` for the call to refuse."""
        for frame in self._inbound.push(data, meter):
            if self.amd is not None and not self.amd.done:  # the raw line: a beep is no noise
                self.amd(frame, self._vad_rate or self._rate)
            if self.denoise is not None:
                self.denoise.push(frame)  # on to `_on_frame` once cleaned, off the loop
            else:
                self._on_frame(frame)

    async def decode_whole(self, data: bytes, fmt: AudioFormat, meter: Meter) -> bytes:
        """One complete utterance as PCM at the pipeline rate. Opus is decoded off the event
        loop (30 s of it is ~100 ms of CPU). Raises like `feed`, and `ProviderError` when the
        worker pool is full."""
        conv = audio.InboundAudio(fmt.sample_rate, fmt.encoding, self._rate, self._frame_ms)
        if compressed(data, fmt.encoding):
            frames = await self._services.workers.run(conv.push, data, meter)
        else:
            frames = conv.push(data, meter)
        pcm = b"".join(frames)
        if self._denoiser is not None and pcm:
            pcm = await self._denoiser.frame_pool.run(
                denoise_clip, self._denoiser.stream(self._rate), pcm, self._rate
            )
        return pcm

    def whole_utterance(self, pcm: bytes) -> None:
        """STT gets this utterance instead of whatever it had (after the pieces of the turn it
        continues, if any)."""
        self._to_stt("cancel", None)
        self._to_stt("audio", self._carry + pcm)

    def _on_frame(self, frame: bytes) -> None:
        self._now_ms += self._frame_ms
        speech = self._vad.process(frame) >= self._vad_threshold
        if self.endpointing:
            self._stt_audio(frame)
        elif self._turns.in_utterance:
            if self._hangover is not None and not speech:
                # A speculative decode is running: hangover silence must not invalidate it.
                # Held back, and sent after all if the caller speaks again.
                self._hangover.append(frame)
            else:
                for held in self._hangover or ():
                    self._stt_audio(held)
                self._hangover = None
                self._stt_audio(frame)
        for action in self._turns.on_frame(self._now_ms, speech):
            self._host.act(action)
        if not self._turns.in_utterance:
            self._preroll.append(frame)

    def _stt_audio(self, frame: bytes) -> None:
        """Utterance audio for STT. When it needs resampling, frames are gathered into short
        batches first: per-call numpy overhead, not arithmetic, is what a 20 ms frame costs."""
        if self._stt_resampler is None:
            self._to_stt("audio", frame)
            return
        self._stt_pending += frame
        if len(self._stt_pending) >= self._stt_batch_bytes:
            self._flush_stt_audio()

    def _flush_stt_audio(self) -> None:
        if self._stt_pending and self._stt_resampler is not None:
            pcm = self._stt_resampler.process(bytes(self._stt_pending))
            self._stt_pending.clear()
            self._to_stt("audio", pcm)

    # ------------------------------------------------------------- what turn-taking decided

    def start_utterance(self) -> None:
        if not self.endpointing:
            if self._stt_resampler is not None:
                self._stt_resampler.reset()  # a new utterance: no history from the last one
                self._stt_pending.clear()
            if self._carry:
                self._to_stt("audio", self._carry)  # the turn's earlier pieces, then this one
            for frame in self._preroll:
                self._stt_audio(frame)
        self._preroll.clear()

    def speculate(self) -> None:
        self._to_stt("speculate", None)
        self._hangover = []

    def end_utterance(self) -> None:
        self._hangover = None

    def cancel_utterance(self) -> None:
        self._hangover = None
        self._to_stt("cancel", None)

    def finalize(self) -> None:
        """The turn is over: the transcript's deadline counts from now."""
        self.stt.turn_ended()
        self._to_stt("finalize", bool(self._carry))
        self._last, self._carry = bytes(self._sent), b""
        self._sent.clear()

    def carry_last(self) -> None:
        """The words of the utterance just transcribed are not a whole turn (the caller paused
        mid-phrase, or went on talking): its audio is decoded again with what comes next, as
        one audio, so Whisper hears the phrase whole instead of two fragments. An utterance
        already under way is restarted with the kept audio in front."""
        if self.endpointing or not self._last:
            return
        self._carry, self._last = self._last[-self._carry_limit :], b""
        if self._turns.in_utterance:
            self._flush_stt_audio()
            current = bytes(self._sent)
            self._to_stt("cancel", None)
            self._to_stt("audio", self._carry + current)

    def drop_carry(self) -> None:
        """The kept pieces were answered on their own: the next utterance starts afresh."""
        self._carry = b""

    # ----------------------------------------------------------------------------------- STT

    def _to_stt(self, kind: str, item: Any) -> None:
        if self._partials is not None and kind in ("audio", "cancel", "finalize"):
            self._to_partials(item if kind == "audio" else None)
        if kind == "cancel":
            self._stt_pending.clear()
            self._sent.clear()
        elif kind != "audio" and self._stt_pending:
            self._flush_stt_audio()  # speculate/finalize see every frame of the utterance
        try:
            self._stt_queue.put_nowait((kind, item))
        except asyncio.QueueFull:
            if kind == "audio":
                return  # STT is stalled: shed audio, never memory
            self._stt_queue.get_nowait()
            self._stt_queue.put_nowait((kind, item))
        if kind == "audio" and len(self._sent) < self._carry_limit:
            self._sent += item

    def _to_partials(self, pcm: bytes | None) -> None:
        """Audio for the partials recogniser, or None: the utterance is over, drop it."""
        try:
            self._partials_queue.put_nowait(pcm)
        except asyncio.QueueFull:
            if pcm is not None:
                return  # it is behind: live words are a nicety, shed audio
            self._partials_queue.get_nowait()
            self._partials_queue.put_nowait(None)

    async def _partials_loop(self) -> None:
        assert self._partials is not None
        while True:
            pcm = await self._partials_queue.get()
            try:
                if pcm is None:
                    await self._partials.cancel()
                else:
                    await self._partials.send(pcm)
            except ProviderError as exc:
                # the main recogniser still answers the turn; only live words are missing
                log.warning("call %s: partials STT failed: %s", self._call_id, exc)

    async def _stt_loop(self) -> None:
        while True:
            kind, item = await self._stt_queue.get()
            try:
                if kind == "audio":
                    await self.stt.send(item)
                elif kind == "speculate":
                    await self.stt.speculate()
                elif kind == "cancel":
                    await self.stt.cancel()
                elif kind == "finalize":
                    await self._host.transcribed(await self.stt.finalize(), joined=item)
            except ProviderError as exc:
                log.warning("call %s: STT failed: %s", self._call_id, exc)
                await self._host.stt_failed(exc, finalizing=kind == "finalize")

    def _on_partial_event(self, event: STTEvent) -> None:
        if isinstance(event, Transcript) and not event.final and event.text:
            self._host.heard_words(event)

    def _on_stt_event(self, event: STTEvent) -> None:
        if isinstance(event, Transcript) and not event.final and event.text:
            self._host.heard_words(event)
        elif isinstance(event, SpeechStarted) and self.endpointing:
            for action in self._turns.on_frame(self._now_ms, True):
                self._host.act(action)
        elif isinstance(event, UtteranceEnd) and self.endpointing:
            for action in self._turns.end_turn():
                self._host.act(action)
