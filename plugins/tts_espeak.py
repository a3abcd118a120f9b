"""`espeak`: offline formant speech synthesis with espeak-ng, through the `espeakng-loader` wheel.

Robotic but tiny, fast (~1000x real time) and available for ~100 languages, which makes it the
TTS for tests, development and machines without a GPU or network. espeak-ng is GPL-3.0: it is
only imported when this provider starts, and ships in the `light` extra rather than the core.

Text is synthesised sentence by sentence, each sentence a worker job, so the first sentence is
heard before the rest exists and a barge-in stops synthesis at the next sentence boundary.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from voicebot.hookspecs import hookimpl
from voicebot.providers import TTS, AudioChunk, AudioFormat, ModelMissingError, ProviderError

INSTALL_HINT = "in a voicebot checkout: pip install -e '.[light]'"
MAX_PIECE_CHARS = 400  # a text without punctuation is still cut, so no job grows without limit
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


@hookimpl
def register_tts(register: Callable[..., None]) -> None:
    register(EspeakTTS)


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, each at most MAX_PIECE_CHARS (longer ones cut at a space)."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        while len(sentence) > MAX_PIECE_CHARS:
            cut = sentence.rfind(" ", 0, MAX_PIECE_CHARS)
            cut = cut if cut > 0 else MAX_PIECE_CHARS
            pieces.append(sentence[:cut])
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    return pieces


class EspeakTTS(TTS):
    name = "espeak"
    requires = ("espeakng_loader",)
    install = INSTALL_HINT

    @dataclass
    class Options:
        #: an espeak-ng voice name: en-us, en-gb, de, fr, es, ...
        voice: str = "en-us"
        #: speaking rate in words per minute (80-450)
        rate: int = 175
        #: base pitch 0-100
        pitch: int = 50

        def __post_init__(self) -> None:
            if not 80 <= self.rate <= 450:
                raise ValueError(f"rate must be 80-450 words per minute, got {self.rate}")
            if not 0 <= self.pitch <= 100:
                raise ValueError(f"pitch must be 0-100, got {self.pitch}")

    async def start(self) -> None:
        try:
            from . import _espeak_c

            self._engine: Any = await self.workers.run(_espeak_c.engine)
        except ImportError as exc:
            raise ModelMissingError(
                f"the espeak TTS needs espeak-ng from the espeakng-loader package: {INSTALL_HINT}",
                provider=self.name,
            ) from exc
        except (OSError, _espeak_c.EspeakError) as exc:
            raise ProviderError(
                f"espeak-ng could not be loaded: {exc}", provider=self.name
            ) from exc
        try:
            await self.workers.run(self._engine.check_voice, self.options.voice)
        except _espeak_c.EspeakError as exc:
            raise ModelMissingError(str(exc), provider=self.name) from exc

    async def synthesize(self, text: str, preferred: AudioFormat) -> AsyncIterator[AudioChunk]:
        from ._espeak_c import EspeakError

        o = self.options
        for sentence in split_sentences(text):
            try:
                pcm = await self.workers.run(self._engine.synth, sentence, o.voice, o.rate, o.pitch)
            except EspeakError as exc:
                raise ProviderError(str(exc), provider=self.name) from exc
            if pcm:
                yield AudioChunk(pcm, sample_rate=self._engine.sample_rate)
