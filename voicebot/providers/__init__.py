"""The provider API for plugin authors: `from voicebot.providers import STT, TTS, ...`.

The interfaces live in `base`; the machinery that runs them (fallback chains, deadlines, the
worker pool, the TTS cache) in the sibling modules. This face keeps the plugin authors' import
stable whatever is moved behind it.
"""

from .base import (
    LLM,
    ROLES,
    STT,
    TTS,
    VAD,
    AudioChunk,
    AudioFormat,
    BatchSTT,
    BufferedSTTStream,
    IntentClassifier,
    IntentResult,
    IntentSpec,
    Message,
    ModelMissingError,
    NoOptions,
    Provider,
    ProviderError,
    SpeechStarted,
    STTEvent,
    STTStream,
    ToolCall,
    ToolSpec,
    Transcript,
    Usage,
    UtteranceEnd,
    VADStream,
)

__all__ = [
    "LLM",
    "ROLES",
    "STT",
    "TTS",
    "VAD",
    "AudioChunk",
    "AudioFormat",
    "BatchSTT",
    "BufferedSTTStream",
    "IntentClassifier",
    "IntentResult",
    "IntentSpec",
    "Message",
    "ModelMissingError",
    "NoOptions",
    "Provider",
    "ProviderError",
    "STTEvent",
    "STTStream",
    "SpeechStarted",
    "ToolCall",
    "ToolSpec",
    "Transcript",
    "Usage",
    "UtteranceEnd",
    "VADStream",
]
