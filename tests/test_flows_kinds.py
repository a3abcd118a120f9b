"""The node-kind seam: a kind registered from outside (here, by this test) is loaded, checked,
described by the JSON Schema and run, without an edit to the loader, validator, schema or
runner. If one of them kept its own per-kind table, this kind would be unknown to it."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from voicebot.dialogue import BotOutput, Hangup, Listen, Note, UserInput
from voicebot.flows import FlowError, check_flows, load_flows
from voicebot.flows.model import Flow, Node, Ref
from voicebot.flows.nodes import NodeKind, kind_keys, kinds, register, say_first, unregister
from voicebot.flows.schema import json_schema
from voicebot.flows.spec import INPUT, NAME, REF, s

from .flows_helpers import Bot, write


class Spell(NodeKind):
    """`spell: name`: listen, and keep what the caller said spelt out, letter by letter."""

    name = "spell"
    fields = {"spell": s("Variable receiving the letters", pattern=NAME), "next": REF, **INPUT}
    needs_next = True
    uses_defaults = True

    def build(self, b: Any, node: Node, data: dict[str, Any], path: tuple) -> None:
        node.part = data["spell"]

    def assigns(self, node: Node) -> Iterable[str]:
        return [node.part]

    def straight_on(self, node: Node) -> Ref | None:
        return None

    def check(self, v: Any, flow: Flow, node: Node) -> None:
        if node.part in flow.slots:
            v.problem(node.where, f"node '{node.name}' spells into slot '{node.part}'")

    async def enter(self, d: Any, node: Node) -> AsyncIterator[BotOutput]:
        async for out in say_first(d, node):
            yield out
        d.phase = "input"
        yield d._listen(node)

    async def on_input(self, d: Any, node: Node, event: UserInput) -> AsyncIterator[BotOutput]:
        if event.kind == "noinput":
            async for out in d._escalate(node, "noinput"):
                yield out
            return
        letters = " ".join(c.upper() for c in event.text if c.isalpha())
        if not letters:
            async for out in d._escalate(node, "nomatch"):
                yield out
            return
        d.values[node.part] = letters
        yield Note("vars", {"vars": {node.part: letters}})
        d._go(node.next)

    def dtmf(self, d: Any, node: Node) -> tuple[int, str | None, int]:
        return 1, None, 2500


FLOW = """\
nodes:
  name:
    say: Spell your name, please.
    spell: letters
    next: done
    nomatch: ["Letters, please."]
  done:
    say: "That is {{ letters }}."
    hangup:
"""


@pytest.fixture
def spell() -> Iterator[Spell]:
    kind = register(Spell())
    try:
        yield kind
    finally:
        unregister("spell")
    assert "spell" not in kinds()


async def test_a_registered_kind_loads_validates_and_runs(spell: Spell, tmp_path: Path) -> None:
    bot = Bot(write(tmp_path, main=FLOW))
    await bot.start()
    assert bot.said == "Spell your name, please."
    assert bot.listen == Listen(
        noinput_timeout_ms=6000, dtmf_max_digits=1, dtmf_timeout_ms=2500, barge_in=True
    )
    await bot.send("42")
    assert bot.said == "Letters, please. Spell your name, please."  # its own nomatch
    assert bot.at == "main.name"
    await bot.send("ada")
    assert bot.said == "That is A D A."
    assert bot.of(Hangup) == [Hangup("completed")]


def test_a_registered_kind_is_checked_with_positions(spell: Spell, tmp_path: Path) -> None:
    flow = """\
    slots:
      letters: {type: text, prompt: Letters?}
    nodes:
      name:
        spell: letters
        nxt: done
      other:
        spell: letters
        timeout_ms: -1
      done:
        say: "{{ leters }}"
        hangup:
    """
    (tmp_path / "main.yaml").write_text(textwrap.dedent(flow))
    found = [p.replace(str(tmp_path), "flows") for p in check_flows(tmp_path)]
    assert found == [
        "flows/main.yaml:6:5: unknown key 'nxt' in spell node 'name' (did you mean 'next'?)",
        "flows/main.yaml:9:17: 'timeout_ms' of spell node 'other' must be at least 0, not -1",
        "flows/main.yaml:11:10: template uses 'leters' which is not a slot or variable "
        "(did you mean 'letters'?)",
    ]
    (tmp_path / "main.yaml").write_text(
        "slots:\n  letters: {type: text, prompt: Letters?}\nnodes:\n  name:\n    spell: letters\n"
    )
    with pytest.raises(FlowError) as caught:
        load_flows(tmp_path)
    assert [p.replace(str(tmp_path), "flows") for p in caught.value.problems] == [
        "flows/main.yaml:5:5: node 'name' has no way out: "
        "add `next:` (the node to go to afterwards)",
        "flows/main.yaml:5:5: node 'name' spells into slot 'letters'",
    ]


def test_a_registered_kind_is_in_the_schema_and_the_node_messages(
    spell: Spell, tmp_path: Path
) -> None:
    schema = json_schema()
    jsonschema.validate(yaml.safe_load(FLOW), schema)
    bad = yaml.safe_load(FLOW.replace("spell: letters", "spell: [letters]"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    assert kind_keys()[-1] == "spell"
    (tmp_path / "main.yaml").write_text("nodes:\n  a:\n    spel: x\n")
    assert [p.replace(str(tmp_path), "flows") for p in check_flows(tmp_path)] == [
        "flows/main.yaml:3:5: node 'a' does nothing: give it `say:` or one of "
        + ", ".join(kind_keys())
        + " (did you mean 'spell'?)"
    ]


def test_without_the_registration_the_kind_is_unknown(tmp_path: Path) -> None:
    assert "spell" not in kinds()
    (tmp_path / "main.yaml").write_text(textwrap.dedent(FLOW))
    found = [p.replace(str(tmp_path), "flows") for p in check_flows(tmp_path)]
    assert found[0] == ("flows/main.yaml:4:5: unknown key 'spell' in say node 'name'")


def test_every_built_in_kind_is_in_the_node_table_of_the_docs() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "flows.md").read_text()
    table = doc[doc.index("| kind | does | keys |") :].split("\n\n", 1)[0]
    rows = [line.split("|")[1].strip().strip("`") for line in table.splitlines()[2:]]
    assert rows == list(kinds())
