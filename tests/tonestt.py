"""A test-only STT plugin that hears words as tones, so a test can tell which words of an
utterance reached the recogniser, and whether each arrived whole.

Word i of `words` is a tone at `base_hz + i * step_hz`, `word_ms` long (`word_pcm` makes them). A
tone counts as its word only if nearly all of it arrived (all but `slack_ms`): a word whose first
syllable was cut off is not heard, as it would not be by a real recogniser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from voicebot.hookspecs import hookimpl
from voicebot.providers import BatchSTT, Transcript

WORDS = ["eight", "of", "spades", "four", "clubs", "seven", "hearts"]
BASE_HZ, STEP_HZ, WORD_MS = 400.0, 200.0, 300


def word_pcm(text: str, rate: int = 16000, gap_ms: int = 0, amp: int = 8000) -> bytes:
    """`text` (words of `WORDS`) spoken as tones, with `gap_ms` of silence between words."""
    out = []
    for word in text.split():
        hz = BASE_HZ + WORDS.index(word) * STEP_HZ
        t = np.arange(rate * WORD_MS // 1000) / rate
        out.append((np.sin(2 * np.pi * hz * t) * amp).astype("<i2").tobytes())
        out.append(bytes(2 * (rate * gap_ms // 1000)))
    return b"".join(out)


class ToneSTT(BatchSTT):
    name = "tones"

    @dataclass
    class Options:
        words: list[str] = field(default_factory=lambda: list(WORDS))
        base_hz: float = BASE_HZ
        step_hz: float = STEP_HZ
        word_ms: int = WORD_MS
        slack_ms: int = 50

    async def transcribe(self, pcm: bytes, sample_rate: int) -> Transcript:
        o = self.options
        n = sample_rate // 100  # 10 ms frames
        x = np.frombuffer(pcm[: len(pcm) // (2 * n) * 2 * n], "<i2").astype(float).reshape(-1, n)
        runs: list[list[int]] = []  # [word index, frames]
        for frame in x:
            word = -1
            if np.sqrt((frame**2).mean()) > 500:
                hz = np.argmax(np.abs(np.fft.rfft(frame * np.hanning(n)))) * sample_rate / n
                i = round((hz - o.base_hz) / o.step_hz)
                if 0 <= i < len(o.words) and abs(hz - o.base_hz - i * o.step_hz) < o.step_hz / 2:
                    word = i
            if runs and runs[-1][0] == word:
                runs[-1][1] += 1
            else:
                runs.append([word, 1])
        heard = [
            o.words[w] for w, frames in runs if w >= 0 and frames * 10 >= o.word_ms - o.slack_ms
        ]
        return Transcript(" ".join(heard), final=True, confidence=1.0 if heard else 0.0)


@hookimpl
def register_stt(register):
    register(ToneSTT)
