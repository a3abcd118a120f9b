"""One flow instance per call: the `Dialogue` the call pipeline talks to.

The runner walks nodes until it reaches an input point (ask, listen, llm), says what the nodes
say on the way, and stops with a `Listen`. The caller's answer resumes it at that node. All
per-call state (position, slots, sub-flow stack, escalation counters, history) lives on this
object and round-trips through `snapshot()` / `restore()` for session resume.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..dialogue import (
    BotOutput,
    Dialogue,
    DialogueContext,
    Hangup,
    IntentEvent,
    Listen,
    Note,
    Say,
    Transfer,
    UserInput,
)
from ..providers import IntentSpec, Message, ProviderError, ToolCall, ToolSpec, Usage
from ..sentences import join_pieces
from . import http as http_node
from .model import Branch, Escalation, Flow, FlowSet, Node, Ref, SlotDecl
from .opening import offer
from .slottypes import BUILTIN, COMPOSITE, Partial, violation
from .templates import Template, TemplateError, eval_value, template

log = logging.getLogger("voicebot.flows")

MAX_STEPS = 64  # nodes run in one turn before we call it a loop
MAX_DEPTH = 16  # nested sub-flow calls
HISTORY = 100  # turns kept for snapshots and `interrupted()`
LLM_MEMORY = 40  # messages of an llm node's conversation kept
ACTION_TIMEOUT_MS = 10_000  # an action that hangs must not hold the caller in silence
_NOINPUT = [Escalation(Template("Sorry, I didn't hear anything."), True, None)]
_NOMATCH = [Escalation(Template("Sorry, I didn't get that."), True, None)]
_APOLOGY = "Sorry, something went wrong. Please call again later."
_FOLLOW_UP = {"time": template("What time on {{ value | spoken_date }}?")}


class CallVariables(dict):
    """`{{ call.x }}`: what a call carries depends on its transport (a phone call has `From`, a
    browser session its metadata), so a variable this call lacks renders empty, not an error."""

    def __missing__(self, key: str) -> str:
        return ""


class StepError(Exception):
    """A node could not run (template error, failing action or webhook, missing provider)."""


class FlowDialogue(Dialogue):
    def __init__(
        self,
        flows: FlowSet,
        ctx: DialogueContext,
        flow: str,
        *,
        timezone: str = "UTC",
        clock: Callable[[ZoneInfo], datetime] | None = None,
    ) -> None:
        if flow not in flows.flows:
            raise ValueError(f"no flow named '{flow}'; flows: {', '.join(sorted(flows.flows))}")
        self.flows = flows
        self.ctx = ctx
        self.tz = ZoneInfo(timezone)
        self._clock = clock or (lambda tz: datetime.now(tz))
        self.flow = flow
        self.node = flows.flows[flow].start
        self.phase = "enter"  # enter (walking) | input | confirm | confirmed | ended
        self.values: dict[str, Any] = {}
        # parts of a composite slot said so far ({"when": {"date": "2026-11-28"}})
        self.partial: dict[str, dict[str, str]] = {}
        self.stack: list[tuple[str, str]] = []
        self.counters = {"noinput": 0, "nomatch": 0}
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.llm_messages: list[Message] = []
        self.last_input: dict[str, Any] = {
            "kind": "",
            "text": "",
            "digits": "",
            "intent": None,
            "confidence": None,
        }
        self._next: tuple[str, str] | None = None
        self._said: list[str] = []
        self._opening: str | None = None  # the words that chose an intent, this turn

    # ------------------------------------------------------------------ Dialogue interface

    async def start(self) -> AsyncIterator[BotOutput]:
        if self.phase == "enter":
            target = (self.flow, self.node)
        elif self.phase == "ended":
            return
        else:  # restored mid-call: say where we are again
            node = self._current()
            async for out in self._reprompt(node):
                yield out
            yield self._listen(node)
            return
        async for out in self._run(target):
            yield out

    async def handle(self, event: UserInput) -> AsyncIterator[BotOutput]:
        if self.phase == "enter":
            # The previous reply was cancelled mid-walk (the caller barged in during a slow
            # webhook, say): finish the walk quietly and take the answer at the next question.
            async for out in self._run((self.flow, self.node)):
                if not isinstance(out, Say | Listen):
                    yield out
            self._said = []
        if self.phase == "ended":
            return
        node = self._current()
        self.last_input = {
            "kind": event.kind,
            "text": event.text,
            "digits": event.digits,
            "intent": None,
            "confidence": event.confidence,
        }
        if event.kind != "noinput":
            self.history.append(
                {"role": "user", "text": event.text or event.digits, "node": node.key}
            )
        self._next = None
        self._said = []
        self._opening = None
        try:
            async for out in _INPUT[node.kind](self, node, event):
                yield out
        except StepError as exc:
            async for out in self._fail(node, str(exc)):
                yield out
        if self._next is not None:
            async for out in self._run(self._next):
                yield out
        self._opening = None
        self._record_bot()

    def interrupted(self, said: str, heard: str) -> None:
        for entry in reversed(self.history):
            if entry["role"] == "bot":
                if said and said in entry["text"]:
                    entry["text"] = entry["text"].replace(said, heard)
                entry["interrupted"] = True
                return

    def snapshot(self) -> dict[str, Any]:
        slots = self._slots()
        variables = {k: v for k, v in self.values.items() if k not in slots}
        return json.loads(
            json.dumps(
                {
                    "flow": self.flow,
                    "node": self.node,
                    "phase": self.phase,
                    "slots": slots,
                    "vars": variables,
                    "partial": self.partial,
                    "stack": [list(x) for x in self.stack],
                    "counters": dict(self.counters),
                    "history": list(self.history),
                    "llm": [dataclasses.asdict(m) for m in self.llm_messages],
                },
                default=str,
            )
        )

    @classmethod
    def restore(
        cls, flows: FlowSet, ctx: DialogueContext, snapshot: dict[str, Any], **kw: Any
    ) -> FlowDialogue:
        """Resume a call from `snapshot()`; `start()` then repeats the current prompt.

        If the flow was edited so that the saved node no longer exists, the flow starts over
        with the saved slots kept.
        """
        flow = snapshot.get("flow", "")
        d = cls(flows, ctx, flow if flow in flows.flows else next(iter(flows.flows)), **kw)
        d.values = {**snapshot.get("vars", {}), **snapshot.get("slots", {})}
        d.partial = {k: dict(v) for k, v in snapshot.get("partial", {}).items()}
        d.history.extend(snapshot.get("history", []))
        node = snapshot.get("node", "")
        if flow in flows.flows and node in flows.flows[flow].nodes:
            d.node = node
            d.phase = snapshot.get("phase", "enter")
            d.stack = [(a, b) for a, b in snapshot.get("stack", [])]
            d.llm_messages = [
                Message(**{**m, "tool_calls": [ToolCall(**c) for c in m.get("tool_calls", [])]})
                for m in snapshot.get("llm", [])
            ]
            d.counters.update(snapshot.get("counters", {}))
        return d

    # -------------------------------------------------------------------------- walking

    def _current(self) -> Node:
        return self.flows.node(self.flow, self.node)

    def _flow(self, node: Node) -> Flow:
        return self.flows.flows[node.flow]

    async def _run(self, target: tuple[str, str] | None) -> AsyncIterator[BotOutput]:
        steps = 0
        while target is not None:
            steps += 1
            if steps > MAX_STEPS:
                async for out in self._fail(
                    self._current(),
                    f"{MAX_STEPS} nodes ran without waiting for the caller (a loop?)",
                ):
                    yield out
                return
            flow, name = target
            if (flow, name) != (self.flow, self.node) or self.phase != "input":
                self.counters = {"noinput": 0, "nomatch": 0}
            self.flow, self.node, self.phase = flow, name, "enter"
            node = self.flows.node(flow, name)
            yield Note("node", {"flow": flow, "node": name, "kind": node.kind})
            self._next = None
            try:
                async for out in _ENTER[node.kind](self, node):
                    yield out
            except StepError as exc:
                async for out in self._fail(node, str(exc)):
                    yield out
            target = self._next
        self._record_bot()

    def _go(self, ref: Ref | None) -> None:
        self._next = (ref.flow, ref.node) if ref is not None else None

    def _scope(self, **extra: Any) -> dict[str, Any]:
        now = self._clock(self.tz)
        return {
            **self.values,
            "call": CallVariables(self.ctx.variables),
            "input": self.last_input,
            "now": now.isoformat(timespec="seconds"),
            "today": now.date().isoformat(),
            "help": "",
            **extra,
        }

    def _render(self, template: Template, **extra: Any) -> str:
        if template.static:
            return template.source
        try:
            return template.render(self._scope(**extra))
        except TemplateError as exc:
            raise StepError(str(exc)) from exc

    def _barge_in(self, node: Node) -> bool:
        return node.barge_in if node.barge_in is not None else self._flow(node).defaults.barge_in

    def _say(self, node: Node, template: Template | None, **extra: Any) -> Say | None:
        if template is None:
            return None
        text = self._render(template, **extra).strip()
        if not text:
            return None
        self._said.append(text)
        key = "say:" + hashlib.sha1(text.encode()).hexdigest()[:16] if template.static else None
        return Say(text, barge_in=self._barge_in(node), cache_key=key)

    def _record_bot(self) -> None:
        if self._said:
            self.history.append(
                {"role": "bot", "text": join_pieces(self._said), "node": f"{self.flow}.{self.node}"}
            )
            self._said = []

    def _listen(self, node: Node) -> Listen:
        self.phase = "confirm" if self.phase == "confirm" else "input"
        timeout = (
            node.timeout_ms if node.timeout_ms is not None else self._flow(node).defaults.timeout_ms
        )
        max_digits, terminator = node.dtmf_max_digits or 1, node.dtmf_terminator
        if node.kind == "ask" and self.phase == "input":
            max_digits, terminator = self._dtmf_rules(self._slot(node))
        return Listen(
            noinput_timeout_ms=timeout,
            dtmf_max_digits=max_digits,
            dtmf_terminator=terminator,
            dtmf_timeout_ms=node.dtmf_timeout_ms or 3000,
            barge_in=self._barge_in(node),
        )

    @staticmethod
    def _dtmf_rules(decl: SlotDecl | None) -> tuple[int, str | None]:
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

    async def _fail(self, node: Node, reason: str) -> AsyncIterator[BotOutput]:
        log.warning("call %s: flow %s failed: %s", self.ctx.call_id, node.key, reason)
        yield Note(
            "error",
            {"code": "flow_failed", "message": reason, "flow": node.flow, "node": node.name},
        )
        target = node.on_error or self._flow(node).defaults.on_error
        if target is not None and (target.flow, target.node) != (node.flow, node.name):
            self._go(target)
            return
        self._next = None
        self.phase = "ended"
        yield Say(_APOLOGY)
        yield Hangup("error")

    # ------------------------------------------------------------------------ escalation

    async def _escalate(
        self, node: Node, kind: str, message: Template | None = None
    ) -> AsyncIterator[BotOutput]:
        """Count the event and answer with the matching escalation entry. `message` (a slot's
        `invalid:` text) replaces the entry's words and the reprompt, but not its `goto`."""
        self.counters[kind] += 1
        own = node.noinput if kind == "noinput" else node.nomatch
        if own is None:
            defaults = self._flow(node).defaults
            own = defaults.noinput if kind == "noinput" else defaults.nomatch
        entries = own or (_NOINPUT if kind == "noinput" else _NOMATCH)
        entry = entries[min(self.counters[kind], len(entries)) - 1]
        yield Note(kind, {"count": self.counters[kind], "node": node.key})
        say = self._say(
            node, entry.say if message is None or entry.goto else message, help=self._help(node)
        )
        if say is not None:
            yield say
        if entry.goto is not None:
            self._go(entry.goto)
            return
        if entry.reprompt and message is None:
            async for out in self._reprompt(node):
                yield out
        yield self._listen(node)

    def _help(self, node: Node) -> str:
        decl = self._slot(node) if node.kind == "ask" else None
        template = node.help or (decl.help if decl is not None else None)
        return self._render(template) if template is not None else ""

    async def _reprompt(self, node: Node) -> AsyncIterator[BotOutput]:
        extra: dict[str, Any] = {}
        if node.kind == "ask" and self.phase != "confirm":
            template, extra = self._prompt(node)
        else:
            template = node.confirm if node.kind == "ask" else node.say
        say = self._say(node, template, **extra)
        if say is not None:
            yield say

    # ------------------------------------------------------------------------------- ask

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
            for note in self._prefill(node, self._opening):
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

    def _prefill(self, node: Node, text: str) -> list[Note]:
        """Fill the node's empty slots from the words that chose the intent leading here."""
        self._opening = None
        notes: list[Note] = []

        def take(decl: SlotDecl, words: str) -> bool:
            value, ok = self.parse_answer(decl, words, "")
            if ok:
                notes.append(self._fill(decl.name, value))
            return ok or isinstance(value, Partial)  # a day without a time is kept

        empty = [self.flows.slot(node.flow, n) for n in node.slots if n not in self.values]
        offer(text, [d for d in empty if d is not None], take, self._clock(self.tz))
        return notes

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

    # ------------------------------------------------------------------------- llm context

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

    # ---------------------------------------------------------------------------- listen

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

    # ------------------------------------------------------------------------------- llm

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

    # -------------------------------------------------------------- action, http, set, ...

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


