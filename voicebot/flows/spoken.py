"""Numbers and digit strings as people say them ("twenty two", "double five oh one").

Transcripts spell numbers either way depending on the STT engine, so both "22" and "twenty two"
must parse. Plain loops over a handful of tokens: a turn has a few words, not thousands.
"""

from __future__ import annotations

import re

UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}

_TOKEN = re.compile(r"\d+(?:[.,]\d+)*(?:st|nd|rd|th)?|[a-z]+(?:'[a-z]+)?")


_TOKEN_ANY_CASE = re.compile(_TOKEN.pattern, re.IGNORECASE)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower().replace("-", " "))


def token_spans(text: str) -> list[tuple[int, int]]:
    """Where each of `tokens(text)` sits in `text` (start, end), to blank words out in place."""
    return [m.span() for m in _TOKEN_ANY_CASE.finditer(text.replace("-", " "))]


def _numeric(token: str) -> float | int | None:
    token = re.sub(r"(st|nd|rd|th)$", "", token)
    if not token or not token[0].isdigit():
        return None
    if re.fullmatch(r"\d{1,3}(,\d{3})+", token):
        token = token.replace(",", "")
    token = token.replace(",", ".")
    try:
        value = float(token)
    except ValueError:
        return None
    return int(value) if value.is_integer() and "." not in token else value


def number_at(toks: list[str], start: int, *, ordinals: bool = False) -> tuple[float | int, int]:
    """Parse the number phrase starting at toks[start]; returns (value, tokens used) or (0, 0)."""
    first = toks[start]
    value = _numeric(first)
    if value is not None:
        return value, 1
    total = current = 0
    used = 0
    last = ""  # "unit", "teen", "tens", "scale"
    n = start
    while n < len(toks):
        word = toks[n]
        if (
            word in ("a", "an")
            and n + 1 < len(toks)
            and toks[n + 1] in ("hundred", "thousand", "dozen")
        ):
            current = current or 1
            n += 1
            continue
        if (
            word == "and"
            and used
            and n + 1 < len(toks)
            and (toks[n + 1] in UNITS or toks[n + 1] in TENS)
        ):
            n += 1
            continue
        ordinal = ORDINALS.get(word) if ordinals else None
        if word in UNITS or ordinal is not None:
            unit = UNITS.get(word, ordinal)
            if last in ("unit", "teen") or (last == "tens" and unit >= 10):
                break
            current += unit  # type: ignore[operator]
            last = "unit" if unit < 10 else "teen"  # type: ignore[operator]
        elif word in TENS:
            if last in ("unit", "teen", "tens"):
                break
            current += TENS[word]
            last = "tens"
        elif word in SCALES:
            scale = SCALES[word]
            if scale == 100:
                current = (current or 1) * 100
            else:
                total += (current or 1) * scale
                current = 0
            last = "scale"
        elif word == "dozen":
            current = (current or 1) * 12
            last = "scale"
        else:
            break
        n += 1
        used = n - start
        if ordinal is not None:
            break
    if not used:
        return 0, 0
    return total + current, used


def find_number(text: str) -> float | int | None:
    """The first number said in `text` ("a table for twenty two" → 22), else None."""
    toks = tokens(text)
    for n in range(len(toks)):
        if toks[n] in ("a", "an") and not (
            n + 1 < len(toks) and toks[n + 1] in SCALES | {"dozen": 0}
        ):
            continue
        value, used = number_at(toks, n)
        if used:
            if n > 0 and toks[n - 1] in ("minus", "negative"):
                value = -value
            return value
    return None


def numerals(toks: list[str]) -> list[str]:
    """Tokens with each number phrase as its digits ("ten of clubs" → 10 of clubs), so the words
    an STT engine spells out and the digits another one writes compare equal."""
    out: list[str] = []
    n = 0
    while n < len(toks):
        value, used = (0, 0) if toks[n] in ("a", "an") else number_at(toks, n)
        out.append(f"{value:g}" if used else toks[n])
        n += used or 1
    return out


_DIGIT_WORDS = {**{k: str(v) for k, v in UNITS.items() if v < 10}, "oh": "0", "o": "0"}


def find_digits(text: str) -> str:
    """Every digit said in `text`, in order: "five five five, double one" → "55511"."""
    out: list[str] = []
    toks = tokens(text)
    repeat = 1
    n = 0
    while n < len(toks):
        word = toks[n]
        n += 1
        if word in ("double", "triple"):
            repeat = 2 if word == "double" else 3
            continue
        if word[0].isdigit():
            out.append(re.sub(r"\D", "", word) * repeat)
        elif word in _DIGIT_WORDS:
            out.append(_DIGIT_WORDS[word] * repeat)
        elif word in UNITS:  # ten .. nineteen
            out.append(str(UNITS[word]) * repeat)
        elif word in TENS:
            tens = TENS[word]
            if n < len(toks) and toks[n] in _DIGIT_WORDS and toks[n] not in ("oh", "o", "zero"):
                tens += int(_DIGIT_WORDS[toks[n]])
                n += 1
            out.append(str(tens) * repeat)
        elif word == "hundred":
            out.append("00")
        elif word == "thousand":
            out.append("000")
        repeat = 1
    return "".join(out)
