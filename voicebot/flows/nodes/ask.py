"""`ask:`: filling slots, one question at a time, from answers, half answers and the sentence
that led here; then an optional `confirm:` yes/no."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...dialogue import BotOutput, Note, UserInput
from ..model import Flow, Node, SlotDecl
from ..opening import plan
from ..slottypes import BUILTIN, Partial
from ..source import Path_
from ..spec import INPUT, REF, TEXT, b, lst, oneof, s
from ..templates import Template, template
from .base import NodeKind
from .listen import anywhere

if TYPE_CHECKING:
    from ..builder import Builder
    from ..runner import FlowDialogue
    from ..validate import Validator

_FOLLOW_UP = {"time": template("What time on {{ value | spoken_date }}?")}


@dataclass
class Slots:
    slots: tuple[str, ...]
    confirm: Template | None = None
    reask: bool = False


def next_slot(d: FlowDialogue, node: Node) -> SlotDecl | None:
    """The first of the node's slots still empty."""
    for name in node.part.slots:
        if name not in d.values:
            return d.flows.slot(node.flow, name)
    return None


class Ask(NodeKind):
    name = "ask"
    fields = {
        "ask": oneof(s(), lst(s()), doc="Slot(s) to fill, in order; filled ones are skipped"),
        "confirm": TEXT,
        "reask": b("Ask even if the slots are already filled (default: false)"),
        "next": REF,
        **INPUT,
    }
    needs_next = True
    uses_anywhere = True
    uses_defaults = True

    def build(self, b: Builder, node: Node, data: dict[str, Any], path: Path_) -> None:
        slots = data["ask"]
        node.part = Slots(
            (slots,) if isinstance(slots, str) else tuple(slots),
            b.template(data.get("confirm"), (*path, "confirm")),
            bool(data.get("reask", False)),
        )

    def check(self, v: Validator, flow: Flow, node: Node) -> None:
        who = f"node '{node.name}'"
        slots = node.part.slots
        for slot in slots:
            v.declared_slot(flow, who, slot, node.where)
            decl = v.fs.slot(flow.name, slot)
            alone = len(slots) == 1 and node.say is not None
            if decl is not None and decl.prompt is None and not alone:
                v.problem(
                    node.where,
                    f"{who} asks for slot '{slot}' without a question: give "
                    f"the slot a `prompt:`" + (" or the node a `say:`" if len(slots) == 1 else ""),
                )

    # ------------------------------------------------------------------- what it says

    def prompt(self, d: FlowDialogue, node: Node) -> tuple[Template | None, dict[str, Any]]:
        if d.phase == "confirm":
            return node.part.confirm, {}
        return question(d, node)

    def help(self, d: FlowDialogue, node: Node) -> Template | None:
        decl = next_slot(d, node)
        return node.help or (decl.help if decl is not None else None)

    def dtmf(self, d: FlowDialogue, node: Node) -> tuple[int, str | None, int]:
        if d.phase != "input":
            return 1, None, 3000
        return (*dtmf_rules(next_slot(d, node)), 3000)

    # ------------------------------------------------------------------------ running

    async def enter(self, d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
        if node.part.reask and any(name in d.values for name in node.part.slots):
            _clear(d, node)
        if d._opening is not None:
            async for note in _prefill(d, node, d._opening):
                yield note
        if len(node.part.slots) > 1 or next_slot(d, node) is None:
            say = d._say(node, node.say)  # an intro before the slot prompts
            if say is not None:
                yield say
        async for out in _ask_next(d, node, first=True):
            yield out

    async def on_input(
        self, d: FlowDialogue, node: Node, event: UserInput
    ) -> AsyncIterator[BotOutput]:
        if event.kind == "noinput":
            async for out in d._escalate(node, "noinput"):
                yield out
            return
        async for out in anywhere(d, node, event):
            yield out
        if d._next is not None:
            return
        if d.phase == "confirm":
            async for out in _confirm(d, node, event):
                yield out
            return
        decl = next_slot(d, node)
        if decl is None:  # every slot was filled meanwhile
            async for out in _ask_next(d, node):
                yield out
            return
        value, ok = d.parse_answer(decl, event.text, event.digits)
        if isinstance(value, Partial):  # kept; ask for the rest
            d.counters = {"noinput": 0, "nomatch": 0}
            async for out in _ask_next(d, node):
                yield out
            return
        if not ok:
            invalid = decl.invalid if value is not None else None
            async for out in d._escalate(node, "nomatch", invalid):
                yield out
            return
        d.counters = {"noinput": 0, "nomatch": 0}
        yield d._fill(decl.name, value)
        async for out in _ask_next(d, node):
            yield out


def question(d: FlowDialogue, node: Node) -> tuple[Template | None, dict[str, Any]]:
    """The question for the node's next empty slot, and what its template needs: half an
    answer ("saturday") gets the slot's follow-up ("What time on Saturday?")."""
    decl = next_slot(d, node)
    if decl is None:
        return node.say, {}
    partial = d.partial_value(decl)
    if partial is not None:
        return decl.follow_up or _FOLLOW_UP[partial.missing], {"value": partial.given}
    if len(node.part.slots) == 1 and node.say is not None:
        return node.say, {}
    return decl.prompt or node.say, {}


def dtmf_rules(decl: SlotDecl | None) -> tuple[int, str | None]:
    """How many keys answer this slot, and which key ends the entry early."""
    if decl is None:
        return 1, None
    if decl.type == "digits":
        return decl.length or decl.max_length or 20, decl.terminator or "#"
    if decl.type in ("number", "integer"):
        size = len(str(int(abs(decl.max)))) if decl.max is not None else 6
        return size, "#"
    if decl.type == "phone":
        return 15, "#"
    if decl.type == "time":
        return 4, None
    return 1, None


async def _ask_next(d: FlowDialogue, node: Node, first: bool = False) -> AsyncIterator[BotOutput]:
    decl = next_slot(d, node)
    if decl is not None:
        d.phase = "input"
        prompt, extra = question(d, node)
        if not (first and len(node.part.slots) > 1 and prompt is node.say):
            say = d._say(node, prompt, **extra)
            if say is not None:
                yield say
        yield d._listen(node)
        return
    if node.part.confirm is not None and d.phase != "confirmed":
        d.phase = "confirm"
        say = d._say(node, node.part.confirm)
        if say is not None:
            yield say
        yield d._listen(node)
        return
    d._go(node.next)


async def _confirm(d: FlowDialogue, node: Node, event: UserInput) -> AsyncIterator[BotOutput]:
    yes = BUILTIN["yesno"](event.text, event.digits, None, None)  # type: ignore[arg-type]
    if yes is None:
        async for out in d._escalate(node, "nomatch"):
            yield out
        return
    d.counters = {"noinput": 0, "nomatch": 0}
    if yes:
        d.phase = "confirmed"
        d._go(node.next)
        return
    _clear(d, node)
    yield Note("slots", {"slots": d._slots()})
    d.phase = "input"
    async for out in _ask_next(d, node):
        yield out


def _clear(d: FlowDialogue, node: Node) -> None:
    for name in node.part.slots:
        d.values.pop(name, None)
        d.partial.pop(name, None)


async def _prefill(d: FlowDialogue, node: Node, text: str) -> AsyncIterator[Note]:
    """Fill the node's empty slots from the words that chose the intent leading here."""
    d._opening = None
    empty = [d.flows.slot(node.flow, n) for n in node.part.slots if n not in d.values]
    decls = [x for x in empty if x is not None]
    planned = await asyncio.to_thread(plan, text, decls, d._clock(d.tz))
    for decl, words in sorted(planned, key=lambda p: decls.index(p[0])):  # the node's order
        value, ok = d.parse_answer(decl, words, "")  # a day without a time is kept
        if ok:
            yield d._fill(decl.name, value)


ASK = Ask()
