"""The `llm` node: a free conversation with declared functions, kept within a token budget.
A mixin of `FlowDialogue` (runner.py), which owns the call's state."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ..dialogue import BotOutput, Note, Say, UserInput
from ..dialogue.context_budget import fit_to_budget
from ..providers import Message, ProviderError, ToolCall, ToolSpec, Usage
from .model import Node, StepError
from .slottypes import violation

LLM_MEMORY = 40  # messages of an llm node's conversation kept


class LLMSteps:
    def _llm_system(self, node: Node) -> str:
        """The node's prompt, plus what the call already knows: an LLM step should not ask for a
        name the caller gave two nodes ago."""
        prompt = self._render(node.system)  # type: ignore[arg-type]
        known = {k: v for k, v in self.values.items() if not k.startswith("_") and v is not None}
        if not known:
            return prompt
        facts = json.dumps(known, ensure_ascii=False, default=str)
        return f"{prompt}\n\nKnown about this call (slots and variables): {facts}"

    def _history_before_node(self, node: Node) -> list[Message]:
        """The call's conversation before this llm node, as chat messages."""
        out: list[Message] = []
        for entry in self.history:
            if entry.get("node") == node.key:
                continue  # this node's own turns travel in llm_messages
            role = "user" if entry.get("role") == "user" else "assistant"
            if entry.get("text"):
                out.append(Message(role, entry["text"]))
        return out

    async def _input_llm(self, node: Node, event: UserInput) -> AsyncIterator[BotOutput]:
        if event.kind == "noinput":
            async for out in self._escalate(node, "noinput"):
                yield out
            return
        llm = self.ctx.llm
        if llm is None:
            raise StepError(
                f"node '{node.name}' is an llm node but no LLM provider is "
                "configured (providers.llm in config.yaml)"
            )
        text = event.text or f"(the caller pressed {event.digits})"
        self.llm_messages.append(Message("user", text))
        tools = [_tool_spec(f) for f in node.functions.values()]
        earlier = self._history_before_node(node)
        for _ in range(node.max_rounds):
            system = Message("system", self._llm_system(node))
            messages = fit_to_budget(system, earlier, self.llm_messages, node.context_tokens)
            reply: list[str] = []
            calls: list[ToolCall] = []
            try:
                async for piece in llm.stream(messages, tools):
                    if isinstance(piece, str):
                        if piece:
                            reply.append(piece)
                            yield Say(piece, barge_in=self._barge_in(node), delta=True)
                    elif isinstance(piece, ToolCall):
                        calls.append(piece)
                    elif isinstance(piece, Usage):
                        self.ctx.report_usage(piece)
            except ProviderError as exc:
                raise StepError(f"LLM failed: {exc}") from exc
            if reply:
                self._said.append("".join(reply))
            self.llm_messages.append(Message("assistant", "".join(reply), tool_calls=calls))
            del self.llm_messages[:-LLM_MEMORY]
            if not calls:
                break
            for call in calls:
                function = node.functions.get(call.name)
                if function is None:
                    self.llm_messages.append(
                        Message(
                            "tool",
                            f"error: no function {call.name}",
                            tool_call_id=call.id,
                            name=call.name,
                        )
                    )
                    continue
                for out in self._fill_from_args(node, call.arguments):
                    yield out
                yield Note("function", {"name": call.name, "arguments": call.arguments})
                if function.goto is not None:
                    self._go(function.goto)
                    return
                result = await self._call_action(function.action, call.arguments)  # type: ignore[arg-type]
                self.llm_messages.append(
                    Message(
                        "tool",
                        json.dumps(result, default=str),
                        tool_call_id=call.id,
                        name=call.name,
                    )
                )
        yield self._listen(node)

    def _fill_from_args(self, node: Node, arguments: dict[str, Any]) -> list[Note]:
        notes = []
        for name, raw in arguments.items():
            decl = self.flows.slot(node.flow, name)
            if decl is None:
                continue
            value, ok = self.parse_slot(decl, str(raw), "")
            if not ok and isinstance(raw, int | float | bool) and violation(decl, raw) is None:
                value, ok = raw, True
            if ok:
                notes.append(self._fill(name, value))
        return notes


def _tool_spec(f: Any) -> ToolSpec:
    props = {name: dict(p) for name, p in f.parameters.items()}
    schema = {"type": "object", "properties": props, "required": list(props)}
    return ToolSpec(f.name, f.description, schema)
