"""Whether what the caller said over the bot was only a backchannel ("mm-hm", "yeah", "okay").

A listener's "mm-hm" says "go on", not "stop": the call keeps talking and does not make it a turn.
Decided on the recogniser's text, not on the audio, because a short "no" and a short "yeah" look
the same to a VAD. Sans-I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_WORDS = 4  # a longer run of "yes okay right sure yeah" is a caller saying something

_WORD = re.compile(r"[a-z']+")


def words(text: str) -> list[str]:
    """Lower-case words; hyphens split ("mm-hm" → mm, hm), so spellings compare alike."""
    return _WORD.findall(text.lower().replace("-", " "))


class Backchannels:
    def __init__(self, phrases: Iterable[str]) -> None:
        self._phrases = sorted(
            {tuple(words(p)) for p in phrases if words(p)}, key=len, reverse=True
        )

    def only_backchannel(self, text: str) -> bool:
        """True when `text` is made only of backchannel phrases, at most `MAX_WORDS` words (an
        empty text is not a backchannel: that is noise)."""
        ws = words(text)
        if not ws or len(ws) > MAX_WORDS:
            return False
        i = 0
        while i < len(ws):
            match = next((p for p in self._phrases if tuple(ws[i : i + len(p)]) == p), None)
            if match is None:
                return False
            i += len(match)
        return True


class FalseStops:
    """What a call needs to undo a false stop: whether the caller's last utterance over the bot
    was held (`HELD_UTTERANCE`), and what a barge-in by speech cut off, to say again if that
    speech turns out to hold no words or only a backchannel."""

    def __init__(self, phrases: Iterable[str], resume_timeout_ms: int) -> None:
        self.backchannels = Backchannels(phrases)
        self._timeout = resume_timeout_ms / 1000
        self.held = False
        self._cut: tuple[str, float] | None = None

    def ignorable(self, text: str) -> bool:
        """Not a turn: no words at all, or only a backchannel."""
        return not words(text) or self.backchannels.only_backchannel(text)

    def stopped(self, unsaid: str | None, now: float) -> None:
        """Speech cut the bot off; `unsaid` is its cut-off sentence and the rest of the reply."""
        self._cut = (unsaid, now) if unsaid and self._timeout > 0 else None

    def take_resume(self, now: float) -> str | None:
        """The speech to say again, if a stop is pending and recent enough (once)."""
        cut, self._cut = self._cut, None
        if cut is not None and now - cut[1] <= self._timeout:
            return cut[0]
        return None
