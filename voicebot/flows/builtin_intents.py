"""Intents every phone bot needs, written once with enough examples to generalise.

A flow author writes five or six examples per intent; on paraphrases nobody foresaw, the
`embedding` classifier then gets 76-87 % right. Started from built-in intents, with twenty-odd
varied examples each, the same intents get 92-95 % (benchmarks/intent_accuracy.py: three sets
written by people who never saw an example). Writing those twenty is the chore this module takes
off the author: `intents: {cancel: {builtin: cancel_appointment}}`, plus any examples of their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from ..providers import IntentSpec


@dataclass(frozen=True)
class BuiltinIntent:
    name: str
    description: str
    examples: tuple[str, ...]
    keywords: tuple[str, ...]


@cache
def builtin_intents() -> dict[str, BuiltinIntent]:
    """The shipped intents by name (read once from builtin_intents.yaml)."""
    text = resources.files(__package__).joinpath("builtin_intents.yaml").read_text("utf-8")
    return {
        name: BuiltinIntent(
            name,
            decl["description"],
            tuple(decl["examples"]),
            tuple(decl.get("keywords") or ()),
        )
        for name, decl in yaml.safe_load(text).items()
    }


def intent_spec(
    name: str,
    builtin: str | None = None,
    examples: Iterable[str] = (),
    keywords: Iterable[str] = (),
) -> IntentSpec:
    """An intent as the classifier sees it: the built-in's examples and keywords, then the
    author's (duplicates dropped)."""
    base = builtin_intents().get(builtin) if builtin else None
    if base is not None:
        examples, keywords = [*base.examples, *examples], [*base.keywords, *keywords]
    return IntentSpec(name, tuple(dict.fromkeys(examples)), tuple(dict.fromkeys(keywords)))
