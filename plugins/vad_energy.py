"""`energy`: a loudness-based VAD for tests and clean audio (headsets, studio, synthetic calls).

It cannot tell speech from any other sound; on phone lines and in noisy rooms use `webrtc`. The
adaptive noise floor keeps steady background noise (fans, line hiss) from counting as speech: the
threshold is raised to `margin_db` above the quietest recent level.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from voicebot.audio import rms
from voicebot.hookspecs import hookimpl
from voicebot.providers import VAD, ProviderError, VADStream

#: how fast the noise floor may rise (it falls at once): slow enough that a long sentence does
#: not raise it to speech level, fast enough to follow a louder background within seconds
FLOOR_RISE_DB_PER_S = 1.0
SILENCE_DB = 20 * math.log10(1 / 32768)  # one LSB of PCM16: -90.3 dBFS


@hookimpl
def register_vad(register: Callable[..., None]) -> None:
    register(EnergyVAD)


class EnergyVAD(VAD):
    name = "energy"

    @dataclass
    class Options:
        #: frames louder than this (dBFS) are speech
        threshold_db: float = -45.0
        #: raise the threshold to `margin_db` above the tracked background noise
        adaptive: bool = True
        margin_db: float = 12.0
        #: dB over which the probability goes from ~0.12 to ~0.88 around the threshold
        softness_db: float = 4.0

        def __post_init__(self) -> None:
            if not SILENCE_DB <= self.threshold_db <= 0:
                raise ValueError(f"threshold_db must be between -90 and 0, got {self.threshold_db}")
            if self.margin_db < 0:
                raise ValueError(f"margin_db must not be negative, got {self.margin_db}")
            if self.softness_db <= 0:
                raise ValueError(f"softness_db must be positive, got {self.softness_db}")

    def supports_rate(self, rate: int) -> bool:
        return True  # loudness needs no particular rate

    def stream(self, sample_rate: int) -> VADStream:
        return EnergyVADStream(self.options, sample_rate)


class EnergyVADStream(VADStream):
    def __init__(self, options: EnergyVAD.Options, sample_rate: int) -> None:
        self._o = options
        self._rate = sample_rate
        self._floor: float | None = None

    def process(self, pcm: bytes) -> float:
        if len(pcm) % 2:
            raise ProviderError(
                f"PCM16 frame must have an even number of bytes, got {len(pcm)}", provider="energy"
            )
        level = 20 * math.log10(max(rms(pcm), 1.0) / 32768)
        threshold = self._o.threshold_db
        if self._o.adaptive:
            seconds = len(pcm) / (2 * self._rate)
            rise = FLOOR_RISE_DB_PER_S * seconds
            self._floor = level if self._floor is None else min(level, self._floor + rise)
            threshold = max(threshold, self._floor + self._o.margin_db)
        # logistic in dB: 0.5 at the threshold; scale so +-softness/2 gives ~0.88/~0.12
        x = (level - threshold) * 4 / self._o.softness_db
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))

    def reset(self) -> None:
        self._floor = None
