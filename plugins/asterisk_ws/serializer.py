"""Asterisk's WebSocket channel driver (`chan_websocket`), sans-I/O.

Per docs.asterisk.org (Configuration/Channel-Drivers/WebSocket, Asterisk 20.16/21.11/22.6/23.0
and later): BINARY messages carry raw audio in the dialstring's codec (`c(ulaw)`: 160 bytes per
20 ms), TEXT messages carry control. Asterisk sends `MEDIA_START connection_id:<id>
channel:<name> format:<codec> optimal_frame_size:<n>` first, `DTMF_END digit:<d>` per key,
`MEDIA_XOFF`/`MEDIA_XON` (flow control), `STATUS …`, `QUEUE_DRAINED` and
`MEDIA_BUFFERING_COMPLETED [<id>]`. The app sends `ANSWER`, `HANGUP`, `START_MEDIA_BUFFERING`,
`STOP_MEDIA_BUFFERING [<id>]`, `FLUSH_MEDIA`, `PAUSE_MEDIA`, `CONTINUE_MEDIA`, `GET_STATUS`,
`REPORT_QUEUE_DRAINED`. Since 20.18/22.8/23.2 the same control messages may be JSON
(`chan_websocket.conf` `control_message_format = json`, or the `f(json)` dial option):
`{"event": "MEDIA_START", "connection_id": …, "channel_id": …, "format": …,
"channel_variables": {…}}` in, `{"command": "STOP_MEDIA_BUFFERING", "correlation_id": …}` out.

The driver has no `mark`, but it has the same thing: audio sent between `START_MEDIA_BUFFERING`
and `STOP_MEDIA_BUFFERING <id>` is acknowledged by `MEDIA_BUFFERING_COMPLETED <id>` once its last
frame went to the caller. So each reply segment is one buffered transfer whose id is the mark,
and `FLUSH_MEDIA` (which discards everything queued, without a completion) is `clear`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from voicebot.telephony.carrier import (
    Connected,
    Dtmf,
    InboundEvent,
    MalformedMessage,
    MalformedStart,
    Mark,
    Media,
    MediaFormat,
    MediaStreamSerializer,
    Outbound,
    Start,
    UnknownEvent,
    UnsupportedFormat,
)

#: the dialstring codecs (`c(…)`) voicebot decodes
FORMATS = {
    "ulaw": MediaFormat("mulaw", 8000),
    "alaw": MediaFormat("alaw", 8000),
    "slin": MediaFormat("pcm_s16le", 8000),
    "slin16": MediaFormat("pcm_s16le", 16000),
}
#: notifications that need no action: flow control, status, and queue reports
IGNORED = frozenset({"MEDIA_XOFF", "MEDIA_XON", "STATUS", "QUEUE_DRAINED"})
DTMF_DIGITS = frozenset("0123456789*#ABCD")
MAX_VARIABLES = 64


@dataclass
class AsteriskWebSocketOptions:
    """`telephony.asterisk` in config.yaml."""

    #: the `password` of the websocket_client.conf connection (HTTP Basic on the upgrade),
    #: compared in constant time; empty: no check (the phone door then needs `security.auth`)
    password: str = ""
    #: checked too when set (websocket_client.conf `username`)
    username: str = ""
    #: "plain-text" (Asterisk's default) or "json" (`control_message_format`, `f(json)`)
    control_format: Literal["plain-text", "json"] = "plain-text"
    #: Open the phone door without a password or `security.auth` (docs/telephony.md).
    allow_unsigned: bool = False


def _basic(headers: Mapping[str, str]) -> tuple[str, str] | None:
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class AsteriskWebSocketSerializer(MediaStreamSerializer):
    name = "asterisk"
    Options = AsteriskWebSocketOptions
    secret_keys = ("password",)  # named by `voicebot check` when unset

    def __init__(self) -> None:
        super().__init__()
        self._json = False
        self._buffering = False

    def configure(self, options: AsteriskWebSocketOptions) -> None:
        self._json = options.control_format == "json"

    # ------------------------------------------------------------------------------ inbound

    def parse(self, message: str | bytes) -> InboundEvent:
        if isinstance(message, bytes):
            return Media(message)
        text = message.strip()
        if text.startswith("{"):
            try:
                fields = json.loads(text)
            except ValueError as exc:
                raise MalformedMessage(f"control message is not JSON: {exc}") from None
            if not isinstance(fields, dict) or not isinstance(fields.get("event"), str):
                raise MalformedMessage("JSON control message without an 'event'")
            event, args = fields["event"], []
        else:
            event, *args = text.split(" ")
            fields = dict(arg.partition(":")[::2] for arg in args if ":" in arg)
        if event == "MEDIA_START":
            return self._start(fields)
        if event == "DTMF_END":
            digit = fields.get("digit")
            if not isinstance(digit, str) or digit not in DTMF_DIGITS:
                raise MalformedMessage(f"DTMF_END with digit {str(digit)[:8]!r}")
            return Dtmf(digit)
        if event in ("MEDIA_BUFFERING_COMPLETED", "MEDIA_MARK_PROCESSED"):
            bare = [arg for arg in args if ":" not in arg]  # plain text: the id is positional
            return Mark(str(bare[0] if bare else fields.get("correlation_id", ""))[:64])
        if event in IGNORED:
            return Connected()
        raise UnknownEvent(event[:40])

    def _start(self, fields: Mapping[str, Any]) -> Start:
        connection = fields.get("connection_id")
        if not isinstance(connection, str) or not connection:
            raise MalformedStart("MEDIA_START without a connection_id")
        codec = fields.get("format", "ulaw")
        media_format = FORMATS.get(codec) if isinstance(codec, str) else None
        if media_format is None:
            raise UnsupportedFormat(
                f"format {str(codec)[:20]!r}: dial with c(ulaw), c(alaw), c(slin) or c(slin16)"
            )
        variables = fields.get("channel_variables") or {}
        if not isinstance(variables, dict):
            raise MalformedStart("channel_variables is not an object")
        params = {str(k)[:64]: str(v)[:256] for k, v in list(variables.items())[:MAX_VARIABLES]}
        channel = fields.get("channel")
        if isinstance(channel, str):
            params["channel"] = channel[:256]
        channel_id = fields.get("channel_id")
        return Start(
            stream_id=connection,
            call_id=channel_id if isinstance(channel_id, str) and channel_id else connection,
            custom_parameters=params,
            media_format=media_format,
        )

    # ----------------------------------------------------------------------------- outbound

    def _command(self, command: str, correlation_id: str | None = None) -> str:
        if self._json:
            msg = {"command": command}
            if correlation_id is not None:
                msg["correlation_id"] = correlation_id
            return json.dumps(msg)
        return command if correlation_id is None else f"{command} {correlation_id}"

    def render_media(self, audio: bytes) -> Outbound:
        if self._buffering:
            return audio
        self._buffering = True  # a reply segment opens one buffered transfer
        return [self._command("START_MEDIA_BUFFERING"), audio]

    def render_mark(self, name: str) -> Outbound:
        self._buffering = False
        return self._command("STOP_MEDIA_BUFFERING", name)

    def render_clear(self) -> Outbound:
        self._buffering = False
        return self._command("FLUSH_MEDIA")

    def render_hangup(self) -> Outbound:
        return self._command("HANGUP")

    # ------------------------------------------------------------------------------- checks

    @classmethod
    def authenticate(
        cls,
        options: Any,
        url: str,
        headers: Mapping[str, str],
        params: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> bool | None:
        """The websocket_client.conf credentials, sent by Asterisk as HTTP Basic."""
        if not options.password:
            return None
        given = _basic(headers) or ("", "")
        user_ok = hmac.compare_digest(given[0].encode(), options.username.encode())
        password_ok = hmac.compare_digest(given[1].encode(), options.password.encode())
        return password_ok and (user_ok or not options.username)
