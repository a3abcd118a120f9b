"""Slots the caller filled in the sentence that chose the flow.

"I want to book a table for two on Friday at 8 pm" picks the booking intent and also answers the
booking's first two questions; asking them again is the first thing a caller notices. The runner
offers that sentence to the slots of the first `ask` node the intent leads to. Parsers are black
boxes here, so the words each one used are found by blanking one word at a time: a word whose
removal changes the answer was used, and is hidden from the slots offered after it. Date and
time words are always hidden from the other types, so the 8 of "8 pm" is never a party of eight
and "two" never a time. Free text (and other types that would take any words) is not offered:
the whole sentence is not a name.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .model import SlotDecl
from .slottypes import BUILTIN
from .spoken import token_spans
from .when import datetime_parts

# Offered types, in the order they claim words: dates and times first (numbers hide in them),
# then the types that recognise specific words, then bare numbers, then yes/no.
ORDER = {
    "datetime": 0, "date": 0, "time": 0, "email": 1, "enum": 2, "number": 3, "integer": 3,
    "yesno": 4,
}  # fmt: skip
_DATETIME = frozenset({"datetime", "date", "time"})

Reader = Callable[[str], Any]


def blank(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def used_words(text: str, read: Reader) -> list[tuple[int, int]]:
    """The spans of the words `read` relies on: blanking any one of them changes its answer."""
    answer = read(text)
    if answer in (None, {}, (None, None)):
        return []
    return [span for span in token_spans(text) if read(blank(text, [span])) != answer]


def offer(
    text: str, decls: list[SlotDecl], take: Callable[[SlotDecl, str], bool], now: datetime
) -> None:
    """Offer `text` to each slot of `decls` whose type can be read out of a sentence; `take`
    parses and fills (returning whether the slot took the words). Used words are hidden from
    the slots after it."""
    wanted = sorted((d for d in decls if d.type in ORDER), key=lambda d: ORDER[d.type])
    if not wanted:
        return
    hidden = used_words(text, lambda t: datetime_parts(t, now))
    for decl in wanted:
        words = text if decl.type in _DATETIME else blank(text, hidden)
        if take(decl, words) and decl.type not in _DATETIME:
            parse = BUILTIN[decl.type]
            hidden += used_words(words, lambda t, p=parse, d=decl: p(t, "", d, now))
