"""A whole call over `/ws/voice` with all three cloud providers faked on loopback: Deepgram hears
the caller, OpenAI answers, ElevenLabs speaks. The first sentence is heard while the LLM is still
writing the rest of its reply."""

from __future__ import annotations

import asyncio

import websockets

from tests.fakes.deepgram_fake import FakeDeepgram
from tests.fakes.elevenlabs_fake import FakeElevenLabs
from voicebot.bench.openai_fake import ChatReply, FakeOpenAI

from .support import Client, base_config, serve, silence, tone


def cloud_config(oa: FakeOpenAI, dg: FakeDeepgram, xi: FakeElevenLabs) -> dict:
    return base_config(
        providers={
            "vad": {"use": "testvad"},
            "stt": {"use": "deepgram", "api_key": "dg", "base_url": dg.url},
            "tts": {"use": "elevenlabs", "api_key": "xi", "base_url": xi.url, "voice_id": "v1"},
            "llm": {"use": "openai", "api_key": "sk", "base_url": oa.url + "/v1"},
        }
    )


async def test_browser_call_streams_first_sentence_before_llm_finishes(tmp_path):
    async with FakeOpenAI() as oa, FakeDeepgram() as dg, FakeElevenLabs() as xi:
        dg.utterances.append("is there a table for two tonight")
        release = asyncio.Event()
        oa.chat_replies.append(
            ChatReply(
                text_parts=["Yes, we have a table at eight.", " Shall I", " book it", "?"],
                hold_last=release,
            )
        )
        async with serve(tmp_path, cloud_config(oa, dg, xi)) as server:
            c = Client(await websockets.connect(f"{server.url}/ws/voice"), 16000)
            await c.wait_for(lambda e: e.get("type") == "response" and e["final"])  # greeting
            await c.stream(silence(200) + tone(600) + silence(500))
            t_asked, tr = await c.wait_for(lambda e: e.get("type") == "transcript" and e["final"])
            assert tr["text"] == "is there a table for two tonight"
            # the first sentence is synthesised and played while the LLM holds its last token
            await c.wait_audio(16000, after=t_asked)  # 0.5 s of reply audio
            assert oa.chat_finished_at is None
            release.set()
            await c.wait_for(
                lambda e: e.get("type") == "response" and e["final"] and "book it" in e["text"]
            )
            await c.close()
        assert oa.chat_finished_at is not None
        assert [r.body["text"] for r in xi.requests] == [
            "Hi.",
            "Yes, we have a table at eight.",
            "Shall I book it?",
        ]
        assert {r.query["output_format"] for r in xi.requests} == {"pcm_16000"}
        assert dg.count("listen") == 1 and "Finalize" in dg.control


async def test_barge_in_closes_the_in_flight_tts_stream(tmp_path):
    async with FakeOpenAI() as oa, FakeDeepgram() as dg, FakeElevenLabs() as xi:
        dg.utterances.extend(["tell me everything", "stop"])
        oa.chat_replies.append(ChatReply(text_parts=["Well, " + "blah " * 60 + "and so on."]))
        async with serve(tmp_path, cloud_config(oa, dg, xi)) as server:
            c = Client(await websockets.connect(f"{server.url}/ws/voice"), 16000)
            await c.wait_for(lambda e: e.get("type") == "response" and e["final"])
            xi.audio_pace = 0.05  # the long reply streams slower than it plays
            await c.stream(silence(200) + tone(600) + silence(500))
            t_asked, _ = await c.wait_for(lambda e: e.get("type") == "transcript" and e["final"])
            await c.wait_audio(6400, after=t_asked)  # the reply is playing
            await c.stream(tone(400))  # the caller talks over it
            await c.wait_for(lambda e: e.get("status") == "interrupted")
            await xi.wait_disconnect("tts")
            await c.close()
        assert xi.completed == ["tts"]  # only the greeting was synthesised to the end
