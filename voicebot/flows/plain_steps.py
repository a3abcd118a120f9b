"""The nodes that run without waiting for the caller: say, action, http, set, if/switch,
goto/call, return, transfer, hangup. A mixin of `FlowDialogue` (runner.py)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

from ..dialogue import BotOutput, Hangup, Note, Transfer
from . import http as http_node
from .model import Node, StepError
from .templates import TemplateError, eval_value

MAX_DEPTH = 16  # nested sub-flow calls
ACTION_TIMEOUT_MS = 10_000  # an action that hangs must not hold the caller in silence


class PlainSteps:
    async def _call_action(
        self, name: str, args: dict[str, Any], timeout_ms: int = ACTION_TIMEOUT_MS
    ) -> Any:
        fn = self.ctx.actions.get(name)
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

    def _eval(self, value: Any) -> Any:
        try:
            return eval_value(value, self._scope())
        except TemplateError as exc:
            raise StepError(str(exc)) from exc

    async def _enter_say(self, node: Node) -> AsyncIterator[BotOutput]:
        say = self._say(node, node.say)
        if say is not None:
            yield say
        if node.kind == "say":
            self._go(node.next)

    async def _enter_action(self, node: Node) -> AsyncIterator[BotOutput]:
        async for out in self._enter_say(node):
            yield out
        result = await self._call_action(
            node.action,  # type: ignore[arg-type]
            self._eval(node.args),
            node.timeout_ms or ACTION_TIMEOUT_MS,
        )
        if node.result:
            self.values[node.result] = result
            yield Note("vars", {"vars": {node.result: result}})
        self._go(node.next)

    async def _enter_http(self, node: Node) -> AsyncIterator[BotOutput]:
        async for out in self._enter_say(node):
            yield out
        try:
            answer = await http_node.request(node.http, self._eval)
        except http_node.HttpError as exc:
            raise StepError(str(exc)) from exc
        changed: dict[str, Any] = {}
        if node.result:
            changed[node.result] = answer
        for name, path in node.mapping.items():
            changed[name] = http_node.pick(answer, path)
        self.values.update(changed)
        yield Note("vars", {"vars": changed})
        self._go(node.next)

    async def _enter_set(self, node: Node) -> AsyncIterator[BotOutput]:
        async for out in self._enter_say(node):
            yield out
        changed = {name: self._eval(value) for name, value in node.assign.items()}
        self.values.update(changed)
        yield Note("vars", {"vars": changed})
        self._go(node.next)

    async def _enter_if(self, node: Node) -> AsyncIterator[BotOutput]:
        async for out in self._enter_say(node):
            yield out
        try:
            value = node.condition(self._scope())  # type: ignore[misc]
        except TemplateError as exc:
            raise StepError(str(exc)) from exc
        if node.kind == "if":
            self._go(node.then if value else node.otherwise)
            return
        target = node.cases.get(str(value).lower() if isinstance(value, bool) else str(value))
        target = target or node.default
        if target is None:
            raise StepError(f"switch value {value!r} matches no case and there is no `default`")
        self._go(target)

    async def _enter_goto(self, node: Node) -> AsyncIterator[BotOutput]:
        async for out in self._enter_say(node):
            yield out
        if node.kind == "call":
            if len(self.stack) >= MAX_DEPTH:
                raise StepError(f"sub-flows nested more than {MAX_DEPTH} deep")
            self.stack.append((node.next.flow, node.next.node))  # type: ignore[union-attr]
        self._go(node.target)

    async def _enter_return(self, node: Node) -> AsyncIterator[BotOutput]:
        async for out in self._enter_say(node):
            yield out
        if self.stack:
            self._next = self.stack.pop()
            return
        self.phase = "ended"
        yield Hangup("completed")

    async def _enter_transfer(self, node: Node) -> AsyncIterator[BotOutput]:
        async for out in self._enter_say(node):
            yield out
        target = self._render(node.transfer)  # type: ignore[arg-type]
        self.phase = "ended"
        yield Transfer(target, node.mode)  # type: ignore[arg-type]

    async def _enter_hangup(self, node: Node) -> AsyncIterator[BotOutput]:
        async for out in self._enter_say(node):
            yield out
        self.phase = "ended"
        yield Hangup(node.reason)
