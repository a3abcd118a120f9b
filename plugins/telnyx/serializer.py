"""Telnyx media streaming: config schema and the media WebSocket's wire format.

Inbound (Telnyx → us): `connected`, `start` (`stream_id`, `start.call_control_id`,
`start.user_id`, `start.custom_parameters`, `start.media_format`), `media`
(`media.track/chunk/timestamp/payload`), `dtmf` (`dtmf.digit`), `mark` (`mark.name`, echoed when
the audio before it has played, or at once after a `clear`), `error` and `stop`.
Outbound (bidirectional RTP mode): `media` (`media.payload`, base64 RTP payload in the
stream's codec), `mark` and `clear`, exactly as the playback tracking of the core expects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from voicebot.telephony.carrier import (
    CallControl,
    Connected,
    Dtmf,
    InboundEvent,
    MalformedStart,
    Mark,
    Media,
    MediaFormat,
    MediaStreamSerializer,
    Start,
    Stop,
    UnknownEvent,
    UnsupportedFormat,
)

from .._carrier_kit import (
    audio,
    b64,
    digit,
    event_name,
    integer,
    json_object,
    optional_integer,
    optional_string,
    section,
    start_parameters,
    string,
)

_ENCODINGS = {"PCMU": "mulaw", "PCMA": "alaw"}


@dataclass
class TelnyxOptions:
    """`telephony.telnyx` in config.yaml."""

    #: Mission Control → Keys & Credentials → Public Key: verifies webhook signatures.
    public_key: str = ""
    #: An API key (`KEY…`): transfers and hang-ups through the TeXML REST API.
    api_key: str = ""
    api_base_url: str = "https://api.telnyx.com/v2"
    validate_signature: bool = True
    transfer_caller_id: str = ""
    #: Open the phone door without a signature check or `security.auth` (docs/telephony.md).
    allow_unsigned: bool = False


class TelnyxSerializer(MediaStreamSerializer):
    name = "telnyx"
    Options = TelnyxOptions
    #: the config keys whose value verifies requests (`voicebot check` names them)
    secret_keys = ("public_key",)

    def parse(self, message: str | bytes) -> InboundEvent:
        msg = json_object(message)
        event = event_name(msg)
        if event == "media":
            media = section(msg, "media")
            track = optional_string(media, "track") or "inbound"
            ts = optional_integer(media.get("timestamp"), "media.timestamp")
            return Media(audio(media), "outbound" if track.startswith("outbound") else track, ts)
        if event == "mark":
            return Mark(string(section(msg, "mark"), "name"))
        if event == "dtmf":
            return Dtmf(digit(section(msg, "dtmf").get("digit")))
        if event == "start":
            return _start(msg)
        if event == "stop":
            stop = msg.get("stop")
            call = stop.get("call_control_id", "") if isinstance(stop, dict) else ""
            return Stop(call if isinstance(call, str) else "")
        if event == "connected":
            return Connected("telnyx", optional_string(msg, "version"))
        if event == "error":
            payload = msg.get("payload")
            raise UnknownEvent(f"error: {json.dumps(payload)[:100]}")
        raise UnknownEvent(event)

    def render_media(self, audio_bytes: bytes) -> str:
        self._require_stream()
        return '{"event":"media","media":{"payload":"' + b64(audio_bytes) + '"}}'

    def render_mark(self, name: str) -> str:
        self._require_stream()
        return json.dumps({"event": "mark", "mark": {"name": name}})

    def render_clear(self) -> str:
        self._require_stream()
        return '{"event":"clear"}'

    @classmethod
    def transfer_problem(cls, options: TelnyxOptions) -> str | None:
        if options.api_key:
            return None
        return "transferring Telnyx calls needs telephony.telnyx.api_key, which is empty"

    @classmethod
    def call_control(cls, options: TelnyxOptions) -> CallControl | None:
        if cls.transfer_problem(options) is not None:
            return None
        from .rest import TelnyxControl

        return TelnyxControl(options.api_key, options.api_base_url, options.transfer_caller_id)

    @classmethod
    def authenticate(
        cls,
        options: TelnyxOptions,
        url: str,
        headers: Mapping[str, str],
        params: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> bool | None:
        if not (options.public_key and options.validate_signature):
            return None
        if headers.get("Upgrade", "").lower() == "websocket":
            return True  # unsigned by Telnyx; the start's one-time token vouches for the stream
        from .signature import verify

        return verify(options.public_key, headers, body)


def _start(msg: dict[str, Any]) -> Start:
    start = section(msg, "start", MalformedStart)
    stream_id = msg.get("stream_id")
    if not isinstance(stream_id, str) or not stream_id:
        raise MalformedStart("start message needs a 'stream_id'")
    fmt = start.get("media_format")
    fmt = {} if fmt is None else fmt
    if not isinstance(fmt, dict):
        raise MalformedStart("start.media_format must be an object")
    encoding = fmt.get("encoding", "PCMU")
    if encoding not in _ENCODINGS:
        raise UnsupportedFormat(
            f"media_format.encoding {encoding!r} is not supported (PCMU or PCMA): set the "
            "stream's codec to PCMU or PCMA"
        )
    rate = integer(fmt.get("sample_rate", 8000), "media_format.sample_rate", MalformedStart)
    channels = integer(fmt.get("channels", 1), "media_format.channels", MalformedStart)
    if rate != 8000 or channels != 1:
        raise UnsupportedFormat(f"{encoding} must be 8000 Hz mono, got {rate} Hz x{channels}")
    return Start(
        stream_id=stream_id,
        call_id=optional_string(start, "call_control_id"),
        account_id=optional_string(start, "user_id"),
        custom_parameters=start_parameters(
            start.get("custom_parameters"), "start.custom_parameters"
        ),
        media_format=MediaFormat(_ENCODINGS[encoding], rate, channels),
    )
