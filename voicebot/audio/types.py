"""The audio vocabulary shared by the codecs (`audio`), the WebM/Opus decoder (`webm`) and the
provider API: the format a call's audio travels in, errors and the decode meter.

It imports nothing heavy and nothing of voicebot, so `audio` can use the WebM decoder while the
decoder raises the same errors, without the two modules importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class AudioFormat:
    """A call's audio on the wire: what a transport negotiated, what TTS is asked to prefer."""

    sample_rate: int = 16000
    encoding: Literal["pcm_s16le", "mulaw", "alaw", "webm"] = "pcm_s16le"


class AudioFormatError(ValueError):
    pass


class UnsupportedAudio(AudioFormatError):
    """Audio whose container or codec was recognised (`detected`, e.g. "Ogg/Vorbis") but cannot
    be decoded: the client is told what was seen (`unsupported_audio`) instead of the bytes being
    guessed to be PCM."""

    def __init__(self, detected: str, message: str) -> None:
        super().__init__(message)
        self.detected = detected


class AudioLimitError(ValueError):
    """Audio over a budget counted in decoded seconds (see `budget.AudioBudget`): `code` goes into
    the JSON `error`, `reason` into the close frame (1008)."""

    def __init__(self, code: str, message: str, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


# Charged with the seconds of audio a piece of input holds, *before* it is decoded; raises
# AudioLimitError to stop decoding, so a decompression bomb is refused having cost its cap.
Meter = Callable[[float], None]
