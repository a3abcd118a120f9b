"""What becomes of the caller's finished utterances: each final transcript is a false stop (a
backchannel, no words), the start of a phrase the caller has not finished, or a turn to answer;
when the call ends, the last ones still reach the record.

Split from the conversation because this is where a turn *ends*, with its own state (the
transcripts still awaited, the unfinished phrase and its timer, the false-stop bookkeeping), while
the conversation decides what a turn starts and what the bot does with it. The rules themselves
are sans-I/O (`backchannel.FalseStops`, `endpointing.EndOfTurn`); this holds their timers and
wiring.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from ..dialogue import UserInput
from ..protocol import events
from ..providers import ProviderError, Transcript
from .backchannel import FalseStops
from .endpointing import EndOfTurn, TurnPieces
from .turns import State, TurnTaker

if TYPE_CHECKING:
    from .conversation import CallControl
    from .listener import Listener
    from .services import CallIO, CallServices
    from .speaker import Speaker
    from .timing import TurnTimes

log = logging.getLogger("voicebot.call")


class TranscriptionHost(Protocol):
    """What transcription asks of its conversation."""

    #: the timings of the turn being answered
    turn: TurnTimes

    def remember(self, role: str, text: str) -> None: ...
    def user_turn(self, event: UserInput) -> None:
        """The caller's turn is complete: answer it."""

    def speech_ended(self, at: float) -> None:
        """A new turn's timings start: the caller stopped speaking at `at`."""

    def arm_noinput(self) -> None: ...
    def barge_in(self) -> None:
        """Words said briefly over the bot interrupt it after all."""


