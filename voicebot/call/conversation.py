"""How a call converses: what turn-taking decided, transcripts and other caller input made into
dialogue turns, replies finished or cut off (barge-in), and the no-input prompt.

A mixin of `Call` for now: these methods share the call's conversation state (history, dialogue,
the turn being timed), which `Call` owns. It is also the host `Listener` and `Speaker` report to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ..dialogue import Dialogue, Listen, UserInput
from ..providers import AudioFormat, ProviderError, Transcript
from ..turns import Action, State, TurnTaker
from . import events
from .dtmf import DtmfCollector
from .events import TurnTimes
from .listener import Listener
from .speaker import Segment, Speaker

if TYPE_CHECKING:
    from ..config import PipelineConfig
    from .services import CallIO, CallServices


class Conversation:
    services: CallServices
    io: CallIO
    format: AudioFormat
    dialogue: Dialogue
    history: list[dict[str, Any]]
    turns_count: int
    turn: TurnTimes
    listener: Listener
    speaker: Speaker
    keys: DtmfCollector
    _cfg: PipelineConfig
    _loop: asyncio.AbstractEventLoop
    _turns: TurnTaker
    _ended: asyncio.Event
    _paused: bool
    _listen: Listen
    _noinput: asyncio.TimerHandle | None
    _last_activity: float
    _hangup_after_playback: str | None
    _pending_text: str

    if TYPE_CHECKING:  # provided by Call

        def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]: ...
        def _touch(self) -> None: ...
        def _new_dialogue(self) -> Dialogue: ...
        def _finish_hangup(self) -> None: ...
        async def status(self, state: str, **extra: Any) -> None: ...
        async def error(self, code: str, message: str) -> None: ...
        def remember(self, role: str, text: str) -> None: ...

    # ------------------------------------------------------------ caller input (not audio)

    def end_turn(self) -> None:
        self._touch()
        for action in self._turns.end_turn():
            self.act(action)

    def text(self, text: str) -> None:
        self._touch()
        self._interrupt_reply()
        self._turn_speech_end(self._loop.time())
        self.turn.turn_end = self.turn.stt_final = self._loop.time()
        self.services.hook.transcript(call=self, transcript=Transcript(text, True, 1.0))
        self.remember("user", text)
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
        if self._turns.key_interrupts():
            self._barge_in()
        self._cancel_noinput()
        self.keys.press(digit)

    def _dtmf_turn(self, digits: str) -> None:
        self._turn_speech_end(self._loop.time())
        self.turn.turn_end = self.turn.stt_final = self._loop.time()
        self.remember("user", f"[dtmf {digits}]")
        self._user_turn(UserInput("dtmf", digits=digits))

    def set_format(self, fmt: AudioFormat) -> None:
        """The client changed its audio format mid-call (the `config` message)."""
        self.listener.listen_at(fmt)
        self.speaker.set_format(fmt)
        self.format = fmt

    def interrupt(self) -> None:
        """The client asks the bot to stop talking."""
        self._touch()
        self._barge_in()

    def pause(self) -> None:
        self._touch()
        self._paused = True
        self._cancel_noinput()
        self._spawn(self.status("paused"), "status")

    def resume(self) -> None:
        self._touch()
        self._paused = False
        self._spawn(self.status("listening"), "status")
        self._arm_noinput()

    def reset(self) -> None:
        """Forget the conversation and start the dialogue again."""
        self._touch()
        self._interrupt_reply()
        self.history.clear()
        self.dialogue = self._new_dialogue()
        self.speaker.speak(self.dialogue.start())

    # ---------------------------------------------------------------- turns (ListenerHost)

    def act(self, action: Action) -> None:
        if action is Action.START_UTTERANCE:
            self._cancel_noinput()
            self.listener.start_utterance()
        elif action is Action.USER_STARTED:
            self._cancel_noinput()
            self._spawn(self.status("listening"), "status")
        elif action is Action.BARGE_IN:
            self._barge_in()
        elif action is Action.SPECULATE:
            self._turn_speech_end(self._loop.time() - self._cfg.frame_ms / 1000)
            self.listener.speculate()
        elif action is Action.END_UTTERANCE:
            self.listener.end_utterance()
            self._end_of_speech()
        elif action is Action.CANCEL_UTTERANCE:
            self.listener.cancel_utterance()

    def _turn_speech_end(self, at: float) -> None:
        self.turn = TurnTimes(self.turns_count + 1, speech_end=at)

    def _end_of_speech(self) -> None:
        if self.turn.n != self.turns_count + 1 or self.turn.speech_end is None:
            self._turn_speech_end(self._loop.time())
        self.turn.turn_end = self._loop.time()
        self.listener.finalize()
        self._spawn(self.status("processing"), "status")

    def heard_words(self, partial: Transcript) -> None:
        self._spawn(self._send_transcript(partial), "partial")
        for action in self._turns.heard_words():
            self.act(action)

    async def _send_transcript(self, t: Transcript) -> None:
        await self.io.send_event(events.transcript(t.text, t.final, t.confidence))

    async def transcribed(self, result: Transcript) -> None:
        self.turn.stt_final = self._loop.time()
        text = " ".join(p for p in (self._pending_text, result.text.strip()) if p)
        self._pending_text = ""
        if self._turns.state is State.USER_SPEAKING and text:
            self._pending_text = text  # the caller went on talking: answer the whole thing later
            return
        if not text:
            self._turns.reply_done()
            await self.status("listening")
            self._arm_noinput()
            return
        final = Transcript(text, True, result.confidence, result.language)
        self.services.hook.transcript(call=self, transcript=final)
        await self._send_transcript(final)
        self.remember("user", text)
        self._user_turn(UserInput("speech", text=text, confidence=result.confidence))

    async def stt_failed(self, exc: ProviderError, finalizing: bool) -> None:
        await self.error("stt_failed", f"speech recognition failed: {exc}")
        if finalizing:
            self.speaker.apologise()

    def _user_turn(self, event: UserInput) -> None:
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
        self.services.hook.bot_spoke(call=self, text=seg.text, heard=seg.text, interrupted=False)

    def reply_finished(self) -> None:
        self._maybe_listen(reply_running=False)

    def playback_finished(self) -> None:
        self._turns.set_bot_speaking(False)
        self._maybe_listen(reply_running=self.speaker.replying)

    def _maybe_listen(self, reply_running: bool) -> None:
        """Back to listening once the reply is complete and all of it has been played."""
        if reply_running or self.speaker.unplayed:
            return
        if self._turns.bot_speaking or self._ended.is_set():
            return
        self._turns.reply_done()
        self._last_activity = self._loop.time()  # the idle countdown starts now (_idle_check)
        if self._hangup_after_playback is not None:
            self._finish_hangup()
            return
        self._spawn(self.status("listening"), "status")
        self._arm_noinput()

    # ------------------------------------------------------------------------------ barge-in

    def _interrupt_reply(self) -> tuple[str, str] | None:
        """Stop the reply and its playback; tell the dialogue, the hooks and the history what
        was cut off and how much of it the caller heard."""
        cut = self.speaker.interrupt()
        if cut is not None:
            said, heard = cut
            self.dialogue.interrupted(said, heard)
            self.services.hook.bot_spoke(call=self, text=said, heard=heard, interrupted=True)
            if self.history and self.history[-1]["role"] == "assistant":
                self.history[-1]["heard"] = heard
                self.history[-1]["interrupted"] = True
        return cut

    def _barge_in(self) -> None:
        replying = self.speaker.replying
        if not self._turns.may_interrupt(replying):
            return
        if self._turns.answer_was_pending(replying):
            # the caller resumed before we answered: keep what they said for the next turn
            if self.history and self.history[-1]["role"] == "user":
                self._pending_text = self.history.pop()["text"]
        cut = self._interrupt_reply()
        extra = {} if cut is None else {"said": cut[0], "heard": cut[1]}
        self._spawn(self.status("interrupted", **extra), "status")

    # ------------------------------------------------------------------------------ no-input

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
