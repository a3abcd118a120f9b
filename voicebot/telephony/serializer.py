"""The provider-agnostic shape of a telephony media stream, without any I/O.

Twilio, Telnyx, Plivo, Vonage and Exotel all stream a phone call over a WebSocket as JSON text
frames: a start message naming the call and its audio format, base64 audio frames, key presses,
playback marks and a stop. They differ only in field names. A provider plugin therefore supplies
one `MediaStreamSerializer`: `parse()` turns one inbound message into one of the typed events
below, and `render_*()` turns what the call wants to send into one outbound message. The
WebSocket handler (`voicebot.server.telephony`) and the call pipeline never see a provider's
field names, and the serializer is tested without sockets.

One serializer instance serves one stream: it learns the stream id from `Start` (`bind()`) and
stamps it on everything it renders.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from ..providers import AudioFormat, NoOptions

# ----------------------------------------------------------------------------------- errors


class TelephonyError(Exception):
    """Base of every telephony error: a caller-side or provider-side fault, never our crash."""


class MalformedMessage(TelephonyError):
    """Not JSON, a missing or mistyped field, or audio that is not valid base64."""


class MalformedStart(MalformedMessage):
    """A `start` that cannot start a call (no stream id, an impossible format...): the stream
    is closed with 1007 at once, since nothing useful can follow it."""


class UnknownEvent(TelephonyError):
    """Well-formed, but an event this serializer does not know; a newer provider may send these."""

    def __init__(self, event: str) -> None:
        super().__init__(f"unknown event '{event}'")
        self.event = event


class UnsupportedFormat(TelephonyError):
    """The stream declares an audio format voicebot cannot decode."""


class NotStarted(TelephonyError):
    """Something that needs the stream id was rendered before `bind()`."""


# ----------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class MediaFormat:
    """The inbound audio format a stream declares, in voicebot's encoding names."""

    encoding: str = "mulaw"
    sample_rate: int = 8000
    channels: int = 1

    def audio_format(self) -> AudioFormat:
        return AudioFormat(self.sample_rate, self.encoding)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Connected:
    protocol: str = ""
    version: str = ""


@dataclass(frozen=True)
class Start:
    """A stream begins: carrier-neutral names, each serializer maps its own wire fields (Twilio:
    `streamSid`, `callSid`, `accountSid`, `customParameters`, `mediaFormat`). The call's
    variables keep their documented names (`call_sid`, `stream_sid`, `account_sid`)."""

    stream_id: str
    call_id: str
    account_id: str = ""
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    media_format: MediaFormat = field(default_factory=MediaFormat)
    tracks: tuple[str, ...] = ("inbound",)


@dataclass(frozen=True)
class Media:
    payload: bytes
    track: str = "inbound"
    timestamp: int | None = None  # ms since the stream started, as the provider counts it


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class Mark:
    name: str


@dataclass(frozen=True)
class Stop:
    call_id: str = ""


InboundEvent = Connected | Start | Media | Dtmf | Mark | Stop
#: what a `render_*` returns: a text message (JSON carriers), a binary one (raw audio), or
#: several to send in order
Outbound = str | bytes | Sequence[str | bytes]


# ------------------------------------------------------------------------------- interfaces


class CallControl(Protocol):
    """Provider REST operations on a live call (one instance per process, shared by calls).

    It may also define `async hangup(start)`: called when the bot ends a call (not when the
    caller hung up, nor after a transfer), for a carrier whose call outlives its media stream;
    it raises `TelephonyError` saying why it failed.

    And `async place_call(to, from_, public_url) -> str`: an outbound call, answered through
    the carrier's own voice webhook under `public_url`, its progress reported to its status
    webhook; returns the carrier's call id (the `call_sid` of the call once answered).

    And `use_shared_values(values)`: called once, before any call, with the `SharedValues`
    its carrier's webhooks also see (`WebhookCall.shared_values`), for a carrier whose calls
    leave something for a later webhook (Exotel's transfer target)."""

    async def transfer(self, start: Start, target: str) -> None:
        """Redirect the call to `target`; raises `TelephonyError` saying why it failed."""

    async def aclose(self) -> None: ...


class MediaStreamSerializer(ABC):
    """One provider's media-stream wire format; one instance per stream.

    `name` is the provider name used in routes (`/telephony/{name}/media`) and config
    (`telephony.{name}`). `Options` is the dataclass schema of that config section.
    """

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    #: The most bot audio (ms) the carrier takes in one media message. Some require exactly one
    #: 20 ms frame; one that takes more gets up to `pipeline.phone_message_ms` per message.
    max_message_ms: ClassVar[int] = 20
    #: Whether the carrier acknowledges playback (echoes marks). Without, "heard" is estimated
    #: from the real-time pace of the send, as on AudioSocket, and a barge-in just stops sending.
    supports_marks: ClassVar[bool] = True
    #: How far ahead of the far end's playout audio is sent (ms); 0: `pipeline.playback_lead_ms`.
    #: `configure()` may set it from the carrier's options.
    playback_lead_ms: int = 0

    def __init__(self) -> None:
        self.stream_id: str | None = None

    def configure(self, options: Any) -> None:
        """Called once with the `telephony.{name}` options before the stream is read, for a wire
        format that depends on them (e.g. Asterisk's plain-text or JSON control messages)."""

    def bind(self, start: Start) -> None:
        """Remember the stream this serializer renders for."""
        self.stream_id = start.stream_id

    @abstractmethod
    def parse(self, message: str | bytes) -> InboundEvent:
        """One inbound message → one event; raises `MalformedMessage`/`UnknownEvent`/
        `UnsupportedFormat`."""

    @abstractmethod
    def render_media(self, audio: bytes) -> Outbound:
        """One outbound audio frame, already in the stream's format: a text message, bytes for
        a carrier that takes audio as binary WebSocket messages, or several messages."""

    @abstractmethod
    def render_mark(self, name: str) -> Outbound: ...

    @abstractmethod
    def render_clear(self) -> Outbound: ...

    def render_transfer(self, target: str) -> Outbound | None:
        """A message asking the far end to transfer the call, for a carrier whose stream has
        one and no REST call control (FreeSWITCH's listener acts on it); None: not possible.
        Raises `TelephonyError` for a target it cannot carry."""
        return None

    def render_hangup(self) -> Outbound | None:
        """A message that hangs the call up, sent before the bot closes the stream, for a
        carrier whose stream has one (Asterisk's `HANGUP`); None: closing the stream is it."""
        return None

    @classmethod
    def configured_media_paths(cls, options: Any) -> tuple[str, ...]:
        """Extra paths of the media stream that come from its `telephony.{name}` options
        (FreeSWITCH's `path`), besides `Carrier.media_paths`."""
        return ()

    @classmethod
    def call_control(cls, options: Any) -> CallControl | None:
        """The provider's REST client for transfers, or None when credentials are missing."""
        return None

    @classmethod
    def transfer_problem(cls, options: Any) -> str | None:
        """Why `call_control()` cannot transfer calls with these options (None: it can)."""
        return f"the {cls.name} telephony provider does not support call transfer"

    @classmethod
    def authenticate(
        cls,
        options: Any,
        url: str,
        headers: Mapping[str, str],
        params: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> bool | None:
        """Whether a request (webhook or WebSocket upgrade to `url`) really comes from the
        provider; None when no verification is configured."""
        return None

    def _require_stream(self) -> str:
        if self.stream_id is None:
            raise NotStarted("the stream has not started yet (no start message received)")
        return self.stream_id
