"""`webrtc`: the WebRTC project's GMM voice activity detector (webrtcvad-wheels).

It takes 10/20/30 ms frames at 8, 16, 32 or 48 kHz. Frames at other pipeline rates are resampled
to 16 kHz per stream; each frame is judged in 10 ms pieces so any frame length that is a multiple
of 10 ms works, and the probability is the share of pieces judged speech.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voicebot.audio import Framer, Resampler
from voicebot.hookspecs import hookimpl
from voicebot.providers import VAD, ModelMissingError, ProviderError, VADStream

NATIVE_RATES = (8000, 16000, 32000, 48000)
FALLBACK_RATE = 16000


@hookimpl
def register_vad(register: Callable[..., None]) -> None:
    register(WebRTCVAD)


class WebRTCVAD(VAD):
    name = "webrtc"
    native_rates = NATIVE_RATES

    @dataclass
    class Options:
        #: aggressiveness 0-3: higher rejects more non-speech (and clips more quiet speech)
        mode: int = 2

        def __post_init__(self) -> None:
            if self.mode not in (0, 1, 2, 3):
                raise ValueError(f"mode must be 0, 1, 2 or 3, got {self.mode!r}")

    async def start(self) -> None:
        try:
            import webrtcvad
        except ImportError as exc:
            raise ModelMissingError(
                "the webrtc VAD needs the webrtcvad-wheels package: pip install webrtcvad-wheels",
                provider=self.name,
            ) from exc
        self._webrtcvad: Any = webrtcvad

    def stream(self, sample_rate: int) -> VADStream:
        return WebRTCVADStream(self._webrtcvad.Vad(self.options.mode), sample_rate)


class WebRTCVADStream(VADStream):
    def __init__(self, vad: Any, sample_rate: int) -> None:
        self._vad = vad
        self._rate = sample_rate if sample_rate in NATIVE_RATES else FALLBACK_RATE
        self._resampler = Resampler(sample_rate, self._rate) if self._rate != sample_rate else None
        self._framer = Framer(self._rate // 100 * 2)  # 10 ms pieces
        self._whole_frames = {self._rate // 1000 * ms * 2 for ms in (10, 20, 30)}
        self._last = 0.0

    def process(self, pcm: bytes) -> float:
        if self._resampler is None and len(pcm) in self._whole_frames:
            # 10/20/30 ms frames go to the detector as they are: one call, no copying
            self._last = float(self._vad.is_speech(pcm, self._rate))
            return self._last
        if self._resampler is None:
            if len(pcm) % self._framer.frame_bytes:
                raise ProviderError(
                    f"webrtc VAD needs frames of a multiple of 10 ms at {self._rate} Hz "
                    f"({self._framer.frame_bytes} bytes), got {len(pcm)} bytes",
                    provider="webrtc",
                )
            pieces = self._framer.push(pcm)
        else:
            if len(pcm) % 2:
                raise ProviderError(
                    f"PCM16 frame must have an even number of bytes, got {len(pcm)}",
                    provider="webrtc",
                )
            pieces = self._framer.push(self._resampler.process(pcm))
        if pieces:  # a resampler may release nothing for a frame: repeat the last judgement
            self._last = sum(self._vad.is_speech(p, self._rate) for p in pieces) / len(pieces)
        return self._last

    def reset(self) -> None:
        self._framer.clear()
        if self._resampler is not None:
            self._resampler.reset()
        self._last = 0.0
