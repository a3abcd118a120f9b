"""Twilio Media Streams: config schema and the wire format of the media WebSocket.

Inbound `media` frames are the hot path of a phone call (50 per second per call; 15,000 a second
for 300 calls), so parsing does one orjson parse and one strict `binascii` base64 decode (no
regex pass, unlike `base64.b64decode(validate=True)`) and reads only the fields it needs;
outbound frames are rendered from a prefix computed once per stream instead of a `json.dumps` per
frame. Together that is about a third of the cost of `json.loads` + `b64decode`.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from voicebot.telephony.carrier import (
    CallControl,
    Connected,
    Dtmf,
    InboundEvent,
    MalformedMessage,
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

from .._carrier_kit import integer, preview, section, string
from .signature import validate_signature

try:
    from orjson import JSONDecodeError as _JSONError
    from orjson import loads as _loads
except ImportError:  # orjson is a dependency; this keeps an environment built before it working
    from json import JSONDecodeError as _JSONError
    from json import loads as _loads

DTMF_DIGITS = frozenset("0123456789*#ABCDabcd")

# Twilio declares MIME-ish names; the A-law and L16 spellings are what other providers send in
# the same shape, accepted so a Twilio-compatible gateway in front of voicebot just works.
_ENCODINGS = {
    "audio/x-mulaw": "mulaw",
    "audio/pcmu": "mulaw",
    "audio/x-alaw": "alaw",
    "audio/pcma": "alaw",
}


@dataclass
class TwilioOptions:
    """`telephony.twilio` in config.yaml."""

    auth_token: str = ""
    account_sid: str = ""
    api_base_url: str = "https://api.twilio.com"
    validate_signature: bool = True
    transfer_caller_id: str = ""
    #: Open the phone door without a signature check or `security.auth` (docs/telephony.md).
    allow_unsigned: bool = False
    #: Twilio's own answering-machine detection on outbound calls ("Enable"; "" off): its
    #: `AnsweredBy` then becomes `call.answered_by` (voicebot also detects locally)
    machine_detection: Literal["", "Enable", "DetectMessageEnd"] = ""


class TwilioSerializer(MediaStreamSerializer):
    name = "twilio"
    Options = TwilioOptions
    max_message_ms = 1000  # a media payload may be any length; marks say when it was played
    #: the config keys whose value verifies requests (`voicebot check` names them)
    secret_keys = ("auth_token",)

    def __init__(self) -> None:
        super().__init__()
        self._media_prefix = ""

    def bind(self, start: Start) -> None:
        super().bind(start)
        self._sid_json = json.dumps(start.stream_id)
        self._media_prefix = '{"event":"media","streamSid":' + self._sid_json
        self._media_prefix += ',"media":{"payload":"'

    # ------------------------------------------------------------------------------ inbound

    def parse(self, message: str | bytes) -> InboundEvent:
        try:
            msg = _loads(message)
        except (_JSONError, ValueError, TypeError):
            msg = _strict_loads(message)  # NaN, huge integers: the checks below say what is wrong
        if not isinstance(msg, dict):
            raise MalformedMessage("a message must be a JSON object")
        event = msg.get("event")
        if event == "media":
            return _media(section(msg, "media"))
        if event == "mark":
            return Mark(string(section(msg, "mark"), "name"))
        if event == "dtmf":
            digit = string(section(msg, "dtmf"), "digit")
            if len(digit) != 1 or digit not in DTMF_DIGITS:
                raise MalformedMessage(f"dtmf.digit must be one of 0-9 * # A-D, got {digit!r}")
            return Dtmf(digit.upper())
        if event == "start":
            return _start(msg)
        if event == "stop":
            stop = msg.get("stop")
            call_sid = stop.get("callSid", "") if isinstance(stop, dict) else ""
            return Stop(call_sid if isinstance(call_sid, str) else "")
        if event == "connected":
            return Connected(str(msg.get("protocol", "")), str(msg.get("version", "")))
        if not isinstance(event, str):
            raise MalformedMessage("a message needs a string 'event' field")
        raise UnknownEvent(event)

    # ----------------------------------------------------------------------------- outbound

    def render_media(self, audio: bytes) -> str:
        self._require_stream()
        return self._media_prefix + base64.b64encode(audio).decode("ascii") + '"}}'

    def render_mark(self, name: str) -> str:
        self._require_stream()
        mark = json.dumps(name)
        return f'{{"event":"mark","streamSid":{self._sid_json},"mark":{{"name":{mark}}}}}'

    def render_clear(self) -> str:
        self._require_stream()
        return f'{{"event":"clear","streamSid":{self._sid_json}}}'

    @classmethod
    def transfer_problem(cls, options: TwilioOptions) -> str | None:
        empty = [
            f"telephony.twilio.{k}"
            for k in ("account_sid", "auth_token")
            if not getattr(options, k)
        ]
        if not empty:
            if importlib.util.find_spec("twilio") is None:
                return (
                    "Twilio's REST API (transfers, outbound calls) needs its SDK: "
                    "pip install 'voicebot-runtime[twilio]'"
                )
            return None
        return (
            "transferring phone calls needs Twilio REST credentials: "
            f"{' and '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty"
        )

    @classmethod
    def call_control(cls, options: TwilioOptions) -> CallControl | None:
        if cls.transfer_problem(options) is not None:
            return None
        from .rest import TwilioControl

        return TwilioControl(
            options.account_sid,
            options.auth_token,
            base_url=options.api_base_url,
            caller_id=options.transfer_caller_id,
            machine_detection=options.machine_detection,
        )

    @classmethod
    def authenticate(
        cls,
        options: TwilioOptions,
        url: str,
        headers: Mapping[str, str],
        params: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> bool | None:
        if not (options.auth_token and options.validate_signature):
            return None
        signature = headers.get("X-Twilio-Signature")
        return validate_signature(options.auth_token, signature, url, list(params), body)


# ------------------------------------------------------------------------------ field access


def _strict_loads(message: str | bytes) -> Any:
    """The standard parser, for what orjson refuses: it accepts NaN, Infinity and integers of any
    size, so those reach the field checks and get their precise errors and close codes."""
    try:
        return json.loads(message)
    except (ValueError, TypeError, RecursionError) as exc:
        raise MalformedMessage(f"not JSON: {str(exc)[:80]}") from None


def _media(media: dict[str, Any]) -> Media:
    try:
        payload = binascii.a2b_base64(string(media, "payload"), strict_mode=True)
    except (binascii.Error, ValueError):
        raise MalformedMessage("media.payload is not valid base64") from None
    track = media.get("track", "inbound")
    ts = media.get("timestamp")
    timestamp = None if ts is None else integer(ts, "media.timestamp", MalformedMessage)
    return Media(payload, track if isinstance(track, str) else "inbound", timestamp)


def _start(msg: dict[str, Any]) -> Start:
    start = msg.get("start")
    if not isinstance(start, dict):
        raise MalformedStart("'start' message needs an object 'start'")
    stream_sid = start.get("streamSid", msg.get("streamSid"))
    if not isinstance(stream_sid, str) or not stream_sid:
        raise MalformedStart("start message needs a 'streamSid'")
    params = start.get("customParameters")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise MalformedStart("start.customParameters must be an object")
    tracks = start.get("tracks")
    tracks = ["inbound"] if tracks is None else tracks
    if not isinstance(tracks, list):
        raise MalformedStart("start.tracks must be a list")
    return Start(
        stream_id=stream_sid,
        call_id=str(start.get("callSid") or ""),
        account_id=str(start.get("accountSid") or ""),
        custom_parameters={str(k): str(v) for k, v in params.items()},
        media_format=_media_format(start.get("mediaFormat")),
        tracks=tuple(str(t) for t in tracks),
    )


def _media_format(fmt: Any) -> MediaFormat:
    """Honour what the stream declares; an absent format is Twilio's only one, μ-law 8 kHz."""
    if fmt is None:
        return MediaFormat()
    if not isinstance(fmt, dict):
        raise MalformedStart("start.mediaFormat must be an object")
    encoding_name = fmt.get("encoding", "audio/x-mulaw")
    if not isinstance(encoding_name, str):
        raise MalformedStart(f"mediaFormat.encoding must be a string, got {preview(encoding_name)}")
    name = encoding_name.lower()
    encoding = _ENCODINGS.get(name)
    if encoding is None:
        raise UnsupportedFormat(
            f"unsupported media encoding {preview(name)} "
            f"(supported: {', '.join(sorted(_ENCODINGS))})"
        )
    rate = integer(fmt.get("sampleRate", 8000), "mediaFormat.sampleRate", MalformedStart)
    channels = integer(fmt.get("channels", 1), "mediaFormat.channels", MalformedStart)
    if channels != 1:
        raise UnsupportedFormat(f"only mono streams are supported, got {channels} channels")
    if not 8000 <= rate <= 48000:
        raise UnsupportedFormat(f"sample rate {rate} is out of range (8000-48000 Hz)")
    return MediaFormat(encoding, rate, channels)
