"""A test-only VAD plugin, loaded through `plugins:` in a test config (the module-path route)."""

from dataclasses import dataclass

from voicebot.audio import rms
from voicebot.hookspecs import hookimpl
from voicebot.providers import VAD, VADStream


class _Stream(VADStream):
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def process(self, pcm: bytes) -> float:
        return 1.0 if rms(pcm) > self.threshold else 0.0


class LoudnessVAD(VAD):
    name = "testvad"

    @dataclass
    class Options:
        threshold: float = 500.0

    def supports_rate(self, rate: int) -> bool:
        return True

    def stream(self, sample_rate: int) -> VADStream:
        return _Stream(self.options.threshold)


@hookimpl
def register_vad(register):
    register(LoudnessVAD)
