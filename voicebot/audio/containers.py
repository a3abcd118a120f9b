"""Streaming decoders for the containers clients send besides WebM: WAV, Ogg/Opus and MP3.

Sans I/O, like `webm`: bytes in (any chunking), mono PCM16 out at the stream's own rate, state
kept between chunks, every piece of audio charged to the `Meter` *before* it is decoded, so a
decompression bomb costs no more than its cap. `sniff.StreamSniffer` picks one by the bytes.
"""

from __future__ import annotations

import io
import struct
import wave

import numpy as np

from .types import AudioFormatError, AudioLimitError, Meter, UnsupportedAudio
from .webm import MAX_ELEMENT, MAX_ELEMENTS_PER_FEED, OpusDecoder, opus_packet_samples

MAX_WAV_HEADER = 64 * 1024  # `fmt `, `LIST`, `bext`... before `data`; a voice file has ~100 bytes
MAX_OGG_PAGE = 27 + 255 + 255 * 255


def _budget_exceeded(what: str) -> AudioLimitError:
    return AudioLimitError(
        "audio_too_large",
        f"one message may hold at most {MAX_ELEMENTS_PER_FEED} {what}",
        "audio message too large",
    )


def to_mono16(x: np.ndarray, channels: int) -> bytes:
    """Interleaved or planar-flattened samples (any dtype) → mono PCM16 bytes."""
    if x.dtype.kind == "f":
        x = np.clip(x * 32767, -32768, 32767)
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return x.astype("<i2").tobytes()


