"""Opus-in-WebM from browsers (MediaRecorder), decoded as it streams.

MediaRecorder sends one WebM stream cut into arbitrary chunks: the header once, then clusters of
unknown size holding SimpleBlocks of Opus packets. `WebmDemuxer` is a sans-I/O parser for exactly
that shape: bytes in, Opus packets out, keeping partial elements between chunks and never buffering
an element it does not need. `OpusDecoder` turns packets into PCM16 through libopus (PyAV, the
optional `webm` extra).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator

import numpy as np

from .types import AudioFormatError, AudioLimitError, Meter, UnsupportedAudio

# element IDs (with their length-marker bits, as written in the file)
EBML = 0x1A45DFA3
SEGMENT = 0x18538067
CLUSTER = 0x1F43B675
TRACKS = 0x1654AE6B
TRACK_ENTRY = 0xAE
TRACK_NUMBER = 0xD7
CODEC_ID = 0x86
AUDIO = 0xE1
SAMPLING_FREQUENCY = 0xB5
CHANNELS = 0x9F
BLOCK_GROUP = 0xA0
BLOCK = 0xA1
SIMPLE_BLOCK = 0xA3

# masters whose children we need: descend into them instead of skipping their body
_DESCEND = {SEGMENT, CLUSTER, TRACKS, TRACK_ENTRY, AUDIO, BLOCK_GROUP}
_KEEP = {TRACK_NUMBER, CODEC_ID, SAMPLING_FREQUENCY, CHANNELS, SIMPLE_BLOCK, BLOCK, EBML}
MAX_ELEMENT = 1 << 20  # a block or header field larger than this is not a voice stream
# Elements parsed per `feed()`. Parsing is Python, ~1.4 µs an element: 256 KB of 2-byte elements
# would hold the event loop ~170 ms. MediaRecorder sends a 20 ms packet per block, so a 2 s chunk
# (or a 30 s whole utterance) is ~100 (~1 500) blocks; this bounds a message's parsing to ~6 ms.
MAX_ELEMENTS_PER_FEED = 4096


class WebmError(AudioFormatError):
    pass


class WebmUnsupported(UnsupportedAudio, WebmError):
    """A well-formed WebM whose audio is not Opus: refused by name (`unsupported_audio`), and
    still a WebmError to callers of the demuxer."""


_FRAME_SAMPLES = (
    *(480, 960, 1920, 2880) * 3,  # SILK: 10, 20, 40, 60 ms
    *(480, 960) * 2,  # hybrid: 10, 20 ms
    *(120, 240, 480, 960) * 4,  # CELT: 2.5, 5, 10, 20 ms
)


def opus_packet_samples(packet: bytes) -> int:
    """Samples at 48 kHz an Opus packet decodes to, from its TOC alone (RFC 6716 §3.1): what a
    packet will cost is known before it is decoded. Two bytes may legally be 120 ms of audio."""
    if not packet:
        raise WebmError("empty Opus packet")
    toc = packet[0]
    code = toc & 3
    if code == 0:
        frames = 1
    elif code < 3:
        frames = 2
    elif len(packet) < 2 or not packet[1] & 0x3F:
        raise WebmError("invalid Opus packet (no frame count)")
    else:
        frames = packet[1] & 0x3F
    samples = frames * _FRAME_SAMPLES[toc >> 3]
    if samples > 5760:
        raise WebmError("invalid Opus packet (longer than 120 ms)")
    return samples


def _vint(buf: bytearray, pos: int, keep_marker: bool) -> tuple[int, int] | None:
    """An EBML variable-length integer at `pos`: (value, length), or None if incomplete."""
    if pos >= len(buf):
        return None
    first = buf[pos]
    if first == 0:
        raise WebmError("invalid EBML length marker (not a WebM stream?)")
    length = 8 - first.bit_length() + 1
    if pos + length > len(buf):
        return None
    value = first if keep_marker else first & (0xFF >> length)
    for b in buf[pos + 1 : pos + length]:
        value = (value << 8) | b
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return (-1 if unknown else value), length


class WebmDemuxer:
    """Feed chunks; get the Opus packets of the first audio track, in order."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0
        self._started = False
        self.codec: str | None = None
        self.sample_rate = 48000
        self.channels = 1
        self._track: int | None = None
        self._entry_track: int | None = None

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The Opus packets completed by `data`. Raises WebmError on a malformed stream, and
        AudioLimitError past MAX_ELEMENTS_PER_FEED elements in one call."""
        budget = MAX_ELEMENTS_PER_FEED
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        self._buf += data
        pos = 0
        while True:
            head = _vint(self._buf, pos, keep_marker=True)
            if head is None:
                break
            elem, id_len = head
            size_info = _vint(self._buf, pos + id_len, keep_marker=False)
            if size_info is None:
                break
            size, size_len = size_info
            budget -= 1
            if budget < 0:
                raise AudioLimitError(
                    "audio_too_large",
                    f"one message may hold at most {MAX_ELEMENTS_PER_FEED} WebM elements",
                    "audio message too large",
                )
            body = pos + id_len + size_len
            if not self._started:
                if elem != EBML:
                    raise WebmError("stream does not start with a WebM (EBML) header")
                self._started = True
            if elem in _DESCEND:
                pos = body  # children follow; unknown sizes (live streams) are fine here
                continue
            if size < 0:
                raise WebmError(f"element 0x{elem:X} has an unknown size")
            if elem not in _KEEP:
                available = len(self._buf) - body
                if available < size:
                    self._skip = size - available
                    pos = len(self._buf)
                    break
                pos = body + size
                continue
            if size > MAX_ELEMENT:
                raise WebmError(f"element 0x{elem:X} of {size} bytes is too large")
            if len(self._buf) - body < size:
                break
            payload = bytes(self._buf[body : body + size])
            pos = body + size
            packet = self._element(elem, payload)
            if packet is not None:
                yield packet
        del self._buf[:pos]

    def _element(self, elem: int, payload: bytes) -> bytes | None:
        if elem == TRACK_NUMBER:
            self._entry_track = int.from_bytes(payload, "big")
        elif elem == CODEC_ID:
            codec = payload.decode("ascii", "replace")
            if self.codec is None and codec.startswith("A_"):
                self.codec = codec
                self._track = self._entry_track
                if codec != "A_OPUS":
                    raise WebmUnsupported(
                        f"WebM/{codec}",
                        f"WebM with audio codec {codec} is not supported: send Opus",
                    )
        elif elem == SAMPLING_FREQUENCY:
            if len(payload) not in (4, 8):
                raise WebmError(f"SamplingFrequency of {len(payload)} bytes (must be 4 or 8)")
            rate = struct.unpack(">f" if len(payload) == 4 else ">d", payload)[0]
            if not math.isfinite(rate) or not 1 <= rate <= 1_000_000:
                raise WebmError(f"invalid SamplingFrequency {rate}")
            self.sample_rate = int(rate)
        elif elem == CHANNELS:
            self.channels = int.from_bytes(payload, "big")
        elif elem in (SIMPLE_BLOCK, BLOCK):
            track_info = _vint(bytearray(payload), 0, keep_marker=False)
            if track_info is None or len(payload) < track_info[1] + 3:
                raise WebmError("truncated block")
            track, n = track_info
            if len(payload) < n + 3:
                raise WebmError("truncated block")
            flags = payload[n + 2]
            if self._track is not None and track != self._track:
                return None
            if flags & 0x06:
                raise WebmError("laced blocks are not supported")
            return payload[n + 3 :]
        return None


def preload() -> bool:
    """Import PyAV ahead of the first WebM caller: the import takes 0.2–0.3 s of CPU, which on the
    event loop would stall every call at the moment the first browser recording arrives. Runs in a
    thread at start-up; False if the optional decoder is not installed."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


