"""Issue 17's conversation behaviours over a Twilio media stream (8 kHz μ-law, marks echoed on a
playout clock, `clear` on a stop), as the `/ws/voice` tests check them over the browser door: a
backchannel neither stops the bot nor becomes a turn; a wordless noise that stopped it makes it
say the cut-off sentence again; a pause after an unfinished phrase is waited out and the pieces
are one turn; the last words before `stop` reach the transcript record."""

from __future__ import annotations

import time

from .conversation_cases import GREETING_MS, first_unheard, over_the_bot, unfinished_wait
from .support import serve, tone
from .twilio_e2e_support import record
from .twilio_phone import Phone, mulaw_silence, phone_config, to_mulaw_8k


def noise(ms: int) -> bytes:
    """Speech to the loudness VAD: what the stub recogniser makes of it is the config's."""
    return to_mulaw_8k(tone(ms), 16000)


async def answered(server) -> Phone:
    phone = await Phone.call(server)
    await phone.connected()
    await phone.start()
    return phone


async def talk_over_greeting(phone: Phone, wire: bytes) -> float:
    await phone.wait(lambda: len(phone.audio()) >= 4000)  # half a second of the greeting
    start = time.monotonic()
    await phone.talk(wire)
    return start


def greeting_over(rec) -> bool:
    return any(text.endswith("time to talk over it.") for text, _, cut in rec.spoken if not cut)


async def test_a_backchannel_over_the_bot_neither_stops_it_nor_becomes_a_turn(tmp_path):
    async with serve(tmp_path, over_the_bot(phone_config(), "Mm-hm.")) as server:
        rec = record(server)
        phone = await answered(server)
        await talk_over_greeting(phone, noise(300) + mulaw_silence(400))
        await rec.wait(lambda: greeting_over(rec))
        assert phone.clears == []
        assert [cut for _, _, cut in rec.spoken] == [False] * len(rec.spoken)
        assert rec.transcripts == []
        assert len(phone.audio()) >= 8 * GREETING_MS * 0.95  # all of it was played
        await phone.stop()
        await phone.wait_closed()


async def test_a_wordless_noise_that_stopped_the_bot_makes_it_say_the_sentence_again(tmp_path):
    async with serve(tmp_path, over_the_bot(phone_config(), "")) as server:
        rec = record(server)
        phone = await answered(server)
        await talk_over_greeting(phone, noise(900) + mulaw_silence(400))
        await phone.wait(lambda: phone.clears)
        stopped_at = phone.clears[0]
        await rec.wait(lambda: greeting_over(rec))
        ((said, heard),) = [(text, heard) for text, heard, cut in rec.spoken if cut]
        cut_at = next(i for i, s in enumerate(rec.spoken) if s[2])
        again = " ".join(text for text, _, _ in rec.spoken[cut_at + 1 :])
        assert again.startswith(first_unheard(said, heard)), (said, heard, again)
        resumed_at = next(t for t, _ in phone.media if t > stopped_at)
        assert resumed_at - stopped_at < 3.0  # resume_timeout_ms
        assert rec.transcripts == []
        await phone.stop()
        await phone.wait_closed()


async def test_a_pause_after_an_unfinished_phrase_is_waited_out_and_joined(tmp_path):
    cfg = phone_config()
    # one text per burst of sound in the audio decoded: the pieces kept and decoded again as one
    # audio come back as the whole phrase, as a recogniser given both would hear it
    pieces = {"use": "stub", "per_burst": ["I'd like to book a table for", "four on Friday"]}
    async with serve(tmp_path, unfinished_wait(cfg, pieces, 3000)) as server:
        rec = record(server)
        phone = await answered(server)
        await phone.wait(phone.idle)
        # a pause longer than the 200 ms hangover: the VAD ends an utterance in it
        await phone.talk(noise(300) + mulaw_silence(700) + noise(300) + mulaw_silence(400))
        await rec.wait(lambda: rec.transcripts)
        assert rec.transcripts == ["I'd like to book a table for four on Friday"]
        await rec.wait(lambda: any("Friday" in text for text, _, _ in rec.spoken))
        replies = [text for text, _, _ in rec.spoken if text.startswith("You said")]
        assert replies == ["You said I'd like to book a table for four on Friday."]
        await phone.stop()
        await phone.wait_closed()


async def test_the_last_words_before_stop_reach_the_transcript_record(tmp_path):
    async with serve(tmp_path, phone_config()) as server:
        rec = record(server)
        phone = await answered(server)
        await phone.wait(phone.idle)
        await phone.talk(mulaw_silence(100) + noise(500))  # still talking: no silence ended it
        await phone.stop()
        await rec.wait(lambda: rec.ended)
        assert rec.transcripts == ["what time is it"]
        assert await phone.wait_closed() == 1000