class WavStream:
    """RIFF/WAVE: the header says the rate, channels and sample width (read by `wave`); the
    samples after it are PCM, downmixed to mono 16-bit. Audio past the `data` chunk (a trailing
    `LIST`) is not played as noise."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._params: wave._wave_params | None = None
        self.sample_rate = 16000
        self._left = -1  # bytes of `data` still to come; -1: until the stream ends
        self._rest = b""  # a sample frame split across two chunks

    def decode(self, data: bytes, meter: Meter | None = None) -> bytes:
        if self._params is None:
            self._head += data
            data = self._read_header()
            if self._params is None:
                return b""
        if self._left >= 0:
            data = data[: self._left]
            self._left -= len(data)
        p = self._params
        block = p.nchannels * p.sampwidth
        data = self._rest + data
        cut = len(data) - len(data) % block
        data, self._rest = data[:cut], data[cut:]
        if not data:
            return b""
        if meter is not None:
            meter(len(data) / block / p.framerate)
        if p.sampwidth == 1:
            x = (np.frombuffer(data, np.uint8).astype(np.int16) - 128) << 8
        elif p.sampwidth == 2:
            x = np.frombuffer(data, "<i2")
        elif p.sampwidth == 3:
            b = np.frombuffer(data, np.uint8).reshape(-1, 3)
            x = (b[:, 1].astype(np.int16) | (b[:, 2].astype(np.int16) << 8)).astype("<i2")
        else:
            x = (np.frombuffer(data, "<i4") >> 16).astype("<i2")
        return to_mono16(x, p.nchannels)

    def _read_header(self) -> bytes:
        """The header once complete (returns the audio bytes after it), else b"" for more."""
        buf = bytes(self._head)
        if len(buf) >= 12 and buf[8:12] != b"WAVE":
            raise UnsupportedAudio("RIFF", f"RIFF file of type {buf[8:12]!r} is not WAVE audio")
        pos = 12
        while pos + 8 <= len(buf):
            cid, size = buf[pos : pos + 4], struct.unpack("<I", buf[pos + 4 : pos + 8])[0]
            if cid == b"data":
                self._start(buf[: pos + 8], size)
                return buf[pos + 8 :]
            pos += 8 + size + (size & 1)
        if len(buf) > MAX_WAV_HEADER:
            raise UnsupportedAudio("WAV", f"WAV header longer than {MAX_WAV_HEADER} bytes")
        return b""

    def _start(self, header: bytes, size: int) -> None:
        try:
            with wave.open(io.BytesIO(header)) as w:
                params = w.getparams()
        except (wave.Error, EOFError, struct.error) as exc:
            raise UnsupportedAudio("WAV", f"WAV that is not PCM cannot be decoded: {exc}") from None
        if not 1 <= params.nchannels <= 8 or not 1000 <= params.framerate <= 384000:
            raise UnsupportedAudio(
                "WAV",
                f"WAV of {params.nchannels} channels at {params.framerate} Hz cannot be decoded",
            )
        self._params = params
        self.sample_rate = params.framerate
        # streaming writers leave the size 0 or all ones: read to the end of the stream then
        self._left = -1 if size in (0, 0xFFFFFFFF) else size
        self._head = bytearray()


class OggOpusStream:
    """Ogg pages (Firefox's MediaRecorder, `opusenc`) → Opus packets → PCM16 48 kHz. Only the
    first logical stream is played; a new beginning-of-stream page starts a new recording."""

    sample_rate = OpusDecoder.sample_rate

    def __init__(self) -> None:
        self._buf = bytearray()
        self._packet = bytearray()
        self._serial: int | None = None
        self._packets = 0  # of the current logical stream: 0 head, 1 tags, then audio
        self._opus: OpusDecoder | None = None

    def decode(self, data: bytes, meter: Meter | None = None) -> bytes:
        self._buf += data
        out: list[bytes] = []
        budget = MAX_ELEMENTS_PER_FEED
        pos = 0
        while len(self._buf) - pos >= 27:
            if self._buf[pos : pos + 4] != b"OggS":
                raise AudioFormatError("Ogg stream lost page sync (corrupt or not Ogg)")
            nseg = self._buf[pos + 26]
            if len(self._buf) - pos < 27 + nseg:
                break
            lacing = self._buf[pos + 27 : pos + 27 + nseg]
            end = pos + 27 + nseg + sum(lacing)
            if len(self._buf) < end:
                break
            kind = self._buf[pos + 5]
            serial = struct.unpack("<I", self._buf[pos + 14 : pos + 18])[0]
            at = pos + 27 + nseg
            pos = end
            if kind & 0x02:  # beginning of a stream: a new recording
                self._serial, self._packets, self._packet = serial, 0, bytearray()
            if serial != self._serial:
                continue
            for lace in lacing:
                self._packet += self._buf[at : at + lace]
                at += lace
                if len(self._packet) > MAX_ELEMENT:
                    raise AudioFormatError(f"Ogg packet over {MAX_ELEMENT} bytes")
                if lace < 255:
                    packet, self._packet = bytes(self._packet), bytearray()
                    budget -= 1
                    if budget < 0:
                        raise _budget_exceeded("Ogg packets")
                    pcm = self._on_packet(packet, meter)
                    if pcm:
                        out.append(pcm)
        del self._buf[:pos]
        if len(self._buf) > MAX_OGG_PAGE:
            raise AudioFormatError("Ogg page larger than the format allows")
        return b"".join(out)

    def _on_packet(self, packet: bytes, meter: Meter | None) -> bytes:
        n, self._packets = self._packets, self._packets + 1
        if n == 0:
            if not packet.startswith(b"OpusHead"):
                raise UnsupportedAudio(_ogg_codec(packet), f"{_ogg_codec(packet)} is not supported")
            self._opus = OpusDecoder()
            return b""
        if n == 1 or self._opus is None:
            return b""  # OpusTags
        if meter is not None:
            meter(opus_packet_samples(packet) / self.sample_rate)
        return self._opus.decode(packet)


def _ogg_codec(head: bytes) -> str:
    for magic, name in ((b"\x01vorbis", "Vorbis"), (b"\x7fFLAC", "FLAC"), (b"Speex", "Speex")):
        if head.startswith(magic):
            return f"Ogg/{name} (send Opus)"
    return "Ogg with an unknown codec"


_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_MP3_KBPS = {
    3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}


def mp3_frame(header: bytes) -> tuple[int, int, int] | None:
    """(bytes, samples, rate) of the MPEG audio layer III frame starting `header`, or None if
    these 4 bytes are not a valid frame header."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version, layer = (header[1] >> 3) & 3, (header[1] >> 1) & 3
    bitrate, rate_i, pad = header[2] >> 4, (header[2] >> 2) & 3, (header[2] >> 1) & 1
    if version == 1 or layer != 1 or bitrate in (0, 15) or rate_i == 3:
        return None
    rate = _MP3_RATES[version][rate_i]
    kbps = _MP3_KBPS[3 if version == 3 else 2][bitrate]
    samples = 1152 if version == 3 else 576
    return samples // 8 * kbps * 1000 // rate + pad, samples, rate


class Mp3Stream:
    """MPEG audio layer III: frames found by libavcodec's parser, decoded by its mp3 decoder
    (PyAV). An ID3v2 tag in front is skipped (its bytes can look like frame syncs)."""

    def __init__(self) -> None:
        try:
            import av
        except ImportError:
            raise UnsupportedAudio("MP3", "MP3 input needs PyAV: pip install av") from None
        self._av = av
        self._codec = av.CodecContext.create("mp3", "r")
        self._skip = 0
        self._head = b""  # the start of a tag header split across chunks
        self.sample_rate = 0

    def decode(self, data: bytes, meter: Meter | None = None) -> bytes:
        data = self._strip_id3(data)
        if not data:
            return b""
        try:
            packets = self._codec.parse(data)
        except self._av.error.FFmpegError as exc:
            raise AudioFormatError(f"invalid MP3 stream: {exc}") from None
        if len(packets) > MAX_ELEMENTS_PER_FEED:
            raise _budget_exceeded("MP3 frames")
        out = []
        for packet in packets:
            frame = mp3_frame(bytes(packet)[:4])
            if frame is None:
                continue  # the parser resynchronises past junk; nothing to decode
            if meter is not None:
                meter(frame[1] / frame[2])
            try:
                decoded = self._codec.decode(packet)
            except self._av.error.FFmpegError:
                continue  # one damaged frame (e.g. a bit reservoir from a cut): skip it
            for f in decoded:
                if self.sample_rate and f.sample_rate != self.sample_rate:
                    raise UnsupportedAudio("MP3", "MP3 stream changes its sample rate")
                self.sample_rate = f.sample_rate
                x = f.to_ndarray()
                if f.format.is_planar:
                    x = x.T  # (samples, channels): interleaved once flattened
                out.append(to_mono16(x.reshape(-1), len(f.layout.channels)))
        return b"".join(out)

    def _strip_id3(self, data: bytes) -> bytes:
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = data[n:]
        data = self._head + data
        self._head = b""
        if data.startswith(b"ID3"):
            if len(data) < 10:
                self._head = data
                return b""
            size = 0
            for b in data[6:10]:
                size = (size << 7) | (b & 0x7F)
            total = 10 + size + (10 if data[5] & 0x10 else 0)
            self._skip = max(0, total - len(data))
            data = data[total:]
        return data
