"""What a flow node kind is, and the registry every other part of `voicebot.flows` reads.

A kind is one object: its YAML keys (for the structural checker and the JSON Schema), how its
keys become a `Node` (the loader), what it checks across the flow set (the validator) and what it
does when the walk enters it or the caller answers it (the runner). The loader, validator, schema
and runner hold no per-kind tables; they ask `kind(name)`, so a new kind is one module here.

A kind acts on the call through the `FlowDialogue` it is handed (`d`): `d._say(node, template)`
gives a `Say` to yield, `d._go(ref)` sets the next node, `d._listen(node)` the `Listen` that ends
a turn at an input point (after `d.phase = "input"`), `d._escalate(node, "noinput"|"nomatch")`
answers a non-answer, `d._eval`/`d._render` evaluate templates, `d.values` holds slots and
variables; a `StepError` raised from `enter`/`on_input` takes the node's `on_error` way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from ...dialogue import BotOutput, UserInput
from ..model import Node, Ref, StepError
from ..source import Path_
from ..spec import T
from ..templates import Template

if TYPE_CHECKING:  # the runner, builder and validator call in; kinds never import them
    from ..builder import Builder
    from ..model import Flow
    from ..runner import FlowDialogue
    from ..validate import Validator


class NodeKind:
    """One node kind. Subclass it, set `name` and `fields`, override what the kind does."""

    #: The key that makes a node this kind (`ask:`); `say` alone is the kind of a bare `say:`.
    name: ClassVar[str]
    #: Its YAML keys besides `say`, `barge_in` and `description` (spec.COMMON), with types.
    fields: ClassVar[dict[str, T]] = {}
    #: Keys it needs besides its own (`if` needs `then` and `else`).
    required: ClassVar[tuple[str, ...]] = ()
    #: The walk goes on to `next:`, so a node of this kind without one is a dead end.
    needs_next: ClassVar[bool] = False
    #: The flow's `anywhere:` branches apply at this kind's input point.
    uses_anywhere: ClassVar[bool] = False
    #: The flow's `defaults` (noinput/nomatch escalations, `on_error`) may lead on from here.
    uses_defaults: ClassVar[bool] = False

    # ------------------------------------------------------------------------- loading

    def build(self, b: Builder, node: Node, data: dict[str, Any], path: Path_) -> None:
        """Compile the kind's own keys (already type-checked) into `node.part`."""

    # ---------------------------------------------------------------------- validation

    def refs(self, node: Node) -> Iterable[Ref]:
        """The nodes this one may lead to besides `next`, `on_error` and its escalations."""
        return ()

    def straight_on(self, node: Node) -> Ref | None:
        """Where the walk goes without waiting for the caller, for the loop check."""
        return None

    def assigns(self, node: Node) -> Iterable[str]:
        """Variable names this node sets, so templates may use them."""
        return ()

    def check(self, v: Validator, flow: Flow, node: Node) -> None:
        """Checks across the flow set (declared slots, registered actions) after references
        are resolved; report with `v.problem(node.where, ...)`."""

    # -------------------------------------------------------------------------- running

    def enter(self, d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
        """The walk reached this node: say, act, and either `d._go(...)` on or `d._listen`."""
        raise NotImplementedError

    def on_input(self, d: FlowDialogue, node: Node, event: UserInput) -> AsyncIterator[BotOutput]:
        """The caller answered while this node was listening (only input points listen)."""
        raise StepError(f"node '{node.name}' ({self.name}) does not take input")

    def prompt(self, d: FlowDialogue, node: Node) -> tuple[Template | None, dict[str, Any]]:
        """What to say again when the call resumes or an escalation reprompts, and its scope."""
        return node.say, {}

    def help(self, d: FlowDialogue, node: Node) -> Template | None:
        """`{{ help }}` in escalations."""
        return node.help

    def dtmf(self, d: FlowDialogue, node: Node) -> tuple[int, str | None, int]:
        """Key collection while listening: (max digits, terminator, inter-digit timeout ms)."""
        return 1, None, 3000


_KINDS: dict[str, NodeKind] = {}


def register(kind: NodeKind) -> NodeKind:
    """Add a kind (or replace one of the same name); returns it, for use as a one-liner."""
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    _KINDS.pop(name, None)


def kinds() -> dict[str, NodeKind]:
    """Every kind by name, in registration order (the order of messages and of the schema)."""
    return dict(_KINDS)


def kind(name: str) -> NodeKind:
    return _KINDS[name]


async def say_first(d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
    """A node's own `say:`, spoken before it does its work."""
    say = d._say(node, node.say)
    if say is not None:
        yield say
