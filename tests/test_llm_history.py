"""LLM mode keeps its conversation within `dialogue.context_tokens`: a long call neither sends
an ever larger request every turn nor keeps every word of it in memory."""

from __future__ import annotations

import json

from voicebot.bench.openai_fake import ChatReply, FakeOpenAI
from voicebot.config import DialogueConfig
from voicebot.dialogue import DialogueContext, Say, UserInput
from voicebot.dialogue.simple import SimpleDialogue
from voicebot_plugins.openai_providers import OpenAILLM

TURNS = 60
BUDGET = 600  # tokens, about 2,400 characters


async def test_llm_conversation_sent_each_turn_stays_within_the_budget():
    async with FakeOpenAI() as oa:
        llm = OpenAILLM(OpenAILLM.Options(api_key="k", base_url=oa.url + "/v1"))
        await llm.start()
        cfg = DialogueConfig(mode="llm", system_prompt="Be brief.", context_tokens=BUDGET)
        dialogue = SimpleDialogue(DialogueContext("c1", {}, llm=llm), cfg, "llm")
        try:
            for turn in range(TURNS):
                oa.chat_replies.append(ChatReply(text_parts=[f"Answer {turn}: " + "la " * 100]))
                question = f"question {turn} " + "word " * 40
                said = [
                    o.text
                    async for o in dialogue.handle(UserInput("text", text=question))
                    if isinstance(o, Say)
                ]
                assert said
        finally:
            await llm.aclose()
    sizes = [len(json.dumps(r.body["messages"])) for r in oa.requests if r.route == "chat"]
    assert len(sizes) == TURNS
    # about 300 tokens a turn: without trimming the last request would hold all 60 turns
    assert max(sizes) < BUDGET * 4 + 1000, sizes[-5:]
    last = oa.requests[-1].body["messages"]
    assert last[0] == {"role": "system", "content": "Be brief."}
    assert last[-1]["content"].startswith(f"question {TURNS - 1} ")
    assert sum(len(m.content) for m in dialogue.messages) < BUDGET * 4 + 1000  # memory, too
