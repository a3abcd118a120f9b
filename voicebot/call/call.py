"""One call: owns its VAD, STT stream, dialogue, TTS playback and the tasks that run them.

Few tasks per call, none per frame: inbound audio is processed inline by `feed_audio()` (decode,
resample, VAD, turn-taking are microseconds of vectorised work), STT gets its frames through one
bounded queue and task, each reply runs as one task that streams dialogue text sentence by sentence
into TTS, and one playback task paces audio to the transport in real time with a small lead, so a
barge-in can stop it within a frame. Cancellation is the normal way replies end.

What the caller heard is tracked per reply segment: by echoed marks where the transport has them
(Twilio), else by the playback clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .. import audio
from ..deadlines import BoundedSTTStream, bounded
from ..dialogue import (
    Dialogue,
    Hangup,
    IntentEvent,
    Listen,
    Note,
    Say,
    Transfer,
    UserInput,
)
from ..limits import AudioBudget
from ..providers import (
    AudioFormat,
    ProviderError,
    SpeechStarted,
    STTEvent,
    Transcript,
    UtteranceEnd,
)
from ..sentences import SentenceSplitter, spaced
from ..turns import Action, State, TurnSettings, TurnTaker
from ..usage import usage_sink

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("voicebot.call")

STT_QUEUE_FRAMES = 500  # 10 s of 20 ms frames: a stalled STT sheds audio instead of memory
PLAYBACK_QUEUE_FRAMES = 250  # 5 s ahead at most; TTS waits (back-pressure) beyond that


class CallIO(Protocol):
    """What a transport implements for its call."""

    supports_marks: bool

    async def send_audio(self, frame: bytes) -> None: ...
    async def send_event(self, event: dict[str, Any]) -> None: ...
    async def send_mark(self, name: str) -> None: ...
    async def clear(self) -> None: ...
    async def transfer(self, target: str) -> bool: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


@dataclass
class Segment:
    """A piece of a reply as played: its text, how long it lasts, and whether it was heard."""

    text: str
    barge_in: bool
    mark: str
    frames: int = 0
    end_at: float = 0.0  # loop time when its last frame finishes playing at the far end
    sent_all: bool = False
    heard: bool = False
    flushed: bool = False


@dataclass
class TurnTimes:
    n: int
    speech_end: float | None = None  # last speech frame (or the end_turn / text arrival)
    turn_end: float | None = None  # turn decided (hangover elapsed)
    stt_final: float | None = None
    first_text: float | None = None
    first_tts: float | None = None
    first_audio: float | None = None

    def breakdown(self) -> dict[str, Any]:
        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) * 1000, 1)

        start = self.speech_end
        return {
            "type": "metrics",
            "turn": self.n,
            "endpointing_ms": ms(start, self.turn_end),
            "stt_ms": ms(self.turn_end, self.stt_final),
            "llm_first_token_ms": ms(self.stt_final, self.first_text),
            "tts_first_byte_ms": ms(self.first_text, self.first_tts),
            "first_audio_ms": ms(self.first_tts, self.first_audio),
            "voice_to_voice_ms": ms(start, self.first_audio),
        }


@dataclass
class _Dtmf:
    digits: str = ""
    handle: asyncio.TimerHandle | None = None


class Call:
    """Per-call state and tasks. Created by `Runtime.new_call`; the transport drives it."""

    def __init__(
        self,
        runtime: Runtime,
        io: CallIO,
        *,
        transport: str,
        audio_format: AudioFormat,
        variables: dict[str, Any] | None = None,
        session_id: str | None = None,
        call_id: str | None = None,
        flow: str | None = None,
        resume: dict[str, Any] | None = None,
    ) -> None:
        cfg = runtime.config.pipeline
        self.runtime = runtime
        self.io = io
        self.id = call_id or uuid.uuid4().hex
        self.session_id = session_id
        self.transport = transport
        self.variables: dict[str, Any] = dict(variables or {})
        self.started_at = time.time()
        self.state = "connected"
        self.turns_count = 0
        self.history: list[dict[str, Any]] = []
        self.end_reason = ""
        self.clean_end = False  # ended on purpose (end_call, goodbye, transfer), not dropped
        self.resumed = resume is not None
        self._loop = asyncio.get_running_loop()
        self._rate = cfg.sample_rate
        self._frame_ms = cfg.frame_ms
        self._cfg = cfg
        self.format = audio_format
        limits = runtime.config.security.limits
        self._max_message_s = limits.max_message_audio_s
        self._audio_budget = AudioBudget(limits, cfg.max_utterance_ms / 1000)
        self._closing = False
        self._context = contextvars.copy_context()
        self._context.run(usage_sink.set, lambda usage: runtime.hook.usage(call=self, usage=usage))
        self._stt_provider = runtime.providers["stt"]
        self._stt = self._bounded_stt("stt")
        self._stt.on_event = self._on_stt_event
        # a fast streaming recogniser beside a whole-utterance one: live words, nothing final
        self._partials: BoundedSTTStream | None = None
        if runtime.providers.get("partials") is not None:
            self._partials = self._bounded_stt("partials")
            self._partials.on_event = self._on_partial_event
        self._partials_queue: asyncio.Queue[bytes | None] = asyncio.Queue(STT_QUEUE_FRAMES)
        self._vad_provider = runtime.providers["vad"]
        self._vad_threshold = self._vad_provider.threshold
        self._listen_at(audio_format)
        self._outbound = audio.OutboundAudio(
            audio_format.sample_rate, _reply_encoding(audio_format)
        )
        self._turns = TurnTaker(
            TurnSettings(
                frame_ms=cfg.frame_ms,
                hangover_ms=cfg.vad_hangover_ms,
                min_speech_ms=cfg.min_speech_ms,
                max_utterance_ms=cfg.max_utterance_ms,
                barge_in=cfg.barge_in.enabled,
                barge_in_ms=cfg.barge_in.min_speech_ms,
                barge_in_needs_words=cfg.barge_in.needs_words,
            )
        )
        self._preroll: deque[bytes] = deque(maxlen=max(1, cfg.preroll_ms // cfg.frame_ms))
        self._hangover: list[bytes] | None = None  # silence held back from STT while speculating
        self._stt_queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(STT_QUEUE_FRAMES)
        self._playback: asyncio.Queue[tuple[bytes, Segment] | Segment] = asyncio.Queue(
            PLAYBACK_QUEUE_FRAMES
        )
        self._segments: deque[Segment] = deque()
        self._playout_end = 0.0  # loop time when all audio sent so far will have been played
        self._mark_ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reply: asyncio.Task[Any] | None = None
        self._ended = asyncio.Event()
        self._paused = False
        self._listen = Listen()
        self._noinput: asyncio.TimerHandle | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self._max_len: asyncio.TimerHandle | None = None
        self._warn_at: asyncio.TimerHandle | None = None
        self._speaking_until: asyncio.TimerHandle | None = None
        self._dtmf = _Dtmf()
        self._hangup_after_playback: str | None = None
        self._pending_text = ""
        self._turn = TurnTimes(0)
        self._now_ms = 0.0
        if resume:
            self.history = list(resume.get("history", []))
            self.turns_count = int(resume.get("turns_count", 0))
            self.variables = {**resume.get("variables", {}), **self.variables}
        self.dialogue: Dialogue = self._new_dialogue(flow, resume and resume.get("dialogue"))

    def _bounded_stt(self, role: str) -> BoundedSTTStream:
        provider, rate = self.runtime.providers[role], self._rate
        return BoundedSTTStream(
            lambda: provider.stream(rate),
            self.runtime.deadlines[role],
            provider=provider.name,
            endpointing=provider.endpointing,
        )

    def _new_dialogue(
        self, flow: str | None = None, snapshot: dict[str, Any] | None = None
    ) -> Dialogue:
        return self.runtime.new_dialogue(
            self.id,
            self.variables,
            lambda usage: self.runtime.hook.usage(call=self, usage=usage),
            flow=flow,
            snapshot=snapshot,
        )

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to continue this conversation on a new connection."""
        return {
            "dialogue": self.dialogue.snapshot(),
            "history": self.history[-50:],
            "variables": self.variables,
            "turns_count": self.turns_count,
        }

    # ------------------------------------------------------------------------ life of a call

    async def run(self) -> None:
        """The call's life: greeting, then turns until hang-up. Returns when all is released."""
        limits = self.runtime.config.security.limits
        self._touch()
        self._max_len = self._loop.call_later(limits.max_call_s, self._too_long)
        if 0 < limits.max_call_warning_s < limits.max_call_s:
            self._warn_at = self._loop.call_later(
                limits.max_call_s - limits.max_call_warning_s, self._warn_of_the_end
            )
        self._spawn(self._stt_loop(), "stt")
        if self._partials is not None:
            self._spawn(self._partials_loop(), "partials")
        self._spawn(self._playback_loop(), "playback")
        self.runtime.hook.call_started(call=self)
        await self._status("listening")
        self._start_reply(self._drive(self.dialogue.start(), greeting=True))
        try:
            await self._ended.wait()
        finally:
            await self._release()

    def hangup(self, reason: str = "remote") -> None:
        """The far end is gone, or the call must end now."""
        if not self._ended.is_set():
            self.end_reason = self.end_reason or reason
            self._ended.set()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def _release(self) -> None:
        for handle in (
            self._noinput,
            self._idle,
            self._max_len,
            self._warn_at,
            self._speaking_until,
        ):
            if handle is not None:
                handle.cancel()
        if self._dtmf.handle is not None:
            self._dtmf.handle.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._stt.aclose()
        if self._partials is not None:
            with contextlib.suppress(Exception):
                await self._partials.aclose()
        self.state = "ended"
        self.runtime.hook.call_ended(call=self, reason=self.end_reason or "ended")

    @property
    def _stt_endpointing(self) -> bool:
        """Whether the recogniser ends turns itself. Asked of the stream, not the provider: a
        fallback chain can hand over mid-call to a member that does not."""
        return bool(getattr(self._stt, "endpointing", self._stt_provider.endpointing))

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        # every task of the call runs in the call's context, whichever task asked for it, so
        # providers can report usage to this call (voicebot.usage)
        task = self._loop.create_task(
            coro, name=f"call-{self.id[:8]}-{name}", context=self._context
        )
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("call %s: task %s failed: %r", self.id, task.get_name(), exc, exc_info=exc)
            self.end_reason = self.end_reason or "error"
            self._ended.set()

    def _touch(self) -> None:
        """Note caller activity. Called per frame, so it only stores a time; the idle timer
        re-arms itself lazily when it fires early."""
        self._last_activity = self._loop.time()
        if self._idle is None:
            timeout = self.runtime.config.security.limits.idle_timeout_s
            self._idle = self._loop.call_at(self._last_activity + timeout, self._idle_check)

    def _idle_check(self) -> None:
        timeout = self.runtime.config.security.limits.idle_timeout_s
        now = self._loop.time()
        if self._bot_busy():
            # the caller is waiting for the bot, not idle: the countdown starts again once the
            # bot is back to listening (`_maybe_listen`)
            self._last_activity = now
        due = self._last_activity + timeout
        if now < due:
            self._idle = self._loop.call_at(due, self._idle_check)
            return
        self._idle = None
        self._close_soon(4008, "idle timeout: no audio or messages received")

    def _bot_busy(self) -> bool:
        """Answering (STT, LLM, TTS) or speaking."""
        return (
            self._turns.state is State.PROCESSING
            or self._turns.bot_speaking
            or bool(self._segments)
            or (self._reply is not None and not self._reply.done())
        )

    def _too_long(self) -> None:
        self._close_soon(4008, "maximum call length reached")

    def _warn_of_the_end(self) -> None:
        """Tell the caller the call is about to end (`limits.max_call_warning_s` before), after
        whatever the bot is saying now."""
        text = self.runtime.config.security.limits.max_call_warning
        current = self._reply

        async def warn() -> None:
            if current is not None and not current.done():
                await asyncio.gather(current, return_exceptions=True)

            async def say() -> Any:
                yield Say(text, barge_in=False, cache_key="max-call-warning")

            self._start_reply(self._drive(say()))

        self._spawn(warn(), "warning")

    def _close_soon(self, code: int, reason: str, end_reason: str = "") -> None:
        if self._ended.is_set() or self._closing:
            return
        self._closing = True  # audio still arriving is not decoded

        async def close() -> None:
            self.end_reason = end_reason or reason
            await self._status("ended")
            await self.io.close(code, reason)
            self.hangup(reason)

        self._spawn(close(), "close")

    # ------------------------------------------------------------------------- inbound audio

    def feed_audio(self, data: bytes) -> None:
        """Caller audio in the call's format, up to `limits.max_message_audio_s` once decoded.
        Never blocks: that cap bounds the decoding and VAD one message costs the event loop."""
        if self._ended.is_set() or self._closing:
            return
        self._touch()
        if self._paused:
            return
        try:
            frames = self._inbound.push(data, self._audio_budget.meter(self._max_message_s))
        except audio.AudioFormatError as exc:  # a corrupt compressed stream cannot resync
            self._refuse_audio("invalid_audio", str(exc), 1007, "invalid audio data")
            return
        except audio.AudioLimitError as exc:
            self._refuse_audio(exc.code, str(exc), 1008, exc.reason)
            return
        for frame in frames:
            self._on_frame(frame)

    def _refuse_audio(self, code: str, message: str, close_code: int, reason: str) -> None:
        level = logging.INFO if close_code == 1007 else logging.WARNING  # a limit: abuse?
        log.log(level, "call %s: %s: %s", self.id, reason, message)
        self._spawn(self._error(code, message), "error")
        # the outcome recorded for every rate limit, whichever layer applied it
        self._close_soon(close_code, reason, "rate limited" if code == "rate_limited" else "")

    def _listen_at(self, fmt: AudioFormat) -> None:
        """Decode the caller's audio to frames at the rate the VAD will judge them at: the
        caller's own rate when it is below the pipeline rate and the VAD works there natively."""
        rate = fmt.sample_rate
        native = fmt.encoding != "webm" and rate < self._rate
        vad_rate = rate if native and self._vad_provider.supports_rate(rate) else self._rate
        self._inbound = audio.InboundAudio(rate, fmt.encoding, vad_rate, self._frame_ms)
        if getattr(self, "_vad_rate", None) != vad_rate:
            self._vad_rate = vad_rate
            self._vad = self._vad_provider.stream(vad_rate)
            self._stt_resampler = (
                audio.Resampler(vad_rate, self._rate) if vad_rate != self._rate else None
            )
            self._stt_pending = bytearray()
            batch_ms = 40 if self._stt_endpointing else 100  # streaming recognisers want it sooner
            self._stt_batch_bytes = vad_rate * batch_ms // 1000 * 2
            if hasattr(self, "_preroll"):
                self._preroll.clear()

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

    def _on_frame(self, frame: bytes) -> None:
        self._now_ms += self._frame_ms
        speech = self._vad.process(frame) >= self._vad_threshold
        if self._stt_endpointing:
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
            self._act(action)
        if not self._turns.in_utterance:
            self._preroll.append(frame)

    def _act(self, action: Action) -> None:
        if action is Action.START_UTTERANCE:
            self._cancel_noinput()
            if not self._stt_endpointing:
                if self._stt_resampler is not None:
                    self._stt_resampler.reset()  # a new utterance: no history from the last one
                    self._stt_pending.clear()
                for frame in self._preroll:
                    self._stt_audio(frame)
            self._preroll.clear()
        elif action is Action.USER_STARTED:
            self._cancel_noinput()
            self._spawn(self._status("listening"), "status")
        elif action is Action.BARGE_IN:
            self._barge_in()
        elif action is Action.SPECULATE:
            self._turn_speech_end(self._loop.time() - self._cfg.frame_ms / 1000)
            self._to_stt("speculate", None)
            self._hangover = []
        elif action is Action.END_UTTERANCE:
            self._hangover = None
            self._end_of_speech()
        elif action is Action.CANCEL_UTTERANCE:
            self._hangover = None
            self._to_stt("cancel", None)

    def _turn_speech_end(self, at: float) -> None:
        self._turn = TurnTimes(self.turns_count + 1, speech_end=at)

    def _end_of_speech(self) -> None:
        if self._turn.n != self.turns_count + 1 or self._turn.speech_end is None:
            self._turn_speech_end(self._loop.time())
        self._turn.turn_end = self._loop.time()
        self._stt.turn_ended()  # the transcript's deadline counts from now
        self._to_stt("finalize", None)
        self._spawn(self._status("processing"), "status")

    def _to_stt(self, kind: str, item: Any) -> None:
        if self._partials is not None and kind in ("audio", "cancel", "finalize"):
            self._to_partials(item if kind == "audio" else None)
        if kind == "cancel":
            self._stt_pending.clear()
        elif kind != "audio" and self._stt_pending:
            self._flush_stt_audio()  # speculate/finalize see every frame of the utterance
        try:
            self._stt_queue.put_nowait((kind, item))
        except asyncio.QueueFull:
            if kind == "audio":
                return  # STT is stalled: shed audio, never memory
            self._stt_queue.get_nowait()
            self._stt_queue.put_nowait((kind, item))

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
                log.warning("call %s: partials STT failed: %s", self.id, exc)

    async def _stt_loop(self) -> None:
        while True:
            kind, item = await self._stt_queue.get()
            try:
                if kind == "audio":
                    await self._stt.send(item)
                elif kind == "speculate":
                    await self._stt.speculate()
                elif kind == "cancel":
                    await self._stt.cancel()
                elif kind == "finalize":
                    result = await self._stt.finalize()
                    self._turn.stt_final = self._loop.time()
                    await self._on_final(result)
            except ProviderError as exc:
                log.warning("call %s: STT failed: %s", self.id, exc)
                await self._error("stt_failed", f"speech recognition failed: {exc}")
                if kind == "finalize":
                    self._start_reply(self._apologise())

    def _on_partial_event(self, event: STTEvent) -> None:
        if isinstance(event, Transcript) and not event.final and event.text:
            self._on_words(event)

    def _on_words(self, partial: Transcript) -> None:
        self._spawn(self._send_transcript(partial), "partial")
        for action in self._turns.heard_words():
            self._act(action)

    def _on_stt_event(self, event: STTEvent) -> None:
        if isinstance(event, Transcript) and not event.final and event.text:
            self._on_words(event)
        elif isinstance(event, SpeechStarted) and self._stt_endpointing:
            for action in self._turns.on_frame(self._now_ms, True):
                self._act(action)
        elif isinstance(event, UtteranceEnd) and self._stt_endpointing:
            for action in self._turns.end_turn():
                self._act(action)

    async def _send_transcript(self, t: Transcript) -> None:
        await self.io.send_event(
            {
                "type": "transcript",
                "text": t.text,
                "final": t.final,
                "is_final": t.final,
                "confidence": t.confidence,
            }
        )

    async def _on_final(self, result: Transcript) -> None:
        text = " ".join(p for p in (self._pending_text, result.text.strip()) if p)
        self._pending_text = ""
        if self._turns.state is State.USER_SPEAKING and text:
            self._pending_text = text  # the caller went on talking: answer the whole thing later
            return
        if not text:
            self._turns.reply_done()
            await self._status("listening")
            self._arm_noinput()
            return
        final = Transcript(text, True, result.confidence, result.language)
        self.runtime.hook.transcript(call=self, transcript=final)
        await self._send_transcript(final)
        self._remember("user", text)
        self._user_turn(UserInput("speech", text=text, confidence=result.confidence))

    # ------------------------------------------------------------------- other caller input

    def end_turn(self) -> None:
        self._touch()
        for action in self._turns.end_turn():
            self._act(action)

    def text(self, text: str) -> None:
        self._touch()
        self._interrupt_reply()
        self._turn_speech_end(self._loop.time())
        self._turn.turn_end = self._turn.stt_final = self._loop.time()
        self.runtime.hook.transcript(call=self, transcript=Transcript(text, True, 1.0))
        self._remember("user", text)
        self._user_turn(UserInput("text", text=text))

    def typing(self) -> None:
        """The caller is typing into the page's text box: as much a sign of life as speech, so
        a pending no-input prompt starts its wait again (typing a sentence takes longer than
        saying it)."""
        self._touch()
        if self._noinput is not None:
            self._arm_noinput()

    def dtmf(self, digit: str) -> None:
        self._touch()
        if self._turns.bot_speaking and self._turns.barge_in_allowed:
            self._barge_in()
        self._cancel_noinput()
        self._dtmf.digits += digit
        if self._dtmf.handle is not None:
            self._dtmf.handle.cancel()
        lst = self._listen
        done = (lst.dtmf_terminator and digit == lst.dtmf_terminator) or len(
            self._dtmf.digits
        ) >= max(1, lst.dtmf_max_digits)
        if done:
            self._flush_dtmf()
        else:
            self._dtmf.handle = self._loop.call_later(lst.dtmf_timeout_ms / 1000, self._flush_dtmf)

    def _flush_dtmf(self) -> None:
        digits, self._dtmf.digits, self._dtmf.handle = self._dtmf.digits, "", None
        term = self._listen.dtmf_terminator
        if term and digits.endswith(term):
            digits = digits[: -len(term)]
        self._turn_speech_end(self._loop.time())
        self._turn.turn_end = self._turn.stt_final = self._loop.time()
        self._remember("user", f"[dtmf {digits}]")
        self._user_turn(UserInput("dtmf", digits=digits))

    async def whole_utterance(self, data: bytes) -> None:
        """One complete utterance in the call's format (the `audio` message): no VAD needed. Up to
        `pipeline.max_utterance_ms` once decoded; Opus is decoded off the event loop (30 s of it
        is ~100 ms of CPU)."""
        if self._ended.is_set() or self._closing:
            return
        self._touch()
        conv = audio.InboundAudio(
            self.format.sample_rate, self.format.encoding, self._rate, self._frame_ms
        )
        meter = self._audio_budget.meter(self._cfg.max_utterance_ms / 1000, streamed=False)
        try:
            if self.format.encoding == "webm":
                frames = await self.runtime.workers.run(conv.push, data, meter)
            else:
                frames = conv.push(data, meter)
        except audio.AudioFormatError as exc:
            self._refuse_audio("invalid_audio", str(exc), 1007, "invalid audio data")
            return
        except audio.AudioLimitError as exc:
            self._refuse_audio(exc.code, str(exc), 1008, exc.reason)
            return
        except ProviderError as exc:  # the worker pool is full: the process is overloaded
            await self._error("stt_failed", f"speech recognition failed: {exc}")
            return
        if self._ended.is_set():
            return
        self._interrupt_reply()
        pcm = b"".join(frames)
        self._to_stt("cancel", None)
        self._to_stt("audio", pcm)
        self._turn_speech_end(self._loop.time())
        self._turns.set_processing()
        self._end_of_speech()

    def set_format(self, fmt: AudioFormat) -> None:
        """The client changed its audio format mid-call (the `config` message)."""
        self._listen_at(fmt)
        self._outbound = audio.OutboundAudio(fmt.sample_rate, _reply_encoding(fmt))
        self.format = fmt

    def interrupt(self) -> None:
        """The client asks the bot to stop talking."""
        self._touch()
        self._barge_in()

    def pause(self) -> None:
        self._touch()
        self._paused = True
        self._cancel_noinput()
        self._spawn(self._status("paused"), "status")

    def resume(self) -> None:
        self._touch()
        self._paused = False
        self._spawn(self._status("listening"), "status")
        self._arm_noinput()

    def reset(self) -> None:
        """Forget the conversation and start the dialogue again."""
        self._touch()
        self._interrupt_reply()
        self.history.clear()
        self.dialogue = self._new_dialogue()
        self._start_reply(self._drive(self.dialogue.start(), greeting=True))

    def touch(self) -> None:
        """Any inbound message counts as activity (keeps the idle timer from firing)."""
        self._touch()

    # ---------------------------------------------------------------------- replies (output)

    def _user_turn(self, event: UserInput) -> None:
        self.turns_count += 1
        self._cancel_noinput()
        self._turns.set_processing()
        self._start_reply(self._drive(self.dialogue.handle(event)))

    def _start_reply(self, coro: Awaitable[Any]) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()
        self._reply = self._spawn(coro, "reply")

    async def _drive(self, outputs: Any, greeting: bool = False) -> None:
        """Run one dialogue step: stream its text into TTS while it is still producing."""
        sentences: asyncio.Queue[tuple[str, bool, str | None] | None] = asyncio.Queue(32)
        speaker = self._spawn(self._speak(sentences), "tts")
        splitter = SentenceSplitter()
        reply: list[str] = []
        barge_in, cache_key, last_delta = True, None, False
        try:
            try:
                async for out in outputs:
                    if isinstance(out, Say):
                        if self._turn.first_text is None:
                            self._turn.first_text = self._loop.time()
                        piece_text = spaced(
                            reply[-1] if reply else "", out.text, out.delta, last_delta
                        )
                        last_delta = out.delta
                        reply.append(piece_text)
                        barge_in, cache_key = out.barge_in, out.cache_key
                        await self.io.send_event(
                            {"type": "response", "text": out.text, "final": False}
                        )
                        for piece in splitter.push(piece_text):
                            await sentences.put((piece, barge_in, cache_key))
                    elif isinstance(out, Listen):
                        self._listen = out
                    elif isinstance(out, IntentEvent):
                        await self.io.send_event(
                            {
                                "type": "intent",
                                "intent": out.intent,
                                "confidence": out.confidence,
                                "parameters": out.parameters,
                            }
                        )
                    elif isinstance(out, Hangup):
                        self._hangup_after_playback = out.reason
                    elif isinstance(out, Transfer) and not await self._transfer(out):
                        # the flow has ended: say so and hang up rather than go silent
                        for piece in splitter.flush():
                            await sentences.put((piece, barge_in, cache_key))
                        failed = self._cfg.transfer_failed
                        reply.append(spaced(reply[-1] if reply else "", failed, False, False))
                        await sentences.put((failed, True, "transfer_failed"))
                        self._hangup_after_playback = f"transfer to {out.target} failed"
                    elif isinstance(out, Note):
                        await self.io.send_event({"type": out.kind, **out.data})
            except ProviderError as exc:
                log.warning("call %s: dialogue provider failed: %s", self.id, exc)
                await self._error("provider_failed", str(exc))
                splitter.flush()
                reply.append(spaced(reply[-1] if reply else "", self._cfg.apology, False, False))
                await sentences.put((self._cfg.apology, True, "apology"))
            for piece in splitter.flush():
                await sentences.put((piece, barge_in, cache_key))
            text = "".join(reply).strip()
            if text:
                await self.io.send_event({"type": "response", "text": text, "final": True})
                self._remember("assistant", text)
            await sentences.put(None)
            await speaker
        finally:
            if not speaker.done():
                speaker.cancel()
        self._maybe_listen(reply_running=False)

    async def _apologise(self) -> None:
        async def one() -> Any:
            yield Say(self._cfg.apology, cache_key="apology")

        await self._drive(one())

    async def _speak(self, sentences: asyncio.Queue[tuple[str, bool, str | None] | None]) -> None:
        tts = self.runtime.providers["tts"]
        deadline = self.runtime.deadlines["tts"]
        preferred = AudioFormat(self.format.sample_rate, _reply_encoding(self.format))
        failed = False
        while (item := await sentences.get()) is not None:
            if failed:
                continue  # one failure per reply: not a deadline's wait for every sentence
            text, barge_in, cache_key = item
            seg = Segment(text, barge_in, mark=f"seg-{next(self._mark_ids)}")
            try:
                if cache_key is not None and hasattr(tts, "synthesize_cached"):
                    chunks = tts.synthesize_cached(text, preferred, cache_key=cache_key)
                else:
                    chunks = tts.synthesize(text, preferred)
                chunks = bounded(chunks, deadline, provider=tts.name, what="audio")
                async with contextlib.aclosing(chunks):  # barge-in closes the upstream now
                    async for chunk in chunks:
                        if self._turn.first_tts is None:
                            self._turn.first_tts = self._loop.time()
                        out = self._outbound.push(chunk.data, chunk.sample_rate, chunk.encoding)
                        for frame in out:
                            await self._playback.put((frame, seg))
            except ProviderError as exc:
                log.warning("call %s: TTS failed: %s", self.id, exc)
                await self._error("tts_failed", f"speech synthesis failed: {exc}")
                failed = True
            for frame in self._outbound.end_segment():
                await self._playback.put((frame, seg))
            await self._playback.put(seg)  # end-of-segment marker

    async def _playback_loop(self) -> None:
        """Send frames at real-time pace, `playback_lead_ms` ahead of the far end's playout."""
        frame_s = self._outbound.frame_ms / 1000
        lead = self._cfg.playback_lead_ms / 1000
        while True:
            item = await self._playback.get()
            now = self._loop.time()
            if isinstance(item, Segment):
                item.sent_all = True
                item.end_at = max(self._playout_end, now)
                if self.io.supports_marks:
                    await self.io.send_mark(item.mark)
                else:
                    self._arm_speaking_until(item.end_at)
                continue
            frame, seg = item
            if not self._turns.bot_speaking:
                self._bot_started(seg)
                await self._status("speaking")  # before the audio it announces, not after
                if seg.flushed:
                    continue  # a barge-in cleared it while the status went out
            elif self._segments and self._segments[-1] is not seg:
                self._segments.append(seg)
                self._turns.barge_in_allowed = seg.barge_in
            self._playout_end = max(self._playout_end, now)
            wait = self._playout_end - lead - now
            if wait > 0:
                await asyncio.sleep(wait)
                if seg.flushed:
                    continue  # a barge-in cleared it while we waited
            if self._turn.first_audio is None and self._turn.first_tts is not None:
                self._turn.first_audio = self._loop.time()
                self._emit_metrics()
            await self.io.send_audio(frame)
            seg.frames += 1
            self._playout_end += frame_s

    def _bot_started(self, seg: Segment) -> None:
        if self._speaking_until is not None:
            self._speaking_until.cancel()
            self._speaking_until = None
        if not self._segments or self._segments[-1] is not seg:
            self._segments.append(seg)
        self._turns.set_bot_speaking(True, seg.barge_in)

    def _arm_speaking_until(self, end_at: float) -> None:
        if self._speaking_until is not None:
            self._speaking_until.cancel()
        self._speaking_until = self._loop.call_at(end_at, self._played_by_clock)

    def _played_by_clock(self) -> None:
        self._speaking_until = None
        now = self._loop.time()
        while self._segments and self._segments[0].sent_all and self._segments[0].end_at <= now:
            self._segment_heard(self._segments.popleft())
        if not self._segments and self._playback.empty():
            self._playback_finished()

    def mark_played(self, name: str) -> None:
        """An echoed mark: everything sent before it has been played (or cleared)."""
        if not any(seg.mark == name for seg in self._segments):
            return  # not ours, or from a reply a barge-in already flushed
        while self._segments:
            seg = self._segments.popleft()
            self._segment_heard(seg)
            if seg.mark == name:
                break
        if not self._segments and self._playback.empty():
            self._playback_finished()

    def _segment_heard(self, seg: Segment) -> None:
        seg.heard = True
        self.runtime.hook.bot_spoke(call=self, text=seg.text, heard=seg.text, interrupted=False)

    def _playback_finished(self) -> None:
        self._turns.set_bot_speaking(False)
        self._maybe_listen(reply_running=self._reply is not None and not self._reply.done())

    def _maybe_listen(self, reply_running: bool) -> None:
        """Back to listening once the reply is complete and all of it has been played."""
        if reply_running or self._segments or not self._playback.empty():
            return
        if self._turns.bot_speaking or self._ended.is_set():
            return
        self._turns.reply_done()
        self._last_activity = self._loop.time()  # the idle countdown starts now (_idle_check)
        if self._hangup_after_playback is not None:
            self._finish_hangup()
            return
        self._spawn(self._status("listening"), "status")
        self._arm_noinput()

    def _finish_hangup(self) -> None:
        reason = self._hangup_after_playback or "completed"

        async def bye() -> None:
            self.end_reason = f"bot: {reason}"
            self.clean_end = True
            await self._status("ended", reason=reason)
            await self.io.close(1000, reason)
            self.hangup(self.end_reason)

        self._spawn(bye(), "hangup")

    async def _transfer(self, out: Transfer) -> bool:
        """Whether the transport took the call elsewhere. A browser never can: it gets the
        `transfer` event to act on itself (open a chat with a person, dial out...)."""
        await self.io.send_event({"type": "transfer", "target": out.target, "mode": out.mode})
        if await self.io.transfer(out.target):
            self._hangup_after_playback = f"transferred to {out.target}"
            return True
        return False

    # --------------------------------------------------------------------------- barge-in

    def _interrupt_reply(self) -> tuple[str, str] | None:
        """Stop the current reply (if any) and everything queued for playback; the speech cut
        off and how much of it the caller heard (None when none was)."""
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()
        heard_any = self._turns.bot_speaking or bool(self._segments)
        cut = self._flush_playback()
        if heard_any:
            self._spawn(self.io.clear(), "clear")
        return cut

    def _barge_in(self) -> None:
        if not (self._turns.bot_speaking or (self._reply is not None and not self._reply.done())):
            return
        if self._turns.bot_speaking and not self._turns.barge_in_allowed:
            return
        if self._turns.state is State.PROCESSING or (
            self._reply is not None and not self._reply.done() and not self._turns.bot_speaking
        ):
            # the caller resumed before we answered: keep what they said for the next turn
            if self.history and self.history[-1]["role"] == "user":
                self._pending_text = self.history.pop()["text"]
        cut = self._interrupt_reply()
        extra = {} if cut is None else {"said": cut[0], "heard": cut[1]}
        self._spawn(self._status("interrupted", **extra), "status")

    def _flush_playback(self) -> tuple[str, str] | None:
        while not self._playback.empty():
            self._playback.get_nowait()
        self._outbound.clear()
        now = self._loop.time()
        said, heard = [], []
        for seg in self._segments:
            said.append(seg.text)
            if seg.heard or (not self.io.supports_marks and seg.sent_all and seg.end_at <= now):
                heard.append(seg.text)
            elif seg.frames and seg.end_at > now and seg.sent_all:
                total = seg.frames * self._outbound.frame_ms / 1000
                played = max(0.0, total - (seg.end_at - now))
                words = seg.text.split()
                heard.append(" ".join(words[: int(len(words) * played / total)]))
        for seg in self._segments:
            seg.flushed = True
        self._segments.clear()
        self._playout_end = 0.0  # the far end dropped its buffer too
        if self._speaking_until is not None:
            self._speaking_until.cancel()
            self._speaking_until = None
        self._turns.set_bot_speaking(False)
        if said:
            said_text, heard_text = " ".join(said), " ".join(h for h in heard if h)
            self.dialogue.interrupted(said_text, heard_text)
            self.runtime.hook.bot_spoke(
                call=self, text=said_text, heard=heard_text, interrupted=True
            )
            if self.history and self.history[-1]["role"] == "assistant":
                self.history[-1]["heard"] = heard_text
                self.history[-1]["interrupted"] = True
            return said_text, heard_text
        return None

    # ---------------------------------------------------------------------------- no-input

    def _arm_noinput(self) -> None:
        self._cancel_noinput()
        timeout = self._listen.noinput_timeout_ms
        if timeout and not self._paused and not self._ended.is_set():
            self._noinput = self._loop.call_later(timeout / 1000, self._on_noinput)

    def _cancel_noinput(self) -> None:
        if self._noinput is not None:
            self._noinput.cancel()
            self._noinput = None

    def _on_noinput(self) -> None:
        self._noinput = None
        if self._turns.state is State.LISTENING and not self._turns.in_utterance:
            self._turn_speech_end(self._loop.time())
            self._user_turn(UserInput("noinput"))

    # ------------------------------------------------------------------------------ events

    async def _status(self, status: str, **extra: Any) -> None:
        if self.state == status or self.state == "ended":
            return
        self.state = status
        await self.io.send_event({"type": "status", "status": status, "state": status, **extra})

    async def _error(self, code: str, message: str) -> None:
        await self.io.send_event({"type": "error", "code": code, "message": message})

    def _emit_metrics(self) -> None:
        turn = self._turn.breakdown()
        self.runtime.hook.turn_completed(call=self, turn=turn)
        self.runtime.record_turn(turn)
        self._spawn(self.io.send_event(turn), "metrics")

    def _remember(self, role: str, text: str) -> None:
        self.history.append({"role": role, "text": text, "at": time.time()})
        if len(self.history) > 200:
            del self.history[:50]

    def info(self) -> dict[str, Any]:
        snap = self.dialogue.snapshot()
        return {
            "call_id": self.id,
            "session_id": self.session_id,
            "transport": self.transport,
            "state": self.state,
            "turns_count": self.turns_count,
            "flow": snap.get("flow"),
            "node": snap.get("node"),
            "started_at": self.started_at,
        }


def _reply_encoding(fmt: AudioFormat) -> str:
    """Replies go out in the caller's encoding, except WebM/Opus callers, who get PCM16."""
    return "pcm_s16le" if fmt.encoding == "webm" else fmt.encoding
