"""What the conversation tests of every door share (`/ws/voice` in test_false_stops,
test_end_of_turn and test_last_words; a Twilio stream in test_twilio_conversation): the
configs that set a behaviour up, and the long greeting there is time to talk over."""

from __future__ import annotations

from typing import Any

GREETING = (
    "Welcome to the voice bot test line. This greeting is long on purpose. "
    "It goes on for a while so there is time to talk over it."
)
#: the stub TTS speaks 40 ms a character (`support.base_config`)
GREETING_MS = 40 * len(GREETING)


def over_the_bot(cfg: dict[str, Any], stt: str | dict[str, Any], **barge_in: Any) -> dict[str, Any]:
    """`cfg` (a door's base config) with the long greeting, the default backchannel window
    (600 ms) and `stt` (the stub's text, or a provider section)."""
    cfg["providers"]["stt"] = {"use": "stub", "text": stt} if isinstance(stt, str) else stt
    cfg["dialogue"]["greeting"] = GREETING
    cfg["pipeline"]["barge_in"] = {"min_speech_ms": 60, "backchannel_ms": 600, **barge_in}
    return cfg


def unfinished_wait(cfg: dict[str, Any], stt: str | dict[str, Any], wait_ms: int) -> dict[str, Any]:
    """`cfg` with `stt` and the unfinished-phrase wait set to `wait_ms`."""
    cfg["providers"]["stt"] = {"use": "stub", "text": stt} if isinstance(stt, str) else stt
    cfg["pipeline"]["end_of_turn"] = {"unfinished_wait_ms": wait_ms}
    return cfg


def first_unheard(said: str, heard: str) -> str:
    """The sentence the bot was cut off in: the one to say again after a false stop."""
    return next(s for s in said.split(". ") if s not in heard).strip()
