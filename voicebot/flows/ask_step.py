"""The `ask` node: filling slots, one question at a time, from answers, half answers and the
sentence that led here. A mixin of `FlowDialogue` (runner.py), which owns the call's state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ..dialogue import BotOutput, Note, UserInput
from .model import Node, SlotDecl, StepError
from .opening import plan
from .slottypes import BUILTIN, COMPOSITE, Partial, violation
from .templates import Template, TemplateError, template

_FOLLOW_UP = {"time": template("What time on {{ value | spoken_date }}?")}


class AskSteps:
    def _slot(self, node: Node) -> SlotDecl | None:
        for name in node.slots:
            if name not in self.values:
                return self.flows.slot(node.flow, name)
        return None

    def _prompt(self, node: Node) -> tuple[Template | None, dict[str, Any]]:
        """The question for the node's next empty slot, and what its template needs: half an
        answer ("saturday") gets the slot's follow-up ("What time on Saturday?")."""
        decl = self._slot(node)
        if decl is None:
            return node.say, {}
        partial = self._partial(decl)
        if partial is not None:
            return decl.follow_up or _FOLLOW_UP[partial.missing], {"value": partial.given}
        if len(node.slots) == 1 and node.say is not None:
            return node.say, {}
        return decl.prompt or node.say, {}

    def _partial(self, decl: SlotDecl) -> Partial | None:
        composite = COMPOSITE.get(decl.type)
        parts = self.partial.get(decl.name)
        if composite is None or not parts:
            return None
        value = composite[1](parts, self._clock(self.tz))
        return value if isinstance(value, Partial) else None

    async def _enter_ask(self, node: Node) -> AsyncIterator[BotOutput]:
        if node.reask and any(name in self.values for name in node.slots):
            self._clear(node)
        if self._opening is not None:
            async for note in self._prefill(node, self._opening):
                yield note
        if len(node.slots) > 1 or self._slot(node) is None:
            say = self._say(node, node.say)  # an intro before the slot prompts
            if say is not None:
                yield say
        async for out in self._ask_next(node, first=True):
            yield out

    async def _ask_next(self, node: Node, first: bool = False) -> AsyncIterator[BotOutput]:
        decl = self._slot(node)
        if decl is not None:
            self.phase = "input"
            prompt, extra = self._prompt(node)
            if not (first and len(node.slots) > 1 and prompt is node.say):
                say = self._say(node, prompt, **extra)
                if say is not None:
                    yield say
            yield self._listen(node)
            return
        if node.confirm is not None and self.phase != "confirmed":
            self.phase = "confirm"
            say = self._say(node, node.confirm)
            if say is not None:
                yield say
            yield self._listen(node)
            return
        self._go(node.next)

    def parse_slot(self, decl: SlotDecl, text: str, digits: str) -> tuple[Any, bool]:
        """(value, ok): ok is False when the input does not fit the slot's type or rules."""
        now = self._clock(self.tz)
        parser = BUILTIN.get(decl.type)
        try:
            if parser is not None:
                value = parser(text, digits, decl, now)
            else:
                plugin = self.ctx.slot_types.get(decl.type)
                if plugin is None:
                    raise StepError(f"slot type '{decl.type}' is not registered by any plugin")
                value = plugin(text or digits)
        except (ValueError, TypeError):
            value = None
        return value, self._valid(decl, value)

    def parse_answer(self, decl: SlotDecl, text: str, digits: str) -> tuple[Any, bool]:
        """`parse_slot` for an answer to the slot's own question. A composite type (datetime)
        adds the answer's parts to those kept from earlier turns, so "saturday" then "1 pm" is
        Saturday at 1 pm, and correcting only the time keeps the day. The value is a `Partial`
        (ok False) while a part is missing."""
        composite = COMPOSITE.get(decl.type)
        if composite is None:
            return self.parse_slot(decl, text, digits)
        split, join = composite
        now = self._clock(self.tz)
        found = split(text, digits, decl, now)
        if not found:
            return None, False
        parts = {**self.partial.get(decl.name, {}), **found}
        self.partial[decl.name] = parts
        value = join(parts, now)
        return value, not isinstance(value, Partial) and self._valid(decl, value)

    def _valid(self, decl: SlotDecl, value: Any) -> bool:
        if value is None or violation(decl, value) is not None:
            return False
        if decl.check is not None:
            try:
                if not decl.check(self._scope(value=value)):
                    return False
            except TemplateError as exc:
                raise StepError(str(exc)) from exc
        return True

    def _slots(self) -> dict[str, Any]:
        return {k: v for k, v in self.values.items() if self.flows.slot(self.flow, k) is not None}

    def _fill(self, name: str, value: Any) -> Note:
        self.values[name] = value
        self.partial.pop(name, None)
        return Note("slots", {"slots": self._slots()})

    def _clear(self, node: Node) -> None:
        for name in node.slots:
            self.values.pop(name, None)
            self.partial.pop(name, None)

    async def _prefill(self, node: Node, text: str) -> AsyncIterator[Note]:
        """Fill the node's empty slots from the words that chose the intent leading here."""
        self._opening = None
        empty = [self.flows.slot(node.flow, n) for n in node.slots if n not in self.values]
        decls = [d for d in empty if d is not None]
        planned = await asyncio.to_thread(plan, text, decls, self._clock(self.tz))
        for decl, words in sorted(planned, key=lambda p: decls.index(p[0])):  # the node's order
            value, ok = self.parse_answer(decl, words, "")  # a day without a time is kept
            if ok:
                yield self._fill(decl.name, value)

    async def _input_ask(self, node: Node, event: UserInput) -> AsyncIterator[BotOutput]:
        if event.kind == "noinput":
            async for out in self._escalate(node, "noinput"):
                yield out
            return
        async for out in self._anywhere(node, event):
            yield out
        if self._next is not None:
            return
        if self.phase == "confirm":
            yes = BUILTIN["yesno"](event.text, event.digits, None, None)  # type: ignore[arg-type]
            if yes is None:
                async for out in self._escalate(node, "nomatch"):
                    yield out
                return
            self.counters = {"noinput": 0, "nomatch": 0}
            if yes:
                self.phase = "confirmed"
                self._go(node.next)
                return
            self._clear(node)
            yield Note("slots", {"slots": self._slots()})
            self.phase = "input"
            async for out in self._ask_next(node):
                yield out
            return
        decl = self._slot(node)
        if decl is None:  # every slot was filled meanwhile
            async for out in self._ask_next(node):
                yield out
            return
        value, ok = self.parse_answer(decl, event.text, event.digits)
        if isinstance(value, Partial):  # kept; ask for the rest
            self.counters = {"noinput": 0, "nomatch": 0}
            async for out in self._ask_next(node):
                yield out
            return
        if not ok:
            invalid = decl.invalid if value is not None else None
            async for out in self._escalate(node, "nomatch", invalid):
                yield out
            return
        self.counters = {"noinput": 0, "nomatch": 0}
        yield self._fill(decl.name, value)
        async for out in self._ask_next(node):
            yield out
