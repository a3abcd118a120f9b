"""Audio codecs, streaming resamplers and fixed-size framing.

Everything here works on whole buffers (audioop, numpy, soxr): no per-sample Python. Resamplers
keep filter state between chunks, so a stream resampled 20 ms at a time has no clicks at frame
edges; each stream and direction of a call owns its own.
"""

from __future__ import annotations

try:
    import audioop
except ImportError:  # Python >= 3.13: the audioop-lts package provides the same module
    import audioop_lts as audioop  # type: ignore[no-redef]

from fractions import Fraction

import numpy as np
import soxr

# re-exported: the audio layer's vocabulary, e.g. `except audio.AudioFormatError`
from .sniff import StreamSniffer
from .types import AudioFormat as AudioFormat
from .types import AudioFormatError as AudioFormatError
from .types import AudioLimitError as AudioLimitError
from .types import Meter as Meter
from .types import UnsupportedAudio as UnsupportedAudio

ENCODINGS = ("pcm_s16le", "mulaw", "alaw")
INBOUND_ENCODINGS = (*ENCODINGS, "webm")  # Opus in WebM from browsers: decoded, never sent
MIN_RATE, MAX_RATE = 8000, 48000


def check_format(sample_rate: int, encoding: str, allowed: tuple[str, ...] = ENCODINGS) -> None:
    if encoding not in allowed:
        raise AudioFormatError(
            f"unsupported encoding '{encoding}' (supported: {', '.join(allowed)})"
        )
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise AudioFormatError(
            f"sample_rate {sample_rate} is out of range ({MIN_RATE}-{MAX_RATE} Hz)"
        )


def decode(data: bytes, encoding: str) -> bytes:
    """Any supported encoding to PCM16."""
    if encoding == "pcm_s16le":
        return data
    if encoding == "mulaw":
        return audioop.ulaw2lin(data, 2)
    if encoding == "alaw":
        return audioop.alaw2lin(data, 2)
    raise AudioFormatError(f"unsupported encoding '{encoding}'")


def encode(pcm: bytes, encoding: str) -> bytes:
    """PCM16 to any supported encoding."""
    if encoding == "pcm_s16le":
        return pcm
    if encoding == "mulaw":
        return audioop.lin2ulaw(pcm, 2)
    if encoding == "alaw":
        return audioop.lin2alaw(pcm, 2)
    raise AudioFormatError(f"unsupported encoding '{encoding}'")


def bytes_per_sample(encoding: str) -> int:
    return 2 if encoding == "pcm_s16le" else 1


def rms(pcm: bytes) -> float:
    """Root mean square of PCM16, 0..32768."""
    return float(audioop.rms(pcm, 2)) if pcm else 0.0


