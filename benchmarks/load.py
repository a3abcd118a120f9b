"""The runtime-overhead load benchmark, now `voicebot bench` with this script's old defaults.

Kept so the commands quoted in the README keep working: browser calls by default (`--protocol
ws`), stub providers with the webrtc VAD, a 300 ms hangover, 600 ms utterances, and `--seconds`
of conversation per call instead of a turn count. Runtime overhead per turn is the server's
voice-to-voice minus the hangover (both printed). See docs/performance.md.

    python benchmarks/load.py --calls 50 --seconds 30
    python benchmarks/load.py --protocol twilio --calls 300
"""

from __future__ import annotations

import argparse
import sys

from voicebot.cli import main as voicebot

SPEECH_MS, GAP_MS, REPLY_S = 600, 300, 0.8  # one turn: speak, the answer, a pause


def bench_argv(argv: list[str]) -> list[str]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--seconds", type=float, default=30, help="conversation per call")
    p.add_argument("--ramp", type=float, default=5, help="seconds to open all calls")
    p.add_argument("--protocol", choices=["ws", "twilio"], default="ws")
    p.add_argument("--hangover-ms", type=int, default=300)
    p.add_argument("--speech-ms", type=int, default=SPEECH_MS)
    p.add_argument("--json", metavar="PATH")
    a = p.parse_args(argv)
    turn_s = (a.speech_ms + GAP_MS + a.hangover_ms) / 1000 + REPLY_S
    out = [
        "bench",
        "--protocol",
        "browser" if a.protocol == "ws" else "twilio",
        "--calls",
        str(a.calls),
        "--turns",
        str(max(1, round(a.seconds / turn_s))),
        "--ramp",
        str(a.ramp),
        "--hangover-ms",
        str(a.hangover_ms),
        "--speech-ms",
        str(a.speech_ms),
        "--gap-ms",
        str(GAP_MS),
    ]
    return out + (["--json", a.json] if a.json else [])


if __name__ == "__main__":
    sys.exit(voicebot(bench_argv(sys.argv[1:])))
