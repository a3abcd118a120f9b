"""A test plugin for the `redact` hook: masks every digit, as a card-number masker would."""

from __future__ import annotations

import re

from voicebot.hookspecs import hookimpl


@hookimpl
def redact(call, text: str) -> str:
    return re.sub(r"\d", "#", text)
