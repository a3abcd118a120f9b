"""A test-only STT plugin that hears a scripted sequence of utterances, one per finished turn."""

from dataclasses import dataclass, field

from voicebot.hookspecs import hookimpl
from voicebot.providers import STT, STTStream, Transcript


class _Stream(STTStream):
    def __init__(self, provider: "ScriptedSTT") -> None:
        self.provider = provider
        self.heard = 0

    async def send(self, pcm: bytes) -> None:
        self.heard += len(pcm)

    async def cancel(self) -> None:
        self.heard = 0

    async def finalize(self) -> Transcript:
        heard, self.heard = self.heard, 0
        texts = self.provider.options.texts
        if not heard or self.provider.position >= len(texts):
            return Transcript("", final=True, confidence=0.0)
        self.provider.position += 1
        return Transcript(texts[self.provider.position - 1], final=True, confidence=1.0)


class ScriptedSTT(STT):
    """Each finished utterance is the next entry of `texts`. The position is process-wide,
    which is all a single-call end-to-end test needs."""

    name = "scripted"

    @dataclass
    class Options:
        texts: list[str] = field(default_factory=list)

    position = 0

    def stream(self, sample_rate: int, *, language: str | None = None) -> STTStream:
        return _Stream(self)


@hookimpl
def register_stt(register):
    register(ScriptedSTT)
