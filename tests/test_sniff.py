"""Caller audio is what its bytes say it is: containers sniffed and decoded in any chunking, raw
PCM never mistaken for one, and a recognised format that cannot be decoded refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from voicebot.audio import AudioLimitError, InboundAudio, UnsupportedAudio
from voicebot.audio.encoders import new_encoder
from voicebot.audio.sniff import sniff

from .client_audio import (
    decode_file,
    dominant_hz,
    mp3_file,
    ogg_opus,
    wav_file,
    webm_recording,
)
from .support import silence, tone


def heard(conv: InboundAudio, pieces: list[bytes]) -> np.ndarray:
    pcm = b"".join(f for piece in pieces for f in conv.push(piece))
    return np.frombuffer(pcm, "<i2").astype(float)


def as_pieces(data: bytes, chunk: int) -> list[bytes]:
    return [data[i : i + chunk] for i in range(0, len(data), chunk)]


TONE_48K = tone(1000, 48000, freq=440)
FILES = {
    "wav 48k stereo": lambda: wav_file(TONE_48K, 48000, channels=2),
    "wav 44.1k": lambda: wav_file(tone(1000, 44100, freq=440), 44100),
    "wav 8k": lambda: wav_file(tone(1000, 8000, freq=440), 8000),
    "ogg/opus": lambda: ogg_opus(TONE_48K)[0],
    "webm/opus": lambda: b"".join(webm_recording(TONE_48K)),
    "mp3 (ID3)": lambda: mp3_file(TONE_48K, 48000),
    "mp3 24k": lambda: mp3_file(tone(1000, 24000, freq=440), 24000),
}


@pytest.mark.parametrize("make", FILES.values(), ids=FILES.keys())
@pytest.mark.parametrize("chunk", [0, 97, 4096])
def test_containers_decode_at_their_own_rate_whatever_was_declared(make, chunk):
    data = make()
    conv = InboundAudio(16000, "pcm_s16le", 16000)
    y = heard(conv, as_pieces(data, chunk) if chunk else [data])
    assert 0.9 < len(y) / 16000 < 1.15
    assert abs(dominant_hz(y, 16000) - 440) < 5


def test_mp3_without_a_tag_is_found_by_two_frame_syncs():
    data = mp3_file(TONE_48K, 48000)
    start = data.index(b"\xff\xfb")  # past the ID3 tag
    assert sniff(data[start:]) == "mp3"
    conv = InboundAudio(16000, "pcm_s16le", 16000)
    assert abs(dominant_hz(heard(conv, [data[start:]]), 16000) - 440) < 5


def test_raw_pcm_is_the_declared_encoding():
    rng = np.random.default_rng(7)
    noise = rng.integers(-32768, 32767, 16000 * 5, dtype="<i2").tobytes()
    pcm = tone(500, 24000, freq=300)
    assert sniff(noise[:640]) is None
    for i in range(0, len(noise), 640):
        assert sniff(noise[i : i + 640], first=False) is None
    conv = InboundAudio(24000, "pcm_s16le", 16000)
    y = heard(conv, as_pieces(pcm, 1920))  # 80 ms frames
    assert abs(dominant_hz(y, 16000) - 300) < 5


def test_a_second_recording_restarts_the_decoder():
    first = webm_recording(silence(200, 48000) + tone(500, 48000, freq=440))
    second = webm_recording(tone(500, 48000, freq=880))
    conv = InboundAudio(16000, "pcm_s16le", 16000)
    a = heard(conv, first)
    b = heard(conv, second)
    assert abs(dominant_hz(a, 16000) - 440) < 5
    assert abs(dominant_hz(b, 16000) - 880) < 5 and len(b) > 0.4 * 16000


GARBAGE = {
    "Ogg page of nothing": (b"OggS\x00\x02" + bytes(20) + b"\x01\x08" + b"notopus!", "Ogg"),
    "Ogg/Vorbis": (None, "Ogg/Vorbis"),
    "RIFF that is not WAVE": (b"RIFF\x24\x00\x00\x00AVI LIST" + bytes(64), "RIFF"),
    "WAV of float samples": (None, "WAV"),
    "FLAC": (b"fLaC\x00\x00\x00\x22" + bytes(64), "FLAC"),
    "MP4 (Safari)": (b"\x00\x00\x00\x1cftypM4A " + bytes(64), "MP4"),
}


def _garbage(name: str) -> bytes:
    data = GARBAGE[name][0]
    if data is not None:
        return data
    if name == "Ogg/Vorbis":
        head = b"\x01vorbis" + bytes(22)
        return b"OggS\x00\x02" + bytes(20) + bytes([1, len(head)]) + head
    fmt = b"fmt \x10\x00\x00\x00" + (3).to_bytes(2, "little") + b"\x01\x00\x80\xbb\x00\x00"
    fmt += b"\x00\xee\x02\x00\x04\x00\x20\x00"
    return b"RIFF\x00\x00\x00\x00WAVE" + fmt + b"data\x00\x00\x00\x00" + bytes(64)


@pytest.mark.parametrize("name", GARBAGE.keys())
def test_recognised_but_undecodable_is_refused_by_name(name):
    conv = InboundAudio(16000, "pcm_s16le", 16000)
    with pytest.raises(UnsupportedAudio) as err:
        conv.push(_garbage(name))
    assert err.value.detected.startswith(GARBAGE[name][1])
    # the rest of that stream is dropped, not played as PCM; a new recording is heard again
    assert conv.push(bytes(640)) == []
    assert heard(conv, webm_recording(tone(300, 48000))).size > 0


def test_the_decode_meter_caps_a_container_before_it_is_decoded():
    data = ogg_opus(tone(3000, 48000))[0]
    spent = []

    def meter(seconds: float) -> None:
        spent.append(seconds)
        if sum(spent) > 1.0:
            raise AudioLimitError("audio_too_large", "over", "audio message too large")

    with pytest.raises(AudioLimitError):
        InboundAudio(16000, "pcm_s16le", 16000).push(data, meter)
    assert sum(spent) < 1.1


@pytest.mark.parametrize(("output", "rate"), [("wav", 16000), ("mp3", 24000), ("webm", 48000)])
def test_each_output_decodes_back_to_the_audio_at_its_rate(output, rate):
    enc = new_encoder(output, rate)
    pcm = tone(1000, rate, freq=440)
    frame = rate * 2 // 50
    data = b"".join(enc.encode(pcm[i : i + frame]) for i in range(0, len(pcm), frame))
    data += enc.end_segment()
    x, got_rate = decode_file(data)
    assert got_rate == (48000 if output == "webm" else rate)  # Opus always decodes at 48 kHz
    assert 0.95 < len(x) / got_rate < 1.2
    assert abs(dominant_hz(x, got_rate) - 440) < 5
