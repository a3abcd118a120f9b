"""A benchmark-only plugin: appends every final transcript and every bot segment (heard or cut
off) to the JSON-lines file named by `VOICEBOT_CONVERSATION_TAP`. A phone line carries no JSON
diagnostics, so this is how `benchmarks/conversation.py` reads what a phone call's pipeline
heard."""

from __future__ import annotations

import json
import os

from voicebot.hookspecs import hookimpl


def _write(record: dict) -> None:
    path = os.environ.get("VOICEBOT_CONVERSATION_TAP")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


@hookimpl
def transcript(call, transcript) -> None:
    sid = call.variables.get("call_sid")  # a phone call's, which its caller knows
    _write({"call": call.id, "call_sid": sid, "kind": "transcript", "text": transcript.text})


@hookimpl
def bot_spoke(call, text, heard, interrupted) -> None:
    _write({"call": call.id, "kind": "bot", "text": text, "interrupted": interrupted})


@hookimpl
def call_ended(call, reason) -> None:
    _write({"call": call.id, "kind": "ended", "text": reason})
