"""Phone doors that are not WebSockets: a PBX that streams a call over plain TCP.

Asterisk's AudioSocket opens a TCP connection per call and speaks a binary framing of its own;
there is no HTTP request, no webhook and no WebSocket, so a `Carrier` (built around a media
WebSocket) does not fit it. A plugin registers a `TcpCarrier` through the same
`register_telephony` hook instead: a sans-I/O `StreamProtocol` (bytes in → the typed events of
`serializer`, outbound audio → bytes) and the options that say where to listen. The core
(`voicebot.server.tcp_door`) owns the sockets, the listening server and the call, so a protocol is
tested without sockets and a new one needs no core edit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from .serializer import InboundEvent, MalformedMessage, MediaFormat


class StreamProtocol(ABC):
    """One TCP connection's wire format; one instance per connection.

    `feed()` may be handed any slice of the byte stream (a TCP read has no message boundaries) and
    returns the events completed by it. A framing error raises `MalformedMessage`: on a byte
    stream nothing after it can be trusted, so the core answers `render_error()` and closes.
    `UnknownEvent` (a well-framed message of a kind this protocol ignores) is skipped instead.

    `Options` is the `telephony.{name}` schema; the core reads `enabled`, `host` and `port`,
    and `allow_from` (a list of IP networks; peers outside it are closed unread) when it has one.
    """

    name: ClassVar[str]
    Options: ClassVar[type]
    #: the audio format both ways, once the call has started
    media_format: ClassVar[MediaFormat] = MediaFormat("pcm_s16le", 8000)
    #: whether the far end confirms playback; if not, "heard" is the paced-send estimate
    supports_marks: ClassVar[bool] = False

    def __init__(self, options: object) -> None:
        self.options = options

    @abstractmethod
    def feed(self, data: bytes) -> list[InboundEvent]: ...

    @abstractmethod
    def render_media(self, audio: bytes) -> bytes: ...

    @abstractmethod
    def render_hangup(self) -> bytes: ...

    @abstractmethod
    def render_error(self, code: str) -> bytes:
        """An error frame for one of the core's reasons: `protocol`, `too_large`, `capacity`,
        `rate_limited`, `no_start`, `unsupported`."""


@dataclass(frozen=True)
class TcpCarrier:
    """A PBX that connects to us over TCP: `register(TcpCarrier(AudioSocketProtocol))`."""

    protocol: type[StreamProtocol]
    display_name: str = ""

    @property
    def name(self) -> str:
        return self.protocol.name

    @property
    def title(self) -> str:
        return self.display_name or self.name


class FrameTooLarge(MalformedMessage):
    """A frame whose declared length is over the protocol's bound: refused before it is read."""
