"""`voicebot bench`'s options, apart from the generator so the `voicebot` command line stays
quick to start for every other command."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calls", type=int, default=10, help="concurrent calls (default: 10)")
    p.add_argument("--turns", type=int, default=2, help="turns per call (default: 2)")
    p.add_argument("--ramp", type=float, default=5.0, help="seconds to open all calls (5)")
    p.add_argument("--protocol", choices=["browser", "twilio"], default="twilio")
    p.add_argument(
        "--utterance",
        help="what each caller says: a .wav file, or text spoken through the TTS of --config "
        "(default: a synthetic voice of --speech-ms)",
    )
    p.add_argument("--speech-ms", type=int, default=2200, help="synthetic utterance length")
    p.add_argument("--config", default="config.yaml", help="whose TTS speaks --utterance text")
    p.add_argument("--gap-ms", type=int, default=1000, help="caller's silence before a turn")
    p.add_argument("--reply-timeout", type=float, default=10.0, help="a turn unanswered after")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--url", help="a running server (default: start one)")
    target.add_argument(
        "--providers",
        choices=["stub", "openai-fake"],
        default="stub",
        help="the server the bench starts: stub providers, or the OpenAI SDK against a fake",
    )
    p.add_argument("--server-pid", type=int, help="with --url: its pid, for CPU and RSS")
    p.add_argument("--hangover-ms", type=int, default=200, help="started server's VAD hangover")
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra `voicebot run` argument for the started server (repeatable)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
