"""Built-in slot types: each turns what the caller said or keyed into a value, or None (no match).

A parser receives the transcript, the DTMF digits (one of the two is empty), the slot declaration
(for enum values, digit rules) and "now" in the bot's timezone (for dates). Values are plain
JSON types so snapshots, templates and webhooks can carry them unchanged: dates are ISO strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any

from rapidfuzz import fuzz

from .spoken import find_digits, find_number, numerals, tokens
from .when import datetime_parts, next_occurrence, parse_date, parse_datetime, parse_time

if TYPE_CHECKING:
    from .model import SlotDecl

Parser = Callable[[str, str, "SlotDecl", datetime], Any]

_YES = {
    "yes", "yeah", "yep", "yup", "ya", "yea", "sure", "correct", "right", "ok", "okay",
    "absolutely", "definitely", "affirmative", "certainly", "exactly", "indeed", "perfect",
}  # fmt: skip
_NO = {
    "no", "nope", "nah", "not", "wrong", "incorrect", "negative", "don't", "dont", "isn't",
    "wasn't", "never",
}  # fmt: skip
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


_TRAILING = " \t\n.,;:!?\u2026"  # what Whisper ends a sentence with: "Ada." or "Ada..."


def parse_text(text: str, digits: str, decl: SlotDecl, now: datetime) -> Any:
    # The value is read back ("under the name {{ name }}") and stored: a transcript's closing
    # punctuation is the STT's, not the caller's words.
    value = (text or digits).strip().rstrip(_TRAILING)
    return value or None


def parse_number(text: str, digits: str, decl: SlotDecl, now: datetime) -> Any:
    if digits:
        return int(digits) if digits.isdigit() else None
    return find_number(text)


def parse_integer(text: str, digits: str, decl: SlotDecl, now: datetime) -> Any:
    value = parse_number(text, digits, decl, now)
    if value is None or (isinstance(value, float) and not value.is_integer()):
        return None
    return int(value)


def parse_yesno(text: str, digits: str, decl: SlotDecl, now: datetime) -> Any:
    if digits:
        return {"1": True, "2": False}.get(digits)
    toks = tokens(text)
    yes = [n for n, t in enumerate(toks) if t in _YES]
    no = [n for n, t in enumerate(toks) if t in _NO]
    if yes and not no:
        return True
    if no and not yes:
        return False
    if yes and no and any(n + 1 in yes for n in no):  # "not right", "don't agree"
        return False
    return None


def parse_date_slot(text: str, digits: str, decl: SlotDecl, now: datetime) -> Any:
    d = parse_date(text, now)
    return d.isoformat() if d else None


def parse_time_slot(text: str, digits: str, decl: SlotDecl, now: datetime) -> Any:
    if digits and len(digits) == 4:  # keyed as HHMM
        text = f"{digits[:2]}:{digits[2:]}"
    t = parse_time(text)
    return t.strftime("%H:%M") if t else None


def parse_datetime_slot(text: str, digits: str, decl: SlotDecl, now: datetime) -> Any:
    dt = parse_datetime(text, now)
    return dt.isoformat() if dt else None


def parse_phone(text: str, digits: str, decl: SlotDecl, now: datetime) -> Any:
    raw = digits or find_digits(text)
    plus = not digits and (text.strip().startswith("+") or "plus" in tokens(text))
    if not 7 <= len(raw) <= 15:
        return None
    return ("+" if plus else "") + raw


def parse_email(text: str, digits: str, decl: SlotDecl, now: datetime) -> Any:
    low = f" {text.lower().strip()} "
    for spoken, char in (
        (" at ", "@"),
        (" dot ", "."),
        (" underscore ", "_"),
        (" dash ", "-"),
        (" hyphen ", "-"),
        (" plus ", "+"),
    ):
        low = low.replace(spoken, f" {char} ")
    words = low.split()
    for word in words:  # "my email is john@example.com" → the part with @
        if "@" in word and word != "@":
            candidate = word.strip(".,;")
            return candidate if _EMAIL.match(candidate) else None
    if "@" in words:
        at = words.index("@")
        start = at - 1
        while start > 0 and words[start - 1] in (".", "_", "-", "+"):
            start -= 2
        candidate = "".join(words[max(start, 0) :]).strip(".,;")
        return candidate if _EMAIL.match(candidate) else None
    return None


def parse_digits(text: str, digits: str, decl: SlotDecl, now: datetime) -> Any:
    value = digits or find_digits(text)
    if decl.terminator:
        value = value.split(decl.terminator, 1)[0]
    value = re.sub(r"[^0-9*#]", "", value) if digits else value
    return value or None


_ENUM_FILLERS = frozenset(("of", "the", "a", "an"))


def parse_enum(text: str, digits: str, decl: SlotDecl, now: datetime) -> Any:
    if digits:  # a menu: key 1 selects the first value
        keys = list(decl.values)
        n = int(digits) if digits.isdigit() else 0
        return keys[n - 1] if 1 <= n <= len(keys) else None
    words = numerals(tokens(text))
    # Whole phrases first; then without the small words people drop or recognisers mishear
    # ("10 clubs", "ten of the clubs" for "ten of clubs").
    for drop in (frozenset(), _ENUM_FILLERS):
        said = " " + " ".join(w for w in words if w not in drop) + " "
        best: tuple[int, str] | None = None
        for value, synonyms in decl.values.items():
            for phrase in (value, *synonyms):
                norm = " ".join(w for w in numerals(tokens(phrase)) if w not in drop)
                if norm and f" {norm} " in said and (best is None or len(norm) > best[0]):
                    best = (len(norm), value)
        if best is not None:
            return best[1]
    scored = [
        (fuzz.ratio(word, " ".join(numerals(tokens(phrase)))), value)
        for value, synonyms in decl.values.items()
        for phrase in (value, *synonyms)
        for word in words
        if len(word) > 3
    ]
    top = max(scored, default=(0.0, None))
    return top[1] if top[0] >= 85 else None


@dataclass(frozen=True)
class Partial:
    """Part of a value: the caller named a day but no time yet. The runner keeps `parts` for the
    slot, so the next answer only has to add the rest ("saturday" … "at 1 pm")."""

    parts: dict[str, str]  # what was said so far, as ISO strings: {"date": "2026-11-28"}
    missing: str  # the part to ask for next: "time"
    given: str  # the known part, for the follow-up question: "What time on {{ value }}?"


Splitter = Callable[[str, str, "SlotDecl", datetime], dict[str, str]]
Joiner = Callable[[dict[str, str], datetime], Any]  # a value, a Partial, or None


def split_datetime(text: str, digits: str, decl: SlotDecl, now: datetime) -> dict[str, str]:
    d, t = datetime_parts(text, now) if text else (None, None)
    parts = {}
    if d is not None:
        parts["date"] = d.isoformat()
    if t is not None:
        parts["time"] = t.strftime("%H:%M")
    return parts


def join_datetime(parts: dict[str, str], now: datetime) -> Any:
    if "time" not in parts:
        return Partial(parts, "time", parts["date"]) if "date" in parts else None
    t = time.fromisoformat(parts["time"])
    if "date" not in parts:
        return next_occurrence(t, now).isoformat()
    return datetime.combine(date.fromisoformat(parts["date"]), t, tzinfo=now.tzinfo).isoformat()


# Types whose value is said in parts, possibly over several turns: (split, join). An answer's
# parts replace the kept ones, so correcting only the time keeps the day.
COMPOSITE: dict[str, tuple[Splitter, Joiner]] = {"datetime": (split_datetime, join_datetime)}


BUILTIN: dict[str, Parser] = {
    "text": parse_text,
    "number": parse_number,
    "integer": parse_integer,
    "yesno": parse_yesno,
    "date": parse_date_slot,
    "time": parse_time_slot,
    "datetime": parse_datetime_slot,
    "phone": parse_phone,
    "email": parse_email,
    "digits": parse_digits,
    "enum": parse_enum,
}


def violation(decl: SlotDecl, value: Any) -> str | None:
    """Why a parsed value breaks the declaration's rules (min, max, lengths, pattern), or None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if decl.min is not None and value < decl.min:
            return f"below the minimum {decl.min:g}"
        if decl.max is not None and value > decl.max:
            return f"above the maximum {decl.max:g}"
    if isinstance(value, str):
        if decl.length is not None and len(value) != decl.length:
            return f"not {decl.length} long"
        if decl.min_length is not None and len(value) < decl.min_length:
            return f"shorter than {decl.min_length}"
        if decl.max_length is not None and len(value) > decl.max_length:
            return f"longer than {decl.max_length}"
        if decl.pattern is not None and not decl.pattern.fullmatch(value):
            return "not matching the pattern"
    return None
