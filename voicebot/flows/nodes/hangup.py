"""`hangup:`: end the call, with a reason for the records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ...dialogue import BotOutput
from ...dialogue import Hangup as HangupOutput
from ..model import Node
from ..source import Path_
from ..spec import T, oneof, s
from .base import NodeKind, say_first

if TYPE_CHECKING:
    from ..builder import Builder
    from ..runner import FlowDialogue


class Hangup(NodeKind):
    name = "hangup"
    fields = {"hangup": oneof(s("Reason"), T("null"), doc="End the call")}

    def build(self, b: Builder, node: Node, data: dict[str, Any], path: Path_) -> None:
        node.part = data["hangup"] or "completed"  # the reason

    async def enter(self, d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
        async for out in say_first(d, node):
            yield out
        d.phase = "ended"
        yield HangupOutput(node.part)


HANGUP = Hangup()
