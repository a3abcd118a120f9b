"""Opus in WebM, as browsers' MediaRecorder sends it: demuxed and decoded as it streams."""

from __future__ import annotations

import asyncio
import io
import math
import struct

import numpy as np
import pytest
import websockets

from voicebot.audio.webm import WebmDemuxer, WebmError, WebmOpusDecoder

from .attacks import webm_header
from .support import Client, base_config, serve, silence, tone

av = pytest.importorskip("av")


def webm_opus(pcm16_48k: bytes) -> bytes:
    """Encode with libopus and mux to WebM, as a browser's MediaRecorder does."""
    buf = io.BytesIO()
    out = av.open(buf, "w", format="webm")
    stream = out.add_stream("libopus", rate=48000)
    stream.layout = "mono"
    x = np.frombuffer(pcm16_48k, dtype="<i2")
    for i in range(0, len(x) - 959, 960):
        frame = av.AudioFrame.from_ndarray(
            x[i : i + 960].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = 48000, i
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    return buf.getvalue()


@pytest.mark.parametrize("chunk", [1, 7, 160, 100_000])
def test_demuxer_handles_any_chunking(chunk):
    data = webm_opus(tone(500, 48000, freq=440))
    dec = WebmOpusDecoder()
    pcm = b"".join(dec.decode(data[i : i + chunk]) for i in range(0, len(data), chunk))
    y = np.frombuffer(pcm, dtype="<i2").astype(float)
    assert 0.45 * 48000 < len(y) < 0.6 * 48000
    freqs = np.fft.rfftfreq(len(y), 1 / 48000)
    assert abs(freqs[np.argmax(np.abs(np.fft.rfft(y)))] - 440) < 5


def test_not_webm_is_refused_clearly():
    with pytest.raises(WebmError, match="WebM"):
        list(WebmDemuxer().feed(b"RIFF\x24\x00\x00\x00WAVEfmt "))


async def test_webm_call_over_the_socket(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        ws = await websockets.connect(f"{server.url}/ws/voice?encoding=webm&sample_rate=48000")
        c = Client(ws, 48000)
        _, first = await c.wait_for(lambda e: e.get("status") == "connected")
        assert first["audio_config"]["encoding"] == "webm"
        data = webm_opus(silence(200, 48000) + tone(500, 48000) + silence(600, 48000))
        for i in range(0, len(data), 500):  # MediaRecorder-sized chunks
            await ws.send(data[i : i + 500])
        _, tr = await c.wait_for(lambda e: e.get("type") == "transcript" and e["final"])
        assert tr["text"] == "what time is it"
        t, _ = await c.wait_for(lambda e: e.get("type") == "response" and "what time" in e["text"])
        await c.wait_audio(9600, after=t)  # the reply comes back as PCM16 at 48 kHz
        assert {len(a) for at, a in c.audio if at > t} >= {1920}
        await ws.send(b"\x00garbage that is not a continuation of the stream")
        await asyncio.wait_for(c.closed.wait(), 5)
        assert ws.close_code == 1007
        await c.close()


MALFORMED = {
    "block of 0 bytes": webm_header() + b"\xa3\x80",
    "block of 1 byte": webm_header() + b"\xa3\x81\x81",
    "block of 3 bytes": webm_header() + b"\xa3\x83\x81\x00\x00",
    "SamplingFrequency of 0 bytes": webm_header(sampling_frequency=b""),
    "SamplingFrequency of 3 bytes": webm_header(sampling_frequency=b"\x47\x3b\x80"),
    "SamplingFrequency NaN": webm_header(float("nan")),
    "SamplingFrequency inf": webm_header(float("inf")),
    "SamplingFrequency -inf (4 bytes)": webm_header(
        sampling_frequency=struct.pack(">f", -math.inf)
    ),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_fields_are_webm_errors(data):
    with pytest.raises(WebmError):
        list(WebmDemuxer().feed(data))


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_webm_closes_1007_without_a_traceback(tmp_path, caplog, data):
    async with serve(tmp_path, base_config()) as server:
        ws = await websockets.connect(f"{server.url}/ws/voice?encoding=webm&sample_rate=48000")
        c = Client(ws, 48000)
        await c.wait_for(lambda e: e.get("status") == "connected")
        await ws.send(data)
        await asyncio.wait_for(c.closed.wait(), 5)
        assert (ws.close_code, ws.close_reason) == (1007, "invalid audio data")
        errors = [e for _, e in c.events if e.get("type") == "error"]
        assert errors and errors[0]["code"] == "invalid_audio", c.types()
        await c.close()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
