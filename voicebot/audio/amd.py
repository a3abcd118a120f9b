"""Answering-machine detection from the callee's first seconds of audio, sans-I/O and local.

Peers ask an LLM or a cloud service and wait 7–16 s; the signal is in the cadence. A person
answers with a short "Hello?" and waits for us; a machine plays a long greeting, then a beep. So:

- speech is a frame `NOISE_MARGIN` above the line's noise floor (and at least `SPEECH_RMS`), so
  hiss on a bad line is not a greeting;
- a greeting (speech, pauses shorter than `HUMAN_SILENCE_MS` inside it) longer than
  `MACHINE_GREETING_MS` → `machine`, decided as soon as it is that long;
- a greeting of at most that length followed by `HUMAN_SILENCE_MS` of silence → `human`; the
  wait is long enough that the beep after a short machine greeting usually comes first;
- a steady tone (one frequency in 400–2200 Hz carrying ≥80 % of what the line's noise does not,
  for `BEEP_MS`) → `machine` at once, and `beep` is set: a flow can leave its message now;
- nobody speaks for `DECIDE_MS` → `unknown`. A greeting begun before then is judged whole, so a
  decision comes at most `MACHINE_GREETING_MS + HUMAN_SILENCE_MS` after it starts.

Fed 20 ms frames of 16-bit PCM at any rate; ~40 µs of numpy per frame on a busy 2-core machine.
The thresholds were tuned on half of the labelled set of `benchmarks/amd_set.py`;
`benchmarks/amd.py` reports both halves.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

AnsweredBy = Literal["human", "machine", "unknown"]

SPEECH_RMS = 400.0  # ≈ −38 dBFS: speech on a phone line, not line noise
MACHINE_GREETING_MS = 1800
HUMAN_SILENCE_MS = 1000  # a beep up to ~0.8 s after a short machine greeting comes first
DECIDE_MS = 3500  # "within the first ~3 s" when nobody speaks
NOISE_MARGIN = 3.2  # ≈ 10 dB: speech stands this far above the line's noise floor
FLOOR_RISE = 10 ** (0.2 / 20)  # the floor may creep up 0.2 dB a frame (10 dB/s)
BEEP_MS = 160
BEEP_BAND = (400.0, 2200.0)
BEEP_PURITY = 0.8
BEEP_DRIFT_HZ = 40.0


class MachineDetector:
    """One call's detector: `feed(frame)` until `result` is not None (further frames are
    still watched for the beep, which a flow may wait for after `machine`)."""

    def __init__(self, sample_rate: int, frame_ms: int = 20) -> None:
        self.rate = sample_rate
        self.frame_ms = frame_ms
        self.result: AnsweredBy | None = None
        self.beep = False
        self.decided_at_ms: int | None = None
        self._t = 0
        self._greeting_start: int | None = None
        self._last_speech: int | None = None
        self._tone_ms = 0
        self._tone_hz = 0.0
        self._floor: float | None = None
        self._noise: np.ndarray | None = None  # the line's power spectrum between words
        n = sample_rate * frame_ms // 1000
        self._window = np.hanning(n) if n else np.ones(1)
        self._freqs = np.fft.rfftfreq(n, 1 / sample_rate) if n else np.zeros(1)

    def feed(self, frame: bytes) -> AnsweredBy | None:
        pcm = np.frombuffer(frame[: len(frame) // 2 * 2], dtype="<i2").astype(np.float32)
        self._t += self.frame_ms
        if pcm.size == 0:
            return self.result
        rms = float(np.sqrt(np.mean(pcm * pcm)))
        power = None
        if pcm.size == self._window.size and rms >= SPEECH_RMS / 4:  # quieter: no beep, no noise
            power = np.abs(np.fft.rfft(pcm * self._window)) ** 2
        if power is not None and self._is_tone(power, rms):
            self._tone_ms += self.frame_ms
            if self._tone_ms >= BEEP_MS:
                self.beep = True
                self._decide("machine")
            return self.result
        self._tone_ms = 0
        speech = rms >= self._speech_threshold(rms)
        if not speech and power is not None:
            self._noise = power if self._noise is None else self._noise * 0.9 + power * 0.1
        if self.result is not None:
            return self.result
        if speech:
            if self._greeting_start is None:
                self._greeting_start = self._t - self.frame_ms
            self._last_speech = self._t
            if self._t - self._greeting_start > MACHINE_GREETING_MS:
                self._decide("machine")
        elif self._last_speech is not None and self._greeting_start is not None:
            silence = self._t - self._last_speech
            greeting = self._last_speech - self._greeting_start
            if silence >= HUMAN_SILENCE_MS and greeting <= MACHINE_GREETING_MS:
                self._decide("human")
        elif self._t >= DECIDE_MS:
            self._decide("unknown")  # nobody has spoken: a greeting once begun is judged whole
        return self.result

    def _speech_threshold(self, rms: float) -> float:
        """`SPEECH_RMS`, or `NOISE_MARGIN` above the line's noise floor on a noisy line. The
        floor is the quietest frame so far, allowed to creep up by `FLOOR_RISE` per frame, so
        speech (whose pauses dip to the floor) never raises it but louder noise soon does."""
        floor = self._floor
        self._floor = rms if floor is None else min(rms, floor * FLOOR_RISE)
        return max(SPEECH_RMS, (floor if floor is not None else rms) * NOISE_MARGIN)

    def _decide(self, result: AnsweredBy) -> None:
        if self.result is None:
            self.result = result
            self.decided_at_ms = self._t

    def _is_tone(self, power: np.ndarray, rms: float) -> bool:
        """One steady frequency in the beep band carrying nearly all the energy the line's noise
        does not: the noise spectrum (learnt from the frames between words) is taken off twice
        over first, so a beep in hiss is still pure while speech's harmonics never are."""
        if rms < SPEECH_RMS / 2:
            return False
        noise = self._noise if self._noise is not None else np.zeros_like(power)
        excess = np.maximum(power - 2 * noise, 0.0)
        peak = int(np.argmax(excess))
        hz = float(self._freqs[peak])
        if not BEEP_BAND[0] <= hz <= BEEP_BAND[1]:
            return False
        band = slice(max(0, peak - 2), peak + 3)
        tone = float(excess[band].sum())
        if tone < BEEP_PURITY * float(excess.sum()) or tone < 4 * float(noise[band].sum()):
            return False
        steady = self._tone_ms == 0 or abs(hz - self._tone_hz) <= BEEP_DRIFT_HZ
        self._tone_hz = hz
        return steady


def carrier_answered_by(value: str) -> AnsweredBy | None:
    """A carrier's own AMD result (Twilio's `AnsweredBy`) in our three words; None when absent."""
    if not value:
        return None
    if value == "human":
        return "human"
    if value.startswith("machine") or value == "fax":
        return "machine"
    return "unknown"
