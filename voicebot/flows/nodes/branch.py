"""`if:` and `switch:`: choose the next node from an expression, without waiting for the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...dialogue import BotOutput
from ..model import Node, Ref, StepError
from ..source import Path_
from ..spec import EXPR, REF, mp
from ..templates import Expression, TemplateError
from .base import NodeKind, say_first

if TYPE_CHECKING:
    from ..builder import Builder
    from ..runner import FlowDialogue


@dataclass
class Choice:
    condition: Expression | None
    then: Ref | None = None  # if
    otherwise: Ref | None = None
    cases: dict[str, Ref] = field(default_factory=dict)  # switch
    default: Ref | None = None


def _value(d: FlowDialogue, node: Node) -> Any:
    try:
        return node.part.condition(d._scope())
    except TemplateError as exc:
        raise StepError(str(exc)) from exc


class If(NodeKind):
    name = "if"
    fields = {"if": EXPR, "then": REF, "else": REF}
    required = ("then", "else")

    def build(self, b: Builder, node: Node, data: dict[str, Any], path: Path_) -> None:
        node.part = Choice(
            b.expression(data["if"], (*path, "if")),
            then=b.ref(data["then"], (*path, "then")),
            otherwise=b.ref(data["else"], (*path, "else")),
        )

    def refs(self, node: Node) -> Iterable[Ref]:
        return [r for r in (node.part.then, node.part.otherwise) if r is not None]

    async def enter(self, d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
        async for out in say_first(d, node):
            yield out
        d._go(node.part.then if _value(d, node) else node.part.otherwise)


class Switch(NodeKind):
    name = "switch"
    fields = {"switch": EXPR, "cases": mp(REF, label="case"), "default": REF}
    required = ("cases",)

    def build(self, b: Builder, node: Node, data: dict[str, Any], path: Path_) -> None:
        node.part = Choice(
            b.expression(data["switch"], (*path, "switch")),
            cases={str(k): b.ref(v, (*path, "cases", k)) for k, v in data["cases"].items()},  # type: ignore[misc]
            default=b.ref(data.get("default"), (*path, "default")),
        )

    def refs(self, node: Node) -> Iterable[Ref]:
        default = [node.part.default] if node.part.default is not None else []
        return default + list(node.part.cases.values())

    async def enter(self, d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
        async for out in say_first(d, node):
            yield out
        value = _value(d, node)
        target = node.part.cases.get(str(value).lower() if isinstance(value, bool) else str(value))
        target = target or node.part.default
        if target is None:
            raise StepError(f"switch value {value!r} matches no case and there is no `default`")
        d._go(target)


IF = If()
SWITCH = Switch()
