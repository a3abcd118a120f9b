"""Audio as existing clients send it, made with the same encoders browsers and tools use (libopus,
LAME through PyAV; the stdlib `wave`), from a recorded human utterance."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import av
import numpy as np

from voicebot.audio import Resampler

SPEECH = Path(__file__).parent.parent / "benchmarks" / "data" / "speech"


def speech(name: str = "goforward.wav", rate: int = 16000, pad_ms: int = 300) -> bytes:
    """A recording as PCM16 mono at `rate`, with `pad_ms` of silence either side."""
    with wave.open(str(SPEECH / name)) as w:
        pcm = w.readframes(w.getnframes())
    pad = bytes(2 * 16000 * pad_ms // 1000)
    pcm = pad + pcm + pad + pad
    if rate != 16000:
        r = Resampler(16000, rate)
        pcm = r.process(pcm) + r.flush()
    return pcm


def wav_file(pcm: bytes, rate: int, channels: int = 1) -> bytes:
    x = np.frombuffer(pcm, "<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(x, channels).astype("<i2").tobytes())
    return buf.getvalue()


class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, b: bytes) -> int:
        self.data += b
        return len(b)


def encoded(pcm: bytes, rate: int, fmt: str, codec: str, every: int = 0) -> list[bytes]:
    """`pcm` encoded and muxed by libavformat as a live (non-seekable) stream, the way a
    MediaRecorder writes it; cut after every `every` packets (5 × 20 ms = `start(100)`), or
    one piece when 0."""
    sink = _Sink()
    options = {"live": "1"} if fmt == "webm" else {}
    out = av.open(sink, "w", format=fmt, options=options)
    stream = out.add_stream(codec, rate=rate)
    stream.layout = "mono"
    x = np.frombuffer(pcm, "<i2")
    n = rate // 50
    chunks: list[bytes] = []
    packets = 0

    def mux(packets_out: list) -> None:
        nonlocal packets
        for packet in packets_out:
            out.mux(packet)
            packets += 1
            if every and packets % every == 0 and sink.data:
                chunks.append(bytes(sink.data))
                sink.data.clear()

    for i in range(0, len(x) - n + 1, n):
        frame = av.AudioFrame.from_ndarray(x[i : i + n].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = rate, i
        mux(stream.encode(frame))
    mux(stream.encode(None))
    out.close()
    if sink.data:
        chunks.append(bytes(sink.data))
    return chunks if every else [b"".join(chunks)]


def webm_recording(pcm48k: bytes, every: int = 5) -> list[bytes]:
    """Chrome's MediaRecorder(`audio/webm;codecs=opus`).start(100): a chunk per 100 ms."""
    return encoded(pcm48k, 48000, "webm", "libopus", every)


def ogg_opus(pcm48k: bytes, every: int = 0) -> list[bytes]:
    return encoded(pcm48k, 48000, "ogg", "libopus", every)


def mp3_file(pcm: bytes, rate: int) -> bytes:
    return encoded(pcm, rate, "mp3", "libmp3lame")[0]


def decode_file(data: bytes, fmt: str | None = None) -> tuple[np.ndarray, int]:
    """Any file or stream → (mono float samples, rate), read by PyAV as a player would."""
    with av.open(io.BytesIO(data), format=fmt) as c:
        frames = list(c.decode(audio=0))
    rate = frames[0].sample_rate
    x = np.concatenate([f.to_ndarray().reshape(len(f.layout.channels), -1)[0] for f in frames])
    if x.dtype.kind == "i":
        x = x / 32768
    return x, rate


def dominant_hz(x: np.ndarray, rate: int) -> float:
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(np.abs(np.fft.rfft(x)))])
