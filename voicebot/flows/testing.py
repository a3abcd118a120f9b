"""Conversation tests: YAML scripts of caller turns and expectations, run without audio.

A test is a list of steps. A step may send one input (`user:` text, `dtmf:` keys, `noinput:
true`) and may check what the bot did in response (`bot:` exact / `{contains:}` / `{regex:}`,
`intent:`, `node:`, `slots:`, `vars:`, `transfer:`, `hangup:`). A step with checks only checks
the previous response (the greeting, for the first step). See docs/flows.md#testing.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ..dialogue import DialogueContext, Hangup, IntentEvent, Say, Transfer, UserInput
from ..dialogue.sentences import join_pieces
from .model import FlowSet
from .runner import FlowDialogue
from .source import read

INPUTS = ("user", "dtmf", "noinput")
CHECKS = ("bot", "intent", "node", "slots", "vars", "transfer", "hangup")


@dataclass
class Turn:
    """What the bot did in response to one input."""

    says: list[tuple[str, bool]] = field(default_factory=list)
    intents: list[str] = field(default_factory=list)
    transfer: str | None = None
    hangup: str | None = None

    @property
    def text(self) -> str:
        """The reply as the call would speak it (pieces joined the way the pipeline joins them)."""
        return " ".join(join_pieces(self.says).split())


@dataclass
class Outcome:
    name: str
    file: str
    failures: list[str] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)


async def _collect(stream: Any) -> Turn:
    turn = Turn()
    async for out in stream:
        if isinstance(out, Say):
            turn.says.append((out.text, out.delta))
        elif isinstance(out, IntentEvent) and out.intent:
            turn.intents.append(out.intent)
        elif isinstance(out, Transfer):
            turn.transfer = out.target
        elif isinstance(out, Hangup):
            turn.hangup = out.reason
    return turn


def _check_text(expected: Any, actual: str) -> str | None:
    if isinstance(expected, dict):
        if "contains" in expected:
            if str(expected["contains"]).lower() not in actual.lower():
                return f"bot should contain {expected['contains']!r}\n    bot said: {actual!r}"
            return None
        if "regex" in expected:
            if not re.search(str(expected["regex"]), actual):
                return f"bot should match /{expected['regex']}/\n    bot said: {actual!r}"
            return None
        return f"`bot:` takes a string, {{contains: ...}} or {{regex: ...}}, not {expected!r}"
    want = " ".join(str(expected).split())
    if want == actual:
        return None
    diff = "\n".join(
        "    " + line for line in difflib.ndiff([want], [actual]) if not line.startswith(" ")
    )
    return f"bot said something else (- expected, + actual):\n{diff}"


def check_step(step: dict[str, Any], turn: Turn, d: FlowDialogue) -> list[str]:
    fails: list[str] = []
    if "bot" in step:
        problem = _check_text(step["bot"], turn.text)
        if problem:
            fails.append(problem)
    if "intent" in step and step["intent"] not in turn.intents:
        got = ", ".join(turn.intents) or "none"
        fails.append(f"intent should be {step['intent']!r}, recognised: {got}")
    if "node" in step:
        at = f"{d.flow}.{d.node}"
        want = step["node"] if "." in step["node"] else f"{d.flow}.{step['node']}"
        if want != at:
            fails.append(f"should be at node {want}, is at {at}")
    for key in ("slots", "vars"):
        for name, want in (step.get(key) or {}).items():
            got = d.values.get(name, "<unset>")
            if got != want:
                fails.append(f"{key[:-1]} {name} should be {want!r}, is {got!r}")
    if "transfer" in step:
        want = step["transfer"]
        if turn.transfer is None or (want is not True and want != turn.transfer):
            fails.append(f"should transfer to {want!r}, transfer: {turn.transfer!r}")
    if "hangup" in step:
        want = step["hangup"]
        if want is False:
            if turn.hangup is not None:
                fails.append(f"should not hang up, but hung up ({turn.hangup})")
        elif turn.hangup is None or (want is not True and want != turn.hangup):
            fails.append(f"should hang up ({want}), hangup: {turn.hangup!r}")
    return fails


async def run_test(
    flows: FlowSet,
    test: dict[str, Any],
    ctx: DialogueContext,
    *,
    flow: str,
    timezone: str,
    now: datetime | None,
    file: str,
) -> Outcome:
    name = str(test.get("name", "unnamed"))
    outcome = Outcome(name, file)
    clock = (lambda tz: now.astimezone(tz)) if now is not None else None
    d = FlowDialogue(flows, ctx, test.get("flow", flow), timezone=timezone, clock=clock)
    if test.get("slots"):
        d.values.update(test["slots"])
    turn = await _collect(d.start())
    outcome.transcript.append(f"  bot: {turn.text}")
    for n, step in enumerate(test.get("steps") or [], 1):
        if not isinstance(step, dict):
            outcome.failures.append(f"step {n}: must be a mapping (user:, bot:, ...)")
            break
        unknown = [k for k in step if k not in INPUTS + CHECKS]
        if unknown:
            outcome.failures.append(
                f"step {n}: unknown key {unknown[0]!r}; inputs: "
                f"{', '.join(INPUTS)}; checks: {', '.join(CHECKS)}"
            )
            break
        event = None
        if "user" in step:
            said = step["user"]
            said = ("yes" if said else "no") if isinstance(said, bool) else str(said)
            event = UserInput("text", text=said)
            outcome.transcript.append(f"  user: {said}")
        elif "dtmf" in step:
            event = UserInput("dtmf", digits=str(step["dtmf"]))
            outcome.transcript.append(f"  keys: {step['dtmf']}")
        elif step.get("noinput"):
            event = UserInput("noinput")
            outcome.transcript.append("  (silence)")
        if event is not None:
            turn = await _collect(d.handle(event))
            shown = (
                turn.text
                + (f" [transfer {turn.transfer}]" if turn.transfer else "")
                + (f" [hangup {turn.hangup}]" if turn.hangup else "")
            )
            outcome.transcript.append(f"  bot: {shown}   ({d.flow}.{d.node})")
        fails = check_step(step, turn, d)
        if fails:
            outcome.failures += [f"step {n}: {f}" for f in fails]
            break
    return outcome


def load_test_file(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    src = read(path, str(path))
    if src.problems:
        return None, src.problems[0]
    data = src.data
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        return None, f"{path}:1:1: a test file needs `tests:` (a list of tests)"
    return data, None


def parse_now(value: Any, timezone: str) -> datetime | None:
    if value is None:
        return None
    dt = datetime.fromisoformat(str(value))
    return dt if dt.tzinfo else dt.replace(tzinfo=ZoneInfo(timezone))
