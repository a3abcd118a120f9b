"""Bot speech in the container a client can play: `wav`, `mp3` or `webm` (Opus), or `pcm` as is.

Clients that play each binary message with `new Audio(blob)` need a whole file per message (`wav`:
one per reply segment); clients that append to a MediaSource `audio/mpeg` (or `audio/webm;
codecs=opus`) SourceBuffer need one continuous stream (`mp3`, `webm`). Encoding is libavcodec's
(LAME, libopus) through PyAV; one encoder per call, fed 20 ms PCM16 frames, sans I/O.
"""

from __future__ import annotations

import io
import wave
from typing import Protocol

import numpy as np

from .types import AudioFormatError

OUTPUTS = ("pcm", "wav", "mp3", "webm")
MIME_TYPES = {
    "pcm": "audio/pcm",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "webm": "audio/webm;codecs=opus",
}
_RATES = {
    "mp3": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
    "webm": (8000, 12000, 16000, 24000, 48000),
}
MAX_WAV_SEGMENT_S = 60  # a longer segment goes out as several files (memory per call is bounded)


def check_output(output: str, sample_rate: int, encoding: str = "pcm_s16le") -> None:
    """Raises AudioFormatError when `output` cannot carry audio at this rate and encoding."""
    if output not in OUTPUTS:
        raise AudioFormatError(f"output must be one of {', '.join(OUTPUTS)}")
    if output == "pcm":
        return
    if encoding not in ("pcm_s16le", "webm"):
        raise AudioFormatError(f"output '{output}' needs PCM16 audio, not '{encoding}'")
    rates = _RATES.get(output)
    if rates is not None and sample_rate not in rates:
        raise AudioFormatError(
            f"output '{output}' needs sample_rate one of {', '.join(map(str, rates))}"
        )


class OutputEncoder(Protocol):
    def encode(self, pcm: bytes) -> bytes:
        """Bytes to send now for this PCM16 frame (often b"": the encoder buffers)."""

    def end_segment(self) -> bytes:
        """What completes the reply segment that just ended."""

    def clear(self) -> None:
        """A barge-in: drop what has not been sent."""

    def hold_s(self, data: bytes, now: float) -> float:
        """How long to wait before sending `data` (from `end_segment`) at loop time `now`."""


def new_encoder(output: str, sample_rate: int) -> OutputEncoder | None:
    """None for `pcm` (frames go out as they are)."""
    check_output(output, sample_rate)
    if output == "wav":
        return WavSegments(sample_rate)
    if output == "mp3":
        return Mp3Stream(sample_rate)
    if output == "webm":
        return WebmOpusStream(sample_rate)
    return None


