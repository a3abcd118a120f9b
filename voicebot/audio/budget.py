"""The decoded-audio budget: at most `audio_realtime_factor` × real time of audio, whatever the
encoding, so a compressed message cannot make the CPU decode (and VAD, and transcribe) more than
the client could have spoken. Bytes are not enough for that: two bytes of Opus may be 120 ms of
audio. The byte and message budgets per connection are in `voicebot.server.limits`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .types import AudioLimitError

if TYPE_CHECKING:
    from ..config import LimitsConfig


class TokenBucket:
    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self._at = time.monotonic()

    def take(self, n: float, now: float | None = None, floor: float = 0.0) -> bool:
        """Take `n` if at least `floor` is left after it."""
        if now is None:
            now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.rate)
        self._at = now
        if self.tokens - n < floor:
            return False
        self.tokens -= n
        return True


class AudioBudget:
    """One call's decoded audio: at most `audio_realtime_factor` × real time, every encoding.

    One bucket, two depths. Streamed audio (decoded, VAD'd on the event loop) may run at most
    `audio_burst_s` ahead; a whole utterance (decoded off the loop, no VAD) may take up to
    `longest_message_s` at once, as the byte budget holds one maximum-size message. Each message
    also has a cap of its own, so one message is bounded work whatever it expands to.
    """

    def __init__(self, limits: LimitsConfig, longest_message_s: float) -> None:
        self.factor = limits.audio_realtime_factor
        self.bucket = TokenBucket(self.factor, max(limits.audio_burst_s, longest_message_s))
        self._streamed_floor = self.bucket.capacity - limits.audio_burst_s

    def meter(self, cap_s: float, streamed: bool = True) -> MessageMeter:
        """A meter for one message of at most `cap_s` seconds of audio."""
        return MessageMeter(self, cap_s, self._streamed_floor if streamed else 0.0)


class MessageMeter:
    """Charges one message's decoded audio to its call's budget. A call's streamed messages
    (50 a second on a phone line) share one, `fresh()` before each, instead of a new one each."""

    __slots__ = ("_budget", "_cap_s", "_floor", "_used")

    def __init__(self, budget: AudioBudget, cap_s: float, floor: float) -> None:
        self._budget = budget
        self._cap_s = cap_s
        self._floor = floor
        self._used = 0.0

    def fresh(self) -> MessageMeter:
        """This meter, for the next message."""
        self._used = 0.0
        return self

    def __call__(self, seconds: float) -> None:
        self._used += seconds
        if self._used > self._cap_s + 1e-9:
            raise AudioLimitError(
                "audio_too_large",
                f"one message may carry at most {self._cap_s:g} s of audio; send smaller chunks",
                "audio message too large",
            )
        if not self._budget.bucket.take(seconds, floor=self._floor):
            raise AudioLimitError(
                "rate_limited",
                f"decoded audio arrives faster than {self._budget.factor:g}× real time; "
                "stream audio as it is captured",
                "rate limit exceeded",
            )
