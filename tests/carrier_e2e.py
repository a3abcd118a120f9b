"""The conversation every carrier's end-to-end test plays once its stream has started: the
greeting heard (its mark acknowledged), a spoken question answered in the carrier's own format
(decoded and checked: paced, audible, the stub voice's 440 Hz), a key press, and a barge-in the
bot answers with the carrier's clear while it records what the caller heard."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from voicebot.providers import AudioFormat

from .carrier_phone import CarrierPhone


async def caller_speech(runtime: Any, phone: CarrierPhone, text: str) -> bytes:
    """`text` from the server's own TTS, in the carrier's codec and rate."""
    tts = runtime.providers["tts"]
    chunks = [c async for c in tts.synthesize(text, AudioFormat(16000, "pcm_s16le"))]
    return phone.dialect.encode_pcm(b"".join(c.data for c in chunks), chunks[0].sample_rate)


async def converse(server: Any, phone: CarrierPhone, rec: Any) -> None:
    def heard(sentence: str, times: int = 1) -> bool:
        said = [" ".join(text.split()) for text, _, cut in rec.spoken if not cut]
        return said.count(sentence) >= times

    dialect = phone.dialect
    speech = await caller_speech(server.runtime, phone, "what time is it")

    # the greeting plays, and its mark comes back once it has been heard
    await phone.wait(phone.idle)
    assert rec.spoken[0] == ("Hi.", "Hi.", False)

    # the caller speaks; the bot answers with paced frames in the carrier's codec
    t_talk = time.monotonic()
    await phone.talk(dialect.silence(200) + speech + dialect.silence(600))
    await rec.wait(lambda: rec.transcripts)
    assert rec.transcripts == ["what time is it"]
    await rec.wait(lambda: heard("Anything else?"))
    await phone.wait(phone.idle)
    assert heard("You said what time is it.")
    frames = [p for t, p in phone.media if t >= t_talk]
    assert frames and {len(f) for f in frames} == {dialect.frame_bytes}
    pcm = dialect.pcm(b"".join(frames))
    assert float(np.sqrt(np.mean(pcm**2))) > 1000
    window = pcm[: dialect.rate]
    peak_hz = np.argmax(np.abs(np.fft.rfft(window))) * dialect.rate / len(window)
    assert abs(peak_hz - 440) < 10  # the stub voice, in the carrier's rate
    arrivals = [t for t, _ in phone.media if t >= t_talk]
    assert arrivals[-1] - arrivals[0] > len(frames) * 0.02 - 0.3  # paced in real time
    assert [name for _, name in phone.echoed] == ["seg-1", "seg-2", "seg-3"]

    # a key press is a turn of its own
    await phone.dtmf("5")
    await rec.wait(lambda: heard("You said I pressed 5.") and heard("Anything else?", 2))
    await phone.wait(phone.idle)
    assert phone.clears == []

    # barge-in: the caller talks over the bot; the bot sends its clear and stops
    await phone.dtmf("7")
    frames_before = len(phone.media)
    await phone.wait(lambda: len(phone.media) > frames_before + 40)  # 0.8 s into the reply
    t_barge = time.monotonic()
    await phone.talk(speech[: dialect.frame_bytes * 50 * 2 // 5])
    await phone.wait(lambda: phone.clears)
    assert phone.clears[0] - t_barge < 0.5
    ((said, heard_part, _),) = [s for s in rec.spoken if s[2]]
    said, heard_part = " ".join(said.split()), " ".join(heard_part.split())
    assert said.startswith("You said I pressed 7.")
    assert said.startswith(heard_part) and len(heard_part) < len(said)  # what was heard
    await phone.talk(dialect.silence(600))
    await rec.wait(lambda: len(rec.transcripts) == 2)
