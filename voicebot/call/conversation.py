"""How a call converses: what turn-taking decided, transcripts and other caller input made into
dialogue turns, replies finished or cut off (barge-in), and the no-input prompt.

It owns the conversation's state (dialogue, history, the turn being timed), the turn-taker, and
the `Listener`, `Speaker` and `DtmfCollector` that report to it. Of its `Call` it asks (through
`CallControl`) only what belongs to the call's life: tasks, status, errors, the idle clock, the end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol

from ..audio.types import AudioFormat
from ..dialogue import Dialogue, Listen, UserInput
from ..protocol import events
from ..providers import ProviderError, Transcript
from .backchannel import FalseStops
from .dtmf import DtmfCollector
from .endpointing import EndOfTurn
from .listener import Listener
from .speaker import Segment, Speaker
from .timing import TurnTimes, metrics_event
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
        self._false_stops = FalseStops(cfg.barge_in.backchannels, cfg.barge_in.resume_timeout_ms)
        self.listener = Listener(services, self._turns, self, fmt, call.spawn, call.id)
        self.speaker = Speaker(services, io, self._turns, self, fmt, call.spawn, call.id)
        self.keys = DtmfCollector(self._loop, lambda: self._listen, self._dtmf_turn)
        self._listen = Listen()
        self._noinput: asyncio.TimerHandle | None = None
        self._hangup_after_playback: str | None = None
        self._pending_text = ""
        self._end_of_turn = EndOfTurn(cfg.end_of_turn.unfinished_words)
        self._unfinished_wait = cfg.end_of_turn.unfinished_wait_ms / 1000
        self._unfinished: asyncio.TimerHandle | None = None  # waiting for the rest of a phrase
        self._finals_pending = 0  # utterances handed to STT whose transcript has not come
        self._closing: asyncio.Event | None = None  # set once the call's last words are in
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
        self._cancel_unfinished()
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
        self._turn_speech_end(self._loop.time())
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
        self._turn_speech_end(self._loop.time())
        self.turn.turn_end = self.turn.stt_final = self._loop.time()
        self._services.hook.transcript(call=self._call, transcript=Transcript(text, True, 1.0))
        self.remember("user", text)
        self._user_turn(UserInput("text", text=text))

    def typing(self) -> None:
        """The caller is typing into the page's text box: as much a sign of life as speech, so
        a pending no-input prompt starts its wait again (typing a sentence takes longer than
        saying it)."""
        if self._noinput is not None:
            self._arm_noinput()

    def dtmf(self, digit: str) -> None:
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

    def interrupt(self) -> None:
        """The client asks the bot to stop talking; it is told the status either way."""
        self._barge_in(answer=True)

    def pause(self) -> None:
        self._cancel_noinput()
        self._spawn(self._call.status("paused"), "status")

    def resume(self) -> None:
        self._spawn(self._call.status("listening"), "status")
        self._arm_noinput()

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
            self._cancel_unfinished()  # the caller goes on: their next words join the same turn
            self.listener.start_utterance()
        elif action is Action.USER_STARTED:
            self._cancel_noinput()
            self._spawn(self._call.status("listening"), "status")
        elif action is Action.BARGE_IN:
            self._barge_in(by_speech=True)
        elif action is Action.HELD_UTTERANCE:
            # short speech over the bot: its words decide (`transcribed`); the bot talks on
            self._false_stops.held = True
            self.listener.end_utterance()
            self._finalize()
        elif action is Action.SPECULATE:
            self._turn_speech_end(self._loop.time() - self._cfg.frame_ms / 1000)
            self.listener.speculate()
        elif action is Action.END_UTTERANCE:
            self.listener.end_utterance()
            self._end_of_speech()
        elif action is Action.CANCEL_UTTERANCE:
            self.listener.cancel_utterance()
            if self._pending_text and self._turns.state is State.LISTENING:
                self._answer_pending()  # it was only noise: the unfinished phrase is all

    def _turn_speech_end(self, at: float) -> None:
        self.turn = TurnTimes(self.turns_count + 1, speech_end=at)

    def _end_of_speech(self) -> None:
        if self.turn.n != self.turns_count + 1 or self.turn.speech_end is None:
            self._turn_speech_end(self._loop.time())
        self.turn.turn_end = self._loop.time()
        self._finalize()
        self._spawn(self._call.status("processing"), "status")

    def _finalize(self) -> None:
        self._finals_pending += 1
        self.listener.finalize()

    async def last_words(self, timeout: float) -> None:
        """The call is ending (hang-up, `stop`): what the caller said last, an utterance still
        open or one still being transcribed, reaches the transcript record (the `transcript`
        hook, the history) within `timeout`. No reply: nobody is left to hear it."""
        self._closing = asyncio.Event()
        if self._turns.in_utterance:
            self._turns.end_turn()
            self.listener.end_utterance()
            self._finalize()
        if self._finals_pending:
            try:
                await asyncio.wait_for(self._closing.wait(), timeout)
            except TimeoutError:
                log.info("call %s: no transcript of the last words in time", self._call.id)
        if self._pending_text:
            self._record_user(self._pending_text, None)
            self._pending_text = ""

    def _record_user(self, text: str, result: Transcript | None) -> Transcript:
        final = Transcript(
            text, True, result.confidence if result else 1.0, result.language if result else None
        )
        self._services.hook.transcript(call=self._call, transcript=final)
        self.remember("user", text)
        return final

    def heard_words(self, partial: Transcript) -> None:
        self._spawn(self._send_transcript(partial), "partial")
        for action in self._turns.heard_words():
            self.act(action)

    async def _send_transcript(self, t: Transcript) -> None:
        await self._io.send_event(events.Transcript(t.text, t.final, t.confidence))

    async def transcribed(self, result: Transcript) -> None:
        self.turn.stt_final = self._loop.time()
        self._finals_pending = max(0, self._finals_pending - 1)
        text = " ".join(p for p in (self._pending_text, result.text.strip()) if p)
        if self._closing is not None:
            self._pending_text = ""
            if text:
                self._record_user(text, result)
            if not self._finals_pending:
                self._closing.set()
            return
        if self._false_stop(result.text):
            return
        self._pending_text = ""
        if self._turns.state is State.USER_SPEAKING and text:
            self._pending_text = text  # the caller went on talking: answer the whole thing later
            return
        if not text:
            self._turns.reply_done()
            await self._call.status("listening")
            self._arm_noinput()
            return
        if self._unfinished_wait and self._end_of_turn.unfinished(text):
            # a pause after "…for" or "um": the rest is likely coming; wait for it a little
            self._pending_text = text
            self._turns.reply_done()
            self._unfinished = self._loop.call_later(self._unfinished_wait, self._answer_pending)
            return
        await self._answer(text, result.confidence, result)

    async def _answer(self, text: str, confidence: float, result: Transcript | None) -> None:
        final = self._record_user(text, result)
        await self._send_transcript(final)
        self._user_turn(UserInput("speech", text=text, confidence=confidence))

    def _answer_pending(self) -> None:
        """The caller did not go on after an unfinished phrase: answer what they said."""
        self._cancel_unfinished()
        text, self._pending_text = self._pending_text, ""
        if text and not self._call.ended:
            self._turn_speech_end(self._loop.time())
            self._spawn(self._answer(text, 1.0, None), "answer")

    def _cancel_unfinished(self) -> None:
        if self._unfinished is not None:
            self._unfinished.cancel()
            self._unfinished = None

    async def stt_failed(self, exc: ProviderError, finalizing: bool) -> None:
        if finalizing:
            self._finals_pending = max(0, self._finals_pending - 1)
            if self._closing is not None:
                if not self._finals_pending:
                    self._closing.set()
                return
        await self._call.error("stt_failed", f"speech recognition failed: {exc}")
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
        self._arm_noinput()

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

    def _false_stop(self, heard: str) -> bool:
        """Whether the speech just transcribed was no turn: a backchannel or sound with no words.
        If it had stopped the bot, the bot says its cut-off sentence again; if it was held, the
        bot never stopped."""
        held, self._false_stops.held = self._false_stops.held, False
        resume = self._false_stops.take_resume(self._loop.time())
        if resume is not None and self._false_stops.ignorable(heard):
            self.speaker.say(resume, cache_key=None)
            return True
        if held and not self._false_stops.ignorable(heard):
            self._barge_in()  # real words, said briefly over the bot: they interrupt now
        return held and self._false_stops.ignorable(heard)

    def _barge_in(self, answer: bool = False, by_speech: bool = False) -> None:
        replying = self.speaker.replying
        if not self._turns.may_interrupt(replying):
            if answer:
                self.answer()
            return
        if self._turns.answer_was_pending(replying):
            # the caller resumed before we answered: keep what they said for the next turn
            if self.history and self.history[-1]["role"] == "user":
                self._pending_text = self.history.pop()["text"]
        cut = self._interrupt_reply()
        self._false_stops.stopped(self.speaker.unsaid if by_speech else None, self._loop.time())
        extra = {} if cut is None else {"said": cut[0], "heard": cut[1]}
        self._spawn(self._call.status("interrupted", **extra), "status")

    # ------------------------------------------------------------------------------ no-input

    def _arm_noinput(self) -> None:
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
            self._turn_speech_end(self._loop.time())
            self._user_turn(UserInput("noinput"))
