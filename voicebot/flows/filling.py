"""Slots: parsing what the caller said into a slot's value and keeping it. A mixin of
`FlowDialogue` (runner.py), which owns the call's state; the ask, listen and llm nodes fill slots
through it (an answer, a branch's `slot:`, an intent's or a function's arguments)."""

from __future__ import annotations

from typing import Any

from ..dialogue import Note
from .model import SlotDecl, StepError
from .slottypes import BUILTIN, COMPOSITE, Partial, violation
from .templates import TemplateError


class SlotFilling:
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

    def partial_value(self, decl: SlotDecl) -> Partial | None:
        """Half a composite answer kept from earlier turns ("saturday" without a time)."""
        composite = COMPOSITE.get(decl.type)
        parts = self.partial.get(decl.name)
        if composite is None or not parts:
            return None
        value = composite[1](parts, self._clock(self.tz))
        return value if isinstance(value, Partial) else None

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
