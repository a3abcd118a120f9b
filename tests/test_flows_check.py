"""Each kind of broken flow file gets its own precise `file:line:col: message`."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from voicebot.flows import FlowError, check_flows, load_flows

GOOD_MAIN = """\
nodes:
  hello:
    say: Hi
    next: bye
  bye:
    hangup:
"""


def problems(tmp_path: Path, text: str, registry=None, **others: str) -> list[str]:
    (tmp_path / "main.yaml").write_text(textwrap.dedent(text))
    for name, body in others.items():
        (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(body))
    return [p.replace(str(tmp_path), "flows") for p in check_flows(tmp_path, registry)]


CASES = {
    "unknown target with suggestion": (
        """\
        nodes:
          confirm:
            say: Done.
            next: bye
          goodbye:
            hangup:
        """,
        "flows/main.yaml:4:11: node 'confirm' goes to 'bye' which does not exist "
        "(did you mean 'goodbye'?)",
    ),
    "yaml syntax": (
        "nodes:\n  a:\n    say: [unclosed\n",
        "flows/main.yaml:4:1: YAML syntax error: did not find expected ',' or ']'",
    ),
    "duplicate key": (
        "nodes:\n  a:\n    say: Hi\n    next: b\n  b:\n    hangup:\n  a:\n    hangup:\n",
        "flows/main.yaml:7:3: duplicate key 'a' (first at line 2)",
    ),
    "unknown node key": (
        "nodes:\n  a:\n    say: Hi\n    nxt: b\n",
        "flows/main.yaml:4:5: unknown key 'nxt' in say node 'a' (did you mean 'next'?)",
    ),
    "two kinds in one node": (
        "nodes:\n  a:\n    ask: x\n    listen: []\n",
        "flows/main.yaml:4:5: node 'a' has both `ask` and `listen`; a node does one thing: "
        "split it into two nodes",
    ),
    "node that does nothing": (
        "nodes:\n  a:\n    sya: Hi\n",
        "flows/main.yaml:3:5: node 'a' does nothing: give it `say:` or one of ask, listen, llm, "
        "action, http, set, if, switch, goto, call, return, transfer, hangup (did you mean 'say'?)",
    ),
    "wrong value type": (
        "nodes:\n  a:\n    say: Hi\n    barge_in: 3\n    next: b\n  b:\n    hangup:\n",
        "flows/main.yaml:4:15: 'barge_in' of say node 'a' must be true or false, not 3",
    ),
    "yaml boolean where a word was meant": (
        "intents:\n  no:\n    keywords: [no]\nnodes:\n  a:\n    hangup:\n",
        "flows/main.yaml:3:16: item 1 of 'keywords' of intent 'no' must be a string, not false "
        "(YAML reads yes/no/on/off as true/false: quote the word)",
    ),
    "no way out": (
        "nodes:\n  a:\n    say: Hi\n",
        "flows/main.yaml:3:5: node 'a' has no way out: add `next:` (the node to go to afterwards)",
    ),
    "unreachable node": (
        GOOD_MAIN + "  lonely:\n    hangup:\n",
        "flows/main.yaml:8:5: node 'lonely' is never reached: nothing goes to it from 'hello', "
        "the start of flow 'main'",
    ),
    "loop without input": (
        "nodes:\n  a:\n    say: Hi\n    next: b\n  b:\n    set: {x: 1}\n    next: a\n",
        "flows/main.yaml:3:5: nodes a → b → a loop without ever waiting for the caller; put an "
        "ask or listen node in the loop",
    ),
    "undeclared slot": (
        "slots:\n  party_size: {type: integer, prompt: How many?}\nnodes:\n  a:\n"
        "    ask: party_sise\n    next: b\n  b:\n    hangup:\n",
        "flows/main.yaml:5:5: node 'a' uses slot 'party_sise' which is not declared under "
        "`slots:` (did you mean 'party_size'?)",
    ),
    "undeclared intent": (
        "intents:\n  booking: {keywords: [book]}\nnodes:\n  a:\n    listen:\n"
        "      - intent: bookin\n        goto: b\n  b:\n    hangup:\n",
        "flows/main.yaml:6:9: node 'a' listens for intent 'bookin' which is not declared under "
        "`intents:` (did you mean 'booking'?)",
    ),
    "unknown template variable": (
        "slots:\n  name: {type: text}\nnodes:\n  a:\n    say: Hello {{ nmae }}\n    next: b\n"
        "  b:\n    hangup:\n",
        "flows/main.yaml:5:10: template uses 'nmae' which is not a slot or variable (did you "
        "mean 'name'?)",
    ),
    "template syntax": (
        "nodes:\n  a:\n    say: Hello {{ name\n    next: b\n  b:\n    hangup:\n",
        "flows/main.yaml:3:10: template error: unexpected end of template, expected 'end of "
        "print statement'.",
    ),
    "template type error": (
        "slots:\n  n: {type: integer}\nnodes:\n  a:\n    say: \"{{ n + ' people' }}\"\n"
        "    next: b\n  b:\n    hangup:\n",
        "flows/main.yaml:5:10: template error: TypeError: unsupported operand type(s) for +: "
        "'int' and 'str' in \"{{ n + ' people' }}\"",
    ),
    "unknown filter": (
        "nodes:\n  a:\n    say: \"{{ 'x' | spoken_dat }}\"\n    next: b\n  b:\n    hangup:\n",
        "flows/main.yaml:3:10: template error: No filter named 'spoken_dat'.",
    ),
    "expression with braces": (
        'nodes:\n  a:\n    if: "{{ 1 > 0 }}"\n    then: b\n    else: b\n  b:\n    hangup:\n',
        "flows/main.yaml:3:9: write the expression without braces: '1 > 0'",
    ),
    "missing required key": (
        "nodes:\n  a:\n    if: 1 > 0\n    then: b\n  b:\n    hangup:\n",
        "flows/main.yaml:3:5: if node 'a' needs 'else'",
    ),
    "bad start": (
        "start: begin\nnodes:\n  a:\n    hangup:\n",
        "flows/main.yaml:1:1: flow 'main' starts at 'begin' which is not one of its nodes",
    ),
    "enum without values": (
        "slots:\n  size: {type: enum, prompt: Size?}\nnodes:\n  a:\n    ask: size\n    next: b\n"
        "  b:\n    hangup:\n",
        "flows/main.yaml:2:9: enum slot 'size' needs `values:` (a list, or value: [synonyms])",
    ),
    "slot option of another type": (
        "slots:\n  name: {type: text, max: 3}\nnodes:\n  a:\n    hangup:\n",
        "flows/main.yaml:2:9: slot 'name': `max` applies to integer and number slots, not text",
    ),
    "misspelt slot type": (
        "slots:\n  n: {type: integr}\nnodes:\n  a:\n    hangup:\n",
        "flows/main.yaml:2:6: slot 'n' has unknown type 'integr' (did you mean 'integer'?); "
        "built-in types: text, number, integer, yesno, date, time, datetime, phone, email, "
        "digits, enum",
    ),
    "other flow's node": (
        "nodes:\n  a:\n    goto: other.strt\n",
        "flows/main.yaml:3:11: node 'a' goes to 'other.strt' but flow 'other' has no node "
        "'strt' (did you mean 'start'?)",
    ),
    "unknown flow": (
        "nodes:\n  a:\n    goto: bokking.start\n",
        "flows/main.yaml:3:11: node 'a' goes to 'bokking.start' but there is no flow 'bokking'",
    ),
    "escalation target": (
        "defaults:\n  nomatch:\n    - goto: agnt\nnodes:\n  a:\n    listen:\n"
        "      - intent: x\n        goto: agent\n  agent:\n    transfer: '+1555'\n"
        "intents:\n  x: {keywords: [x]}\n",
        "flows/main.yaml:3:13: the defaults of flow 'main' goes to 'agnt' which does not exist "
        "(did you mean 'agent'?)",
    ),
    "llm function without effect": (
        "nodes:\n  a:\n    llm:\n      system: Be nice.\n      functions:\n"
        "        f: {description: does nothing}\n",
        "flows/main.yaml:6:12: function 'f' needs `goto:` (a transition) or `action:`",
    ),
    "bad node name": (
        "nodes:\n  a.b:\n    hangup:\n",
        "flows/main.yaml:2:3: node name 'a.b' must be a plain name (letters, digits, _ and -, "
        "no dots: dots separate a flow from a node)",
    ),
    "anywhere branch without condition": (
        "anywhere:\n  - goto: a\nnodes:\n  a:\n    hangup:\n",
        "flows/main.yaml:2:5: a branch of `anywhere` of flow 'main' needs a condition (intent, "
        "dtmf, slot or when): without one it would catch every answer",
    ),
    "ask without a question": (
        "slots:\n  n: {type: integer}\nnodes:\n  a:\n    ask: n\n    next: b\n  b:\n    hangup:\n",
        "flows/main.yaml:5:5: node 'a' asks for slot 'n' without a question: give the slot a "
        "`prompt:` or the node a `say:`",
    ),
    "branch without target": (
        "intents:\n  x: {keywords: [x]}\nnodes:\n  a:\n    listen:\n      - intent: x\n",
        "flows/main.yaml:6:9: item 1 of 'listen' of listen node 'a' needs 'goto'",
    ),
    "misspelt escalation key": (
        "nodes:\n  a:\n    listen:\n      - goto: a\n    noinput:\n      - sya: Hello\n",
        "flows/main.yaml:6:9: unknown key 'sya' in item 1 of 'noinput' of listen node 'a' "
        "(did you mean 'say'?)",
    ),
    "negative timeout": (
        "nodes:\n  a:\n    listen:\n      - goto: a\n    timeout_ms: -5\n",
        "flows/main.yaml:5:17: 'timeout_ms' of listen node 'a' must be at least 0, not -5",
    ),
    "unknown built-in intent": (
        "intents:\n  bye: {builtin: goodby}\nnodes:\n  a:\n    hangup:\n",
        "flows/main.yaml:2:18: 'builtin' of intent 'bye' must be one of book_appointment, "
        "cancel_appointment, reschedule_appointment, opening_hours, location, prices, agent, "
        "goodbye, not 'goodby' (did you mean 'goodbye'?)",
    ),
    "intent nothing can match": (
        "intents:\n  bye: {examples: []}\nnodes:\n  a:\n    hangup:\n",
        "flows/main.yaml:2:8: intent 'bye' has no examples, keywords or builtin, so no caller can "
        "ever match it: add `examples:` or name a `builtin:`",
    ),
    "empty file": ("", "flows/main.yaml:1:1: the file is empty; a flow needs at least `nodes:`"),
    "not a mapping": (
        "- a\n- b\n",
        "flows/main.yaml:1:1: a flow file must be a mapping with `nodes:` (and optionally flow, "
        "start, slots, intents, defaults)",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_broken_flow_has_its_own_message(tmp_path: Path, case: str) -> None:
    text, message = CASES[case]
    other = {"other": "nodes:\n  start:\n    hangup:\n"} if "other" in case else {}
    found = problems(tmp_path, text, **other)
    assert message in found, "\n".join(found)


def test_an_ask_node_needs_somewhere_to_go(tmp_path: Path) -> None:
    text = "slots:\n  n: {type: integer, prompt: How many?}\nnodes:\n  a:\n    ask: n\n"
    assert problems(tmp_path, text) == [
        "flows/main.yaml:5:5: node 'a' has no way out: add `next:` (the node to go to afterwards)"
    ]


def test_messages_are_distinct() -> None:
    messages = [m.split(": ", 1)[1] for _, m in CASES.values()]
    assert len(set(messages)) == len(messages)


@dataclass
class FakeRegistry:
    actions: dict = field(default_factory=dict)
    slot_types: dict = field(default_factory=dict)


def test_registry_checks_actions_and_plugin_slot_types(tmp_path: Path) -> None:
    text = """\
    slots:
      iban: {type: iban, prompt: Your IBAN?}
      code: {type: postcode, prompt: Your postcode?}
    nodes:
      a:
        ask: [iban, code]
        next: b
      b:
        action: bookings.creat
        next: c
      c:
        hangup:
    """
    reg = FakeRegistry(actions={"bookings.create": print}, slot_types={"iban": str})
    found = problems(tmp_path, text, registry=reg)
    assert found == [
        "flows/main.yaml:3:9: slot 'code' has unknown type 'postcode'; built-in types: text, "
        "number, integer, yesno, date, time, datetime, phone, email, digits, enum",
        "flows/main.yaml:9:5: node 'b' calls action 'bookings.creat' which no plugin registers "
        "(did you mean 'bookings.create'?); registered actions: bookings.create",
    ]
    # without a registry, names a plugin might provide are not guessed at
    assert problems(tmp_path, text) == []


def test_duplicate_flow_names(tmp_path: Path) -> None:
    found = problems(tmp_path, "flow: x\n" + GOOD_MAIN, other="flow: x\n" + GOOD_MAIN)
    assert found == [
        "flows/other.yaml:1:1: flow 'x' is already defined in flows/main.yaml; give one of "
        "them another `flow:` name"
    ]


def test_load_flows_raises_with_every_problem(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text("nodes:\n  a:\n    say: Hi\n  b:\n    nxt: a\n")
    with pytest.raises(FlowError) as info:
        load_flows(tmp_path)
    assert len(info.value.problems) == 2
    assert str(info.value).startswith("2 problems in flows:\n")


def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert check_flows(missing) == [f"{missing}:1:1: flow directory does not exist"]


def test_example_flows_are_clean() -> None:
    assert check_flows(Path(__file__).parent.parent / "flows") == []


def test_one_broken_node_is_one_problem_not_a_cascade(tmp_path: Path) -> None:
    """The nodes after a broken `nxt:` are not "never reached": they are only cut off by it."""
    text = """\
    nodes:
      intro:
        say: Hi
        nxt: details
      details:
        say: One
        next: more
      more:
        say: Two
        next: done
      done:
        hangup:
    """
    other = "nodes:\n  start:\n    hangup:\n  orphan:\n    hangup:\n"
    assert problems(tmp_path, text, other=other) == [
        "flows/main.yaml:4:5: unknown key 'nxt' in say node 'intro' (did you mean 'next'?)",
        # a flow without a broken node is still checked for nodes nothing goes to
        "flows/other.yaml:5:5: node 'orphan' is never reached: nothing goes to it from 'start', "
        "the start of flow 'other'",
    ]


def test_a_flow_whose_file_does_not_parse_is_blamed_not_misspelt(tmp_path: Path) -> None:
    text = """\
    nodes:
      a:
        call: booking
        next: b
      b:
        goto: booking.x
    """
    found = problems(tmp_path, text, booking="nodes:\n  x:\n    say: [unclosed\n")
    assert found == [
        "flows/booking.yaml:4:1: YAML syntax error: did not find expected ',' or ']'",
        "flows/main.yaml:3:11: node 'a' goes to 'booking', but the file of flow 'booking' "
        "failed to load (flows/booking.yaml:4:1): fix the error reported there first",
        "flows/main.yaml:6:11: node 'b' goes to 'booking.x', but the file of flow 'booking' "
        "failed to load (flows/booking.yaml:4:1): fix the error reported there first",
    ]
