"""A Twilio-shaped phone call end to end over a real WebSocket: connected, start, real-time 20 ms
μ-law speech, the bot's paced reply with marks echoed on a playout clock, a key press, a barge-in
answered by `clear`, and a `stop` that releases everything."""

from __future__ import annotations

import time

import aiohttp
import numpy as np

from voicebot.audio import decode

from .support import serve
from .twilio_e2e_support import assert_nothing_left, record, synthesize
from .twilio_phone import Phone, mulaw_silence, pcm_rms, phone_config

PARAMS = {"From": "+15550001111", "To": "+15550002222", "CallSid": "CA0001"}


async def test_phone_call_end_to_end(tmp_path):
    async with serve(tmp_path, phone_config()) as server:
        rec = record(server)

        def heard(sentence: str, times: int = 1) -> bool:
            said = [" ".join(text.split()) for text, _, cut in rec.spoken if not cut]
            return said.count(sentence) >= times

        speech = await synthesize(server.runtime, "what time is it")
        phone = await Phone.call(server)
        await phone.connected()
        await phone.start(PARAMS)

        # the greeting plays, and its mark comes back once it has been heard
        await phone.wait(phone.idle)
        (call,) = rec.calls
        assert call.transport == "twilio"
        assert call.variables["From"] == "+15550001111"
        assert call.variables["call_sid"] == "CA0001"
        assert rec.spoken[0] == ("Hi.", "Hi.", False)

        # the caller speaks; the bot answers with paced μ-law frames and a mark per segment
        t_talk = time.monotonic()
        await phone.talk(mulaw_silence(200) + speech + mulaw_silence(600))
        await rec.wait(lambda: rec.transcripts)
        assert rec.transcripts == ["what time is it"]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.http}/telephony/stats") as resp:
                stats = await resp.json()
        assert stats["active_streams"] == 1
        assert stats["inbound_lag_ms"]["n"] >= 60  # every timestamped frame was measured
        assert 0 < stats["inbound_lag_ms"]["p50"] <= stats["inbound_lag_ms"]["p99"] < 100
        await rec.wait(lambda: heard("Anything else?"))
        await phone.wait(phone.idle)
        assert heard("You said what time is it.")
        frames = [p for t, p in phone.media if t >= t_talk]
        # whole 20 ms frames, up to pipeline.phone_message_ms (100 ms) a message: fewer writes
        assert frames and all(len(f) % 160 == 0 and 160 <= len(f) <= 800 for f in frames)
        reply = b"".join(frames)
        assert len(frames) < len(reply) // 160  # most messages carry more than one frame
        assert pcm_rms(reply) > 1000
        pcm = np.frombuffer(decode(reply[:8000], "mulaw"), dtype="<i2").astype(float)
        peak_hz = np.argmax(np.abs(np.fft.rfft(pcm))) * 8000 / len(pcm)
        assert abs(peak_hz - 440) < 10  # the stub voice, resampled to 8 kHz
        # real-time pacing: the reply's audio arrived over (nearly) its own duration
        arrivals = [t for t, _ in phone.media if t >= t_talk]
        assert arrivals[-1] - arrivals[0] > len(reply) / 8000 - 0.3
        # one mark per reply segment (greeting, two sentences), each echoed in order
        assert [name for _, name in phone.marks] == ["seg-1", "seg-2", "seg-3"]
        assert [name for _, name in phone.echoed] == ["seg-1", "seg-2", "seg-3"]

        # a key press is a turn of its own
        await phone.dtmf("5")
        await rec.wait(lambda: heard("You said I pressed 5.") and heard("Anything else?", 2))
        await phone.wait(phone.idle)
        assert phone.clears == []

        # barge-in: the caller talks over the bot; the bot sends `clear` and stops
        await phone.dtmf("7")
        bytes_before = sum(len(p) for _, p in phone.media)
        # 0.8 s into the reply
        await phone.wait(lambda: sum(len(p) for _, p in phone.media) > bytes_before + 6400)
        t_barge = time.monotonic()
        await phone.talk(speech[: 8 * 400])
        await phone.wait(lambda: phone.clears)
        assert phone.clears[0] - t_barge < 0.5
        ((said, heard_part, _),) = [s for s in rec.spoken if s[2]]
        said, heard_part = " ".join(said.split()), " ".join(heard_part.split())
        assert said.startswith("You said I pressed 7.")
        assert said.startswith(heard_part) and len(heard_part) < len(said)  # what was heard
        await phone.talk(mulaw_silence(600))
        await rec.wait(lambda: len(rec.transcripts) == 2)

        # the caller hangs up
        await phone.stop()
        assert await phone.wait_closed() == 1000
        await rec.wait(lambda: rec.ended)
        assert rec.ended == ["remote"]
        await assert_nothing_left(server)


async def test_goodbye_hangs_up_only_after_its_mark_comes_back(tmp_path):
    cfg = phone_config()
    cfg["providers"]["stt"]["text"] = "goodbye"
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        speech = await synthesize(server.runtime, "goodbye")
        phone = await Phone.call(server)
        await phone.connected()
        await phone.start(PARAMS)
        await phone.wait(phone.idle)
        await phone.talk(mulaw_silence(100) + speech + mulaw_silence(500))
        assert await phone.wait_closed() == 1000
        # the bot closed the stream only once the caller had heard all of "Goodbye!"
        goodbye_mark = phone.marks[-1][1]
        assert phone.echoed[-1][1] == goodbye_mark
        assert rec.spoken[-1] == ("Goodbye!", "Goodbye!", False)
        assert rec.ended == ["bot: caller said goodbye"]
        await assert_nothing_left(server)


async def test_phone_call_with_the_offline_engines(tmp_path):
    """webrtc VAD, pocketsphinx and espeak on a phone line: speech is detected, recognised and
    answered in 8 kHz μ-law. (pocketsphinx's wideband model mishears band-limited phone audio, so
    only a non-empty transcript is asserted here; exact text is checked with the stub above.)"""
    cfg = phone_config()
    cfg["providers"] = {
        "vad": {"use": "webrtc"},
        "stt": {"use": "pocketsphinx"},
        "tts": {"use": "espeak"},
        "llm": {"use": "stub"},
    }
    cfg["pipeline"]["vad_hangover_ms"] = 400
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        speech = await synthesize(server.runtime, "what time is it")
        phone = await Phone.call(server)
        await phone.connected()
        await phone.start(PARAMS)
        await phone.wait(phone.idle)
        t_talk = time.monotonic()
        await phone.talk(mulaw_silence(300) + speech + mulaw_silence(800))
        await rec.wait(lambda: rec.transcripts)
        assert rec.transcripts[0].strip()
        await rec.wait(lambda: any(text.strip() == "Anything else?" for text, _, _ in rec.spoken))
        frames = [p for t, p in phone.media if t >= t_talk]
        assert all(len(f) % 160 == 0 and 160 <= len(f) <= 800 for f in frames)
        assert pcm_rms(b"".join(frames)) > 500
        await phone.stop()
        assert await phone.wait_closed() == 1000
        await assert_nothing_left(server)
