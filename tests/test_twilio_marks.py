"""Marks on a phone line: those a `clear` flushed come back at once (Twilio echoes every pending
mark on clear) and must not count as heard, whether they arrive before or during a later reply."""

from __future__ import annotations

from .support import serve
from .twilio_e2e_support import assert_nothing_left, record, synthesize
from .twilio_phone import Phone, mulaw_silence, phone_config


async def test_marks_flushed_by_a_barge_in_are_not_taken_as_heard(tmp_path):
    cfg = phone_config()
    cfg["providers"]["llm"]["reply"] = "Okay. You said {text}, and there is a lot more to say."
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        speech = await synthesize(server.runtime, "what time is it")
        # 600 ms between sending audio and hearing it: marks stay pending long enough to be cut
        phone = await Phone.call(server, playout_delay_s=0.6)
        await phone.connected()
        await phone.start()
        await phone.wait(phone.idle)
        (call,) = rec.calls
        forwarded: list[str] = []
        real_mark_played = call.mark_played

        def spy(name: str) -> None:
            forwarded.append(name)
            real_mark_played(name)

        call.mark_played = spy
        marks_before = len(phone.marks)
        await phone.dtmf("7")
        await phone.wait(lambda: len(phone.marks) > marks_before)  # "Okay." fully sent
        okay_mark = phone.marks[-1][1]
        await phone.talk(speech[: 8 * 300])  # the caller talks over the bot
        await phone.wait(lambda: phone.clears)
        await phone.wait(lambda: okay_mark in [name for _, name in phone.echoed])
        await phone.talk(mulaw_silence(500))
        await rec.wait(lambda: len(rec.transcripts) == 1)
        assert okay_mark not in forwarded  # echoed because of the clear, not because it played
        ((said, heard, _),) = [s for s in rec.spoken if s[2]]
        assert said.split()[0] == "Okay." and heard == ""  # nothing of it reached the caller
        await phone.stop()
        await phone.wait_closed()
        await assert_nothing_left(server)
