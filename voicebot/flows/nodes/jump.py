"""`goto:`, `call:` (a sub-flow, back at `next:` on its `return:`) and `return:`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from ...dialogue import BotOutput, Hangup
from ..model import Node, Ref, StepError
from ..source import Path_
from ..spec import REF, anything
from .base import NodeKind, say_first

if TYPE_CHECKING:
    from ..builder import Builder
    from ..runner import FlowDialogue

MAX_DEPTH = 16  # nested sub-flow calls


class Goto(NodeKind):
    name = "goto"
    fields = {"goto": REF}

    def build(self, b: Builder, node: Node, data: dict[str, Any], path: Path_) -> None:
        node.part = b.ref(data[self.name], (*path, self.name))  # the target

    def refs(self, node: Node) -> Iterable[Ref]:
        return [node.part] if node.part is not None else []

    def straight_on(self, node: Node) -> Ref | None:
        return node.part

    async def enter(self, d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
        async for out in say_first(d, node):
            yield out
        d._go(node.part)


class Call(Goto):
    name = "call"
    fields = {"call": REF, "next": REF}
    needs_next = True

    def straight_on(self, node: Node) -> Ref | None:
        return None  # a sub-flow call is left at its `return:`, not in this flow

    async def enter(self, d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
        async for out in say_first(d, node):
            yield out
        if len(d.stack) >= MAX_DEPTH:
            raise StepError(f"sub-flows nested more than {MAX_DEPTH} deep")
        d.stack.append((node.next.flow, node.next.node))  # type: ignore[union-attr]
        d._go(node.part)


class Return(NodeKind):
    name = "return"
    fields = {"return": anything("Ends a sub-flow; back to the caller's `next`")}

    async def enter(self, d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
        async for out in say_first(d, node):
            yield out
        if d.stack:
            d._next = d.stack.pop()
            return
        d.phase = "ended"
        yield Hangup("completed")


GOTO = Goto()
CALL = Call()
RETURN = Return()
