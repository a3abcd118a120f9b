"""Opus-in-WebM from browsers (MediaRecorder), decoded as it streams.

MediaRecorder sends one WebM stream cut into arbitrary chunks: the header once, then clusters of
unknown size holding SimpleBlocks of Opus packets. `WebmDemuxer` is a sans-I/O parser for exactly
that shape: bytes in, Opus packets out, keeping partial elements between chunks and never buffering
an element it does not need. `OpusDecoder` turns packets into PCM16 through libopus (PyAV, the
optional `webm` extra).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .audio import AudioFormatError

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


class WebmError(AudioFormatError):
    pass


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
                    raise WebmError(f"audio codec {codec} is not supported (send Opus)")
        elif elem == SAMPLING_FREQUENCY:
            self.sample_rate = int(np.frombuffer(payload, ">f4" if len(payload) == 4 else ">f8")[0])
        elif elem == CHANNELS:
            self.channels = int.from_bytes(payload, "big")
        elif elem in (SIMPLE_BLOCK, BLOCK):
            track_info = _vint(bytearray(payload), 0, keep_marker=False)
            if track_info is None:
                raise WebmError("truncated block")
            track, n = track_info
            flags = payload[n + 2]
            if self._track is not None and track != self._track:
                return None
            if flags & 0x06:
                raise WebmError("laced blocks are not supported")
            return payload[n + 3 :]
        return None


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

    def decode(self, data: bytes) -> bytes:
        return b"".join(self._opus.decode(p) for p in self._demux.feed(data))
