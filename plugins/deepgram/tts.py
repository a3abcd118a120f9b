"""Deepgram Aura TTS (`/v1/speak`), streamed as raw samples."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from voicebot.providers import (
    TTS,
    AudioChunk,
    AudioFormat,
)

from .._cloud import (
    billed_audio,
    bounded,
    raw_audio,
    retrying_stream,
)
from .client import DeepgramClient, DeepgramOptions

_RATES = {"linear16": (8000, 16000, 24000, 32000, 48000), "mulaw": (8000, 16000)}


@dataclass
class DeepgramTTSOptions(DeepgramOptions):
    model: str = "aura-2-thalia-en"
    speed: float | None = bounded(None, 0.7, 1.5)


class DeepgramTTS(DeepgramClient, TTS):
    """Aura (`/v1/speak`): μ-law 8 kHz straight onto a phone line, else PCM16 at the call's
    rate when Aura can produce it (24 kHz otherwise)."""

    name = "deepgram"
    Options = DeepgramTTSOptions

    @staticmethod
    def output_for(preferred: AudioFormat) -> tuple[str, int]:
        if preferred.encoding == "mulaw" and preferred.sample_rate in _RATES["mulaw"]:
            return "mulaw", preferred.sample_rate
        if preferred.sample_rate in _RATES["linear16"]:
            return "linear16", preferred.sample_rate
        return "linear16", 24000

    async def synthesize(self, text: str, preferred: AudioFormat) -> AsyncIterator[AudioChunk]:
        opts: DeepgramTTSOptions = self.options
        encoding, rate = self.output_for(preferred)
        params: dict[str, Any] = {
            "text": text,
            "model": opts.model,
            "encoding": encoding,
            "sample_rate": rate,
            "container": "none",  # raw samples, no WAV header in the middle of the stream
        }
        if opts.speed is not None:
            params["speed"] = opts.speed
        out = "mulaw" if encoding == "mulaw" else "pcm_s16le"
        audio = self.client.speak.v1.audio
        stream = retrying_stream(
            self.name,
            lambda: raw_audio(self.name, lambda: audio.with_raw_response.generate(**params)),
            opts.max_retries,
        )
        async for chunk in billed_audio(self.name, text, stream, rate, out):
            yield chunk
