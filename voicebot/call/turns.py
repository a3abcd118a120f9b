"""Turn-taking: when the caller starts, pauses and stops talking, and when that interrupts the bot.

A plain object fed one VAD decision per frame with a timestamp; it returns the actions the call
must take. No I/O and no clock of its own, so endpointing and barge-in timing are unit-tested with
a fake clock, frame by frame.

Speech is tentative until it has lasted `min_speech_ms` (a click is not a turn) or, while the bot is
talking, `barge_in_ms` (a cough or an "mm-hm" does not interrupt). With `barge_in_needs_words`, an
interruption also waits until a fast recogniser has heard a word in it (`heard_words()`), so a door
slam or a TV that fools the VAD does not cut the bot off. The utterance is fed to STT from its
first frame regardless, so the words of a real interruption are not lost.

With `backchannel_ms`, speech over the bot shorter than that does not cut it off at once: when it
ends, the call gets `HELD_UTTERANCE` and decides on its transcript (a backchannel or no words:
the bot never stopped; words: it barges in then and answers them). Speech that goes on past
`backchannel_ms` interrupts as before.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.Enum):
    LISTENING = "listening"
    USER_SPEAKING = "user_speaking"
    PROCESSING = "processing"
    SPEAKING = "speaking"


class Action(enum.Enum):
    START_UTTERANCE = "start_utterance"  # begin feeding STT (with pre-roll)
    USER_STARTED = "user_started"  # speech confirmed (lasted min_speech_ms)
    SPECULATE = "speculate"  # silence began after real speech: STT may decode early
    END_UTTERANCE = "end_utterance"  # the turn is over: finalize STT and answer
    CANCEL_UTTERANCE = "cancel_utterance"  # it was noise: discard what STT got
    BARGE_IN = "barge_in"  # the caller talks over the bot: stop it now
    HELD_UTTERANCE = "held_utterance"  # short speech over the bot ended: transcribe, then decide


@dataclass
class TurnSettings:
    frame_ms: int = 20
    hangover_ms: int = 300
    min_speech_ms: int = 120
    max_utterance_ms: int = 30000
    barge_in: bool = True
    barge_in_ms: int = 200
    barge_in_needs_words: bool = False
    backchannel_ms: int = 0  # 0: speech over the bot interrupts after barge_in_ms, as always


class TurnTaker:
    def __init__(self, settings: TurnSettings) -> None:
        self.s = settings
        self.state = State.LISTENING
        self.bot_speaking = False
        self.barge_in_allowed = True
        self._in_utterance = False
        self._confirmed = False
        self._speech_ms = 0
        self._silence_ms = 0
        self._started_at = 0.0
        self._speculated = False
        self._words = False
        self._held = False  # this utterance would have interrupted, but may be a backchannel
        self.last_speech_at = 0.0  # timestamp of the last speech frame: "end of user speech"

    # ------------------------------------------------------------------------------- inputs

    def on_frame(self, now_ms: float, speech: bool) -> list[Action]:
        if speech:
            return self._on_speech(now_ms)
        return self._on_silence(now_ms)

    def end_turn(self) -> list[Action]:
        """Push-to-talk: the client says the user finished speaking."""
        if not self._in_utterance:
            return []
        self._reset_utterance()
        self.state = State.PROCESSING
        return [Action.END_UTTERANCE]

    def heard_words(self) -> list[Action]:
        """A recogniser heard words in the current utterance: an interruption waiting for them
        (`barge_in_needs_words`) may now go ahead."""
        if not self._in_utterance:
            return []
        self._words = True
        if self._confirmed or not self._interrupting():
            return []
        return self._try_barge_in()

    def set_bot_speaking(self, speaking: bool, barge_in_allowed: bool = True) -> None:
        self.bot_speaking = speaking
        self.barge_in_allowed = barge_in_allowed
        if speaking:
            if self.state in (State.LISTENING, State.PROCESSING):
                self.state = State.SPEAKING
        elif self.state == State.SPEAKING:
            self.state = State.LISTENING

    def next_piece(self, barge_in_allowed: bool) -> None:
        """The bot's reply went on to its next piece while it kept talking: that piece may not
        be interruptible (a legal disclaimer) even if the last one was."""
        self.barge_in_allowed = barge_in_allowed

    # ------------------------------------------------------------------ barge-in rules

    def may_interrupt(self, replying: bool) -> bool:
        """Whether the bot may be cut off now (by speech, a key or the client's `interrupt`):
        it is speaking a piece that allows it, or it is still preparing a reply (`replying`)."""
        if self.bot_speaking:
            return self.barge_in_allowed
        return replying

    def key_interrupts(self) -> bool:
        """A key press cuts off interruptible speech; while the bot is only preparing its
        reply, the key is just input."""
        return self.bot_speaking and self.barge_in_allowed

    def answer_was_pending(self, replying: bool) -> bool:
        """An interruption came before the bot said anything of its answer: the caller's last
        words were not yet answered and belong to their next turn."""
        return self.state is State.PROCESSING or (replying and not self.bot_speaking)

    def set_processing(self) -> None:
        self.state = State.PROCESSING

    def reply_done(self) -> None:
        """The dialogue produced nothing more and playback is over."""
        if self.state in (State.PROCESSING, State.SPEAKING) and not self.bot_speaking:
            self.state = State.USER_SPEAKING if self._confirmed else State.LISTENING

    # ------------------------------------------------------------------------------ internals

    def _on_speech(self, now_ms: float) -> list[Action]:
        actions: list[Action] = []
        self.last_speech_at = now_ms
        self._silence_ms = 0
        self._speculated = False
        if not self._in_utterance:
            self._in_utterance = True
            self._confirmed = False
            self._speech_ms = 0
            self._started_at = now_ms
            actions.append(Action.START_UTTERANCE)
        self._speech_ms += self.s.frame_ms
        if not self._confirmed:
            if self._interrupting():
                actions += self._try_barge_in()
            elif self._speech_ms >= self.s.min_speech_ms:
                self._confirmed = True
                self.state = State.USER_SPEAKING
                actions.append(Action.USER_STARTED)
        if self._confirmed and now_ms - self._started_at >= self.s.max_utterance_ms:
            self._reset_utterance()
            self.state = State.PROCESSING
            actions.append(Action.END_UTTERANCE)
        return actions

    def _on_silence(self, now_ms: float) -> list[Action]:
        if not self._in_utterance:
            return []
        self._silence_ms += self.s.frame_ms
        if self._silence_ms < self.s.hangover_ms:
            if self._confirmed and not self._speculated:
                self._speculated = True
                return [Action.SPECULATE]
            return []
        confirmed, held = self._confirmed, self._held
        self._reset_utterance()
        if confirmed:
            self.state = State.PROCESSING
            return [Action.END_UTTERANCE]
        if held:
            return [Action.HELD_UTTERANCE]
        return [Action.CANCEL_UTTERANCE]

    def _interrupting(self) -> bool:
        return self.bot_speaking or self.state == State.PROCESSING

    def _try_barge_in(self) -> list[Action]:
        if (
            self.s.barge_in
            and self.barge_in_allowed
            and self._speech_ms >= max(self.s.barge_in_ms, self.s.frame_ms)
            and (self._words or not self.s.barge_in_needs_words)
        ):
            if self.bot_speaking and self._speech_ms < self.s.backchannel_ms:
                self._held = True  # an "mm-hm" is short: wait for its end or its length
                return []
            self._confirmed = True
            self.state = State.USER_SPEAKING
            return [Action.BARGE_IN, Action.USER_STARTED]
        return []

    def _reset_utterance(self) -> None:
        self._in_utterance = False
        self._words = False
        self._held = False
        self._confirmed = False
        self._speech_ms = 0
        self._silence_ms = 0
        self._speculated = False

    @property
    def in_utterance(self) -> bool:
        return self._in_utterance
