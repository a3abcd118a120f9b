"""`transfer:`: hand the call to a person or number (cold or warm); the flow ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...dialogue import BotOutput
from ...dialogue import Transfer as TransferOutput
from ..model import Node
from ..source import Path_
from ..spec import TEXT, T
from ..templates import Template
from .base import NodeKind, say_first

if TYPE_CHECKING:
    from ..builder import Builder
    from ..runner import FlowDialogue


@dataclass
class Target:
    to: Template | None
    mode: str = "cold"


class Transfer(NodeKind):
    name = "transfer"
    fields = {
        "transfer": TEXT,
        "mode": T("str", "cold (default) or warm", enum=("cold", "warm")),
    }

    def build(self, b: Builder, node: Node, data: dict[str, Any], path: Path_) -> None:
        node.part = Target(
            b.template(data["transfer"], (*path, "transfer")), data.get("mode", "cold")
        )

    async def enter(self, d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
        async for out in say_first(d, node):
            yield out
        target = d._render(node.part.to)
        d.phase = "ended"
        yield TransferOutput(target, node.part.mode)


TRANSFER = Transfer()
