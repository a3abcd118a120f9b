"""One call's life: start, timers, and the end. It owns the tasks of the call
and composes the `Conversation` that does the work (it holds the `Listener`, `Speaker` and
`DtmfCollector`); transports talk to the call only.

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
from ..audio.budget import AudioBudget
from ..audio.types import AudioFormat
from ..dialogue import Dialogue
from ..protocol import events
from ..providers import ProviderError
from ..records.usage import usage_sink
from . import amd
from .conversation import Conversation

if TYPE_CHECKING:
    from .services import CallIO, CallServices

log = logging.getLogger("voicebot.call")


#: At hang-up, how long the caller's last words may take to be transcribed for the record.
LAST_WORDS_S = 3.0


class Call:
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
        if resume:
            self.variables = {**resume.get("variables", {}), **self.variables}
        self.started_at = time.time()
        self._running = False
        self._released = False
        self._announced = "connected"  # the last status sent: not sent twice in a row
        self.end_reason = ""
        self.clean_end = False  # ended on purpose (end_call, goodbye, transfer), not dropped
        self.resumed = resume is not None
        self._loop = asyncio.get_running_loop()
        self._cfg = cfg
        self.format = audio_format
        limits = services.config.security.limits
        self._limits = limits
        self._audio_budget = AudioBudget(limits, cfg.max_utterance_ms / 1000)
        self._stream_meter = self._audio_budget.meter(limits.max_message_audio_s)
        self._closing = False
        self._context = contextvars.copy_context()
        self._context.run(usage_sink.set, self.report_usage)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ended = asyncio.Event()
        self._paused = False
        self._idle: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self._max_len: asyncio.TimerHandle | None = None
        self._warn_at: asyncio.TimerHandle | None = None
        self.conversation = Conversation(self, services, io, audio_format, flow=flow, resume=resume)
        self.listener = self.conversation.listener
        if amd.wanted(cfg.amd, self.variables):
            self.listener.amd = amd.CallAmd(self.id, self.variables, cfg.frame_ms)
        self.speaker = self.conversation.speaker

    @property
    def dialogue(self) -> Dialogue:
        return self.conversation.dialogue

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.conversation.history

    @property
    def turns_count(self) -> int:
        return self.conversation.turns_count

    def report_usage(self, usage: Any) -> None:
        self.services.hook.usage(call=self, usage=usage)

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
        self.conversation.start()
        self._running = True
        self.services.hook.call_started(call=self)
        await self.status("listening")
        self.conversation.greet()
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

    @property
    def paused(self) -> bool:
        return self._paused

    async def _release(self) -> None:
        for handle in (self._idle, self._max_len, self._warn_at):
            if handle is not None:
                handle.cancel()
        self.conversation.close()
        await self.conversation.last_words(LAST_WORDS_S)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.listener.aclose()
        self._released = True
        self.services.hook.call_ended(call=self, reason=self.end_reason or "ended")

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
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

    def restart_idle(self) -> None:
        self._last_activity = self._loop.time()

    def _idle_check(self) -> None:
        timeout = self._limits.idle_timeout_s
        now = self._loop.time()
        if self.conversation.busy:
            # the caller is waiting for the bot, not idle: the countdown starts again once the
            # bot is back to listening (`restart_idle`)
            self._last_activity = now
        due = self._last_activity + timeout
        if now < due:
            self._idle = self._loop.call_at(due, self._idle_check)
            return
        self._idle = None
        self._close_soon(4008, "idle timeout: no audio or messages received")

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

        self.spawn(warn(), "warning")

    def _close_soon(self, code: int, reason: str, end_reason: str = "") -> None:
        if self._ended.is_set() or self._closing:
            return
        self._closing = True  # audio still arriving is not decoded

        async def close() -> None:
            self.end_reason = end_reason or reason
            await self.status("ended", reason=reason)
            await self.io.close(code, reason)
            self.hangup(reason)

        self.spawn(close(), "close")

    def finish(self, reason: str) -> None:
        reason = reason or "completed"

        async def bye() -> None:
            self.end_reason = f"bot: {reason}"
            self.clean_end = True
            await self.status("ended", reason=reason)
            await self.io.close(1000, reason)
            self.hangup(self.end_reason)

        self.spawn(bye(), "hangup")

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
            self.listener.feed(data, self._stream_meter.fresh())
        except audio.UnsupportedAudio as exc:  # told once; the call goes on
            self.spawn(self.error("unsupported_audio", str(exc), detected=exc.detected), "error")
        except audio.AudioFormatError as exc:  # a corrupt compressed stream cannot resync
            self._refuse_audio("invalid_audio", str(exc), 1007, "invalid audio data")
        except audio.AudioLimitError as exc:
            self._refuse_audio(exc.code, str(exc), 1008, exc.reason)

    def _refuse_audio(self, code: str, message: str, close_code: int, reason: str) -> None:
        level = logging.INFO if close_code == 1007 else logging.WARNING  # a limit: abuse?
        log.log(level, "call %s: %s: %s", self.id, reason, message)
        self.spawn(self.error(code, message), "error")
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
        except audio.UnsupportedAudio as exc:
            await self.error("unsupported_audio", str(exc), detected=exc.detected)
            return
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
        self.conversation.whole_utterance(pcm)

    def end_turn(self) -> None:
        self._touch()
        self.conversation.end_turn()

    def text(self, text: str) -> None:
        self._touch()
        self.conversation.text(text)

    def typing(self) -> None:
        """The caller is typing into the page's text box: as much a sign of life as speech."""
        self._touch()
        self.conversation.typing()

    def dtmf(self, digit: str) -> None:
        self._touch()
        self.conversation.dtmf(digit)

    def set_format(self, fmt: AudioFormat) -> None:
        """The client changed its audio format mid-call (the `config` message)."""
        self.conversation.set_format(fmt)
        self.format = fmt

    def interrupt(self) -> None:
        """The client asks the bot to stop talking."""
        self._touch()
        self.conversation.interrupt()

    def pause(self) -> None:
        self._touch()
        self._paused = True
        self.conversation.pause()

    def resume(self) -> None:
        self._touch()
        self._paused = False
        self.conversation.resume()

    def reset(self) -> None:
        """Forget the conversation and start the dialogue again."""
        self._touch()
        self.conversation.reset()

    def touch(self) -> None:
        """Any inbound message counts as activity (keeps the idle timer from firing)."""
        self._touch()

    def mark_played(self, name: str) -> None:
        """An echoed mark: everything sent before it has been played (or cleared)."""
        self.speaker.mark_played(name)

    # -------------------------------------------------------------------------------- events

    @property
    def state(self) -> str:
        """Where the call is, derived: its life (connected, paused, ended) from the call, the
        conversation's (listening, processing, speaking) from the turn-taker, which alone keeps
        it. `/calls`, hooks and status replies all read this."""
        if self._released:
            return "ended"
        if not self._running:
            return "connected"
        if self._paused:
            return "paused"
        return self.conversation.state

    async def status(self, state: str, *, force: bool = False, **extra: Any) -> None:
        """Tell the caller. A status is not repeated (`force`: a client message asked for it),
        and nothing follows `ended`."""
        if self._announced == "ended" or (self._announced == state and not force):
            return
        self._announced = state
        await self.io.send_event(events.Status(state, self.id, **extra))

    async def error(self, code: str, message: str, **extra: Any) -> None:
        self.services.record_error(code)
        await self.io.send_event(events.Error(code, message, extra))

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
