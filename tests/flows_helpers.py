"""Shared helpers for the flow tests: write flow files, run a dialogue turn by turn."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from voicebot.dialogue import DialogueContext, Hangup, Listen, Say, Transfer, UserInput
from voicebot.flows import FlowDialogue, load_flows
from voicebot_plugins.intent_keyword import KeywordIntent

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=ZoneInfo("UTC"))  # a Saturday


def write(directory: Path, **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / f"{name}.yaml").write_text(textwrap.dedent(text))
    return directory


class Bot:
    """A flow dialogue driven by plain values: `await bot.send("text")`, `send(dtmf="1")`."""

    def __init__(
        self, directory: Path, flow: str = "main", *, now: datetime = NOW, **ctx: Any
    ) -> None:
        self.flows = load_flows(directory)
        ctx.setdefault("intent", KeywordIntent())
        self.ctx = DialogueContext(call_id="test", variables=ctx.pop("variables", {}), **ctx)
        self.d = FlowDialogue(
            self.flows, self.ctx, flow, clock=lambda tz: now.astimezone(tz), timezone="UTC"
        )
        self.out: list[Any] = []

    async def start(self) -> list[Any]:
        self.out = [x async for x in self.d.start()]
        return self.out

    async def send(self, text: str | None = None, *, dtmf: str | None = None) -> list[Any]:
        if dtmf is not None:
            event = UserInput("dtmf", digits=dtmf)
        elif text is None:
            event = UserInput("noinput")
        else:
            event = UserInput("speech", text=text)
        self.out = [x async for x in self.d.handle(event)]
        return self.out

    @property
    def said(self) -> str:
        return " ".join(x.text for x in self.out if isinstance(x, Say))

    def of(self, kind: type) -> list[Any]:
        return [x for x in self.out if isinstance(x, kind)]

    @property
    def listen(self) -> Listen | None:
        found = self.of(Listen)
        return found[-1] if found else None

    @property
    def ended(self) -> Hangup | Transfer | None:
        found = self.of(Hangup) + self.of(Transfer)
        return found[0] if found else None

    @property
    def at(self) -> str:
        return f"{self.d.flow}.{self.d.node}"
