"""The llm node with a scripted LLM provider: streamed text, tool calls, actions, slots."""

from __future__ import annotations

from pathlib import Path

from voicebot.dialogue import Hangup, Listen, Note, Say, UserInput
from voicebot.flows import FlowDialogue
from voicebot.providers import LLM, Message, ProviderError, ToolCall, Usage

from .flows_helpers import Bot, write


class ScriptedLLM(LLM):
    """Answers each request with the next scripted reply; records what it was asked."""

    name = "scripted"

    def __init__(self, *replies: list) -> None:
        super().__init__()
        self.replies = list(replies)
        self.requests: list[tuple[list, list]] = []

    async def stream(self, messages, tools=()):
        self.requests.append((list(messages), list(tools)))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        for piece in reply:
            yield piece


FLOW = """
    slots:
      party_size: {type: integer, min: 1, max: 12}
    nodes:
      chat:
        say: Hi, this is Luigi's. How can I help?
        llm:
          system: You take bookings for {{ call.restaurant }}. Today is {{ today }}.
          functions:
            book_table:
              description: The caller wants to book; call with the party size.
              parameters:
                party_size: {type: integer, description: How many people}
              goto: booked
            opening_hours:
              description: Look up the opening hours of a day.
              parameters: {day: string}
              action: info.hours
        on_error: sorry
      booked:
        say: Booking for {{ party_size }}.
        hangup:
      sorry:
        say: Let me get a colleague.
        transfer: "+15550100"
"""


async def test_llm_streams_runs_actions_and_transitions_by_function(tmp_path: Path) -> None:
    write(tmp_path, main=FLOW)
    llm = ScriptedLLM(
        ["Let me ", "check. ", ToolCall("c1", "opening_hours", {"day": "sunday"})],
        ["We're open ", "noon to ten on Sunday.", Usage("scripted", 10, 5)],
        ["Lovely!", ToolCall("c2", "book_table", {"party_size": 4})],
    )
    hours = []
    usage = []

    def opening_hours(day):
        hours.append(day)
        return {"open": "12:00", "close": "22:00"}

    bot = Bot(tmp_path, llm=llm, actions={"info.hours": opening_hours},
              variables={"restaurant": "Luigi's"}, report_usage=usage.append)  # fmt: skip
    await bot.start()
    assert bot.said == "Hi, this is Luigi's. How can I help?" and bot.listen is not None

    await bot.send("are you open on sunday?")
    assert [x.text for x in bot.of(Say)] == [
        "Let me ", "check. ", "We're open ", "noon to ten on Sunday."
    ]  # fmt: skip
    assert hours == ["sunday"] and usage == [Usage("scripted", 10, 5)]
    assert isinstance(bot.out[-1], Listen) and bot.at == "main.chat"
    messages, tools = llm.requests[1]
    assert messages[0].role == "system"
    assert messages[0].content == "You take bookings for Luigi's. Today is 2026-11-21."
    # the node's opening prompt, then the caller, the LLM's tool call and its result
    assert [m.role for m in messages[1:]] == ["assistant", "user", "assistant", "tool"]
    assert messages[1].content == "Hi, this is Luigi's. How can I help?"
    assert messages[4].content == '{"open": "12:00", "close": "22:00"}'
    assert messages[4].tool_call_id == "c1"
    assert [t.name for t in tools] == ["book_table", "opening_hours"]
    assert tools[0].parameters["properties"]["party_size"]["type"] == "integer"
    assert tools[1].parameters["properties"]["day"] == {"type": "string"}

    await bot.send("great, a table for four please")
    assert bot.d.values["party_size"] == 4
    assert any(n.kind == "function" and n.data["name"] == "book_table" for n in bot.of(Note))
    assert bot.said == "Lovely! Booking for 4." and bot.of(Hangup)
    assert len(llm.requests[2][0]) == 7  # system, prompt, user, assistant, tool, assistant, user


async def test_llm_failure_takes_on_error(tmp_path: Path) -> None:
    write(tmp_path, main=FLOW)
    bot = Bot(tmp_path, llm=ScriptedLLM(ProviderError("rate limited", provider="scripted")))
    await bot.start()
    await bot.send("hello")
    assert bot.said == "Let me get a colleague."
    assert [n.data["message"] for n in bot.of(Note) if n.kind == "error"] == [
        "LLM failed: rate limited"
    ]


