"""`providers.denoise` end to end over `/ws/voice` (wide PCM and phone-rate μ-law): a burst of
steady noise loud enough for a loudness VAD to call it speech is no turn once RNNoise cleans the
line, and the caller's words after it are still a turn, transcribed. Without the stage the same
noise is a turn of its own."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import websockets

from voicebot.audio import Resampler, encode

from .support import Client, base_config, serve, silence

SPEECH = Path(__file__).parent.parent / "benchmarks" / "data" / "speech" / "goforward.wav"


def caller_audio(rate: int, encoding: str) -> tuple[bytes, bytes]:
    """(1.5 s of white noise then 0.5 s of silence, the spoken clip then 1 s of silence)."""
    noise = np.random.default_rng(17).standard_normal(rate * 3 // 2) * 1000
    with wave.open(str(SPEECH)) as w:
        words = w.readframes(w.getnframes())
    if rate != 16000:
        r = Resampler(16000, rate)
        words = r.process(words) + r.flush()
    first = noise.astype("<i2").tobytes() + silence(500, rate)
    return encode(first, encoding), encode(words + silence(1000, rate), encoding)


def config(denoise: bool) -> dict:
    cfg = base_config()
    cfg["pipeline"]["vad_hangover_ms"] = 300
    cfg["providers"]["stt"] = {"use": "stub", "text": "go forward ten meters"}
    if denoise:
        cfg["providers"]["denoise"] = {"use": "rnnoise"}
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize("denoise", [True, False], ids=["denoised", "raw"])
@pytest.mark.parametrize(("rate", "encoding"), [(16000, "pcm_s16le"), (8000, "mulaw")])
async def test_noise_is_no_turn_and_speech_is_transcribed(
    tmp_path, denoise: bool, rate: int, encoding: str
) -> None:
    noise, words = caller_audio(rate, encoding)
    async with serve(tmp_path, config(denoise)) as server:
        ws = await websockets.connect(
            f"{server.url}/ws/voice?sample_rate={rate}&encoding={encoding}", max_size=None
        )
        c = Client(ws, rate * (2 if encoding == "pcm_s16le" else 1) // 2)
        try:
            await c.wait_for(lambda e: e.get("status") == "listening")
            await c.stream(noise)
            said = c.events[-1][0] if c.events else 0.0
            await c.stream(words)
            _, heard = await c.wait_for(
                lambda e: e.get("type") == "transcript" and e["final"], 15, after=said
            )
            assert heard["text"] == "go forward ten meters"
            finals = [e for _, e in c.events if e.get("type") == "transcript" and e["final"]]
            if denoise:
                assert len(finals) == 1, c.types()  # the noise was no turn
                stage = next(iter(server.runtime.calls.values())).listener.denoise
                assert stage is not None and stage.frames > 0  # it ran (off the loop)
            else:
                assert len(finals) >= 2, c.types()  # the control: noise alone is a turn
        finally:
            await c.close()
