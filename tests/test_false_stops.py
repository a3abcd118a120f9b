"""No false stops, end to end over /ws/voice: a backchannel over the bot neither stops it nor
becomes a turn; a wordless noise that stopped it makes it say the cut-off sentence again."""

import time

import websockets

from .conversation_cases import GREETING_MS, first_unheard, over_the_bot
from .support import Client, base_config, serve, silence, tone


def config(stt_text: str, **barge_in: object) -> dict:
    return over_the_bot(base_config(), stt_text, **barge_in)


async def talk_over_greeting(server, pcm: bytes) -> tuple[Client, float]:
    c = Client(await websockets.connect(f"{server.url}/ws/voice"))
    await c.wait_for(lambda e: e.get("status") == "speaking")
    await c.wait_audio(16000)  # half a second of the greeting has arrived
    start = time.monotonic()
    await c.stream(pcm)
    return c, start


def statuses(c: Client, after: float) -> list[str]:
    return [e["status"] for t, e in c.events if t >= after and e.get("type") == "status"]


def finals(c: Client) -> list[str]:
    return [e["text"] for _, e in c.events if e.get("type") == "transcript" and e["final"]]


async def test_a_backchannel_over_the_bot_neither_stops_it_nor_becomes_a_turn(tmp_path):
    async with serve(tmp_path, config("Mm-hm.")) as server:
        c, start = await talk_over_greeting(server, tone(300) + silence(400))
        await c.wait_for(lambda e: e.get("status") == "listening", after=start, timeout=20)
        assert "interrupted" not in statuses(c, start), c.types()
        assert finals(c) == []
        greeting_bytes = 16000 * 2 * GREETING_MS // 1000
        assert sum(len(a) for _, a in c.audio) >= greeting_bytes * 0.95  # all of it was played
        await c.close()


async def test_words_said_briefly_over_the_bot_interrupt_once_transcribed(tmp_path):
    async with serve(tmp_path, config("what time is it")) as server:
        c, start = await talk_over_greeting(server, tone(300) + silence(400))
        at, _ = await c.wait_for(lambda e: e.get("status") == "interrupted", after=start)
        assert at - start >= 0.3  # held until the utterance ended, not cut at 60 ms of speech
        await c.wait_for(lambda e: e.get("type") == "response" and "what time" in e["text"])
        assert finals(c) == ["what time is it"]
        await c.close()


async def test_a_wordless_noise_that_stopped_the_bot_makes_it_say_the_sentence_again(tmp_path):
    async with serve(tmp_path, config("")) as server:
        c, start = await talk_over_greeting(server, tone(900) + silence(400))
        at, stop = await c.wait_for(lambda e: e.get("status") == "interrupted", after=start)
        _, again = await c.wait_for(
            lambda e: e.get("type") == "response" and e["final"], after=at, timeout=10
        )
        assert again["text"].startswith(first_unheard(stop["said"], stop["heard"])), (stop, again)
        assert again["text"].endswith("time to talk over it.")
        await c.wait_audio(16000, after=at + 0.1)  # and it is spoken
        assert finals(c) == []
        await c.close()


async def test_resume_can_be_turned_off(tmp_path):
    async with serve(tmp_path, config("", resume_timeout_ms=0)) as server:
        c, start = await talk_over_greeting(server, tone(900) + silence(400))
        at, _ = await c.wait_for(lambda e: e.get("status") == "interrupted", after=start)
        await c.wait_for(lambda e: e.get("status") == "listening", after=at)
        assert not [e for t, e in c.events if t > at and e.get("type") == "response"]
        await c.close()


async def test_a_long_backchannel_that_stopped_the_bot_is_no_turn_and_it_goes_on(tmp_path):
    async with serve(tmp_path, config("Mm-hmm.")) as server:
        c, start = await talk_over_greeting(server, tone(900) + silence(400))
        at, _ = await c.wait_for(lambda e: e.get("status") == "interrupted", after=start)
        _, again = await c.wait_for(
            lambda e: e.get("type") == "response" and e["final"], after=at, timeout=10
        )
        assert again["text"].endswith("time to talk over it.")
        assert finals(c) == []
        await c.close()
