"""The `listen` node and `anywhere:` branches: the intent classifier chooses among the branches'
intents, and the first matching branch wins. A mixin of `FlowDialogue` (runner.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from ..dialogue import BotOutput, IntentEvent, UserInput
from ..providers import IntentSpec, Message, ProviderError
from .model import Branch, Node, StepError
from .templates import TemplateError

log = logging.getLogger("voicebot.flows")


class ListenSteps:
    async def _enter_prompt_listen(self, node: Node) -> AsyncIterator[BotOutput]:
        say = self._say(node, node.say)
        if say is not None:
            yield say
        self.phase = "input"
        if node.kind == "llm":
            # the node's own opening words start its conversation: the LLM knows what it asked
            self.llm_messages = [Message("assistant", say.text)] if say is not None else []
        yield self._listen(node)

    async def _input_listen(self, node: Node, event: UserInput) -> AsyncIterator[BotOutput]:
        if event.kind == "noinput":
            async for out in self._escalate(node, "noinput"):
                yield out
            return
        flow = self._flow(node)
        async for out in self._classify(node, event, node.candidates):
            yield out
        for branches in (flow.anywhere, node.branches):
            async for out in self._branch(node, branches, event):
                yield out
            if self._next is not None:
                return
        async for out in self._escalate(node, "nomatch"):
            yield out

    async def _anywhere(self, node: Node, event: UserInput) -> AsyncIterator[BotOutput]:
        """The flow's `anywhere:` branches, tried at an ask node before its slot parsing."""
        flow = self._flow(node)
        if event.kind == "noinput" or not flow.anywhere:
            return
        async for out in self._classify(node, event, flow.anywhere_candidates):
            yield out
        async for out in self._branch(node, flow.anywhere, event):
            yield out

    async def _classify(
        self, node: Node, event: UserInput, candidates: tuple[IntentSpec, ...]
    ) -> AsyncIterator[BotOutput]:
        """Ask the intent classifier to choose among `candidates`; note and emit its answer."""
        self.last_input["intent"] = None
        if event.kind == "dtmf" or not candidates or self.ctx.intent is None or not event.text:
            return
        try:
            result = await self.ctx.intent.classify(event.text, candidates)
        except ProviderError as exc:
            log.warning("call %s: intent classifier failed: %s", self.ctx.call_id, exc)
            return
        if result.name is None:
            return
        self.last_input["intent"] = result.name
        self.last_input["confidence"] = result.confidence
        yield IntentEvent(result.name, result.confidence, dict(result.slots))
        for name, raw in result.slots.items():
            decl = self.flows.slot(node.flow, name)
            if decl is not None:
                value, ok = self.parse_slot(decl, str(raw), "")
                if ok:
                    yield self._fill(name, value)

    async def _branch(
        self, node: Node, branches: list[Branch], event: UserInput
    ) -> AsyncIterator[BotOutput]:
        """Take the first matching branch (sets the next node), filling a `slot:` it parses."""
        intent = self.last_input["intent"]
        digits = event.digits
        if digits and node.dtmf_terminator:
            digits = digits.split(node.dtmf_terminator, 1)[0]
        for branch in branches:
            matched = branch.always
            if not matched and intent is not None and intent in branch.intents:
                matched = True
                self._opening = event.text or None  # may answer the slots ahead
            if not matched and digits and digits in branch.dtmf:
                matched = True
            if not matched and branch.slot is not None and (event.text or digits):
                decl = self.flows.slot(node.flow, branch.slot)
                value, ok = self.parse_slot(decl, event.text, digits)  # type: ignore[arg-type]
                if ok:
                    yield self._fill(branch.slot, value)
                    matched = True
            if not matched and branch.when is not None:
                try:
                    matched = bool(branch.when(self._scope()))
                except TemplateError as exc:
                    raise StepError(str(exc)) from exc
            if matched:
                self.counters = {"noinput": 0, "nomatch": 0}
                self._go(branch.goto)
                return
