"""A second telephony provider, as a third party would write it (the docs/telephony.md example):
A-law audio, its own field names, its own config section."""

import base64
import json
from dataclasses import dataclass

from voicebot.hookspecs import hookimpl
from voicebot.telephony.serializer import (
    Connected,
    Dtmf,
    MalformedMessage,
    Mark,
    Media,
    MediaFormat,
    MediaStreamSerializer,
    Start,
    Stop,
    UnknownEvent,
)


class AcmeSerializer(MediaStreamSerializer):
    name = "acme"

    @dataclass
    class Options:
        api_key: str = ""
        allow_unsigned: bool = False  # no signature check: open the phone door explicitly

    def parse(self, message):
        try:
            msg = json.loads(message)
            kind = msg["type"]
            if kind == "audio":
                return Media(base64.b64decode(msg["data"], validate=True))
            if kind == "session.start":
                return Start(
                    stream_id=msg["session"],
                    call_id=msg["call"],
                    custom_parameters=msg.get("vars", {}),
                    media_format=MediaFormat("alaw", 8000),
                )
            if kind == "digit":
                return Dtmf(msg["digit"])
            if kind == "played":
                return Mark(msg["label"])
            if kind == "session.end":
                return Stop()
            if kind == "hello":
                return Connected()
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedMessage(str(exc)) from None
        raise UnknownEvent(kind)

    def render_media(self, audio):
        return json.dumps(
            {
                "type": "audio",
                "session": self._require_stream(),
                "data": base64.b64encode(audio).decode(),
            }
        )

    def render_mark(self, name):
        return json.dumps({"type": "label", "session": self._require_stream(), "label": name})

    def render_clear(self):
        return json.dumps({"type": "flush", "session": self._require_stream()})


@hookimpl
def register_transports(register):
    register("acme", AcmeSerializer)
