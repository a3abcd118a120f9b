"""Answering-machine detection on the labelled set of `benchmarks/amd.py` (espeak greetings,
voicemail beeps, silence), and the beep detector on its own."""

from __future__ import annotations

import numpy as np

from benchmarks.amd import RATE, detect, labelled_set, quiet, tone
from voicebot.audio.amd import MachineDetector, carrier_answered_by


async def test_labelled_set_is_classified_within_the_first_seconds():
    cases = await labelled_set(limit=3)
    results = [(label, *detect(pcm)) for label, _, pcm in cases]
    assert [got for _, got, _, _ in results] == [label for label, *_ in results]
    assert all(at is not None and at <= 3500 for _, _, at, _ in results)
    # a machine greeting followed by a beep says so; the same greeting alone never does
    for (_, what, _), (_, _, _, beep) in zip(cases, results, strict=True):
        assert beep == ("Hz beep" in what), what
    humans = [at for label, got, at, _ in results if label == "human"]
    assert max(humans) < 2500  # "Hello?" and the silence after it: decided in ~1.5 s


def test_a_steady_tone_is_a_beep_and_a_chord_or_noise_is_not():
    det = MachineDetector(RATE)
    for off in range(0, 8000, 320):
        det.feed(tone(1000.0, 500)[off : off + 320])
    assert det.beep and det.result == "machine" and det.decided_at_ms <= 200

    two = np.frombuffer(tone(700.0, 1000), "<i2").astype(int) // 2
    two += np.frombuffer(tone(1700.0, 1000), "<i2").astype(int) // 2
    noise = np.random.default_rng(1).normal(0, 3000, RATE).astype("<i2").tobytes()
    for pcm in (two.astype("<i2").tobytes(), noise, quiet(1000)):
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
    from benchmarks.amd import speak

    from .audiosocket_client import Asterisk
    from .support import base_config, serve
    from .test_audiosocket import dial
    from .twilio_e2e_support import record

    machine = await speak(
        "Hi, you have reached Sam. Please leave a message after the tone.", "en-us", 175
    )
    human = await speak("Hello?", "en-us", 175)
    cfg = base_config()
    cfg["pipeline"]["amd"] = "always"
    cfg["telephony"] = {"audiosocket": {"enabled": True, "port": 0}}
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        for audio, expected, beep in (
            (quiet(300) + machine + quiet(300) + tone(1000.0, 500) + quiet(300), "machine", True),
            (quiet(300) + human + quiet(1500), "human", False),
        ):
            calls_before = len(rec.calls)
            pbx: Asterisk = await dial(server)
            await pbx.hello()
            await rec.wait(lambda n=calls_before: len(rec.calls) > n)
            call = rec.calls[-1]
            await pbx.talk(audio)
            assert call.variables.get("answered_by") == expected
            assert (call.variables.get("beep") == "true") is beep
            await pbx.hangup()
            await pbx.wait_closed()
