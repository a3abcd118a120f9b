"""Whole turns: a pause after an unfinished phrase is not the end of the turn."""

import asyncio
import base64
import json
import time

import websockets

from voicebot.call.endpointing import EndOfTurn
from voicebot.config.model import UNFINISHED_OPENERS, UNFINISHED_WORDS

from .conversation_cases import unfinished_wait
from .support import Client, base_config, serve, silence, tone


def test_unfinished_phrases():
    eot = EndOfTurn(UNFINISHED_WORDS)
    for text in (
        "I'd like to book a table for",
        "I'd like to book a table for.",
        "I'd like",
        "My name is",
        "I want to change my address and",
        "Can you tell me about the um",
        "Can you tell me about the uhm?",
        "So I was thinking...",
        "Well, the thing is,",
        "I'd like to",
    ):
        assert eot.unfinished(text), text
    for text in (
        "",
        "What time is it?",
        "Book a table for four on Friday.",
        "I want that",
        "Turn it on",
        "Come in",
        "Yes.",
    ):
        assert not eot.unfinished(text), text
    assert EndOfTurn(["por favor y"]).unfinished("quiero una mesa por favor y")
    assert not EndOfTurn([]).unfinished("and")


def test_more_unfinished_endings():
    eot = EndOfTurn(UNFINISHED_WORDS)
    for text in ("My account number is", "It feels like", "They're", "I was gonna"):
        assert eot.unfinished(text), text
    for text in ("Book a table for 4.", "Where have you been?", "Not quite."):
        assert not eot.unfinished(text), text  # a number after "for" is not "for"


def test_sentences_that_may_go_on():
    """A lone dependent clause may be waiting for its main clause; a list of numbered items
    with no "and" before its last item may have more to come. Both are often said whole."""
    eot = EndOfTurn(UNFINISHED_WORDS, UNFINISHED_OPENERS)
    for text in (
        "Unless to be rather cold-hearted and rather selfish.",
        "Although it was late at night.",
        "Eight of spades, four of clubs.",
        "Seven, two, nine.",
    ):
        assert eot.unsure(text) and not eot.unfinished(text), text
    for text in (
        "If possible.",
        "If it rains, we stay home.",
        "If I call tomorrow, is that okay?",
        "Eight of spades, four of clubs and seven of hearts.",
        "Two tickets, please.",
        "Yes, 4.",
        "What time is it?",
    ):
        assert not eot.unsure(text), text
    assert not EndOfTurn(UNFINISHED_WORDS).unsure("Unless to be rather cold-hearted today.")


def config(stt_text: str, wait_ms: int) -> dict:
    return unfinished_wait(base_config(), stt_text, wait_ms)


async def greeted(server) -> Client:
    c = Client(await websockets.connect(f"{server.url}/ws/voice"))
    at, _ = await c.wait_for(lambda e: e.get("type") == "response" and e["final"])
    await c.wait_for(lambda e: e.get("status") == "listening", after=at)
    return c


def finals(c: Client) -> list[str]:
    return [e["text"] for _, e in c.events if e.get("type") == "transcript" and e["final"]]


def two_pieces(wait_ms: int, *pieces: str, delay_ms: int = 0) -> dict:
    cfg = config("", wait_ms)
    cfg["providers"]["stt"] = {"use": "stub", "per_burst": list(pieces), "delay_ms": delay_ms}
    return cfg


async def test_pieces_of_one_turn_cut_at_a_thinking_pause_are_one_turn(tmp_path):
    cfg = two_pieces(3000, "I'd like to book a table for", "four people")
    async with serve(tmp_path, cfg) as server:
        c = await greeted(server)
        start = time.monotonic()
        # a pause longer than the 200 ms hangover: the VAD ends an utterance in it
        await c.stream(tone(300) + silence(700) + tone(300) + silence(400))
        await c.wait_for(lambda e: e.get("type") == "response" and e["final"], after=start)
        # one turn, answered once, and both pieces decoded as ONE audio: the stub says a phrase
        # per burst it was given, so fragments joined as text would read "…for I'd like…"
        assert finals(c) == ["I'd like to book a table for four people"]
        await c.close()


async def test_a_caller_going_on_before_the_transcript_is_decoded_whole(tmp_path):
    # the first piece's transcript comes while the caller already speaks again
    cfg = two_pieces(0, "what time", "is it", delay_ms=500)
    async with serve(tmp_path, cfg) as server:
        c = await greeted(server)
        start = time.monotonic()
        await c.stream(tone(300) + silence(400) + tone(500) + silence(400))
        await c.wait_for(lambda e: e.get("type") == "response" and e["final"], after=start)
        assert finals(c) == ["what time is it"]
        await c.close()


async def test_an_unfinished_phrase_alone_is_answered_after_the_wait(tmp_path):
    async with serve(tmp_path, config("I'd like to book a table for", 800)) as server:
        c = await greeted(server)
        await c.stream(tone(300))
        spoke = time.monotonic()
        await c.stream(silence(200))
        at, ev = await c.wait_for(lambda e: e.get("type") == "transcript" and e["final"])
        assert at - spoke >= 0.8  # the hangover, then the wait for the rest
        assert ev["text"] == "I'd like to book a table for"
        await c.close()


async def test_a_complete_sentence_is_answered_without_waiting(tmp_path):
    async with serve(tmp_path, config("what time is it", 3000)) as server:
        c = await greeted(server)
        await c.stream(tone(300))
        spoke = time.monotonic()
        await c.stream(silence(200))
        at, _ = await c.wait_for(lambda e: e.get("type") == "transcript" and e["final"])
        assert at - spoke < 1.0  # nowhere near the 3 s wait
        await c.close()


async def test_a_whole_utterance_message_continues_the_unfinished_phrase(tmp_path):
    cfg = two_pieces(5000, "I'd like to book a table for", "four people")
    async with serve(tmp_path, cfg) as server:
        c = await greeted(server)
        (call,) = server.runtime.calls.values()
        held = asyncio.Event()
        keep = call.listener.carry_last

        def carry_last() -> None:
            keep()
            held.set()

        call.listener.carry_last = carry_last
        start = time.monotonic()
        await c.stream(tone(300) + silence(300))
        # the first piece is transcribed and held, waiting for the rest
        await asyncio.wait_for(held.wait(), 10)
        # the rest comes as one `audio` message (raw PCM in the session's encoding)
        rest = base64.b64encode(silence(200) + tone(300)).decode()
        await c.ws.send(json.dumps({"type": "audio", "content": rest}))
        await c.wait_for(lambda e: e.get("type") == "response" and e["final"], after=start)
        assert finals(c) == ["I'd like to book a table for four people"]
        await c.close()
