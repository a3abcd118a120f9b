"""ElevenLabs streaming TTS.

The output format is chosen per request from the format the call plays: μ-law 8 kHz for a phone
line, PCM at the browser's rate when ElevenLabs has it, so the audio goes out without
resampling.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from voicebot.hookspecs import hookimpl
from voicebot.providers import TTS, AudioChunk, AudioFormat, ProviderError

from ._cloud import (
    SharedClient,
    billed_audio,
    bounded,
    http_client,
    raw_audio,
    require_key,
    retrying_stream,
)

#: PCM rates ElevenLabs streams (44.1 kHz needs a Pro plan, so it is used only when asked for).
PCM_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


@dataclass
class ElevenLabsTTSOptions:
    api_key: str = ""
    #: Empty for api.elevenlabs.io; e.g. https://api.eu.residency.elevenlabs.io for EU residency.
    base_url: str = ""
    #: A voice from your ElevenLabs voice library (the default is the premade voice "Rachel").
    voice_id: str = "21m00Tcm4TlvDq8ikWAM"
    model_id: str = "eleven_flash_v2_5"
    #: ISO 639-1, to force the language of multilingual models; empty to detect.
    language_code: str = ""
    stability: float | None = bounded(None, 0, 1)
    similarity_boost: float | None = bounded(None, 0, 1)
    style: float | None = bounded(None, 0, 1)
    speed: float | None = bounded(None, 0.7, 1.2)
    use_speaker_boost: bool | None = None
    #: 0-4: trade quality for latency (ElevenLabs' optimize_streaming_latency).
    optimize_streaming_latency: int | None = bounded(None, 0, 4)
    #: Seconds: connecting, and each read of the stream.
    timeout: float = bounded(10.0, 0.05)
    #: Retries on 429/5xx/connection errors, only before any audio arrived.
    max_retries: int = bounded(2, 0, 10)


class ElevenLabsTTS(SharedClient, TTS):
    name = "elevenlabs"
    Options = ElevenLabsTTSOptions
    default_url = "https://api.elevenlabs.io"
    requires = ("elevenlabs", "httpx")
    key_env = "ELEVENLABS_API_KEY"

    _http: Any = None

    async def start(self) -> None:
        from elevenlabs.client import AsyncElevenLabs

        opts: ElevenLabsTTSOptions = self.options
        require_key(self.name, opts.api_key, self.key_env)
        self._http = http_client(opts.timeout)
        self._client = AsyncElevenLabs(
            api_key=opts.api_key,
            base_url=opts.base_url.rstrip("/") or None,
            timeout=opts.timeout,
            httpx_client=self._http,
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        self._client = self._http = None

    @staticmethod
    def output_for(preferred: AudioFormat) -> tuple[str, int, str]:
        """(output_format, sample rate, our encoding name) for what the call plays."""
        if preferred.sample_rate == 8000 and preferred.encoding in ("mulaw", "alaw"):
            enc = preferred.encoding
            return f"{'ulaw' if enc == 'mulaw' else 'alaw'}_8000", 8000, enc
        rate = preferred.sample_rate if preferred.sample_rate in PCM_RATES else 16000
        return f"pcm_{rate}", rate, "pcm_s16le"

    def voice_settings(self) -> Any:
        from elevenlabs import VoiceSettings

        opts: ElevenLabsTTSOptions = self.options
        values = {
            "stability": opts.stability,
            "similarity_boost": opts.similarity_boost,
            "style": opts.style,
            "speed": opts.speed,
            "use_speaker_boost": opts.use_speaker_boost,
        }
        values = {k: v for k, v in values.items() if v is not None}
        return VoiceSettings(**values) if values else None

    async def synthesize(self, text: str, preferred: AudioFormat) -> AsyncIterator[AudioChunk]:
        if self._client is None:
            raise ProviderError(f"{self.name}: provider used before start()", provider=self.name)
        opts: ElevenLabsTTSOptions = self.options
        output_format, rate, encoding = self.output_for(preferred)
        params: dict[str, Any] = {"text": text, "model_id": opts.model_id}
        if opts.language_code:
            params["language_code"] = opts.language_code
        if opts.optimize_streaming_latency is not None:
            params["optimize_streaming_latency"] = opts.optimize_streaming_latency
        settings = self.voice_settings()
        if settings is not None:
            params["voice_settings"] = settings
        client = self._client
        stream = retrying_stream(
            self.name,
            lambda: raw_audio(
                self.name,
                lambda: client.text_to_speech.with_raw_response.stream(
                    opts.voice_id, output_format=output_format, **params
                ),
            ),
            opts.max_retries,
        )
        async for chunk in billed_audio(self.name, text, stream, rate, encoding):
            yield chunk


@hookimpl
def register_tts(register: Any) -> None:
    register(ElevenLabsTTS)
