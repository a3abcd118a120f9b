"""What a client's audio really is, read from its first bytes rather than trusted to the URL.

Existing clients never say `encoding=webm`: a browser's MediaRecorder just sends WebM (Chrome) or
Ogg (Firefox), a REST client posts a WAV with its own rate, another posts MP3. Each of those starts
with a signature, so the bytes decide; only audio with no signature is the declared (or
configured) raw encoding. A recognised format that cannot be decoded is refused by name
(`UnsupportedAudio`), never played as PCM noise. Sans I/O.
"""

from __future__ import annotations

from typing import Protocol

from .types import Meter, UnsupportedAudio

#: containers decoded here; anything else with a signature is refused by name
CONTAINERS = ("webm", "ogg", "wav", "mp3")

_REFUSED = {
    b"fLaC": "FLAC",
    b"#!AMR": "AMR",
    b"FORM": "AIFF",
    b"caff": "CAF",
}


def sniff(data: bytes, first: bool = True) -> str | None:
    """The container `data` starts with: one of CONTAINERS, None for raw audio. MP3 frame syncs
    are only believed at the start of a stream (`first`) and only when the next frame follows
    where the first says it ends: two bytes of PCM can look like one sync. Raises
    UnsupportedAudio for a format recognised but not decoded (FLAC, MP4/AAC, AIFF...)."""
    head = data[:12]
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"RIFF"):
        return "wav"
    if head.startswith(b"ID3") and len(head) >= 4 and 2 <= head[3] <= 4:
        return "mp3"
    if head[4:8] == b"ftyp":
        raise UnsupportedAudio(
            "MP4",
            "MP4/AAC audio (e.g. Safari's MediaRecorder) is not supported; send WebM/Opus, "
            "Ogg/Opus, WAV or MP3",
        )
    for magic, name in _REFUSED.items():
        if head.startswith(magic):
            raise UnsupportedAudio(name, f"{name} audio is not supported; send WAV, Opus or MP3")
    if first and _mp3_frames(data):
        return "mp3"
    return None


def _mp3_frames(data: bytes) -> bool:
    from .containers import mp3_frame

    frame = mp3_frame(data[:4])
    if frame is None:
        return False
    nxt = data[frame[0] : frame[0] + 4]
    return (len(nxt) < 4 and len(data) > 4) or mp3_frame(nxt) is not None


class Decoder(Protocol):
    sample_rate: int

    def decode(self, data: bytes, meter: Meter | None = None) -> bytes: ...


def new_decoder(kind: str) -> Decoder:
    if kind == "webm":
        from .webm import WebmOpusDecoder

        return WebmOpusDecoder()
    from .containers import Mp3Stream, OggOpusStream, WavStream

    return {"ogg": OggOpusStream, "wav": WavStream, "mp3": Mp3Stream}[kind]()


def compressed(data: bytes, declared: str) -> bool:
    """Whether decoding `data` (one whole payload) is worth a worker thread."""
    try:
        return declared == "webm" or sniff(data) in ("webm", "ogg", "mp3")
    except UnsupportedAudio:
        return False


class StreamSniffer:
    """One stream of caller audio: sniffs each message for a container signature, starts (or
    restarts, for a second MediaRecorder recording) the matching decoder, and feeds it. `push`
    returns (mono PCM16, its rate), or None for raw audio in the declared encoding.

    After an `UnsupportedAudio` the stream's bytes are dropped until a message starts a new
    stream: the client was told once, and what follows cannot be decoded either."""

    def __init__(self, declared: str) -> None:
        self.declared = declared
        self.kind: str | None = None
        self._decoder: Decoder | None = None
        self._refused = False
        self._fresh = True
        if declared == "webm":  # fails now, not mid-call, when the decoder is not installed
            self.kind, self._decoder = "webm", new_decoder("webm")

    def push(self, data: bytes, meter: Meter | None = None) -> tuple[bytes, int] | None:
        first, self._fresh = self._fresh, False
        # MP3 syncs are looked for in PCM16 only: μ-law/A-law silence is 0xFF, a sync's first byte
        first = first and self.declared in ("pcm_s16le", "webm")
        try:
            kind = sniff(data, first)
        except UnsupportedAudio:
            self._refused, self._decoder, self.kind = True, None, None
            raise
        if kind is not None and self._starts_stream(kind, data):
            self._refused, self.kind = False, kind
            self._decoder = new_decoder(kind)
        if self._refused:
            return b"", 16000
        if self._decoder is None:
            return None
        try:
            pcm = self._decoder.decode(data, meter)
        except UnsupportedAudio:
            self._refused, self._decoder = True, None
            raise
        return pcm, self._decoder.sample_rate

    def _starts_stream(self, kind: str, data: bytes) -> bool:
        """A signature mid-stream is a new stream, except where the format repeats it: every Ogg
        page starts `OggS` (only a beginning-of-stream page is new), every MP3 frame a sync."""
        if kind != self.kind:
            return True
        if kind == "ogg":
            return len(data) > 5 and bool(data[5] & 0x02)
        if kind == "mp3":
            return data.startswith(b"ID3")
        return True
