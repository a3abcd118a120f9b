"""Built-in intents: what ships, how a flow extends one, and that the schema offers them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from voicebot.flows import load_flows
from voicebot.flows.builtin_intents import builtin_intents, intent_spec
from voicebot.flows.schema import json_schema
from voicebot_plugins.intent_embedding import intent_similarity, nearest_share


def test_each_builtin_has_enough_distinct_examples() -> None:
    seen: dict[str, str] = {}
    for name, intent in builtin_intents().items():
        assert intent.description, name
        assert len(intent.examples) >= 20, name  # below ~20 the nearest examples barely count
        assert len(set(intent.examples)) == len(intent.examples), name
        for example in intent.examples:
            assert seen.setdefault(example.lower(), name) == name, f"{example!r} in two intents"


def test_a_flow_extends_a_builtin_with_its_own_examples(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text(
        textwrap.dedent("""\
            intents:
              cancel:
                builtin: cancel_appointment
                examples: [scratch the dinner reservation, I want to cancel my appointment]
                keywords: [scratch, cancel]
              menu: {examples: [what's on the menu]}
            nodes:
              a:
                listen:
                  - {intent: [cancel, menu], goto: a}
            """)
    )
    intents = load_flows(tmp_path).flows["main"].intents
    base = builtin_intents()["cancel_appointment"]
    cancel = intents["cancel"]
    assert cancel.examples == (*base.examples, "scratch the dinner reservation")  # no duplicate
    assert cancel.keywords == (*base.keywords, "scratch")
    assert intents["menu"].examples == ("what's on the menu",)
    assert intent_spec("x", "agent").examples == builtin_intents()["agent"].examples


def test_the_schema_lists_the_builtins() -> None:
    intent = json_schema()["properties"]["intents"]["additionalProperties"]
    assert intent["properties"]["builtin"]["enum"] == list(builtin_intents())


def unit(v: list[float]) -> np.ndarray:
    a = np.array(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def test_many_examples_let_the_nearest_ones_count() -> None:
    """A turn worded like a few examples: the centroid of many misses it, the blend does not."""
    query = unit([1, 0, 0])
    close = [unit([0.95, 0.3, 0]), unit([0.95, 0, 0.3])]  # two examples near the query
    bulk = [unit([0, 1, 0.1 * i]) for i in range(18)]  # the rest elsewhere
    many = np.stack([*close, *bulk])
    centroid_only = intent_similarity(many, query, share=0.0, k=2)
    blended = intent_similarity(many, query, share=nearest_share(len(many), 0.7), k=2)
    assert centroid_only < 0.2 < 0.4 < blended
    assert nearest_share(6, 0.7) == 0.0  # an author's five or six: the centroid alone
    assert nearest_share(13, 0.7) == pytest.approx(0.35)
    assert nearest_share(20, 0.7) == nearest_share(200, 0.7) == 0.7
    assert intent_similarity(np.zeros((0, 3), np.float32), query, 0.7, 2) == 0.0
