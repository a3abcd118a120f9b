"""Answering-machine detection from the callee's first seconds of audio, sans-I/O and local.

Peers ask an LLM or a cloud service and wait 7–16 s; the signal is in the cadence. A person
answers with a short "Hello?" and waits for us; a machine plays a long greeting, then a beep. So:

- a greeting (speech, pauses shorter than `PAUSE_MS` merged into it) longer than
  `MACHINE_GREETING_MS` → `machine` (decided as soon as it is that long);
- a greeting of at most that length followed by `HUMAN_SILENCE_MS` of silence → `human`;
- a steady tone (one dominant frequency in 400–2200 Hz, ≥80 % of the frame's energy, stable for
  `BEEP_MS`) → `machine` at once, and `beep` is set: a flow can leave its message now;
- nothing decided after `DECIDE_MS` → `unknown`.

Fed 20 ms frames of 16-bit PCM at any rate; ~15 µs of numpy per frame. The thresholds and the
accuracy they reach on a labelled set are in `benchmarks/amd.py`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

AnsweredBy = Literal["human", "machine", "unknown"]

SPEECH_RMS = 400.0  # ≈ −38 dBFS: speech on a phone line, not line noise
PAUSE_MS = 600  # a pause shorter than this is inside the greeting
MACHINE_GREETING_MS = 1800
HUMAN_SILENCE_MS = 700
DECIDE_MS = 3500  # "within the first ~3 s": the decision is usually made well before
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
        n = sample_rate * frame_ms // 1000
        self._window = np.hanning(n) if n else np.ones(1)
        self._freqs = np.fft.rfftfreq(n, 1 / sample_rate) if n else np.zeros(1)

    def feed(self, frame: bytes) -> AnsweredBy | None:
        pcm = np.frombuffer(frame[: len(frame) // 2 * 2], dtype="<i2").astype(np.float32)
        self._t += self.frame_ms
        if pcm.size == 0:
            return self.result
        rms = float(np.sqrt(np.mean(pcm * pcm)))
        if self._is_tone(pcm, rms):
            self._tone_ms += self.frame_ms
            if self._tone_ms >= BEEP_MS:
                self.beep = True
                self._decide("machine")
            return self.result
        self._tone_ms = 0
        if self.result is not None:
            return self.result
        if rms >= SPEECH_RMS:
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
            elif silence >= PAUSE_MS and greeting > MACHINE_GREETING_MS:
                self._decide("machine")
        if self.result is None and self._t >= DECIDE_MS:
            self._decide("unknown")
        return self.result

    def _decide(self, result: AnsweredBy) -> None:
        if self.result is None:
            self.result = result
            self.decided_at_ms = self._t

    def _is_tone(self, pcm: np.ndarray, rms: float) -> bool:
        if rms < SPEECH_RMS / 2 or pcm.size != self._window.size:
            return False
        power = np.abs(np.fft.rfft(pcm * self._window)) ** 2
        peak = int(np.argmax(power))
        hz = float(self._freqs[peak])
        if not BEEP_BAND[0] <= hz <= BEEP_BAND[1]:
            return False
        purity = float(power[max(0, peak - 2) : peak + 3].sum() / (power.sum() or 1.0))
        if purity < BEEP_PURITY:
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
