"""`say:` alone: speak, then go on to `next:`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ...dialogue import BotOutput
from ..model import Node, Ref
from ..spec import REF
from .base import NodeKind, say_first

if TYPE_CHECKING:
    from ..runner import FlowDialogue


class Say(NodeKind):
    name = "say"
    fields = {"next": REF}
    needs_next = True

    def straight_on(self, node: Node) -> Ref | None:
        return node.next

    async def enter(self, d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
        async for out in say_first(d, node):
            yield out
        d._go(node.next)


SAY = Say()
