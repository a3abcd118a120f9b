"""Word error rate with a small English normaliser, for STT benchmarks and round-trip tests.

Engines disagree on spelling, not words: Whisper writes "Mr. Dashwood" and "10 meters" where a
reference says "mister dashwood" and "ten meters". Comparing raw strings would count those as
errors, so both sides are normalised first (case, punctuation, common abbreviations, numbers
0-99 as words), the way published WER figures are computed.
"""

from __future__ import annotations

import re

from rapidfuzz.distance import Levenshtein

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint", "ok": "okay"}
_NUMBER = re.compile(r"\d+")
_NON_WORD = re.compile(r"[^a-z0-9' ]+")


def _number_words(match: re.Match[str]) -> str:
    n = int(match.group())
    if n < 20:
        return f" {_ONES[n]} "
    if n < 100:
        tens, ones = divmod(n, 10)
        return f" {_TENS[tens]} {_ONES[ones]} " if ones else f" {_TENS[tens]} "
    return " " + " ".join(_ONES[int(d)] for d in match.group()) + " "  # read digit by digit


def normalize_words(text: str) -> list[str]:
    text = _NUMBER.sub(_number_words, text.lower().replace("-", " "))
    words = _NON_WORD.sub(" ", text).split()
    return [_ABBREVIATIONS.get(w.strip("'"), w.strip("'")) for w in words if w.strip("'")]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference word count)."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    return Levenshtein.distance(ref, hyp), len(ref)


def wer(reference: str, hypothesis: str) -> float:
    errors, n = word_errors(reference, hypothesis)
    return errors / n if n else float(bool(normalize_words(hypothesis)))
