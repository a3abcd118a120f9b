"""Vonage Voice WebSockets: config schema and the media WebSocket's wire format.

Inbound: a text `websocket:connected` first (`content-type`, plus the NCCO endpoint's `headers`
as top-level fields: our `call_uuid` and the stream token), then binary frames of 16-bit
little-endian linear PCM (20 ms = 640 bytes at 16 kHz), `websocket:dtmf` (`digit`, `duration`),
`websocket:notify` (a `notify` command's `payload`, once the audio queued before it has played)
and `websocket:cleared`. Vonage sends no stop: the socket closes.
Outbound: binary L16 frames; `{"action":"notify","payload":{"name":…}}` as the mark and
`{"action":"clear"}` as the clear.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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
    UnknownEvent,
    UnsupportedFormat,
)

from .._carrier_kit import digit, event_name, json_object, section, string
from .webhooks import CALL_HEADER

log = logging.getLogger(__name__)

_CONTENT_TYPE = re.compile(r"^audio/l16;\s*rate=(8000|16000)$", re.IGNORECASE)


@dataclass
class VonageOptions:
    """`telephony.vonage` in config.yaml."""

    #: Dashboard → Settings → Signature secret (method SHA-256): verifies the webhooks' JWT.
    signature_secret: str = ""
    #: the Vonage application and its private key (PEM text or a file path): transfers, hang-ups
    application_id: str = ""
    private_key: str = ""
    api_host: str = "api.nexmo.com"
    validate_signature: bool = True
    #: the `from` number of a transfer's outbound leg (one of the application's numbers)
    transfer_caller_id: str = ""
    #: Open the phone door without a signature check or `security.auth` (docs/telephony.md).
    allow_unsigned: bool = False


class VonageSerializer(MediaStreamSerializer):
    name = "vonage"
    Options = VonageOptions
    #: the config keys whose value verifies requests (`voicebot check` names them)
    secret_keys = ("signature_secret",)

    def parse(self, message: str | bytes) -> InboundEvent:
        if isinstance(message, bytes):
            if len(message) % 2:
                raise MalformedMessage("an L16 frame must be a whole number of 16-bit samples")
            return Media(message)
        msg = json_object(message)
        event = event_name(msg)
        if event == "websocket:dtmf":
            return Dtmf(digit(msg.get("digit")))
        if event == "websocket:notify":
            return Mark(string(section(msg, "payload"), "name"))
        if event == "websocket:connected":
            return _start(msg)
        if event == "websocket:cleared":
            return Connected("vonage", "websocket:cleared")  # an acknowledgement
        raise UnknownEvent(event)

    def render_media(self, audio: bytes) -> bytes:
        self._require_stream()
        return audio

    def render_mark(self, name: str) -> str:
        self._require_stream()
        return json.dumps({"action": "notify", "payload": {"name": name}})

    def render_clear(self) -> str:
        self._require_stream()
        return '{"action":"clear"}'

    @classmethod
    def transfer_problem(cls, options: VonageOptions) -> str | None:
        keys = ("application_id", "private_key", "transfer_caller_id")
        empty = [f"telephony.vonage.{k}" for k in keys if not getattr(options, k)]
        if not empty:
            return None
        return (
            "transferring Vonage calls needs "
            f"{' and '.join(empty)}, which {'is' if len(empty) == 1 else 'are'} empty"
        )

    @classmethod
    def call_control(cls, options: VonageOptions) -> CallControl | None:
        if not (options.application_id and options.private_key):
            return None
        from vonage_utils.errors import VonageError

        from .rest import VonageControl

        try:
            return VonageControl(
                options.application_id,
                options.private_key,
                options.api_host,
                options.transfer_caller_id,
            )
        except (OSError, VonageError) as exc:  # a key file that is missing or not a key
            log.error(
                "Vonage transfers and hang-ups are off: telephony.vonage.private_key: %s", exc
            )
            return None

    @classmethod
    def authenticate(
        cls,
        options: VonageOptions,
        url: str,
        headers: Mapping[str, str],
        params: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> bool | None:
        if not (options.signature_secret and options.validate_signature):
            return None
        if headers.get("Upgrade", "").lower() == "websocket":
            return True  # the first message's one-time token vouches for the stream
        from .signature import verify

        return verify(options.signature_secret, headers, body)


def _start(msg: dict) -> Start:
    content_type = msg.get("content-type")
    match = _CONTENT_TYPE.match(content_type) if isinstance(content_type, str) else None
    if match is None:
        raise UnsupportedFormat(
            f"content-type {content_type!r} is not supported (audio/l16;rate=16000 or 8000)"
        )
    call = msg.get(CALL_HEADER)
    if not isinstance(call, str) or not call:
        raise MalformedStart(f"websocket:connected needs the '{CALL_HEADER}' header of the NCCO")
    params = {
        k: v for k, v in msg.items() if isinstance(v, str) and k not in ("event", "content-type")
    }
    return Start(
        stream_id=call,
        call_id=call,
        custom_parameters=params,
        media_format=MediaFormat("pcm_s16le", int(match.group(1)), 1),
    )
