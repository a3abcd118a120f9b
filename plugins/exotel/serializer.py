"""Exotel Voicebot (bidirectional) streams: config schema and the media WebSocket's shapes.

Inbound: `connected`, `start` (`stream_sid`, `start.call_sid/account_sid/from/to`,
`start.custom_parameters`, `start.media_format.encoding/sample_rate`), `media`
(`media.chunk/timestamp/payload`: base64 16-bit little-endian PCM, 8 kHz by default), `dtmf`
(`dtmf.digit`), `mark` (`mark.name`, once the audio before it has played), `clear` and `stop`.
Outbound: `media` (`stream_sid`, `media.payload`), `mark` (`mark.name`) and `clear`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
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

_RATES = (8000, 16000, 24000)


@dataclass
class ExotelOptions:
    """`telephony.exotel` in config.yaml."""

    #: the basic-auth credentials written into the Voicebot applet's URL
    #: (`wss://USERNAME:PASSWORD@host/exotel/media`): checked on every request when set
    username: str = ""
    password: str = ""
    #: Open the phone door without a credential check or `security.auth` (docs/telephony.md).
    allow_unsigned: bool = False


class ExotelSerializer(MediaStreamSerializer):
    name = "exotel"
    Options = ExotelOptions
    #: the config keys whose value verifies requests (`voicebot check` names them)
    secret_keys = ("username", "password")

    def bind(self, start: Start) -> None:
        super().bind(start)
        self._sid = json.dumps(start.stream_id)
        self._media_prefix = f'{{"event":"media","stream_sid":{self._sid},"media":{{"payload":"'

    def parse(self, message: str | bytes) -> InboundEvent:
        msg = json_object(message)
        event = event_name(msg)
        if event == "media":
            media = section(msg, "media")
            ts = optional_integer(media.get("timestamp"), "media.timestamp")
            return Media(audio(media), optional_string(media, "track") or "inbound", ts)
        if event == "mark":
            return Mark(string(section(msg, "mark"), "name"))
        if event == "dtmf":
            return Dtmf(digit(section(msg, "dtmf").get("digit")))
        if event == "start":
            return _start(msg)
        if event == "stop":
            stop = msg.get("stop")
            return Stop(optional_string(stop, "call_sid") if isinstance(stop, dict) else "")
        if event in ("connected", "clear"):
            return Connected("exotel", event)
        raise UnknownEvent(event)

    def render_media(self, audio_bytes: bytes) -> str:
        self._require_stream()
        return self._media_prefix + b64(audio_bytes) + '"}}'

    def render_mark(self, name: str) -> str:
        self._require_stream()
        return f'{{"event":"mark","stream_sid":{self._sid},"mark":{{"name":{json.dumps(name)}}}}}'

    def render_clear(self) -> str:
        self._require_stream()
        return f'{{"event":"clear","stream_sid":{self._sid}}}'

    @classmethod
    def transfer_problem(cls, options: ExotelOptions) -> str | None:
        if (options.username and options.password) or options.allow_unsigned:
            return None  # through the call flow: Passthru and Connect applets after Voicebot
        return (
            "Exotel transfers go through the call flow's Passthru and Connect applets, which "
            "need telephony.exotel.username and password (their basic auth)"
        )

    @classmethod
    def call_control(cls, options: ExotelOptions) -> CallControl | None:
        from .control import ExotelControl

        return ExotelControl()

    @classmethod
    def authenticate(
        cls,
        options: ExotelOptions,
        url: str,
        headers: Mapping[str, str],
        params: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> bool | None:
        if not (options.username and options.password):
            return None
        return basic_auth_ok(headers.get("Authorization", ""), options.username, options.password)


def basic_auth_ok(header: str, username: str, password: str) -> bool:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = f"{username}:{password}".encode()
    return hmac.compare_digest(given, expected)


def _start(msg: dict[str, Any]) -> Start:
    start = section(msg, "start", MalformedStart)
    stream_sid = start.get("stream_sid", msg.get("stream_sid"))
    if not isinstance(stream_sid, str) or not stream_sid:
        raise MalformedStart("start message needs a 'stream_sid'")
    fmt = start.get("media_format")
    fmt = {} if fmt is None else fmt
    if not isinstance(fmt, dict):
        raise MalformedStart("start.media_format must be an object")
    rate = integer(fmt.get("sample_rate", 8000), "media_format.sample_rate", MalformedStart)
    encoding = str(fmt.get("encoding", "base64")).lower()
    if "mulaw" in encoding or "ulaw" in encoding:
        ours = "mulaw"
    elif encoding in ("base64", "raw/slin", "slin", "pcm", "audio/l16", "l16"):
        ours = "pcm_s16le"  # "base64" is how Exotel names its default: base64 raw/slin
    else:
        raise UnsupportedFormat(f"media_format.encoding {encoding!r} is not supported")
    if rate not in (_RATES if ours == "pcm_s16le" else (8000,)):
        raise UnsupportedFormat(f"{encoding} at {rate} Hz is not supported")
    return Start(
        stream_id=stream_sid,
        call_id=optional_string(start, "call_sid"),
        account_id=optional_string(start, "account_sid"),
        # a static applet URL has no webhook: the start's caller details are all there is
        # (a token's variables, when there is one, override them)
        custom_parameters={
            "From": optional_string(start, "from"),
            "To": optional_string(start, "to"),
            **start_parameters(start.get("custom_parameters"), "start.custom_parameters"),
        },
        media_format=MediaFormat(ours, rate, 1),
    )
