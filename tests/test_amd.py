"""Answering-machine detection: accuracy floors on a deterministic part of the labelled set of
`benchmarks/amd_set.py`, heard through the phone path a call uses (μ-law, `InboundAudio`,
`CallAmd`); the beep detector against noise, chords and hiss; a live call."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from benchmarks.amd import on_the_phone, run
from benchmarks.amd_set import RATE, Voices, beep, build, noise
from voicebot.audio.amd import MachineDetector, carrier_answered_by

# Measured on this subset (espeak voices, 2 renditions a greeting, 104 cases): 86.5 % overall;
# recall human 85 %, machine 82 %, silence 100 %; 19 of 20 beeps heard. The floors leave room for
# a tweak, not for a plainly worse detector: one that always says "human" scores 46 % and fails,
# and so does the detector before the noise floor (73 %, human recall 60 %: hiss was a greeting).
FLOOR = {"all": 0.80, "human": 0.75, "machine": 0.70, "unknown": 0.85}


def pcm16(x: np.ndarray) -> bytes:
    return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()


def speech(text: str, voice: str = "espeak:en-us") -> np.ndarray:
    x, _ = Voices(piper=False).speak(voice, text, np.random.default_rng(0))
    return x * 10 ** (-20 / 20) * 32768 / (np.sqrt(np.mean(x * x)) + 1e-9)  # about −20 dBFS


@pytest.fixture(scope="module")
def subset():
    return build(piper=False, renditions=2)


def test_the_floors_reject_a_detector_that_always_says_one_thing(subset):
    """The floors are only worth their name if no constant answer reaches them."""
    share = Counter(c.label for c in subset)
    assert len(subset) >= 100 and set(share) == {"human", "machine", "unknown"}
    assert max(share.values()) / len(subset) < FLOOR["all"]


def test_accuracy_on_the_labelled_subset_over_the_phone_path(subset):
    outcomes = run(subset)
    right = Counter(o.case.label for o in outcomes if o.got == o.case.label)
    total = Counter(o.case.label for o in outcomes)
    wrong = [f"{o.case.label} → {o.got}: {o.case.what}" for o in outcomes if o.got != o.case.label]
    assert sum(right.values()) / len(outcomes) >= FLOOR["all"], wrong
    for label in ("human", "machine", "unknown"):
        assert right[label] / total[label] >= FLOOR[label], (label, wrong)
    # machines that beep are heard beeping (unless judged human before it), nothing else ever is
    assert [o.beep for o in outcomes if o.case.beep].count(False) <= 3
    assert not [o.case.what for o in outcomes if o.beep and not o.case.beep]
    # "within the first ~3 s": of callee audio, counting the silence before anyone speaks
    times = sorted(o.at_ms or 0 for o in outcomes)
    assert times[len(times) // 2] <= 3200 and times[-1] <= 4500


def test_a_hello_on_a_hissing_line_is_a_human():
    """Line noise above the fixed speech level (−30 dBFS hiss) is the floor, not a greeting."""
    hello = speech("Hello?")
    x = np.concatenate([np.zeros(RATE // 2), hello, np.zeros(3 * RATE)])
    x += noise("white", len(x), -30, np.random.default_rng(3))
    assert on_the_phone(pcm16(x))[0] == "human"


def test_a_greeting_that_starts_late_is_judged_whole():
    """2 s before the machine speaks, so its greeting runs past the 3.5 s a silent line is given:
    it is judged whole (a machine), not cut short as `unknown`."""
    greeting = speech("Thanks for calling Luigi's. We are closed right now.", "espeak:en+m1")
    x = np.concatenate([np.zeros(2 * RATE), greeting, np.zeros(2 * RATE)])
    x += noise("pink", len(x), -66, np.random.default_rng(4))
    assert on_the_phone(pcm16(x))[0] == "machine"


@pytest.mark.parametrize(("kind", "snr"), [("white", 3), ("pink", 12)])
def test_a_beep_is_heard_through_line_noise(kind, snr):
    for hz in (440.0, 1000.0, 1400.0):
        x = np.concatenate([np.zeros(RATE // 2), beep(hz, 0.3, -20), np.zeros(RATE)])
        x += noise(kind, len(x), -20 - snr, np.random.default_rng(int(hz)))
        assert on_the_phone(pcm16(x))[2], hz


def test_a_steady_tone_is_a_beep_and_a_chord_or_noise_is_not():
    det = MachineDetector(RATE)
    tone = pcm16(beep(1000.0, 0.5, -12))
    for off in range(0, len(tone), 320):
        det.feed(tone[off : off + 320])
    assert det.beep and det.result == "machine" and det.decided_at_ms <= 200

    chord = beep(700.0, 1.0, -18) + beep(1700.0, 1.0, -18)
    loud = noise("white", RATE, -20, np.random.default_rng(1))
    for pcm in (
        pcm16(chord),
        pcm16(loud),
        pcm16(noise("pink", RATE, -60, np.random.default_rng(2))),
    ):
        det = MachineDetector(RATE)
        for off in range(0, len(pcm), 320):
            det.feed(pcm[off : off + 320])
        assert not det.beep


def test_the_carriers_own_result_in_our_words():
    assert [
        carrier_answered_by(v)
        for v in ("human", "machine_start", "machine_end_beep", "fax", "unknown", "")
    ] == ["human", "machine", "machine", "machine", "unknown", None]


async def test_a_live_call_learns_who_answered(tmp_path):
    """On a real call (AudioSocket, `pipeline.amd: always`): `call.answered_by` and `call.beep`
    are set from the callee's audio while the call runs, where flows read them."""
    from .audiosocket_client import Asterisk
    from .support import base_config, serve
    from .test_audiosocket import dial
    from .twilio_e2e_support import record

    gap = np.zeros(RATE * 3 // 10)
    machine = speech("Hi, you have reached Sam. Please leave a message after the tone.")
    cfg = base_config()
    cfg["pipeline"]["amd"] = "always"
    cfg["telephony"] = {"audiosocket": {"enabled": True, "port": 0}}
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        for audio, expected, beeped in (
            (np.concatenate([gap, machine, gap, beep(1000.0, 0.5, -20), gap]), "machine", True),
            (np.concatenate([gap, speech("Hello?"), np.zeros(2 * RATE)]), "human", False),
        ):
            calls_before = len(rec.calls)
            pbx: Asterisk = await dial(server)
            await pbx.hello()
            await rec.wait(lambda n=calls_before: len(rec.calls) > n)
            call = rec.calls[-1]
            await pbx.talk(pcm16(audio))
            assert call.variables.get("answered_by") == expected
            assert (call.variables.get("beep") == "true") is beeped
            await pbx.hangup()
            await pbx.wait_closed()