class OpusDecoder:
    """Opus packets → mono PCM16 at 48 kHz (libopus through PyAV)."""

    sample_rate = 48000

    def __init__(self) -> None:
        try:
            import av
        except ImportError:
            raise WebmError(
                "encoding 'webm' needs the optional Opus decoder: pip install av "
                "(in a voicebot checkout: pip install -e '.[webm]')"
            ) from None
        self._av = av
        self._codec = av.CodecContext.create("libopus", "r")
        self._codec.sample_rate = self.sample_rate
        self._codec.layout = "mono"

    def decode(self, packet: bytes) -> bytes:
        try:
            frames = self._codec.decode(self._av.Packet(packet))
        except self._av.error.FFmpegError as exc:
            raise WebmError(f"invalid Opus packet: {exc}") from None
        out = []
        for frame in frames:
            x = frame.to_ndarray()
            if x.dtype.kind == "f":
                x = np.clip(x * 32767, -32768, 32767)
            mono = x.mean(axis=0) if x.ndim == 2 and x.shape[0] > 1 else x.reshape(-1)
            out.append(mono.astype("<i2").tobytes())
        return b"".join(out)


class WebmOpusDecoder:
    """The whole inbound path for `encoding=webm`: chunks of a WebM stream → PCM16 48 kHz."""

    sample_rate = OpusDecoder.sample_rate

    def __init__(self) -> None:
        self._demux = WebmDemuxer()
        self._opus = OpusDecoder()

    def decode(self, data: bytes, meter: Meter | None = None) -> bytes:
        """Packet by packet, each charged to `meter` before it is decoded."""
        out = []
        for packet in self._demux.feed(data):
            samples = opus_packet_samples(packet)
            if meter is not None:
                meter(samples / self.sample_rate)
            out.append(self._opus.decode(packet))
        return b"".join(out)
