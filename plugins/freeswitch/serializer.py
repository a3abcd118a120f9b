"""FreeSWITCH `mod_audio_stream` (github.com/amigniter/mod_audio_stream), sans-I/O.

`uuid_audio_stream <uuid> start <ws-url> <mono|mixed|stereo> <8k|16k> <metadata>` opens a
WebSocket to us. The module sends `metadata` (any UTF-8 text) as the first TEXT message, then the
caller's audio as BINARY messages of raw L16 (16-bit signed little-endian PCM) at the chosen
rate, 20 ms each, or `STREAM_BUFFER_SIZE` ms (a multiple of 20) each when that channel variable
is set. `uuid_audio_stream <uuid> send_text <text>` sends more TEXT mid-call; `stop <text>` sends
its text, then closes.

Nothing on the wire says which call it is, nor the rate: so we require the metadata to be a JSON
object naming the call (`call_id`), and take the rate from it or from the plugin's options. Key
presses are not streamed by the module: the dialplan forwards them as `send_text
{"event":"dtmf","digit":"5"}` (docs/telephony.md).

Back to the caller, the module takes TEXT `{"type":"streamAudio","data":{"audioDataType":"raw",
"sampleRate":8000,"audioData":"<base64>"}}`: it writes each to a file and plays it (or fires
`mod_audio_stream::play` for a listener to play). Any other TEXT becomes a
`mod_audio_stream::json` event: that is how a transfer reaches the dialplan. There is no mark
and no clear, so "heard" is the paced-send estimate (`supports_marks = False`), the send is kept
`lookahead_ms` ahead of the caller's ear, and a barge-in simply stops sending.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from voicebot.telephony.carrier import (
    Dtmf,
    InboundEvent,
    MalformedMessage,
    MalformedStart,
    Media,
    MediaFormat,
    MediaStreamSerializer,
    Outbound,
    Start,
    Stop,
    TelephonyError,
    UnknownEvent,
    UnsupportedFormat,
)

from .._carrier_kit import b64, digit, json_object

RATES = {8000: 8000, 16000: 16000, "8k": 8000, "16k": 16000, "8000": 8000, "16000": 16000}
MAX_FRAME_MS = 500  # STREAM_BUFFER_SIZE's largest sensible value
MAX_VARIABLES = 32
CALL_ID = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces: FreeSWITCH's uuid
#: a dialplan extension, number or SIP URI: what `uuid_transfer` takes, and no spaces (the
#: listener's command line) or quotes
TRANSFER_TARGET = re.compile(r"^[A-Za-z0-9+*#@._:;=-]{1,128}$")
PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")


@dataclass
class FreeswitchOptions:
    """`telephony.freeswitch` in config.yaml."""

    #: the bearer token mod_audio_stream sends in `STREAM_EXTRA_HEADERS`
    #: (`{"Authorization":"Bearer <secret>"}`), compared in constant time; empty: no check
    #: (the phone door then needs `security.auth`, or `allow_unsigned` for a trial)
    secret: str = ""
    #: where `uuid_audio_stream … start ws://host:port<path>` connects (besides
    #: `/telephony/freeswitch/media`)
    path: str = "/freeswitch/stream"
    #: the caller's audio rate when the metadata does not say (the `8k`/`16k` argument)
    sample_rate: Literal[8000, 16000] = 8000
    #: how far ahead of the caller's ear the bot's audio is sent (ms): at most this much plus
    #: one chunk (`pipeline.phone_message_ms`) still plays after a barge-in
    lookahead_ms: int = field(default=100, metadata={"min": 20, "max": 1000})
    #: Open the phone door without a secret or `security.auth` (docs/telephony.md).
    allow_unsigned: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not PATH.match(self.path):
            raise ValueError(
                f"path {self.path!r} must start with '/' and hold only letters, digits and "
                "'._~/-' (e.g. /freeswitch/stream)"
            )


class FreeswitchSerializer(MediaStreamSerializer):
    name = "freeswitch"
    Options = FreeswitchOptions
    secret_keys = ("secret",)  # named by `voicebot check` when unset
    supports_marks = False  # no mark, no clear: "heard" is the paced-send estimate
    max_message_ms = 200  # chunks of `pipeline.phone_message_ms`, not 20 ms files

    def __init__(self) -> None:
        super().__init__()
        self._default_rate = 8000
        self._rate = 8000

    def configure(self, options: FreeswitchOptions) -> None:
        self._default_rate = options.sample_rate
        self.playback_lead_ms = options.lookahead_ms

    def bind(self, start: Start) -> None:
        super().bind(start)
        self._rate = start.media_format.sample_rate

    # ------------------------------------------------------------------------------ inbound

    def parse(self, message: str | bytes) -> InboundEvent:
        if isinstance(message, bytes):
            return self._audio(message)
        if self.stream_id is None:
            return self._metadata(message)
        msg = json_object(message)
        event = msg.get("event")
        if event == "dtmf":
            return Dtmf(digit(msg.get("digit")))
        if event in ("stop", "hangup"):
            return Stop(self.stream_id)
        if isinstance(event, str):
            raise UnknownEvent(event[:40])
        raise MalformedMessage("a text message needs a string 'event' (e.g. dtmf)")

    def _audio(self, frame: bytes) -> Media:
        if self.stream_id is None:
            raise MalformedStart(
                "audio before the metadata: pass a JSON object as the metadata argument of "
                'uuid_audio_stream start (e.g. {"call_id":"${uuid}"})'
            )
        if len(frame) % 2:
            raise UnsupportedFormat(f"L16 frame of {len(frame)} bytes: odd, not 16-bit samples")
        most = self._rate * 2 * MAX_FRAME_MS // 1000
        if len(frame) > most:
            raise UnsupportedFormat(
                f"L16 frame of {len(frame)} bytes is over {MAX_FRAME_MS} ms at {self._rate} Hz"
            )
        if not frame:
            raise MalformedMessage("an empty audio frame")
        return Media(frame)

    def _metadata(self, message: str) -> Start:
        try:
            meta = json_object(message)
        except MalformedMessage as exc:
            raise MalformedStart(f"metadata must be a JSON object: {exc}") from None
        call_id = meta.get("call_id")
        if not isinstance(call_id, str) or not CALL_ID.match(call_id):
            raise MalformedStart("metadata needs a 'call_id' string (e.g. \"${uuid}\")")
        mix = meta.get("mix_type", "mono")
        if mix != "mono":
            raise UnsupportedFormat(
                f"mix_type {str(mix)[:10]!r}: start the stream with mono (the caller only)"
            )
        rate = RATES.get(meta.get("sample_rate", self._default_rate))  # type: ignore[arg-type]
        if rate is None:
            raise UnsupportedFormat(
                f"sample_rate {str(meta.get('sample_rate'))[:10]!r}: use 8k or 16k"
            )
        params = self._variables(meta.get("variables"))
        for key, name in (("from", "From"), ("to", "To")):
            value = meta.get(key)
            if value is not None:
                if not isinstance(value, str):
                    raise MalformedStart(f"metadata '{key}' must be a string")
                params[name] = value[:128]
        return Start(
            stream_id=call_id,
            call_id=call_id,
            custom_parameters=params,
            media_format=MediaFormat("pcm_s16le", rate),
        )

    @staticmethod
    def _variables(value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict) or len(value) > MAX_VARIABLES:
            raise MalformedStart(f"metadata 'variables' must be an object of <= {MAX_VARIABLES}")
        out = {}
        for k, v in value.items():
            if not isinstance(v, str | int | float | bool):
                raise MalformedStart(f"metadata variable {str(k)[:32]!r} is not a scalar")
            out[str(k)[:64]] = str(v)[:256]
        return out

    # ----------------------------------------------------------------------------- outbound

    def render_media(self, audio: bytes) -> Outbound:
        data = {"audioDataType": "raw", "sampleRate": self._rate, "audioData": b64(audio)}
        return json.dumps({"type": "streamAudio", "data": data}, separators=(",", ":"))

    def render_mark(self, name: str) -> Outbound:
        return []  # never called: no marks

    def render_clear(self) -> Outbound:
        return []  # nothing to send: the module has no clear, and we stopped sending

    def render_transfer(self, target: str) -> Outbound:
        if not TRANSFER_TARGET.match(target):
            raise TelephonyError(
                f"cannot transfer a FreeSWITCH call to {target[:40]!r}: use an extension, a "
                "number or a sip: URI without spaces"
            )
        return json.dumps({"event": "transfer", "target": target}, separators=(",", ":"))

    # ------------------------------------------------------------------------------- checks

    @classmethod
    def configured_media_paths(cls, options: FreeswitchOptions) -> tuple[str, ...]:
        return (options.path,)

    @classmethod
    def transfer_problem(cls, options: Any) -> str | None:
        """None once the section is set up: a transfer is a message the dialplan's hook acts
        on. An untouched default (no `telephony.freeswitch`) is not a carrier that transfers."""
        if options == cls.Options():
            return "telephony.freeswitch is not configured (set its secret)"
        return None

    @classmethod
    def authenticate(
        cls,
        options: Any,
        url: str,
        headers: Mapping[str, str],
        params: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> bool | None:
        """`Authorization: Bearer <secret>`, from the channel's `STREAM_EXTRA_HEADERS`."""
        if not options.secret:
            return None
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else ""
        return hmac.compare_digest(given.encode(), options.secret.encode())
