"""Checks across nodes and files: references, declarations, reachability, dead ends, templates.

Runs after loading, before any call, so a typo in a rarely visited branch is found by `voicebot
check` rather than by a caller. References are resolved here as a side effect (`Ref.flow`,
`Ref.node`), which is what lets the runner follow them without lookups by string.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..providers import IntentSpec
from .model import Branch, Flow, FlowSet, Node, Ref, SlotDecl
from .nodes import kind
from .slottypes import BUILTIN
from .spec import did_you_mean
from .templates import Expression, Template, TemplateError, value_names

BUILTIN_NAMES = frozenset({"call", "input", "now", "today", "help", "value"})
_SLOT_OPTIONS = {
    "min": {"number", "integer"},
    "max": {"number", "integer"},
    "length": {"digits"},
    "min_length": {"digits"},
    "max_length": {"digits"},
    "terminator": {"digits"},
    "values": {"enum"},
    "follow_up": {"datetime"},
}
_SAMPLES: dict[str, Any] = {
    "text": "text",
    "number": 1,
    "integer": 1,
    "yesno": True,
    "date": "2026-01-01",
    "time": "12:00",
    "datetime": "2026-01-01T12:00:00+00:00",
    "phone": "+15550100",
    "email": "a@example.com",
    "digits": "1234",
}


def validate(flowset: FlowSet, registry: Any = None) -> list[str]:
    v = Validator(flowset, registry)
    for flow in flowset.flows.values():
        v.flow(flow)
    if not v.broken_refs:  # with a broken reference, "never reached" would only be noise
        v.reachability()
    return v.problems


class Validator:
    """The checks; node kinds call `problem`, `branch`, `declared_slot`, `action` and
    `candidates` from their own `check`."""

    def __init__(self, flowset: FlowSet, registry: Any) -> None:
        self.fs = flowset
        self.registry = registry
        self.problems: list[str] = []
        self.broken_refs = False
        self.variables = self._assigned_names()

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    # ------------------------------------------------------------------------- references

    def resolve(self, ref: Ref, flow: Flow, who: str) -> bool:
        ok = self._resolve(ref, flow, who)
        self.broken_refs |= not ok
        return ok

    def _resolve(self, ref: Ref, flow: Flow, who: str) -> bool:
        raw = ref.raw
        if "." in raw:
            flow_name, _, node_name = raw.partition(".")
            target = self.fs.flows.get(flow_name)
            if target is None and flow_name in self.fs.broken:
                self._broken_flow(ref, who, flow_name)
                return False
            if target is None:
                self.problem(
                    ref.where,
                    f"{who} goes to '{raw}' but there is no flow "
                    f"'{flow_name}'{did_you_mean(flow_name, self.fs.flows)}",
                )
                return False
            if node_name not in target.nodes:
                self.problem(
                    ref.where,
                    f"{who} goes to '{raw}' but flow '{flow_name}' has no node "
                    f"'{node_name}'{did_you_mean(node_name, target.nodes)}",
                )
                return False
            ref.flow, ref.node = flow_name, node_name
            return True
        if raw in flow.nodes:
            ref.flow, ref.node = flow.name, raw
            return True
        target = self.fs.flows.get(raw)
        if target is not None and target.start in target.nodes:
            ref.flow, ref.node = raw, target.start
            return True
        if raw in self.fs.broken:
            self._broken_flow(ref, who, raw)
            return False
        choices = [*flow.nodes, *self.fs.flows]
        self.problem(
            ref.where, f"{who} goes to '{raw}' which does not exist{did_you_mean(raw, choices)}"
        )
        return False

    def _broken_flow(self, ref: Ref, who: str, name: str) -> None:
        self.problem(
            ref.where,
            f"{who} goes to '{ref.raw}', but the file of flow '{name}' failed to load "
            f"({self.fs.broken[name]}): fix the error reported there first",
        )

    # ------------------------------------------------------------------------------ flows

    def flow(self, flow: Flow) -> None:
        if flow.nodes and flow.start not in flow.nodes:
            self.problem(
                flow.where,
                f"flow '{flow.name}' starts at '{flow.start}' which is not "
                f"one of its nodes{did_you_mean(flow.start, flow.nodes)}",
            )
        for slot in flow.slots.values():
            self.slot(slot)
        d = flow.defaults
        for esc in d.noinput + d.nomatch:
            if esc.goto is not None:
                self.resolve(esc.goto, flow, f"the defaults of flow '{flow.name}'")
        if d.on_error is not None:
            self.resolve(d.on_error, flow, f"`on_error` of flow '{flow.name}'")
        who = f"`anywhere` of flow '{flow.name}'"
        for branch in flow.anywhere:
            self.resolve(branch.goto, flow, who)
            self.branch(flow, branch, who)
            if branch.always:
                self.problem(
                    branch.where,
                    f"a branch of {who} needs a condition (intent, dtmf, "
                    "slot or when): without one it would catch every answer",
                )
        flow.anywhere_candidates = self.candidates(flow, flow.anywhere)
        for node in flow.nodes.values():
            if node.kind != "invalid":
                self.node(flow, node)
        self.templates(flow)
        self.loops(flow)

    def slot(self, slot: SlotDecl) -> None:
        known = set(BUILTIN)
        if self.registry is not None:
            known |= set(self.registry.slot_types)
        if slot.type not in known:
            hint = did_you_mean(slot.type, known)
            if self.registry is not None or hint:
                self.problem(
                    slot.where,
                    f"slot '{slot.name}' has unknown type '{slot.type}'{hint}; "
                    f"built-in types: {', '.join(BUILTIN)}",
                )
        if slot.type == "enum" and not slot.values:
            self.problem(
                slot.where,
                f"enum slot '{slot.name}' needs `values:` (a list, or value: [synonyms])",
            )
        for option, types in _SLOT_OPTIONS.items():
            set_ = getattr(slot, option) not in (None, {})
            if set_ and slot.type in BUILTIN and slot.type not in types:
                self.problem(
                    slot.where,
                    f"slot '{slot.name}': `{option}` applies to "
                    f"{' and '.join(sorted(types))} slots, not {slot.type}",
                )

    def node(self, flow: Flow, node: Node) -> None:
        who = f"node '{node.name}'"
        for ref in refs(node):
            self.resolve(ref, flow, who)
        node_kind = kind(node.kind)
        if node_kind.needs_next and node.next is None:
            self.problem(
                node.where, f"{who} has no way out: add `next:` (the node to go to afterwards)"
            )
        node_kind.check(self, flow, node)

    def branch(self, flow: Flow, branch: Branch, who: str) -> None:
        for intent in branch.intents:
            if self.fs.intent(flow.name, intent) is None:
                self.problem(
                    branch.where,
                    f"{who} listens for intent '{intent}' which is not "
                    f"declared under `intents:`{did_you_mean(intent, self._intent_names())}",
                )
        if branch.slot is not None:
            self.declared_slot(flow, who, branch.slot, branch.where)

    def declared_slot(self, flow: Flow, who: str, slot: str, where: str) -> None:
        if self.fs.slot(flow.name, slot) is None:
            names = {s for f in self.fs.flows.values() for s in f.slots}
            self.problem(
                where,
                f"{who} uses slot '{slot}' which is not declared under "
                f"`slots:`{did_you_mean(slot, names)}",
            )

    def action(self, name: str | None, where: str, who: str) -> None:
        if self.registry is None or name is None or name in self.registry.actions:
            return
        known = sorted(self.registry.actions)
        listed = (
            f"; registered actions: {', '.join(known)}"
            if known
            else ("; no plugin registers actions (see docs/flows.md#action)")
        )
        self.problem(
            where,
            f"{who} calls action '{name}' which no plugin registers"
            f"{did_you_mean(name, known)}{listed}",
        )

    def _intent_names(self) -> set[str]:
        return {i for f in self.fs.flows.values() for i in f.intents}

    def candidates(self, flow: Flow, branches: list[Branch]) -> tuple[IntentSpec, ...]:
        seen: dict[str, IntentSpec] = {}
        for branch in branches:
            for intent in branch.intents:
                spec = self.fs.intent(flow.name, intent)
                if spec is not None:
                    seen.setdefault(intent, spec)
        return tuple(seen.values())

    # -------------------------------------------------------------------------- templates

    def _assigned_names(self) -> set[str]:
        names: set[str] = set()
        for flow in self.fs.flows.values():
            names |= set(flow.slots)
            for node in flow.nodes.values():
                if node.kind != "invalid":
                    names |= set(kind(node.kind).assigns(node))
        return names

    def templates(self, flow: Flow) -> None:
        known = self.variables | BUILTIN_NAMES
        for compiled, where in flow.uses:
            names = (
                compiled.names
                if isinstance(compiled, Template | Expression)
                else value_names(compiled)
            )
            unknown = sorted(names - known)
            for name in unknown:
                self.problem(
                    where,
                    f"template uses '{name}' which is not a slot or variable"
                    f"{did_you_mean(name, known)}",
                )
            if not unknown and isinstance(compiled, Template | Expression):
                self._trial(flow, compiled, where)

    def _trial(self, flow: Flow, compiled: Template | Expression, where: str) -> None:
        """Evaluate with typical slot values, catching type errors before a caller does."""
        scope: dict[str, Any] = {}
        for name in compiled.names:
            decl = self.fs.slot(flow.name, name)
            if decl is None or (decl.type not in _SAMPLES and decl.type != "enum"):
                return  # a variable of unknown type: nothing sensible to try
            scope[name] = (
                next(iter(decl.values), "x") if decl.type == "enum" else _SAMPLES[decl.type]
            )
        try:
            compiled(scope) if isinstance(compiled, Expression) else compiled.render(scope)
        except TemplateError as exc:
            self.problem(where, f"template error: {exc}")

    # ------------------------------------------------------------------------ graph checks

    def loops(self, flow: Flow) -> None:
        """Nodes that hand straight on to each other in a circle would spin without input."""
        succ: dict[str, str] = {}
        for node in flow.nodes.values():
            ref = kind(node.kind).straight_on(node) if node.kind != "invalid" else None
            if ref is not None and ref.flow == flow.name and ref.node:
                succ[node.name] = ref.node
        reported: set[str] = set()
        for start in succ:
            path: list[str] = []
            cur: str | None = start
            while cur is not None and cur not in path and cur not in reported:
                path.append(cur)
                cur = succ.get(cur)
            if cur is not None and cur in path:
                cycle = path[path.index(cur) :]
                reported |= set(cycle)
                chain = " → ".join([*cycle, cur])
                self.problem(
                    flow.nodes[cycle[0]].where,
                    f"nodes {chain} loop without ever waiting "
                    "for the caller; put an ask or listen node in the loop",
                )
            reported |= set(path)

    def reachability(self) -> None:
        seen: set[tuple[str, str]] = set()
        todo = [(f.name, f.start) for f in self.fs.flows.values() if f.start in f.nodes]
        while todo:
            key = todo.pop()
            if key in seen:
                continue
            seen.add(key)
            flow = self.fs.flows[key[0]]
            node = flow.nodes[key[1]]
            todo += [(r.flow, r.node) for r in _all_refs(flow, node) if r.node]
            if node.kind == "invalid":
                # its way out could not be read (it has an error of its own): whatever it may
                # lead to is not "never reached", or one typo would cascade down the flow
                todo += [(flow.name, name) for name in flow.nodes]
        for flow in self.fs.flows.values():
            for node in flow.nodes.values():
                if (flow.name, node.name) not in seen and node.kind != "invalid":
                    self.problem(
                        node.where,
                        f"node '{node.name}' is never reached: nothing goes "
                        f"to it from '{flow.start}', the start of flow '{flow.name}'",
                    )


def refs(node: Node) -> list[Ref]:
    """Every node this one may lead to, for reference checks and reachability."""
    out = [r for r in (node.next, node.on_error) if r is not None]
    if node.kind != "invalid":
        out += kind(node.kind).refs(node)
    for esc in (node.noinput or []) + (node.nomatch or []):
        if esc.goto is not None:
            out.append(esc.goto)
    return out


def _all_refs(flow: Flow, node: Node) -> Iterable[Ref]:
    yield from refs(node)
    if node.kind == "invalid":
        return
    node_kind = kind(node.kind)
    if node_kind.uses_anywhere:
        yield from (b.goto for b in flow.anywhere)
    if node_kind.uses_defaults:
        d = flow.defaults
        for esc in (d.noinput if node.noinput is None else []) + (
            d.nomatch if node.nomatch is None else []
        ):
            if esc.goto is not None:
                yield esc.goto
        if d.on_error is not None and node.on_error is None:
            yield d.on_error
