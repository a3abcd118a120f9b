"""Keeping the conversation sent to an LLM within a token budget.

Flows' llm nodes and the free LLM conversation (`dialogue.mode: llm`) both send history with
every request; without a bound, a long call sends (and keeps) more every turn until the model
refuses it, and memory grows with it.
"""

from __future__ import annotations

from ..providers import Message


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
