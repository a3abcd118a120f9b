"""Answering-machine detection accuracy on the labelled set of `benchmarks/amd_set.py`, each case
heard as on a phone call: μ-law encoded at 8 kHz, sent in 20 ms packets, decoded and framed by
the product's `InboundAudio` and judged by the call's `CallAmd`, fed until it is done (as the
call's listener does). Run: `python benchmarks/amd.py [--split tune|held|all] [--no-piper] [-v]`.

Prints accuracy, per-class precision and recall, the confusion matrix, the beep detector's hits
and false alarms, and how much callee audio was heard before the decision (median, p95).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.amd_set import RATE, Case, build, split
from voicebot.audio import InboundAudio, encode
from voicebot.call.amd import CallAmd

LABELS = ("human", "machine", "unknown")
FRAME_MS = 20


@dataclass
class Outcome:
    case: Case
    got: str
    at_ms: int | None
    beep: bool


def on_the_phone(pcm: bytes, vad_rate: int = RATE) -> tuple[str, int | None, bool]:
    """What a call learns from the callee's 8 kHz PCM16: (answered_by, ms heard, beep)."""
    line = encode(pcm, "mulaw")
    inbound = InboundAudio(RATE, "mulaw", vad_rate, FRAME_MS)
    variables: dict[str, str] = {"direction": "outbound"}
    amd = CallAmd("bench", variables, FRAME_MS)
    packet = RATE * FRAME_MS // 1000
    for off in range(0, len(line), packet):
        for frame in inbound.push(line[off : off + packet]):
            amd(frame, vad_rate)
            if amd.done:
                break
        if amd.done:
            break
    return variables.get("answered_by", "unknown"), amd.decided_at_ms, "beep" in variables


def run(cases: list[Case]) -> list[Outcome]:
    return [Outcome(c, *on_the_phone(c.pcm)) for c in cases]


def accuracy(outcomes: list[Outcome]) -> float:
    return sum(o.got == o.case.label for o in outcomes) / max(1, len(outcomes))


def report(title: str, outcomes: list[Outcome], verbose: bool = False) -> None:
    n = len(outcomes)
    confusion = Counter((o.case.label, o.got) for o in outcomes)
    right = sum(confusion[(label, label)] for label in LABELS)
    print(f"\n== {title}: {n} cases, accuracy {right}/{n} = {right / max(1, n):.1%}")
    print("   label \\ got " + "".join(f"{g:>9}" for g in LABELS) + "   recall")
    for label in LABELS:
        row = [confusion[(label, g)] for g in LABELS]
        total = sum(row)
        recall = f"{confusion[(label, label)] / total:.1%}" if total else "-"
        print(f"   {label:12}" + "".join(f"{k:>9}" for k in row) + f"   {recall:>6}")
    precision = []
    for g in LABELS:
        said = sum(confusion[(label, g)] for label in LABELS)
        precision.append(f"{confusion[(g, g)] / said:.1%}" if said else "-")
    print("   precision   " + "".join(f"{p:>9}" for p in precision))
    for label in ("human", "machine"):
        hard = [o for o in outcomes if o.case.label == label and o.case.hard]
        if hard:
            ok = sum(o.got == label for o in hard)
            kind = "long human greetings" if label == "human" else "short machine greetings"
            print(f"   of which {kind}: {ok}/{len(hard)} right")
    beeps = [o for o in outcomes if o.case.beep]
    alarms = [o for o in outcomes if o.beep and not o.case.beep]
    if beeps:
        heard = sum(o.beep for o in beeps)
        print(
            f"   beep heard on {heard}/{len(beeps)} machines with one; "
            f"false beeps {len(alarms)}/{n - len(beeps)}"
        )
    times = np.array([o.at_ms for o in outcomes if o.at_ms is not None])
    if times.size:
        print(
            f"   decision after median {np.median(times):.0f} ms, p95 "
            f"{np.percentile(times, 95):.0f} ms, max {times.max():.0f} ms of callee audio"
        )
    if verbose:
        for o in outcomes:
            if o.got != o.case.label:
                print(f"   BAD {o.case.label:7} → {o.got:7} at {o.at_ms} ms  {o.case.what}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=("tune", "held", "all"), default="all")
    ap.add_argument("--no-piper", action="store_true", help="espeak voices only (faster)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every wrong case")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cases = build(piper=not args.no_piper)
    tune, held = split(cases)
    print(f"built {len(cases)} cases in {time.perf_counter() - t0:.1f} s", end="; ")
    print(f"tuning half {len(tune)}, held-out half {len(held)}")
    tuned = run(tune) if args.split in ("tune", "all") else []
    if tuned:
        report("tuning half", tuned, args.verbose)
    heldout = run(held) if args.split in ("held", "all") else []
    if heldout:
        report("held-out half", heldout, args.verbose)
    if args.split == "all":
        report("whole set", tuned + heldout)


if __name__ == "__main__":
    main()
