"""A phone call is listened to at its own rate; only what STT hears is resampled."""

from __future__ import annotations

import numpy as np
import yaml

from voicebot.audio import decode, encode
from voicebot.config import load_config
from voicebot.providers import AudioFormat
from voicebot.runtime import Runtime


class SilentIO:
    supports_marks = True

    async def send_audio(self, frame): ...
    async def send_event(self, event): ...
    async def send_mark(self, name): ...
    async def clear(self): ...
    async def transfer(self, target):
        return False

    async def close(self, code=1000, reason=""): ...


def voiced(ms: int, rate: int) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    x = sum(np.sin(2 * np.pi * k * 140 * t) / k for k in range(1, 20)) * (0.6 + 0.4 * np.sin(8 * t))
    return (x / np.abs(x).max() * 12000).astype("<i2").tobytes()


async def runtime_for(tmp_path) -> Runtime:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "providers": {
                    "vad": {"use": "webrtc"},
                    "stt": {"use": "stub"},
                    "tts": {"use": "stub"},
                },
                "dialogue": {"mode": "echo"},
                "pipeline": {"preroll_ms": 100},
            }
        )
    )
    rt = Runtime(load_config(cfg, env={}))
    await rt.start()
    return rt


async def test_phone_call_vad_at_8k_and_stt_gets_16k(tmp_path):
    rt = await runtime_for(tmp_path)
    call = rt.new_call(transport="t", io=SilentIO(), audio_format=AudioFormat(8000, "mulaw"))
    assert call.listener._vad_rate == 8000  # webrtc judges telephone audio natively
    silence = encode(bytes(2 * 160), "mulaw")
    speech = encode(voiced(600, 8000), "mulaw")
    for _ in range(25):
        call.feed_audio(silence)
    for i in range(0, len(speech), 160):
        call.feed_audio(speech[i : i + 160])
    for _ in range(20):  # the 300 ms hangover ends the turn
        call.feed_audio(silence)
    sent, kinds = b"", []
    while not call.listener._stt_queue.empty():
        kind, item = call.listener._stt_queue.get_nowait()
        kinds.append(kind)
        if kind == "audio":
            sent += item
    assert kinds[-1] == "finalize" and "audio" not in kinds[kinds.index("finalize") :]
    # preroll (100 ms), the speech and webrtc's own short tail, at 16 kHz; hangover silence is
    # held back so the speculative decode started when it began stays valid
    assert 100 + 600 - 20 <= len(sent) / 32 <= 100 + 600 + 140
    got = np.frombuffer(sent, dtype="<i2").astype(float)
    ref = np.frombuffer(decode(speech, "mulaw"), dtype="<i2").astype(float)
    # same loudness, and the 140 Hz fundamental survives the resampling
    voiced_part = got[1600:11200]  # after the preroll
    assert 0.8 < np.sqrt(np.mean(voiced_part**2)) / np.sqrt(np.mean(ref**2)) < 1.2
    seg = voiced_part
    spectrum = np.abs(np.fft.rfft(seg))
    freqs = np.fft.rfftfreq(len(seg), 1 / 16000)
    assert abs(freqs[np.argmax(spectrum)] - 140) < 3
    call.hangup("test")
    await rt.stop()


async def test_wideband_callers_are_judged_at_the_pipeline_rate(tmp_path):
    rt = await runtime_for(tmp_path)
    for rate in (16000, 24000, 48000):
        call = rt.new_call(transport="t", io=SilentIO(), audio_format=AudioFormat(rate))
        assert call.listener._vad_rate == 16000 and call.listener._stt_resampler is None
        call.hangup("test")
    await rt.stop()


async def test_unknown_marks_do_not_count_as_heard(tmp_path):
    from voicebot.call import Segment

    rt = await runtime_for(tmp_path)
    call = rt.new_call(transport="t", io=SilentIO(), audio_format=AudioFormat(8000, "mulaw"))
    first, second = Segment("Hello.", True, "seg-1"), Segment("How can I help?", True, "seg-2")
    call.speaker.playback._segments.extend([first, second])
    call.mark_played("seg-99")  # a stray or stale mark
    assert not first.heard and not second.heard and len(call.speaker.playback._segments) == 2
    call.mark_played("seg-1")
    assert first.heard and not second.heard and list(call.speaker.playback._segments) == [second]
    call.hangup("test")
    await rt.stop()
