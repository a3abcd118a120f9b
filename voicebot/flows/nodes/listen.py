"""`listen:` and the flow's `anywhere:` branches: the intent classifier chooses among the
branches' intents, and the first matching branch wins. `classify` and `take_branch` serve the
ask node's `anywhere:` too."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...dialogue import BotOutput, IntentEvent, UserInput
from ...providers import IntentSpec, ProviderError
from ..model import Branch, Flow, Node, Ref, StepError
from ..source import Path_
from ..spec import BRANCH, INPUT, i, lst, obj, s
from ..templates import TemplateError
from .base import NodeKind, say_first

if TYPE_CHECKING:
    from ..builder import Builder
    from ..runner import FlowDialogue
    from ..validate import Validator

log = logging.getLogger("voicebot.flows")


@dataclass
class Branches:
    branches: list[Branch]
    dtmf_max_digits: int | None = None  # default: the longest key sequence of the branches
    dtmf_terminator: str | None = None
    dtmf_timeout_ms: int | None = None
    candidates: tuple[IntentSpec, ...] = field(default=())  # set by `check`


class Listen(NodeKind):
    name = "listen"
    fields = {
        "listen": lst(BRANCH, "Branches, tried in order"),
        "dtmf": obj(
            "How key presses are collected (default: from the branches)",
            max_digits=i(minimum=1),
            terminator=s(),
            timeout_ms=i(minimum=0),
        ),
        **INPUT,
    }
    uses_anywhere = True
    uses_defaults = True

    def build(self, b: Builder, node: Node, data: dict[str, Any], path: Path_) -> None:
        rules = data.get("dtmf") or {}
        node.part = Branches(
            b.branches(data["listen"], (*path, "listen")),
            rules.get("max_digits"),
            rules.get("terminator"),
            rules.get("timeout_ms"),
        )

    def refs(self, node: Node) -> Iterable[Ref]:
        return [branch.goto for branch in node.part.branches]

    def check(self, v: Validator, flow: Flow, node: Node) -> None:
        part: Branches = node.part
        who = f"node '{node.name}'"
        if not part.branches:
            v.problem(node.where, f"{who} has no way out: `listen:` needs at least one branch")
        for branch in part.branches:
            v.branch(flow, branch, who)
        # the intents this node passes to the classifier: its own, then `anywhere`'s not yet in
        part.candidates = v.candidates(flow, part.branches + flow.anywhere)
        if part.dtmf_max_digits is None:
            keys = [k for b in part.branches + flow.anywhere for k in b.dtmf]
            part.dtmf_max_digits = max(map(len, keys), default=1)

    def dtmf(self, d: FlowDialogue, node: Node) -> tuple[int, str | None, int]:
        part: Branches = node.part
        return part.dtmf_max_digits or 1, part.dtmf_terminator, part.dtmf_timeout_ms or 3000

    async def enter(self, d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
        async for out in say_first(d, node):
            yield out
        d.phase = "input"
        yield d._listen(node)

    async def on_input(
        self, d: FlowDialogue, node: Node, event: UserInput
    ) -> AsyncIterator[BotOutput]:
        if event.kind == "noinput":
            async for out in d._escalate(node, "noinput"):
                yield out
            return
        part: Branches = node.part
        flow = d._flow(node)
        async for out in classify(d, node, event, part.candidates):
            yield out
        for branches in (flow.anywhere, part.branches):
            async for out in take_branch(d, node, branches, event, part.dtmf_terminator):
                yield out
            if d._next is not None:
                return
        async for out in d._escalate(node, "nomatch"):
            yield out


async def anywhere(d: FlowDialogue, node: Node, event: UserInput) -> AsyncIterator[BotOutput]:
    """The flow's `anywhere:` branches, tried at an ask node before its slot parsing."""
    flow = d._flow(node)
    if event.kind == "noinput" or not flow.anywhere:
        return
    async for out in classify(d, node, event, flow.anywhere_candidates):
        yield out
    async for out in take_branch(d, node, flow.anywhere, event, None):
        yield out


async def classify(
    d: FlowDialogue, node: Node, event: UserInput, candidates: tuple[IntentSpec, ...]
) -> AsyncIterator[BotOutput]:
    """Ask the intent classifier to choose among `candidates`; note and emit its answer."""
    d.last_input["intent"] = None
    if event.kind == "dtmf" or not candidates or d.ctx.intent is None or not event.text:
        return
    try:
        result = await d.ctx.intent.classify(event.text, candidates)
    except ProviderError as exc:
        log.warning("call %s: intent classifier failed: %s", d.ctx.call_id, exc)
        return
    if result.name is None:
        return
    d.last_input["intent"] = result.name
    d.last_input["confidence"] = result.confidence
    yield IntentEvent(result.name, result.confidence, dict(result.slots))
    for name, raw in result.slots.items():
        decl = d.flows.slot(node.flow, name)
        if decl is not None:
            value, ok = d.parse_slot(decl, str(raw), "")
            if ok:
                yield d._fill(name, value)


async def take_branch(
    d: FlowDialogue,
    node: Node,
    branches: list[Branch],
    event: UserInput,
    terminator: str | None,
) -> AsyncIterator[BotOutput]:
    """Take the first matching branch (sets the next node), filling a `slot:` it parses."""
    intent = d.last_input["intent"]
    digits = event.digits
    if digits and terminator:
        digits = digits.split(terminator, 1)[0]
    for branch in branches:
        matched = branch.always
        if not matched and intent is not None and intent in branch.intents:
            matched = True
            d._opening = event.text or None  # may answer the slots ahead
        if not matched and digits and digits in branch.dtmf:
            matched = True
        if not matched and branch.slot is not None and (event.text or digits):
            decl = d.flows.slot(node.flow, branch.slot)
            value, ok = d.parse_slot(decl, event.text, digits)  # type: ignore[arg-type]
            if ok:
                yield d._fill(branch.slot, value)
                matched = True
        if not matched and branch.when is not None:
            try:
                matched = bool(branch.when(d._scope()))
            except TemplateError as exc:
                raise StepError(str(exc)) from exc
        if matched:
            d.counters = {"noinput": 0, "nomatch": 0}
            d._go(branch.goto)
            return


LISTEN = Listen()
