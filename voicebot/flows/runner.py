"""One flow instance per call: the `Dialogue` the call pipeline talks to.

The runner walks nodes until it reaches an input point (ask, listen, llm), says what the nodes
say on the way, and stops with a `Listen`. The caller's answer resumes it at that node. All
per-call state (position, slots, sub-flow stack, escalation counters, history) lives on this
object and round-trips through `snapshot()` / `restore()` for session resume.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
    Listen,
    Note,
    Say,
    UserInput,
)
from ..dialogue.sentences import join_pieces
from ..providers import Message, ToolCall
from .filling import SlotFilling
from .model import Escalation, Flow, FlowSet, Node, Ref, StepError
from .nodes import kind
from .templates import Template, TemplateError, eval_value

log = logging.getLogger("voicebot.flows")

MAX_STEPS = 64  # nodes run in one turn before we call it a loop
HISTORY = 100  # turns kept for snapshots and `interrupted()`
_NOINPUT = [Escalation(Template("Sorry, I didn't hear anything."), True, None)]
_NOMATCH = [Escalation(Template("Sorry, I didn't get that."), True, None)]
_APOLOGY = "Sorry, something went wrong. Please call again later."


class CallVariables(dict):
    """`{{ call.x }}`: what a call carries depends on its transport (a phone call has `From`, a
    browser session its metadata), so a variable this call lacks renders empty, not an error."""

    def __missing__(self, key: str) -> str:
        return ""


class FlowDialogue(SlotFilling, Dialogue):
    """Walks the nodes; what each node does is its kind's (`flows/nodes/`)."""

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
            async for out in kind(node.kind).on_input(self, node, event):
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
                async for out in kind(node.kind).enter(self, node):
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

    def _eval(self, value: Any) -> Any:
        try:
            return eval_value(value, self._scope())
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
        max_digits, terminator, digit_timeout_ms = kind(node.kind).dtmf(self, node)
        return Listen(
            noinput_timeout_ms=timeout,
            dtmf_max_digits=max_digits,
            dtmf_terminator=terminator,
            dtmf_timeout_ms=digit_timeout_ms,
            barge_in=self._barge_in(node),
        )

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
        template = kind(node.kind).help(self, node)
        return self._render(template) if template is not None else ""

    async def _reprompt(self, node: Node) -> AsyncIterator[BotOutput]:
        template, extra = kind(node.kind).prompt(self, node)
        say = self._say(node, template, **extra)
        if say is not None:
            yield say
