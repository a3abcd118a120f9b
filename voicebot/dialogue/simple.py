"""The dialogue used without flows: a free LLM conversation (`dialogue.mode: llm`), or an echo
(`echo`) that proves the voice pipeline with no LLM at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..config import DialogueConfig
from ..providers import Message, ProviderError, Usage
from .base import BotOutput, Dialogue, DialogueContext, Hangup, Listen, Say, UserInput
from .context_budget import fit_to_budget

GOODBYES = ("goodbye", "bye", "hang up")


class SimpleDialogue(Dialogue):
    def __init__(
        self,
        ctx: DialogueContext,
        cfg: DialogueConfig,
        mode: str,
        snapshot: dict[str, Any] | None = None,
    ) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.mode = mode
        self.messages: list[Message] = [Message("system", cfg.system_prompt)]
        self.resumed = bool(snapshot)
        for m in (snapshot or {}).get("messages", [])[1:]:
            self.messages.append(Message(m["role"], m["content"]))

    async def start(self) -> AsyncIterator[BotOutput]:
        yield Listen(noinput_timeout_ms=self.cfg.noinput_timeout_ms or None)
        if self.resumed:
            return  # a reconnect: the caller goes on where they were
        self.messages.append(Message("assistant", self.cfg.greeting))
        yield Say(self.cfg.greeting, cache_key="greeting")

    async def handle(self, event: UserInput) -> AsyncIterator[BotOutput]:
        yield Listen(noinput_timeout_ms=self.cfg.noinput_timeout_ms or None)
        async for out in self._reply(event):
            yield out

    async def _reply(self, event: UserInput) -> AsyncIterator[BotOutput]:
        text = event.text or (f"I pressed {event.digits}" if event.kind == "dtmf" else "")
        if event.kind == "noinput":
            yield Say("Are you still there?", cache_key="noinput")
            return
        if any(word in text.lower() for word in GOODBYES):
            yield Say("Goodbye!", cache_key="goodbye")
            yield Hangup("caller said goodbye")
            return
        if self.mode == "echo" or self.ctx.llm is None:
            yield Say(f"You said: {text}.")
            return
        self.messages.append(Message("user", text))
        # kept, not only sent, within the budget: a long call must not grow without bound
        self.messages = fit_to_budget(
            self.messages[0], [], self.messages[1:], self.cfg.context_tokens
        )
        reply: list[str] = []
        try:
            async for out in self.ctx.llm.stream(self.messages):
                if isinstance(out, str):
                    reply.append(out)
                    yield Say(out, delta=True)
                elif isinstance(out, Usage):
                    self.ctx.report_usage(out)
        finally:
            self.messages.append(Message("assistant", "".join(reply)))
        if not reply:
            raise ProviderError("the LLM returned an empty reply")

    def interrupted(self, said: str, heard: str) -> None:
        if self.messages and self.messages[-1].role == "assistant":
            self.messages[-1] = Message("assistant", heard)

    def snapshot(self) -> dict[str, Any]:
        return {
            "flow": None,
            "node": None,
            "messages": [{"role": m.role, "content": m.content} for m in self.messages],
        }
