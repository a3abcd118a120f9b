"""How a call converses: what turn-taking decided, caller input made into dialogue turns,
replies finished or cut off (barge-in), and the no-input prompt.

It owns the conversation's state (dialogue, history, the turn being timed), the turn-taker, and
the `Listener`, `Speaker`, `Transcription` and `DtmfCollector` that report to it; how a spoken
turn ends (final transcripts, unfinished phrases, false stops, last words) is `Transcription`'s.
Of its `Call` it asks (through `CallControl`) only what belongs to the call's life: tasks,
status, errors, the idle clock, the end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol

from ..audio.types import AudioFormat
from ..dialogue import Dialogue, Listen, UserInput
from ..providers import ProviderError, Transcript
from .dtmf import DtmfCollector
from .listener import Listener
from .speaker import Segment, Speaker
from .timing import TurnTimes, metrics_event
from .transcription import Transcription
from .turns import Action, State, TurnSettings, TurnTaker

if TYPE_CHECKING:
    from .services import CallIO, CallServices

log = logging.getLogger("voicebot.call")


class CallControl(Protocol):
    """What a conversation asks of its call. The call is also what hooks get as `call=`."""

    id: str
    variables: dict[str, Any]

    @property
    def ended(self) -> bool: ...
    @property
    def paused(self) -> bool: ...
    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]: ...
    def restart_idle(self) -> None:
        """The idle countdown starts again now."""

    def finish(self, reason: str) -> None:
        """The bot ends the call (its last words have played)."""

    def report_usage(self, usage: Any) -> None: ...
    async def status(self, state: str, *, force: bool = False, **extra: Any) -> None: ...
    async def error(self, code: str, message: str) -> None: ...


class Conversation:
    def __init__(
        self,
        call: CallControl,
        services: CallServices,
        io: CallIO,
        fmt: AudioFormat,
        *,
        flow: str | None = None,
        resume: dict[str, Any] | None = None,
    ) -> None:
        cfg = services.config.pipeline
        self._call = call
        self._services = services
        self._io = io
        self._cfg = cfg
        self._loop = asyncio.get_running_loop()
        self._spawn = call.spawn
        self._turns = TurnTaker(
            TurnSettings(
                frame_ms=cfg.frame_ms,
                hangover_ms=cfg.vad_hangover_ms,
                min_speech_ms=cfg.min_speech_ms,
                max_utterance_ms=cfg.max_utterance_ms,
                barge_in=cfg.barge_in.enabled,
                barge_in_ms=cfg.barge_in.min_speech_ms,
                barge_in_needs_words=cfg.barge_in.needs_words,
                backchannel_ms=cfg.barge_in.backchannel_ms,
            )
        )
        self.listener = Listener(services, self._turns, self, fmt, call.spawn, call.id)
        self.speaker = Speaker(services, io, self._turns, self, fmt, call.spawn, call.id)
        self.keys = DtmfCollector(self._loop, lambda: self._listen, self._dtmf_turn)
        self._words = Transcription(
            call, services, io, self._turns, self.listener, self.speaker, self
        )
        self._listen = Listen()
        self._noinput: asyncio.TimerHandle | None = None
        self._hangup_after_playback: str | None = None
        self.turn = TurnTimes(0)
        self.history: list[dict[str, Any]] = []
        self.turns_count = 0
        if resume:
            self.history = list(resume.get("history", []))
            self.turns_count = int(resume.get("turns_count", 0))
        self.dialogue: Dialogue = self._new_dialogue(flow, resume and resume.get("dialogue"))

    def _new_dialogue(
        self, flow: str | None = None, snapshot: dict[str, Any] | None = None
    ) -> Dialogue:
        return self._services.new_dialogue(
            self._call.id,
            self._call.variables,
            self._call.report_usage,
            flow=flow,
            snapshot=snapshot,
        )

    def start(self) -> None:
        """The call's long-lived tasks: STT (and partials) and playback."""
        self.listener.start()
        self.speaker.start()

    def greet(self) -> None:
        self.speaker.speak(self.dialogue.start())

    def close(self) -> None:
        """The call is ending: no timer of the conversation may fire."""
        self._cancel_noinput()
        self._words.close()
        self.speaker.close()
        self.keys.cancel()

    @property
    def state(self) -> str:
        """The turn-taker's state as a status: a caller talking is still `listening`."""
        if self._turns.state is State.USER_SPEAKING:
            return State.LISTENING.value
        return self._turns.state.value

    @property
    def busy(self) -> bool:
        """Answering (STT, LLM, TTS) or speaking."""
        return (
            self._turns.state is State.PROCESSING
            or self._turns.bot_speaking
            or self.speaker.has_segments
            or self.speaker.replying
        )

    def whole_utterance(self, pcm: bytes) -> None:
        """A complete utterance (no VAD): it interrupts the bot and is the caller's turn."""
        self._interrupt_reply()
        self.listener.whole_utterance(pcm)
        self.speech_ended(self._loop.time())
        self._turns.set_processing()
        self._end_of_speech()

    def remember(self, role: str, text: str) -> None:
        self.history.append({"role": role, "text": text, "at": time.time()})
        if len(self.history) > 200:
            del self.history[:50]

    async def status(self, state: str, **extra: Any) -> None:
        await self._call.status(state, **extra)

    def answer(self) -> None:
        """A client message that changed nothing still gets the call's status as its reply."""
        self._spawn(self._call.status(self._call_state(), force=True), "status")

    def _call_state(self) -> str:
        return "paused" if self._call.paused else self.state

    async def error(self, code: str, message: str) -> None:
        await self._call.error(code, message)

    def emit_metrics(self) -> None:
        turn = self.turn.breakdown()
        self._services.hook.turn_completed(call=self._call, turn=turn)
        self._spawn(self._io.send_event(metrics_event(turn)), "metrics")

    # ------------------------------------------------------------ caller input (not audio)

    def end_turn(self) -> None:
        actions = self._turns.end_turn()
        if not actions:  # nothing was being said: still answer the client
            self.answer()
        for action in actions:
            self.act(action)

    def text(self, text: str) -> None:
        self._interrupt_reply()
        self.speech_ended(self._loop.time())
        self.turn.turn_end = self.turn.stt_final = self._loop.time()
        self._services.hook.transcript(call=self._call, transcript=Transcript(text, True, 1.0))
        self.remember("user", text)
        self.user_turn(UserInput("text", text=text))

    def typing(self) -> None:
        """The caller is typing into the page's text box: as much a sign of life as speech, so
        a pending no-input prompt starts its wait again (typing a sentence takes longer than
        saying it)."""
        if self._noinput is not None:
            self.arm_noinput()

    def dtmf(self, digit: str) -> None:
        if self._turns.key_interrupts():
            self.barge_in()
        self._cancel_noinput()
        self.keys.press(digit)

    def _dtmf_turn(self, digits: str) -> None:
        self.speech_ended(self._loop.time())
        self.turn.turn_end = self.turn.stt_final = self._loop.time()
        self.remember("user", f"[dtmf {digits}]")
        self.user_turn(UserInput("dtmf", digits=digits))

    def set_format(self, fmt: AudioFormat) -> None:
        """The client changed its audio format mid-call (the `config` message)."""
        self.listener.listen_at(fmt)
        self.speaker.set_format(fmt)

    def interrupt(self) -> None:
        """The client asks the bot to stop talking; it is told the status either way."""
        self.barge_in(answer=True)

    def pause(self) -> None:
        self._cancel_noinput()
        self._spawn(self._call.status("paused"), "status")

    def resume(self) -> None:
        self._spawn(self._call.status("listening"), "status")
        self.arm_noinput()

    def reset(self) -> None:
        """Forget the conversation and start the dialogue again."""
        self._interrupt_reply()
        self.history.clear()
        self.dialogue = self._new_dialogue()
        self.greet()

    # ---------------------------------------------------------------- turns (ListenerHost)

    def act(self, action: Action) -> None:
        if action is Action.START_UTTERANCE:
            self._cancel_noinput()
            # the caller goes on: their next words join the same turn
            self._words.cancel_unfinished()
            self.listener.start_utterance()
        elif action is Action.USER_STARTED:
            self._cancel_noinput()
            self._spawn(self._call.status("listening"), "status")
        elif action is Action.BARGE_IN:
            self.barge_in(by_speech=True)
        elif action is Action.HELD_UTTERANCE:
            # short speech over the bot: its words decide (`transcribed`); the bot talks on
            self._words.hold()
        elif action is Action.SPECULATE:
            self.speech_ended(self._loop.time() - self._cfg.frame_ms / 1000)
            self.listener.speculate()
        elif action is Action.END_UTTERANCE:
            self.listener.end_utterance()
            self._end_of_speech()
        elif action is Action.CANCEL_UTTERANCE:
            self.listener.cancel_utterance()
            if self._words.pending_text and self._turns.state is State.LISTENING:
                self._words.answer_pending()  # it was only noise: the unfinished phrase is all

    def speech_ended(self, at: float) -> None:
        """A new turn's timings start; public because `Transcription` ends spoken turns too."""
        self.turn = TurnTimes(self.turns_count + 1, speech_end=at)

    def _end_of_speech(self) -> None:
        if self.turn.n != self.turns_count + 1 or self.turn.speech_end is None:
            self.speech_ended(self._loop.time())
        self.turn.turn_end = self._loop.time()
        self._words.finalize()
        self._spawn(self._call.status("processing"), "status")

    async def last_words(self, timeout: float) -> None:
        """The call is ending: the caller's last words reach the record (see `Transcription`)."""
        await self._words.last_words(timeout)

    def heard_words(self, partial: Transcript) -> None:
        self._spawn(self._words.send_transcript(partial), "partial")
        for action in self._turns.heard_words():
            self.act(action)

    async def transcribed(self, result: Transcript, joined: bool = False) -> None:
        await self._words.transcribed(result, joined)

    async def stt_failed(self, exc: ProviderError, finalizing: bool) -> None:
        await self._words.stt_failed(exc, finalizing)

    def user_turn(self, event: UserInput) -> None:
        self.turns_count += 1
        self._cancel_noinput()
        self._turns.set_processing()
        self.speaker.speak(self.dialogue.handle(event))

    # ---------------------------------------------------------------- replies (SpeakerHost)

    def listen(self, how: Listen) -> None:
        self._listen = how

    def hangup_after_playback(self, reason: str) -> None:
        self._hangup_after_playback = reason

    def heard(self, seg: Segment) -> None:
        self._services.hook.bot_spoke(
            call=self._call, text=seg.text, heard=seg.text, interrupted=False
        )

    def reply_finished(self) -> None:
        self._maybe_listen(reply_running=False)

    def playback_finished(self) -> None:
        self._turns.set_bot_speaking(False)
        self._maybe_listen(reply_running=self.speaker.replying)

    def _maybe_listen(self, reply_running: bool) -> None:
        """Back to listening once the reply is complete and all of it has been played."""
        if reply_running or self.speaker.unplayed:
            return
        if self._turns.bot_speaking or self._call.ended:
            return
        self._turns.reply_done()
        self._call.restart_idle()
        if self._hangup_after_playback is not None:
            self._call.finish(self._hangup_after_playback)
            return
        self._spawn(self._call.status("listening"), "status")
        self.arm_noinput()

    # ------------------------------------------------------------------------------ barge-in

    def _interrupt_reply(self) -> tuple[str, str] | None:
        """Stop the reply and its playback; tell the dialogue, the hooks and the history what
        was cut off and how much of it the caller heard."""
        cut = self.speaker.interrupt()
        if cut is not None:
            said, heard = cut
            self.dialogue.interrupted(said, heard)
            self._services.hook.bot_spoke(call=self._call, text=said, heard=heard, interrupted=True)
            if self.history and self.history[-1]["role"] == "assistant":
                self.history[-1]["heard"] = heard
                self.history[-1]["interrupted"] = True
        return cut

    def barge_in(self, answer: bool = False, by_speech: bool = False) -> None:
        replying = self.speaker.replying
        if not self._turns.may_interrupt(replying):
            if answer:
                self.answer()
            return
        if self._turns.answer_was_pending(replying):
            # the caller resumed before we answered: keep what they said for the next turn
            if self.history and self.history[-1]["role"] == "user":
                self._words.pending_text = self.history.pop()["text"]
        cut = self._interrupt_reply()
        self._words.stopped(self.speaker.unsaid if by_speech else None)
        extra = {} if cut is None else {"said": cut[0], "heard": cut[1]}
        self._spawn(self._call.status("interrupted", **extra), "status")

    # ------------------------------------------------------------------------------ no-input

    def arm_noinput(self) -> None:
        self._cancel_noinput()
        timeout = self._listen.noinput_timeout_ms
        if timeout and not self._call.paused and not self._call.ended:
            self._noinput = self._loop.call_later(timeout / 1000, self._on_noinput)

    def _cancel_noinput(self) -> None:
        if self._noinput is not None:
            self._noinput.cancel()
            self._noinput = None

    def _on_noinput(self) -> None:
        self._noinput = None
        if self._turns.state is State.LISTENING and not self._turns.in_utterance:
            self.speech_ended(self._loop.time())
            self.user_turn(UserInput("noinput"))