class Transcription:
    def __init__(
        self,
        call: CallControl,
        services: CallServices,
        io: CallIO,
        turns: TurnTaker,
        listener: Listener,
        speaker: Speaker,
        host: TranscriptionHost,
    ) -> None:
        cfg = services.config.pipeline
        self._call = call
        self._services = services
        self._io = io
        self._turns = turns
        self._listener = listener
        self._speaker = speaker
        self._host = host
        self._loop = asyncio.get_running_loop()
        self._false_stops = FalseStops(cfg.barge_in.backchannels, cfg.barge_in.resume_timeout_ms)
        eot = cfg.end_of_turn
        self._pieces = TurnPieces(
            EndOfTurn(eot.unfinished_words, eot.unfinished_openers),
            eot.unfinished_wait_ms,
            eot.unsure_wait_ms,
        )
        self._unfinished: asyncio.TimerHandle | None = None  # waiting for the rest of a phrase
        self._finals_pending = 0  # utterances handed to STT whose transcript has not come
        self._closing: asyncio.Event | None = None  # set once the call's last words are in

    @property
    def pending_text(self) -> str:
        """What the caller said that is not answered yet (an unfinished phrase, a kept turn)."""
        return self._pieces.text

    @pending_text.setter
    def pending_text(self, text: str) -> None:
        self._pieces.text = text

    def close(self) -> None:
        self.cancel_unfinished()

    def finalize(self) -> None:
        """The utterance is over: its final transcript is awaited."""
        self._finals_pending += 1
        self._listener.finalize()

    def hold(self) -> None:
        """Short speech over the bot, which talks on: its words decide what it was."""
        self._false_stops.held = True
        self._listener.end_utterance()
        self.finalize()

    def stopped(self, unsaid: str | None) -> None:
        """The bot was cut off; `unsaid` is what it says again if that was a false stop."""
        self._false_stops.stopped(unsaid, self._loop.time())

    async def last_words(self, timeout: float) -> None:
        """The call is ending (hang-up, `stop`): what the caller said last, an utterance still
        open or one still being transcribed, reaches the transcript record (the `transcript`
        hook, the history) within `timeout`. No reply: nobody is left to hear it."""
        self._closing = asyncio.Event()
        if self._turns.in_utterance:
            self._turns.end_turn()
            self._listener.end_utterance()
            self.finalize()
        if self._finals_pending:
            try:
                await asyncio.wait_for(self._closing.wait(), timeout)
            except TimeoutError:
                log.info("call %s: no transcript of the last words in time", self._call.id)
        if self.pending_text:
            self._record_user(self.pending_text, None)
            self.pending_text = ""

    def _record_user(self, text: str, result: Transcript | None) -> Transcript:
        final = Transcript(
            text, True, result.confidence if result else 1.0, result.language if result else None
        )
        self._services.hook.transcript(call=self._call, transcript=final)
        self._host.remember("user", text)
        return final

    async def send_transcript(self, t: Transcript) -> None:
        await self._io.send_event(events.Transcript(t.text, t.final, t.confidence))

    async def transcribed(self, result: Transcript, joined: bool = False) -> None:
        """`joined`: the audio decoded began with the pieces kept by `carry_last()`, so its text
        replaces the pending one instead of being appended to it."""
        self._host.turn.stt_final = self._loop.time()
        self._finals_pending = max(0, self._finals_pending - 1)
        heard = result.text.strip()
        if joined and heard:
            self.pending_text = ""  # the audio decoded held the pending pieces: heard replaces them
        text = " ".join(p for p in (self.pending_text, heard) if p)
        if self._closing is not None:
            self.pending_text = ""
            self._listener.drop_carry()
            if text:
                self._record_user(text, result)
            if not self._finals_pending:
                self._closing.set()
            return
        if self._false_stop(result.text):
            return
        if self._turns.state is State.USER_SPEAKING and text:
            self._pieces.keep(heard)  # the caller went on: answer the whole thing later
            self._listener.carry_last()
            return
        self._listener.drop_carry()
        if not text:
            self._turns.reply_done()
            await self._call.status("listening")
            self._host.arm_noinput()
            return
        turn = self._pieces.transcribed(self._loop.time() * 1000, heard)
        if turn is None:
            # a pause after "…for" or "um": the rest is likely coming; wait for it a little
            self._listener.carry_last()
            self._turns.reply_done()
            self._wait_for_the_rest()
            return
        await self._answer(turn, result.confidence, result)

    def _wait_for_the_rest(self) -> None:
        self._cancel_timer()
        deadline = self._pieces.deadline_ms
        if deadline is not None:
            self._unfinished = self._loop.call_at(deadline / 1000, self._waited)

    def _waited(self) -> None:
        self._unfinished = None
        turn = self._pieces.expire(self._loop.time() * 1000)
        if turn:
            self._listener.drop_carry()
            self._answer_later(turn)

    async def _answer(self, text: str, confidence: float, result: Transcript | None) -> None:
        final = self._record_user(text, result)
        await self.send_transcript(final)
        self._host.user_turn(UserInput("speech", text=text, confidence=confidence))

    def answer_pending(self) -> None:
        """The caller did not go on after an unfinished phrase: answer what they said."""
        self.cancel_unfinished()
        self._listener.drop_carry()
        text = self._pieces.take()
        if text:
            self._answer_later(text)

    def _answer_later(self, text: str) -> None:
        if not self._call.ended:
            self._host.speech_ended(self._loop.time())
            self._call.spawn(self._answer(text, 1.0, None), "answer")

    def cancel_unfinished(self) -> None:
        """The caller speaks again (or the call ends): no answer at the deadline."""
        self._pieces.resumed()
        self._cancel_timer()

    def _cancel_timer(self) -> None:
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
            self._speaker.apologise()

    def _false_stop(self, heard: str) -> bool:
        """Whether the speech just transcribed was no turn: a backchannel or sound with no words.
        If it had stopped the bot, the bot says its cut-off sentence again; if it was held, the
        bot never stopped."""
        held, self._false_stops.held = self._false_stops.held, False
        resume = self._false_stops.take_resume(self._loop.time())
        if resume is not None and self._false_stops.ignorable(heard):
            self._speaker.say(resume, cache_key=None)
            return True
        if held and not self._false_stops.ignorable(heard):
            self._host.barge_in()  # real words, said briefly over the bot: they interrupt now
        return held and self._false_stops.ignorable(heard)