async def test_llm_node_without_a_provider(tmp_path: Path) -> None:
    write(tmp_path, main=FLOW)
    bot = Bot(tmp_path)
    await bot.start()
    await bot.send("hello")
    error = next(n.data["message"] for n in bot.of(Note) if n.kind == "error")
    assert error == ("node 'chat' is an llm node but no LLM provider is configured "
                     "(providers.llm in config.yaml)")  # fmt: skip


async def test_llm_unknown_function_is_answered_not_fatal(tmp_path: Path) -> None:
    write(tmp_path, main=FLOW)
    llm = ScriptedLLM([ToolCall("x", "launch_rockets", {})], ["Sorry, I can't do that."])
    bot = Bot(tmp_path, llm=llm)
    await bot.start()
    await bot.send("launch the rockets")
    assert bot.said == "Sorry, I can't do that."
    tool_message = llm.requests[1][0][-1]
    assert tool_message.role == "tool" and "no function launch_rockets" in tool_message.content


async def test_llm_conversation_survives_snapshot_and_restore(tmp_path: Path) -> None:
    write(tmp_path, main=FLOW)
    llm = ScriptedLLM(["Hello!", ToolCall("c1", "opening_hours", {"day": "monday"})], ["Noon."],
                      ["Bye."])  # fmt: skip
    bot = Bot(tmp_path, llm=llm, actions={"info.hours": lambda day: "12-22"})
    await bot.start()
    await bot.send("when do you open on monday?")
    snap = bot.d.snapshot()
    roles = ["assistant", "user", "assistant", "tool", "assistant"]
    assert [m["role"] for m in snap["llm"]] == roles
    assert snap["llm"][2]["tool_calls"] == [
        {"id": "c1", "name": "opening_hours", "arguments": {"day": "monday"}}
    ]
    restored = FlowDialogue.restore(bot.flows, bot.ctx, snap)
    assert [x.text async for x in restored.start() if isinstance(x, Say)] == [
        "Hi, this is Luigi's. How can I help?"
    ]
    [x async for x in restored.handle(UserInput("speech", "thanks"))]
    sent = llm.requests[-1][0]
    assert [m.role for m in sent] == ["system", *roles, "user"]
    assert sent[3].tool_calls == [ToolCall("c1", "opening_hours", {"day": "monday"})]
    assert sent[-1] == Message("user", "thanks")


CONTEXT_FLOW = """
    slots:
      name: {type: text, prompt: What is your name?}
    nodes:
      ask_name:
        ask: name
        next: chat
      chat:
        say: Thanks {{ name }}. What can I do?
        llm:
          system: You help callers of Luigi's.
          context_tokens: 200
"""


async def test_llm_gets_the_call_so_far_and_known_slots(tmp_path: Path) -> None:
    write(tmp_path, main=CONTEXT_FLOW)
    llm = ScriptedLLM(["Sure."], ["Of course."])
    bot = Bot(tmp_path, llm=llm)
    await bot.start()
    await bot.send("Ada")
    await bot.send("can I bring a dog?")
    messages, _ = llm.requests[0]
    assert messages[0].role == "system"
    assert messages[0].content.startswith("You help callers of Luigi's.")
    assert '"name": "Ada"' in messages[0].content  # the slot filled two nodes earlier
    # the earlier conversation comes before this node's own turns
    assert [(m.role, m.content) for m in messages[1:]] == [
        ("assistant", "What is your name?"),
        ("user", "Ada"),
        ("assistant", "Thanks Ada. What can I do?"),
        ("user", "can I bring a dog?"),
    ]


async def test_llm_context_is_trimmed_to_its_token_budget(tmp_path: Path) -> None:
    write(tmp_path, main=CONTEXT_FLOW)
    long = "blah " * 60  # ~75 tokens per turn against a 200-token budget
    llm = ScriptedLLM(*[[f"reply {i}"] for i in range(6)])
    bot = Bot(tmp_path, llm=llm)
    await bot.start()
    await bot.send("Ada")
    for i in range(6):
        await bot.send(f"{long} question {i}")
    messages, _ = llm.requests[-1]
    sent = sum(len(m.content) // 4 + 4 for m in messages)
    assert sent <= 200
    assert messages[-1].content.endswith("question 5")  # the latest words always stay
    assert not any("What is your name?" in m.content for m in messages[1:])  # oldest went first
