"""`llm:`: a free conversation with declared functions, kept within a token budget."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...dialogue import BotOutput, Note, Say, UserInput
from ...dialogue.context_budget import fit_to_budget
from ...providers import Message, ProviderError, ToolCall, ToolSpec, Usage
from ..model import Flow, Node, Ref, StepError
from ..slottypes import violation
from ..source import Path_
from ..spec import ERRORS, ESCALATION, REF, TEXT, TIMEOUT, anything, i, lst, mp, obj, oneof, s
from ..templates import Template
from .action import call_action
from .base import NodeKind, say_first

if TYPE_CHECKING:
    from ..builder import Builder
    from ..runner import FlowDialogue
    from ..validate import Validator

LLM_MEMORY = 40  # messages of an llm node's conversation kept

FUNCTION = obj(
    "A function the LLM may call",
    required=("description",),
    description=s(),
    parameters=mp(
        oneof(
            s("A JSON type: string, integer, number, boolean"),
            obj("JSON Schema of one parameter", type=s(), description=s(), enum=lst(anything())),
        ),
        "Parameters; one named like a slot fills that slot",
        label="parameter",
    ),
    goto=REF,
    action=s("A registered action to run; its result goes back to the LLM"),
)


@dataclass
class Function:
    name: str
    description: str
    parameters: dict[str, dict[str, Any]]
    goto: Ref | None = None
    action: str | None = None


@dataclass
class Conversation:
    system: Template | None
    functions: dict[str, Function] = field(default_factory=dict)
    max_rounds: int = 4
    context_tokens: int = 3000


class LLM(NodeKind):
    name = "llm"
    fields = {
        "llm": obj(
            "Free conversation",
            required=("system",),
            system=TEXT,
            functions=mp(FUNCTION, label="function"),
            max_rounds=i("Tool-call rounds per turn (default 4)", minimum=1),
            context_tokens=i(
                "Token budget of what is sent: system prompt, call so far, this conversation;"
                " the oldest turns are dropped first (default 3000)",
                minimum=200,
            ),
        ),
        "noinput": ESCALATION,
        "timeout_ms": TIMEOUT,
        **ERRORS,
    }
    uses_defaults = True

    def build(self, b: Builder, node: Node, data: dict[str, Any], path: Path_) -> None:
        llm = data["llm"]
        part = node.part = Conversation(
            b.template(llm["system"], (*path, "llm", "system")),
            max_rounds=llm.get("max_rounds", 4),
            context_tokens=llm.get("context_tokens", 3000),
        )
        for fname, f in (llm.get("functions") or {}).items():
            fpath = (*path, "llm", "functions", fname)
            params = {
                p: ({"type": v} if isinstance(v, str) else dict(v))
                for p, v in (f.get("parameters") or {}).items()
            }
            goto = b.ref(f.get("goto"), (*fpath, "goto"))
            part.functions[fname] = Function(fname, f["description"], params, goto, f.get("action"))
            if f.get("goto") is None and f.get("action") is None:
                b.src.problem(
                    fpath, f"function '{fname}' needs `goto:` (a transition) or `action:`"
                )

    def refs(self, node: Node) -> Iterable[Ref]:
        return [f.goto for f in node.part.functions.values() if f.goto is not None]

    def check(self, v: Validator, flow: Flow, node: Node) -> None:
        for f in node.part.functions.values():
            if f.action is not None:
                v.action(f.action, node.where, f"function '{f.name}' of node '{node.name}'")

    async def enter(self, d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
        said = None
        async for out in say_first(d, node):
            said = out
            yield out
        d.phase = "input"
        # the node's own opening words start its conversation: the LLM knows what it asked
        d.llm_messages = [Message("assistant", said.text)] if isinstance(said, Say) else []
        yield d._listen(node)

    async def on_input(
        self, d: FlowDialogue, node: Node, event: UserInput
    ) -> AsyncIterator[BotOutput]:
        if event.kind == "noinput":
            async for out in d._escalate(node, "noinput"):
                yield out
            return
        llm = d.ctx.llm
        if llm is None:
            raise StepError(
                f"node '{node.name}' is an llm node but no LLM provider is "
                "configured (providers.llm in config.yaml)"
            )
        part: Conversation = node.part
        text = event.text or f"(the caller pressed {event.digits})"
        d.llm_messages.append(Message("user", text))
        tools = [_tool_spec(f) for f in part.functions.values()]
        earlier = _history_before_node(d, node)
        for _ in range(part.max_rounds):
            system = Message("system", _system(d, node))
            messages = fit_to_budget(system, earlier, d.llm_messages, part.context_tokens)
            reply: list[str] = []
            calls: list[ToolCall] = []
            try:
                async for piece in llm.stream(messages, tools):
                    if isinstance(piece, str):
                        if piece:
                            reply.append(piece)
                            yield Say(piece, barge_in=d._barge_in(node), delta=True)
                    elif isinstance(piece, ToolCall):
                        calls.append(piece)
                    elif isinstance(piece, Usage):
                        d.ctx.report_usage(piece)
            except ProviderError as exc:
                raise StepError(f"LLM failed: {exc}") from exc
            if reply:
                d._said.append("".join(reply))
            d.llm_messages.append(Message("assistant", "".join(reply), tool_calls=calls))
            del d.llm_messages[:-LLM_MEMORY]
            if not calls:
                break
            for call in calls:
                function = part.functions.get(call.name)
                if function is None:
                    d.llm_messages.append(
                        Message(
                            "tool",
                            f"error: no function {call.name}",
                            tool_call_id=call.id,
                            name=call.name,
                        )
                    )
                    continue
                for out in _fill_from_args(d, node, call.arguments):
                    yield out
                yield Note("function", {"name": call.name, "arguments": call.arguments})
                if function.goto is not None:
                    d._go(function.goto)
                    return
                result = await call_action(d, function.action, call.arguments)  # type: ignore[arg-type]
                d.llm_messages.append(
                    Message(
                        "tool",
                        json.dumps(result, default=str),
                        tool_call_id=call.id,
                        name=call.name,
                    )
                )
        yield d._listen(node)


def _system(d: FlowDialogue, node: Node) -> str:
    """The node's prompt, plus what the call already knows: an LLM step should not ask for a
    name the caller gave two nodes ago."""
    prompt = d._render(node.part.system)
    known = {k: v for k, v in d.values.items() if not k.startswith("_") and v is not None}
    if not known:
        return prompt
    facts = json.dumps(known, ensure_ascii=False, default=str)
    return f"{prompt}\n\nKnown about this call (slots and variables): {facts}"


def _history_before_node(d: FlowDialogue, node: Node) -> list[Message]:
    """The call's conversation before this llm node, as chat messages."""
    out: list[Message] = []
    for entry in d.history:
        if entry.get("node") == node.key:
            continue  # this node's own turns travel in llm_messages
        role = "user" if entry.get("role") == "user" else "assistant"
        if entry.get("text"):
            out.append(Message(role, entry["text"]))
    return out


def _fill_from_args(d: FlowDialogue, node: Node, arguments: dict[str, Any]) -> list[Note]:
    notes = []
    for name, raw in arguments.items():
        decl = d.flows.slot(node.flow, name)
        if decl is None:
            continue
        value, ok = d.parse_slot(decl, str(raw), "")
        if not ok and isinstance(raw, int | float | bool) and violation(decl, raw) is None:
            value, ok = raw, True
        if ok:
            notes.append(d._fill(name, value))
    return notes


def _tool_spec(f: Function) -> ToolSpec:
    props = {name: dict(p) for name, p in f.parameters.items()}
    schema = {"type": "object", "properties": props, "required": list(props)}
    return ToolSpec(f.name, f.description, schema)


LLM_KIND = LLM()
