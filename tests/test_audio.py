"""Codecs, streaming resampling without edge clicks, framing."""

import numpy as np
import pytest

from voicebot.audio import (
    AudioFormatError,
    Framer,
    InboundAudio,
    OutboundAudio,
    Resampler,
    decode,
    encode,
)


def sine(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * 10000).astype("<i2")


@pytest.mark.parametrize("enc", ["mulaw", "alaw"])
def test_companding_round_trip(enc):
    x = sine(8000, 0.1).tobytes()
    y = np.frombuffer(decode(encode(x, enc), enc), dtype="<i2").astype(float)
    assert np.sqrt(np.mean((y - np.frombuffer(x, dtype="<i2")) ** 2)) < 200


@pytest.mark.parametrize(
    "src,dst", [(8000, 16000), (16000, 8000), (48000, 16000), (16000, 24000), (44100, 16000)]
)
def test_streaming_resampler_matches_one_shot_and_has_no_edge_clicks(src, dst):
    x = sine(src, 1.0)
    rs = Resampler(src, dst)
    step = src // 50
    out = b"".join(rs.process(x[i : i + step].tobytes()) for i in range(0, len(x), step))
    out += rs.flush()
    y = np.frombuffer(out, dtype="<i2").astype(float)
    assert abs(len(y) - dst) <= dst * 0.01
    # no clicks: sample-to-sample steps never exceed what a 440 Hz sine can do at this rate
    core = y[dst // 10 : -dst // 10]
    max_step = 10000 * 2 * np.pi * 440 / dst * 1.15
    assert np.abs(np.diff(core)).max() < max_step


def test_framer_keeps_remainder():
    f = Framer(4)
    assert f.push(b"abcdef") == [b"abcd"]
    assert f.push(b"gh") == [b"efgh"]
    assert f.push(b"x") == [] and f.flush() == b"x\0\0\0"


def test_inbound_odd_bytes_and_outbound_mulaw_padding():
    inbound = InboundAudio(16000, "pcm_s16le")
    frames = inbound.push(b"\x01" * 641) + inbound.push(b"\x01" * 639)
    assert [len(f) for f in frames] == [640, 640]
    out = OutboundAudio(8000, "mulaw")
    frames = out.push(sine(16000, 0.05).tobytes(), 16000) + out.end_segment()
    assert all(len(f) == 160 for f in frames) and len(frames) == 3
    assert frames[-1][-10:] == encode(bytes(20), "mulaw")  # padded with μ-law silence


def test_bad_formats_are_refused():
    with pytest.raises(AudioFormatError):
        InboundAudio(4000, "pcm_s16le")
    with pytest.raises(AudioFormatError):
        OutboundAudio(16000, "opus")


def test_audio_format_lives_in_the_audio_layer_and_plugins_still_import_it() -> None:
    import voicebot.audio
    import voicebot.providers

    assert voicebot.audio.AudioFormat.__module__ == "voicebot.audio.types"
    assert voicebot.providers.AudioFormat is voicebot.audio.AudioFormat
