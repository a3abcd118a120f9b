"""A turn cut by a thinking pause on a phone line: the pieces reach STT as ONE audio (issue 17),
over a real Twilio media stream at 8 kHz μ-law."""

from __future__ import annotations

from .support import serve, silence, tone
from .twilio_e2e_support import record
from .twilio_phone import Phone, mulaw_silence, phone_config, to_mulaw_8k


async def test_pieces_cut_at_a_pause_are_decoded_together_on_a_phone_line(tmp_path):
    cfg = phone_config()
    pieces = ["I'd like to book a table for", "four people"]
    cfg["providers"]["stt"] = {"use": "stub", "per_burst": pieces}
    cfg["pipeline"]["end_of_turn"] = {"unfinished_wait_ms": 3000}
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        phone = await Phone.call(server)
        await phone.connected()
        await phone.start()
        await phone.wait(phone.idle)
        # a 700 ms pause: longer than the 200 ms hangover, so the VAD ends an utterance in it
        speech = tone(300) + silence(700) + tone(300)
        await phone.talk(to_mulaw_8k(speech, 16000) + mulaw_silence(400))
        await rec.wait(lambda: rec.transcripts)
        assert rec.transcripts == ["I'd like to book a table for four people"]
        await phone.stop()
