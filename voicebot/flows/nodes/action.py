"""`action:`: call a function a plugin registered (`register_actions`), keep its result, go on."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...dialogue import BotOutput, Note
from ..model import Flow, Node, StepError
from ..source import Path_
from ..spec import ERRORS, NAME, REF, anything, i, mp, s
from .base import NodeKind, say_first

if TYPE_CHECKING:
    from ..builder import Builder
    from ..runner import FlowDialogue
    from ..validate import Validator

ACTION_TIMEOUT_MS = 10_000  # an action that hangs must not hold the caller in silence


async def call_action(
    d: FlowDialogue, name: str, args: dict[str, Any], timeout_ms: int = ACTION_TIMEOUT_MS
) -> Any:
    """Run a registered action; any way it fails is this call's `StepError`, never a crash."""
    fn = d.ctx.actions.get(name)
    if fn is None:
        raise StepError(f"action '{name}' is not registered by any plugin")
    try:
        result = fn(**args)
        if inspect.isawaitable(result):
            async with asyncio.timeout(timeout_ms / 1000):
                result = await result
    except TimeoutError as exc:
        raise StepError(f"action '{name}' timed out after {timeout_ms} ms") from exc
    except Exception as exc:  # the plugin's failure is this call's problem only
        raise StepError(f"action '{name}' failed: {type(exc).__name__}: {exc}") from exc
    return result


@dataclass
class Call:
    action: str
    args: dict[str, Any] = field(default_factory=dict)
    result: str | None = None


class Action(NodeKind):
    name = "action"
    fields = {
        "action": s("A registered action, e.g. bookings.create"),
        "args": mp(anything("Strings are templates; `{{ x }}` alone keeps x's type")),
        "result": s("Variable receiving the result", pattern=NAME),
        "timeout_ms": i("How long an async action may take (default 10000)", minimum=1),
        "next": REF,
        **ERRORS,
    }
    needs_next = True
    uses_defaults = True

    def build(self, b: Builder, node: Node, data: dict[str, Any], path: Path_) -> None:
        args = b.values(data.get("args") or {}, (*path, "args"))
        node.part = Call(data["action"], args, data.get("result"))

    def assigns(self, node: Node) -> Iterable[str]:
        return [node.part.result] if node.part.result else []

    def check(self, v: Validator, flow: Flow, node: Node) -> None:
        v.action(node.part.action, node.where, f"node '{node.name}'")

    async def enter(self, d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
        async for out in say_first(d, node):
            yield out
        call: Call = node.part
        result = await call_action(
            d, call.action, d._eval(call.args), node.timeout_ms or ACTION_TIMEOUT_MS
        )
        if call.result:
            d.values[call.result] = result
            yield Note("vars", {"vars": {call.result: result}})
        d._go(node.next)


ACTION = Action()
