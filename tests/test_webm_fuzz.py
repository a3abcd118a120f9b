"""Fuzzing the WebM demuxer and Opus decoding (hypothesis): any input gives audio or the module's
own errors (WebmError for a broken stream, AudioLimitError over a budget), never another exception,
and never more audio than its input can honestly carry or its meter allows."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicebot.audio import AudioLimitError
from voicebot.audio.budget import AudioBudget
from voicebot.audio.webm import (
    AUDIO,
    BLOCK,
    BLOCK_GROUP,
    CHANNELS,
    CLUSTER,
    CODEC_ID,
    EBML,
    SAMPLING_FREQUENCY,
    SEGMENT,
    SIMPLE_BLOCK,
    TRACK_ENTRY,
    TRACK_NUMBER,
    TRACKS,
    OpusDecoder,
    WebmDemuxer,
    WebmError,
    WebmOpusDecoder,
    opus_packet_samples,
)
from voicebot.config import LimitsConfig

from .attacks import BOMB_PACKET, simple_block, webm_header

pytest.importorskip("av")

from .support import tone
from .test_webm import webm_opus

REAL_PACKETS = list(WebmDemuxer().feed(webm_opus(tone(200, 48000))))

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
IDS = [
    EBML,
    SEGMENT,
    CLUSTER,
    TRACKS,
    TRACK_ENTRY,
    TRACK_NUMBER,
    CODEC_ID,
    AUDIO,
    SAMPLING_FREQUENCY,
    CHANNELS,
    BLOCK_GROUP,
    BLOCK,
    SIMPLE_BLOCK,
    0xE7,  # Timecode
    0xEC,  # Void
    0x63A2,  # CodecPrivate (skipped unread)
]
MAX_PACKET_SAMPLES = 5760  # 120 ms at 48 kHz, the longest legal Opus packet
MIN_BLOCK_BYTES = 6  # ID, size, track, timecode (2), flags: a packet needs at least one more


def _id_bytes(elem: int) -> bytes:
    return elem.to_bytes((elem.bit_length() + 7) // 8, "big")


def _size_bytes(n: int, width: int) -> bytes:
    if n >= (1 << (7 * width)) - 1:
        width = 8
    return ((1 << (7 * width)) | n).to_bytes(width, "big")


opus_packets = st.one_of(
    st.sampled_from(REAL_PACKETS),
    st.just(BOMB_PACKET),
    st.sampled_from([b"\xfc\xff\xfe", b"\x78" + bytes(20), b"\xfb\x30", b"\x4b\x41"]),
    st.binary(min_size=0, max_size=40),
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=20)).map(
        lambda t: bytes(t[:2]) + t[2]
    ),
)
bodies = st.one_of(
    st.binary(max_size=24),
    st.binary(max_size=4),  # shorter than any header field or block
    opus_packets.map(lambda p: simple_block(p)[2:] if len(p) < 0x7E else b"\x81\x00\x00\x80"),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: struct.pack(">d", f)),
    st.sampled_from([b"A_OPUS", b"A_VORBIS", b"V_VP8", b"\x01", b""]),
)


@st.composite
def random_elements(draw) -> bytes:
    elem = draw(
        st.sampled_from([*IDS, SIMPLE_BLOCK, BLOCK, SAMPLING_FREQUENCY]) | st.integers(0x81, 0xFE)
    )
    body = draw(bodies)
    how = draw(st.sampled_from(["exact", "exact", "exact", "unknown", "wrong"]))
    if how == "unknown":
        size = b"\x01\xff\xff\xff\xff\xff\xff\xff"
    else:
        n = len(body) if how == "exact" else draw(st.integers(0, 1 << 20))
        size = _size_bytes(n, draw(st.integers(1, 8)))
    return _id_bytes(elem) + size + body


# half the elements are well-formed blocks of (mostly plausible) Opus, so mutations hit real audio
blocks = opus_packets.map(simple_block)
tiny_fields = st.tuples(
    st.sampled_from([SIMPLE_BLOCK, BLOCK, SAMPLING_FREQUENCY]), st.binary(max_size=5)
).map(lambda t: _id_bytes(t[0]) + bytes([0x80 | len(t[1])]) + t[1])
elements = st.one_of(blocks, blocks, blocks, random_elements(), tiny_fields)


@st.composite
def mutated_streams(draw) -> bytes:
    """A plausible stream (often with a valid header) of random elements, then byte mutations."""
    head = draw(st.sampled_from([webm_header()] * 4 + [webm_header(float("nan")), b""]))
    data = bytearray(head + b"".join(draw(st.lists(elements, max_size=30))))
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _demux_only(data: bytes, cuts: list[int]) -> None:
    demux = WebmDemuxer()
    out = 0
    try:
        for chunk in _chunks(data, cuts):
            out += sum(len(p) for p in demux.feed(chunk))
    except (WebmError, AudioLimitError) as exc:
        assert str(exc)
    assert out <= len(data)


def _decode(data: bytes, cuts: list[int], cap_s: float = 2.0) -> None:
    """Through the decoder as a call uses it: every chunk metered."""
    dec = WebmOpusDecoder()
    budget = AudioBudget(LimitsConfig(audio_burst_s=1000.0), 1000.0)
    samples = 0
    try:
        for chunk in _chunks(data, cuts):
            samples += len(dec.decode(chunk, budget.meter(cap_s))) // 2
            # a message yields what its meter allowed, whatever it held
            assert samples <= cap_s * 48000 * len(_chunks(data, cuts))
    except (WebmError, AudioLimitError) as exc:
        assert str(exc)
    assert samples <= MAX_PACKET_SAMPLES * len(data) // MIN_BLOCK_BYTES


@FAST
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=6))
def test_demuxer_on_arbitrary_bytes(data, cuts):
    _demux_only(data, cuts)


@FAST
@given(st.binary(max_size=2000), st.lists(st.integers(0, 3000), max_size=6))
def test_demuxer_on_arbitrary_bytes_after_a_valid_header(data, cuts):
    _demux_only(webm_header() + data, cuts)


@FAST
@given(mutated_streams(), st.lists(st.integers(0, 3000), max_size=6))
def test_decoder_on_mutated_ebml(data, cuts):
    _demux_only(data, cuts)
    _decode(data, cuts)


@FAST
@given(st.binary(min_size=0, max_size=64))
def test_packet_duration_is_what_libopus_decodes(packet):
    """The meter charges a packet by its TOC before decoding it: libopus must never produce more
    than that (if it did, a bomb could pass the meter)."""
    try:
        samples = opus_packet_samples(packet)
    except WebmError:
        return
    assert 0 < samples <= MAX_PACKET_SAMPLES
    try:
        pcm = OpusDecoder().decode(packet)
    except WebmError:
        return
    assert len(pcm) // 2 == samples


def test_bomb_packet_duration():
    assert opus_packet_samples(BOMB_PACKET) == 5760
    assert len(OpusDecoder().decode(BOMB_PACKET)) == 2 * 5760
