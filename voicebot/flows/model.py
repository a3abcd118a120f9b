"""The loaded, compiled form of flow files: what the runner executes and the validator inspects.

Everything a turn needs is precomputed here (templates compiled, references resolved, intent
candidates per `listen` node built), so running a step is dictionary lookups and template calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..providers import IntentSpec
from .templates import Expression, Template


class FlowError(Exception):
    """Flow files that cannot be used; `problems` lists each as `file:line:col: message`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"{count} in flows:\n" + "\n".join(problems))


class StepError(Exception):
    """A node could not run (template error, failing action or webhook, missing provider)."""


@dataclass
class Ref:
    """A node reference as written (`confirm`, `booking.start`, `booking`), resolved on load."""

    raw: str
    where: str
    flow: str = ""
    node: str = ""


@dataclass
class Escalation:
    say: Template | None
    reprompt: bool
    goto: Ref | None


@dataclass
class SlotDecl:
    name: str
    type: str
    where: str
    prompt: Template | None = None
    help: Template | None = None
    invalid: Template | None = None
    follow_up: Template | None = None  # a composite value half said: ask for the rest
    min: float | None = None
    max: float | None = None
    pattern: re.Pattern[str] | None = None
    length: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    terminator: str | None = None
    values: dict[str, list[str]] = field(default_factory=dict)
    check: Expression | None = None


@dataclass
class Branch:
    where: str
    goto: Ref
    intents: tuple[str, ...] = ()
    dtmf: tuple[str, ...] = ()
    slot: str | None = None
    when: Expression | None = None

    @property
    def always(self) -> bool:
        return not (self.intents or self.dtmf or self.slot or self.when)


@dataclass
class Defaults:
    barge_in: bool = True
    timeout_ms: int = 6000
    noinput: list[Escalation] = field(default_factory=list)
    nomatch: list[Escalation] = field(default_factory=list)
    on_error: Ref | None = None


@dataclass
class Node:
    """A node's keys that mean the same for every kind; what only its kind has (an ask node's
    slots, a listen node's branches) is `part`, built and read by `flows/nodes/<kind>.py`."""

    name: str
    flow: str
    kind: str
    where: str
    say: Template | None = None
    barge_in: bool | None = None
    next: Ref | None = None
    # input points (ask, listen, llm)
    noinput: list[Escalation] | None = None
    nomatch: list[Escalation] | None = None
    timeout_ms: int | None = None
    help: Template | None = None
    on_error: Ref | None = None
    part: Any = None

    @property
    def key(self) -> str:
        return f"{self.flow}.{self.name}"


@dataclass
class Flow:
    name: str
    file: str
    where: str
    start: str
    nodes: dict[str, Node] = field(default_factory=dict)
    slots: dict[str, SlotDecl] = field(default_factory=dict)
    intents: dict[str, IntentSpec] = field(default_factory=dict)
    defaults: Defaults = field(default_factory=Defaults)
    anywhere: list[Branch] = field(default_factory=list)
    anywhere_candidates: tuple[IntentSpec, ...] = ()
    uses: list[tuple[Any, str]] = field(default_factory=list)  # templates, for the validator


@dataclass
class FlowSet:
    flows: dict[str, Flow] = field(default_factory=dict)
    #: Flows whose file did not load (a YAML syntax error, say), by name → where its first
    #: problem is; a reference to one is then blamed on that file, not on a misspelt name.
    broken: dict[str, str] = field(default_factory=dict)

    def node(self, flow: str, name: str) -> Node:
        return self.flows[flow].nodes[name]

    def slot(self, flow: str, name: str) -> SlotDecl | None:
        """The slot as declared by `flow`, else by any other flow (slots are call-wide)."""
        decl = self.flows[flow].slots.get(name)
        if decl is not None:
            return decl
        for other in self.flows.values():
            if name in other.slots:
                return other.slots[name]
        return None

    def intent(self, flow: str, name: str) -> IntentSpec | None:
        spec = self.flows[flow].intents.get(name)
        if spec is not None:
            return spec
        for other in self.flows.values():
            if name in other.intents:
                return other.intents[name]
        return None
