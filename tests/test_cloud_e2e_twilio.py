"""A phone call over the Twilio media stream with all three cloud providers faked on loopback:
Deepgram hears the caller, OpenAI answers, ElevenLabs speaks μ-law 8 kHz straight onto the line.
The caller hears the first sentence while the LLM is still writing the rest of its reply."""

from __future__ import annotations

import asyncio
import time

from tests.fakes.deepgram_fake import FakeDeepgram
from tests.fakes.elevenlabs_fake import FakeElevenLabs, eleven_audio
from voicebot.bench.openai_fake import ChatReply, FakeOpenAI, tone
from voicebot.hookspecs import hookimpl
from voicebot.providers import Usage

from .support import serve
from .test_cloud_e2e_browser import cloud_config
from .twilio_e2e_support import assert_nothing_left, record
from .twilio_phone import Phone, mulaw_silence, phone_config, to_mulaw_8k

PARAMS = {"From": "+15550001111", "To": "+15550002222", "CallSid": "CA0001"}


class UsageLog:
    """A plugin that records what the `usage` lifecycle hook reports, per call."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Usage]] = []

    @hookimpl
    def usage(self, call, usage) -> None:
        self.seen.append((call.id, usage))


FIRST = "Yes, we have a table at eight."


async def test_phone_call_with_cloud_providers_streams_sentence_by_sentence(tmp_path):
    async with FakeOpenAI() as oa, FakeDeepgram() as dg, FakeElevenLabs() as xi:
        dg.utterances.append("is there a table for two tonight")
        release = asyncio.Event()
        oa.chat_replies.append(
            ChatReply(text_parts=[FIRST, " Shall I", " book it", "?"], hold_last=release)
        )
        cfg = cloud_config(oa, dg, xi)
        cfg["telephony"] = phone_config()["telephony"]
        async with serve(tmp_path, cfg) as server:
            rec = record(server)
            usage = UsageLog()
            server.runtime.pm.register(usage)
            phone = await Phone.call(server)
            await phone.connected()
            await phone.start(PARAMS)
            await phone.wait(phone.idle)  # the greeting was heard

            t_talk = time.monotonic()
            speech = to_mulaw_8k(tone(16000 * 6 // 10, 16000), 16000)
            await phone.talk(mulaw_silence(200) + speech + mulaw_silence(600))
            await rec.wait(lambda: rec.transcripts == ["is there a table for two tonight"])

            # half a second of the first sentence reaches the phone while the LLM still
            # holds back the end of its reply
            await phone.wait(lambda: len(phone.audio(since=t_talk)) >= 4000)
            assert oa.chat_finished_at is None
            t_first_audio = next(t for t, _ in phone.media if t >= t_talk)
            release.set()
            await rec.wait(lambda: any(t.startswith("Shall I") for t, _, _ in rec.spoken))
            await phone.wait(phone.idle)
            assert t_first_audio < oa.chat_finished_at

            # ElevenLabs was asked for the phone's own format, and its bytes went out as they
            # were: no resampling, no transcoding
            assert {r.query["output_format"] for r in xi.requests} == {"ulaw_8000"}
            first_reply = phone.audio(since=t_talk)[: len(eleven_audio(FIRST, "ulaw_8000"))]
            assert first_reply == eleven_audio(FIRST, "ulaw_8000")
            assert dg.count("listen") == 1 and dg.requests[0].query["encoding"] == "linear16"

            await phone.stop()
            await phone.wait_closed()
            await assert_nothing_left(server)
            # every provider billed this call through the `usage` hook
            by = {u.provider: u for _, u in usage.seen}
            assert {call_id for call_id, _ in usage.seen} == {rec.calls[0].id}
            assert by["elevenlabs"].characters > 0  # TTS: characters synthesized
            assert sum(u.audio_seconds for _, u in usage.seen if u.provider == "deepgram") > 0
            assert by["openai"].output_tokens > 0  # LLM: tokens, from its final usage chunk
        assert "listen" in dg.completed  # the call's end closed Deepgram's stream cleanly