def _tool_spec(f: Any) -> ToolSpec:
    props = {name: dict(p) for name, p in f.parameters.items()}
    schema = {"type": "object", "properties": props, "required": list(props)}
    return ToolSpec(f.name, f.description, schema)


_ENTER = {
    "say": FlowDialogue._enter_say,
    "ask": FlowDialogue._enter_ask,
    "listen": FlowDialogue._enter_prompt_listen,
    "llm": FlowDialogue._enter_prompt_listen,
    "action": FlowDialogue._enter_action,
    "http": FlowDialogue._enter_http,
    "set": FlowDialogue._enter_set,
    "if": FlowDialogue._enter_if,
    "switch": FlowDialogue._enter_if,
    "goto": FlowDialogue._enter_goto,
    "call": FlowDialogue._enter_goto,
    "return": FlowDialogue._enter_return,
    "transfer": FlowDialogue._enter_transfer,
    "hangup": FlowDialogue._enter_hangup,
}
_INPUT = {
    "ask": FlowDialogue._input_ask,
    "listen": FlowDialogue._input_listen,
    "llm": FlowDialogue._input_llm,
}


def _tokens(message: Message) -> int:
    """A cheap token estimate (~4 characters a token, plus per-message overhead): the budget
    is a guard against unbounded growth, not a bill."""
    return (
        len(message.content) // 4 + 4 + sum(len(str(c.arguments)) // 4 for c in message.tool_calls)
    )


def fit_to_budget(
    system: Message, earlier: list[Message], own: list[Message], budget: int
) -> list[Message]:
    """System prompt + earlier call history + this node's conversation, dropping the oldest
    earlier turns first, then this node's oldest turns, never the latest user message."""
    used = _tokens(system) + sum(_tokens(m) for m in own)
    kept_earlier: list[Message] = []
    for message in reversed(earlier):
        cost = _tokens(message)
        if used + cost > budget:
            break
        kept_earlier.insert(0, message)
        used += cost
    own = list(own)
    while len(own) > 1 and used > budget:
        used -= _tokens(own.pop(0))
        # a tool result must not lose the assistant message that asked for it
        while own and own[0].role == "tool":
            used -= _tokens(own.pop(0))
    return [system, *kept_earlier, *own]
