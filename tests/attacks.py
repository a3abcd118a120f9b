"""Attack inputs, importable by tests and benchmarks (`from tests.attacks import opus_bomb_webm`).

The Opus "decompression bomb" (issue 19): an Opus packet of two bytes, TOC 0xFB (CELT, 20 ms,
code 3) and a frame-count byte of 6 with no frame data, is six empty frames that decode to 120 ms
of audio. Eight bytes of WebM SimpleBlock per packet make a compressed stream expand ~15 000× when
decoded: one 256 KB WebSocket message becomes about an hour of audio.

The EBML is written by hand rather than muxed with PyAV, so the stream is byte-for-byte the same
everywhere and needs no codec to build.
"""

from __future__ import annotations

import struct

BOMB_PACKET = b"\xfb\x06"  # TOC: config 31 (CELT FB 20 ms), mono, code 3; then 6 CBR frames
BOMB_PACKET_S = 0.120
SIMPLE_BLOCK_BYTES = 8  # ID, size, track, timecode (2), flags, packet (2)


def _size(n: int) -> bytes:
    """An EBML data size in 8 bytes (always valid, whatever `n`)."""
    return b"\x01" + n.to_bytes(7, "big")


def _element(elem_id: bytes, body: bytes) -> bytes:
    return elem_id + _size(len(body)) + body


def webm_header(
    sample_rate: float = 48000.0, channels: int = 1, sampling_frequency: bytes | None = None
) -> bytes:
    """A WebM stream up to its first Cluster, as MediaRecorder starts one: EBML header, a Segment
    and a Cluster of unknown size (live streams), one Opus track. `sample_rate` is written as an
    8-byte float (NaN and inf too); `sampling_frequency` replaces that field's raw bytes."""
    ebml = _element(b"\x1a\x45\xdf\xa3", _element(b"\x42\x82", b"webm"))
    if sampling_frequency is None:
        sampling_frequency = struct.pack(">d", sample_rate)
    audio = _element(b"\xb5", sampling_frequency) + _element(b"\x9f", bytes([channels]))
    entry = (
        _element(b"\xd7", b"\x01")  # TrackNumber 1
        + _element(b"\x86", b"A_OPUS")
        + _element(b"\xe1", audio)
    )
    tracks = _element(b"\x16\x54\xae\x6b", _element(b"\xae", entry))
    segment = b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff"  # unknown size
    cluster = b"\x1f\x43\xb6\x75\x01\xff\xff\xff\xff\xff\xff\xff" + _element(b"\xe7", b"\x00")
    return ebml + segment + tracks + cluster


def simple_block(packet: bytes, track: int = 1, timecode: int = 0) -> bytes:
    """One SimpleBlock (keyframe, no lacing) holding `packet`."""
    body = bytes([0x80 | track]) + struct.pack(">h", timecode) + b"\x80" + packet
    size = len(body)
    if size < 0x7F:
        return b"\xa3" + bytes([0x80 | size]) + body
    return b"\xa3" + _size(size) + body


def opus_bomb_blocks(seconds_of_audio: float) -> bytes:
    """SimpleBlocks of the 2-byte packet that decode to `seconds_of_audio` (rounded up to 120 ms),
    to follow `webm_header()` in the same stream."""
    n = max(1, round(seconds_of_audio / BOMB_PACKET_S + 0.4999))
    return simple_block(BOMB_PACKET) * n


def opus_bomb_webm(seconds_of_audio: float) -> bytes:
    """A whole WebM stream (header and blocks) that decodes to `seconds_of_audio` of silence.
    ~67 bytes per second of audio: `opus_bomb_webm(3900)` is ~260 KB, one maximum-size message."""
    return webm_header() + opus_bomb_blocks(seconds_of_audio)