class WavSegments:
    """One complete WAV file per reply segment, sent when the segment ends, and not before the
    previous file has finished playing: a client that plays each message with `new Audio(blob)`
    would otherwise play a short sentence over the end of a longer one."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._pcm = bytearray()
        self._max = sample_rate * 2 * MAX_WAV_SEGMENT_S
        self._free_at = 0.0  # loop time when the client finishes playing what it was sent

    def hold_s(self, data: bytes, now: float) -> float:
        start = max(now, self._free_at)
        self._free_at = start + (len(data) - 44) / 2 / self.sample_rate
        return start - now

    def encode(self, pcm: bytes) -> bytes:
        self._pcm += pcm
        return self.end_segment() if len(self._pcm) >= self._max else b""

    def end_segment(self) -> bytes:
        if not self._pcm:
            return b""
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(bytes(self._pcm))
        self._pcm = bytearray()
        return buf.getvalue()

    def clear(self) -> None:
        self._pcm = bytearray()
        self._free_at = 0.0  # the client stops playing on `interrupted`


def _frame(av: object, pcm: bytes, rate: int, pts: int, fmt: str) -> object:
    x = np.frombuffer(pcm, "<i2").reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(x, format=fmt, layout="mono")  # type: ignore[attr-defined]
    frame.sample_rate, frame.pts = rate, pts
    return frame


class Mp3Stream:
    """MPEG layer III frames, back to back: what a MediaSource `audio/mpeg` SourceBuffer appends.
    Each reply segment is its own LAME encoding, flushed at its end, so no speech is held back
    waiting for the next reply; the frames of all of them still make one valid stream."""

    def __init__(self, sample_rate: int, bit_rate: int = 48000) -> None:
        import av

        self._av = av
        self.sample_rate = sample_rate
        self.bit_rate = bit_rate
        self._codec: av.CodecContext | None = None
        self._pts = 0
        self._pending = bytearray()
        self._frame_bytes = 2 * (1152 if sample_rate >= 32000 else 576)

    def _open(self) -> object:
        codec = self._av.CodecContext.create("libmp3lame", "w")
        codec.sample_rate = self.sample_rate
        codec.layout = "mono"
        codec.format = "s16p"
        codec.bit_rate = self.bit_rate
        self._pts = 0
        return codec

    def encode(self, pcm: bytes) -> bytes:
        """Whole MP3 frames only (1152 samples, 576 at 24 kHz and below): LAME is fed what it
        encodes in one go, half the cost of handing it every 20 ms."""
        self._pending += pcm
        n = len(self._pending) - len(self._pending) % self._frame_bytes
        if not n:
            return b""
        data, self._pending = bytes(self._pending[:n]), self._pending[n:]
        return self._encode(data)

    def _encode(self, pcm: bytes) -> bytes:
        if self._codec is None:
            self._codec = self._open()
        frame = _frame(self._av, pcm, self.sample_rate, self._pts, "s16p")
        self._pts += len(pcm) // 2
        return b"".join(bytes(p) for p in self._codec.encode(frame))

    def end_segment(self) -> bytes:
        out = self._encode(bytes(self._pending)) if self._pending else b""
        self._pending = bytearray()
        if self._codec is None:
            return out
        codec, self._codec = self._codec, None
        return out + b"".join(bytes(p) for p in codec.encode(None))

    def clear(self) -> None:
        self._codec = None
        self._pending = bytearray()

    def hold_s(self, data: bytes, now: float) -> float:
        return 0.0


class _Sink:
    """The muxer's output: written by libavformat, drained after each frame."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, b: bytes) -> int:
        self.data += b
        return len(b)

    def take(self) -> bytes:
        out, self.data = bytes(self.data), bytearray()
        return out


class WebmOpusStream:
    """Opus in one live WebM stream for the whole call (header first, then a cluster per packet),
    as a MediaSource `audio/webm;codecs=opus` SourceBuffer or a `<audio>` element reads it."""

    FRAME_MS = 20

    def __init__(self, sample_rate: int) -> None:
        import av

        self._av = av
        self.sample_rate = sample_rate
        self._sink = _Sink()
        # non-seekable output: live mode, unknown sizes; no cluster holds packets back
        self._out = av.open(
            self._sink,
            "w",
            format="webm",
            options={"live": "1", "cluster_time_limit": "0", "cluster_size_limit": "0"},
        )
        self._stream = self._out.add_stream("libopus", rate=sample_rate)
        self._stream.layout = "mono"
        self._frame_bytes = sample_rate * self.FRAME_MS // 1000 * 2
        self._pending = b""
        self._pts = 0

    def encode(self, pcm: bytes) -> bytes:
        data = self._pending + pcm
        n = len(data) - len(data) % self._frame_bytes
        self._pending = data[n:]
        for i in range(0, n, self._frame_bytes):
            self._encode(data[i : i + self._frame_bytes])
        return self._sink.take()

    def _encode(self, pcm: bytes) -> None:
        frame = _frame(self._av, pcm, self.sample_rate, self._pts, "s16")
        self._pts += len(pcm) // 2
        for packet in self._stream.encode(frame):
            self._out.mux(packet)

    def end_segment(self) -> bytes:
        """The stream goes on (it must, for a SourceBuffer): the last partial frame is padded
        with silence so all of the segment is sent now."""
        if self._pending:
            self._encode(self._pending + bytes(self._frame_bytes - len(self._pending)))
            self._pending = b""
        return self._sink.take()

    def clear(self) -> None:
        self._pending = b""

    def hold_s(self, data: bytes, now: float) -> float:
        return 0.0


def default_output(config: object) -> str:
    """`browser.output` from the config when that section exists, else `pcm`."""
    browser = getattr(config, "browser", None)
    if isinstance(browser, dict):
        return str(browser.get("output", "pcm"))
    return str(getattr(browser, "output", "pcm"))


def audio_config(sample_rate: int, encoding: str, output: str) -> dict[str, object]:
    """The `audio_config` of the `connected` status (and of the reply to `config`): what the
    client sends (`sample_rate`, `encoding`) and what it receives (`output`, `mime_type`)."""
    return {
        "sample_rate": sample_rate,
        "encoding": encoding,
        "frame_size_ms": 20,
        "output": output,
        "mime_type": MIME_TYPES[output],
    }
