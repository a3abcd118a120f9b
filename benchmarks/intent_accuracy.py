"""Intent accuracy of the `embedding` classifier on paraphrases of a receptionist bot's intents.

Three ways a flow author can declare the bot's 8 intents are measured: only the five or six
examples and few keywords they wrote; `builtin:` intents (voicebot/flows/builtin_intents.yaml)
alone; and built-in intents plus the author's examples.
Each is scored on eight held-out sets (benchmarks/data/intent_phrases.py says who wrote each and
what it was used for). Sets F, G and H were written by people who never saw any example. A turn
counts as right when the classifier picks its intent; an out-of-scope turn when it picks none.

    python benchmarks/intent_accuracy.py [-v]

Target (issue 5): ≥ 90 % on held-out paraphrases.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "data"))

from intent_phrases import BLIND, BUILTIN, INTENTS, OUT_OF_SCOPE_SETS, SETS

from voicebot.flows.builtin_intents import intent_spec
from voicebot.plugins import make_plugin_manager
from voicebot.providers import IntentSpec
from voicebot.providers.workers import WorkerPool


def with_builtins(intents: list[IntentSpec], own: bool = True) -> list[IntentSpec]:
    """The same intents declared as `builtin: ...`, with or without the author's own examples
    and keywords, as a flow would declare them."""
    return [
        intent_spec(i.name, BUILTIN[i.name], i.examples if own else (), i.keywords if own else ())
        for i in intents
    ]


def _pct(right: int, total: int) -> str:
    return f"{right}/{total} = {100 * right / total:.1f} %"


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


async def score(classifier, intents: list[IntentSpec], verbose: bool) -> tuple[str, list[float]]:
    """Right per set, plus the blind sets without turns that are word for word an example (the
    blind writers came up with a dozen common ones, "what's your address", on their own)."""
    examples = {_norm(e) for i in intents for e in i.examples}
    times: list[float] = []
    right: dict[str, int] = {}
    novel = [0, 0]  # blind turns that are no example: right, total
    for label, phrases in SETS.items():
        right[label] = 0
        for text, expected in phrases:
            t0 = time.perf_counter()
            result = await classifier.classify(text, intents)
            times.append(time.perf_counter() - t0)
            right[label] += result.name == expected
            if label in BLIND and _norm(text) not in examples:
                novel[0] += result.name == expected
                novel[1] += 1
            if verbose and result.name != expected:
                print(f"      {label} {text!r}: got {result.name} ({result.confidence})")
    rejected = {}
    for label, phrases in OUT_OF_SCOPE_SETS.items():
        rejected[label] = 0
        for text in phrases:
            result = await classifier.classify(text, intents)
            rejected[label] += result.name is None
            if verbose and result.name is not None:
                print(
                    f"      out of scope {label} {text!r}: got {result.name} ({result.confidence})"
                )
    blind = sum(right[s] for s in BLIND), sum(len(SETS[s]) for s in BLIND)
    seen = [s for s in SETS if s not in BLIND]
    tuned = sum(right[s] for s in seen), sum(len(SETS[s]) for s in seen)
    per_set = ", ".join(f"{s} {right[s]}/{len(SETS[s])}" for s in SETS)
    oos = ", ".join(f"{k} {n}/{len(OUT_OF_SCOPE_SETS[k])}" for k, n in rejected.items())
    line = (
        f"sets {', '.join(BLIND)} (written blind): {_pct(*blind)}, "
        f"{_pct(*novel)} of those that are no example word for word; "
        f"sets {seen[0]}-{seen[-1]}: {_pct(*tuned)}\n"
        f"      by set: {per_set}\n"
        f"      out-of-scope turns rejected: {oos}"
    )
    return line, times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="print every error")
    args = parser.parse_args()
    workers = WorkerPool()
    try:
        classifier = make_plugin_manager().registry.provider("intent", "embedding")(workers=workers)
        await classifier.start()
        times: list[float] = []
        for name, intents in (
            ("author's examples only", INTENTS),
            ("built-in intents alone", with_builtins(INTENTS, own=False)),
            ("built-in intents + author's examples", with_builtins(INTENTS)),
        ):
            await classifier.classify("warm up", intents)  # embeds and caches the examples
            examples = sum(len(i.examples) for i in intents)
            line, t = await score(classifier, intents, args.verbose)
            times += t
            print(f"Intent (embedding), {name} ({examples} examples):\n      {line}")
        times.sort()
        print(f"      {1000 * times[len(times) // 2]:.1f} ms/query p50")
        await classifier.aclose()
    finally:
        workers.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
