"""A reply's PCM as one WAV file, with the standard library's `wave`: what the envelope dialect
puts in an `audio_response` (WAV in is read by `containers.WavStream`)."""

from __future__ import annotations

import io
import wave


def wrap(pcm: bytes, sample_rate: int) -> bytes:
    """PCM16 mono → a WAV file a browser's `new Audio()` plays."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return out.getvalue()
