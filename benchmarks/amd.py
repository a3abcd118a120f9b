"""Answering-machine detection accuracy on a labelled set built here: espeak-spoken personal
greetings ("Hello?") followed by the silence of someone waiting, machine greetings with and
without a voicemail beep (450–1400 Hz), and silence. Run: `python benchmarks/amd.py`.

Prints the confusion table, the accuracy and when the decisions were made (ms of callee audio).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicebot.audio import Resampler
from voicebot.audio.amd import MachineDetector
from voicebot.providers import AudioFormat

RATE = 8000
HUMAN = [
    "Hello?",
    "Hi.",
    "Yes?",
    "Hello, who is this?",
    "Speaking.",
    "Yeah, hello?",
    "Hi, this is Sam.",
    "Good morning.",
    # the hard kind: a person who answers like a machine (a long greeting); expected wrong
    "Hello, this is Doctor Jones' office, Mary speaking, how may I help you today?",
]
MACHINE = [
    "Hi, you have reached Sam. I can't take your call right now, please leave a message "
    "after the tone.",
    "Hello, this is the voicemail of John Smith. Please leave your name and number and I will "
    "call you back.",
    "The person you are calling is not available. At the tone, please record your message.",
    "Thanks for calling Luigi's. We are closed right now. Our opening hours are noon to ten.",
    "You have reached the office of Doctor Jones. Leave a message and we will return your call.",
    "Hey, it's Maria. Leave a message.",
]
BEEPS_HZ = [450.0, 850.0, 1000.0, 1400.0]
VOICES = [("en-us", 175), ("en-us", 140), ("en-us", 220)]  # only en-us is installed here


def tone(hz: float, ms: int, amp: float = 9000.0) -> bytes:
    t = np.arange(RATE * ms // 1000) / RATE
    return (np.sin(2 * np.pi * hz * t) * amp).astype("<i2").tobytes()


def quiet(ms: int, seed: int = 0) -> bytes:
    """Line noise around −60 dBFS, not digital zero."""
    noise = np.random.default_rng(seed).normal(0, 30, RATE * ms // 1000)
    return noise.astype("<i2").tobytes()


async def speak(text: str, voice: str, rate: int) -> bytes:
    from voicebot_plugins.tts_espeak import EspeakTTS

    tts = EspeakTTS(EspeakTTS.Options(voice=voice, rate=rate))
    await tts.start()
    chunks = [c async for c in tts.synthesize(text, AudioFormat(16000, "pcm_s16le"))]
    rs = Resampler(chunks[0].sample_rate, RATE)
    return rs.process(b"".join(c.data for c in chunks)) + rs.flush()


async def labelled_set(limit: int = 0) -> list[tuple[str, str, bytes]]:
    """(label, description, 8 kHz PCM16) cases; `limit` keeps the first few of each kind."""
    cases: list[tuple[str, str, bytes]] = []
    voices = itertools.cycle(VOICES)
    for i, text in enumerate(HUMAN[: limit or None]):
        voice, wpm = next(voices)
        speech = await speak(text, voice, wpm)
        cases.append(
            (
                "human",
                f"{text!r} ({voice})",
                quiet(200 + 100 * (i % 3), i) + speech + quiet(2500, i),
            )
        )
    for i, text in enumerate(MACHINE[: limit or None]):
        voice, wpm = next(voices)
        speech = await speak(text, voice, wpm)
        hz = BEEPS_HZ[i % len(BEEPS_HZ)]
        cases.append(
            (
                "machine",
                f"{text[:30]!r}… + {hz:.0f} Hz beep",
                quiet(300, i) + speech + quiet(400, i) + tone(hz, 500) + quiet(1000, i),
            )
        )
        cases.append(("machine", f"{text[:30]!r}… no beep", quiet(300, i) + speech))
    for i in range(3 if not limit else 1):
        cases.append(("unknown", "silence", quiet(5000, 100 + i)))
    return cases


def detect(pcm: bytes) -> tuple[str, int | None, bool]:
    """Fed 20 ms at a time, then the line's quiet (a call goes on after a greeting ends) until
    the detector decides."""
    det = MachineDetector(RATE)
    step = RATE // 50 * 2
    pcm += quiet(4000, 7)
    for off in range(0, len(pcm), step):
        if det.feed(pcm[off : off + step]) is not None and (det.beep or det.result != "machine"):
            break
    return det.result or "unknown", det.decided_at_ms, det.beep


async def main() -> None:
    cases = await labelled_set()
    confusion: Counter[tuple[str, str]] = Counter()
    times = []
    for label, what, pcm in cases:
        got, at, beep = detect(pcm)
        confusion[(label, got)] += 1
        times.append(at or 0)
        mark = "ok " if got == label else "BAD"
        print(f"{mark} {label:8} → {got:8} at {at} ms{' (beep)' if beep else ''}  {what}")
    labels = ("human", "machine", "unknown")
    print("\nlabel \\ got " + " ".join(f"{g:>8}" for g in labels))
    for label in labels:
        print(f"{label:11} " + " ".join(f"{confusion[(label, g)]:>8}" for g in labels))
    right = sum(n for (label, got), n in confusion.items() if label == got)
    print(
        f"\naccuracy {right}/{len(cases)} = {right / len(cases):.1%}; decision at median "
        f"{int(np.median(times))} ms, max {max(times)} ms of callee audio"
    )


if __name__ == "__main__":
    asyncio.run(main())
