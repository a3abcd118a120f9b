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

# Finding the used words parses the sentence once per word (~10 ms for 30 words and four
# slots): it runs in a thread, and a longer text (a typed paragraph) is not offered at all.
MAX_WORDS = 30

Reader = Callable[[str], Any]


def blank(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def used_words(text: str, read: Reader) -> tuple[Any, list[tuple[int, int]]]:
    """What `read` makes of `text` (None, {} or (None, None): nothing), and the spans of the
    words it relies on: blanking any one of them changes its answer."""
    answer = read(text)
    if answer in (None, {}, (None, None)):
        return None, []
    return answer, [span for span in token_spans(text) if read(blank(text, [span])) != answer]


def plan(text: str, decls: list[SlotDecl], now: datetime) -> list[tuple[SlotDecl, str]]:
    """The slots of `decls` whose type reads something in `text`, each with the words it may
    parse (the text with the words claimed before it blanked out). Pure, so it can run in a
    thread; whether a value keeps the slot's rules is for the caller to decide."""
    wanted = sorted((d for d in decls if d.type in ORDER), key=lambda d: ORDER[d.type])
    if not wanted or len(token_spans(text)) > MAX_WORDS:
        return []
    said, hidden = used_words(text, lambda t: datetime_parts(t, now))
    out: list[tuple[SlotDecl, str]] = []
    for decl in wanted:
        if decl.type in _DATETIME:
            if said is not None:
                out.append((decl, text))
            continue
        words = blank(text, hidden)
        parse = BUILTIN[decl.type]
        answer, used = used_words(words, lambda t, p=parse, d=decl: p(t, "", d, now))
        if answer is not None:
            out.append((decl, words))
            hidden += used
    return out
