"""`set:`: assign variables (template values keep their type), then go on to `next:`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from ...dialogue import BotOutput, Note
from ..model import Node, Ref
from ..source import Path_
from ..spec import REF, anything, mp
from .base import NodeKind, say_first

if TYPE_CHECKING:
    from ..builder import Builder
    from ..runner import FlowDialogue


class Set(NodeKind):
    name = "set"
    fields = {
        "set": mp(anything("Strings are templates; `{{ x }}` alone keeps x's type")),
        "next": REF,
    }
    needs_next = True

    def build(self, b: Builder, node: Node, data: dict[str, Any], path: Path_) -> None:
        node.part = b.values(data["set"], (*path, "set"))  # name → compiled value

    def straight_on(self, node: Node) -> Ref | None:
        return node.next

    def assigns(self, node: Node) -> Iterable[str]:
        return node.part

    async def enter(self, d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
        async for out in say_first(d, node):
            yield out
        changed = {name: d._eval(value) for name, value in node.part.items()}
        d.values.update(changed)
        yield Note("vars", {"vars": changed})
        d._go(node.next)


SET = Set()
