"""What decides what the bot says, and the text around it: the `Dialogue` boundary (`base`), the
LLM-only dialogue (`simple`), trimming history to a context budget and cutting replies into
sentences for TTS.
"""

from .base import (
    BotOutput,
    Dialogue,
    DialogueContext,
    DialogueFactory,
    Hangup,
    IntentEvent,
    Listen,
    Note,
    Say,
    Transfer,
    UserInput,
)

__all__ = [
    "BotOutput",
    "Dialogue",
    "DialogueContext",
    "DialogueFactory",
    "Hangup",
    "IntentEvent",
    "Listen",
    "Note",
    "Say",
    "Transfer",
    "UserInput",
]
