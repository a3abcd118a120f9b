"""`keyword`: an intent classifier with no model at all: keywords and example phrases.

Good enough for menus ("billing", "press one") and the example flows, it costs microseconds and
needs nothing installed. Keywords match whole words, tolerating small misspellings from the
recogniser; examples match by fuzzy token overlap. Only the candidates the flow step expects are
considered, so "yes" can mean different things at different steps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz

from voicebot.hookspecs import hookimpl
from voicebot.providers import IntentClassifier, IntentResult, IntentSpec

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Words that carry no intent: sharing only these with an example is no match ("yes please" is
# not "representative please").
_FILLERS = frozenset("a an the please um uh er erm oh so just well hi hello hey".split())


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class KeywordIntent(IntentClassifier):
    name = "keyword"

    @dataclass
    class Options:
        threshold: float = 0.7  # best score below this means "none of the candidates"
        fuzzy: float = 0.85  # word similarity that still counts as the keyword (misrecognitions)

    async def classify(self, text: str, candidates: Sequence[IntentSpec]) -> IntentResult:
        words = _words(text)
        if not words:
            return IntentResult(None, 0.0)
        padded = " " + " ".join(words) + " "
        best_name, best = None, 0.0
        for spec in candidates:
            score = max(
                (self._keyword(k, words, padded) for k in spec.keywords),
                default=0.0,
            )
            for example in spec.examples:
                score = max(score, self._example(example, words, padded))
            if score > best:
                best_name, best = spec.name, score
        if best < self.options.threshold:
            return IntentResult(None, round(best, 3))
        return IntentResult(best_name, round(best, 3))

    @staticmethod
    def _example(example: str, words: list[str], padded: str) -> float:
        """Fuzzy overlap with an example phrase, scaled down when the utterance shares only a
        word or two of it (fillers not counted): token-set similarity alone rates "no" a perfect
        match for "I have no idea"."""
        ex = _words(example)
        if not ex:
            return 0.0
        content = set(ex) - _FILLERS or set(ex)
        coverage = len(content & set(words)) / len(content)
        similarity = fuzz.token_set_ratio(padded, " ".join(ex)) / 100
        return 0.95 * similarity * min(1.0, coverage / 0.5)

    def _keyword(self, keyword: str, words: list[str], padded: str) -> float:
        phrase = " ".join(_words(keyword))
        if not phrase:
            return 0.0
        if f" {phrase} " in padded:
            return 1.0
        if " " in phrase or len(phrase) < 4:
            return 0.0
        similar = max(fuzz.ratio(phrase, w) for w in words) / 100
        return similar if similar >= self.options.fuzzy else 0.0


@hookimpl
def register_intent(register):
    register(KeywordIntent)
