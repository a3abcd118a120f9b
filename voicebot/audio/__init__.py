"""Audio without I/O: formats, codecs, resamplers, framing, the container sniffer and decoders
(WebM, Ogg, WAV, MP3), the reply encoders (WAV, MP3, WebM) and the decoded-audio budget. Nothing
in this package imports asyncio or aiohttp (tests/test_layering.py holds it), so it runs the same
on the event loop, in a worker thread or in a test.

`from voicebot import audio; audio.decode(...)` reads as before: the codecs live in `pcm`.
"""

from .pcm import (
    ENCODINGS,
    INBOUND_ENCODINGS,
    MAX_RATE,
    MIN_RATE,
    AudioFormat,
    AudioFormatError,
    AudioLimitError,
    Framer,
    InboundAudio,
    Meter,
    OutboundAudio,
    Resampler,
    UnsupportedAudio,
    bytes_per_sample,
    check_format,
    decode,
    encode,
    rms,
    silence,
)

__all__ = [
    "ENCODINGS",
    "INBOUND_ENCODINGS",
    "MAX_RATE",
    "MIN_RATE",
    "AudioFormat",
    "AudioFormatError",
    "AudioLimitError",
    "Framer",
    "InboundAudio",
    "Meter",
    "OutboundAudio",
    "Resampler",
    "UnsupportedAudio",
    "bytes_per_sample",
    "check_format",
    "decode",
    "encode",
    "rms",
    "silence",
]