def silence(ms: int, sample_rate: int) -> bytes:
    return bytes(2 * sample_rate * ms // 1000)


class _StreamingFIR:
    """Rational resampling by a windowed-sinc FIR with state carried between chunks.

    Used for the small ratios that dominate telephony (8k↔16k, 16k↔24k/48k): soxr's streaming
    mode releases output in ~100 ms bursts at those ratios, which would add 100 ms of jitter to
    barge-in and endpointing. Here output is produced for every input chunk, with ~2 ms delay.
    """

    def __init__(self, up: int, down: int, zero_crossings: int = 16) -> None:
        self.up, self.down = up, down
        width = max(up, down)
        n = 2 * zero_crossings * width + 1
        cutoff = 0.45 / width  # cycles per sample at the upsampled rate, below both Nyquists
        t = np.arange(n) - (n - 1) / 2
        self._taps = (2 * cutoff * np.sinc(2 * cutoff * t) * np.kaiser(n, 8.0) * up).astype(
            np.float32
        )
        self._delay_in = (n - 1) // 2 // up + 1
        self.reset()

    def reset(self) -> None:
        self._history = np.zeros(len(self._taps) - 1, dtype=np.float32)
        self._phase = 0

    def process(self, x: np.ndarray) -> np.ndarray:
        if self.up > 1:
            stuffed = np.zeros(len(x) * self.up, dtype=np.float32)
            stuffed[:: self.up] = x
        else:
            stuffed = x.astype(np.float32)
        buf = np.concatenate((self._history, stuffed))
        self._history = buf[len(buf) - len(self._history) :]
        y = np.convolve(buf, self._taps, mode="valid")
        kept = y[self._phase :: self.down]
        self._phase = (self._phase - len(y)) % self.down
        return np.clip(np.rint(kept), -32768, 32767).astype("<i2")

    def flush(self) -> np.ndarray:
        tail = self.process(np.zeros(self._delay_in, dtype=np.float32))
        self.reset()
        return tail


class Resampler:
    """A streaming PCM16 resampler for one direction of one stream.

    `flush()` returns the filter tail at the end of a continuous stream (e.g. the end of a reply);
    `reset()` drops history after a barge-in so no old audio leaks into the next reply.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        ratio = Fraction(out_rate, in_rate)
        self._fir: _StreamingFIR | None = None
        self._soxr: soxr.ResampleStream | None = None
        if in_rate == out_rate:
            pass
        elif max(ratio.numerator, ratio.denominator) <= 8:
            self._fir = _StreamingFIR(ratio.numerator, ratio.denominator)
        else:
            self._soxr = soxr.ResampleStream(in_rate, out_rate, 1, "int16", "HQ")

    def process(self, pcm: bytes) -> bytes:
        if not pcm or (self._fir is None and self._soxr is None):
            return pcm
        x = np.frombuffer(pcm, dtype="<i2")
        if self._fir is not None:
            return self._fir.process(x).tobytes()
        return self._soxr.resample_chunk(x).tobytes()

    def flush(self) -> bytes:
        if self._fir is not None:
            return self._fir.flush().tobytes()
        if self._soxr is not None:
            tail = self._soxr.resample_chunk(np.zeros(0, dtype="<i2"), last=True).tobytes()
            self.reset()
            return tail
        return b""

    def reset(self) -> None:
        if self._fir is not None:
            self._fir.reset()
        elif self._soxr is not None:
            self._soxr = soxr.ResampleStream(self.in_rate, self.out_rate, 1, "int16", "HQ")


class Framer:
    """Cuts a byte stream into fixed-size frames, keeping the remainder for the next push."""

    def __init__(self, frame_bytes: int) -> None:
        if frame_bytes <= 0:
            raise ValueError("frame_bytes must be positive")
        self.frame_bytes = frame_bytes
        self._buf = bytearray()

    def push(self, data: bytes) -> list[bytes]:
        if not self._buf and len(data) == self.frame_bytes:
            return [data]  # the common case: callers already send whole frames
        self._buf += data
        n = len(self._buf) // self.frame_bytes
        if n == 0:
            return []
        cut = n * self.frame_bytes
        chunk = bytes(self._buf[:cut])
        del self._buf[:cut]
        fb = self.frame_bytes
        return [chunk[i : i + fb] for i in range(0, cut, fb)]

    def flush(self, pad: bool = True) -> bytes:
        """The incomplete last frame, zero-padded to full size if `pad` (b"" if none)."""
        rest, self._buf = bytes(self._buf), bytearray()
        if rest and pad:
            rest += bytes(self.frame_bytes - len(rest))
        return rest

    def clear(self) -> None:
        self._buf = bytearray()


class InboundAudio:
    """Caller audio → PCM16 frames of `frame_ms` at the pipeline rate. A container the bytes
    announce (WebM, Ogg, WAV, MP3: see `sniff`) wins over the declared `encoding`, which is what
    audio without a signature is taken to be."""

    def __init__(
        self, sample_rate: int, encoding: str, pipeline_rate: int = 16000, frame_ms: int = 20
    ) -> None:
        check_format(sample_rate, encoding, INBOUND_ENCODINGS)
        self.sample_rate = sample_rate
        self.encoding = encoding
        self.pipeline_rate = pipeline_rate
        self._sniffer = StreamSniffer(encoding)
        self._resamplers: dict[int, Resampler] = {}
        self._framer = Framer(pipeline_rate * frame_ms // 1000 * 2)
        self._odd = b""  # a PCM16 byte split across two messages

    def push(self, data: bytes, meter: Meter | None = None) -> list[bytes]:
        decoded = self._sniffer.push(data, meter)
        if decoded is not None:
            self._odd = b""
            pcm, rate = decoded
            return self._framer.push(self._resampler(rate).process(pcm)) if pcm else []
        if self.encoding == "pcm_s16le":
            if self._odd:
                data = self._odd + data
                self._odd = b""
            if len(data) % 2:
                data, self._odd = data[:-1], data[-1:]
        if meter is not None:
            meter(len(data) / bytes_per_sample(self.encoding) / self.sample_rate)
        pcm = decode(data, self.encoding)
        return self._framer.push(self._resampler(self.sample_rate).process(pcm))

    def _resampler(self, rate: int) -> Resampler:
        rs = self._resamplers.get(rate)
        if rs is None:
            rs = self._resamplers[rate] = Resampler(rate, self.pipeline_rate)
        return rs


class OutboundAudio:
    """Bot audio chunks in any format/rate → the caller's format in frames of `frame_ms`.

    One resampler per source rate keeps state across the chunks of a reply; `end_segment()` flushes
    the tail at the end of a reply, `clear()` drops everything on barge-in.
    """

    def __init__(self, sample_rate: int, encoding: str, frame_ms: int = 20) -> None:
        check_format(sample_rate, encoding)
        self.sample_rate = sample_rate
        self.encoding = encoding
        self.frame_ms = frame_ms
        self._resamplers: dict[int, Resampler] = {}
        self._framer = Framer(sample_rate * frame_ms // 1000 * bytes_per_sample(encoding))

    def push(self, data: bytes, sample_rate: int, encoding: str = "pcm_s16le") -> list[bytes]:
        if encoding == self.encoding and sample_rate == self.sample_rate:
            return self._framer.push(data)
        pcm = decode(data, encoding)
        rs = self._resamplers.get(sample_rate)
        if rs is None:
            rs = self._resamplers[sample_rate] = Resampler(sample_rate, self.sample_rate)
        return self._framer.push(encode(rs.process(pcm), self.encoding))

    def end_segment(self) -> list[bytes]:
        frames: list[bytes] = []
        for rs in self._resamplers.values():
            frames += self._framer.push(encode(rs.flush(), self.encoding))
        tail = self._framer.flush(pad=False)
        if tail:
            # pad with encoded silence: a zero byte is loud in μ-law and A-law
            missing = self._framer.frame_bytes - len(tail)
            tail += encode(bytes(2 * missing // bytes_per_sample(self.encoding)), self.encoding)
        return [*frames, tail] if tail else frames

    def clear(self) -> None:
        self._framer.clear()
        for rs in self._resamplers.values():
            rs.reset()
