"""Asterisk AudioSocket, sans-I/O: the byte stream in, typed call events out, and back.

The protocol (docs.asterisk.org, Configuration/Channel-Drivers/AudioSocket): every message is a
3-byte header, one byte of type and a 16-bit big-endian payload length, then the payload.

| type | payload |
|---|---|
| 0x00 | none: hang up (closing the socket is also sufficient) |
| 0x01 | the call's UUID, 16 bytes binary (the `uuid` argument of `AudioSocket(uuid,host:port)`) |
| 0x03 | one ASCII DTMF digit (Asterisk 20.x/21.x/22.x and later) |
| 0x10 | signed linear 16-bit 8 kHz mono PCM, little-endian |
| 0x11-0x18 | slin at higher rates (Asterisk 23 and recent 20-22 point releases): refused, since the
  dialplan application sends 0x10 and mixing rates mid-call is not supported |
| 0xff | an error; the payload is an optional application-specific code |

The length field allows 64 KiB payloads; a frame larger than `max_payload_bytes` (a 20 ms frame is
320 bytes) is refused before it is buffered, so a peer cannot make us hold more than one bounded
frame. AudioSocket has no playback acknowledgement and no "clear": what was heard is estimated by
the core from the real-time pace at which audio is sent.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field

from voicebot.telephony.carrier import (
    Dtmf,
    FrameTooLarge,
    InboundEvent,
    MalformedMessage,
    Media,
    Start,
    Stop,
    StreamProtocol,
    UnknownEvent,
    UnsupportedFormat,
    parse_networks,
)

HANGUP = 0x00
UUID = 0x01
DTMF = 0x03
SLIN = 0x10
ERROR = 0xFF
HIGHER_RATES = range(0x11, 0x19)
HEADER = struct.Struct(">BH")
DTMF_DIGITS = frozenset("0123456789*#ABCD")

#: what our error frames carry (one byte each), documented in docs/telephony.md
ERROR_CODES = {
    "protocol": 0x01,
    "too_large": 0x02,
    "unsupported": 0x03,
    "no_start": 0x04,
    "capacity": 0x05,
    "rate_limited": 0x06,
}
#: Asterisk's own error codes (app_audiosocket), for the log line when it sends one
ASTERISK_ERRORS = {0x01: "caller hung up", 0x02: "frame forwarding error", 0x04: "memory error"}


@dataclass
class AudioSocketOptions:
    """`telephony.audiosocket` in config.yaml."""

    #: listen for Asterisk's connections (AudioSocket has no authentication: see docs/telephony.md)
    enabled: bool = False
    host: str = "127.0.0.1"
    #: 0 picks a free port (tests); Asterisk's examples use 9092
    port: int = field(default=9092, metadata={"min": 0, "max": 65535})
    max_payload_bytes: int = field(default=8192, metadata={"min": 320, "max": 65535})
    #: IP networks whose connections are accepted (`["10.0.0.0/8", "192.0.2.7"]`); empty: any
    #: peer that reaches the port. Others are closed at once, unread.
    allow_from: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        parse_networks(self.allow_from)  # a bad entry: ValueError, reported by `voicebot check`


def frame(kind: int, payload: bytes = b"") -> bytes:
    """One AudioSocket message."""
    return HEADER.pack(kind, len(payload)) + payload


class AudioSocketProtocol(StreamProtocol):
    name = "audiosocket"
    Options = AudioSocketOptions

    def __init__(self, options: AudioSocketOptions | None = None) -> None:
        super().__init__(options or AudioSocketOptions())
        self._max = self.options.max_payload_bytes
        self._buf = bytearray()
        self.call_id: str | None = None

    def feed(self, data: bytes) -> list[InboundEvent]:
        self._buf += data
        events: list[InboundEvent] = []
        while len(self._buf) >= HEADER.size:
            kind, length = HEADER.unpack_from(self._buf)
            if length > self._max:
                raise FrameTooLarge(
                    f"frame type 0x{kind:02x} of {length} bytes is larger than {self._max}"
                )
            if len(self._buf) < HEADER.size + length:
                break
            payload = bytes(self._buf[HEADER.size : HEADER.size + length])
            del self._buf[: HEADER.size + length]
            try:
                event = self._event(kind, payload)
            except UnknownEvent:
                continue
            events.append(event)
            if isinstance(event, Stop):
                self._buf.clear()  # nothing after a hang-up matters
                break
        return events

    def _event(self, kind: int, payload: bytes) -> InboundEvent:
        if kind == UUID:
            if self.call_id is not None:
                raise MalformedMessage("a second uuid frame")
            if len(payload) != 16:
                raise MalformedMessage(f"uuid frame of {len(payload)} bytes, not 16")
            self.call_id = str(uuid.UUID(bytes=payload))
            return Start(
                stream_id=self.call_id, call_id=self.call_id, media_format=self.media_format
            )
        if kind == HANGUP:
            return Stop(self.call_id or "")
        if kind == ERROR:
            code = payload[0] if payload else 0
            reason = ASTERISK_ERRORS.get(code, f"error 0x{code:02x}")
            return Stop(f"{self.call_id or ''}: {reason}")
        if self.call_id is None:
            raise MalformedMessage(f"frame type 0x{kind:02x} before the uuid frame")
        if kind == SLIN:
            if len(payload) % 2:
                raise MalformedMessage(f"slin frame of {len(payload)} bytes (odd)")
            return Media(payload)
        if kind == DTMF:
            digit = payload.decode("ascii", "replace")
            if len(payload) != 1 or digit not in DTMF_DIGITS:
                raise MalformedMessage(f"dtmf frame with payload {payload[:4]!r}")
            return Dtmf(digit)
        if kind in HIGHER_RATES:
            raise UnsupportedFormat(
                f"audio frame type 0x{kind:02x} (slin above 8 kHz); send 0x10 (8 kHz slin)"
            )
        raise UnknownEvent(f"0x{kind:02x}")

    def render_media(self, audio: bytes) -> bytes:
        return frame(SLIN, audio)

    def render_hangup(self) -> bytes:
        return frame(HANGUP)

    def render_error(self, code: str) -> bytes:
        return frame(ERROR, bytes([ERROR_CODES.get(code, ERROR_CODES["protocol"])]))
