"""Whether the caller's words so far sound finished, and the pieces of one turn joined until they
do: the semantic half of the end of a turn.

Silence alone cuts callers off at a thinking pause ("I'd like to book a table for… um… Friday").
A text is *unfinished* when it ends on a word nobody ends a sentence with (a conjunction, a
preposition, an article, a filler, "I'd like to") or trails off ("…", ","): the call waits up to
`unfinished_wait_ms` for the rest. It is *unsure* when it could go either way: a lone dependent
clause ("unless we go early", no main clause yet) or a list of numbered items with no "and" before
its last one ("eight of spades, four of clubs", often said whole just so): the call waits the
shorter `unsure_wait_ms`. What the caller adds in the wait joins the same turn. A small rule set,
not a model: CPU-free, predictable, configurable (`pipeline.end_of_turn`). Sans-I/O: time is
passed in, so the wait is unit-tested with a fake clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"[a-z0-9']+")
_TRAILING_OFF = ("...", "…", ",", "-", "—")
_NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty "
    "ninety hundred thousand first second third".split()
)
_LIST_CLOSERS = frozenset({"and", "or", "nor", "plus"})
#: a timer may fire a hair before its deadline (clock resolution, float rounding)
_TIMER_SLACK_MS = 1.0


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def _has_number(words: list[str]) -> bool:
    return any(w.isdigit() or w in _NUMBER_WORDS for w in words)


class EndOfTurn:
    def __init__(self, unfinished_words: Iterable[str], openers: Iterable[str] = ()) -> None:
        self._phrases = {tuple(_words(p)) for p in unfinished_words}
        self._phrases.discard(())
        self._longest = max((len(p) for p in self._phrases), default=0)
        self._openers = {w for p in openers for w in _words(p)[:1]}

    def unfinished(self, text: str) -> bool:
        """True when `text` stops mid-phrase. A text ending in `.`, `?` or `!` after such a word
        is still unfinished (recognisers add a full stop to whatever they heard)."""
        stripped = text.strip()
        if not stripped:
            return False
        if stripped.endswith(_TRAILING_OFF):
            return True
        words = _words(stripped)
        return any(
            tuple(words[-n:]) in self._phrases for n in range(1, min(self._longest, len(words)) + 1)
        )

    def unsure(self, text: str) -> bool:
        """True when `text` may well go on, but is often said whole too."""
        stripped = text.strip()
        return self._lone_dependent_clause(stripped, _words(stripped)) or self._open_list(stripped)

    def _lone_dependent_clause(self, text: str, words: list[str]) -> bool:
        """ "Unless to be rather cold hearted…": a clause that announces a main clause which has
        not come (no comma after it). Short ones ("If possible.") are left alone: they are
        usually whole replies."""
        return (
            len(words) >= 4
            and words[0] in self._openers
            and "," not in text
            and not text.rstrip().endswith("?")
        )

    @staticmethod
    def _open_list(text: str) -> bool:
        """ "Eight of spades, four of clubs.": items with numbers, comma-separated, and no "and"
        or "or" before the last one, which a finished list would have."""
        parts = [_words(p) for p in text.split(",")]
        parts = [p for p in parts if p]
        return (
            len(parts) >= 2
            and all(_has_number(p) for p in parts[-2:])
            and not _LIST_CLOSERS.intersection(parts[-1])
        )


class TurnPieces:
    """The final transcripts of one spoken turn, joined until the caller has finished.

    A piece that ends mid-phrase is held for up to `wait_ms` (`unsure_wait_ms` if it only may go
    on) until `deadline_ms`; if the caller speaks again (`resumed`) the deadline is off and the
    next piece joins it; when the deadline passes with nothing more (`expire`) the turn is what
    there is. `wait_ms=0` answers every piece at once. Times are milliseconds on any clock the
    caller likes (a fake one in tests).
    """

    def __init__(self, end_of_turn: EndOfTurn, wait_ms: int, unsure_wait_ms: int = 0) -> None:
        self.end_of_turn = end_of_turn
        self.wait_ms = wait_ms
        self.unsure_wait_ms = min(unsure_wait_ms, wait_ms)
        self.text = ""  # what the caller said that is not answered yet
        self.deadline_ms: float | None = None  # when to stop waiting for the rest, if waiting

    def transcribed(self, now_ms: float, piece: str) -> str | None:
        """A piece's final transcript, the caller silent: the whole turn to answer now, or None
        (wait; call `expire` at `deadline_ms`)."""
        self.keep(piece)
        wait = self._wait_for(piece)
        if wait:
            self.deadline_ms = now_ms + wait
            return None
        return self.take()

    def _wait_for(self, piece: str) -> int:
        """How long to wait for more after `piece`. Whether it may go on is asked of the piece
        alone: after "unless we go early" the caller went on, and what followed is likely the
        main clause that was missing."""
        if not self.wait_ms:
            return 0
        if self.end_of_turn.unfinished(self.text):
            return self.wait_ms
        return self.unsure_wait_ms if self.end_of_turn.unsure(piece) else 0

    def keep(self, piece: str) -> None:
        """A piece joined without a decision: the caller is already talking again."""
        self.text = " ".join(p for p in (self.text, piece.strip()) if p)
        self.deadline_ms = None

    def resumed(self) -> None:
        """The caller speaks again: no deadline while they do; what they said is kept."""
        self.deadline_ms = None

    def expire(self, now_ms: float) -> str | None:
        """The wait is over if `deadline_ms` has come: the turn to answer, else None."""
        if self.deadline_ms is None or now_ms < self.deadline_ms - _TIMER_SLACK_MS:
            return None
        return self.take()

    def take(self) -> str:
        """Everything pending, which is forgotten here."""
        text, self.text, self.deadline_ms = self.text, "", None
        return text
