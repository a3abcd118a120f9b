"""Plivo audio streams: config schema and the media WebSocket's wire format.

Inbound (Plivo → us): `start` (`start.callId/streamId/accountId/tracks/mediaFormat`, and the
answer's `extraHeaders` as a top-level `extra_headers` string), `media`
(`media.track/timestamp/chunk/payload`), `dtmf` (`dtmf.digit`), `playedStream` (a checkpoint's
audio has played) and `clearedAudio` (a `clearAudio` took effect). Plivo sends no `stop`: the
socket closes.
Outbound: `playAudio` (`media.contentType/sampleRate/payload`), `checkpoint`
(`streamId`, `name`) as the mark, and `clearAudio` (`streamId`) as the clear. Plivo never
acknowledges a checkpoint whose audio was cleared; the core's mark bookkeeping expects no echo.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from voicebot.telephony.carrier import (
    TOKEN_PARAMETER,
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
    string,
)
from .webhooks import TOKEN_HEADER

# what Plivo declares → (voicebot encoding, the contentType we answer with)
_ENCODINGS = {
    "audio/x-mulaw": ("mulaw", "audio/x-mulaw"),
    "audio/x-l16": ("pcm_s16le", "audio/x-l16"),
}


@dataclass
class PlivoOptions:
    """`telephony.plivo` in config.yaml."""

    auth_id: str = ""
    #: verifies `X-Plivo-Signature-V3`; with `auth_id`, transfers and hang-ups
    auth_token: str = ""
    validate_signature: bool = True
    #: the public URL of `/plivo/transfer` (e.g. https://host/plivo/transfer): where a transfer
    #: sends Plivo for its `<Dial>`
    transfer_url: str = ""
    transfer_caller_id: str = ""
    #: how the Plivo SDK reaches https://api.plivo.com: an HTTP(S) proxy URL (a corporate
    #: egress proxy; the SDK does not read HTTPS_PROXY), and the PEM file of CAs to trust
    #: instead of certifi's (a TLS-inspecting proxy's)
    proxy: str = ""
    ca_bundle: str = ""
    #: Open the phone door without a signature check or `security.auth` (docs/telephony.md).
    allow_unsigned: bool = False


class PlivoSerializer(MediaStreamSerializer):
    name = "plivo"
    Options = PlivoOptions
    #: the config keys whose value verifies requests (`voicebot check` names them)
    secret_keys = ("auth_token",)

    def bind(self, start: Start) -> None:
        super().bind(start)
        self._sid = json.dumps(start.stream_id)
        encoding, rate = start.media_format.encoding, start.media_format.sample_rate
        content_type = "audio/x-mulaw" if encoding == "mulaw" else "audio/x-l16"
        self._prefix = (
            f'{{"event":"playAudio","media":{{"contentType":"{content_type}",'
            f'"sampleRate":{rate},"payload":"'
        )

    def parse(self, message: str | bytes) -> InboundEvent:
        msg = json_object(message)
        event = event_name(msg)
        if event == "media":
            media = section(msg, "media")
            track = optional_string(media, "track") or "inbound"
            ts = optional_integer(media.get("timestamp"), "media.timestamp")
            return Media(audio(media), track, ts)
        if event == "playedStream":
            return Mark(string(msg, "name"))
        if event == "dtmf":
            return Dtmf(digit(section(msg, "dtmf").get("digit")))
        if event == "start":
            return _start(msg)
        if event == "clearedAudio":
            return Connected("plivo", "clearedAudio")  # an acknowledgement: nothing to do
        raise UnknownEvent(event)

    def render_media(self, audio_bytes: bytes) -> str:
        self._require_stream()
        return self._prefix + b64(audio_bytes) + '"}}'

    def render_mark(self, name: str) -> str:
        self._require_stream()
        return f'{{"event":"checkpoint","streamId":{self._sid},"name":{json.dumps(name)}}}'

    def render_clear(self) -> str:
        self._require_stream()
        return f'{{"event":"clearAudio","streamId":{self._sid}}}'

    @classmethod
    def transfer_problem(cls, options: PlivoOptions) -> str | None:
        empty = [
            f"telephony.plivo.{k}"
            for k in ("auth_id", "auth_token", "transfer_url")
            if not getattr(options, k)
        ]
        if not empty:
            return None
        return (
            "transferring Plivo calls needs "
            f"{' and '.join(empty)}, which {'is' if len(empty) == 1 else 'are'} empty"
        )

    @classmethod
    def call_control(cls, options: PlivoOptions) -> CallControl | None:
        if not (options.auth_id and options.auth_token):
            return None  # transfer_url may be empty: hang-ups still work
        from .rest import PlivoControl

        return PlivoControl(
            options.auth_id,
            options.auth_token,
            options.transfer_url,
            options.transfer_caller_id,
            proxy=options.proxy,
            ca_bundle=options.ca_bundle,
        )

    @classmethod
    def authenticate(
        cls,
        options: PlivoOptions,
        url: str,
        headers: Mapping[str, str],
        params: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> bool | None:
        if not (options.auth_token and options.validate_signature):
            return None
        if headers.get("Upgrade", "").lower() == "websocket":
            return True  # the start's one-time token vouches for the stream
        from .signature import verify

        return verify(options.auth_token, url, headers, params)


def extra_headers(value: Any) -> dict[str, str]:
    """`extraHeaders` as Plivo sends them back: `k=v` pairs separated by `;` (or `,`, as they
    are written in the XML); the hex stream token is decoded back to `TOKEN_PARAMETER`."""
    if not isinstance(value, str):
        return {}
    pairs = (p.partition("=") for p in value.replace(",", ";").split(";") if "=" in p)
    params = {k.strip(): v.strip() for k, _, v in pairs}
    token = params.pop(TOKEN_HEADER, None)
    if token is not None:
        try:
            params[TOKEN_PARAMETER] = bytes.fromhex(token).decode("ascii")
        except (ValueError, UnicodeDecodeError):
            params[TOKEN_PARAMETER] = ""  # present but mangled: refused like a wrong token
    return params


def _start(msg: dict[str, Any]) -> Start:
    start = section(msg, "start", MalformedStart)
    stream_id = start.get("streamId")
    if not isinstance(stream_id, str) or not stream_id:
        raise MalformedStart("start message needs a 'start.streamId'")
    fmt = start.get("mediaFormat")
    fmt = {} if fmt is None else fmt
    if not isinstance(fmt, dict):
        raise MalformedStart("start.mediaFormat must be an object")
    encoding = fmt.get("encoding", "audio/x-mulaw")
    if encoding not in _ENCODINGS:
        raise UnsupportedFormat(
            f"mediaFormat.encoding {encoding!r} is not supported (audio/x-mulaw or audio/x-l16)"
        )
    rate = integer(fmt.get("sampleRate", 8000), "mediaFormat.sampleRate", MalformedStart)
    ours = _ENCODINGS[encoding][0]
    if rate not in ((8000,) if ours == "mulaw" else (8000, 16000)):
        raise UnsupportedFormat(f"{encoding} at {rate} Hz is not supported")
    tracks = start.get("tracks")
    return Start(
        stream_id=stream_id,
        call_id=optional_string(start, "callId"),
        account_id=optional_string(start, "accountId"),
        custom_parameters=extra_headers(msg.get("extra_headers")),
        media_format=MediaFormat(ours, rate, 1),
        tracks=tuple(t for t in tracks if isinstance(t, str))
        if isinstance(tracks, list)
        else ("inbound",),
    )
