"""Whether the caller's words so far sound finished: the semantic half of the end of a turn.

Silence alone cuts callers off at a thinking pause ("I'd like to book a table for… um… Friday").
A text that ends on a word nobody ends a sentence with (a conjunction, a preposition, an article,
a filler, "I'd like to") or trails off ("…", ",") is unfinished: the call waits a little longer
for the rest before it answers, and joins the pieces into one turn. A small rule set, not a
model: CPU-free, predictable, configurable (`pipeline.end_of_turn`). Sans-I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"[a-z']+")
_TRAILING_OFF = ("...", "…", ",", "-", "—")


class EndOfTurn:
    def __init__(self, unfinished_words: Iterable[str]) -> None:
        self._phrases = {tuple(_WORD.findall(p.lower())) for p in unfinished_words}
        self._phrases.discard(())
        self._longest = max((len(p) for p in self._phrases), default=0)

    def unfinished(self, text: str) -> bool:
        """True when `text` stops mid-phrase: it ends on one of the unfinished words or phrases,
        or trails off. A text ending in `.`, `?` or `!` after such a word is still unfinished
        (recognisers add a full stop to whatever they heard)."""
        stripped = text.strip()
        if not stripped:
            return False
        if stripped.endswith(_TRAILING_OFF):
            return True
        words = _WORD.findall(stripped.lower().replace("’", "'"))
        return any(
            tuple(words[-n:]) in self._phrases for n in range(1, min(self._longest, len(words)) + 1)
        )
