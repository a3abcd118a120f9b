"""No lost words: speech that starts right after a DTMF key press (over the key's reply, or
before it has begun), or while the greeting plays, is transcribed from its first word, over
`/ws/voice` and over a Twilio media stream. The words are tones (`tests.tonestt`): a word with its
first syllable cut off is not heard."""

from __future__ import annotations

import json

import pytest
import websockets

from .conversation_cases import over_the_bot
from .support import Client, base_config, serve, silence
from .tonestt import word_pcm
from .twilio_e2e_support import record
from .twilio_phone import Phone, mulaw_silence, phone_config, to_mulaw_8k

SAID = "eight of spades four of clubs"


def with_tones(cfg: dict) -> dict:
    cfg["plugins"] = [*cfg["plugins"], "tests.tonestt"]
    cfg["providers"]["stt"] = {"use": "tones"}
    del cfg["pipeline"]["barge_in"]  # the default barge-in: held 600 ms as a maybe-backchannel
    return cfg


@pytest.mark.parametrize("key_late_ms", [0, 100, 400])
async def test_speech_right_after_a_key_is_heard_from_its_first_word_over_ws_voice(
    tmp_path, key_late_ms
):
    async with serve(tmp_path, with_tones(base_config())) as server:
        rec = record(server)
        c = Client(await websockets.connect(f"{server.url}/ws/voice"))
        at, _ = await c.wait_for(lambda e: e.get("type") == "response" and e["final"])
        await c.wait_for(lambda e: e.get("status") == "listening", after=at)
        speech = word_pcm(SAID) + silence(600)
        late = 32 * key_late_ms
        await c.stream(speech[:late])
        await c.ws.send(json.dumps({"type": "dtmf", "digit": "5"}))
        await c.stream(speech[late:])
        await rec.wait(lambda: rec.transcripts)
        assert rec.transcripts == [SAID]
        await c.wait_for(lambda e: e.get("type") == "response" and SAID in e["text"])
        await c.close()


@pytest.mark.parametrize("key_late_ms", [0, 100, 400])
async def test_speech_right_after_a_key_is_heard_from_its_first_word_over_twilio(
    tmp_path, key_late_ms
):
    async with serve(tmp_path, with_tones(phone_config())) as server:
        rec = record(server)
        phone = await Phone.call(server)
        await phone.connected()
        await phone.start()
        await phone.wait(phone.idle)
        speech = to_mulaw_8k(word_pcm(SAID), 16000) + mulaw_silence(600)
        late = 8 * key_late_ms
        await phone.talk(speech[:late])
        await phone.dtmf("5")
        await phone.talk(speech[late:])
        await rec.wait(lambda: rec.transcripts)
        assert rec.transcripts == [SAID]
        await rec.wait(lambda: any(SAID in text for text, _, _ in rec.spoken))
        await phone.stop()
        await phone.wait_closed()


async def test_speech_right_after_a_key_that_cut_the_bot_off_is_heard_whole(tmp_path):
    cfg = with_tones(base_config())
    cfg["dialogue"]["greeting"] = "Welcome to the test line. This greeting goes on for a while."
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        c = Client(await websockets.connect(f"{server.url}/ws/voice"))
        await c.wait_for(lambda e: e.get("status") == "speaking")
        await c.wait_audio(16000)  # half a second into the greeting
        await c.ws.send(json.dumps({"type": "dtmf", "digit": "5"}))
        await c.stream(word_pcm(SAID) + silence(600))
        await rec.wait(lambda: rec.transcripts)
        assert rec.transcripts == [SAID]
        await c.close()


async def test_speech_during_the_greeting_is_heard_from_its_first_word_over_ws_voice(tmp_path):
    cfg = over_the_bot(with_tones(base_config()), {"use": "tones"})
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        c = Client(await websockets.connect(f"{server.url}/ws/voice"))
        await c.wait_for(lambda e: e.get("status") == "speaking")
        await c.wait_audio(16000)  # half a second into the greeting
        await c.stream(word_pcm(SAID) + silence(600))
        await rec.wait(lambda: rec.transcripts)
        assert rec.transcripts == [SAID]
        await c.close()


async def test_speech_during_the_greeting_is_heard_from_its_first_word_over_twilio(tmp_path):
    cfg = over_the_bot(with_tones(phone_config()), {"use": "tones"})
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        phone = await Phone.call(server)
        await phone.connected()
        await phone.start()
        await phone.wait(lambda: len(phone.audio()) >= 4000)  # half a second of the greeting
        await phone.talk(to_mulaw_8k(word_pcm(SAID), 16000) + mulaw_silence(600))
        await rec.wait(lambda: rec.transcripts)
        assert rec.transcripts == [SAID]
        assert phone.clears  # it interrupted the greeting
        await phone.stop()
        await phone.wait_closed()
