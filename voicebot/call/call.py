"""One call's life: start, timers, caller input, turns, and the end. It owns the tasks of the call
and composes the pieces that do the work: `Listener` (frames → VAD → turn-taking → STT), `Speaker`
(replies → TTS → paced playback, what was heard) and `DtmfCollector`.

Few tasks per call, none per frame: inbound audio is processed inline by `feed_audio()`, STT runs
in one task, each reply in one, playback in one. Every task runs in the call's context and is
cancelled when it ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from .. import audio
from ..dialogue import Dialogue, Listen
from ..limits import AudioBudget
from ..providers import AudioFormat, ProviderError
from ..turns import State, TurnSettings, TurnTaker
from ..usage import usage_sink
from . import events
from .conversation import Conversation
from .dtmf import DtmfCollector
from .events import TurnTimes
from .listener import Listener
from .speaker import Speaker

if TYPE_CHECKING:
    from .services import CallIO, CallServices

log = logging.getLogger("voicebot.call")


class Call(Conversation):
    """Per-call state and tasks. Created by `Runtime.new_call`, which passes itself as the call's
    `services` (anything that is a `CallServices`); the transport drives it."""

    def __init__(
        self,
        services: CallServices,
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
        cfg = services.config.pipeline
        self.services = services
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
        self._cfg = cfg
        self.format = audio_format
        limits = services.config.security.limits
        self._limits = limits
        self._audio_budget = AudioBudget(limits, cfg.max_utterance_ms / 1000)
        self._closing = False
        self._context = contextvars.copy_context()
        self._context.run(usage_sink.set, self._report_usage)
        self._tasks: set[asyncio.Task[Any]] = set()
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
        self.listener = Listener(services, self._turns, self, audio_format, self._spawn, self.id)
        self.speaker = Speaker(services, io, self._turns, self, audio_format, self._spawn, self.id)
        self.keys = DtmfCollector(self._loop, lambda: self._listen, self._dtmf_turn)
        self._ended = asyncio.Event()
        self._paused = False
        self._listen = Listen()
        self._noinput: asyncio.TimerHandle | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self._max_len: asyncio.TimerHandle | None = None
        self._warn_at: asyncio.TimerHandle | None = None
        self._hangup_after_playback: str | None = None
        self._pending_text = ""
        self.turn = TurnTimes(0)
        if resume:
            self.history = list(resume.get("history", []))
            self.turns_count = int(resume.get("turns_count", 0))
            self.variables = {**resume.get("variables", {}), **self.variables}
        self.dialogue: Dialogue = self._new_dialogue(flow, resume and resume.get("dialogue"))

    def _report_usage(self, usage: Any) -> None:
        self.services.hook.usage(call=self, usage=usage)

    def _new_dialogue(
        self, flow: str | None = None, snapshot: dict[str, Any] | None = None
    ) -> Dialogue:
        return self.services.new_dialogue(
            self.id, self.variables, self._report_usage, flow=flow, snapshot=snapshot
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
        self._touch()
        self._max_len = self._loop.call_later(self._limits.max_call_s, self._too_long)
        if 0 < self._limits.max_call_warning_s < self._limits.max_call_s:
            self._warn_at = self._loop.call_later(
                self._limits.max_call_s - self._limits.max_call_warning_s, self._warn_of_the_end
            )
        self.listener.start()
        self.speaker.start()
        self.services.hook.call_started(call=self)
        await self.status("listening")
        self.speaker.speak(self.dialogue.start())
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
        for handle in (self._noinput, self._idle, self._max_len, self._warn_at):
            if handle is not None:
                handle.cancel()
        self.speaker.close()
        self.keys.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.listener.aclose()
        self.state = "ended"
        self.services.hook.call_ended(call=self, reason=self.end_reason or "ended")

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        # every task of the call runs in the call's context, whichever task asked for it, so
        # providers can report usage to this call (voicebot.usage)
        task = self._loop.create_task(
            coro,  # type: ignore[arg-type]
            name=f"call-{self.id[:8]}-{name}",
            context=self._context,
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
            timeout = self._limits.idle_timeout_s
            self._idle = self._loop.call_at(self._last_activity + timeout, self._idle_check)

    def _idle_check(self) -> None:
        timeout = self._limits.idle_timeout_s
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
            or self.speaker.has_segments
            or self.speaker.replying
        )

    def _too_long(self) -> None:
        self._close_soon(4008, "maximum call length reached")

    def _warn_of_the_end(self) -> None:
        """Tell the caller the call is about to end (`limits.max_call_warning_s` before), after
        whatever the bot is saying now."""
        current = self.speaker.reply

        async def warn() -> None:
            if current is not None and not current.done():
                await asyncio.gather(current, return_exceptions=True)
            self.speaker.say(self._limits.max_call_warning, "max-call-warning", barge_in=False)

        self._spawn(warn(), "warning")

    def _close_soon(self, code: int, reason: str, end_reason: str = "") -> None:
        if self._ended.is_set() or self._closing:
            return
        self._closing = True  # audio still arriving is not decoded

        async def close() -> None:
            self.end_reason = end_reason or reason
            await self.status("ended")
            await self.io.close(code, reason)
            self.hangup(reason)

        self._spawn(close(), "close")

    def _finish_hangup(self) -> None:
        reason = self._hangup_after_playback or "completed"

        async def bye() -> None:
            self.end_reason = f"bot: {reason}"
            self.clean_end = True
            await self.status("ended", reason=reason)
            await self.io.close(1000, reason)
            self.hangup(self.end_reason)

        self._spawn(bye(), "hangup")

    # --------------------------------------------------------------------------- caller input

    def feed_audio(self, data: bytes) -> None:
        """Caller audio in the call's format, up to `limits.max_message_audio_s` once decoded.
        Never blocks: that cap bounds the decoding and VAD one message costs the event loop."""
        if self._ended.is_set() or self._closing:
            return
        self._touch()
        if self._paused:
            return
        try:
            self.listener.feed(data, self._audio_budget.meter(self._limits.max_message_audio_s))
        except audio.AudioFormatError as exc:  # a corrupt compressed stream cannot resync
            self._refuse_audio("invalid_audio", str(exc), 1007, "invalid audio data")
        except audio.AudioLimitError as exc:
            self._refuse_audio(exc.code, str(exc), 1008, exc.reason)

    def _refuse_audio(self, code: str, message: str, close_code: int, reason: str) -> None:
        level = logging.INFO if close_code == 1007 else logging.WARNING  # a limit: abuse?
        log.log(level, "call %s: %s: %s", self.id, reason, message)
        self._spawn(self.error(code, message), "error")
        # the outcome recorded for every rate limit, whichever layer applied it
        self._close_soon(close_code, reason, "rate limited" if code == "rate_limited" else "")

    async def whole_utterance(self, data: bytes) -> None:
        """One complete utterance in the call's format (the `audio` message): no VAD needed. Up to
        `pipeline.max_utterance_ms` once decoded."""
        if self._ended.is_set() or self._closing:
            return
        self._touch()
        meter = self._audio_budget.meter(self._cfg.max_utterance_ms / 1000, streamed=False)
        try:
            pcm = await self.listener.decode_whole(data, self.format, meter)
        except audio.AudioFormatError as exc:
            self._refuse_audio("invalid_audio", str(exc), 1007, "invalid audio data")
            return
        except audio.AudioLimitError as exc:
            self._refuse_audio(exc.code, str(exc), 1008, exc.reason)
            return
        except ProviderError as exc:  # the worker pool is full: the process is overloaded
            await self.error("stt_failed", f"speech recognition failed: {exc}")
            return
        if self._ended.is_set():
            return
        self._interrupt_reply()
        self.listener.whole_utterance(pcm)
        self._turn_speech_end(self._loop.time())
        self._turns.set_processing()
        self._end_of_speech()

    def touch(self) -> None:
        """Any inbound message counts as activity (keeps the idle timer from firing)."""
        self._touch()

    def mark_played(self, name: str) -> None:
        """An echoed mark: everything sent before it has been played (or cleared)."""
        self.speaker.mark_played(name)

    # -------------------------------------------------------------------------------- events

    async def status(self, state: str, **extra: Any) -> None:
        if self.state == state or self.state == "ended":
            return
        self.state = state
        await self.io.send_event(events.status(state, **extra))

    async def error(self, code: str, message: str) -> None:
        await self.io.send_event(events.error(code, message))

    def emit_metrics(self) -> None:
        turn = self.turn.breakdown()
        self.services.hook.turn_completed(call=self, turn=turn)
        self.services.record_turn(turn)
        self._spawn(self.io.send_event(turn), "metrics")

    def remember(self, role: str, text: str) -> None:
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
